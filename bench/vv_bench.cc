// Version vectors, dotted version vectors and the interval clock. Targets (issue: clock
// ordering): VersionVector::Compare for 8 replicas <= 20 ns; Merge for 8 replicas and DvvRegister
// Put with 3 siblings allocate nothing. Each benchmark reports allocs_per_op from the process-wide
// operator-new counter (bench/alloc_counter.cc).
//
// Linked into time_bench, whose main() is in bench/hlc_bench.cc: no BENCHMARK_MAIN here.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench/alloc_counter.h"
#include "faultline/time/interval_clock.h"
#include "faultline/time/version_vector.h"

namespace faultline {
namespace {

constexpr ReplicaId kReplicas = 8;

// Replicas 0..7 with counters base + i·step.
VersionVector Vector8(uint64_t base, uint64_t step, ReplicaId first = 0) {
  VersionVector vv;
  for (ReplicaId i = 0; i < kReplicas; ++i) FL_ASSERT(vv.Raise(first + i, base + i * step).ok());
  return vv;
}

void ReportAllocs(benchmark::State& state, uint64_t before) {
  state.counters["allocs_per_op"] = benchmark::Counter(
      static_cast<double>(bench::Allocations() - before), benchmark::Counter::kAvgIterations);
}

// Same replica set (the steady state of a cluster): the memcmp + branch-free fast path.
// The pair is concurrent, so the loop cannot stop early.
void BM_VvCompare8Replicas(benchmark::State& state) {
  VersionVector a = Vector8(10, 1);
  VersionVector b = Vector8(10, 1);
  FL_ASSERT(b.Raise(7, 1000).ok());
  FL_ASSERT(a.Raise(0, 1000).ok());
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    benchmark::DoNotOptimize(&a);
    benchmark::DoNotOptimize(&b);
    Causality c = a.Compare(b);
    benchmark::DoNotOptimize(c);
  }
  ReportAllocs(state, before);
}
BENCHMARK(BM_VvCompare8Replicas);

// Different replica sets (7 shared, 1 each side only): the general merge walk.
void BM_VvCompare8ReplicasMixedSets(benchmark::State& state) {
  VersionVector a = Vector8(10, 1);
  VersionVector b = Vector8(10, 1, /*first=*/1);
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    benchmark::DoNotOptimize(&a);
    benchmark::DoNotOptimize(&b);
    Causality c = a.Compare(b);
    benchmark::DoNotOptimize(c);
  }
  ReportAllocs(state, before);
}
BENCHMARK(BM_VvCompare8ReplicasMixedSets);

void BM_VvMerge8Replicas(benchmark::State& state) {
  const VersionVector a = Vector8(10, 3);
  const VersionVector b = Vector8(20, 1);
  VersionVector target;
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    target = a;
    benchmark::DoNotOptimize(&target);
    Status s = target.Merge(b);
    bool ok = s.ok();
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(&target);
  }
  ReportAllocs(state, before);
}
BENCHMARK(BM_VvMerge8Replicas);

void BM_VvMerge8ReplicasMixedSets(benchmark::State& state) {
  const VersionVector a = Vector8(10, 3);
  const VersionVector b = Vector8(20, 1, /*first=*/4);  // union of 12 replicas
  VersionVector target;
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    target = a;
    benchmark::DoNotOptimize(&target);
    Status s = target.Merge(b);
    bool ok = s.ok();
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(&target);
  }
  ReportAllocs(state, before);
}
BENCHMARK(BM_VvMerge8ReplicasMixedSets);

// A register holding 3 concurrent siblings (one per replica); each put comes through one replica
// with a context that covers that replica's sibling, so it replaces it: 3 siblings before and
// after every put. The value fits std::string's inline buffer, as a moved-in value would.
void BM_DvvPut3Siblings(benchmark::State& state) {
  DvvRegister reg;
  VersionVector ctx[3];
  for (ReplicaId r = 0; r < 3; ++r) {
    const Result<Dot> dot = reg.Put(r, VersionVector(), "initial");
    FL_ASSERT(dot.ok());
    FL_ASSERT(ctx[r].Raise(r, dot->counter).ok());
  }
  FL_ASSERT(reg.siblings().size() == 3);
  ReplicaId r = 0;
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    const Result<Dot> dot = reg.Put(r, ctx[r], std::string("value-7"));
    FL_ASSERT(dot.ok());
    FL_ASSERT(ctx[r].Raise(r, dot->counter).ok());
    r = (r + 1) % 3;
  }
  ReportAllocs(state, before);
  FL_ASSERT(reg.siblings().size() == 3);
  state.counters["siblings"] = static_cast<double>(reg.siblings().size());
}
BENCHMARK(BM_DvvPut3Siblings);

void BM_DvvMergeReplicas3Siblings(benchmark::State& state) {
  DvvRegister a;
  DvvRegister b;
  FL_ASSERT(a.Put(0, VersionVector(), "a0").ok());
  FL_ASSERT(b.Put(1, VersionVector(), "b1").ok());
  FL_ASSERT(b.Put(2, VersionVector(), "b2").ok());
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    DvvRegister target = a;
    Status s = target.Merge(b);
    bool ok = s.ok();
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(&target);
  }
  ReportAllocs(state, before);
}
BENCHMARK(BM_DvvMergeReplicas3Siblings);

void BM_VvEncodeDecode8Replicas(benchmark::State& state) {
  const VersionVector vv = Vector8(1'000'000, 12'345);
  std::vector<uint8_t> buf;
  buf.reserve(128);
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    buf.clear();
    EncodeVersionVector(vv, &buf);
    Result<VersionVector> back = DecodeVersionVector(buf);
    bool ok = back.ok();
    benchmark::DoNotOptimize(ok);
  }
  ReportAllocs(state, before);
}
BENCHMARK(BM_VvEncodeDecode8Replicas);

// IntervalClock::Now over ManualClock: the mutex-guarded snapshot plus the drift arithmetic.
void BM_IntervalClockNow(benchmark::State& state) {
  ManualClock clock;
  auto ic = IntervalClock::Create(clock);
  FL_ASSERT(ic.ok());
  FL_ASSERT((*ic)->Sync(WallTime::FromNanos(1'800'000'000'000'000'000), Duration::Millis(1)).ok());
  clock.Advance(Duration::Seconds(1));
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    Result<TimeInterval> now = (*ic)->Now();
    bool ok = now.ok();
    benchmark::DoNotOptimize(ok);
  }
  ReportAllocs(state, before);
}
BENCHMARK(BM_IntervalClockNow);

}  // namespace
}  // namespace faultline
