// Seeded tests of the retry-amplification and backpressure scenarios and their checkers.
#include <gtest/gtest.h>

#include <string>

#include "faultline/lab/scenario.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

RunResult RunSeed(std::string_view scenario, std::string_view variant, uint64_t seed) {
  return RunOne(scenario, variant, seed).value();
}

// Retries at every layer multiply: each failed user request costs the database 3 x 3 x 3 attempts.
TEST(RetryAmplification, NaiveMultipliesDatabaseAttempts27Times) {
  for (uint64_t seed = 1; seed <= 2; ++seed) {
    const RunResult r = RunSeed("retry-amplification", "naive", seed);
    EXPECT_DOUBLE_EQ(r.metrics.at("db_amplification"), 27.0);
    EXPECT_EQ(r.violations.count("retry-amplification"), 1u);
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

// ---- the checkers on hand-built histories ----

void Add(sim::History& h, int64_t p, sim::OpType t, const char* f, const std::string& v,
         int64_t ms) {
  h.Add(p, t, f, v, ms * 1'000'000);
}

TEST(RetryChecker, AmplificationIsAttemptsPerFailedRequest) {
  sim::History h;
  Add(h, -2, sim::OpType::kInfo, "blip-start", "null", 0);
  for (int req = 1; req <= 2; ++req) {
    const std::string v = "{\"req\":" + std::to_string(req) + "}";
    Add(h, req, sim::OpType::kInvoke, "request", v, req * 10);
    for (int a = 0; a < 4; ++a) Add(h, -1, sim::OpType::kInfo, "db-attempt", v, req * 10 + 1);
    Add(h, req, sim::OpType::kFail, "request", v, req * 10 + 2);
  }
  Add(h, -2, sim::OpType::kInfo, "blip-end", "null", 100);
  Add(h, 3, sim::OpType::kInvoke, "request", "{\"req\":3}", 200);
  Add(h, -1, sim::OpType::kInfo, "db-attempt", "{\"req\":3}", 201);
  Add(h, 3, sim::OpType::kOk, "request", "{\"req\":3}", 202);
  RunResult r;
  CheckRetryHistory(h, &r);
  EXPECT_DOUBLE_EQ(r.metrics.at("db_amplification"), 4.0);
  EXPECT_EQ(r.violations.at("retry-amplification"), 1);
  EXPECT_EQ(r.violations.count("not-recovered"), 0u);
}

TEST(BackpressureChecker, GoodputIsMeasuredAgainstRemainingCapacity) {
  sim::History h;
  Add(h, -2, sim::OpType::kInfo, "capacity", "{\"rps\":100,\"trigger\":false}", 0);
  Add(h, -2, sim::OpType::kInfo, "capacity", "{\"rps\":10,\"trigger\":true}", 1000);
  // 20 requests offered in the 1 s trigger phase, capacity 10: 8 served is 80%.
  for (int i = 0; i < 20; ++i) {
    const std::string v = "{\"req\":" + std::to_string(i) + "}";
    Add(h, i, sim::OpType::kInvoke, "request", v, 1000 + i * 50);
    Add(h, i, i < 8 ? sim::OpType::kOk : sim::OpType::kFail, "request", v, 1000 + i * 50 + 10);
  }
  Add(h, -2, sim::OpType::kInfo, "capacity", "{\"rps\":100,\"trigger\":false}", 2000);
  Add(h, -3, sim::OpType::kInfo, "queue-depth", "{\"depth\":150,\"bound\":100}", 2100);
  Add(h, 99, sim::OpType::kInvoke, "request", "{\"req\":99}", 2200);
  Add(h, 99, sim::OpType::kOk, "request", "{\"req\":99}", 2210);
  RunResult r;
  CheckBackpressureHistory(h, &r);
  EXPECT_NEAR(r.metrics.at("goodput_ratio"), 0.8, 1e-9);
  EXPECT_EQ(r.violations.count("goodput-collapse"), 0u);
  EXPECT_EQ(r.violations.at("queue-over-bound"), 1);
  EXPECT_EQ(r.violations.count("not-recovered"), 0u);
}

}  // namespace
}  // namespace faultline::lab
