// Overhead of the protection primitives (issue "Retry amplification and backpressure").
// Targets (resilience research, section 4; x86-64, -O2, 1 thread):
//   open-breaker reject <= 5 ns, closed-breaker permit+record <= 20 ns,
//   token bucket / GCRA acquire <= 15 ns, bulkhead TryAcquire+release <= 15 ns, 0 allocations.
// For reference: Polly v8 publishes 137.7 ns per circuit-breaker call, Resilience4j ~320 ns.
// Every benchmark runs at Threads(1) and Threads(2) on ONE shared instance (UseRealTime: ns per
// operation per thread) and reports allocs_per_op from the global operator-new counter.
// The primitives read time through the injected Clock: the main rows use a ManualClock (an atomic
// load behind a virtual call), so they measure the primitive; the *SteadyClock rows add a real
// std::chrono::steady_clock read per call (what production pays unless it passes `now` in).
//
// No BENCHMARK_MAIN here: linked into resilience_bench with retry_bench.cc, which has it.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <memory>

#include "bench/alloc_counter.h"
#include "faultline/env/clock.h"
#include "faultline/resilience/bulkhead.h"
#include "faultline/resilience/circuit_breaker.h"
#include "faultline/resilience/rate_limiter.h"

namespace faultline {
namespace {

class SteadyClock final : public Clock {
 public:
  MonoTime Now() override {
    return MonoTime::FromNanos(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
  }
  WallTime WallNow() override { return WallTime::FromNanos(0); }
};

ManualClock& Manual() {
  static ManualClock clock;
  return clock;
}
SteadyClock& Steady() {
  static SteadyClock clock;
  return clock;
}

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

CircuitBreaker& OpenBreaker(Clock& clock) {
  CircuitBreakerOptions o;
  o.min_calls = 1;
  o.window_calls = 1;
  o.open_duration_min = Duration::Seconds(86'400);
  o.open_duration_max = Duration::Seconds(86'400);
  auto b = CircuitBreaker::Create(clock, o).value().release();
  b->Record(b->TryAcquire(), CallOutcome::kFailure, Duration::Zero());
  FL_ASSERT(b->state() == BreakerState::kOpen);
  return *b;  // leaked on purpose: shared by every thread of every run
}

CircuitBreaker& ClosedBreaker(Clock& clock, BreakerWindowType type) {
  CircuitBreakerOptions o;
  o.window_type = type;
  auto b = CircuitBreaker::Create(clock, o).value().release();
  return *b;
}

void BM_BreakerOpenReject(benchmark::State& state) {
  static CircuitBreaker& b = OpenBreaker(Manual());
  Measure(state, [&] {
    BreakerPermit p = b.TryAcquire();
    benchmark::DoNotOptimize(p);
  });
}
BENCHMARK(BM_BreakerOpenReject)->Threads(1)->Threads(2)->UseRealTime();

void BM_BreakerOpenRejectSteadyClock(benchmark::State& state) {
  static CircuitBreaker& b = OpenBreaker(Steady());
  Measure(state, [&] {
    BreakerPermit p = b.TryAcquire();
    benchmark::DoNotOptimize(p);
  });
}
BENCHMARK(BM_BreakerOpenRejectSteadyClock)->Threads(1)->Threads(2)->UseRealTime();

void BM_BreakerClosedPermitRecord(benchmark::State& state) {
  static CircuitBreaker& b = ClosedBreaker(Manual(), BreakerWindowType::kCountBased);
  Measure(state, [&] {
    const BreakerPermit p = b.TryAcquire();
    b.Record(p, CallOutcome::kSuccess, Duration::Micros(10));
  });
  if (b.state() != BreakerState::kClosed) state.SkipWithError("breaker left Closed");
}
BENCHMARK(BM_BreakerClosedPermitRecord)->Threads(1)->Threads(2)->UseRealTime();

void BM_BreakerClosedPermitRecordTimeWindow(benchmark::State& state) {
  static CircuitBreaker& b = ClosedBreaker(Manual(), BreakerWindowType::kTimeBased);
  Measure(state, [&] {
    const BreakerPermit p = b.TryAcquire();
    b.Record(p, CallOutcome::kSuccess, Duration::Micros(10));
  });
}
BENCHMARK(BM_BreakerClosedPermitRecordTimeWindow)->Threads(1)->Threads(2)->UseRealTime();

void BM_BreakerClosedPermitRecordSteadyClock(benchmark::State& state) {
  static CircuitBreaker& b = ClosedBreaker(Steady(), BreakerWindowType::kCountBased);
  Measure(state, [&] {
    const BreakerPermit p = b.TryAcquire();
    b.Record(p, CallOutcome::kSuccess, Duration::Micros(10));
  });
}
BENCHMARK(BM_BreakerClosedPermitRecordSteadyClock)->Threads(1)->Threads(2)->UseRealTime();

// Admitting limiters: 1 token per ns and a capacity of 2^50 tokens, so every call is admitted
// (a CAS) for the whole run on the frozen ManualClock.
TokenBucket& AdmittingBucket() {
  TokenBucketOptions o;
  o.capacity_tokens = uint64_t{1} << 50;
  o.refill_tokens = 1;
  o.refill_period = Duration::Nanos(1);
  static TokenBucket* b = TokenBucket::Create(Manual(), o).value().release();
  return *b;
}

Gcra& AdmittingGcra() {
  GcraOptions o;
  o.emission_interval = Duration::Nanos(1);
  o.burst_tolerance = Duration::Nanos(int64_t{1} << 50);
  static Gcra* g = Gcra::Create(Manual(), o).value().release();
  return *g;
}

void BM_TokenBucketAcquire(benchmark::State& state) {
  TokenBucket& b = AdmittingBucket();
  Measure(state, [&] {
    RateLimitResult r = b.TryAcquire();
    benchmark::DoNotOptimize(r);
  });
  if (b.counters().rejected != 0) state.SkipWithError("bucket rejected");
}
BENCHMARK(BM_TokenBucketAcquire)->Threads(1)->Threads(2)->UseRealTime();

void BM_GcraAcquire(benchmark::State& state) {
  Gcra& g = AdmittingGcra();
  Measure(state, [&] {
    RateLimitResult r = g.TryAcquire();
    benchmark::DoNotOptimize(r);
  });
  if (g.counters().rejected != 0) state.SkipWithError("gcra rejected");
}
BENCHMARK(BM_GcraAcquire)->Threads(1)->Threads(2)->UseRealTime();

// Rejecting limiters (exhausted, frozen clock): the read-only path with a wait hint.
void BM_TokenBucketReject(benchmark::State& state) {
  static TokenBucket* b = [] {
    TokenBucketOptions o;
    o.capacity_tokens = 1;
    o.refill_tokens = 1;
    o.refill_period = Duration::Seconds(3600);
    o.start_full = false;
    return TokenBucket::Create(Manual(), o).value().release();
  }();
  Measure(state, [&] {
    RateLimitResult r = b->TryAcquire();
    benchmark::DoNotOptimize(r);
  });
}
BENCHMARK(BM_TokenBucketReject)->Threads(1)->Threads(2)->UseRealTime();

void BM_GcraAcquireSteadyClock(benchmark::State& state) {
  static Gcra* g = [] {
    GcraOptions o;
    o.emission_interval = Duration::Nanos(1);
    o.burst_tolerance = Duration::Nanos(int64_t{1} << 50);
    return Gcra::Create(Steady(), o).value().release();
  }();
  Measure(state, [&] {
    RateLimitResult r = g->TryAcquire();
    benchmark::DoNotOptimize(r);
  });
}
BENCHMARK(BM_GcraAcquireSteadyClock)->Threads(1)->Threads(2)->UseRealTime();

void BM_KeyedRateLimiterAcquire(benchmark::State& state) {
  static KeyedRateLimiter* k = [] {
    KeyedRateLimiterOptions o;
    o.limit.emission_interval = Duration::Nanos(1);
    o.limit.burst_tolerance = Duration::Nanos(int64_t{1} << 50);
    o.keys_max = 1024;
    return KeyedRateLimiter::Create(Manual(), o).value().release();
  }();
  uint64_t key = static_cast<uint64_t>(state.thread_index()) * 7919;
  Measure(state, [&] {
    RateLimitResult r = k->TryAcquire(key++ & 1023);
    benchmark::DoNotOptimize(r);
  });
}
BENCHMARK(BM_KeyedRateLimiterAcquire)->Threads(1)->Threads(2)->UseRealTime();

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

// Baselines: the cost of one clock read.
void BM_ManualClockNow(benchmark::State& state) {
  Clock& c = Manual();
  for (auto _ : state) benchmark::DoNotOptimize(c.Now());
}
BENCHMARK(BM_ManualClockNow)->Threads(1)->Threads(2)->UseRealTime();

void BM_SteadyClockNow(benchmark::State& state) {
  Clock& c = Steady();
  for (auto _ : state) benchmark::DoNotOptimize(c.Now());
}
BENCHMARK(BM_SteadyClockNow)->Threads(1)->UseRealTime();

}  // namespace
}  // namespace faultline
