// Overhead of the protection primitives (issue "Retry amplification and backpressure").
// Targets (resilience research, section 4; x86-64, -O2, 1 thread):
//   open-breaker reject <= 5 ns, closed-breaker permit+record <= 20 ns,
//   token bucket / GCRA acquire <= 15 ns, bulkhead TryAcquire+release <= 15 ns, 0 allocations.
// For reference: Polly v8 publishes 137.7 ns per circuit-breaker call, Resilience4j ~320 ns.
// Every benchmark runs at Threads(1) and Threads(2) on ONE shared instance (UseRealTime: ns per
// operation per thread) and reports allocs_per_op from the global operator-new counter.
// The primitives read time through the injected Clock, so every time-reading benchmark runs with
// each clock of bench/bench_clocks.h: /manual measures the primitive, /steady and /coarse what
// production pays with SystemClock or CoarseClock (one read per call unless `now` is passed in).
// The bulkhead reads no clock and runs once.
//
// No BENCHMARK_MAIN here: linked into resilience_bench with retry_bench.cc, which has it.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "bench/alloc_counter.h"
#include "bench/bench_clocks.h"
#include "faultline/env/clock.h"
#include "faultline/resilience/bulkhead.h"
#include "faultline/resilience/circuit_breaker.h"
#include "faultline/resilience/rate_limiter.h"

namespace faultline {
namespace {

using bench::ClockKind;
using bench::PerClock;

// Runs `op` in the timed loop and reports allocs_per_op. The counter is sampled inside the first
// and the last timed iteration: meanwhile every other thread is in its own loop or parked at the
// stop barrier, so neither the framework's setup nor its result merging is counted (the counter
// entry is created before the loop, since creating it allocates). Costs ~0.3 ns per iteration.
template <typename Op>
void Measure(benchmark::State& state, Op op) {
  state.counters["allocs_per_op"] = benchmark::Counter(0, benchmark::Counter::kAvgThreads);
  const benchmark::IterationCount last = state.max_iterations - 1;
  benchmark::IterationCount i = 0;
  uint64_t before = 0;
  uint64_t after = 0;
  for (auto _ : state) {
    if (__builtin_expect(i == 0, 0)) before = bench::Allocations();
    op();
    if (__builtin_expect(i == last, 0)) after = bench::Allocations();
    ++i;
  }
  const double ops = static_cast<double>(state.iterations());
  state.counters["allocs_per_op"] = benchmark::Counter(
      ops > 0 ? static_cast<double>(after - before) / ops : 0.0, benchmark::Counter::kAvgThreads);
}

CircuitBreaker* OpenBreaker(Clock& clock) {
  CircuitBreakerOptions o;
  o.min_calls = 1;
  o.window_calls = 1;
  o.open_duration_min = Duration::Seconds(86'400);
  o.open_duration_max = Duration::Seconds(86'400);
  auto b = CircuitBreaker::Create(clock, o).value().release();
  b->Record(b->TryAcquire(), CallOutcome::kFailure, Duration::Zero());
  FL_ASSERT(b->state() == BreakerState::kOpen);
  return b;  // leaked on purpose: shared by every thread of every run
}

CircuitBreaker* ClosedBreaker(Clock& clock, BreakerWindowType type) {
  CircuitBreakerOptions o;
  o.window_type = type;
  return CircuitBreaker::Create(clock, o).value().release();
}

// TryAcquire() on an open breaker: one clock read, no write.
void BM_BreakerOpenReject(benchmark::State& state, ClockKind clock) {
  CircuitBreaker& b = PerClock<CircuitBreaker>(clock, OpenBreaker);
  Measure(state, [&] {
    BreakerPermit p = b.TryAcquire();
    benchmark::DoNotOptimize(p);
  });
}
FL_BENCHMARK_CLOCKS(BM_BreakerOpenReject);

// TryAcquire() + Record(permit, outcome): two clock reads (admission, completion), as a caller
// that measures the call's latency with the breaker's clock.
template <BreakerWindowType kType>
void BreakerPermitRecord(benchmark::State& state, ClockKind clock) {
  CircuitBreaker& b = PerClock<CircuitBreaker>(
      clock, [](Clock& c) { return ClosedBreaker(c, kType); });
  Measure(state, [&] {
    const BreakerPermit p = b.TryAcquire();
    b.Record(p, CallOutcome::kSuccess);
  });
  if (b.state() != BreakerState::kClosed) state.SkipWithError("breaker left Closed");
}
void BM_BreakerClosedPermitRecord(benchmark::State& state, ClockKind clock) {
  BreakerPermitRecord<BreakerWindowType::kCountBased>(state, clock);
}
FL_BENCHMARK_CLOCKS(BM_BreakerClosedPermitRecord);
void BM_BreakerClosedPermitRecordTimeWindow(benchmark::State& state, ClockKind clock) {
  BreakerPermitRecord<BreakerWindowType::kTimeBased>(state, clock);
}
FL_BENCHMARK_CLOCKS(BM_BreakerClosedPermitRecordTimeWindow);

// Admitting limiters: 1 token per ns and a capacity of 2^50 tokens, so every call is admitted
// (a CAS) for the whole run, on a frozen ManualClock as on a real clock.
TokenBucket* AdmittingBucket(Clock& clock) {
  TokenBucketOptions o;
  o.capacity_tokens = uint64_t{1} << 50;
  o.refill_tokens = 1;
  o.refill_period = Duration::Nanos(1);
  return TokenBucket::Create(clock, o).value().release();
}

Gcra* AdmittingGcra(Clock& clock) {
  GcraOptions o;
  o.emission_interval = Duration::Nanos(1);
  o.burst_tolerance = Duration::Nanos(int64_t{1} << 50);
  return Gcra::Create(clock, o).value().release();
}

void BM_TokenBucketAcquire(benchmark::State& state, ClockKind clock) {
  TokenBucket& b = PerClock<TokenBucket>(clock, AdmittingBucket);
  Measure(state, [&] {
    RateLimitResult r = b.TryAcquire();
    benchmark::DoNotOptimize(r);
  });
  if (b.counters().rejected != 0) state.SkipWithError("bucket rejected");
}
FL_BENCHMARK_CLOCKS(BM_TokenBucketAcquire);

void BM_GcraAcquire(benchmark::State& state, ClockKind clock) {
  Gcra& g = PerClock<Gcra>(clock, AdmittingGcra);
  Measure(state, [&] {
    RateLimitResult r = g.TryAcquire();
    benchmark::DoNotOptimize(r);
  });
  if (g.counters().rejected != 0) state.SkipWithError("gcra rejected");
}
FL_BENCHMARK_CLOCKS(BM_GcraAcquire);

// Rejecting limiters (one token an hour, already spent): the read-only path with a wait hint.
void BM_TokenBucketReject(benchmark::State& state, ClockKind clock) {
  TokenBucket& b = PerClock<TokenBucket>(clock, [](Clock& c) {
    TokenBucketOptions o;
    o.capacity_tokens = 1;
    o.refill_tokens = 1;
    o.refill_period = Duration::Seconds(3600);
    o.start_full = false;
    return TokenBucket::Create(c, o).value().release();
  });
  Measure(state, [&] {
    RateLimitResult r = b.TryAcquire();
    benchmark::DoNotOptimize(r);
  });
  if (b.counters().admitted != 0) state.SkipWithError("bucket admitted");
}
FL_BENCHMARK_CLOCKS(BM_TokenBucketReject);

void BM_GcraReject(benchmark::State& state, ClockKind clock) {
  Gcra& g = PerClock<Gcra>(clock, [](Clock& c) {
    GcraOptions o;
    o.emission_interval = Duration::Seconds(3600);
    o.burst_tolerance = Duration::Seconds(3600);
    Gcra* limiter = Gcra::Create(c, o).value().release();
    FL_ASSERT(limiter->TryAcquire().admitted());  // the one request of the hour
    return limiter;
  });
  Measure(state, [&] {
    RateLimitResult r = g.TryAcquire();
    benchmark::DoNotOptimize(r);
  });
  if (g.counters().admitted != 1) state.SkipWithError("gcra admitted");
}
FL_BENCHMARK_CLOCKS(BM_GcraReject);

void BM_KeyedRateLimiterAcquire(benchmark::State& state, ClockKind clock) {
  KeyedRateLimiter& k = PerClock<KeyedRateLimiter>(clock, [](Clock& c) {
    KeyedRateLimiterOptions o;
    o.limit.emission_interval = Duration::Nanos(1);
    o.limit.burst_tolerance = Duration::Nanos(int64_t{1} << 50);
    o.keys_max = 1024;
    return KeyedRateLimiter::Create(c, o).value().release();
  });
  uint64_t key = static_cast<uint64_t>(state.thread_index()) * 7919;
  Measure(state, [&] {
    RateLimitResult r = k.TryAcquire(key++ & 1023);
    benchmark::DoNotOptimize(r);
  });
}
FL_BENCHMARK_CLOCKS(BM_KeyedRateLimiterAcquire);

void BM_BulkheadTryAcquireRelease(benchmark::State& state) {
  static Bulkhead* b = [] {
    BulkheadOptions o;
    o.concurrency_max = 1024;
    return Bulkhead::Create(o).value().release();
  }();
  Measure(state, [&] {
    BulkheadPermit p = b->TryAcquire();
    benchmark::DoNotOptimize(p);
  });
  if (b->counters().rejected != 0) state.SkipWithError("bulkhead rejected");
}
BENCHMARK(BM_BulkheadTryAcquireRelease)->Threads(1)->Threads(2)->UseRealTime();

// Baselines: the cost of one clock read through the Clock interface, and of a bare rdtsc (the
// raw counter a calibrated-TSC clock would start from).
void BM_ClockNow(benchmark::State& state, ClockKind kind) {
  Clock& c = bench::BenchClock(kind);
  for (auto _ : state) benchmark::DoNotOptimize(c.Now());
}
FL_BENCHMARK_CLOCKS(BM_ClockNow);

#if defined(__x86_64__)
void BM_Rdtsc(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(__rdtsc());
}
BENCHMARK(BM_Rdtsc)->Threads(1)->UseRealTime();
#endif

}  // namespace
}  // namespace faultline
