// Adaptive concurrency and client-side throttling (issue: retry amplification and backpressure).
// Targets (research/resilience.md §4, by analogy with the bulkhead row): admission + completion
// with a per-sample limit update well under 100 ns on one thread, 0 heap allocations; the SRE
// throttle decision (12-bucket window sum + one CAS) under ~50 ns, 0 allocations.
// Each benchmark reports allocs_per_op from the process-wide operator-new counter. Time comes from
// a ManualClock (two atomic loads per read), to measure the primitive, not the OS clock.
//
// No main(): linked into resilience_bench, whose main is in bench/retry_bench.cc.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>

#include "bench/alloc_counter.h"
#include "faultline/core/random.h"
#include "faultline/env/clock.h"
#include "faultline/resilience/adaptive_concurrency.h"
#include "faultline/resilience/client_throttle.h"

namespace faultline {
namespace {

ManualClock& SharedClock() {
  static ManualClock clock;
  return clock;
}

// One shared limiter per algorithm, created before any benchmark thread starts, so ->Threads(2)
// measures two threads contending on the same admission counter and limit-update mutex.
AdaptiveConcurrencyLimiter& SharedLimiter(LimitAlgorithmKind kind) {
  auto make = [](LimitAlgorithmKind k) {
    AdaptiveConcurrencyOptions o;
    o.algorithm = k;
    o.limit_initial = 100;
    o.limit_max = 1000;
    auto r = AdaptiveConcurrencyLimiter::Create(SharedClock(), o);
    FL_ASSERT(r.ok());
    return std::move(r).value();
  };
  static std::unique_ptr<AdaptiveConcurrencyLimiter> aimd = make(LimitAlgorithmKind::kAimd);
  static std::unique_ptr<AdaptiveConcurrencyLimiter> vegas = make(LimitAlgorithmKind::kVegas);
  static std::unique_ptr<AdaptiveConcurrencyLimiter> gradient2 =
      make(LimitAlgorithmKind::kGradient2);
  switch (kind) {
    case LimitAlgorithmKind::kAimd:
      return *aimd;
    case LimitAlgorithmKind::kVegas:
      return *vegas;
    case LimitAlgorithmKind::kGradient2:
      break;
  }
  return *gradient2;
}

void ReportAllocs(benchmark::State& state, uint64_t allocs_before) {
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(bench::Allocations() - allocs_before) /
                         static_cast<double>(state.iterations() * state.threads()));
}

// TryAcquire + OnSuccess(token, rtt): the full per-call cost (CAS admission, clock read, atomic
// release, mutex-guarded limit update). The rtt varies a little so Vegas/Gradient2 do real work.
void BM_AdaptiveAcquireSuccess(benchmark::State& state, LimitAlgorithmKind kind) {
  AdaptiveConcurrencyLimiter& limiter = SharedLimiter(kind);
  const uint64_t allocs = state.thread_index() == 0 ? bench::Allocations() : 0;
  int64_t i = 0;
  for (auto _ : state) {
    AdaptiveConcurrencyLimiter::Token t = limiter.TryAcquire();
    benchmark::DoNotOptimize(t);
    if (t) limiter.OnSuccess(t, Duration::Micros(1000 + (i & 15)));
    ++i;
  }
  if (state.thread_index() == 0) ReportAllocs(state, allocs);
}
BENCHMARK_CAPTURE(BM_AdaptiveAcquireSuccess, aimd, LimitAlgorithmKind::kAimd)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_AdaptiveAcquireSuccess, vegas, LimitAlgorithmKind::kVegas)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_AdaptiveAcquireSuccess, gradient2, LimitAlgorithmKind::kGradient2)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// TryAcquire + OnIgnored: admission and release only, no limit update (the lock-free part).
void BM_AdaptiveAcquireIgnored(benchmark::State& state) {
  AdaptiveConcurrencyLimiter& limiter = SharedLimiter(LimitAlgorithmKind::kAimd);
  const uint64_t allocs = state.thread_index() == 0 ? bench::Allocations() : 0;
  for (auto _ : state) {
    AdaptiveConcurrencyLimiter::Token t = limiter.TryAcquire();
    benchmark::DoNotOptimize(t);
    if (t) limiter.OnIgnored(t);
  }
  if (state.thread_index() == 0) ReportAllocs(state, allocs);
}
BENCHMARK(BM_AdaptiveAcquireIgnored)->Threads(1)->Threads(2)->UseRealTime();

ClientThrottle& SharedThrottle() {
  static std::unique_ptr<ClientThrottle> throttle = [] {
    auto r = ClientThrottle::Create(SharedClock(), ClientThrottleOptions());
    FL_ASSERT(r.ok());
    return std::move(r).value();
  }();
  return *throttle;
}

// ShouldSend with a per-thread Rng draw, plus RecordAccepted for half the sends (so p > 0 and the
// 128-bit comparison runs).
void BM_ClientThrottleShouldSend(benchmark::State& state) {
  ClientThrottle& throttle = SharedThrottle();
  Rng rng(1, static_cast<uint64_t>(state.thread_index()));
  const uint64_t allocs = state.thread_index() == 0 ? bench::Allocations() : 0;
  uint64_t i = 0;
  for (auto _ : state) {
    const bool send = throttle.ShouldSend(rng);
    benchmark::DoNotOptimize(send);
    if (send && (++i & 1) == 0) throttle.RecordAccepted();
  }
  if (state.thread_index() == 0) ReportAllocs(state, allocs);
}
BENCHMARK(BM_ClientThrottleShouldSend)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace faultline
