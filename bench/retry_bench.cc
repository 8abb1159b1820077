// Benchmarks for the retry side of faultline/resilience: backoff computation, the A6 token budget,
// the Finagle ratio budget, Retry-After and grpc-timeout parsing, and one RetryState decision.
// Targets (../shared/research/resilience.md §4): backoff and retry-budget record <= 10 ns on one
// thread, 0 heap allocations. Where a primitive is shared by a client's calls it is benchmarked as
// ONE shared instance at Threads(1) and Threads(2). Every benchmark reports allocs_per_op from
// the global operator new counter (bench/alloc_counter.cc); it must be 0.
//
//   resilience_bench --benchmark_filter='Backoff|Budget|RetryAfter|Grpc|RetryState'
//                    --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "bench/alloc_counter.h"
#include "bench/bench_clocks.h"
#include "faultline/core/random.h"
#include "faultline/env/clock.h"
#include "faultline/resilience/backoff.h"
#include "faultline/resilience/deadline.h"
#include "faultline/resilience/retry.h"
#include "faultline/resilience/retry_after.h"
#include "faultline/resilience/retry_budget.h"

namespace faultline {
namespace {

// All threads of one benchmark run meet here (sense-reversing barrier; runs never overlap).
void ThreadBarrier(int threads) {
  static std::atomic<int> arrived{0};
  static std::atomic<uint64_t> generation{0};
  const uint64_t gen = generation.load(std::memory_order_acquire);
  if (arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == threads) {
    arrived.store(0, std::memory_order_relaxed);
    generation.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  while (generation.load(std::memory_order_acquire) == gen) std::this_thread::yield();
}

// Counts heap allocations made during the timed loops. The allocation counter is process-wide,
// so the threads of a run read it only while all of them are between the barriers below: the
// benchmark framework's own allocations (counter maps, thread start-up, result merging) fall
// outside the measured span and the reported allocs_per_op is exactly what the loop allocated.
class AllocScope {
 public:
  explicit AllocScope(benchmark::State& state) : state_(state) {
    state_.counters["allocs_per_op"] = 0;  // insert the key now: later assignments don't allocate
    ThreadBarrier(state_.threads());
    start_ = bench::Allocations();
  }
  ~AllocScope() {
    ThreadBarrier(state_.threads());
    const uint64_t end = bench::Allocations();
    ThreadBarrier(state_.threads());
    state_.counters["allocs_per_op"] =
        benchmark::Counter(static_cast<double>(end - start_), benchmark::Counter::kAvgIterations);
  }

 private:
  benchmark::State& state_;
  uint64_t start_ = 0;
};

const Backoff& SharedBackoff() {
  static const Backoff backoff = [] {
    BackoffOptions o;
    o.delay_initial = Duration::Millis(25);
    o.delay_max = Duration::Seconds(10);
    o.multiplier = 1.6;
    o.jitter = Jitter::kFull;
    return std::move(Backoff::Create(o)).value();
  }();
  return backoff;
}

// Full jitter, retry index cycling through 0..15 (the table path), per-thread Rng.
void BM_BackoffFullJitter(benchmark::State& state) {
  const Backoff& b = SharedBackoff();
  Rng rng(static_cast<uint64_t>(state.thread_index()) + 1);
  uint64_t n = 0;
  Duration prev;
  AllocScope allocs(state);
  for (auto _ : state) {
    prev = b.Delay(n++ & 15, prev, rng);
    benchmark::DoNotOptimize(prev);
  }
}
BENCHMARK(BM_BackoffFullJitter)->Threads(1)->Threads(2)->UseRealTime();

// The same at retry 1e9 (past the table: the "stop doubling at the cap" path).
void BM_BackoffFullJitterHugeRetry(benchmark::State& state) {
  const Backoff& b = SharedBackoff();
  Rng rng(static_cast<uint64_t>(state.thread_index()) + 1);
  uint64_t n = 1'000'000'000;
  AllocScope allocs(state);
  for (auto _ : state) {
    Duration d = b.Delay(n++, Duration::Zero(), rng);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_BackoffFullJitterHugeRetry)->Threads(1)->Threads(2)->UseRealTime();

// Decorrelated jitter drawing from one JitterSource shared by the threads (one atomic fetch_add).
void BM_BackoffDecorrelatedSharedJitterSource(benchmark::State& state) {
  static JitterSource random(42);
  static const Backoff b = [] {
    BackoffOptions o;
    o.jitter = Jitter::kDecorrelated;
    return std::move(Backoff::Create(o)).value();
  }();
  Duration prev;
  AllocScope allocs(state);
  for (auto _ : state) {
    prev = b.Delay(0, prev, random);
    benchmark::DoNotOptimize(prev);
  }
}
BENCHMARK(BM_BackoffDecorrelatedSharedJitterSource)->Threads(1)->Threads(2)->UseRealTime();

TokenRetryBudget& SharedTokens() {
  static const std::unique_ptr<TokenRetryBudget> budget =
      std::move(TokenRetryBudget::Create(TokenRetryBudgetOptions())).value();
  return *budget;
}

// A6 success on a healthy client: the bucket is full, so nothing is written.
void BM_TokenBudgetRecordSuccess(benchmark::State& state) {
  TokenRetryBudget& b = SharedTokens();
  AllocScope allocs(state);
  for (auto _ : state) b.RecordSuccess();
}
BENCHMARK(BM_TokenBudgetRecordSuccess)->Threads(1)->Threads(2)->UseRealTime();

// A6 failure then success, alternating, on a budget whose ratio is one whole token: every call
// is a real compare-and-swap that changes the count. One iteration = one record.
void BM_TokenBudgetRecordFailureSuccess(benchmark::State& state) {
  static const std::unique_ptr<TokenRetryBudget> budget = [] {
    TokenRetryBudgetOptions o;
    o.token_ratio_milli = 1000;
    return std::move(TokenRetryBudget::Create(o)).value();
  }();
  bool fail = true;
  AllocScope allocs(state);
  for (auto _ : state) {
    if (fail) {
      budget->RecordFailure();
    } else {
      budget->RecordSuccess();
    }
    fail = !fail;
  }
}
BENCHMARK(BM_TokenBudgetRecordFailureSuccess)->Threads(1)->Threads(2)->UseRealTime();

void BM_TokenBudgetTryAcquire(benchmark::State& state) {
  TokenRetryBudget& b = SharedTokens();
  AllocScope allocs(state);
  for (auto _ : state) {
    RetryPermit p = b.TryAcquireRetry();
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_TokenBudgetTryAcquire)->Threads(1)->Threads(2)->UseRealTime();

using bench::ClockKind;

RatioRetryBudget& SharedRatio(ClockKind clock) {
  return bench::PerClock<RatioRetryBudget>(clock, [](Clock& c) {
    return std::move(RatioRetryBudget::Create(c, RatioRetryBudgetOptions())).value().release();
  });
}

// Finagle ratio budget: one request deposit (clock read + head check + atomic add).
void BM_RatioBudgetRecordRequest(benchmark::State& state, ClockKind clock) {
  RatioRetryBudget& b = SharedRatio(clock);
  AllocScope allocs(state);
  for (auto _ : state) b.RecordRequest();
}
FL_BENCHMARK_CLOCKS(BM_RatioBudgetRecordRequest);

// Ratio budget acquire + release of one retry (two spinlocked sections, a clock read each), the
// failure path.
void BM_RatioBudgetAcquireRelease(benchmark::State& state, ClockKind clock) {
  RatioRetryBudget& b = SharedRatio(clock);
  AllocScope allocs(state);
  for (auto _ : state) {
    RetryPermit p = b.TryAcquireRetry();
    b.ReleaseRetry(p);
  }
}
FL_BENCHMARK_CLOCKS(BM_RatioBudgetAcquireRelease);

// Ratio budget with the clock moving 1 ms per op (bucket rotation every 1000 ops).
void BM_RatioBudgetRecordRequestRotating(benchmark::State& state) {
  static ManualClock clock;
  static const std::unique_ptr<RatioRetryBudget> budget =
      std::move(RatioRetryBudget::Create(clock, RatioRetryBudgetOptions())).value();
  AllocScope allocs(state);
  for (auto _ : state) {
    clock.Advance(Duration::Millis(1));
    budget->RecordRequest();
  }
}
BENCHMARK(BM_RatioBudgetRecordRequestRotating)->Threads(1)->UseRealTime();

const RetryAfterParser& SharedParser() {
  static const RetryAfterParser parser =
      std::move(RetryAfterParser::Create(RetryAfterOptions())).value();
  return parser;
}

void BM_RetryAfterParseDelaySeconds(benchmark::State& state) {
  const RetryAfterParser& p = SharedParser();
  const WallTime now = WallTime::FromNanos(1'700'000'000'000'000'000);
  AllocScope allocs(state);
  for (auto _ : state) {
    Pushback r = p.Parse("120", now);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_RetryAfterParseDelaySeconds)->Threads(1)->Threads(2)->UseRealTime();

void BM_RetryAfterParseImfFixdate(benchmark::State& state) {
  const RetryAfterParser& p = SharedParser();
  const WallTime now = WallTime::FromNanos(784111700'000'000'000);
  AllocScope allocs(state);
  for (auto _ : state) {
    Pushback r = p.Parse("Sun, 06 Nov 1994 08:49:37 GMT", now);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_RetryAfterParseImfFixdate)->Threads(1)->UseRealTime();

void BM_GrpcTimeoutFormatParse(benchmark::State& state) {
  AllocScope allocs(state);
  int64_t ns = 123'456'789;
  for (auto _ : state) {
    GrpcTimeoutText t = FormatGrpcTimeout(Duration::Nanos(ns++));
    Result<Duration> d = ParseGrpcTimeout(t.view());
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_GrpcTimeoutFormatParse)->Threads(1)->UseRealTime();

// One logical call: start, fail retryably, decide (backoff + deadline + A6 budget), start again,
// succeed. Shared policy and budget, as in a client. Reads the clock twice per attempt, as the
// loop in retry.h does (start, decision).
void BM_RetryStateFailThenSucceed(benchmark::State& state, ClockKind kind) {
  static const RetryPolicy policy = std::move(RetryPolicy::Create(RetryOptions())).value();
  TokenRetryBudget& budget = SharedTokens();
  Clock& clock = bench::BenchClock(kind);
  uint64_t seed = static_cast<uint64_t>(state.thread_index()) << 32;
  AllocScope allocs(state);
  for (auto _ : state) {
    const MonoTime now = clock.Now();
    RetryState s(policy, &budget, Deadline::FromRemaining(now, Duration::Seconds(1)), seed++);
    benchmark::DoNotOptimize(s.StartAttempt(now));
    RetryState::Decision d = s.Decide(Outcome::kRetryable, clock.Now());
    benchmark::DoNotOptimize(d);
    if (d.retry()) {
      // The backoff is not slept: the retry starts at the time the sleep would have ended.
      const MonoTime retry_at = clock.Now() + d.delay;
      benchmark::DoNotOptimize(s.StartAttempt(retry_at));
      s.Decide(Outcome::kSuccess, clock.Now() + d.delay);
    }
  }
}
FL_BENCHMARK_CLOCKS(BM_RetryStateFailThenSucceed);

}  // namespace
}  // namespace faultline

BENCHMARK_MAIN();
