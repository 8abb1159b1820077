// Seeded tests of the `selftest` scenario and its checker.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "faultline/lab/runner.h"
#include "faultline/lab/scenario.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

RunResult RunSeed(std::string_view variant, uint64_t seed) {
  return RunOne("selftest", variant, seed).value();
}

// The hardened counter (durable own slot before ack + gossip) must keep every acknowledged
// increment, invent none and converge, on every seed, under the full nemesis.
TEST(Selftest, HardenedHoldsOnEverySeed) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const RunResult r = RunSeed("hardened", seed);
    EXPECT_EQ(r.violation_count(), 0) << "seed " << seed;
    EXPECT_GT(r.metrics.at("acked_increments"), 100) << "the workload must actually run";
  }
}

// The naive counter must fail, and for the reasons the design predicts: lost messages and crashes
// lose acknowledged increments, duplicated messages invent increments.
TEST(Selftest, NaiveFailsForTheExpectedReasons) {
  std::set<std::string> seen;
  int failing = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const RunResult r = RunSeed("naive", seed);
    if (r.violation_count() > 0) ++failing;
    for (const auto& [name, count] : r.violations) seen.insert(name);
  }
  EXPECT_GE(failing, 36);
  EXPECT_TRUE(seen.count("lost-acknowledged-increment"));
  EXPECT_TRUE(seen.count("phantom-increment"));
  EXPECT_TRUE(seen.count("replicas-diverged"));
}

// The in-memory G-counter fixes loss and duplication but still acknowledges before durability: it
// must never invent increments, yet lose acknowledged ones on some seeds (crash right after acks).
TEST(Selftest, GossipWithoutDurabilityLosesAcknowledgedIncrements) {
  int lost = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const RunResult r = RunSeed("gossip", seed);
    EXPECT_EQ(r.violations.count("phantom-increment"), 0u) << "seed " << seed;
    lost += r.violations.count("lost-acknowledged-increment") ? 1 : 0;
  }
  EXPECT_GT(lost, 0);
}

sim::History MakeHistory(int acked, int failed, std::vector<int> reads) {
  sim::History h;
  int64_t t = 0;
  for (int i = 0; i < acked; ++i) {
    h.Add(0, sim::OpType::kInvoke, "inc", "1", t++);
    h.Add(0, sim::OpType::kOk, "inc", "1", t++);
  }
  for (int i = 0; i < failed; ++i) {
    h.Add(1, sim::OpType::kInvoke, "inc", "1", t++);
    h.Add(1, sim::OpType::kFail, "inc", "1", t++);
  }
  for (size_t i = 0; i < reads.size(); ++i) {
    h.Add(100 + static_cast<int64_t>(i), sim::OpType::kInvoke, "read", "null", t++);
    h.Add(100 + static_cast<int64_t>(i), sim::OpType::kOk, "read", std::to_string(reads[i]), t++);
  }
  return h;
}

// The checker judges the history alone: the same verdicts whichever variant produced it.
TEST(CounterChecker, AcceptsAConsistentHistory) {
  RunResult r;
  CheckCounterHistory(MakeHistory(5, 2, {5, 5, 5}), &r);
  EXPECT_EQ(r.violation_count(), 0);
}

TEST(CounterChecker, FlagsALostAcknowledgedIncrement) {
  RunResult r;
  CheckCounterHistory(MakeHistory(5, 0, {4, 5, 5}), &r);
  EXPECT_EQ(r.violations.at("lost-acknowledged-increment"), 1);
  EXPECT_EQ(r.violations.at("replicas-diverged"), 1);
}

// A failed increment was certainly not applied: counting it is a phantom.
TEST(CounterChecker, FlagsAPhantomIncludingFailedOps) {
  RunResult r;
  CheckCounterHistory(MakeHistory(3, 2, {4, 4}), &r);
  EXPECT_EQ(r.violations.at("phantom-increment"), 2);
  EXPECT_EQ(r.violations.count("replicas-diverged"), 0u);
}

// An indeterminate (info) increment may or may not count: both outcomes are legal.
TEST(CounterChecker, InfoOperationsMayOrMayNotCount) {
  for (int read : {3, 4}) {
    sim::History h = MakeHistory(3, 0, {});
    h.Add(2, sim::OpType::kInvoke, "inc", "1", 100);
    h.Add(2, sim::OpType::kInfo, "inc", "1", 101);
    h.Add(9, sim::OpType::kInvoke, "read", "null", 102);
    h.Add(9, sim::OpType::kOk, "read", std::to_string(read), 103);
    RunResult r;
    CheckCounterHistory(h, &r);
    EXPECT_EQ(r.violation_count(), 0) << read;
  }
}

// The lab verdict: hardened passes only with zero violations; naive passes only when it fails on
// at least its minimum fraction of seeds.
TEST(Summarize, VerdictsFollowTheContract) {
  const Scenario* s = FindScenario("selftest");
  VariantSpec hardened{"hardened", true, 0, ""};
  VariantSpec naive{"naive", false, 0.5, ""};
  RunResult clean;
  RunResult dirty;
  dirty.Violate("x");
  EXPECT_TRUE(Summarize(*s, hardened, {1, 2}, {clean, clean}).passed);
  EXPECT_FALSE(Summarize(*s, hardened, {1, 2}, {clean, dirty}).passed);
  EXPECT_TRUE(Summarize(*s, naive, {1, 2}, {clean, dirty}).passed);
  EXPECT_FALSE(Summarize(*s, naive, {1, 2, 3}, {clean, clean, dirty}).passed);
  const VariantSummary sum = Summarize(*s, naive, {7, 3}, {dirty, dirty});
  EXPECT_EQ(sum.failing_seeds, (std::vector<uint64_t>{3, 7}));
  EXPECT_EQ(sum.violations, 2);
}

}  // namespace
}  // namespace faultline::lab
