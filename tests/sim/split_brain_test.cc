// Seeded tests of the `split-brain` scenario and its history checker.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "faultline/lab/scenario.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

RunResult RunSeed(std::string_view variant, uint64_t seed) {
  return RunOne("split-brain", variant, seed).value();
}

int64_t Count(const RunResult& r, const std::string& name) {
  auto it = r.violations.find(name);
  return it == r.violations.end() ? 0 : it->second;
}

std::string Describe(const RunResult& r) {
  std::string s;
  for (const auto& [name, count] : r.violations) s += name + "=" + std::to_string(count) + " ";
  return s;
}

// Majority leases + self-fencing + tokens checked by the store: no stale write, never two nodes
// able to act at once, a linearizable history, a leader soon after the heal and after the crash.
TEST(SplitBrain, HardenedHoldsOnEverySeed) {
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    const RunResult r = RunSeed("hardened", seed);
    EXPECT_EQ(r.violation_count(), 0) << "seed " << seed << ": " << Describe(r);
    EXPECT_EQ(r.metrics.at("linearizable"), 1.0) << seed;
    EXPECT_GT(r.metrics.at("client_ok_ops"), 500) << seed;  // it did serve, not just refuse
    EXPECT_GT(r.metrics.at("store_writes"), 100) << seed;
  }
}

// A node's first restart is incarnation 1. Its acceptor must stay quiet then too: seed 7000000995
// restarts n4 (crashed at 13.06 s) while the paused leader n0 still holds a lease that n4's acceptor
// had accepted; answering at once, n4's acceptor joined n1 and n3 in granting n4 a second lease.
TEST(SplitBrain, HardenedAcceptorQuietAfterFirstRestart) {
  const RunResult r = RunSeed("hardened", 7000000995);
  EXPECT_EQ(r.violation_count(), 0) << Describe(r);
}

// Self-election on a heartbeat timeout: a partitioned or paused leader goes on leading, so two
// nodes act at once, the store takes a deposed leader's writes, and clients read stale values.
TEST(SplitBrain, NaiveActsTwiceAndWritesStale) {
  int stale = 0;
  int nonlinear = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const RunResult r = RunSeed("naive", seed);
    EXPECT_GT(Count(r, "two-leaders"), 0) << seed;
    stale += Count(r, "stale-write-accepted") > 0;
    nonlinear += Count(r, "non-linearizable") > 0;
  }
  EXPECT_GE(stale, 4);
  EXPECT_GE(nonlinear, 3);
}

// ---- the checker on hand-built histories ----

class Builder {
 public:
  Builder& Op(int64_t t, int64_t process, sim::OpType type, const std::string& f,
              const std::string& value) {
    h.Add(process, type, f, value, t);
    return *this;
  }
  Builder& Store(int64_t t, uint64_t token, bool ok = true) {
    return Op(t, 1000, ok ? sim::OpType::kOk : sim::OpType::kFail, "store-write",
              "{\"token\":" + std::to_string(token) + ",\"node\":1,\"key\":0,\"value\":1}");
  }
  Builder& Load(int64_t t, uint64_t token) {
    return Op(t, 1000, sim::OpType::kOk, "store-load",
              "{\"token\":" + std::to_string(token) + ",\"node\":1}");
  }
  Builder& Leaders(int64_t t, const std::string& nodes) {
    return Op(t, 2000, sim::OpType::kOk, "leaders", "{\"nodes\":[" + nodes + "]}");
  }
  sim::History h;
};

RunResult Judge(const sim::History& h) {
  RunResult r;
  CheckSplitBrainHistory(h, &r);
  return r;
}

TEST(SplitBrainChecker, AcceptedTokenBelowOneSeenIsStale) {
  Builder b;
  b.Store(1, 5).Store(2, 5).Store(3, 7).Store(4, 5).Store(5, 6, /*ok=*/false);
  const RunResult r = Judge(b.h);
  EXPECT_EQ(Count(r, "stale-write-accepted"), 1);
  EXPECT_EQ(r.metrics.at("fenced_rejections"), 1);
}

TEST(SplitBrainChecker, ALoadRaisesTheTokenBar) {
  // A successor's load with token 9 happened before the old holder's write with 5 landed.
  Builder b;
  b.Store(1, 5).Load(2, 9).Store(3, 5);
  EXPECT_EQ(Count(Judge(b.h), "stale-write-accepted"), 1);
  Builder ok;
  ok.Store(1, 5).Load(2, 9).Store(3, 9);
  EXPECT_EQ(Judge(ok.h).violation_count(), 0);
}

TEST(SplitBrainChecker, OverlappingLeadersAreCountedAndTimed) {
  Builder b;
  b.Leaders(0, "0").Leaders(1'000'000, "0,3").Leaders(4'000'000, "3").Leaders(9'000'000, "1,3")
      .Leaders(10'000'000, "");
  const RunResult r = Judge(b.h);
  EXPECT_EQ(Count(r, "two-leaders"), 2);
  EXPECT_DOUBLE_EQ(r.metrics.at("dual_leader_ms"), 4.0);
  Builder handover;  // one leader ends before the next begins
  handover.Leaders(0, "0").Leaders(5, "").Leaders(9, "2");
  EXPECT_EQ(Count(Judge(handover.h), "two-leaders"), 0);
}

TEST(SplitBrainChecker, StaleReadIsNotLinearizable) {
  Builder b;
  b.Op(1, 0, sim::OpType::kInvoke, "write", R"({"key":0,"value":1})")
      .Op(2, 0, sim::OpType::kOk, "write", R"({"key":0,"value":1})")
      .Op(3, 1, sim::OpType::kInvoke, "read", R"({"key":0,"value":null})")
      .Op(4, 1, sim::OpType::kOk, "read", R"({"key":0,"value":null})");
  const RunResult r = Judge(b.h);
  EXPECT_EQ(Count(r, "non-linearizable"), 1);
  EXPECT_EQ(r.metrics.at("linearizable"), 0.0);
  // An indeterminate write may or may not have happened: both reads are then fine.
  Builder info;
  info.Op(1, 0, sim::OpType::kInvoke, "write", R"({"key":0,"value":1})")
      .Op(2, 0, sim::OpType::kInfo, "write", R"({"key":0,"value":null})")
      .Op(3, 1, sim::OpType::kInvoke, "read", R"({"key":0,"value":null})")
      .Op(4, 1, sim::OpType::kOk, "read", R"({"key":0,"value":1})")
      .Op(5, 1, sim::OpType::kInvoke, "read", R"({"key":0,"value":null})")
      .Op(6, 1, sim::OpType::kOk, "read", R"({"key":0,"value":1})");
  EXPECT_EQ(Judge(info.h).violation_count(), 0);
}

TEST(SplitBrainChecker, LivenessAfterHealAndFailoverAgainstTheirBounds) {
  Builder b;
  b.Leaders(0, "")
      .Op(100, 3000, sim::OpType::kOk, "heal", R"({"bound_ms":10})")
      .Leaders(3'000'000, "2")
      .Op(4'000'000, 3000, sim::OpType::kOk, "failover-crash", R"({"node":2,"bound_ms":5})")
      .Leaders(4'000'001, "")
      .Leaders(8'000'000, "4");
  RunResult r = Judge(b.h);
  EXPECT_EQ(r.violation_count(), 0) << Describe(r);
  EXPECT_NEAR(r.metrics.at("recovery_ms"), 3.0, 1e-3);
  EXPECT_DOUBLE_EQ(r.metrics.at("failover_ms"), 4.0);

  Builder slow;
  slow.Op(0, 3000, sim::OpType::kOk, "failover-crash", R"({"node":2,"bound_ms":1})")
      .Leaders(1, "2")  // the crashed node itself does not count
      .Leaders(3'000'000, "4");
  EXPECT_EQ(Count(Judge(slow.h), "failover-over-bound"), 1);

  Builder never;
  never.Op(0, 3000, sim::OpType::kOk, "heal", R"({"bound_ms":1})")
      .Op(1, 3000, sim::OpType::kOk, "failover-crash", R"({"node":2,"bound_ms":1})")
      .Leaders(5'000'000, "");
  const RunResult n = Judge(never.h);
  EXPECT_EQ(Count(n, "no-leader-after-heal"), 1);
  EXPECT_EQ(Count(n, "no-failover"), 1);
}

// Same seed, same run: the hash and every figure.
TEST(SplitBrain, SameSeedSameRun) {
  for (const char* variant : {"naive", "hardened"}) {
    const RunResult a = RunSeed(variant, 77);
    const RunResult b = RunSeed(variant, 77);
    EXPECT_EQ(a.hash, b.hash) << variant;
    EXPECT_EQ(a.metrics, b.metrics) << variant;
    EXPECT_EQ(a.violations, b.violations) << variant;
  }
}

}  // namespace
}  // namespace faultline::lab
