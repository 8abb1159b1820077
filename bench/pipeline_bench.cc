// The composed pipeline's success path: total timeout + retry + circuit breaker + bulkhead around
// an empty call. Target: <= 80 ns per call, zero allocations.
#include <benchmark/benchmark.h>

#include <memory>

#include "bench/alloc_counter.h"
#include "faultline/resilience/pipeline.h"

namespace faultline {
namespace {

void BM_PipelineSuccessPath(benchmark::State& state) {
  static ManualClock clock;
  static RetryPolicy retry = std::move(RetryPolicy::Create(RetryOptions())).value();
  static auto budget = std::move(TokenRetryBudget::Create(TokenRetryBudgetOptions())).value();
  static auto breaker = std::move(CircuitBreaker::Create(clock, CircuitBreakerOptions())).value();
  static auto bulkhead = [] {
    BulkheadOptions o;
    o.concurrency_max = 64;
    return std::move(Bulkhead::Create(o)).value();
  }();
  PipelineStages stages;
  stages.retry = &retry;
  stages.budget = budget.get();
  stages.breaker = breaker.get();
  stages.bulkhead = bulkhead.get();
  Pipeline p(clock, stages);
  const uint64_t allocs = bench::Allocations();
  int64_t n = 0;
  for (auto _ : state) {
    const Deadline d = Deadline::FromRemaining(clock.Now(), Duration::Seconds(1));
    Status s = p.Execute(d, [](Duration) { return Status::Ok(); }, [](Duration) {});
    benchmark::DoNotOptimize(s);
    ++n;
  }
  state.counters["allocs_per_call"] =
      static_cast<double>(bench::Allocations() - allocs) / static_cast<double>(n);
}
BENCHMARK(BM_PipelineSuccessPath)->Threads(1)->Threads(2);

}  // namespace
}  // namespace faultline
