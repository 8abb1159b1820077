// The multi-seed runner's public API (faultline/lab/runner.h) with scenarios defined here, the way
// a user runs their own scenario over many seeds from their own test binary.
#include "faultline/lab/runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "faultline/lab/scenario.h"

namespace faultline::lab {
namespace {

// A workload of 200 random increments. Variant "safe" records the sum; variant "lossy" drops an
// increment whenever its random draw is below 1/64, and its checker reports each drop as a
// violation (expected vs seen), so it fails on some seeds and not on others.
class CounterScenario : public Scenario {
 public:
  std::string_view id() const override { return "counter"; }
  std::string_view description() const override { return "test counter"; }
  std::vector<VariantSpec> variants() const override {
    return {{"lossy", false, 0.5, "drops increments"}, {"safe", true, 0, "keeps them"}};
  }
  std::vector<std::string> key_metrics() const override { return {"sum"}; }
  RunResult Run(const RunContext& ctx) const override {
    sim::World world(ctx.seed, sim::WorldOptions::Nodes(1));
    ObserveRun(world, ctx);
    const bool lossy = ctx.variant->name == "lossy";
    int64_t expected = 0;
    int64_t seen = 0;
    for (int i = 0; i < 200; ++i) {
      world.Schedule(Duration::Millis(i + 1), [&world, &expected, &seen, lossy] {
        const uint64_t draw = world.rng(sim::Stream::kWorkload).Uniform(64);
        expected += 1;
        if (!(lossy && draw == 0)) seen += 1;
        world.Trace("increment draw=" + std::to_string(draw));
      });
    }
    world.RunFor(Duration::Seconds(1));
    RunResult r;
    r.metrics["sum"] = static_cast<double>(seen);
    if (seen != expected) {
      r.Violate("lost-increment", expected - seen,
                "sum " + std::to_string(expected) + " expected, " + std::to_string(seen) + " seen");
    }
    FinishRun(world, ctx, &r);
    return r;
  }
};

// Not deterministic: every run of a seed shifts one event by the parity of how often that seed ran
// before, so two consecutive runs of the same seed differ at that event (whatever other threads
// run meanwhile).
class NondeterministicScenario : public Scenario {
 public:
  std::string_view id() const override { return "nondeterministic"; }
  std::string_view description() const override { return "test"; }
  std::vector<VariantSpec> variants() const override { return {{"only", true, 0, ""}}; }
  std::vector<std::string> key_metrics() const override { return {}; }
  RunResult Run(const RunContext& ctx) const override {
    sim::World world(ctx.seed, sim::WorldOptions::Nodes(1));
    ObserveRun(world, ctx);
    for (int i = 0; i < 50; ++i)
      world.Schedule(Duration::Millis(10 * (i + 1)), [&world] { world.Trace("tick"); });
    int64_t shift = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      shift = runs_[ctx.seed]++ % 2;
    }
    world.Schedule(Duration::Millis(205 + shift * 10), [&world] { world.Trace("odd one"); });
    world.RunFor(Duration::Seconds(1));
    RunResult r;
    FinishRun(world, ctx, &r);
    return r;
  }

 private:
  mutable std::mutex mu_;
  mutable std::map<uint64_t, int64_t> runs_;
};

RunSpec Spec(const Scenario& s, const std::string& variant, std::vector<uint64_t> seeds) {
  const std::vector<VariantSpec> variants = s.variants();
  return RunSpec{&s, *FindVariant(variants, variant), std::move(seeds)};
}

TEST(Runner, TwoThreadsGiveTheSameResultsAsOne) {
  const CounterScenario scenario;
  const std::vector<RunSpec> specs = {Spec(scenario, "lossy", SeedRange(1, 40)),
                                      Spec(scenario, "safe", SeedRange(1, 40))};
  RunnerOptions options;
  options.threads = 2;
  options.check_determinism = true;
  options.keep_results = true;
  std::mutex mu;
  std::set<uint64_t> done_values;
  uint64_t total = 0;
  options.progress = [&](const RunnerProgress& p) {
    std::lock_guard<std::mutex> lock(mu);
    done_values.insert(p.done);
    total = p.total;
  };
  const RunnerReport parallel = RunSeeds(specs, options);
  EXPECT_EQ(parallel.threads, 2u);
  EXPECT_EQ(parallel.runs, 80u);
  EXPECT_EQ(parallel.reruns, 80u);
  EXPECT_TRUE(parallel.divergences.empty());
  EXPECT_EQ(total, 80u);
  EXPECT_EQ(done_values.size(), 80u);  // every run reported once, done = 1..80
  EXPECT_EQ(*done_values.rbegin(), 80u);
  EXPECT_GT(parallel.cpu_seconds, 0);
  EXPECT_GT(parallel.wall_seconds, 0);
  ASSERT_EQ(parallel.results.size(), 2u);
  ASSERT_EQ(parallel.results[0].size(), 40u);

  RunnerOptions sequential_options;
  sequential_options.threads = 1;
  const RunnerReport sequential = RunSeeds(specs, sequential_options);
  ASSERT_EQ(sequential.summaries.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const VariantSummary& a = parallel.summaries[i];
    const VariantSummary& b = sequential.summaries[i];
    EXPECT_EQ(a.failing_seeds, b.failing_seeds);
    EXPECT_EQ(a.violations_by_name, b.violations_by_name);
    EXPECT_EQ(a.events, b.events);
    EXPECT_EQ(a.metrics.at("sum").mean, b.metrics.at("sum").mean);
  }
  // results[i][k] is the run of seed k+1: the summary agrees with it.
  const VariantSummary& lossy = parallel.summaries[0];
  for (size_t k = 0; k < 40; ++k) {
    const bool failed = parallel.results[0][k].violation_count() > 0;
    const bool listed =
        std::count(lossy.failing_seeds.begin(), lossy.failing_seeds.end(), k + 1) > 0;
    EXPECT_EQ(failed, listed) << "seed " << k + 1;
  }
  // About 1 - (63/64)^200 = 96% of seeds lose an increment: enough to pass p = 0.5.
  EXPECT_EQ(lossy.verdict_code, Verdict::kFailsAsExpected) << lossy.reason;
  EXPECT_EQ(parallel.summaries[1].verdict_code, Verdict::kHolds);
  EXPECT_TRUE(parallel.ok());
  // The first instance of the violation is on the first failing seed, with its detail.
  ASSERT_FALSE(lossy.failing_seeds.empty());
  const ViolationInstance& first = lossy.first_violations.at("lost-increment");
  EXPECT_EQ(first.seed, lossy.failing_seeds.front());
  EXPECT_NE(first.detail.find("expected"), std::string::npos) << first.detail;
}

TEST(Runner, ReportsTheFirstDivergentEventOfANondeterministicScenario) {
  const NondeterministicScenario scenario;
  RunnerOptions options;
  options.threads = 2;
  options.check_determinism = true;
  const RunnerReport report = RunSeeds({Spec(scenario, "only", SeedRange(7, 4))}, options);
  // Each seed's two runs see different parities, and so do the two reruns that locate the event.
  ASSERT_EQ(report.divergences.size(), 4u);
  EXPECT_FALSE(report.ok());
  for (size_t i = 0; i < report.divergences.size(); ++i) {
    const Divergence& d = report.divergences[i];
    EXPECT_EQ(d.seed, 7 + i);
    EXPECT_EQ(d.scenario, "nondeterministic");
    // Ticks at 10..200 ms run identically (20 events); the run differs from the 21st event on.
    EXPECT_EQ(d.first_divergent_event, 20u) << d.Describe();
    EXPECT_EQ(d.events_a, d.events_b);
    EXPECT_NE(d.Describe().find("DIVERGENCE nondeterministic/only seed"), std::string::npos);
  }
  // Without the check, the same scenario passes: divergence is only found by rerunning.
  options.check_determinism = false;
  EXPECT_TRUE(RunSeeds({Spec(scenario, "only", SeedRange(7, 4))}, options).ok());
}

TEST(Runner, SmallSamplesOfABaselineAreInconclusive) {
  EXPECT_EQ(MinSeedsToJudge(0.5), 5u);   // 0.5^4 = 6.25% > 5% >= 0.5^5
  EXPECT_EQ(MinSeedsToJudge(0.1), 29u);  // 0.9^28 = 5.2%, 0.9^29 = 4.7%
  EXPECT_EQ(MinSeedsToJudge(1.0), 1u);
  const CounterScenario scenario;
  const VariantSpec lossy{"lossy", false, 0.5, ""};
  RunResult clean;
  RunResult dirty;
  dirty.Violate("lost-increment");
  // 1 of 4 failing: too few seeds to judge a 50% rate.
  VariantSummary s = Summarize(scenario, lossy, {1, 2, 3, 4}, {clean, clean, clean, dirty});
  EXPECT_EQ(s.verdict_code, Verdict::kInconclusive);
  EXPECT_FALSE(s.fails_lab());
  EXPECT_FALSE(s.passed);
  EXPECT_NE(s.reason.find("needs 5 seeds"), std::string::npos) << s.reason;
  // 1 of 5: judged, and below the minimum.
  s = Summarize(scenario, lossy, {1, 2, 3, 4, 5}, {clean, clean, clean, clean, dirty});
  EXPECT_EQ(s.verdict_code, Verdict::kDidNotFail);
  EXPECT_TRUE(s.fails_lab());
  EXPECT_NE(s.reason.find("DID NOT FAIL"), std::string::npos) << s.reason;
  // 2 of 3: enough failures shown, even on a small sample.
  s = Summarize(scenario, lossy, {1, 2, 3}, {dirty, clean, dirty});
  EXPECT_EQ(s.verdict_code, Verdict::kFailsAsExpected);
  EXPECT_TRUE(s.passed);
}

// A "hardened" design with a bug on every seed = 3 (mod 7): a soak must find it and name the
// first such seed.
class SeedBugScenario : public Scenario {
 public:
  std::string_view id() const override { return "seed-bug"; }
  std::string_view description() const override { return "test"; }
  std::vector<VariantSpec> variants() const override { return {{"hardened", true, 0, ""}}; }
  std::vector<std::string> key_metrics() const override { return {}; }
  RunResult Run(const RunContext& ctx) const override {
    sim::World world(ctx.seed, sim::WorldOptions::Nodes(1));
    ObserveRun(world, ctx);
    world.Schedule(Duration::Millis(1), [&world] { world.Trace("tick"); });
    world.RunFor(Duration::Millis(10));
    RunResult r;
    if (ctx.seed % 7 == 3) r.Violate("bug", 1, "seed = 3 mod 7");
    FinishRun(world, ctx, &r);
    return r;
  }
};

TEST(Runner, SoakRunsConsecutiveBatchesAndFindsTheFirstFailingSeed) {
  const SeedBugScenario scenario;
  SoakOptions options;
  options.runner.threads = 2;
  options.first_seed = 100;
  options.batch = 5;
  options.seconds = 0.2;
  uint64_t callbacks = 0;
  options.on_batch = [&callbacks](uint64_t) { ++callbacks; };
  const SoakReport soak = Soak({Spec(scenario, "hardened", {})}, options);
  ASSERT_GE(soak.batches, 1u);
  EXPECT_EQ(callbacks, soak.batches);
  EXPECT_EQ(soak.first_seed, 100u);
  EXPECT_EQ(soak.seeds_per_variant, 5 * soak.batches);
  ASSERT_EQ(soak.total.summaries.size(), 1u);
  const VariantSummary& s = soak.total.summaries[0];
  EXPECT_EQ(s.seeds, soak.seeds_per_variant);
  EXPECT_EQ(soak.total.runs, soak.seeds_per_variant);
  std::vector<uint64_t> expected;
  for (uint64_t seed = 100; seed < 100 + soak.seeds_per_variant; ++seed) {
    if (seed % 7 == 3) expected.push_back(seed);
  }
  EXPECT_EQ(s.failing_seeds, expected);
  EXPECT_EQ(s.verdict_code, Verdict::kViolated);  // seed 101 is in the first batch
  EXPECT_EQ(s.first_violations.at("bug").seed, 101u);
  EXPECT_EQ(s.first_violations.at("bug").detail, "seed = 3 mod 7");
  EXPECT_FALSE(soak.total.ok());
}

TEST(Runner, SoakStopsBeforeTheLastSeedIsPassed) {
  const SeedBugScenario scenario;
  SoakOptions options;
  options.first_seed = UINT64_MAX - 9;  // room for exactly two batches of 5
  options.batch = 5;
  options.seconds = 60;
  const SoakReport soak = Soak({Spec(scenario, "hardened", {})}, options);
  EXPECT_EQ(soak.batches, 2u);
  EXPECT_EQ(soak.total.summaries[0].seeds, 10u);
}

}  // namespace
}  // namespace faultline::lab
