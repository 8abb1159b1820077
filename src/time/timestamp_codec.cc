#include "faultline/time/timestamp_codec.h"

#include <string>

namespace faultline {
namespace {

// Reads the version byte and the raw timestamp, with every check but the leftover-bytes one.
Status ReadVersionAndTimestamp(ByteReader& r, HlcTimestamp* ts) {
  if (r.remaining() < kHlcTimestampWireBytes) return DataLossError("truncated HLC timestamp");
  uint8_t version = 0;
  FL_RETURN_IF_ERROR(r.U8(&version));
  if (version != kHlcWireVersion) {
    return UnimplementedError("unknown HLC timestamp wire version " + std::to_string(version));
  }
  uint64_t raw = 0;
  FL_RETURN_IF_ERROR(r.U64(&raw));
  const HlcTimestamp decoded = HlcTimestamp::FromRaw(raw);
  FL_RETURN_IF_ERROR(ValidateWireTimestamp(decoded));
  *ts = decoded;
  return Status::Ok();
}

}  // namespace

Status ValidateWireTimestamp(HlcTimestamp ts) {
  if (ts.physical_us() == 0) return OutOfRangeError("HLC timestamp has physical part 0 (unset)");
  if (ts.physical_us() > kWirePhysicalMaxUs) {
    return OutOfRangeError("HLC timestamp physical part " + std::to_string(ts.physical_us()) +
                           "us is after 2100-01-01");
  }
  return Status::Ok();
}

void WriteHlcTimestamp(ByteWriter& w, HlcTimestamp ts) {
  FL_ASSERT_MSG(ValidateWireTimestamp(ts).ok(), "encoding an HLC timestamp that cannot decode");
  const size_t start = w.size();
  w.U8(kHlcWireVersion);
  w.U64(ts.raw());
  FL_ASSERT(w.size() - start == kHlcTimestampWireBytes);
}

Status ReadHlcTimestamp(ByteReader& r, HlcTimestamp* ts) {
  FL_ASSERT(ts != nullptr);
  return ReadVersionAndTimestamp(r, ts);
}

void WriteHlcStamp(ByteWriter& w, const HlcStamp& stamp) {
  const size_t start = w.size();
  WriteHlcTimestamp(w, stamp.ts);
  w.U32(stamp.node.value());
  FL_ASSERT(w.size() - start == kHlcStampWireBytes);
}

Status ReadHlcStamp(ByteReader& r, HlcStamp* stamp) {
  FL_ASSERT(stamp != nullptr);
  // Checked up front so that a cut-off stamp is kDataLoss even when its version is unknown.
  if (r.remaining() < kHlcStampWireBytes) return DataLossError("truncated HLC stamp");
  HlcTimestamp ts;
  FL_RETURN_IF_ERROR(ReadVersionAndTimestamp(r, &ts));
  uint32_t node = 0;
  FL_RETURN_IF_ERROR(r.U32(&node));
  stamp->ts = ts;
  stamp->node = NodeId(node);
  return Status::Ok();
}

void EncodeHlcTimestamp(HlcTimestamp ts, std::vector<uint8_t>* out) {
  ByteWriter w(out);
  WriteHlcTimestamp(w, ts);
}

Result<HlcTimestamp> DecodeHlcTimestamp(std::span<const uint8_t> in) {
  if (in.size() < kHlcTimestampWireBytes) return DataLossError("truncated HLC timestamp");
  if (in.size() > kHlcTimestampWireBytes) {
    return DataLossError("trailing bytes after HLC timestamp");
  }
  ByteReader r(in);
  HlcTimestamp ts;
  FL_RETURN_IF_ERROR(ReadHlcTimestamp(r, &ts));
  FL_ASSERT(r.empty());
  return ts;
}

void EncodeHlcStamp(const HlcStamp& stamp, std::vector<uint8_t>* out) {
  ByteWriter w(out);
  WriteHlcStamp(w, stamp);
}

Result<HlcStamp> DecodeHlcStamp(std::span<const uint8_t> in) {
  if (in.size() < kHlcStampWireBytes) return DataLossError("truncated HLC stamp");
  if (in.size() > kHlcStampWireBytes) return DataLossError("trailing bytes after HLC stamp");
  ByteReader r(in);
  HlcStamp stamp;
  FL_RETURN_IF_ERROR(ReadHlcStamp(r, &stamp));
  FL_ASSERT(r.empty());
  return stamp;
}

}  // namespace faultline
