// Seeded tests of the `clock-ordering` scenario and its history checker.
#include <gtest/gtest.h>

#include <string>

#include "faultline/lab/scenario.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

RunResult RunSeed(std::string_view variant, uint64_t seed) {
  return RunOne("clock-ordering", variant, seed).value();
}

int64_t Count(const RunResult& r, const std::string& name) {
  auto it = r.violations.find(name);
  return it == r.violations.end() ? 0 : it->second;
}

// HLC + DVV + commit-wait: no causality violation, no lost or vanished write, external consistency,
// convergence — on every seed, with skewed, drifting, jumping clocks and a faulty network.
TEST(ClockOrdering, HardenedHoldsOnEverySeed) {
  for (uint64_t seed = 1; seed <= 25; ++seed) {
    const RunResult r = RunSeed("hardened", seed);
    EXPECT_EQ(r.violation_count(), 0) << "seed " << seed;
    EXPECT_GT(r.metrics.at("writes_acked"), 1000);
    // Commit-wait costs on the order of the error bound (a few ms; more when a pause or a clog
    // of the time service lands in the wait), never the clock skew (up to 500 ms between nodes).
    EXPECT_LT(r.metrics.at("commit_wait_ms_mean"), 25.0);
  }
}

// Wall-clock LWW fails for the reasons the seed gives: effects ordered before causes, and writes
// made after reading another lost to it.
TEST(ClockOrdering, NaiveOrdersEffectsBeforeCausesAndLosesUpdates) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const RunResult r = RunSeed("naive", seed);
    EXPECT_GT(Count(r, "causality-violation"), 0) << seed;
    EXPECT_GT(Count(r, "lost-update"), 0) << seed;
  }
}

// HLC LWW fixes causality (and with it lost updates) but still drops concurrent writes and is not
// externally consistent: the two remaining mechanisms are needed.
TEST(ClockOrdering, HlcFixesCausalityButNotConcurrencyOrExternalConsistency) {
  int concurrent = 0;
  int external = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    const RunResult r = RunSeed("hlc", seed);
    EXPECT_EQ(Count(r, "causality-violation"), 0) << seed;
    EXPECT_EQ(Count(r, "lost-update"), 0) << seed;
    concurrent += Count(r, "concurrent-write-lost") > 0;
    external += Count(r, "external-consistency-violation") > 0;
  }
  EXPECT_GE(concurrent, 5);
  EXPECT_GE(external, 5);
}

// ---- the checker on hand-built histories ----

class History {
 public:
  void Write(uint64_t id, uint64_t key, const std::string& deps, uint64_t ts, uint64_t node,
             int64_t invoke_ns, int64_t ack_ns) {
    const std::string base = "{\"id\":" + std::to_string(id) + ",\"key\":" + std::to_string(key) +
                             ",\"deps\":" + deps;
    ops_.push_back({invoke_ns, sim::OpType::kInvoke, "write", base + "}"});
    ops_.push_back({ack_ns, sim::OpType::kOk, "write",
                    base + ",\"ts\":" + std::to_string(ts) + ",\"node\":" + std::to_string(node) +
                        "}"});
  }
  void ReadBack(uint64_t after, uint64_t key, const std::string& ids, int64_t t) {
    ops_.push_back({t, sim::OpType::kOk, "read",
                    "{\"key\":" + std::to_string(key) + ",\"after\":" + std::to_string(after) +
                        ",\"ids\":" + ids + "}"});
  }
  void Final(uint64_t node, uint64_t key, const std::string& ids, int64_t t) {
    ops_.push_back({t, sim::OpType::kOk, "final",
                    "{\"node\":" + std::to_string(node) + ",\"key\":" + std::to_string(key) +
                        ",\"ids\":" + ids + "}"});
  }
  RunResult Check() {
    std::stable_sort(ops_.begin(), ops_.end(),
                     [](const Op& a, const Op& b) { return a.t < b.t; });
    sim::History h;
    for (const Op& op : ops_) h.Add(0, op.type, op.f, op.value, op.t);
    RunResult r;
    CheckClockHistory(h, &r);
    return r;
  }

 private:
  struct Op {
    int64_t t;
    sim::OpType type;
    std::string f;
    std::string value;
  };
  std::vector<Op> ops_;
};

TEST(ClockChecker, AcceptsACausallyOrderedConvergedHistory) {
  History h;
  h.Write(1, 0, "[]", 100, 0, 10, 20);
  h.Write(2, 0, "[1]", 200, 1, 30, 40);  // read 1, then wrote 2: 2 supersedes 1 legitimately
  h.ReadBack(2, 0, "[2]", 41);
  h.Final(0, 0, "[2]", 100);
  h.Final(1, 0, "[2]", 100);
  EXPECT_EQ(h.Check().violation_count(), 0);
}

// The effect (2) carries a smaller timestamp than its cause (1), and loses to it.
TEST(ClockChecker, FlagsCausalityViolationAndLostUpdate) {
  History h;
  h.Write(1, 0, "[]", 300, 0, 10, 20);
  h.Write(2, 0, "[1]", 200, 1, 30, 40);
  h.ReadBack(2, 0, "[1]", 41);
  h.Final(0, 0, "[1]", 100);
  const RunResult r = h.Check();
  EXPECT_EQ(r.violations.at("causality-violation"), 1);
  EXPECT_EQ(r.violations.at("lost-update"), 1);  // counted once, though the final read agrees
}

// Two writes that never saw each other: keeping only one is a silent loss; keeping both is not.
TEST(ClockChecker, ConcurrentWriteLostUnlessKeptAsSibling) {
  History lww;
  lww.Write(1, 0, "[]", 100, 0, 10, 20);
  lww.Write(2, 0, "[]", 110, 1, 10, 21);
  lww.Final(0, 0, "[2]", 100);
  EXPECT_EQ(lww.Check().violations.at("concurrent-write-lost"), 1);
  History dvv;
  dvv.Write(1, 0, "[]", 100, 0, 10, 20);
  dvv.Write(2, 0, "[]", 110, 1, 10, 21);
  dvv.Final(0, 0, "[1,2]", 100);
  EXPECT_EQ(dvv.Check().violation_count(), 0);
}

// Write 2 starts after write 1 was acknowledged, yet gets a smaller timestamp.
TEST(ClockChecker, FlagsExternalConsistencyViolation) {
  History h;
  h.Write(1, 0, "[]", 500, 0, 10, 20);
  h.Write(2, 1, "[]", 400, 1, 25, 30);
  h.Final(0, 0, "[1]", 100);
  h.Final(0, 1, "[2]", 100);
  EXPECT_EQ(h.Check().violations.at("external-consistency-violation"), 1);
  // Overlapping in time, the same stamps are fine.
  History ok;
  ok.Write(1, 0, "[]", 500, 0, 10, 20);
  ok.Write(2, 1, "[]", 400, 1, 15, 30);
  ok.Final(0, 0, "[1]", 100);
  ok.Final(0, 1, "[2]", 100);
  EXPECT_EQ(ok.Check().violation_count(), 0);
}

TEST(ClockChecker, FlagsDivergedReplicasAndVanishedWrites) {
  History h;
  h.Write(1, 0, "[]", 100, 0, 10, 20);
  h.ReadBack(1, 0, "[]", 21);
  h.Final(0, 0, "[]", 100);
  h.Final(1, 0, "[1]", 100);
  const RunResult r = h.Check();
  EXPECT_EQ(r.violations.at("write-vanished"), 1);
  EXPECT_EQ(r.violations.at("replicas-diverged"), 1);
}

}  // namespace
}  // namespace faultline::lab
