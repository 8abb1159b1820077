// The composed pipeline's success path: total timeout + retry + circuit breaker + bulkhead around
// an empty call, through ExecuteWithTimeout (the total timeout starts at the attempt's entry
// reading), so a call reads the clock twice: on entry and on completion (the breaker's latency).
// Targets: <= 80 ns per call with ManualClock; <= 40 ns with a production clock; 0 allocations.
// Runs with each clock of bench/bench_clocks.h (/manual, /steady, /coarse).
#include <benchmark/benchmark.h>

#include <memory>

#include "bench/alloc_counter.h"
#include "bench/bench_clocks.h"
#include "faultline/resilience/pipeline.h"

namespace faultline {
namespace {

using bench::ClockKind;

struct PipelineParts {
  explicit PipelineParts(Clock& c) : clock(c) {
    BulkheadOptions o;
    o.concurrency_max = 64;
    bulkhead = std::move(Bulkhead::Create(o)).value();
  }
  Pipeline Make() {
    PipelineStages stages;
    stages.retry = &retry;
    stages.budget = budget.get();
    stages.breaker = breaker.get();
    stages.bulkhead = bulkhead.get();
    return Pipeline(clock, stages);
  }
  Clock& clock;
  RetryPolicy retry = std::move(RetryPolicy::Create(RetryOptions())).value();
  std::unique_ptr<TokenRetryBudget> budget =
      std::move(TokenRetryBudget::Create(TokenRetryBudgetOptions())).value();
  std::unique_ptr<CircuitBreaker> breaker =
      std::move(CircuitBreaker::Create(clock, CircuitBreakerOptions())).value();
  std::unique_ptr<Bulkhead> bulkhead;
};

void BM_PipelineSuccessPath(benchmark::State& state, ClockKind kind) {
  PipelineParts& parts =
      bench::PerClock<PipelineParts>(kind, [](Clock& c) { return new PipelineParts(c); });
  Pipeline p = parts.Make();
  const uint64_t allocs = bench::Allocations();
  int64_t n = 0;
  for (auto _ : state) {
    Status s = p.ExecuteWithTimeout(Duration::Seconds(1), [](Duration) { return Status::Ok(); },
                                    [](Duration) {});
    benchmark::DoNotOptimize(s);
    ++n;
  }
  state.counters["allocs_per_call"] =
      static_cast<double>(bench::Allocations() - allocs) / static_cast<double>(n);
  if (parts.breaker->state() != BreakerState::kClosed) state.SkipWithError("breaker left Closed");
}
FL_BENCHMARK_CLOCKS(BM_PipelineSuccessPath);

}  // namespace
}  // namespace faultline
