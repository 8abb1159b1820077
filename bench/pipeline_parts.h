// The composed pipeline the pipeline benchmarks share (pipeline_bench, observer_bench,
// trace_bench): retry with default options, a token retry budget, a circuit breaker on `clock`
// and a 64-slot bulkhead, around whatever call the benchmark makes.
#pragma once

#include <memory>
#include <utility>

#include "faultline/env/clock.h"
#include "faultline/resilience/pipeline.h"

namespace faultline::bench {

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

}  // namespace faultline::bench
