#include "src/saga/saga_record.h"

#include <span>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/core/crc32c.h"

namespace faultline::saga::internal {
namespace {

constexpr uint8_t kVersion = 1;
constexpr uint8_t kFlagStarted = 1;
constexpr uint8_t kFlagParked = 2;
// Fields are bounded by the value they came in; the write-side limits are SagaOptions'.
constexpr size_t kFieldMax = size_t{1} << 30;

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Status AsDataLoss(const Status& status, const char* what) {
  if (status.ok() || status.code() == StatusCode::kDataLoss) return status;
  return DataLossError(std::string(what) + " does not decode: " + std::string(status.message()));
}

Status DecodeFields(ByteReader& reader, SagaState* state) {
  uint8_t version = 0;
  uint8_t phase = 0;
  uint8_t flags = 0;
  FL_RETURN_IF_ERROR(reader.U8(&version));
  if (version != kVersion) return DataLossError("saga row has unknown version");
  FL_RETURN_IF_ERROR(reader.U8(&phase));
  if (phase < 1 || phase > 4) return DataLossError("saga row has unknown phase");
  state->phase = static_cast<Phase>(phase);
  FL_RETURN_IF_ERROR(reader.U8(&flags));
  if ((flags & ~(kFlagStarted | kFlagParked)) != 0) return DataLossError("saga row has bad flags");
  state->started = (flags & kFlagStarted) != 0;
  state->parked = (flags & kFlagParked) != 0;
  FL_RETURN_IF_ERROR(reader.Bytes(&state->type, kFieldMax));
  FL_RETURN_IF_ERROR(reader.U32(&state->steps));
  FL_RETURN_IF_ERROR(reader.U32(&state->cursor));
  FL_RETURN_IF_ERROR(reader.U32(&state->attempts));
  if (state->steps == 0 || state->cursor > state->steps) {
    return DataLossError("saga row has a cursor outside its steps");
  }
  int64_t started_ns = 0;
  int64_t retry_ns = 0;
  FL_RETURN_IF_ERROR(reader.I64(&started_ns));
  FL_RETURN_IF_ERROR(reader.I64(&retry_ns));
  state->started_at = WallTime::FromNanos(started_ns);
  state->retry_at = WallTime::FromNanos(retry_ns);
  FL_RETURN_IF_ERROR(reader.Bytes(&state->data, kFieldMax));
  FL_RETURN_IF_ERROR(reader.Bytes(&state->reason, kFieldMax));
  return Status::Ok();
}

// Splits off and checks the trailing CRC-32C.
Result<std::span<const uint8_t>> CheckedBody(std::string_view value, const char* what) {
  if (value.size() < 4) return DataLossError(std::string(what) + " does not decode: too short");
  const std::span<const uint8_t> bytes = AsBytes(value);
  const std::span<const uint8_t> body = bytes.first(bytes.size() - 4);
  ByteReader crc_reader(bytes.last(4));
  uint32_t crc = 0;
  FL_RETURN_IF_ERROR(crc_reader.U32(&crc));
  if (crc != Crc32c(body)) return DataLossError(std::string(what) + " does not decode: bad CRC");
  return body;
}

std::string Sealed(std::vector<uint8_t>& out) {
  ByteWriter writer(&out);
  writer.U32(Crc32c(out));
  return std::string(out.begin(), out.end());
}

}  // namespace

std::string EncodeState(const SagaState& state) {
  FL_ASSERT(state.steps >= 1 && state.cursor <= state.steps);
  std::vector<uint8_t> out;
  out.reserve(48 + state.type.size() + state.data.size() + state.reason.size());
  ByteWriter writer(&out);
  writer.U8(kVersion);
  writer.U8(static_cast<uint8_t>(state.phase));
  writer.U8(
      static_cast<uint8_t>((state.started ? kFlagStarted : 0) | (state.parked ? kFlagParked : 0)));
  writer.Bytes(state.type);
  writer.U32(state.steps);
  writer.U32(state.cursor);
  writer.U32(state.attempts);
  writer.I64(state.started_at.nanos());
  writer.I64(state.retry_at.nanos());
  writer.Bytes(state.data);
  writer.Bytes(state.reason);
  return Sealed(out);
}

Result<SagaState> DecodeState(std::string_view value) {
  FL_ASSIGN_OR_RETURN(std::span<const uint8_t> body, CheckedBody(value, "saga row"));
  ByteReader reader(body);
  SagaState state;
  FL_RETURN_IF_ERROR(AsDataLoss(DecodeFields(reader, &state), "saga row"));
  if (!reader.empty()) return DataLossError("saga row does not decode: trailing bytes");
  return state;
}

std::string EncodeRunning(WallTime started_at) {
  std::vector<uint8_t> out;
  ByteWriter writer(&out);
  writer.U8(kVersion);
  writer.I64(started_at.nanos());
  return std::string(out.begin(), out.end());
}

Result<WallTime> DecodeRunning(std::string_view value) {
  ByteReader reader(AsBytes(value));
  uint8_t version = 0;
  int64_t ns = 0;
  FL_RETURN_IF_ERROR(AsDataLoss(reader.U8(&version), "running-set entry"));
  if (version != kVersion || value.size() != 9) {
    return DataLossError("running-set entry does not decode");
  }
  FL_RETURN_IF_ERROR(reader.I64(&ns));
  return WallTime::FromNanos(ns);
}

std::string EncodeParked(const ParkedEntry& entry) {
  std::vector<uint8_t> out;
  ByteWriter writer(&out);
  writer.U8(kVersion);
  writer.I64(entry.started_at ? entry.started_at->nanos() : 0);
  writer.I64(entry.parked_at.nanos());
  writer.Bytes(entry.reason);
  return Sealed(out);
}

Result<ParkedEntry> DecodeParked(std::string_view value) {
  FL_ASSIGN_OR_RETURN(std::span<const uint8_t> body, CheckedBody(value, "parked entry"));
  ByteReader reader(body);
  uint8_t version = 0;
  int64_t started_ns = 0;
  int64_t parked_ns = 0;
  ParkedEntry entry;
  FL_RETURN_IF_ERROR(AsDataLoss(reader.U8(&version), "parked entry"));
  if (version != kVersion) return DataLossError("parked entry has unknown version");
  FL_RETURN_IF_ERROR(AsDataLoss(reader.I64(&started_ns), "parked entry"));
  FL_RETURN_IF_ERROR(AsDataLoss(reader.I64(&parked_ns), "parked entry"));
  FL_RETURN_IF_ERROR(AsDataLoss(reader.Bytes(&entry.reason, kFieldMax), "parked entry"));
  if (!reader.empty()) return DataLossError("parked entry does not decode: trailing bytes");
  if (started_ns != 0) entry.started_at = WallTime::FromNanos(started_ns);
  entry.parked_at = WallTime::FromNanos(parked_ns);
  return entry;
}

Status CheckPrintable(std::string_view what, std::string_view s, size_t max) {
  if (s.empty()) return InvalidArgumentError(std::string(what) + " is empty");
  if (s.size() > max) {
    return InvalidArgumentError(std::string(what) + " is " + std::to_string(s.size()) +
                                " bytes, over the limit of " + std::to_string(max));
  }
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) {
      return InvalidArgumentError(std::string(what) +
                                  " has a byte outside printable ASCII 0x20..0x7E");
    }
  }
  return Status::Ok();
}

}  // namespace faultline::saga::internal
