// CoarseClock against the kernel's precise clocks: the documented error bound, monotonicity
// across threads, and the fallback to the precise clock.
#include "faultline/adapters/coarse_clock.h"

#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace faultline {
namespace {

int64_t Mono() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t Real() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t CoarseResolution() {
  timespec res{};
  if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0) return -1;
  return static_cast<int64_t>(res.tv_sec) * 1'000'000'000 + res.tv_nsec;
}

TEST(CoarseClockTest, RejectsNonPositiveErrorMax) {
  CoarseClockOptions o;
  o.error_max = Duration::Zero();
  auto c = CoarseClock::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
}

TEST(CoarseClockTest, UsesTheCoarseClockAndReportsOneTick) {
  const int64_t tick = CoarseResolution();
  if (tick <= 0 || 2 * tick > Duration::Millis(10).nanos()) {
    GTEST_SKIP() << "no usable coarse clock";
  }
  auto c = std::move(CoarseClock::Create()).value();
  EXPECT_EQ(c->source(), CoarseClock::Source::kCoarse);
  EXPECT_EQ(c->error_bound(), Duration::Nanos(2 * tick));
}

// Samples the lag CLOCK_MONOTONIC - CoarseClock::Now() (the precise clock is read just before,
// so preemption between the reads can only hide lag, never invent it) on a busy thread and on a
// thread just woken from sleep (the NO_HZ idle case). Never ahead; every sample within the
// stalled-tick bound of the header (MAX_STALLED_JIFFIES = 5 plus two ticks, rounded up to eight);
// most samples within error_bound() (two ticks). "Most" is 90%, not all: while the host
// deschedules the timekeeping vCPU the snapshot stalls (the header's stalled-tick case), and on
// the loaded 2-core reference VM 2 runs in 40 had 1.5-1.9% of their samples past two ticks; a
// clock whose typical error were larger (a stuck or slow clock, a wrong clock id) fails.
TEST(CoarseClockTest, LagsThePreciseClockByLessThanTwoTicks) {
  auto c = std::move(CoarseClock::Create()).value();
  if (c->source() != CoarseClock::Source::kCoarse) GTEST_SKIP() << "no usable coarse clock";
  const int64_t bound = c->error_bound().nanos();
  const int64_t tick = CoarseResolution();
  ASSERT_EQ(bound, 2 * tick);
  int64_t samples = 0;
  int64_t over_bound = 0;
  int64_t lag_max = 0;
  std::vector<int64_t> lags;
  lags.reserve(1 << 20);
  const int64_t start_mono = Mono();
  const int64_t start = c->Now().nanos();
  for (int round = 0; round < 60; ++round) {
    // A freshly woken thread first, then a busy stretch of ~1.5 ticks.
    std::this_thread::sleep_for(std::chrono::microseconds(500 + 97 * round));
    const int64_t busy_until = Mono() + tick * 3 / 2;
    for (bool first = true;; first = false) {
      const int64_t before = Mono();
      const int64_t t = c->Now().nanos();
      const int64_t after = Mono();
      ASSERT_LE(t, after) << "coarse clock ahead of CLOCK_MONOTONIC";
      const int64_t lag = before - t;
      ++samples;
      if (lag >= bound) ++over_bound;
      lag_max = std::max(lag_max, lag);
      if ((samples & 15) == 0) lags.push_back(lag);
      if (!first && after >= busy_until) break;
    }
  }
  const int64_t elapsed_mono = Mono() - start_mono;
  const int64_t elapsed = c->Now().nanos() - start;
  ASSERT_FALSE(lags.empty());
  std::sort(lags.begin(), lags.end());
  RecordProperty("lag_p50_ns", std::to_string(lags[lags.size() / 2]));
  RecordProperty("lag_p99_ns", std::to_string(lags[lags.size() * 99 / 100]));
  RecordProperty("lag_max_ns", std::to_string(lag_max));
  RecordProperty("samples", std::to_string(samples));
  RecordProperty("over_two_ticks", std::to_string(over_bound));
  // Not a frozen clock: it covered the run within the error bound at both ends.
  EXPECT_GE(elapsed, elapsed_mono - 2 * bound);
  EXPECT_LE(over_bound * 10, samples) << over_bound << " of " << samples
                                      << " samples lag by two ticks or more";
  EXPECT_LT(lag_max, 8 * tick) << "lag " << lag_max << " ns";
}

TEST(CoarseClockTest, WallClockWithinOneTickOfRealtime) {
  auto c = std::move(CoarseClock::Create()).value();
  const int64_t tick = c->error_bound().nanos();
  for (int i = 0; i < 1000; ++i) {
    const int64_t before = Real();
    const int64_t t = c->WallNow().nanos();
    const int64_t after = Real();
    // CLOCK_REALTIME may be stepped between the reads; a step would show here, rarely.
    ASSERT_LE(t, after);
    ASSERT_LT(before - t, 4 * tick);
  }
}

// Every value a thread publishes is a lower bound for any later read, on any thread.
TEST(CoarseClockTest, NeverDecreasesAcrossThreads) {
  auto c = std::move(CoarseClock::Create()).value();
  std::atomic<int64_t> published{INT64_MIN};
  std::atomic<int64_t> violations{0};
  std::atomic<int64_t> reads{0};
  const int64_t end = Mono() + Duration::Millis(100).nanos();
  auto run = [&] {
    int64_t last = INT64_MIN;
    int64_t n = 0;
    while (Mono() < end) {
      for (int i = 0; i < 256; ++i) {
        const int64_t seen = published.load(std::memory_order_acquire);
        const int64_t t = c->Now().nanos();
        if (t < seen || t < last) violations.fetch_add(1, std::memory_order_relaxed);
        last = t;
        int64_t p = seen;
        while (t > p && !published.compare_exchange_weak(p, t, std::memory_order_release,
                                                          std::memory_order_acquire)) {
        }
        ++n;
      }
    }
    reads.fetch_add(n, std::memory_order_relaxed);
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back(run);
  for (auto& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_GT(reads.load(), 1000);
  EXPECT_GT(published.load(), INT64_MIN);
}

// An error_max below the tick: the precise clock, so Now() lies between two CLOCK_MONOTONIC
// reads taken around it (a coarse read would fall before the first one).
TEST(CoarseClockTest, FallsBackToThePreciseClockWhenTheTickIsTooCoarse) {
  CoarseClockOptions o;
  o.error_max = Duration::Nanos(1);
  auto c = std::move(CoarseClock::Create(o)).value();
  const int64_t tick = CoarseResolution();
  if (tick > 1) {
    EXPECT_EQ(c->source(), CoarseClock::Source::kPrecise);
  }
  EXPECT_LE(c->error_bound(), Duration::Micros(1));
  int64_t behind = 0;
  for (int i = 0; i < 10'000; ++i) {
    const int64_t before = Mono();
    const int64_t t = c->Now().nanos();
    const int64_t after = Mono();
    ASSERT_LE(t, after);
    if (t < before) ++behind;
  }
  EXPECT_EQ(behind, 0);
  const int64_t r0 = Real();
  const int64_t w = c->WallNow().nanos();
  EXPECT_LE(r0, w + Duration::Millis(50).nanos());
}

TEST(CoarseClockTest, DefaultIsOneSharedInstance) {
  EXPECT_EQ(&CoarseClock::Default(), &CoarseClock::Default());
  const MonoTime a = CoarseClock::Default().Now();
  EXPECT_GE(CoarseClock::Default().Now(), a);
}

}  // namespace
}  // namespace faultline
