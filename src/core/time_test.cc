// Unit tests for faultline/core/time.h: Duration and Instant arithmetic, which must saturate at
// the int64 range instead of overflowing (signed overflow is undefined behaviour).
#include "faultline/core/time.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace faultline {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

// Values the optimizer cannot fold, so UBSan checks the runtime path too.
int64_t Opaque(int64_t v) {
  volatile int64_t x = v;
  return x;
}
Duration Opaque(Duration d) { return Duration::Nanos(Opaque(d.nanos())); }
MonoTime Opaque(MonoTime t) { return MonoTime::FromNanos(Opaque(t.nanos())); }

TEST(DurationTest, UnitConstructorsAndAccessorsAgree) {
  // Units are the contract of every *_ms / *_ns field; conversions must be exact.
  EXPECT_EQ(Duration::Micros(3).nanos(), 3'000);
  EXPECT_EQ(Duration::Millis(3).nanos(), 3'000'000);
  EXPECT_EQ(Duration::Seconds(3).nanos(), 3'000'000'000);
  EXPECT_EQ(Duration::Seconds(2).millis(), 2'000);
  EXPECT_EQ(Duration::Millis(2).micros(), 2'000);
  EXPECT_EQ(Duration::Nanos(1'999'999).millis(), 1);  // truncates toward zero
  EXPECT_EQ(Duration::Nanos(-1'999'999).millis(), -1);
  EXPECT_DOUBLE_EQ(Duration::Millis(1500).seconds_f(), 1.5);
  EXPECT_EQ(Duration::Zero().nanos(), 0);
  EXPECT_EQ(Duration().nanos(), 0);
  EXPECT_LT(Duration::Millis(1), Duration::Millis(2));
  EXPECT_EQ(Duration::Seconds(1), Duration::Millis(1000));
}

TEST(DurationTest, ConstructorsSaturateInsteadOfOverflowing) {
  // Seconds(INT64_MAX) would overflow int64 nanoseconds; it must clamp to Infinite (and the
  // negative side to the minimum). static_assert proves it is UB-free in constant evaluation.
  static_assert(Duration::Seconds(kMax) == Duration::Infinite());
  static_assert(Duration::Seconds(kMin).nanos() == kMin);
  static_assert(Duration::Millis(kMax / 1000).is_infinite());
  static_assert(Duration::Micros(kMin).nanos() == kMin);
  EXPECT_TRUE(Duration::Seconds(Opaque(kMax)).is_infinite());
  EXPECT_EQ(Duration::Seconds(Opaque(kMin)).nanos(), kMin);
  EXPECT_TRUE(Duration::Millis(Opaque(kMax)).is_infinite());
  EXPECT_TRUE(Duration::Micros(Opaque(kMax)).is_infinite());
  EXPECT_EQ(Duration::Millis(Opaque(-kMax)).nanos(), kMin);
  // Largest value that still fits is exact.
  EXPECT_EQ(Duration::Seconds(Opaque(int64_t{9'223'372'036})).nanos(), 9'223'372'036'000'000'000);
}

TEST(DurationTest, ArithmeticSaturatesAtBothEnds) {
  // "Forever plus a delay stays forever": deadlines computed as now + Infinite() + backoff must
  // not wrap to the past. Every operator is checked at both limits.
  static_assert((Duration::Infinite() + Duration::Seconds(1)).is_infinite());
  static_assert((Duration::Nanos(kMin) - Duration::Nanos(1)).nanos() == kMin);
  static_assert((-Duration::Nanos(kMin)).is_infinite());
  static_assert((Duration::Nanos(kMin) / -1).is_infinite());
  static_assert((Duration::Infinite() * 2).is_infinite());
  static_assert((Duration::Infinite() * -2).nanos() == kMin);

  const Duration inf = Opaque(Duration::Infinite());
  const Duration min = Opaque(Duration::Nanos(kMin));
  EXPECT_TRUE((inf + Duration::Nanos(1)).is_infinite());
  EXPECT_TRUE((inf + inf).is_infinite());
  EXPECT_EQ((min + min).nanos(), kMin);
  EXPECT_EQ((min - Duration::Seconds(1)).nanos(), kMin);
  EXPECT_TRUE((inf - min).is_infinite());
  EXPECT_EQ((min - inf).nanos(), kMin);
  EXPECT_TRUE((-min).is_infinite());
  EXPECT_EQ((-inf).nanos(), -kMax);
  EXPECT_TRUE((inf * Opaque(int64_t{3})).is_infinite());
  EXPECT_EQ((inf * Opaque(int64_t{-3})).nanos(), kMin);
  EXPECT_TRUE((min * Opaque(int64_t{-1})).is_infinite());
  EXPECT_EQ((min * Opaque(int64_t{2})).nanos(), kMin);
  EXPECT_EQ((min / Opaque(int64_t{1})).nanos(), kMin);
  EXPECT_TRUE((min / Opaque(int64_t{-1})).is_infinite());  // INT64_MIN / -1 is UB unguarded
  Duration acc = inf;
  acc += Duration::Seconds(5);
  EXPECT_TRUE(acc.is_infinite());
  acc = min;
  acc -= Duration::Seconds(5);
  EXPECT_EQ(acc.nanos(), kMin);
}

TEST(DurationTest, OrdinaryArithmeticIsExact) {
  // Saturation must not disturb values in range.
  EXPECT_EQ((Duration::Millis(3) + Duration::Micros(5)).nanos(), 3'005'000);
  EXPECT_EQ((Duration::Millis(3) - Duration::Millis(5)).nanos(), -2'000'000);
  EXPECT_EQ((Duration::Millis(3) * 4).nanos(), 12'000'000);
  EXPECT_EQ((Duration::Millis(9) / 4).nanos(), 2'250'000);
  EXPECT_EQ((-Duration::Millis(3)).nanos(), -3'000'000);
}

TEST(InstantTest, ArithmeticSaturatesAtBothEnds) {
  // A deadline of MonoTime::Max() plus anything stays Max, and the span between the extreme
  // instants saturates to Infinite instead of wrapping negative.
  static_assert(MonoTime::Max() + Duration::Seconds(1) == MonoTime::Max());
  static_assert((MonoTime::Max() - MonoTime::Min()).is_infinite());

  const MonoTime max = Opaque(MonoTime::Max());
  const MonoTime min = Opaque(MonoTime::Min());
  EXPECT_EQ(max + Duration::Infinite(), MonoTime::Max());
  EXPECT_EQ(min - Duration::Seconds(1), MonoTime::Min());
  EXPECT_EQ(min + Duration::Nanos(kMin), MonoTime::Min());
  EXPECT_EQ(max - Duration::Nanos(kMin), MonoTime::Max());
  EXPECT_TRUE((max - min).is_infinite());
  EXPECT_EQ((min - max).nanos(), kMin);
  MonoTime t = MonoTime::FromNanos(kMax - 5);
  t += Duration::Seconds(1);
  EXPECT_EQ(t, MonoTime::Max());
}

TEST(InstantTest, OrdinaryArithmeticIsExact) {
  // Instant +/- Duration and Instant - Instant must round-trip exactly in range.
  const WallTime a = WallTime::FromNanos(1'000);
  const WallTime b = a + Duration::Micros(2);
  EXPECT_EQ(b.nanos(), 3'000);
  EXPECT_EQ(b - a, Duration::Micros(2));
  EXPECT_EQ(a - b, Duration::Micros(-2));
  EXPECT_EQ(b - Duration::Micros(2), a);
  EXPECT_LT(a, b);
  EXPECT_EQ(MonoTime().nanos(), 0);
}

}  // namespace
}  // namespace faultline
