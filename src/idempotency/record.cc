#include "src/idempotency/record.h"

#include <span>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/core/crc32c.h"

namespace faultline::idempotency::internal {
namespace {

constexpr uint8_t kVersion = 1;

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// ByteReader reports a length over its limit as kOutOfRange; for a stored record every decode
// failure means the same thing: the value is not one faultline wrote.
Status AsDataLoss(const Status& status) {
  if (status.ok()) return status;
  return DataLossError(std::string("idempotency record does not decode: ") +
                       std::string(status.message()));
}

Status DecodeFields(ByteReader& reader, Record* record) {
  uint8_t version = 0;
  uint8_t state = 0;
  FL_RETURN_IF_ERROR(reader.U8(&version));
  if (version != kVersion) return DataLossError("unknown record version");
  FL_RETURN_IF_ERROR(reader.U8(&state));
  if (state < 1 || state > 3) return DataLossError("unknown record state");
  record->state = static_cast<RecordState>(state);
  std::span<const uint8_t> fp;
  FL_RETURN_IF_ERROR(reader.Raw(record->fingerprint.size(), &fp));
  std::copy(fp.begin(), fp.end(), record->fingerprint.begin());
  FL_RETURN_IF_ERROR(reader.U64(&record->attempt));
  if (record->attempt == 0) return DataLossError("attempt 0");
  int64_t lease_ns = 0;
  int64_t expires_ns = 0;
  FL_RETURN_IF_ERROR(reader.I64(&lease_ns));
  FL_RETURN_IF_ERROR(reader.I64(&expires_ns));
  record->lease_until = WallTime::FromNanos(lease_ns);
  record->expires_at = WallTime::FromNanos(expires_ns);
  // Lengths are bounded by the value itself; the limits on what may be written are the
  // IdempotencyKeys options', checked before encoding.
  FL_RETURN_IF_ERROR(reader.Bytes(&record->recovery_point, reader.remaining()));
  FL_RETURN_IF_ERROR(reader.Bytes(&record->response, reader.remaining()));
  return Status::Ok();
}

}  // namespace

std::string EncodeRecord(const Record& record) {
  FL_ASSERT(record.attempt >= 1);
  std::vector<uint8_t> out;
  out.reserve(64 + record.recovery_point.size() + record.response.size());
  ByteWriter writer(&out);
  writer.U8(kVersion);
  writer.U8(static_cast<uint8_t>(record.state));
  writer.Raw(std::span<const uint8_t>(record.fingerprint));
  writer.U64(record.attempt);
  writer.I64(record.lease_until.nanos());
  writer.I64(record.expires_at.nanos());
  writer.Bytes(record.recovery_point);
  writer.Bytes(record.response);
  writer.U32(Crc32c(out));
  return std::string(out.begin(), out.end());
}

Result<Record> DecodeRecord(std::string_view value) {
  if (value.size() < 4) return DataLossError("idempotency record does not decode: too short");
  const std::span<const uint8_t> bytes = AsBytes(value);
  const std::span<const uint8_t> body = bytes.first(bytes.size() - 4);
  ByteReader crc_reader(bytes.last(4));
  uint32_t crc = 0;
  FL_RETURN_IF_ERROR(crc_reader.U32(&crc));
  if (crc != Crc32c(body)) return DataLossError("idempotency record does not decode: bad CRC");
  ByteReader reader(body);
  Record record;
  FL_RETURN_IF_ERROR(AsDataLoss(DecodeFields(reader, &record)));
  if (!reader.empty()) return DataLossError("idempotency record does not decode: trailing bytes");
  return record;
}

std::string OrderedTime(WallTime t) {
  const uint64_t u = static_cast<uint64_t>(t.nanos()) ^ (uint64_t{1} << 63);
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(u >> (8 * (7 - i)));
  return out;
}

Result<WallTime> ParseOrderedTime(std::string_view bytes) {
  if (bytes.size() < 8) return DataLossError("expiry index key too short");
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<uint8_t>(bytes[i]);
  return WallTime::FromNanos(static_cast<int64_t>(u ^ (uint64_t{1} << 63)));
}

Status CheckName(std::string_view what, std::string_view s, size_t max, bool printable_only) {
  if (s.empty()) return InvalidArgumentError(std::string(what) + " is empty");
  if (s.size() > max) {
    return InvalidArgumentError(std::string(what) + " is " + std::to_string(s.size()) +
                                " bytes, over the limit of " + std::to_string(max));
  }
  if (printable_only) {
    for (const char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u > 0x7e) {
        return InvalidArgumentError(std::string(what) +
                                    " has a byte outside printable ASCII 0x20..0x7E");
      }
    }
  }
  return Status::Ok();
}

}  // namespace faultline::idempotency::internal
