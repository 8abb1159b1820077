// Adaptive concurrency and client-side throttling (issue: retry amplification and backpressure).
// Targets (research/resilience.md §4, by analogy with the bulkhead row): admission + completion
// with a per-sample limit update well under 100 ns on one thread, 0 heap allocations; the SRE
// throttle decision (12-bucket window sum + one CAS) under ~50 ns, 0 allocations.
// Each benchmark reports allocs_per_op from the process-wide operator-new counter. Each runs with
// every clock of bench/bench_clocks.h: /manual measures the primitive, /steady and /coarse add a
// production clock's read (one per call: the admission's start time, or the throttle's bucket).
// The adaptive limiter must not run on CoarseClock in production (its RTT samples would be
// ticks); the /coarse row is there for the comparison only.
//
// No main(): linked into resilience_bench, whose main is in bench/retry_bench.cc.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>

#include "bench/alloc_counter.h"
#include "bench/bench_clocks.h"
#include "faultline/core/random.h"
#include "faultline/env/clock.h"
#include "faultline/resilience/adaptive_concurrency.h"
#include "faultline/resilience/client_throttle.h"

namespace faultline {
namespace {

using bench::ClockKind;

// One shared limiter per algorithm and clock, created before any benchmark thread starts, so
// ->Threads(2) measures two threads contending on the same admission counter and limit-update
// mutex.
template <LimitAlgorithmKind kKind>
AdaptiveConcurrencyLimiter& SharedLimiter(ClockKind clock) {
  return bench::PerClock<AdaptiveConcurrencyLimiter>(clock, [](Clock& c) {
    AdaptiveConcurrencyOptions o;
    o.algorithm = kKind;
    o.limit_initial = 100;
    o.limit_max = 1000;
    auto r = AdaptiveConcurrencyLimiter::Create(c, o);
    FL_ASSERT(r.ok());
    return std::move(r).value().release();
  });
}

void ReportAllocs(benchmark::State& state, uint64_t allocs_before) {
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(bench::Allocations() - allocs_before) /
                         static_cast<double>(state.iterations() * state.threads()));
}

// TryAcquire + OnSuccess(token, rtt): the full per-call cost (CAS admission, clock read, atomic
// release, mutex-guarded limit update). The rtt varies a little so Vegas/Gradient2 do real work.
template <LimitAlgorithmKind kKind>
void AdaptiveAcquireSuccess(benchmark::State& state, ClockKind clock) {
  AdaptiveConcurrencyLimiter& limiter = SharedLimiter<kKind>(clock);
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
void BM_AdaptiveAcquireSuccessAimd(benchmark::State& state, ClockKind clock) {
  AdaptiveAcquireSuccess<LimitAlgorithmKind::kAimd>(state, clock);
}
FL_BENCHMARK_CLOCKS(BM_AdaptiveAcquireSuccessAimd);
void BM_AdaptiveAcquireSuccessVegas(benchmark::State& state, ClockKind clock) {
  AdaptiveAcquireSuccess<LimitAlgorithmKind::kVegas>(state, clock);
}
FL_BENCHMARK_CLOCKS(BM_AdaptiveAcquireSuccessVegas);
void BM_AdaptiveAcquireSuccessGradient2(benchmark::State& state, ClockKind clock) {
  AdaptiveAcquireSuccess<LimitAlgorithmKind::kGradient2>(state, clock);
}
FL_BENCHMARK_CLOCKS(BM_AdaptiveAcquireSuccessGradient2);

// TryAcquire + OnIgnored: admission and release only, no limit update (the lock-free part).
void BM_AdaptiveAcquireIgnored(benchmark::State& state, ClockKind clock) {
  AdaptiveConcurrencyLimiter& limiter = SharedLimiter<LimitAlgorithmKind::kAimd>(clock);
  const uint64_t allocs = state.thread_index() == 0 ? bench::Allocations() : 0;
  for (auto _ : state) {
    AdaptiveConcurrencyLimiter::Token t = limiter.TryAcquire();
    benchmark::DoNotOptimize(t);
    if (t) limiter.OnIgnored(t);
  }
  if (state.thread_index() == 0) ReportAllocs(state, allocs);
}
FL_BENCHMARK_CLOCKS(BM_AdaptiveAcquireIgnored);

// ShouldSend with a per-thread Rng draw, plus RecordAccepted for half the sends (so p > 0 and the
// 128-bit comparison runs). One clock read per call.
void BM_ClientThrottleShouldSend(benchmark::State& state, ClockKind clock) {
  ClientThrottle& throttle = bench::PerClock<ClientThrottle>(clock, [](Clock& c) {
    auto r = ClientThrottle::Create(c, ClientThrottleOptions());
    FL_ASSERT(r.ok());
    return std::move(r).value().release();
  });
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
FL_BENCHMARK_CLOCKS(BM_ClientThrottleShouldSend);

}  // namespace
}  // namespace faultline
