// Seeded tests of the `distributed-txn` scenario and checker unit tests on hand-built observations.
#include <gtest/gtest.h>

#include <string>

#include "faultline/lab/scenario.h"
#include "src/lab/scenarios.h"
#include "src/lab/txn_observations.h"
#include "tests/sim/scenario_test_util.h"

namespace faultline::lab {
namespace {

RunResult RunSeed(std::string_view variant, uint64_t seed) {
  return RunOne("distributed-txn", variant, seed).value();
}

// Saga + outbox + inbox: every invariant on every seed, and the faults did bite: aimed crashes,
// republished batches and redeliveries that the inboxes absorbed, compensations that ran.
TEST(DistributedTxn, HardenedHoldsOnARangeOfSeeds) {
  double compensated = 0, duplicates = 0, republished = 0, redeliveries = 0, crashes = 0;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    const RunResult r = RunSeed("hardened", seed);
    EXPECT_EQ(r.violation_count(), 0) << "seed " << seed << ": " << Describe(r);
    EXPECT_GT(r.metrics.at("completed"), 50) << seed;  // it moved money, not just refused
    EXPECT_GT(r.metrics.at("quiescent_points"), 0) << seed;
    EXPECT_EQ(r.metrics.at("money_drift"), 0) << seed;
    EXPECT_GT(r.metrics.at("broker_restarts"), 1) << seed;
    compensated += r.metrics.at("compensated");
    duplicates += r.metrics.at("inbox_duplicates");
    republished += r.metrics.at("relay_republished") + r.metrics.at("publish_duplicates");
    redeliveries += r.metrics.at("redeliveries");
    crashes += r.metrics.at("crashes_aimed");
  }
  EXPECT_GT(compensated, 100);
  EXPECT_GT(duplicates, 100);
  EXPECT_GT(republished, 100);
  EXPECT_GT(redeliveries, 100);
  EXPECT_GT(crashes, 100);
}

// Dual write: a publish that fails leaves a committed leg without its event, a crash or an abort
// after the publish leaves an event for a leg that rolled back, and unkeyed retries apply twice.
TEST(DistributedTxn, NaiveLosesAndInventsEvents) {
  int lost = 0, phantom = 0, twice = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const RunResult r = RunSeed("naive", seed);
    lost += Count(r, "lost-event") > 0;
    phantom += Count(r, "phantom-event") > 0;
    twice += Count(r, "applied-twice") > 0;
    EXPECT_EQ(Count(r, "blocked-in-doubt"), 0) << seed;  // no locks: it never blocks
  }
  EXPECT_GE(lost, 12);  // 14 of 20 when written
  EXPECT_GE(phantom, 16);
  EXPECT_GE(twice, 10);
  const RunResult first = RunSeed("naive", 1);
  EXPECT_NE(first.violation_details.at("lost-event").find("never consumed"), std::string::npos);
  EXPECT_NE(first.violation_details.at("phantom-event").find("no shard committed"),
            std::string::npos);
}

// 2PC is safe (no lost or phantom event, money conserved, no partial transfer) but blocks: after
// the coordinator crashes between the votes and the decision, prepared shards hold their locks in
// doubt until it is back.
TEST(DistributedTxn, TwoPhaseCommitBlocksButStaysSafe) {
  int blocked = 0;
  double crashes_after_prepare = 0, max_ms = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const RunResult r = RunSeed("2pc", seed);
    blocked += Count(r, "blocked-in-doubt") > 0;
    for (const char* safe : {"lost-event", "phantom-event", "applied-twice", "partial-transfer",
                             "money-not-conserved"}) {
      EXPECT_EQ(Count(r, safe), 0) << seed << " " << safe << ": " << Describe(r);
    }
    crashes_after_prepare += r.metrics.at("coordinator_crashes_after_prepare");
    max_ms = std::max(max_ms, r.metrics.at("blocked_max_ms"));
  }
  EXPECT_GE(blocked, 15);
  EXPECT_GT(crashes_after_prepare, 10);
  EXPECT_GT(max_ms, 1000);
  const RunResult first = RunSeed("2pc", 1);
  EXPECT_NE(first.violation_details.at("blocked-in-doubt").find("in doubt"), std::string::npos);
}

TEST(DistributedTxn, SameSeedSameRun) {
  for (const char* variant : {"naive", "2pc", "hardened"}) {
    const RunResult a = RunSeed(variant, 77);
    const RunResult b = RunSeed(variant, 77);
    EXPECT_EQ(a.hash, b.hash) << variant;
    EXPECT_EQ(a.events, b.events) << variant;
    EXPECT_EQ(a.metrics, b.metrics) << variant;
    EXPECT_NE(a.hash, RunSeed(variant, 78).hash) << variant;
  }
}

// ---- the checker on hand-built observations ----

TxnObservations Transfer(bool credit_applied) {
  TxnObservations obs;
  obs.initial_total = 2000;
  obs.starts.push_back(TxnStart{"T1", "s0/a0", "s1/a0", 100, 10});
  obs.effects.push_back(TxnEffect{"T1/debit", "T1", "s0/a0", -100, true, 0, 20});
  if (credit_applied) {
    obs.effects.push_back(TxnEffect{"T1/credit", "T1", "s1/a0", 100, true, 1, 30});
  }
  obs.ends.push_back(TxnEnd{"T1", 40});
  obs.consumed.push_back(TxnConsumed{"T1/debit", true, 50});
  if (credit_applied) obs.consumed.push_back(TxnConsumed{"T1/credit", true, 60});
  obs.balances = {TxnBalances{0, 900, 100}, TxnBalances{1, credit_applied ? 1100 : 1000, 100}};
  return obs;
}

TEST(TxnChecker, ACompleteTransferPasses) {
  RunResult r;
  CheckDistributedTxn(Transfer(true), 1000, &r);
  EXPECT_EQ(r.violation_count(), 0) << Describe(r);
  EXPECT_EQ(r.metrics.at("completed"), 1);
  EXPECT_EQ(r.metrics.at("quiescent_points"), 1);
}

TEST(TxnChecker, AHalfTransferIsPartialAndNotConserved) {
  RunResult r;
  CheckDistributedTxn(Transfer(false), 1000, &r);
  EXPECT_EQ(Count(r, "partial-transfer"), 1);
  EXPECT_EQ(Count(r, "money-not-conserved"), 2);  // the quiescent point and the final balances
}

TEST(TxnChecker, LostPhantomTwiceStuck) {
  TxnObservations obs = Transfer(true);
  obs.consumed.erase(obs.consumed.begin());                        // T1/debit never consumed
  obs.consumed.push_back(TxnConsumed{"T9/debit", true, 70});       // nobody committed it
  obs.consumed.push_back(TxnConsumed{"T1/credit", true, 80});      // applied again
  obs.consumed.push_back(TxnConsumed{"T1/credit", false, 90});     // skipped: fine
  obs.starts.push_back(TxnStart{"T2", "s0/a1", "s1/a1", 5, 15});   // never ends
  RunResult r;
  CheckDistributedTxn(obs, 1000, &r);
  EXPECT_EQ(Count(r, "lost-event"), 1);
  EXPECT_EQ(Count(r, "phantom-event"), 1);
  EXPECT_EQ(Count(r, "applied-twice"), 1);
  EXPECT_EQ(Count(r, "stuck-transfer"), 1);
  EXPECT_EQ(Count(r, "money-not-conserved"), 0);
}

TEST(TxnChecker, LocksHeldInDoubtPastTheBoundAreBlocked) {
  TxnObservations obs = Transfer(true);
  obs.locks.push_back(TxnLock{"T1", "s0/a0", 0, 15, 15 + kBlockedBoundNs});  // at the bound: ok
  obs.locks.push_back(TxnLock{"T1", "s1/a0", 1, 15, 16 + kBlockedBoundNs});
  obs.locks.push_back(TxnLock{"T3", "s1/a2", 1, 15, kTxnNever});
  RunResult r;
  CheckDistributedTxn(obs, 3 * kBlockedBoundNs, &r);
  EXPECT_EQ(Count(r, "blocked-in-doubt"), 2);
  EXPECT_EQ(r.metrics.at("blocked_transfers"), 2);
  EXPECT_EQ(r.metrics.at("locks_never_released"), 1);
}

}  // namespace
}  // namespace faultline::lab
