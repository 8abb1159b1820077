// Overhead of fencing at the resource and of phi-accrual failure detection
// (faultline/lease/fence.h, faultline/lease/phi_accrual.h).
// Targets (coordination research, section 3; x86-64, -O2):
//   fence check (FenceGuard admit) <= 20 ns, phi evaluation <= 50 ns, 0 allocations on both.
// The FenceGuard rows run at Threads(1) and Threads(2) on ONE shared guard (UseRealTime: ns per
// operation per thread). FencedStorePut (a LogStore commit on a SimDisk: encode, CRC, append,
// sync) is there for context: it is what the 20 ns check sits in front of. Every benchmark
// reports allocs_per_op from the global operator-new counter (bench/alloc_counter.cc).
//
//   lease_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench/alloc_counter.h"
#include "faultline/core/random.h"
#include "faultline/lease/fence.h"
#include "faultline/lease/phi_accrual.h"
#include "faultline/sim/disk.h"
#include "faultline/store/log_store.h"

namespace faultline {
namespace {

using lease::FailureDetector;
using lease::FailureDetectorOptions;
using lease::FencedKv;
using lease::FencedStore;
using lease::FenceGuard;
using lease::PhiAccrualDetector;
using lease::PhiAccrualOptions;

// Runs `op(i)` in the timed loop and reports allocs_per_op. The counter is sampled inside the
// first and the last timed iteration: meanwhile every other thread is in its own loop or parked at
// the stop barrier, so neither the framework's setup nor its result merging is counted (the
// counter entry is created before the loop, since creating it allocates). The counter is global,
// so each thread's window sees every thread's allocations: dividing by threads as well gives
// allocations per operation (the windows overlap almost entirely).
template <typename Op>
void Measure(benchmark::State& state, Op op) {
  state.counters["allocs_per_op"] = benchmark::Counter(0, benchmark::Counter::kAvgThreads);
  const benchmark::IterationCount last = state.max_iterations - 1;
  benchmark::IterationCount i = 0;
  uint64_t before = 0;
  uint64_t after = 0;
  for (auto _ : state) {
    if (__builtin_expect(i == 0, 0)) before = bench::Allocations();
    op(static_cast<uint64_t>(i));
    if (__builtin_expect(i == last, 0)) after = bench::Allocations();
    ++i;
  }
  const double ops = static_cast<double>(state.iterations()) * state.threads();
  state.counters["allocs_per_op"] = benchmark::Counter(
      ops > 0 ? static_cast<double>(after - before) / ops : 0.0, benchmark::Counter::kAvgThreads);
}

// --- FenceGuard ----------------------------------------------------------------------------------

FenceGuard& SharedGuard() {
  static FenceGuard guard;
  return guard;
}

// Every other call raises the mark by one, the others repeat it (one holder writing, then a newer
// holder taking over). With 2 threads the mark one thread read may be raised by the other before
// its CAS, so a few calls are refused: admitted_ratio says how many were admitted.
void BM_FenceGuardAdmit(benchmark::State& state) {
  FenceGuard& guard = SharedGuard();
  uint64_t admitted = 0;
  Measure(state, [&](uint64_t i) {
    const FencingToken token(guard.highest().value() + (i & 1));
    const Status s = guard.Admit(token);
    admitted += s.ok() ? 1 : 0;
  });
  state.counters["admitted_ratio"] =
      benchmark::Counter(static_cast<double>(admitted) / static_cast<double>(state.iterations()),
                         benchmark::Counter::kAvgThreads);
  if (state.threads() == 1 && admitted != static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("an equal-or-rising token was refused");
  }
}
BENCHMARK(BM_FenceGuardAdmit)->Threads(1)->Threads(2)->UseRealTime();

// The same through TryAdmit (bool, no Status).
void BM_FenceGuardTryAdmit(benchmark::State& state) {
  FenceGuard& guard = SharedGuard();
  Measure(state, [&](uint64_t i) {
    const bool ok = guard.TryAdmit(FencingToken(guard.highest().value() + (i & 1)));
    benchmark::DoNotOptimize(ok);
  });
}
BENCHMARK(BM_FenceGuardTryAdmit)->Threads(1)->Threads(2)->UseRealTime();

// A stale token: Admit builds the kFencedOut Status (its message allocates); TryAdmit is the
// allocation-free way to refuse.
FenceGuard& HighGuard() {
  static FenceGuard guard(FencingToken(uint64_t{1} << 40));
  return guard;
}

void BM_FenceGuardReject(benchmark::State& state) {
  FenceGuard& guard = HighGuard();
  Measure(state, [&](uint64_t i) {
    const Status s = guard.Admit(FencingToken(i & 1023));
    benchmark::DoNotOptimize(s.code());
  });
}
BENCHMARK(BM_FenceGuardReject)->Threads(1)->Threads(2)->UseRealTime();

void BM_FenceGuardTryReject(benchmark::State& state) {
  FenceGuard& guard = HighGuard();
  Measure(state, [&](uint64_t i) {
    const bool ok = guard.TryAdmit(FencingToken(i & 1023));
    benchmark::DoNotOptimize(ok);
  });
}
BENCHMARK(BM_FenceGuardTryReject)->Threads(1)->Threads(2)->UseRealTime();

// --- Phi accrual ---------------------------------------------------------------------------------

// Jittered 1 s intervals (0.8-1.2 s), precomputed so the loops time the detector, not the Rng.
const std::array<Duration, 4096>& Intervals() {
  static const std::array<Duration, 4096> intervals = [] {
    std::array<Duration, 4096> a;
    Rng rng(17);
    for (Duration& d : a) d = rng.Range(Duration::Millis(800), Duration::Millis(1200));
    return a;
  }();
  return intervals;
}

// A detector with a full window (1000 intervals) and the time of its latest heartbeat.
std::unique_ptr<PhiAccrualDetector> FullDetector(MonoTime* last) {
  auto d = PhiAccrualDetector::Create(PhiAccrualOptions()).value();
  MonoTime t = MonoTime::FromNanos(0);
  for (int i = 0; i < 2000; ++i) {
    t += Intervals()[static_cast<size_t>(i) % Intervals().size()];
    d->Heartbeat(t);
  }
  FL_ASSERT(d->samples() == 1000);
  *last = t;
  return d;
}

// Phi at silences of 3.5-4.5 s (mean 1 s + 3 s acceptable pause, std ~115 ms): |z| < 40 for all
// of them, so every call takes the exp + log1p path, on both sides of the mean. The worst case.
void BM_PhiEvaluate(benchmark::State& state) {
  MonoTime last;
  auto d = FullDetector(&last);
  Measure(state, [&](uint64_t i) {
    const double phi = d->Phi(last + Duration::Millis(3500 + static_cast<int64_t>(i & 1023)));
    benchmark::DoNotOptimize(phi);
  });
}
BENCHMARK(BM_PhiEvaluate);

// Silences sweeping 0-8.2 s: mostly far from the mean, where log1p(e^-|z|) is negligible and
// skipped (what a healthy cluster's peers, and a dead peer, cost).
void BM_PhiEvaluateSweep(benchmark::State& state) {
  MonoTime last;
  auto d = FullDetector(&last);
  Measure(state, [&](uint64_t i) {
    const double phi = d->Phi(last + Duration::Millis(static_cast<int64_t>(i & 8191)));
    benchmark::DoNotOptimize(phi);
  });
}
BENCHMARK(BM_PhiEvaluateSweep);

// Suspect: the precomputed boundary makes it one comparison.
void BM_PhiSuspect(benchmark::State& state) {
  MonoTime last;
  auto d = FullDetector(&last);
  Measure(state, [&](uint64_t i) {
    const bool s = d->Suspect(last + Duration::Millis(static_cast<int64_t>(i & 8191)));
    benchmark::DoNotOptimize(s);
  });
}
BENCHMARK(BM_PhiSuspect);

// A heartbeat into a full window: evict, add, recompute mean/std (128-bit) and the boundary.
void BM_PhiHeartbeat(benchmark::State& state) {
  MonoTime t;
  auto d = FullDetector(&t);
  const auto& intervals = Intervals();
  Measure(state, [&](uint64_t i) {
    t += intervals[i & (intervals.size() - 1)];
    d->Heartbeat(t);
  });
  if (d->stats().intervals_skipped != 0) state.SkipWithError("a jittered heartbeat was suspected");
}
BENCHMARK(BM_PhiHeartbeat);

// FailureDetector::Suspect for one of 64 peers: hash lookup + pause guard + comparison.
void BM_FailureDetectorSuspect(benchmark::State& state) {
  auto fd = FailureDetector::Create(FailureDetectorOptions()).value();
  MonoTime t = MonoTime::FromNanos(0);
  for (int i = 0; i < 100; ++i) {
    t += Duration::Seconds(1);
    fd->Tick(t);
    for (uint32_t p = 0; p < 64; ++p) fd->Heartbeat(NodeId(p), t).IgnoreError();
  }
  Measure(state, [&](uint64_t i) {
    const bool s = fd->Suspect(NodeId(static_cast<uint32_t>(i & 63)),
                               t + Duration::Millis(static_cast<int64_t>(i & 4095)));
    benchmark::DoNotOptimize(s);
  });
}
BENCHMARK(BM_FailureDetectorSuspect);

// --- Fenced storage ------------------------------------------------------------------------------

std::vector<std::string> Keys(size_t n) {
  std::vector<std::string> keys;
  for (size_t i = 0; i < n; ++i) keys.push_back("key/" + std::to_string(i));
  return keys;
}

// For context: one fenced Put is one LogStore transaction (read mark, raise it every 16th call,
// write the key, commit = one log record appended and synced on the SimDisk).
void BM_FencedStorePut(benchmark::State& state) {
  Rng rng(1);
  sim::SimDisk disk(&rng);
  auto store = LogStore::Open(disk).value();
  FencedStore fenced(*store, "bench");
  const std::vector<std::string> keys = Keys(1024);
  bool failed = false;
  Measure(state, [&](uint64_t i) {
    const Status s = fenced.Put(FencingToken(i >> 4), keys[i & 1023], "value-0123456789");
    failed |= !s.ok();
  });
  if (failed) state.SkipWithError("a fenced Put failed");
}
BENCHMARK(BM_FencedStorePut);

// The simulator's fenced key-value service: guard + map assignment of an existing key.
void BM_FencedKvPut(benchmark::State& state) {
  FencedKv kv;
  const std::vector<std::string> keys = Keys(1024);
  for (const std::string& k : keys) kv.Put(FencingToken(0), k, "v").IgnoreError();
  bool failed = false;
  Measure(state, [&](uint64_t i) {
    const Status s = kv.Put(FencingToken(i >> 4), keys[i & 1023], "value-0123");
    failed |= !s.ok();
  });
  if (failed) state.SkipWithError("a fenced Put failed");
}
BENCHMARK(BM_FencedKvPut);

}  // namespace
}  // namespace faultline

BENCHMARK_MAIN();
