// Same seed, same run, bit for bit: every scenario variant replays identically, and different
// seeds explore different runs.
#include <gtest/gtest.h>

#include <set>

#include "faultline/lab/scenario.h"

namespace faultline::lab {
namespace {

TEST(Determinism, EveryVariantReplaysEventForEvent) {
  for (const Scenario* s : AllScenarios()) {
    for (const VariantSpec& v : s->variants()) {
      for (uint64_t seed : {1, 2, 99}) {
        std::vector<uint64_t> a, b;
        RunContext ctx;
        ctx.seed = seed;
        ctx.variant = &v;
        ctx.event_hashes = &a;
        const RunResult ra = s->Run(ctx);
        ctx.event_hashes = &b;
        const RunResult rb = s->Run(ctx);
        EXPECT_EQ(ra.hash, rb.hash) << s->id() << "/" << v.name << " seed " << seed;
        EXPECT_EQ(a, b);
        EXPECT_EQ(ra.metrics, rb.metrics);
        EXPECT_EQ(ra.violations, rb.violations);
        EXPECT_GT(a.size(), 1000u);
      }
    }
  }
}

// Tracing observes the run without changing it.
TEST(Determinism, TracingDoesNotPerturbTheRun) {
  const Scenario* s = FindScenario("selftest");
  const auto variants = s->variants();
  RunContext ctx;
  ctx.seed = 5;
  ctx.variant = &variants[0];
  const uint64_t plain = s->Run(ctx).hash;
  size_t lines = 0;
  ctx.trace = [&lines](sim::SimTime, const std::string&) { ++lines; };
  EXPECT_EQ(s->Run(ctx).hash, plain);
  EXPECT_GT(lines, 100u);
}

TEST(Determinism, DifferentSeedsExploreDifferentRuns) {
  const Scenario* s = FindScenario("selftest");
  const auto variants = s->variants();
  std::set<uint64_t> hashes;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    RunContext ctx;
    ctx.seed = seed;
    ctx.variant = &variants.back();
    hashes.insert(s->Run(ctx).hash);
  }
  EXPECT_EQ(hashes.size(), 20u);
}

}  // namespace
}  // namespace faultline::lab
