// Unit tests for faultline/sim/clock.h: a node's simulated monotonic and wall clocks as functions
// of true time, under drift, wall jumps, strobes and resets. The monotonic contract (never
// decreases) and the timer conversion (never fire early) are what leases and timeouts rest on.
#include "faultline/sim/clock.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstdint>

namespace faultline::sim {
namespace {

struct Fixture {
  Rng rng{1};
  Scheduler scheduler{&rng, nullptr};
  void AdvanceBy(Duration d) { scheduler.AdvanceTo(scheduler.now() + d); }
};

TEST(SimClockTest, StartsAtItsBaseAndOffset) {
  // At boot, mono reads mono_base and the wall clock is epoch + mono + wall_offset, so the World
  // can give each node a realistic wall error by choosing the offset.
  Fixture f;
  SimClock c(&f.scheduler, Duration::Seconds(10), Duration::Seconds(-10) + Duration::Millis(5), 0);
  EXPECT_EQ(c.Now().nanos(), Duration::Seconds(10).nanos());
  EXPECT_EQ(c.WallNow().nanos(), kSimEpochUnixNs + Duration::Millis(5).nanos());
  EXPECT_EQ(c.wall_error(), Duration::Millis(5));
  f.AdvanceBy(Duration::Seconds(3));
  EXPECT_EQ(c.Now().nanos(), Duration::Seconds(13).nanos());
  EXPECT_EQ(c.wall_error(), Duration::Millis(5));  // no drift: the error stays put
}

TEST(SimClockTest, DriftOf500PpmOver1000SecondsGainsHalfASecond) {
  // Drift is a rate error in ppm: +500 ppm over 1000 s of true time is exactly +0.5 s of mono time
  // (and -500 ppm loses it). Getting the scale wrong would make clock faults meaningless.
  for (int64_t ppm : {int64_t{500}, int64_t{-500}}) {
    Fixture f;
    SimClock c(&f.scheduler, Duration::Seconds(1), Duration::Zero(), ppm);
    const MonoTime start = c.Now();
    f.AdvanceBy(Duration::Seconds(1000));
    EXPECT_EQ(c.Now() - start, Duration::Seconds(1000) + Duration::Millis(ppm)) << ppm;
    EXPECT_EQ(c.drift_ppm(), ppm);
  }
}

TEST(SimClockTest, DriftChangeIsContinuous) {
  // SetDrift re-anchors: mono must not jump at the change, and the new rate applies afterwards.
  Fixture f;
  SimClock c(&f.scheduler, Duration::Seconds(5), Duration::Zero(), 100);
  f.AdvanceBy(Duration::Seconds(100));
  const MonoTime before = c.Now();
  c.SetDrift(-2000);
  EXPECT_EQ(c.Now(), before);
  f.AdvanceBy(Duration::Seconds(10));
  EXPECT_EQ(c.Now() - before, Duration::Seconds(10) - Duration::Millis(20));
}

TEST(SimClockTest, JumpWallMovesWallButNotMono) {
  // An NTP step or operator error moves the wall clock (backwards too); mono must be untouched,
  // which is why timeouts use mono.
  Fixture f;
  SimClock c(&f.scheduler, Duration::Seconds(1), Duration::Seconds(-1), 0);
  f.AdvanceBy(Duration::Seconds(2));
  const MonoTime mono = c.Now();
  const WallTime wall = c.WallNow();
  c.JumpWall(Duration::Seconds(-30));
  EXPECT_EQ(c.Now(), mono);
  EXPECT_EQ(c.WallNow() - wall, Duration::Seconds(-30));
  EXPECT_EQ(c.wall_error(), Duration::Seconds(-30));
  c.JumpWall(Duration::Millis(45));
  EXPECT_EQ(c.wall_error(), Duration::Seconds(-30) + Duration::Millis(45));
  EXPECT_EQ(c.Now(), mono);
}

TEST(SimClockTest, StrobeFlipsEveryPeriodUntilItEnds) {
  // Strobe makes the wall clock alternate between +0 and +delta every period (Jepsen's clock
  // strobe), then stop at `until`. Mono is unaffected throughout.
  Fixture f;
  SimClock c(&f.scheduler, Duration::Seconds(1), Duration::Seconds(-1), 0);
  f.AdvanceBy(Duration::Seconds(1));
  const Duration delta = Duration::Millis(700);
  const Duration period = Duration::Millis(100);
  c.Strobe(delta, period, f.scheduler.now() + Duration::Seconds(1));
  for (int i = 0; i < 10; ++i) {
    const MonoTime mono_before = c.Now();
    f.AdvanceBy(i == 0 ? Duration::Millis(50) : period);
    EXPECT_EQ(c.wall_error(), i % 2 == 1 ? delta : Duration::Zero()) << "phase " << i;
    EXPECT_EQ(c.Now() - mono_before, i == 0 ? Duration::Millis(50) : period);
  }
  f.AdvanceBy(Duration::Millis(100));  // 1.05 s after the start: strobe over
  EXPECT_EQ(c.wall_error(), Duration::Zero());
  f.AdvanceBy(Duration::Millis(100));
  EXPECT_EQ(c.wall_error(), Duration::Zero());
}

TEST(SimClockTest, ResetWallReturnsToTrueTimeAndStopsStrobe) {
  // After jumps, drift and a strobe, ResetWall must put the wall clock back on true time (plus the
  // requested residual) and end the strobe; mono stays continuous.
  Fixture f;
  SimClock c(&f.scheduler, Duration::Seconds(7), Duration::Seconds(3), 300);
  f.AdvanceBy(Duration::Seconds(50));
  c.JumpWall(Duration::Seconds(-12));
  c.Strobe(Duration::Seconds(2), Duration::Millis(10), f.scheduler.now() + Duration::Seconds(60));
  f.AdvanceBy(Duration::Millis(15));  // odd phase: strobe offset active
  EXPECT_NE(c.wall_error(), Duration::Zero());
  const MonoTime mono = c.Now();
  c.ResetWall();
  EXPECT_EQ(c.Now(), mono);
  EXPECT_EQ(c.wall_error(), Duration::Zero());
  f.AdvanceBy(Duration::Millis(10));  // would be the next strobe phase
  // Only drift since the reset (300 ppm of 10 ms = 3 us) separates wall from true time now.
  EXPECT_EQ(c.wall_error(), Duration::Micros(3));
  c.ResetWall(Duration::Millis(-4));
  EXPECT_EQ(c.wall_error(), Duration::Millis(-4));
}

TEST(SimClockTest, MonotonicNeverDecreasesUnderRandomFaults) {
  // Whatever sequence of drift changes, jumps, strobes and resets happens, successive Now() calls
  // never go backwards (the Clock contract).
  Rng ops(99);
  for (int run = 0; run < 20; ++run) {
    Fixture f;
    SimClock c(&f.scheduler, Duration::Seconds(ops.Range(1, 1000)), Duration::Zero(),
               ops.Range(-100'000, 100'000));
    MonoTime last = c.Now();
    for (int step = 0; step < 500; ++step) {
      switch (ops.Uniform(5)) {
        case 0:
          c.SetDrift(ops.Range(-100'000, 100'000));
          break;
        case 1:
          c.JumpWall(Duration::Nanos(ops.Range(-1'000'000'000'000, 1'000'000'000'000)));
          break;
        case 2:
          c.Strobe(Duration::Millis(ops.Range(-500, 500)), Duration::Millis(ops.Range(1, 50)),
                   f.scheduler.now() + Duration::Millis(ops.Range(0, 500)));
          break;
        case 3:
          c.ResetWall(Duration::Nanos(ops.Range(-1000, 1000)));
          break;
        default:
          f.AdvanceBy(Duration::Nanos(ops.Range(0, 3'000'000)));
          break;
      }
      const MonoTime now = c.Now();
      ASSERT_GE(now, last) << "run " << run << " step " << step;
      last = now;
    }
  }
}

RC_GTEST_PROP(SimClockProperty, TimerConversionNeverFiresEarlyNorMuchLate,
              (int64_t drift_raw, uint64_t delay_raw, uint64_t anchor_raw, uint64_t start_raw)) {
  // TrueDelayFor is the inverse of the rate: after that much true time, mono has advanced by at
  // least the requested delay (a timer never fires before its monotonic deadline), and by at most
  // one rate step more (it does not fire needlessly late). Checked from arbitrary phases relative
  // to the drift anchor, where truncation differs.
  const int64_t drift = drift_raw % 100'001;  // [-100000, 100000]
  const Duration delay = Duration::Nanos(static_cast<int64_t>(delay_raw % 1'000'000'000'000) + 1);
  Fixture f;
  SimClock c(&f.scheduler, Duration::Seconds(1), Duration::Zero(), 0);
  f.AdvanceBy(Duration::Nanos(static_cast<int64_t>(anchor_raw % 1'000'000'000)));
  c.SetDrift(drift);
  f.AdvanceBy(Duration::Nanos(static_cast<int64_t>(start_raw % 1'000'000'000)));
  const MonoTime armed = c.Now();
  const Duration true_delay = c.TrueDelayFor(delay);
  RC_ASSERT(true_delay > Duration::Zero());
  f.AdvanceBy(true_delay);
  const Duration advanced = c.Now() - armed;
  RC_ASSERT(advanced >= delay);
  RC_ASSERT(advanced <= delay + Duration::Nanos(2));
}

TEST(SimClockTest, TrueDelayForEdgeCases) {
  // Non-positive delays fire at once; an infinite delay stays infinite instead of overflowing.
  Fixture f;
  SimClock c(&f.scheduler, Duration::Seconds(1), Duration::Zero(), -100'000);
  EXPECT_EQ(c.TrueDelayFor(Duration::Zero()), Duration::Zero());
  EXPECT_EQ(c.TrueDelayFor(Duration::Millis(-5)), Duration::Zero());
  EXPECT_TRUE(c.TrueDelayFor(Duration::Infinite()).is_infinite());
  // A slow clock (-10%) needs more true time: 900 ms of mono takes 1 s.
  EXPECT_EQ(c.TrueDelayFor(Duration::Millis(900)), Duration::Seconds(1));
  EXPECT_TRUE(c.TrueDelayFor(Duration::Nanos(INT64_MAX - 1)).is_infinite());  // saturates
}

TEST(SimClockDeathTest, DriftOutOfRangeIsAProgrammerError) {
  // |drift| > 10% is outside the model (and would make the rate non-positive further out).
  Fixture f;
  SimClock c(&f.scheduler, Duration::Seconds(1), Duration::Zero(), 0);
  EXPECT_DEATH(c.SetDrift(100'001), "FL_ASSERT");
  EXPECT_DEATH(c.SetDrift(-100'001), "FL_ASSERT");
}

}  // namespace
}  // namespace faultline::sim
