// Unit tests for faultline/core/random.h: the deterministic Rng every simulation draws from.
// Determinism (same seed -> same numbers on every platform) is the property the simulator rests on,
// so the first outputs are pinned as golden values.
#include "faultline/core/random.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

namespace faultline {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

TEST(RngTest, GoldenOutputsForSeedOneStreamZero) {
  // Pinned once from this implementation (xoshiro256** seeded via splitmix64 mixed with the
  // stream). Any change to seeding, the generator or Uniform() changes every recorded seed's
  // replay, so it must show up here as a deliberate golden update.
  Rng rng(1, 0);
  EXPECT_EQ(rng.Next(), 0xef75d62a19ba94edULL);
  EXPECT_EQ(rng.Next(), 0x8e9490536375f270ULL);
  EXPECT_EQ(rng.Next(), 0xc05630b1c614195dULL);
  EXPECT_EQ(rng.Next(), 0x66daa2d5136a8f29ULL);
  Rng uniform(1, 0);
  const std::array<uint64_t, 8> expected = {6, 3, 5, 2, 0, 3, 5, 4};
  for (uint64_t e : expected) EXPECT_EQ(uniform.Uniform(7), e);
}

TEST(RngTest, SameSeedAndStreamGiveTheSameSequence) {
  // Replaying a seed must reproduce every draw.
  Rng a(12345, 7);
  Rng b(12345, 7);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(a.Next(), b.Next()) << "draw " << i;
}

TEST(RngTest, DifferentStreamsAndSeedsDiffer) {
  // Streams must be independent: the network's draws must not mirror the workload's, and
  // stream k of seed s must not equal stream 0 of seed s+k (a naive seed+stream mix would).
  auto first = [](uint64_t seed, uint64_t stream) {
    Rng r(seed, stream);
    std::vector<uint64_t> v;
    for (int i = 0; i < 16; ++i) v.push_back(r.Next());
    return v;
  };
  const auto base = first(1, 0);
  EXPECT_NE(base, first(1, 1));
  EXPECT_NE(base, first(2, 0));
  EXPECT_NE(first(1, 1), first(2, 0));
  // Many streams of one seed start in distinct places.
  std::set<uint64_t> starts;
  for (uint64_t s = 0; s < 1000; ++s) starts.insert(Rng(99, s).Next());
  EXPECT_EQ(starts.size(), 1000u);
}

TEST(RngTest, HashSinkFoldsEveryDraw) {
  // The world's determinism hash relies on every draw being mixed in, in order; unhooking stops it.
  uint64_t hash = 0;
  Rng a(5, 0);
  a.set_hash_sink(&hash);
  const uint64_t x = a.Next();
  const uint64_t y = a.Next();
  EXPECT_EQ(hash, HashMix(HashMix(0, x), y));
  a.set_hash_sink(nullptr);
  (void)a.Next();
  EXPECT_EQ(hash, HashMix(HashMix(0, x), y));
}

TEST(RngTest, UniformStaysInRangeAndIsRoughlyUnbiased) {
  // Uniform(7): every value in [0,7) and a chi-square statistic far below what a biased or
  // off-by-one generator would produce (6 degrees of freedom: 99.99% quantile is ~27.9).
  Rng rng(2024, 3);
  constexpr int kBuckets = 7;
  constexpr int kDraws = 70'000;
  std::array<int, kBuckets> counts{};
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t v = rng.Uniform(kBuckets);
    ASSERT_LT(v, uint64_t{kBuckets});
    ++counts[v];
  }
  const double expected = static_cast<double>(kDraws) / kBuckets;
  double chi2 = 0;
  for (int c : counts) chi2 += (c - expected) * (c - expected) / expected;
  EXPECT_LT(chi2, 30.0);
  EXPECT_EQ(rng.Uniform(1), 0u);
}

TEST(RngTest, UniformRejectionRemovesBiasForLargeN) {
  // For n = 3·2^62 a multiply-shift without Lemire's rejection step maps 4 inputs onto 3 outputs,
  // so values ≡ 0 (mod 3) would come up half the time instead of a third. This catches a broken
  // rejection threshold, which a small-n chi-square cannot see.
  Rng rng(77, 0);
  const uint64_t n = 3ULL << 62;
  constexpr int kDraws = 30'000;
  int zero_mod3 = 0;
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t v = rng.Uniform(n);
    ASSERT_LT(v, n);
    zero_mod3 += v % 3 == 0 ? 1 : 0;
  }
  EXPECT_NEAR(static_cast<double>(zero_mod3) / kDraws, 1.0 / 3, 0.02);
}

TEST(RngTest, RangeIsInclusiveIncludingExtremes) {
  // Range(lo, hi) must hit both endpoints and nothing outside, including the full int64 span
  // where hi - lo + 1 overflows.
  Rng rng(8, 8);
  std::set<int64_t> seen;
  for (int i = 0; i < 2000; ++i) {
    const int64_t v = rng.Range(-3, 3);
    ASSERT_GE(v, -3);
    ASSERT_LE(v, 3);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 7u);

  bool neg = false, pos = false;
  for (int i = 0; i < 200; ++i) {
    const int64_t v = rng.Range(kMin, kMax);
    neg |= v < 0;
    pos |= v > 0;
  }
  EXPECT_TRUE(neg && pos);

  std::set<int64_t> low_edge, high_edge;
  for (int i = 0; i < 200; ++i) {
    low_edge.insert(rng.Range(kMin, kMin + 1));
    high_edge.insert(rng.Range(kMax - 1, kMax));
  }
  EXPECT_EQ(low_edge, (std::set<int64_t>{kMin, kMin + 1}));
  EXPECT_EQ(high_edge, (std::set<int64_t>{kMax - 1, kMax}));
  EXPECT_EQ(rng.Range(kMax, kMax), kMax);
  EXPECT_EQ(rng.Range(kMin, kMin), kMin);
  EXPECT_EQ(rng.Range(Duration::Millis(5), Duration::Millis(5)), Duration::Millis(5));
  const Duration d = rng.Range(Duration::Millis(1), Duration::Millis(2));
  EXPECT_GE(d, Duration::Millis(1));
  EXPECT_LE(d, Duration::Millis(2));
}

TEST(RngTest, ChanceZeroAndCertainDrawNothing) {
  // Disabling a fault (ratio 0) must not shift later draws; otherwise turning a fault off would
  // change the whole run of a seed. Certain events (n/n) likewise need no draw and are always true.
  Rng a(3, 1);
  Rng b(3, 1);
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(a.Chance(Ratio::Zero()));
    EXPECT_FALSE(a.Chance({0, 7}));
    EXPECT_TRUE(a.Chance({1, 1}));
    EXPECT_TRUE(a.Chance({9, 9}));
  }
  EXPECT_EQ(a.Next(), b.Next());
}

TEST(RngTest, ChanceFrequencyMatchesRatio) {
  // Chance(p) must come up about p of the time (loose bound: 10'000 draws, 3/10).
  Rng rng(4, 4);
  int hits = 0;
  for (int i = 0; i < 10'000; ++i) hits += rng.Chance({3, 10}) ? 1 : 0;
  EXPECT_NEAR(hits / 10'000.0, 0.3, 0.03);
}

TEST(RngTest, ExponentialMeanIsRoughlyRightAndBounded) {
  // Network latencies and nemesis gaps use Exponential(mean); a wrong mean silently skews every
  // simulated run. 100k draws: the sample mean is within 2%, no draw exceeds 20 means.
  Rng rng(6, 2);
  const Duration mean = Duration::Millis(1);
  constexpr int kDraws = 100'000;
  double sum = 0;
  for (int i = 0; i < kDraws; ++i) {
    const Duration d = rng.Exponential(mean);
    ASSERT_GE(d, Duration::Zero());
    ASSERT_LE(d, mean * 20);
    sum += static_cast<double>(d.nanos());
  }
  EXPECT_NEAR(sum / kDraws / static_cast<double>(mean.nanos()), 1.0, 0.02);
  EXPECT_EQ(rng.Exponential(Duration::Zero()), Duration::Zero());
}

TEST(RngTest, ExponentialIsTruncatedAtTwentyMeans) {
  // Seed 1135008468's first raw draw maps to u ≈ 1.02e-9, i.e. -ln(u) ≈ 20.7 > 20 (found by an
  // offline search). The draw must be cut to exactly 20 means so one unlucky draw cannot stall a
  // simulation for hours.
  Rng probe(1135008468, 0);
  ASSERT_LT(probe.Next(), uint64_t{1} << 35) << "generator changed: search for a new seed";
  Rng rng(1135008468, 0);
  EXPECT_EQ(rng.Exponential(Duration::Millis(3)), Duration::Millis(60));
}

TEST(RngTest, ExponentialOfHugeMeanSaturates) {
  // Regression: k·mean was converted from double to int64 unchecked, which is UB (and garbage)
  // once it exceeds INT64_MAX, e.g. for an "infinite" mean. It must saturate to Infinite.
  Rng rng(1135008468, 0);  // first draw is a 20-mean draw (see above)
  EXPECT_TRUE(rng.Exponential(Duration::Infinite()).is_infinite());
  Rng other(6, 2);
  for (int i = 0; i < 100; ++i) {
    const Duration d = other.Exponential(Duration::Nanos(kMax / 2));
    EXPECT_GE(d, Duration::Zero());
  }
}

TEST(RngTest, DeterministicLogMatchesStdLog) {
  // DeterministicLog replaces std::log for bit-reproducibility; it must still be a logarithm:
  // relative error below 1e-9 (the header promises ~1e-12) from subnormals to near DBL_MAX.
  auto check = [](double x) {
    const double want = std::log(x);
    const double got = DeterministicLog(x);
    const double tolerance = 1e-12 * std::fabs(want) + 1e-15;
    ASSERT_LE(std::fabs(got - want), tolerance) << "x=" << x;
    ASSERT_LT(std::fabs(got - want), 1e-9 * std::fabs(want) + 1e-15) << "x=" << x;
  };
  for (double x = 1e-310; x < 1e300; x *= 1.37) check(x);
  Rng rng(10, 0);
  for (int i = 0; i < 100'000; ++i) {
    check(static_cast<double>((rng.Next() >> 11) + 1) * (1.0 / 9007199254740992.0));
  }
  check(1.0);
  check(std::nextafter(1.0, 2.0));
  check(std::nextafter(1.0, 0.0));
  check(std::numeric_limits<double>::max());
  check(std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(DeterministicLog(1.0), 0.0);
}

TEST(RngDeathTest, DeterministicLogRejectsNonFiniteAndNonPositive) {
  // Regression: DeterministicLog(+inf) looped forever (halving inf never gets below sqrt 2). A
  // precondition violation must fail loudly instead of hanging the simulation.
  EXPECT_DEATH((void)DeterministicLog(std::numeric_limits<double>::infinity()), "FL_ASSERT");
  EXPECT_DEATH((void)DeterministicLog(0.0), "FL_ASSERT");
  EXPECT_DEATH((void)DeterministicLog(-1.0), "FL_ASSERT");
}

TEST(RngTest, ShuffleIsAPermutationAndSeedDependent) {
  // Grudge shapes shuffle node order; a shuffle that loses or duplicates an element would build
  // a wrong partition.
  std::vector<int> v(20);
  for (int i = 0; i < 20; ++i) v[i] = i;
  Rng rng(11, 0);
  std::vector<int> a = v;
  rng.Shuffle(a.data(), a.size());
  EXPECT_EQ(std::multiset<int>(a.begin(), a.end()), std::multiset<int>(v.begin(), v.end()));
  EXPECT_NE(a, v);
  std::vector<int> b = v;
  Rng same(11, 0);
  same.Shuffle(b.data(), b.size());
  EXPECT_EQ(a, b);
}

RC_GTEST_PROP(RngProperty, RangeStaysWithinArbitraryBounds, (int64_t x, int64_t y, uint64_t seed)) {
  // For any bounds (including spans that overflow naive arithmetic) Range stays inside.
  const int64_t lo = std::min(x, y);
  const int64_t hi = std::max(x, y);
  Rng rng(seed, 0);
  for (int i = 0; i < 20; ++i) {
    const int64_t v = rng.Range(lo, hi);
    RC_ASSERT(v >= lo);
    RC_ASSERT(v <= hi);
  }
}

RC_GTEST_PROP(RngProperty, UniformStaysBelowN, (uint64_t n_raw, uint64_t seed)) {
  // Uniform(n) < n for every n > 0, including n close to 2^64.
  const uint64_t n = n_raw == 0 ? 1 : n_raw;
  Rng rng(seed, 1);
  for (int i = 0; i < 20; ++i) RC_ASSERT(rng.Uniform(n) < n);
}

}  // namespace
}  // namespace faultline
