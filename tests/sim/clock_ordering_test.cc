// Seeded tests of the `clock-ordering` scenario and its history checker.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "faultline/lab/scenario.h"
#include "faultline/time/hlc.h"
#include "src/lab/clock_check.h"
#include "src/lab/scenarios.h"
#include "tests/sim/scenario_test_util.h"

namespace faultline::lab {
namespace {

RunResult RunSeed(std::string_view variant, uint64_t seed) {
  return RunOne("clock-ordering", variant, seed).value();
}

std::string Detail(const RunResult& r, const std::string& name) {
  auto it = r.violation_details.find(name);
  return it == r.violation_details.end() ? "" : it->second;
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
    for (const auto& [name, count] : r.violations) {
      EXPECT_FALSE(Detail(r, name).empty()) << name << " seed " << seed;
    }
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

// ---- the checker on hand-built records ----

// A commit timestamp `us` microseconds (plus `logical`) after the record's origin.
uint64_t Ts(uint64_t us, uint64_t logical = 0) {
  return HlcTimestamp::FromParts(us, logical).raw();
}
constexpr int64_t kMs = 1'000'000;

class Record {
 public:
  // An acknowledged write: invoked at `invoke_ms`, acknowledged by `node` at `ack_ms` with `ts`.
  void Write(uint64_t id, uint64_t key, std::vector<uint64_t> deps, uint64_t ts, uint32_t node,
             int64_t invoke_ms, int64_t ack_ms) {
    obs_.writes.push_back(ClockWrite{id, key, std::move(deps), 0, invoke_ms * kMs, Outcome::kOk,
                                     ack_ms * kMs, ts, node});
  }
  void Failed(uint64_t id, uint64_t key, std::vector<uint64_t> deps, int64_t invoke_ms) {
    obs_.writes.push_back(
        ClockWrite{id, key, std::move(deps), 0, invoke_ms * kMs, Outcome::kFail, invoke_ms * kMs});
  }
  void ReadBack(uint64_t after, uint64_t key, std::vector<uint64_t> ids, int64_t ms) {
    obs_.reads.push_back(ClockRead{0, key, after, std::move(ids), ms * kMs});
  }
  void Final(uint32_t node, uint64_t key, std::vector<uint64_t> ids) {
    obs_.finals.push_back(ClockFinal{node, key, std::move(ids), 100 * kMs});
  }
  void SetOrigin(int64_t us) { obs_.ts_origin_us = us; }
  RunResult Check() const {
    RunResult r;
    CheckClockHistory(obs_, &r);
    return r;
  }
  const ClockObservations& observations() const { return obs_; }

 private:
  ClockObservations obs_;
};

TEST(ClockChecker, AcceptsACausallyOrderedConvergedRecord) {
  Record h;
  h.Write(1, 0, {}, Ts(100), 0, 10, 20);
  h.Write(2, 0, {1}, Ts(200), 1, 30, 40);  // read 1, then wrote 2: 2 supersedes 1 legitimately
  h.ReadBack(2, 0, {2}, 41);
  h.Failed(3, 0, {2}, 50);  // never acknowledged: nothing to order, nothing to lose
  h.Final(0, 0, {2});
  h.Final(1, 0, {2});
  const RunResult r = h.Check();
  EXPECT_EQ(r.violation_count(), 0);
  EXPECT_TRUE(r.violation_details.empty());
  EXPECT_EQ(r.metrics.at("writes_acked"), 2);
}

// The effect (2) carries a smaller timestamp than its cause (1), and loses to it.
TEST(ClockChecker, FlagsCausalityViolationAndLostUpdate) {
  Record h;
  h.SetOrigin(1'000'000);  // timestamps read as seconds since the origin
  h.Write(12, 0, {}, Ts(13'004'700), 0, 10, 20);
  h.Write(17, 0, {12}, Ts(13'004'500, 3), 2, 30, 40);
  h.ReadBack(17, 0, {12}, 41);
  h.Final(0, 0, {12});
  const RunResult r = h.Check();
  EXPECT_EQ(r.violations.at("causality-violation"), 1);
  EXPECT_EQ(Detail(r, "causality-violation"),
            "write w17 (n2, ts 12.004500+3) not above its cause w12 (n0, ts 12.004700)");
  EXPECT_EQ(r.violations.at("lost-update"), 1);  // counted once, though the final read agrees
  EXPECT_EQ(Detail(r, "lost-update"),
            "write w17 (key 0, acked by n2 at 0.040000 s, ts 12.004500+3) read back there as "
            "[w12], all in its causal past");
}

// Two writes that never saw each other: keeping only one is a silent loss; keeping both is not.
TEST(ClockChecker, ConcurrentWriteLostUnlessKeptAsSibling) {
  Record lww;
  lww.Write(1, 0, {}, Ts(100), 0, 10, 20);
  lww.Write(2, 0, {}, Ts(110), 1, 10, 21);
  lww.Final(0, 0, {2});
  const RunResult r = lww.Check();
  EXPECT_EQ(r.violations.at("concurrent-write-lost"), 1);
  EXPECT_EQ(Detail(r, "concurrent-write-lost"),
            "write w1 (key 0, acked by n0 at 0.020000 s, ts 0.000100) missing from the final "
            "values [w2], some concurrent with it");
  Record dvv;
  dvv.Write(1, 0, {}, Ts(100), 0, 10, 20);
  dvv.Write(2, 0, {}, Ts(110), 1, 10, 21);
  dvv.Final(0, 0, {1, 2});
  EXPECT_EQ(dvv.Check().violation_count(), 0);
}

// Write 2 starts after write 1 was acknowledged, yet gets a smaller timestamp.
TEST(ClockChecker, FlagsExternalConsistencyViolation) {
  Record h;
  h.Write(1, 0, {}, Ts(500), 0, 10, 20);
  h.Write(2, 1, {}, Ts(400), 1, 25, 30);
  h.Final(0, 0, {1});
  h.Final(0, 1, {2});
  const RunResult r = h.Check();
  EXPECT_EQ(r.violations.at("external-consistency-violation"), 1);
  EXPECT_EQ(Detail(r, "external-consistency-violation"),
            "write w2 (n1, ts 0.000400), invoked at 0.025000 s, not above w1 (n0, ts 0.000500), "
            "acked at 0.020000 s");
  // Overlapping in time, the same stamps are fine.
  Record ok;
  ok.Write(1, 0, {}, Ts(500), 0, 10, 20);
  ok.Write(2, 1, {}, Ts(400), 1, 15, 30);
  ok.Final(0, 0, {1});
  ok.Final(0, 1, {2});
  EXPECT_EQ(ok.Check().violation_count(), 0);
}

TEST(ClockChecker, FlagsDivergedReplicasAndVanishedWrites) {
  Record h;
  h.Write(1, 0, {}, Ts(100), 0, 10, 20);
  h.ReadBack(1, 0, {}, 21);
  h.Final(0, 0, {});
  h.Final(1, 0, {1});
  const RunResult r = h.Check();
  EXPECT_EQ(r.violations.at("write-vanished"), 1);
  EXPECT_EQ(Detail(r, "write-vanished"),
            "write w1 (key 0, acked by n0 at 0.020000 s, ts 0.000100) read back there as []");
  EXPECT_EQ(r.violations.at("replicas-diverged"), 1);
  EXPECT_EQ(Detail(r, "replicas-diverged"), "key 0: n1 ended with [w1], n0 with []");
}

// The export for `faultline replay --history`: the Jepsen-shaped values, in time order.
TEST(ClockChecker, HistoryExportCarriesTheRecordedValues) {
  Record h;
  h.Write(1, 2, {}, Ts(100), 0, 10, 20);
  h.ReadBack(1, 2, {1}, 20);
  h.Final(0, 2, {1});
  const sim::History history = ClockHistory(h.observations());
  ASSERT_EQ(history.size(), 6u);
  EXPECT_EQ(history.ops()[0].value, "{\"id\":1,\"key\":2,\"deps\":[]}");
  EXPECT_EQ(history.ops()[1].value,
            "{\"id\":1,\"key\":2,\"deps\":[],\"ts\":" + std::to_string(Ts(100)) + ",\"node\":0}");
  EXPECT_EQ(history.ops()[3].value, "{\"key\":2,\"after\":1,\"ids\":[1]}");
  EXPECT_EQ(history.ops()[5].f, "final");
}

}  // namespace
}  // namespace faultline::lab
