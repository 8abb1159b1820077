#include "faultline/core/random.h"

#include <limits>

namespace faultline {

Rng::Rng(uint64_t seed, uint64_t stream) {
  // Distinct streams start from splitmix states that differ in a well-mixed way, so stream k of
  // seed s and stream 0 of seed s+k are unrelated.
  uint64_t sm = seed;
  uint64_t stream_mix = stream;
  sm ^= SplitMix64(stream_mix);
  for (uint64_t& word : s_) word = SplitMix64(sm);
  // xoshiro's all-zero state is a fixed point; splitmix64 cannot produce four zeros, but assert it.
  FL_ASSERT((s_[0] | s_[1] | s_[2] | s_[3]) != 0);
}

double DeterministicLog(double x) {
  // Finite too: halving +inf never drops below sqrt(2), so the reduction loop would never end.
  FL_ASSERT(x > 0 && x <= std::numeric_limits<double>::max());
  // Reduce x = m * 2^e with m in [sqrt(1/2), sqrt(2)), using only exact scaling by 2.
  int e = 0;
  while (x >= 1.4142135623730951) {
    x *= 0.5;
    ++e;
  }
  while (x < 0.7071067811865476) {
    x *= 2.0;
    --e;
  }
  // ln(m) = 2 atanh(s) with s = (m-1)/(m+1), |s| < 0.1716: the series converges fast.
  const double s = (x - 1.0) / (x + 1.0);
  const double s2 = s * s;
  double term = s;
  double sum = 0.0;
  for (int k = 1; k <= 39; k += 2) {
    sum += term / static_cast<double>(k);
    term *= s2;
  }
  constexpr double kLn2 = 0.6931471805599453;
  return 2.0 * sum + static_cast<double>(e) * kLn2;
}

Duration Rng::Exponential(Duration mean) {
  FL_ASSERT(mean >= Duration::Zero());
  if (mean == Duration::Zero()) return mean;
  // u in (0, 1]: 53 random bits, never zero.
  const double u = static_cast<double>((Next() >> 11) + 1) * (1.0 / 9007199254740992.0);
  double k = -DeterministicLog(u);
  if (k > 20.0) k = 20.0;
  const double ns = k * static_cast<double>(mean.nanos());
  // A huge mean (e.g. Infinite) times k exceeds int64; converting that double would be UB.
  if (ns >= 9223372036854775808.0) return Duration::Infinite();
  return Duration::Nanos(static_cast<int64_t>(ns));
}

}  // namespace faultline
