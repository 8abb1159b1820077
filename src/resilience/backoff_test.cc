// Unit and property tests for faultline/resilience/backoff.h: exact ceilings, the three jitter
// formulas, the cap applied before the jitter (the "jitter vanishing at the cap" bug of
// Resilience4j's exponential-random interval), saturation at absurd retry counts, and thread
// safety of a shared Backoff + JitterSource.
#include "faultline/resilience/backoff.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace faultline {
namespace {

Backoff Make(Duration base, Duration cap, double multiplier, Jitter jitter) {
  BackoffOptions o;
  o.delay_initial = base;
  o.delay_max = cap;
  o.multiplier = multiplier;
  o.jitter = jitter;
  Result<Backoff> b = Backoff::Create(o);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return std::move(b).value();
}

std::string InvalidField(const BackoffOptions& o) {
  Result<Backoff> b = Backoff::Create(o);
  EXPECT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  return std::string(b.status().message());
}

TEST(BackoffOptionsTest, InvalidOptionsAreRejectedNamingTheField) {
  // Invalid options must never produce a Backoff; the error names the field so a config typo is
  // found from the message alone.
  BackoffOptions o;
  o.delay_initial = Duration::Zero();
  EXPECT_NE(InvalidField(o).find("delay_initial"), std::string::npos);
  o = BackoffOptions();
  o.delay_initial = Duration::Millis(-5);
  EXPECT_NE(InvalidField(o).find("delay_initial"), std::string::npos);
  o = BackoffOptions();
  o.delay_max = o.delay_initial - Duration::Nanos(1);
  EXPECT_NE(InvalidField(o).find("delay_max"), std::string::npos);
  o = BackoffOptions();
  o.multiplier = 0.5;
  EXPECT_NE(InvalidField(o).find("multiplier"), std::string::npos);
  o.multiplier = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(InvalidField(o).find("multiplier"), std::string::npos);
  o.multiplier = std::numeric_limits<double>::infinity();
  EXPECT_NE(InvalidField(o).find("multiplier"), std::string::npos);
  o = BackoffOptions();
  o.jitter = static_cast<Jitter>(42);
  EXPECT_NE(InvalidField(o).find("jitter"), std::string::npos);
  EXPECT_TRUE(BackoffOptions().Validate().ok());
}

TEST(BackoffTest, CeilingDoublesExactlyAndStopsAtTheCap) {
  // base·2^n in exact nanoseconds, then the cap from the first retry that reaches it on.
  const Backoff b = Make(Duration::Millis(100), Duration::Seconds(1), 2.0, Jitter::kNone);
  EXPECT_EQ(b.Ceiling(0), Duration::Millis(100));
  EXPECT_EQ(b.Ceiling(1), Duration::Millis(200));
  EXPECT_EQ(b.Ceiling(2), Duration::Millis(400));
  EXPECT_EQ(b.Ceiling(3), Duration::Millis(800));
  EXPECT_EQ(b.Ceiling(4), Duration::Seconds(1));
  EXPECT_EQ(b.capped_from(), 4u);
  EXPECT_EQ(b.Delay(2, Duration::Zero(), uint64_t{12345}), Duration::Millis(400));  // no jitter
}

TEST(BackoffTest, FractionalMultiplierAndConstantBackoff) {
  // gRPC-style multiplier 1.5, and multiplier 1 (constant: never reaches a larger cap).
  const Backoff b = Make(Duration::Millis(100), Duration::Seconds(10), 1.5, Jitter::kNone);
  EXPECT_EQ(b.Ceiling(1), Duration::Millis(150));
  EXPECT_EQ(b.Ceiling(2), Duration::Millis(225));
  const Backoff c = Make(Duration::Millis(7), Duration::Seconds(1), 1.0, Jitter::kNone);
  EXPECT_EQ(c.capped_from(), UINT64_MAX);
  EXPECT_EQ(c.Ceiling(0), Duration::Millis(7));
  EXPECT_EQ(c.Ceiling(1'000'000'000), Duration::Millis(7));
  const Backoff d = Make(Duration::Millis(7), Duration::Millis(7), 3.0, Jitter::kNone);
  EXPECT_EQ(d.capped_from(), 0u);
}

TEST(BackoffTest, JitterFormulasHitTheirExactBounds) {
  // The extreme random draws map to the extremes of each formula's range: full [0, c],
  // equal [c/2, c], decorrelated [base, min(cap, 3·prev)].
  const Duration base = Duration::Millis(10);
  const Duration cap = Duration::Millis(1000);
  const Backoff full = Make(base, cap, 2.0, Jitter::kFull);
  EXPECT_EQ(full.Delay(3, Duration::Zero(), uint64_t{0}), Duration::Zero());
  EXPECT_EQ(full.Delay(3, Duration::Zero(), UINT64_MAX), Duration::Millis(80));
  const Backoff equal = Make(base, cap, 2.0, Jitter::kEqual);
  EXPECT_EQ(equal.Delay(3, Duration::Zero(), uint64_t{0}), Duration::Millis(40));
  EXPECT_EQ(equal.Delay(3, Duration::Zero(), UINT64_MAX), Duration::Millis(80));
  const Backoff decor = Make(base, cap, 2.0, Jitter::kDecorrelated);
  EXPECT_EQ(decor.Delay(0, Duration::Zero(), uint64_t{0}), base);
  EXPECT_EQ(decor.Delay(0, Duration::Zero(), UINT64_MAX), Duration::Millis(30));  // 3·base
  EXPECT_EQ(decor.Delay(5, Duration::Millis(50), UINT64_MAX), Duration::Millis(150));
  EXPECT_EQ(decor.Delay(5, Duration::Millis(900), UINT64_MAX), cap);
  EXPECT_EQ(decor.Delay(5, Duration::Millis(900), uint64_t{0}), base);
}

// Draws `n` delays for one retry index and returns them sorted.
std::vector<Duration> Draws(const Backoff& b, uint64_t retry, Duration prev, int n) {
  Rng rng(7);
  std::vector<Duration> out;
  for (int i = 0; i < n; ++i) out.push_back(b.Delay(retry, prev, rng));
  std::sort(out.begin(), out.end());
  return out;
}

TEST(BackoffTest, JitterVanishingAtTheCapDoesNotHappen) {
  // Regression for the "jitter vanishing at the cap" bug (Resilience4j exponential-random jitters
  // base·m^n and caps afterwards, so past the cap every client sleeps exactly `cap` and retries
  // in lockstep). With the cap applied first, delays at retry 1000 must still spread over the
  // whole range, with (almost) none exactly at the cap.
  const Duration cap = Duration::Seconds(1);
  const Backoff full = Make(Duration::Millis(10), cap, 2.0, Jitter::kFull);
  auto d = Draws(full, 1000, Duration::Zero(), 4000);
  EXPECT_LT(d.front(), cap / 100);
  EXPECT_GT(d.back(), cap - cap / 100);
  EXPECT_LE(std::count(d.begin(), d.end(), cap), 1);
  EXPECT_NEAR(d[d.size() / 2].seconds_f(), 0.5, 0.05);  // median of U[0, 1 s]

  const Backoff equal = Make(Duration::Millis(10), cap, 2.0, Jitter::kEqual);
  d = Draws(equal, 1000, Duration::Zero(), 4000);
  EXPECT_LT(d.front(), cap / 2 + cap / 100);
  EXPECT_GE(d.front(), cap / 2);
  EXPECT_LE(std::count(d.begin(), d.end(), cap), 1);

  // AWS's decorrelated formula min(cap, U(base, 3·prev)) puts ~2/3 of the draws exactly on the
  // cap once prev is there; clamping the range first keeps them spread over [base, cap].
  const Backoff decor = Make(Duration::Millis(10), cap, 2.0, Jitter::kDecorrelated);
  d = Draws(decor, 1000, cap, 4000);
  EXPECT_LE(std::count(d.begin(), d.end(), cap), 1);
  EXPECT_NEAR(d[d.size() / 2].seconds_f(), 0.505, 0.05);
}

TEST(BackoffTest, HugeRetryCountsNeitherOverflowNorSlowDown) {
  // Attempt 1000 or 1e9 must give the cap, not an overflowed (negative or wrapped) duration; an
  // infinite cap saturates at INT64_MAX ns. Runs under UBSan in ./run sanitize.
  const Backoff b = Make(Duration::Millis(1), Duration::Infinite(), 2.0, Jitter::kNone);
  EXPECT_EQ(b.Ceiling(62), Duration::Millis(1) * (int64_t{1} << 62));  // saturated product
  EXPECT_EQ(b.Ceiling(1000), Duration::Infinite());
  EXPECT_EQ(b.Ceiling(1'000'000'000), Duration::Infinite());
  EXPECT_EQ(b.Ceiling(UINT64_MAX), Duration::Infinite());
  const Backoff f = Make(Duration::Millis(1), Duration::Infinite(), 2.0, Jitter::kFull);
  EXPECT_GE(f.Delay(UINT64_MAX, Duration::Infinite(), UINT64_MAX), Duration::Zero());
  const Backoff d = Make(Duration::Millis(1), Duration::Infinite(), 2.0, Jitter::kDecorrelated);
  EXPECT_EQ(d.Delay(5, Duration::Infinite(), UINT64_MAX), Duration::Infinite());
  // A multiplier barely above 1 reaches the cap only after thousands of retries: the slow path
  // beyond the 64-entry table must agree with the growth and still stop at the cap.
  const Backoff slow = Make(Duration::Millis(1), Duration::Millis(2), 1.001, Jitter::kNone);
  EXPECT_GT(slow.capped_from(), 64u);
  EXPECT_EQ(slow.capped_from(), 694u);  // smallest n with 1.001^n >= 2
  EXPECT_LT(slow.Ceiling(693), Duration::Millis(2));
  EXPECT_EQ(slow.Ceiling(694), Duration::Millis(2));
  EXPECT_NEAR(slow.Ceiling(300).seconds_f(), 0.001 * 1.34965, 1e-8);
  EXPECT_EQ(slow.Ceiling(1'000'000'000), Duration::Millis(2));
}

TEST(BackoffTest, SameRandomBitsGiveTheSameDelays) {
  // Determinism under the simulator: two Rngs with one seed drive identical delay sequences.
  const Backoff b = Make(Duration::Millis(5), Duration::Seconds(2), 1.6, Jitter::kDecorrelated);
  Rng r1(99, 3);
  Rng r2(99, 3);
  Duration p1, p2;
  for (uint64_t n = 0; n < 50; ++n) {
    p1 = b.Delay(n, p1, r1);
    p2 = b.Delay(n, p2, r2);
    ASSERT_EQ(p1, p2);
  }
}

RC_GTEST_PROP(BackoffProperty, DelayAlwaysWithinZeroAndCap,
              (uint64_t retry, uint64_t bits, int64_t prev_ns)) {
  // For any valid options, retry index, previous delay and random bits: 0 <= delay <= cap, and
  // decorrelated never goes below base. Covers the saturation paths (cap up to INT64_MAX).
  BackoffOptions o;
  o.delay_initial = Duration::Nanos(*rc::gen::inRange<int64_t>(1, int64_t{1} << 40));
  o.delay_max = o.delay_initial + Duration::Nanos(*rc::gen::inRange<int64_t>(0, INT64_MAX / 2)) *
                                      *rc::gen::inRange<int64_t>(1, 3);
  o.multiplier = *rc::gen::element(1.0, 1.0001, 1.3, 1.6, 2.0, 3.0, 10.0, 1e6);
  o.jitter = *rc::gen::element(Jitter::kNone, Jitter::kFull, Jitter::kEqual, Jitter::kDecorrelated);
  Result<Backoff> b = Backoff::Create(o);
  RC_ASSERT(b.ok());
  const Duration d = b->Delay(retry, Duration::Nanos(prev_ns), bits);
  RC_ASSERT(d >= Duration::Zero());
  RC_ASSERT(d <= o.delay_max);
  if (o.jitter == Jitter::kDecorrelated) RC_ASSERT(d >= o.delay_initial);
  RC_ASSERT(b->Ceiling(retry) >= o.delay_initial);
  RC_ASSERT(b->Ceiling(retry) <= o.delay_max);
}

RC_GTEST_PROP(BackoffProperty, CeilingNeverDecreases, (uint32_t retry)) {
  // The ceiling is monotone in the retry index (across the table / slow-path boundary too) and
  // stays at the cap once it gets there.
  const double m = *rc::gen::element(1.001, 1.1, 1.5, 2.0, 7.0);
  const Backoff b = Make(Duration::Micros(3), Duration::Seconds(30), m, Jitter::kNone);
  const uint64_t n = retry % 20000;
  RC_ASSERT(b.Ceiling(n) <= b.Ceiling(n + 1));
  if (n >= b.capped_from()) RC_ASSERT(b.Ceiling(n) == Duration::Seconds(30));
}

TEST(BackoffConcurrent, TwoThreadsShareOneBackoffAndJitterSource) {
  // Backoff is immutable and JitterSource is a lock-free shared stream: two threads computing
  // delays from one instance must see no data race (TSan) and always in-range delays.
  const Backoff b = Make(Duration::Millis(1), Duration::Millis(100), 2.0, Jitter::kFull);
  JitterSource random(1);
  std::vector<int64_t> bad(2, 0);
  std::atomic<int> gate1{0};  // start both threads together so they overlap
  auto worker = [&](int id) {
    gate1.fetch_add(1);
    while (gate1.load() < 2) {
    }
    for (int i = 0; i < 20000; ++i) {
      const Duration d = b.Delay(static_cast<uint64_t>(i % 40), Duration::Zero(), random);
      if (d < Duration::Zero() || d > Duration::Millis(100)) ++bad[static_cast<size_t>(id)];
    }
  };
  std::thread t0(worker, 0);
  std::thread t1(worker, 1);
  t0.join();
  t1.join();
  EXPECT_EQ(bad[0] + bad[1], 0);
}

}  // namespace
}  // namespace faultline
