// Unit tests for faultline/resilience/client_throttle.h: the Google SRE adaptive-throttling formula
// p = max(0, (requests − K·accepts)/(requests + 1)) with exact values for small counts, the
// time-bucketed decay on a ManualClock, the steady state against an overloaded backend, and a TSan
// stress test of the lock-free buckets.
#include "faultline/resilience/client_throttle.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "faultline/core/random.h"
#include "faultline/env/clock.h"

namespace faultline {
namespace {

constexpr uint64_t kHalf = 1ULL << 63;

std::unique_ptr<ClientThrottle> Make(Clock& clock, uint32_t k_milli = 2000) {
  ClientThrottleOptions o;
  o.k_milli = k_milli;
  auto r = ClientThrottle::Create(clock, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

TEST(ClientThrottleTest, CreateRejectsInvalidOptionsNamingTheField) {
  // K < 1 would throttle a healthy backend; a zero-width bucket would divide by zero. Both must be
  // refused at construction with the field named.
  ManualClock clock;
  ClientThrottleOptions o;
  o.k_milli = 999;
  EXPECT_NE(ClientThrottle::Create(clock, o).status().message().find("k_milli"),
            std::string_view::npos);
  o = ClientThrottleOptions();
  o.buckets = 0;
  EXPECT_NE(ClientThrottle::Create(clock, o).status().message().find("buckets"),
            std::string_view::npos);
  o = ClientThrottleOptions();
  o.window = Duration::Micros(500);
  EXPECT_NE(ClientThrottle::Create(clock, o).status().message().find("window"),
            std::string_view::npos);
  EXPECT_TRUE(ClientThrottle::Create(clock, ClientThrottleOptions()).ok());
}

TEST(ClientThrottleTest, NeverRejectsWhileTheBackendAcceptsEverything) {
  // requests == accepts → requests − 2·accepts < 0 → p = 0. Draw 0 is rejected by any p > 0, so it
  // probes "p is exactly zero".
  ManualClock clock;
  auto throttle = Make(clock);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(throttle->ShouldSend(0));
    throttle->RecordAccepted();
    clock.Advance(Duration::Millis(7));
  }
  EXPECT_EQ(throttle->RejectProbability(), 0.0);
  EXPECT_EQ(throttle->counters().throttled, 0u);
}

TEST(ClientThrottleTest, RejectProbabilityHasExactSreValuesForSmallCounts) {
  // p = (R − K·A)/(R + 1) evaluated on the counts before the request, then the request counts in R
  // whether sent or throttled; reject iff draw < p·2^64. Boundary draws pin the exact threshold.
  ManualClock clock;
  auto throttle = Make(clock);
  EXPECT_TRUE(throttle->ShouldSend(0));  // R=0: p = 0
  throttle->RecordRejectedByBackend();
  // R=1, A=0: p = 1/2 → reject iff draw < 2^63.
  EXPECT_DOUBLE_EQ(throttle->RejectProbability(), 0.5);
  EXPECT_FALSE(throttle->ShouldSend(kHalf - 1));
  // R=2 (the throttled request counted), A=0: p = 2/3 → reject iff 3·draw < 2^65.
  EXPECT_DOUBLE_EQ(throttle->RejectProbability(), 2.0 / 3.0);
  EXPECT_TRUE(throttle->ShouldSend(12297829382473034411ULL));  // ⌈2^65/3⌉
  EXPECT_EQ(throttle->Counts().requests, 3u);
  throttle->RecordAccepted();
  // R=3, A=1: p = (3 − 2)/4 = 1/4 → reject iff draw < 2^62.
  EXPECT_DOUBLE_EQ(throttle->RejectProbability(), 0.25);
  EXPECT_FALSE(throttle->ShouldSend((1ULL << 62) - 1));
  throttle->RecordAccepted();
  // R=4, A=2: p = 0.
  EXPECT_TRUE(throttle->ShouldSend(0));
  const ClientThrottleCounters c = throttle->counters();
  EXPECT_EQ(c.sent, 3u);
  EXPECT_EQ(c.throttled, 2u);
  EXPECT_EQ(c.accepted, 2u);
  EXPECT_EQ(c.rejected_by_backend, 1u);
}

TEST(ClientThrottleTest, NonIntegerKUsesExactMilliArithmetic) {
  // K = 1.5: R=4, A=2 → p = (4 − 3)/5 = 1/5 → reject iff draw < 2^64/5 = 3689348814741910323.2.
  ManualClock clock;
  auto throttle = Make(clock, 1500);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(throttle->ShouldSend(UINT64_MAX));
  throttle->RecordAccepted();
  throttle->RecordAccepted();
  EXPECT_DOUBLE_EQ(throttle->RejectProbability(), 0.2);
  EXPECT_FALSE(throttle->ShouldSend(3689348814741910323ULL));
  // Now R=5, A=2: p = 2/6 → reject iff 6·draw < 2·2^64, i.e. draw < 2^64/3.
  EXPECT_TRUE(throttle->ShouldSend(6148914691236517206ULL));  // ⌈2^64/3⌉
}

TEST(ClientThrottleTest, LocallyRejectedRequestsKeepRaisingTheProbabilityWhileTheBackendIsDown) {
  // SRE counts throttled requests in `requests` so p keeps rising while nothing is accepted:
  // after n requests p = n/(n+1), yet never 1 (a trickle still probes for recovery).
  ManualClock clock;
  auto throttle = Make(clock);
  for (uint64_t n = 0; n < 50; ++n) {
    EXPECT_DOUBLE_EQ(throttle->RejectProbability(),
                     static_cast<double>(n) / static_cast<double>(n + 1));
    (void)throttle->ShouldSend(UINT64_MAX / 2);
  }
  EXPECT_TRUE(throttle->ShouldSend(UINT64_MAX));  // p = 50/51 < 1: the top draw always passes
  EXPECT_GT(throttle->counters().throttled, 40u);
}

TEST(ClientThrottleTest, HistoryDecaysOneBucketAtATimeAndVanishesAfterTheWindow) {
  // 120 s in 12 buckets of 10 s on the monotonic clock: counts of bucket [0, 10 s) stop counting at
  // exactly 120 s; later buckets decay in turn; after the window the throttle is fully open again.
  ManualClock clock;
  auto throttle = Make(clock);
  for (int i = 0; i < 5; ++i) (void)throttle->ShouldSend(UINT64_MAX);  // bucket 0
  clock.Advance(Duration::Seconds(60));
  for (int i = 0; i < 3; ++i) (void)throttle->ShouldSend(UINT64_MAX);  // bucket 6
  throttle->RecordAccepted();
  EXPECT_EQ(throttle->Counts().requests, 8u);
  clock.Advance(Duration::Seconds(60) - Duration::Nanos(1));  // 119.999999999 s
  EXPECT_EQ(throttle->Counts().requests, 8u);
  clock.Advance(Duration::Nanos(1));  // 120 s: bucket 0 has left the window
  EXPECT_EQ(throttle->Counts().requests, 3u);
  EXPECT_EQ(throttle->Counts().accepts, 1u);
  EXPECT_DOUBLE_EQ(throttle->RejectProbability(), 1.0 / 4.0);  // (3 − 2)/4
  clock.Advance(Duration::Seconds(60));                        // 180 s: bucket 6 gone too
  EXPECT_EQ(throttle->Counts().requests, 0u);
  EXPECT_EQ(throttle->Counts().accepts, 0u);
  EXPECT_EQ(throttle->RejectProbability(), 0.0);
  EXPECT_TRUE(throttle->ShouldSend(0));
  // A slot reused after a full ring (bucket 12 → slot 0) starts from zero, not from stale counts.
  EXPECT_EQ(throttle->Counts().requests, 1u);
}

TEST(ClientThrottleTest, AgainstABackendOfFixedCapacityTheClientSendsAboutKTimesTheAccepts) {
  // The point of the formula: a client offering 1000 req/s to a backend that accepts 100/s sends
  // only ~K·100 = 200/s once the 2-minute history fills, shedding the rest locally. Deterministic:
  // draws come from a seeded Rng.
  ManualClock clock;
  auto throttle = Make(clock);
  Rng rng(42);
  uint64_t sent_last_minute = 0;
  for (int second = 0; second < 360; ++second) {
    int accepted_this_second = 0;
    for (int i = 0; i < 1000; ++i) {
      if (throttle->ShouldSend(rng)) {
        if (second >= 300) ++sent_last_minute;
        if (accepted_this_second < 100) {
          ++accepted_this_second;
          throttle->RecordAccepted();
        } else {
          throttle->RecordRejectedByBackend();
        }
      }
      clock.Advance(Duration::Millis(1));
    }
  }
  const double sent_per_second = static_cast<double>(sent_last_minute) / 60.0;
  EXPECT_GT(sent_per_second, 180.0);
  EXPECT_LT(sent_per_second, 230.0);
}

TEST(ClientThrottleTest, SameDrawsGiveTheSameDecisions) {
  // Determinism: the decision is a pure function of the window counts and the draw.
  ManualClock c1;
  ManualClock c2;
  auto a = Make(c1);
  auto b = Make(c2);
  Rng r1(7);
  Rng r2(7);
  for (int i = 0; i < 2000; ++i) {
    const bool sa = a->ShouldSend(r1);
    ASSERT_EQ(sa, b->ShouldSend(r2));
    if (sa && i % 5 == 0) {
      a->RecordAccepted();
      b->RecordAccepted();
    }
    c1.Advance(Duration::Millis(3));
    c2.Advance(Duration::Millis(3));
  }
}

TEST(ClientThrottleTest, ConcurrentRecordingLosesNoCountsAcrossBucketRotations) {
  // Four threads call ShouldSend/RecordAccepted while the clock stays inside one bucket: the CAS
  // per bucket must count every call exactly. Then the same with a fifth thread advancing the
  // clock through many buckets (rotations racing increments): no crash, no data race (TSan), and
  // the lifetime counters still add up.
  ManualClock clock;
  auto throttle = Make(clock);
  constexpr int kThreads = 4;
  constexpr int kCalls = 20'000;
  auto hammer = [&] {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < kCalls; ++i) {
          if (throttle->ShouldSend(UINT64_MAX)) throttle->RecordAccepted();
        }
      });
    }
    return threads;
  };
  auto threads = hammer();
  for (auto& th : threads) th.join();
  EXPECT_EQ(throttle->Counts().requests, static_cast<uint64_t>(kThreads * kCalls));
  EXPECT_EQ(throttle->Counts().accepts, static_cast<uint64_t>(kThreads * kCalls));

  std::atomic<bool> stop{false};
  std::thread ticker([&] {
    while (!stop.load()) clock.Advance(Duration::Millis(500));
  });
  threads = hammer();
  for (auto& th : threads) th.join();
  stop.store(true);
  ticker.join();
  const ClientThrottleCounters c = throttle->counters();
  EXPECT_EQ(c.sent + c.throttled, static_cast<uint64_t>(2 * kThreads * kCalls));
  EXPECT_EQ(c.accepted, c.sent);
}

TEST(ClientThrottleTest, ReportsEveryLocalRejectionWithItsProbability) {
  // A backend that accepts nothing: from the first request p = r/(r+1) > 0, so draw 0 (rejected
  // by any p > 0) is dropped every time; each drop is reported, with p × 1000.
  ManualClock clock;
  auto throttle = Make(clock);
  struct Drops final : Observer {
    void OnEvent(const Event& e) noexcept override {
      if (e.kind == EventKind::kLimiterRejected && e.a == 2) probabilities.push_back(e.b);
    }
    std::vector<int64_t> probabilities;
  } drops;
  throttle->observe().Attach(&drops, "throttle");
  ASSERT_TRUE(throttle->ShouldSend(~uint64_t{0}));  // first request: p = 0, sent
  for (int i = 0; i < 9; ++i) throttle->ShouldSend(0);
  EXPECT_EQ(throttle->counters().throttled, 9u);
  ASSERT_EQ(drops.probabilities.size(), 9u);
  // Before the (i+2)-th request: requests = i+1, accepts = 0, p = (i+1)/(i+2).
  for (int i = 0; i < 9; ++i) EXPECT_EQ(drops.probabilities[i], (i + 1) * 1000 / (i + 2));
}

}  // namespace
}  // namespace faultline
