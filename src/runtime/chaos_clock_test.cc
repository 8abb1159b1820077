// Unit tests for faultline/runtime/chaos_clock.h: the simulator's clock formulas over the host's
// CLOCK_MONOTONIC. Every bound is exact: a node reading taken between two host readings must lie
// between the formula applied to those two host readings.
#include "faultline/runtime/chaos_clock.h"

#include <gtest/gtest.h>

#include <thread>

namespace faultline::runtime {
namespace {

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

TEST(ChaosClockTest, WithoutDriftNowIsTheHostMonotonicClock) {
  ChaosClock clock;
  for (int i = 0; i < 1000; ++i) {
    const int64_t before = HostMonotonicNanos();
    const int64_t now = clock.Now().nanos();
    const int64_t after = HostMonotonicNanos();
    ASSERT_LE(before, now);
    ASSERT_LE(now, after);
  }
}

TEST(ChaosClockTest, DriftScalesTheRateExactly) {
  for (const int64_t ppm : {100'000, -100'000, 2'500}) {
    ChaosClock clock;
    clock.SetDrift(ppm);
    const int64_t h0a = HostMonotonicNanos();
    const int64_t m0 = clock.Now().nanos();
    const int64_t h0b = HostMonotonicNanos();
    SleepMs(30);
    const int64_t h1a = HostMonotonicNanos();
    const int64_t m1 = clock.Now().nanos();
    const int64_t h1b = HostMonotonicNanos();
    // m1 - m0 = (t1 - t0)(1 + ppm/1e6) with t0 in [h0a, h0b], t1 in [h1a, h1b]; +-2 ns rounding.
    const auto scaled = [ppm](int64_t dt) { return dt + dt * ppm / 1'000'000; };
    EXPECT_GE(m1 - m0, scaled(h1a - h0b) - 2) << ppm;
    EXPECT_LE(m1 - m0, scaled(h1b - h0a) + 2) << ppm;
    EXPECT_EQ(clock.drift_ppm(), ppm);
  }
}

TEST(ChaosClockTest, NowNeverDecreasesAcrossDriftChangesAndThreads) {
  ChaosClock clock;
  std::atomic<bool> stop{false};
  std::thread changer([&] {
    int64_t ppm = 100'000;
    while (!stop.load()) {
      clock.SetDrift(ppm);
      ppm = -ppm;
    }
  });
  int64_t last = clock.Now().nanos();
  for (int i = 0; i < 200'000; ++i) {
    const int64_t now = clock.Now().nanos();
    ASSERT_GE(now, last);
    last = now;
  }
  stop.store(true);
  changer.join();
}

TEST(ChaosClockTest, JumpAndResetMoveOnlyTheWallClock) {
  ChaosClock clock;
  EXPECT_EQ(clock.wall_error(), Duration::Zero());
  const MonoTime mono_before = clock.Now();
  clock.JumpWall(Duration::Seconds(5));
  EXPECT_EQ(clock.wall_error(), Duration::Seconds(5));  // no drift: the error is the offset
  clock.JumpWall(-Duration::Seconds(7));
  EXPECT_EQ(clock.wall_error(), -Duration::Seconds(2));
  EXPECT_GE(clock.Now(), mono_before);  // monotonic time untouched by wall jumps
  clock.ResetWall();
  EXPECT_EQ(clock.wall_error(), Duration::Zero());
}

TEST(ChaosClockTest, WallTracksHostRealtimeAndDriftGrowsTheError) {
  ChaosClock clock;
  // Derived from CLOCK_REALTIME at construction: equal to it within any NTP slew of a test run.
  const int64_t diff = clock.WallNow().nanos() - HostRealtimeNanos();
  EXPECT_LT(diff < 0 ? -diff : diff, Duration::Millis(100).nanos());
  clock.SetDrift(100'000);
  SleepMs(20);
  const Duration e = clock.wall_error();
  EXPECT_GE(e, Duration::Millis(2));  // >= 20 ms * 0.1
  // Reset, drift kept: the error grows again from 0 at exactly the drift rate.
  const int64_t h0 = HostMonotonicNanos();
  clock.ResetWall();
  const Duration after_reset = clock.wall_error();
  const int64_t h1 = HostMonotonicNanos();
  EXPECT_GE(after_reset, Duration::Zero());
  EXPECT_LE(after_reset.nanos(), (h1 - h0) / 10 + 2);
  EXPECT_EQ(clock.drift_ppm(), 100'000);
}

TEST(ChaosClockTest, TrueDelayForInvertsTheRateRoundingUp) {
  ChaosClock clock;
  EXPECT_EQ(clock.TrueDelayFor(Duration::Millis(10)), Duration::Millis(10));
  clock.SetDrift(100'000);
  EXPECT_EQ(clock.TrueDelayFor(Duration::Millis(110)), Duration::Millis(100));
  EXPECT_EQ(clock.TrueDelayFor(Duration::Nanos(1)), Duration::Nanos(1));  // ceil, never 0
  clock.SetDrift(-100'000);
  EXPECT_EQ(clock.TrueDelayFor(Duration::Millis(90)), Duration::Millis(100));
  EXPECT_EQ(clock.TrueDelayFor(Duration::Nanos(-5)), Duration::Zero());
  EXPECT_TRUE(clock.TrueDelayFor(Duration::Infinite()).is_infinite());
  // Ceil: (true delay) * rate >= mono delay for awkward values.
  for (int64_t d : {1, 7, 999'999, 123'456'789}) {
    const int64_t t = clock.TrueDelayFor(Duration::Nanos(d)).nanos();
    EXPECT_GE(static_cast<Int128>(t) * 900'000, static_cast<Int128>(d) * 1'000'000) << d;
    EXPECT_LT(static_cast<Int128>(t - 1) * 900'000, static_cast<Int128>(d) * 1'000'000) << d;
  }
}

}  // namespace
}  // namespace faultline::runtime
