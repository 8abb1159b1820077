// Hybrid logical clock and timestamp codec. Targets (issue: clock ordering; research (3)):
//   Hlc::Now() <= 15 ns single-threaded, lock-free under 2 threads on one shared instance;
//   Update(remote) <= 20 ns for a stale remote and for an advancing one; zero heap allocations.
// Each benchmark reports allocs_per_op from the process-wide operator-new counter. Most use
// ManualClock (two atomic loads per reading), to measure the HLC and not the OS clock; the
// *_ChronoClock ones read std::chrono's steady and system clocks (vDSO clock_gettime), as
// production does (time_bench links only faultline::time, so this file has its own tiny Clock).
//
// This file holds the time_bench main(); bench/vv_bench.cc adds its benchmarks to the same binary.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "bench/alloc_counter.h"
#include "faultline/time/hlc.h"
#include "faultline/time/timestamp_codec.h"

namespace faultline {
namespace {

// The production clocks through std::chrono, like adapters/system_clock.cc.
class ChronoClock final : public Clock {
 public:
  MonoTime Now() override {
    return MonoTime::FromNanos(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
  }
  WallTime WallNow() override {
    return WallTime::FromNanos(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
  }
};

std::unique_ptr<Hlc> MakeHlc(Clock& clock, bool detect_clock_jumps) {
  HlcOptions options;
  options.detect_clock_jumps = detect_clock_jumps;
  Result<std::unique_ptr<Hlc>> hlc = Hlc::Create(clock, std::move(options));
  FL_ASSERT(hlc.ok());
  return std::move(hlc).value();
}

// One shared clock and HLC per configuration, created before any thread starts (function-local
// statics), so ->Threads(2) measures two threads contending on the same atomic state.
ManualClock& SharedManualClock() {
  static ManualClock clock;
  return clock;
}
Hlc& SharedHlc() {
  static std::unique_ptr<Hlc> hlc = MakeHlc(SharedManualClock(), true);
  return *hlc;
}
Hlc& SharedHlcNoJumpDetection() {
  static std::unique_ptr<Hlc> hlc = MakeHlc(SharedManualClock(), false);
  return *hlc;
}
ChronoClock& SharedChronoClock() {
  static ChronoClock clock;
  return clock;
}
Hlc& SharedChronoHlc(bool detect_clock_jumps) {
  static std::unique_ptr<Hlc> with = MakeHlc(SharedChronoClock(), true);
  static std::unique_ptr<Hlc> without = MakeHlc(SharedChronoClock(), false);
  return detect_clock_jumps ? *with : *without;
}

void ReportAllocs(benchmark::State& state, uint64_t allocs_before) {
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(bench::Allocations() - allocs_before) /
                         static_cast<double>(state.iterations() * state.threads()));
}

// Physical time moves 1 µs per 64 calls per thread: a busy node (16 M events/s) whose logical
// counter stays small, instead of a frozen clock that carries into the physical part every 4096
// events. The two atomic adds are amortised into the per-call figure (< 0.1 ns).
inline void MaybeTick(ManualClock& clock, uint64_t i) {
  if ((i & 63) == 0) clock.Advance(Duration::Micros(1));
}

void NowLoop(benchmark::State& state, Hlc& hlc) {
  ManualClock& clock = SharedManualClock();
  const uint64_t allocs_before = bench::Allocations();
  uint64_t i = 0;
  for (auto _ : state) {
    MaybeTick(clock, ++i);
    benchmark::DoNotOptimize(hlc.Now());
  }
  ReportAllocs(state, allocs_before);
}

void BM_HlcNow(benchmark::State& state) { NowLoop(state, SharedHlc()); }
BENCHMARK(BM_HlcNow)->Threads(1)->Threads(2)->UseRealTime();

void BM_HlcNow_NoJumpDetection(benchmark::State& state) {
  NowLoop(state, SharedHlcNoJumpDetection());
}
BENCHMARK(BM_HlcNow_NoJumpDetection)->Threads(1)->Threads(2)->UseRealTime();

// Receive event with a stale remote (older than the clock): no merge, one CAS (as Now()).
void BM_HlcUpdate_StaleRemote(benchmark::State& state) {
  Hlc& hlc = SharedHlc();
  ManualClock& clock = SharedManualClock();
  const HlcTimestamp stale = HlcTimestamp::FromWallTime(clock.WallNow() - Duration::Millis(1));
  const uint64_t allocs_before = bench::Allocations();
  uint64_t i = 0;
  for (auto _ : state) {
    MaybeTick(clock, ++i);
    Result<HlcTimestamp> r = hlc.Update(stale);
    benchmark::DoNotOptimize(r);
  }
  ReportAllocs(state, allocs_before);
}
BENCHMARK(BM_HlcUpdate_StaleRemote)->Threads(1)->Threads(2)->UseRealTime();

// Receive event with a remote ahead of the clock (its logical part one past current()): the
// merge path, max(state, remote) + 1, every call.
void BM_HlcUpdate_AdvancingRemote(benchmark::State& state) {
  Hlc& hlc = SharedHlc();
  ManualClock& clock = SharedManualClock();
  const uint64_t allocs_before = bench::Allocations();
  uint64_t i = 0;
  for (auto _ : state) {
    MaybeTick(clock, ++i);
    const HlcTimestamp remote = HlcTimestamp::FromRaw(hlc.current().raw() + 1);
    Result<HlcTimestamp> r = hlc.Update(remote);
    benchmark::DoNotOptimize(r);
  }
  ReportAllocs(state, allocs_before);
}
BENCHMARK(BM_HlcUpdate_AdvancingRemote)->Threads(1)->Threads(2)->UseRealTime();

// CockroachDB's Update (ratchet only) with a stale remote: the CAS-free fast path (PR #56708).
void BM_HlcObserve_StaleRemote(benchmark::State& state) {
  Hlc& hlc = SharedHlc();
  ManualClock& clock = SharedManualClock();
  const HlcTimestamp stale = HlcTimestamp::FromWallTime(clock.WallNow() - Duration::Millis(1));
  const uint64_t allocs_before = bench::Allocations();
  for (auto _ : state) {
    Status s = hlc.Observe(stale);
    benchmark::DoNotOptimize(s);
  }
  ReportAllocs(state, allocs_before);
}
BENCHMARK(BM_HlcObserve_StaleRemote)->Threads(1)->Threads(2)->UseRealTime();

void BM_HlcObserve_AdvancingRemote(benchmark::State& state) {
  Hlc& hlc = SharedHlc();
  ManualClock& clock = SharedManualClock();
  const uint64_t allocs_before = bench::Allocations();
  uint64_t i = 0;
  for (auto _ : state) {
    MaybeTick(clock, ++i);
    Status s = hlc.Observe(HlcTimestamp::FromRaw(hlc.current().raw() + 1));
    benchmark::DoNotOptimize(s);
  }
  ReportAllocs(state, allocs_before);
}
BENCHMARK(BM_HlcObserve_AdvancingRemote)->Threads(1)->Threads(2)->UseRealTime();

// Now() against the OS clocks: one vDSO read without jump detection, three with it.
void BM_HlcNow_ChronoClock(benchmark::State& state) {
  Hlc& hlc = SharedChronoHlc(state.range(0) != 0);
  const uint64_t allocs_before = bench::Allocations();
  for (auto _ : state) benchmark::DoNotOptimize(hlc.Now());
  ReportAllocs(state, allocs_before);
}
BENCHMARK(BM_HlcNow_ChronoClock)
    ->ArgName("detect_jumps")
    ->Arg(0)
    ->Arg(1)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

void BM_ChronoClockWallNow(benchmark::State& state) {
  ChronoClock& clock = SharedChronoClock();
  for (auto _ : state) benchmark::DoNotOptimize(clock.WallNow());
}
BENCHMARK(BM_ChronoClockWallNow);

void BM_HlcTimestampEncodeDecode(benchmark::State& state) {
  const HlcStamp stamp{HlcTimestamp::FromParts(1'700'000'000'000'000, 17), NodeId(3)};
  std::vector<uint8_t> buf;
  buf.reserve(kHlcStampWireBytes);
  const uint64_t allocs_before = bench::Allocations();
  for (auto _ : state) {
    buf.clear();
    EncodeHlcStamp(stamp, &buf);
    Result<HlcStamp> r = DecodeHlcStamp(buf);
    benchmark::DoNotOptimize(r);
  }
  ReportAllocs(state, allocs_before);
}
BENCHMARK(BM_HlcTimestampEncodeDecode);

}  // namespace
}  // namespace faultline

BENCHMARK_MAIN();
