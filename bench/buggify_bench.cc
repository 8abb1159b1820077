// The cost of FL_BUGGIFY and FL_PROBE outside the simulator (production): a thread-local load
// and a branch, against a loop body with no hook at all; and inside a buggified World's context.
#include <benchmark/benchmark.h>

#include "faultline/core/buggify.h"

namespace faultline {
namespace {

void BM_NoHook(benchmark::State& state) {
  int64_t n = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(n);
    ++n;
  }
}
BENCHMARK(BM_NoHook);

void BM_BuggifyOutsideSimulator(benchmark::State& state) {
  int64_t n = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(n);
    if (FL_BUGGIFY("bench.point")) n += 2;
    ++n;
  }
  if (n != static_cast<int64_t>(state.iterations())) state.SkipWithError("a point fired");
}
BENCHMARK(BM_BuggifyOutsideSimulator);

void BM_ProbeOutsideSimulator(benchmark::State& state) {
  int64_t n = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(n);
    FL_PROBE("bench.probe");
    ++n;
  }
}
BENCHMARK(BM_ProbeOutsideSimulator);

// Under a simulated World with buggify on (the lab's --buggify): the draw per evaluation.
void BM_BuggifyInSimulator(benchmark::State& state) {
  Rng rng(1, 7);
  SimHooks hooks;
  hooks.buggify_rng = &rng;
  ScopedSimHooks scope(&hooks);
  int64_t fired = 0;
  for (auto _ : state) {
    if (FL_BUGGIFY("bench.point")) ++fired;
    benchmark::DoNotOptimize(fired);
  }
}
BENCHMARK(BM_BuggifyInSimulator);

}  // namespace
}  // namespace faultline

BENCHMARK_MAIN();
