// File: faultline/core/random.h
//
// Deterministic randomness. Rng is xoshiro256** (Blackman & Vigna) seeded through splitmix64, with
// its own integer distributions so that a seed gives the same numbers on every standard library
// (std::*_distribution does not). Probabilities are integer Ratios; nothing here touches floating
// point except Exponential(), which uses only IEEE-exact operations (+ - * /) in a fixed order.
//
// One independent stream per subsystem: Rng(seed, stream) mixes the stream id into the seed, so the
// network's draws never shift the workload's.
//
// Not thread-safe: one Rng per thread or per simulated subsystem.
#pragma once

#include <cstdint>

#include "faultline/core/assert.h"
#include "faultline/core/time.h"

namespace faultline {

// splitmix64 step: used for seeding and as a cheap, well-mixed 64-bit hash.
constexpr uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Mixes `value` into a rolling 64-bit hash. Order-sensitive; used for determinism hashes.
constexpr uint64_t HashMix(uint64_t hash, uint64_t value) {
  uint64_t s = hash ^ (value + 0x9e3779b97f4a7c15ULL + (hash << 6) + (hash >> 2));
  return SplitMix64(s);
}

// A probability as an exact fraction numerator/denominator, 0 <= numerator <= denominator.
struct Ratio {
  uint64_t numerator = 0;
  uint64_t denominator = 1;
  static constexpr Ratio Zero() { return {0, 1}; }
  static constexpr Ratio Percent(uint64_t p) { return {p, 100}; }
  static constexpr Ratio PerMille(uint64_t p) { return {p, 1000}; }
  constexpr bool valid() const { return denominator > 0 && numerator <= denominator; }
  constexpr bool is_zero() const { return numerator == 0; }
};

class Rng {
 public:
  // Seeds from (seed, stream): distinct streams of one seed are independent.
  explicit Rng(uint64_t seed, uint64_t stream = 0);

  // The raw 64-bit output.
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    if (hash_ != nullptr) *hash_ = HashMix(*hash_, result);
    return result;
  }

  // Uniform in [0, n). n must be > 0. Lemire's nearly-divisionless method, unbiased.
  uint64_t Uniform(uint64_t n) {
    FL_ASSERT(n > 0);
    UInt128 m = static_cast<UInt128>(Next()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<UInt128>(Next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  // Uniform in [lo, hi] inclusive. lo <= hi.
  int64_t Range(int64_t lo, int64_t hi) {
    FL_ASSERT(lo <= hi);
    const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
    if (span == UINT64_MAX) return static_cast<int64_t>(Next());
    return static_cast<int64_t>(static_cast<uint64_t>(lo) + Uniform(span + 1));
  }

  Duration Range(Duration lo, Duration hi) { return Duration::Nanos(Range(lo.nanos(), hi.nanos())); }

  // True with probability ratio. A zero ratio draws nothing, so disabling a fault does not shift
  // the stream of later draws.
  bool Chance(Ratio ratio) {
    FL_ASSERT(ratio.valid());
    if (ratio.numerator == 0) return false;
    if (ratio.numerator == ratio.denominator) return true;
    return Uniform(ratio.denominator) < ratio.numerator;
  }

  // Exponentially distributed with the given mean, truncated at 20 means (so a single draw never
  // stalls a simulation for hours).
  Duration Exponential(Duration mean);

  // Fisher-Yates shuffle of [first, first+n).
  template <typename T>
  void Shuffle(T* first, uint64_t n) {
    for (uint64_t i = n; i > 1; --i) {
      const uint64_t j = Uniform(i);
      T tmp = first[i - 1];
      first[i - 1] = first[j];
      first[j] = tmp;
    }
  }

  // Every draw from now on is mixed into *hash (nullptr stops it). The simulator points all its
  // streams at the world's determinism hash.
  void set_hash_sink(uint64_t* hash) { hash_ = hash; }

 private:
  static constexpr uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  uint64_t* hash_ = nullptr;
};

// Natural log computed with IEEE-exact operations only, so it is bit-identical on every platform
// (unlike std::log, whose last bit depends on the libm). x must be > 0 and finite.
// Accuracy ~1e-12.
double DeterministicLog(double x);

}  // namespace faultline
