// Seeded tests of the retry-amplification and backpressure scenarios and their checkers.
#include <gtest/gtest.h>

#include <string>

#include "faultline/lab/scenario.h"
#include "src/lab/backpressure_check.h"
#include "src/lab/retry_check.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

RunResult RunSeed(std::string_view scenario, std::string_view variant, uint64_t seed) {
  return RunOne(scenario, variant, seed).value();
}

std::string Detail(const RunResult& r, const std::string& name) {
  auto it = r.violation_details.find(name);
  return it == r.violation_details.end() ? "" : it->second;
}

// Every violation a run reports carries its first instance in words.
void ExpectDetails(const RunResult& r) {
  for (const auto& [name, count] : r.violations) {
    EXPECT_FALSE(Detail(r, name).empty()) << name;
  }
}

// Retries at every layer multiply: each failed user request costs the database 3 x 3 x 3 attempts.
TEST(RetryAmplification, NaiveMultipliesDatabaseAttempts27Times) {
  for (uint64_t seed = 1; seed <= 2; ++seed) {
    const RunResult r = RunSeed("retry-amplification", "naive", seed);
    EXPECT_DOUBLE_EQ(r.metrics.at("db_amplification"), 27.0);
    EXPECT_EQ(r.violations.count("retry-amplification"), 1u);
    EXPECT_EQ(
        Detail(r, "retry-amplification").rfind("27.0 database attempts per failed request", 0), 0u);
  }
}

// Outermost-only retries with a budget, backoff, Retry-After and deadlines keep the database's
// load near the offered load during the blip, and the system recovers at once.
TEST(RetryAmplification, HardenedStaysBelowOneAndAHalf) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const RunResult r = RunSeed("retry-amplification", "hardened", seed);
    EXPECT_EQ(r.violation_count(), 0) << seed;
    EXPECT_LE(r.metrics.at("db_amplification"), 1.5);
    EXPECT_LT(r.metrics.at("db_peak_load_per_s"), 2000);
  }
}

// Unbounded queues and blind retries: goodput collapses and stays collapsed after the trigger is
// removed (the metastable failure), with an unbounded queue.
TEST(Backpressure, NaiveCollapsesMetastably) {
  const RunResult r = RunSeed("backpressure", "naive", 1);
  EXPECT_EQ(r.violations.count("goodput-collapse"), 1u);
  EXPECT_EQ(r.violations.count("not-recovered"), 1u);
  EXPECT_EQ(r.violations.count("queue-over-bound"), 1u);
  EXPECT_LT(r.metrics.at("goodput_ratio"), 0.3);
  ExpectDetails(r);
}

TEST(Backpressure, HardenedKeepsGoodputAndRecovers) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const RunResult r = RunSeed("backpressure", "hardened", seed);
    EXPECT_EQ(r.violation_count(), 0) << seed;
    EXPECT_GE(r.metrics.at("goodput_ratio"), 0.7);
    EXPECT_LE(r.metrics.at("max_queue_depth"), 100);
    EXPECT_LT(r.metrics.at("p99_latency_ms"), 1000);
  }
}

// ---- the checkers on hand-built records ----

constexpr int64_t kMs = 1'000'000;

UserRequest Request(uint64_t id, int64_t invoke_ms, Outcome outcome, int64_t end_ms) {
  return UserRequest{id, invoke_ms * kMs, outcome, end_ms * kMs};
}

TEST(RetryChecker, AmplificationIsAttemptsPerFailedRequest) {
  RetryObservations obs;
  obs.blip_start_ns = 0;
  obs.blip_end_ns = 100 * kMs;
  for (uint64_t req = 1; req <= 2; ++req) {
    const int64_t t = static_cast<int64_t>(req) * 10;
    obs.requests.push_back(Request(req, t, Outcome::kFail, t + 2));
    for (int a = 0; a < 4; ++a) obs.db_attempts.push_back({req, (t + 1) * kMs});
  }
  obs.requests.push_back(Request(3, 200, Outcome::kOk, 202));
  obs.db_attempts.push_back({3, 201 * kMs});
  RunResult r;
  CheckRetryHistory(obs, &r);
  EXPECT_DOUBLE_EQ(r.metrics.at("db_amplification"), 4.0);
  EXPECT_EQ(r.violations.at("retry-amplification"), 1);
  EXPECT_EQ(Detail(r, "retry-amplification"),
            "4.0 database attempts per failed request > 1.5 (8 attempts for 2 failed requests)");
  EXPECT_EQ(r.violations.count("not-recovered"), 0u);
  EXPECT_DOUBLE_EQ(r.metrics.at("db_peak_load_per_s"), 80.0);  // 8 attempts in one 100 ms
}

// One request per 500 ms window after the blip; they fail until 11.5 s: recovery takes 11 s. The
// last request (15.5 s) opens a window the arrivals cut short, which is not judged: 29 windows.
TEST(RetryChecker, NotRecoveredNamesTheLastUnhealthyWindow) {
  RetryObservations obs;
  obs.blip_start_ns = 0;
  obs.blip_end_ns = 1000 * kMs;
  for (uint64_t k = 0; k < 30; ++k) {
    const int64_t t = 1000 + static_cast<int64_t>(k) * 500;
    obs.requests.push_back(Request(k + 1, t, k <= 21 ? Outcome::kFail : Outcome::kOk, t + 1));
    obs.db_attempts.push_back({k + 1, t * kMs});
  }
  RunResult r;
  CheckRetryHistory(obs, &r);
  EXPECT_DOUBLE_EQ(r.metrics.at("recovery_s"), 11.0);
  EXPECT_EQ(r.violations.count("retry-amplification"), 0u);  // one attempt per failure
  EXPECT_EQ(r.violations.at("not-recovered"), 1);
  EXPECT_EQ(Detail(r, "not-recovered"),
            "recovered 11.000000 s after the blip's end > 10 s: the last unhealthy 500 ms window, "
            "at 11.500000 s, was 0% successful (0 of 1) < 90%; 22 of 29 windows were unhealthy");
  // A request left unanswered at the end counts as failed: never recovered.
  obs.requests[28].outcome = Outcome::kPending;
  RunResult never;
  CheckRetryHistory(obs, &never);
  EXPECT_EQ(Detail(never, "not-recovered"),
            "never recovered after the blip: the last unhealthy 500 ms window, at 15.000000 s, was "
            "0% successful (0 of 1) < 90%; 23 of 29 windows were unhealthy");
  // ...but not in the window the arrivals cut short (regression: backpressure seed 3307).
  obs.requests[28].outcome = Outcome::kOk;
  obs.requests.back().outcome = Outcome::kPending;
  RunResult partial;
  CheckRetryHistory(obs, &partial);
  EXPECT_DOUBLE_EQ(partial.metrics.at("recovery_s"), 11.0);
}

// A trigger phase of 1 s at capacity 10/s with 20 requests offered: at most 10 could be served.
BackpressureObservations TriggerPhase(int served) {
  BackpressureObservations obs;
  obs.phases.push_back({0, 100, false});
  obs.phases.push_back({1000 * kMs, 10, true});
  for (int i = 0; i < 20; ++i) {
    const int64_t t = 1000 + i * 50;
    obs.requests.push_back(
        Request(static_cast<uint64_t>(i), t, i < served ? Outcome::kOk : Outcome::kFail, t + 10));
  }
  obs.phases.push_back({2000 * kMs, 100, false});
  obs.requests.push_back(Request(99, 2200, Outcome::kOk, 2210));
  // Completes the window [2 s, 3 s): only complete windows are judged for recovery.
  obs.requests.push_back(Request(100, 3000, Outcome::kOk, 3010));
  return obs;
}

TEST(BackpressureChecker, GoodputIsMeasuredAgainstRemainingCapacity) {
  BackpressureObservations obs = TriggerPhase(8);  // 8 of a possible 10: 80%
  obs.queue_samples.push_back({2100 * kMs, 150, 100});
  RunResult r;
  CheckBackpressureHistory(obs, &r);
  EXPECT_NEAR(r.metrics.at("goodput_ratio"), 0.8, 1e-9);
  EXPECT_EQ(r.violations.count("goodput-collapse"), 0u);
  EXPECT_EQ(r.violations.at("queue-over-bound"), 1);
  EXPECT_EQ(Detail(r, "queue-over-bound"), "dependency queue held 150 at 2.100000 s > bound 100");
  EXPECT_EQ(r.violations.count("not-recovered"), 0u);
}

TEST(BackpressureChecker, FlagsCollapseAndNoRecoveryWithTheirFigures) {
  BackpressureObservations obs = TriggerPhase(3);  // 3 of a possible 10: 30%
  obs.requests[20].outcome = Outcome::kFail;       // and after the trigger, nothing succeeds
  obs.queue_samples.push_back({2100 * kMs, 40, 100});
  RunResult r;
  CheckBackpressureHistory(obs, &r);
  EXPECT_EQ(r.violations.at("goodput-collapse"), 1);
  EXPECT_EQ(Detail(r, "goodput-collapse"),
            "goodput while the trigger was on was 30% of what capacity allowed < 70% (3 served of "
            "10 possible)");
  EXPECT_EQ(r.violations.at("not-recovered"), 1);
  EXPECT_EQ(
      Detail(r, "not-recovered"),
      "never recovered after the trigger's end: the last unhealthy 1 s window, at 2.000000 s, "
      "was 0% successful (0 of 1) < 90%; 1 of 1 windows were unhealthy");
  EXPECT_EQ(r.violations.count("queue-over-bound"), 0u);
}

TEST(BackpressureChecker, AcceptsAHealthyRecord) {
  BackpressureObservations obs = TriggerPhase(10);
  obs.queue_samples.push_back({2100 * kMs, 100, 100});  // at the bound is within it
  RunResult r;
  CheckBackpressureHistory(obs, &r);
  EXPECT_EQ(r.violation_count(), 0);
  EXPECT_TRUE(r.violation_details.empty());
}

// Regression, backpressure hardened seed 3307: one request invoked as the arrivals stopped and
// shed by the bulkhead made the cut-short last window "0% successful". It is not a window.
TEST(BackpressureChecker, TheWindowTheArrivalsCutShortIsNotJudged) {
  BackpressureObservations obs = TriggerPhase(10);
  obs.requests.push_back(Request(101, 3001, Outcome::kFail, 3002));
  RunResult r;
  CheckBackpressureHistory(obs, &r);
  EXPECT_EQ(r.violations.count("not-recovered"), 0u);
  EXPECT_DOUBLE_EQ(r.metrics.at("recovery_s"), 0.0);
}

}  // namespace
}  // namespace faultline::lab
