// Shrinking (lab/shrink.h), BUGGIFY points and coverage probes (core/buggify.h).
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "faultline/core/buggify.h"
#include "faultline/lab/scenario.h"
#include "faultline/lab/shrink.h"
#include "faultline/sim/nemesis.h"

namespace faultline::lab {
namespace {

const char* const kViolation = "lost-acknowledged-increment";

RunResult RunWith(std::string_view scenario, std::string_view variant, uint64_t seed,
                  sim::RunPlan* plan, bool buggify = false) {
  const Scenario* s = FindScenario(scenario);
  const std::vector<VariantSpec> variants = s->variants();
  RunContext ctx;
  ctx.seed = seed;
  ctx.variant = FindVariant(variants, variant);
  ctx.plan = plan;
  ctx.buggify = buggify;
  return s->Run(ctx);
}

// selftest/gossip acknowledges an increment before it is durable: the one fault that can lose an
// acknowledged increment is a crash (it wipes memory; partitions, pauses, clocks and link faults
// only delay gossip). So a failing run's minimal failing case is a single crash.
std::vector<uint64_t> GossipFailingSeeds(size_t want) {
  std::vector<uint64_t> seeds;
  for (uint64_t seed = 1; seed <= 200 && seeds.size() < want; ++seed) {
    if (RunWith("selftest", "gossip", seed, nullptr).violations.count(kViolation) > 0) {
      seeds.push_back(seed);
    }
  }
  return seeds;
}

TEST(Shrink, GossipCounterReducesToTheOneCrash) {
  const Scenario& s = *FindScenario("selftest");
  const std::vector<VariantSpec> variants = s.variants();
  const std::vector<uint64_t> seeds = GossipFailingSeeds(3);
  ASSERT_EQ(seeds.size(), 3u);
  for (uint64_t seed : seeds) {
    ShrinkOptions options;
    const Result<ShrinkResult> r = Shrink(s, *FindVariant(variants, "gossip"), seed, options);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->violation, kViolation);
    EXPECT_GE(r->original_faults.size(), 8u) << "seed " << seed;
    ASSERT_EQ(r->reduced_faults.size(), 1u) << "seed " << seed << ": " << r->ReplayCommand();
    EXPECT_EQ(r->reduced_faults[0].kind, sim::FaultKind::kCrash) << r->ReplayCommand();
    EXPECT_EQ(r->seed, seed);  // found on the seed itself, no nearby-seed fallback needed
    EXPECT_GT(r->reduced.violations.count(kViolation), 0u);
    // Fewer operations and a shorter fault phase than drawn.
    ASSERT_TRUE(r->ops_max.has_value());
    EXPECT_LT(*r->ops_max, r->original_ops);
    ASSERT_TRUE(r->fault_end.has_value());
    EXPECT_LT(*r->fault_end, r->original_fault_end);
    EXPECT_NE(r->ReplayCommand().find("--faults " + std::to_string(r->faults[0])),
              std::string::npos);
  }
}

// The reduced run replays: the same violation, the same hash, every time.
TEST(Shrink, ReducedRunReplaysTheSameFailure) {
  const Scenario& s = *FindScenario("selftest");
  const std::vector<VariantSpec> variants = s.variants();
  const uint64_t seed = GossipFailingSeeds(1).at(0);
  const Result<ShrinkResult> r =
      Shrink(s, *FindVariant(variants, "gossip"), seed, ShrinkOptions{});
  ASSERT_TRUE(r.ok());
  sim::RunPlan a = ReducedPlan(*r);
  sim::RunPlan b = ReducedPlan(*r);
  const RunResult ra = RunWith("selftest", "gossip", r->seed, &a);
  const RunResult rb = RunWith("selftest", "gossip", r->seed, &b);
  EXPECT_GT(ra.violations.count(kViolation), 0u);
  EXPECT_EQ(ra.hash, rb.hash);
  EXPECT_EQ(ra.hash, r->reduced.hash);
  // Without its one crash, the reduced run passes: the crash is what fails it.
  sim::RunPlan none = ReducedPlan(*r);
  none.faults->clear();
  EXPECT_EQ(RunWith("selftest", "gossip", r->seed, &none).violation_count(), 0);
}

TEST(Shrink, NonFailingRunIsRefused) {
  const Scenario& s = *FindScenario("selftest");
  const std::vector<VariantSpec> variants = s.variants();
  const Result<ShrinkResult> r = Shrink(s, *FindVariant(variants, "hardened"), 1, ShrinkOptions{});
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
}

// A plan that keeps everything changes nothing: the run and its hash are the drawn ones.
TEST(Shrink, UnrestrictedPlanKeepsTheHash) {
  for (const char* scenario : {"selftest", "split-brain"}) {
    const std::string variant = FindScenario(scenario)->variants().front().name;
    sim::RunPlan plan;
    const RunResult with = RunWith(scenario, variant, 3, &plan);
    const RunResult without = RunWith(scenario, variant, 3, nullptr);
    EXPECT_EQ(with.hash, without.hash) << scenario;
    EXPECT_FALSE(plan.installed.empty()) << scenario;
  }
}

TEST(Shrink, ParseFaultList) {
  EXPECT_EQ(ParseFaultList("7,3,3").value(), (std::vector<uint32_t>{3, 7}));
  EXPECT_TRUE(ParseFaultList("none").value().empty());
  EXPECT_FALSE(ParseFaultList("").ok());
  EXPECT_FALSE(ParseFaultList("1,,2").ok());
  EXPECT_FALSE(ParseFaultList("-1").ok());
  EXPECT_FALSE(ParseFaultList("99999999999").ok());
}

TEST(Buggify, OffOutsideTheSimulatorAndByDefault) {
  EXPECT_FALSE(FL_BUGGIFY("test.outside"));
  // Buggify off: no point fires in a run.
  EXPECT_TRUE(RunWith("selftest", "hardened", 1, nullptr).buggify_fired.empty());
}

TEST(Buggify, SameSeedSameRun) {
  const RunResult a = RunWith("selftest", "hardened", 5, nullptr, /*buggify=*/true);
  const RunResult b = RunWith("selftest", "hardened", 5, nullptr, /*buggify=*/true);
  const RunResult off = RunWith("selftest", "hardened", 5, nullptr);
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.buggify_fired, b.buggify_fired);
  EXPECT_EQ(a.probes, b.probes);
  EXPECT_NE(a.hash, off.hash);  // the buggify stream's draws are part of the run
}

// Every point fires on some seed of the scenarios that reach it.
TEST(Buggify, EveryPointFiresInSomeSeed) {
  const std::vector<std::string> expected = {
      "disk.short_write", "disk.fsync_error",     "timer.delay_spike",
      "net.delivery_stall", "lease.early_expiry", "retry.backoff_skipped"};
  const std::vector<std::string> registered = BuggifyPointNames();
  for (const std::string& name : expected) {
    EXPECT_NE(std::find(registered.begin(), registered.end(), name), registered.end()) << name;
  }
  std::map<std::string, uint64_t> first_seed;
  const std::vector<std::pair<const char*, const char*>> runs = {
      {"selftest", "hardened"}, {"split-brain", "lease-only"}, {"retry-amplification", "hardened"}};
  for (const auto& [scenario, variant] : runs) {
    const Scenario* s = FindScenario(scenario);
    ASSERT_NE(s, nullptr) << scenario;
    ASSERT_NE(FindVariant(s->variants(), variant), nullptr) << scenario << "/" << variant;
    for (uint64_t seed = 1; seed <= 12; ++seed) {
      for (const auto& [name, count] : RunWith(scenario, variant, seed, nullptr, true).buggify_fired) {
        EXPECT_GT(count, 0);
        first_seed.try_emplace(name, seed);
      }
    }
  }
  for (const std::string& name : expected) {
    EXPECT_EQ(first_seed.count(name), 1u) << name << " never fired";
  }
}

TEST(Probes, CountedPerRunAndDeterministic) {
  const std::vector<std::string> names = ProbeNames();
  EXPECT_GE(names.size(), 10u);
  const RunResult a = RunWith("split-brain", "lease-only", 2, nullptr);
  const RunResult b = RunWith("split-brain", "lease-only", 2, nullptr);
  EXPECT_EQ(a.probes, b.probes);
  for (const auto& [name, count] : a.probes) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
    EXPECT_GT(count, 0);
  }
  // The probes mark paths the scenarios do reach: the hardened split-brain store rejects stale
  // fencing tokens, the saga compensates, the idempotency store takes over expired claims.
  std::map<std::string, int64_t> hits;
  const std::vector<std::pair<const char*, const char*>> runs = {
      {"split-brain", "hardened"}, {"distributed-txn", "hardened"}, {"idempotency", "hardened"}};
  for (const auto& [scenario, variant] : runs) {
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      for (const auto& [name, count] : RunWith(scenario, variant, seed, nullptr).probes) {
        hits[name] += count;
      }
    }
  }
  EXPECT_GT(hits["fence.stale_token_rejected"], 0);
  EXPECT_GT(hits["saga.compensation_step"], 0);
  EXPECT_GT(hits["idempotency.takeover"], 0);
  FL_PROBE("test.outside_a_run");  // no World: counts nowhere, costs a branch
}

}  // namespace
}  // namespace faultline::lab
