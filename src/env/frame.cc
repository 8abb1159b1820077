#include "faultline/env/frame.h"

#include "faultline/core/bytes.h"
#include "faultline/core/crc32c.h"

namespace faultline {

Status EncodeFrame(uint16_t type, uint16_t schema_version, std::span<const uint8_t> payload,
                   std::vector<uint8_t>* out, const FrameLimits& limits) {
  if (payload.size() > limits.payload_bytes_max) {
    return InvalidArgumentError("frame payload exceeds payload_bytes_max");
  }
  const size_t start = out->size();
  ByteWriter w(out);
  w.U16(kFrameMagic);
  w.U8(kFrameFormatVersion);
  w.U8(0);
  w.U16(type);
  w.U16(schema_version);
  w.U32(static_cast<uint32_t>(payload.size()));
  uint32_t crc = Crc32c(std::span<const uint8_t>(out->data() + start, 12));
  crc = Crc32c(payload, crc);
  w.U32(crc);
  w.Raw(payload);
  FL_ASSERT(out->size() == start + kFrameHeaderBytes + payload.size());
  return Status::Ok();
}

Result<FrameView> DecodeFrame(std::span<const uint8_t> bytes, const FrameLimits& limits) {
  if (bytes.size() < kFrameHeaderBytes) return DataLossError("truncated frame header");
  ByteReader r(bytes);
  uint16_t magic = 0;
  uint8_t version = 0;
  uint8_t flags = 0;
  FrameView view;
  uint32_t length = 0;
  uint32_t crc = 0;
  // The header is 16 bytes and we checked the size above, so these reads cannot fail.
  FL_ASSERT(r.U16(&magic).ok() && r.U8(&version).ok() && r.U8(&flags).ok());
  FL_ASSERT(r.U16(&view.type).ok() && r.U16(&view.schema_version).ok());
  FL_ASSERT(r.U32(&length).ok() && r.U32(&crc).ok());
  if (magic != kFrameMagic) return DataLossError("bad frame magic");
  if (version != kFrameFormatVersion) return UnimplementedError("unsupported frame format version");
  if (flags != 0) return UnimplementedError("unsupported frame flags");
  if (length > limits.payload_bytes_max) return OutOfRangeError("frame payload exceeds limit");
  if (bytes.size() - kFrameHeaderBytes < length) return DataLossError("truncated frame payload");
  if (bytes.size() - kFrameHeaderBytes > length) return DataLossError("trailing bytes after frame");
  view.payload = bytes.subspan(kFrameHeaderBytes, length);
  uint32_t actual = Crc32c(bytes.first(12));
  actual = Crc32c(view.payload, actual);
  if (actual != crc) return DataLossError("frame checksum mismatch");
  return view;
}

}  // namespace faultline
