// The composed pipeline's success path: total timeout + retry + circuit breaker + bulkhead around
// an empty call, through ExecuteWithTimeout (the total timeout starts at the attempt's entry
// reading), so a call reads the clock twice: on entry and on completion (the breaker's latency).
// Targets: <= 80 ns per call with ManualClock; <= 40 ns with a production clock; 0 allocations.
// Runs with each clock of bench/bench_clocks.h (/manual, /steady, /coarse).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>

#include "bench/alloc_counter.h"
#include "bench/bench_clocks.h"
#include "bench/pipeline_parts.h"
#include "faultline/resilience/pipeline.h"

namespace faultline {
namespace {

using bench::ClockKind;
using bench::PipelineParts;


void BM_PipelineSuccessPath(benchmark::State& state, ClockKind kind) {
  PipelineParts& parts =
      bench::PerClock<PipelineParts>(kind, [](Clock& c) { return new PipelineParts(c); });
  Pipeline p = parts.Make();
  // The allocation counter is sampled inside the first and the last timed iteration (as in
  // breaker_bench.cc), so the framework's own allocations on other threads are not counted.
  state.counters["allocs_per_call"] = benchmark::Counter(0, benchmark::Counter::kAvgThreads);
  const benchmark::IterationCount last = state.max_iterations - 1;
  benchmark::IterationCount i = 0;
  uint64_t before = 0;
  uint64_t after = 0;
  for (auto _ : state) {
    if (__builtin_expect(i == 0, 0)) before = bench::Allocations();
    Status s = p.ExecuteWithTimeout(Duration::Seconds(1), [](Duration) { return Status::Ok(); },
                                    [](Duration) {});
    benchmark::DoNotOptimize(s);
    if (__builtin_expect(i == last, 0)) after = bench::Allocations();
    ++i;
  }
  const double calls = static_cast<double>(state.iterations());
  state.counters["allocs_per_call"] = benchmark::Counter(
      calls > 0 ? static_cast<double>(after - before) / calls : 0.0,
      benchmark::Counter::kAvgThreads);
  if (parts.breaker->state() != BreakerState::kClosed) state.SkipWithError("breaker left Closed");
}
FL_BENCHMARK_CLOCKS(BM_PipelineSuccessPath);

}  // namespace
}  // namespace faultline
