#include "faultline/resilience/deadline.h"

#include "faultline/core/options.h"

namespace faultline {
namespace {

struct TimeoutUnit {
  char symbol;
  int64_t nanos;
};
// Finest first: formatting picks the first unit whose value fits in 8 digits.
constexpr TimeoutUnit kTimeoutUnits[] = {
    {'n', 1},
    {'u', 1'000},
    {'m', 1'000'000},
    {'S', 1'000'000'000},
    {'M', 60'000'000'000},
    {'H', 3'600'000'000'000},
};
constexpr int64_t kTimeoutValueMax = 99'999'999;

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

size_t EncodeRemainingVarint(Duration remaining, std::span<uint8_t, kRemainingVarintBytesMax> out) {
  uint64_t v = remaining > Duration::Zero() ? static_cast<uint64_t>(remaining.nanos()) : 0;
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  out[n++] = static_cast<uint8_t>(v);
  FL_ASSERT(n >= 1 && n <= kRemainingVarintBytesMax);  // v < 2^63 fits in 9 groups of 7 bits
  return n;
}

Result<Duration> DecodeRemainingVarint(std::span<const uint8_t> in, size_t* consumed) {
  uint64_t v = 0;
  for (size_t i = 0; i < kRemainingVarintBytesMax; ++i) {
    if (i >= in.size()) return InvalidArgumentError("remaining-time varint is truncated");
    const uint8_t byte = in[i];
    v |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      // A zero final group after the first byte means the encoder would have stopped earlier.
      if (i > 0 && byte == 0) return InvalidArgumentError("remaining-time varint is not minimal");
      FL_ASSERT(v <= static_cast<uint64_t>(INT64_MAX));  // 9 groups of 7 bits = 63 bits
      if (consumed != nullptr) *consumed = i + 1;
      return Duration::Nanos(static_cast<int64_t>(v));
    }
  }
  return InvalidArgumentError("remaining-time varint is longer than 9 bytes");
}

GrpcTimeoutText FormatGrpcTimeout(Duration remaining) {
  GrpcTimeoutText text;
  int64_t value = 0;
  char unit = 'n';
  if (remaining > Duration::Zero()) {
    for (const TimeoutUnit& u : kTimeoutUnits) {
      value = remaining.nanos() / u.nanos;  // rounds down: never grant more than we have
      unit = u.symbol;
      if (value <= kTimeoutValueMax) break;
    }
  }
  // INT64_MAX ns is 2,562,047 H, so some unit always fits.
  FL_ASSERT(value >= 0 && value <= kTimeoutValueMax);
  char digits[kGrpcTimeoutDigitsMax];
  size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  for (size_t i = 0; i < n; ++i) text.data[i] = digits[n - 1 - i];
  text.data[n] = unit;
  text.size = static_cast<uint8_t>(n + 1);
  return text;
}

Result<Duration> ParseGrpcTimeout(std::string_view text) {
  text = TrimOws(text);
  if (text.size() < 2) return InvalidArgumentError("grpc-timeout needs digits and a unit");
  const char unit = text.back();
  const std::string_view digits = text.substr(0, text.size() - 1);
  if (digits.size() > kGrpcTimeoutDigitsMax) {
    return InvalidArgumentError("grpc-timeout has more than 8 digits");
  }
  int64_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return InvalidArgumentError("grpc-timeout value is not all digits");
    value = value * 10 + (c - '0');  // <= 99,999,999: no overflow
  }
  for (const TimeoutUnit& u : kTimeoutUnits) {
    if (u.symbol == unit) return Duration::Nanos(value) * u.nanos;  // saturating
  }
  return InvalidArgumentError("grpc-timeout unit is not one of H M S m u n");
}

Status DeadlineCodecOptions::Validate() const {
  FL_CHECK_OPTION(remaining_max > Duration::Zero(), "remaining_max must be > 0");
  return Status::Ok();
}

Result<DeadlineCodec> DeadlineCodec::Create(const DeadlineCodecOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return DeadlineCodec(options);
}

Duration DeadlineCodec::RemainingToSend(Deadline deadline, MonoTime now) const {
  const Duration left = deadline.Remaining(now);
  return left < options_.remaining_max ? left : options_.remaining_max;
}

Deadline DeadlineCodec::FromReceived(Duration remaining, MonoTime now) const {
  if (remaining > options_.remaining_max) remaining = options_.remaining_max;
  return Deadline::FromRemaining(now, remaining);
}

Result<Deadline> DeadlineCodec::DecodeVarint(std::span<const uint8_t> in, MonoTime now,
                                             size_t* consumed) const {
  FL_ASSIGN_OR_RETURN(const Duration remaining, DecodeRemainingVarint(in, consumed));
  return FromReceived(remaining, now);
}

Result<Deadline> DeadlineCodec::ParseHeader(std::string_view text, MonoTime now) const {
  FL_ASSIGN_OR_RETURN(const Duration remaining, ParseGrpcTimeout(text));
  return FromReceived(remaining, now);
}

}  // namespace faultline
