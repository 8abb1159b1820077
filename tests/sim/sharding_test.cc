// Seeded tests of the `sharding` scenario, and checker unit tests on hand-built records.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "faultline/lab/scenario.h"
#include "faultline/sim/history.h"
#include "src/lab/scenarios.h"
#include "src/lab/sharding.h"
#include "tests/sim/scenario_test_util.h"

namespace faultline::lab::sharding {
namespace {

RunResult RunSeed(std::string_view variant, uint64_t seed) {
  return RunOne("sharding", variant, seed).value();
}

// Directory + epochs + load deciders + fenced moves: nothing lost, duplicated, accepted after a
// fence or misrouted, no client error, the hot tenant detected and isolated in time, the load
// even afterwards. And the mechanisms did work: stale routes corrected, requests buffered through
// cutovers, cutovers reversed after crashes, ranges moved.
TEST(Sharding, HardenedHoldsOnARangeOfSeeds) {
  double redirects = 0, buffered = 0, reversals = 0, range_moves = 0, crashes = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const RunResult r = RunSeed("hardened", seed);
    EXPECT_EQ(r.violation_count(), 0) << "seed " << seed << ": " << Describe(r);
    EXPECT_GT(r.metrics.at("writes_acked"), 3000) << seed;
    EXPECT_LE(r.metrics.at("load_max_mean"), 1.10) << seed;
    EXPECT_GT(r.metrics.at("cutovers"), 0) << seed;
    EXPECT_GT(r.metrics.at("faults"), 10) << seed;
    redirects += r.metrics.at("redirects");
    buffered += r.metrics.at("buffered_retries");
    reversals += r.metrics.at("reversals");
    range_moves += r.metrics.at("range_moves");
    crashes += r.metrics.at("crashes_aimed");
  }
  EXPECT_GT(redirects, 100);
  EXPECT_GT(buffered, 100);
  EXPECT_GT(reversals, 5);
  EXPECT_GT(range_moves, 40);
  EXPECT_GT(crashes, 10);
}

// The hot tenant turns hot at 2 s: detected by the deciders within 10 s, isolated on a shard of
// its own (a fenced move of that tenant alone) within 60 s, and after it.
TEST(Sharding, HotTenantDetectedAndIsolatedInTime) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    const RunResult r = RunSeed("hardened", seed);
    const double detect = r.metrics.at("detect_s");
    const double isolate = r.metrics.at("isolate_s");
    EXPECT_GT(detect, 0) << seed;
    EXPECT_LE(detect, 10.0) << seed;
    EXPECT_GE(isolate, detect) << seed;
    EXPECT_LE(isolate, 60.0) << seed;
    EXPECT_EQ(Count(r, "hot-tenant-not-detected"), 0) << seed;
    EXPECT_EQ(Count(r, "hot-tenant-not-isolated"), 0) << seed;
  }
}

// Seeds on which the hot shard was crashed, paused or clogged in turn while the tenant turned hot,
// each of which once detected it late (10.3, 13, 15 and 10.76 s): the deciders now need about
// 1.5 s of the shard's uptime, the balancer polls them every 250 ms, and a finder survives two
// stalls of the range's traffic in a row (seed 4000000000000000337: two clogs, a partition and a
// pause between 3.3 s and 11.5 s).
TEST(Sharding, KeptSeedsDetectInTime) {
  for (uint64_t seed : {uint64_t{172}, uint64_t{1000000000101}, uint64_t{1000000000233},
                        uint64_t{4000000000000000337}}) {
    const RunResult r = RunSeed("hardened", seed);
    EXPECT_EQ(r.violation_count(), 0) << "seed " << seed << ": " << Describe(r);
    EXPECT_LE(r.metrics.at("detect_s"), 10.0) << seed;
  }
}

// Client-side hashing and copy-then-switch: writes that land on a source after its snapshot, or
// come from clients still hashing over the old shard count, are lost; the hot tenant stays where
// its hash puts it, with a third of the others.
TEST(Sharding, NaiveLosesAndMisroutesWrites) {
  int lost = 0, misrouted = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    const RunResult r = RunSeed("naive", seed);
    lost += Count(r, "lost-write") > 0;
    misrouted += Count(r, "misrouted-write") > 0;
    EXPECT_GT(Count(r, "load-imbalance"), 0) << seed;
    EXPECT_GT(r.metrics.at("load_max_mean"), 1.4) << seed;
    EXPECT_EQ(Count(r, "write-after-fence"), 0) << seed;  // it never fences anything
  }
  EXPECT_GE(lost, 9);
  EXPECT_GE(misrouted, 9);
  const RunResult first = RunSeed("naive", 1);
  EXPECT_NE(first.violation_details.at("lost-write").find("final routing names"),
            std::string::npos);
}

TEST(Sharding, SameSeedSameRun) {
  for (const char* variant : {"naive", "hardened"}) {
    const std::vector<VariantSpec> variants = ShardingScenario()->variants();
    RunContext ctx;
    ctx.seed = 42;
    ctx.variant = FindVariant(variants, variant);
    ASSERT_NE(ctx.variant, nullptr);
    sim::History h1, h2;
    ctx.history_out = &h1;
    const RunResult a = ShardingScenario()->Run(ctx);
    ctx.history_out = &h2;
    const RunResult b = ShardingScenario()->Run(ctx);
    EXPECT_EQ(a.hash, b.hash) << variant;
    EXPECT_EQ(a.events, b.events) << variant;
    EXPECT_EQ(a.metrics, b.metrics) << variant;
    EXPECT_EQ(a.violations, b.violations) << variant;
    ASSERT_EQ(h1.size(), h2.size()) << variant;
    EXPECT_GT(h1.size(), 1000u) << variant;
    for (size_t i = 0; i < h1.size(); i += 97) {
      EXPECT_EQ(h1.ops()[i].value, h2.ops()[i].value) << variant << " op " << i;
    }
    EXPECT_NE(a.hash, RunSeed(variant, 43).hash) << variant;
  }
}

// ---- the checker on hand-built records ----

constexpr int64_t kS = 1'000'000'000;

// Three tenants: t0000 and t0001 on shards 0 and 1, the hot t0002 detected at 5 s and moved alone
// to shard 2 at 9 s through a fence at 8.9 s; one write each, stored once at the final owner; the
// load even in the window after 62 s.
ShardingObservations CleanRecord() {
  ShardingObservations obs;
  obs.hot_tenant = "t0002";
  obs.hot_start_ns = kHotStart.nanos();
  obs.workload_end_ns = kWorkloadEnd.nanos();
  obs.final_owner = {{"t0000", 0}, {"t0001", 1}, {"t0002", 2}};
  obs.detections.push_back(Detection{5 * kS, 0, "t0002"});
  obs.fences.push_back(FenceEvent{obs.Next(), 8 * kS + 9 * kS / 10, 0, "t0002", "", "", 7, true});
  obs.switches.push_back(Switch{obs.Next(), 9 * kS, "t0002", 0, 2, 1});
  obs.cutovers.push_back(Cutover{8 * kS + 9 * kS / 10, 9 * kS, true});
  uint64_t wid = 0;
  for (const auto& [tenant, shard] : obs.final_owner) {
    ClientOp op;
    op.write = true;
    op.tenant = tenant;
    op.key = "k0001";
    op.wid = ++wid;
    op.invoke_ns = 10 * kS;
    op.end_ns = 10 * kS + 1000;
    op.ok = true;
    obs.ops.push_back(op);
    obs.served.push_back(Served{obs.Next(), 10 * kS, shard, true, true, false, tenant, wid});
    obs.final_records.push_back(FinalRecord{shard, tenant, "k0001", wid, 1});
  }
  for (int i = 0; i < 30; ++i) {
    obs.served.push_back(Served{obs.Next(), 63 * kS, static_cast<uint32_t>(i % 3), false, false,
                                false, "t000" + std::to_string(i % 3), 0});
  }
  return obs;
}

RunResult Judge(const ShardingObservations& obs) {
  RunResult r;
  CheckSharding(obs, &r);
  return r;
}

TEST(ShardingChecker, CleanRecordHolds) {
  const RunResult r = Judge(CleanRecord());
  EXPECT_EQ(r.violation_count(), 0) << Describe(r);
  EXPECT_DOUBLE_EQ(r.metrics.at("detect_s"), 3.0);
  EXPECT_DOUBLE_EQ(r.metrics.at("isolate_s"), 7.0);
  EXPECT_DOUBLE_EQ(r.metrics.at("load_max_mean"), 1.0);
  EXPECT_DOUBLE_EQ(r.metrics.at("switch_pause_ms"), 100.0);
}

TEST(ShardingChecker, LostAndDuplicatedWrites) {
  ShardingObservations obs = CleanRecord();
  obs.final_records[0].count = 2;  // t0000's write applied twice
  obs.final_records[1].shard = 2;  // t0001's write only on a shard the routing does not name
  const RunResult r = Judge(obs);
  EXPECT_EQ(Count(r, "duplicated-write"), 1) << Describe(r);
  EXPECT_EQ(Count(r, "lost-write"), 1) << Describe(r);
  EXPECT_NE(r.violation_details.at("lost-write").find("not in shard 1"), std::string::npos);
}

TEST(ShardingChecker, WriteAfterFenceAndMisroutedWrite) {
  ShardingObservations obs = CleanRecord();
  // The source takes a write of the hot tenant between its fence and the switch, and another
  // after the switch.
  obs.served.push_back(Served{obs.fences[0].order + 1, 8 * kS + 95 * kS / 100, 0, true, true,
                              false, "t0002", 77});
  obs.served.push_back(Served{obs.Next(), 9 * kS + 1, 0, true, true, false, "t0002", 78});
  const RunResult r = Judge(obs);
  EXPECT_EQ(Count(r, "write-after-fence"), 2) << Describe(r);
  EXPECT_EQ(Count(r, "misrouted-write"), 1) << Describe(r);
  // A range fence covers the tenants routed by range, not one routed by its override.
  ShardingObservations ranged = CleanRecord();
  ranged.fences.push_back(FenceEvent{ranged.Next(), 20 * kS, 1, "", "", "", 9, true});
  ranged.served.push_back(Served{ranged.Next(), 21 * kS, 1, true, true, false, "t0001", 80});
  ranged.served.push_back(Served{ranged.Next(), 21 * kS, 1, true, true, true, "t0001", 81});
  EXPECT_EQ(Count(Judge(ranged), "write-after-fence"), 1);
  // An unfence (a reversed cutover) ends the fence.
  ShardingObservations reversed = CleanRecord();
  reversed.fences.push_back(FenceEvent{reversed.Next(), 20 * kS, 1, "t0001", "", "", 9, true});
  reversed.fences.push_back(FenceEvent{reversed.Next(), 21 * kS, 1, "t0001", "", "", 9, false});
  reversed.served.push_back(Served{reversed.Next(), 22 * kS, 1, true, true, false, "t0001", 82});
  EXPECT_EQ(Count(Judge(reversed), "write-after-fence"), 0);
}

TEST(ShardingChecker, ClientErrorsAndHotTenantTiming) {
  ShardingObservations obs = CleanRecord();
  obs.ops[0].ok = false;
  obs.ops[0].failed = true;
  obs.detections[0].time_ns = 13 * kS;  // 11 s after turning hot
  obs.switches[0].group = 300;          // moved with 299 others: not isolated
  const RunResult r = Judge(obs);
  EXPECT_EQ(Count(r, "client-error"), 1) << Describe(r);
  EXPECT_EQ(Count(r, "hot-tenant-not-detected"), 1) << Describe(r);
  EXPECT_EQ(Count(r, "hot-tenant-not-isolated"), 1) << Describe(r);
  ShardingObservations late = CleanRecord();
  late.switches[0].time_ns = 63 * kS;
  EXPECT_EQ(Count(Judge(late), "hot-tenant-not-isolated"), 1);
}

TEST(ShardingChecker, LoadImbalanceInTheWindowAfterTheDeadline) {
  ShardingObservations obs = CleanRecord();
  for (int i = 0; i < 4; ++i) {  // shard 0: 14 of 34 in the window; mean 11.33; 1.235
    obs.served.push_back(Served{obs.Next(), 70 * kS, 0, false, false, false, "t0000", 0});
  }
  const RunResult r = Judge(obs);
  EXPECT_EQ(Count(r, "load-imbalance"), 1) << Describe(r);
  EXPECT_NEAR(r.metrics.at("load_max_mean"), 14.0 / (34.0 / 3), 1e-9);
  // Before the window it does not count.
  ShardingObservations early = CleanRecord();
  for (int i = 0; i < 40; ++i) {
    early.served.push_back(Served{early.Next(), 30 * kS, 0, false, false, false, "t0000", 0});
  }
  EXPECT_EQ(Count(Judge(early), "load-imbalance"), 0);
}

}  // namespace
}  // namespace faultline::lab::sharding
