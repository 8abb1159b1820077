// File: faultline/resilience/deadline.h
//
// Deadlines and how they travel between processes.
//
// A Deadline is an instant on THIS node's monotonic clock (MonoTime). It never crosses the wire as
// an instant: two nodes' monotonic clocks share no epoch, and wall clocks disagree by their offset.
// What travels is the REMAINING time, measured on the sender's clock just before sending; the
// receiver adds it to its own Now() (gRPC's grpc-timeout, faultline's Rpc). The time the message
// spent in flight is therefore granted twice (a bias toward the callee working a little too long,
// never toward giving up early), which is the standard trade-off; absolute deadlines would need
// synchronised clocks and a kill switch (userver's X-Request-Deadline), which this module avoids.
//
// The receiver must not trust the sender's number blindly: a buggy or hostile peer could grant a
// year. DeadlineCodec bounds every decoded remaining time by `remaining_max`.
//
// Two encodings of the remaining time:
//   - binary: an unsigned LEB128 varint of the remaining nanoseconds (1..9 bytes; negative
//     remaining time encodes as 0, an infinite deadline as INT64_MAX). Rejects truncated,
//     overlong (non-minimal or > 9 bytes) and > INT64_MAX encodings.
//   - text: gRPC's grpc-timeout header, "<1..8 ASCII digits><unit>", unit one of H M S m u n
//     (hours, minutes, seconds, milli-, micro-, nanoseconds). Formatting chooses the finest unit
//     whose value fits in 8 digits and rounds DOWN (grpc-go rounds up), so the callee's deadline is
//     never later than the caller's. Parsing is strict apart from surrounding spaces/tabs (HTTP
//     optional whitespace): no sign, no inner space, no more than 8 digits.
//
// Clock reads: none. Every Deadline operation takes the `now` its caller read.
//
// Thread safety: Deadline is a value type; DeadlineCodec is immutable after Create(). All of it is
// allocation-free and may be used from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/core/time.h"

namespace faultline {

class Deadline {
 public:
  // An infinite deadline: never expires, Remaining() is Duration::Infinite().
  constexpr Deadline() = default;
  static constexpr Deadline Infinite() { return Deadline(); }
  static constexpr Deadline At(MonoTime at) { return Deadline(at); }
  // now + remaining (saturating). A negative remaining gives an already-expired deadline at now;
  // Duration::Infinite() gives Infinite().
  static constexpr Deadline FromRemaining(MonoTime now, Duration remaining) {
    if (remaining.is_infinite()) return Infinite();
    if (remaining < Duration::Zero()) return Deadline(now);
    return Deadline(now + remaining);
  }

  constexpr MonoTime at() const { return at_; }
  constexpr bool is_infinite() const { return at_ == MonoTime::Max(); }

  // Time left at `now`, never negative; Duration::Infinite() for an infinite deadline.
  constexpr Duration Remaining(MonoTime now) const {
    if (is_infinite()) return Duration::Infinite();
    const Duration left = at_ - now;
    return left > Duration::Zero() ? left : Duration::Zero();
  }
  // True once now >= at().
  constexpr bool Expired(MonoTime now) const { return !is_infinite() && now >= at_; }

  // The earlier of two deadlines (an inner call never gets more time than its caller).
  constexpr Deadline Earliest(Deadline other) const { return other.at_ < at_ ? other : *this; }

  constexpr auto operator<=>(const Deadline&) const = default;

 private:
  constexpr explicit Deadline(MonoTime at) : at_(at) {}
  MonoTime at_ = MonoTime::Max();
};

// Longest varint encoding of a remaining time (63 bits in 7-bit groups).
inline constexpr size_t kRemainingVarintBytesMax = 9;
// Longest grpc-timeout value: 8 digits and a unit.
inline constexpr size_t kGrpcTimeoutDigitsMax = 8;

// A formatted grpc-timeout value, stored inline (no allocation).
struct GrpcTimeoutText {
  char data[kGrpcTimeoutDigitsMax + 1] = {};
  uint8_t size = 0;
  std::string_view view() const { return std::string_view(data, size); }
};

// Writes the remaining time (clamped to [0, INT64_MAX] ns) as a varint into `out`; returns the
// number of bytes written (1..9).
size_t EncodeRemainingVarint(Duration remaining, std::span<uint8_t, kRemainingVarintBytesMax> out);
// Reads a varint written by EncodeRemainingVarint from the front of `in`. On success returns the
// remaining time (unbounded; DeadlineCodec applies the bound) and sets *consumed to its length.
// kInvalidArgument for truncated, overlong, non-minimal or out-of-range input.
Result<Duration> DecodeRemainingVarint(std::span<const uint8_t> in, size_t* consumed);

// grpc-timeout formatting (remaining <= 0 formats as "0n") and parsing (see the file comment).
// Parsing saturates at Duration::Infinite() (99999999H is about 11,400 years).
GrpcTimeoutText FormatGrpcTimeout(Duration remaining);
Result<Duration> ParseGrpcTimeout(std::string_view text);

struct DeadlineCodecOptions {
  // The most remaining time a decoded deadline may grant, whatever the peer sent. Must be > 0.
  Duration remaining_max = Duration::Seconds(300);
  Status Validate() const;
};

// Converts between local deadlines and remaining-time encodings, bounding what peers may grant.
class DeadlineCodec {
 public:
  static Result<DeadlineCodec> Create(const DeadlineCodecOptions& options);

  // The remaining time to send for `deadline` at `now` (an infinite deadline sends remaining_max).
  Duration RemainingToSend(Deadline deadline, MonoTime now) const;
  // The local deadline for a received remaining time: now + min(remaining, remaining_max).
  Deadline FromReceived(Duration remaining, MonoTime now) const;

  size_t EncodeVarint(Deadline deadline, MonoTime now,
                      std::span<uint8_t, kRemainingVarintBytesMax> out) const {
    return EncodeRemainingVarint(RemainingToSend(deadline, now), out);
  }
  Result<Deadline> DecodeVarint(std::span<const uint8_t> in, MonoTime now, size_t* consumed) const;

  GrpcTimeoutText FormatHeader(Deadline deadline, MonoTime now) const {
    return FormatGrpcTimeout(RemainingToSend(deadline, now));
  }
  Result<Deadline> ParseHeader(std::string_view text, MonoTime now) const;

  const DeadlineCodecOptions& options() const { return options_; }

 private:
  explicit DeadlineCodec(const DeadlineCodecOptions& options) : options_(options) {}
  DeadlineCodecOptions options_;
};

}  // namespace faultline
