// File: faultline/resilience/backoff.h
//
// Exponential backoff with jitter (AWS, "Exponential Backoff and Jitter"; gRPC A6).
//
// For retry number n (0-based: n = 0 is the delay before the first retry) the ceiling is
//
//   ceiling(n) = min(delay_max, delay_initial · multiplier^n)
//
// and the delay is drawn from it:
//   kNone          ceiling(n)
//   kFull          U[0, ceiling(n)]                                  (AWS "full", gRPC A6)
//   kEqual         ceiling(n)/2 + U[0, ceiling(n) - ceiling(n)/2]     (AWS "equal")
//   kDecorrelated  U[delay_initial, min(delay_max, 3 · previous)]     (AWS "decorrelated")
//
// The cap is applied BEFORE the jitter, never after. Resilience4j's exponential-random interval
// jitters first and caps second, so once the uncapped value passes the cap every draw lands on the
// cap and the jitter vanishes exactly when many clients retry in lockstep. Here a delay at the cap
// is still spread over [0, delay_max] (full), [delay_max/2, delay_max] (equal) or
// [delay_initial, delay_max] (decorrelated; AWS writes min(cap, U(base, 3·prev)), which piles
// about two thirds of the draws onto the cap once prev reaches it, so we clamp the range instead).
//
// Integer nanoseconds throughout: the ceilings for n < 64 are precomputed at construction; beyond
// that a retry index at or past the first capped one returns the cap without computing any power
// ("stop doubling once at the cap"), so n = 1000 or n = 2^63 neither overflows nor costs more.
// Powers are computed with IEEE multiplications only (bit-identical on every platform), and the
// uniform draw is a 64x64->128 multiply-high of caller-supplied random bits (bias < span / 2^64),
// so the same random bits give the same delay everywhere: under the simulator, pass the node's Rng.
//
// Thread safety: Backoff is immutable after Create(); Delay() and Ceiling() are const, lock-free,
// allocation-free and may be called from any thread. Randomness is the caller's: pass an Rng
// (single-threaded) or a JitterSource (a lock-free shared stream for production threads).
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

#include "faultline/core/random.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"

namespace faultline {

enum class Jitter : uint8_t { kNone, kFull, kEqual, kDecorrelated };

// "none", "full", "equal", "decorrelated".
std::string_view JitterName(Jitter jitter);

struct BackoffOptions {
  // The ceiling before the first retry (gRPC initialBackoff, AWS base). Must be > 0.
  Duration delay_initial = Duration::Millis(25);
  // The cap (gRPC maxBackoff, AWS cap). Must be >= delay_initial. Envoy's default is 10 × base.
  Duration delay_max = Duration::Millis(250);
  // Growth per retry (gRPC backoffMultiplier). Must be finite and >= 1; 1 means constant.
  double multiplier = 2.0;
  Jitter jitter = Jitter::kFull;

  Status Validate() const;
};

// Uniform in [lo, hi] (lo <= hi, both >= 0) from 64 random bits, by multiply-high.
constexpr Duration UniformDuration(Duration lo, Duration hi, uint64_t random_bits) {
  const uint64_t span = static_cast<uint64_t>(hi.nanos() - lo.nanos());  // < 2^63: no overflow
  const uint64_t offset = static_cast<uint64_t>((static_cast<UInt128>(random_bits) * (span + 1)) >> 64);
  return lo + Duration::Nanos(static_cast<int64_t>(offset));
}

// A lock-free, thread-safe stream of random bits: splitmix64 over an atomic counter advanced by
// fetch_add, so concurrent callers never share a draw and never contend on more than one cache
// line. Deterministic only in single-threaded use; under the simulator pass the node's Rng instead.
class JitterSource {
 public:
  explicit JitterSource(uint64_t seed) : state_(seed) {}
  JitterSource(const JitterSource&) = delete;
  JitterSource& operator=(const JitterSource&) = delete;

  uint64_t Next() {
    uint64_t z = state_.fetch_add(kGolden, std::memory_order_relaxed) + kGolden;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  static constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
  std::atomic<uint64_t> state_;
};

class Backoff {
 public:
  // Fails with kInvalidArgument naming the offending field.
  static Result<Backoff> Create(const BackoffOptions& options);

  // min(delay_max, delay_initial · multiplier^retry): the range the jitter draws from.
  Duration Ceiling(uint64_t retry) const {
    if (retry < kTableSize) return Duration::Nanos(ceiling_ns_[retry]);
    if (retry >= capped_from_) return options_.delay_max;
    return CeilingSlow(retry);
  }

  // The delay before retry number `retry` (0-based). `previous` is the delay this function
  // returned for the previous retry (ignored except by kDecorrelated; Zero() before the first).
  // `random_bits`: 64 uniformly random bits. Result in [0, delay_max].
  Duration Delay(uint64_t retry, Duration previous, uint64_t random_bits) const {
    switch (options_.jitter) {
      case Jitter::kNone:
        return Ceiling(retry);
      case Jitter::kFull:
        return UniformDuration(Duration::Zero(), Ceiling(retry), random_bits);
      case Jitter::kEqual: {
        const Duration ceiling = Ceiling(retry);
        const Duration half = ceiling / 2;
        return half + UniformDuration(Duration::Zero(), ceiling - half, random_bits);
      }
      case Jitter::kDecorrelated: {
        const Duration base = options_.delay_initial;
        const Duration prev = previous > base ? previous : base;
        const Duration triple = prev * 3;  // saturating
        const Duration hi = triple < options_.delay_max ? triple : options_.delay_max;
        return UniformDuration(base, hi, random_bits);
      }
    }
    FL_UNREACHABLE();
  }
  Duration Delay(uint64_t retry, Duration previous, Rng& rng) const {
    return Delay(retry, previous, rng.Next());
  }
  Duration Delay(uint64_t retry, Duration previous, JitterSource& random) const {
    return Delay(retry, previous, random.Next());
  }

  const BackoffOptions& options() const { return options_; }
  // The first retry index whose ceiling is delay_max (UINT64_MAX when never, multiplier 1).
  uint64_t capped_from() const { return capped_from_; }

 private:
  static constexpr uint64_t kTableSize = 64;
  explicit Backoff(const BackoffOptions& options);
  Duration CeilingSlow(uint64_t retry) const;

  BackoffOptions options_;
  uint64_t capped_from_ = UINT64_MAX;
  int64_t ceiling_ns_[kTableSize] = {};
};

}  // namespace faultline
