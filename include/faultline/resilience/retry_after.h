// File: faultline/resilience/retry_after.h
//
// Server pushback: what a server said about when (or whether) to retry.
//
// HTTP Retry-After (RFC 9110 §10.2.3): either delay-seconds (1*DIGIT) or an HTTP-date. Accepted:
//   - delay-seconds: ASCII digits. Also a decimal fraction "1.5" (not in the RFC, sent by some
//     servers), rounded UP to whole seconds: a hint must never bring the client back EARLIER than
//     asked (redis-cell #56: a Retry-After rounded down sends the client back into an immediate
//     429). Any number of digits; values past the cap (and past int64) saturate to the cap.
//   - HTTP-date in all three RFC 9110 forms:
//       IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
//       RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT" (two-digit year: the century that puts it
//                    no more than 50 years after `now`, as RFC 9110 asks)
//       asctime      "Sun Nov  6 08:49:37 1994"
//     Day and month names are case-sensitive as in the RFC; the day of month must exist (Feb 29
//     only in leap years); seconds 00..60 (a leap second). The weekday is checked for syntax, not
//     against the date (like Go's net/http). The delay is date - now rounded UP to whole seconds;
//     a date in the past gives 0.
//   - Leading and trailing spaces/tabs (HTTP optional whitespace) are ignored; anything else
//     (signs, inner spaces, lowercase "gmt", trailing garbage, an empty value) is malformed.
//   Malformed values give Pushback::None() ("no hint": fall back to the client's own backoff),
//   never a crash and never an error the caller must handle.
//   The result is capped at delay_max (Envoy's 300 s), then optionally jittered to U[d, 1.5·d]
//   (Envoy's rate_limited_retry_back_off) with caller-supplied random bits. The jitter comes
//   after the cap, so hints at the cap still spread, and only ever lengthens the delay.
//
// gRPC pushback (A6, "grpc-retry-pushback-ms"): a non-negative integer of milliseconds is a delay;
// a negative or unparseable value means "do not retry" (Pushback::Stop()), as A6 specifies.
//
// Thread safety: everything here is stateless or immutable after Create(), allocation-free, and
// callable from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/core/time.h"

namespace faultline {

// A server's instruction about retrying.
struct Pushback {
  enum class Kind : uint8_t {
    kNone,   // no instruction: use the client's own backoff
    kDelay,  // do not retry before `delay` has passed
    kStop,   // do not retry at all (gRPC negative pushback)
  };
  Kind kind = Kind::kNone;
  Duration delay;

  static constexpr Pushback None() { return Pushback{}; }
  static constexpr Pushback Delay(Duration d) { return Pushback{Kind::kDelay, d}; }
  static constexpr Pushback Stop() { return Pushback{Kind::kStop, Duration::Zero()}; }
  bool is_none() const { return kind == Kind::kNone; }
  bool is_delay() const { return kind == Kind::kDelay; }
  bool is_stop() const { return kind == Kind::kStop; }
  friend bool operator==(const Pushback&, const Pushback&) = default;
};

// delay-seconds alone: the delay rounded up to whole seconds, saturating at Duration::Infinite();
// nullopt when malformed. No cap.
std::optional<Duration> ParseDelaySeconds(std::string_view value);
// An HTTP-date in any of the three forms, as a wall-clock instant; nullopt when malformed.
// `now` only resolves RFC 850's two-digit year.
std::optional<WallTime> ParseHttpDate(std::string_view value, WallTime now);
// grpc-retry-pushback-ms: Delay(ms) for a non-negative integer (saturating), Stop() otherwise.
Pushback ParseGrpcPushbackMs(std::string_view value);

struct RetryAfterOptions {
  // Longest delay a hint may impose. Must be > 0.
  Duration delay_max = Duration::Seconds(300);
  // Spread hints over U[d, 1.5·d] so that clients told the same date do not return together.
  bool jitter = false;
  // Accept the obsolete RFC 850 and asctime date forms (RFC 9110 says recipients MUST).
  bool obsolete_dates = true;
  Status Validate() const;
};

class RetryAfterParser {
 public:
  static Result<RetryAfterParser> Create(const RetryAfterOptions& options);

  // Parses a Retry-After header value received at wall time `now`. Returns Delay(d) with d in
  // [0, delay_max] (up to 1.5·delay_max with jitter), or None() when malformed. `random_bits`
  // (64 uniform bits) is used only with jitter.
  Pushback Parse(std::string_view value, WallTime now, uint64_t random_bits = 0) const;

  const RetryAfterOptions& options() const { return options_; }

 private:
  explicit RetryAfterParser(const RetryAfterOptions& options) : options_(options) {}
  RetryAfterOptions options_;
};

}  // namespace faultline
