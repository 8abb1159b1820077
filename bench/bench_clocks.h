// The clocks every time-reading primitive is benchmarked with, side by side:
//   manual  ManualClock: an atomic load behind a virtual call (the primitive's own cost),
//   steady  SystemClock: std::chrono::steady_clock, CLOCK_MONOTONIC through the vDSO,
//   coarse  CoarseClock: CLOCK_MONOTONIC_COARSE, error < 2 ticks (adapters/coarse_clock.h).
// FL_BENCHMARK_CLOCKS(BM_X) registers BM_X/manual, BM_X/steady and BM_X/coarse; the function
// takes (benchmark::State&, ClockKind) and must keep one shared instance per clock kind.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>

#include "faultline/adapters/coarse_clock.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/env/clock.h"

namespace faultline::bench {

enum class ClockKind : size_t { kManual = 0, kSteady = 1, kCoarse = 2 };
inline constexpr size_t kClockKinds = 3;

inline Clock& BenchClock(ClockKind kind) {
  static ManualClock manual;
  switch (kind) {
    case ClockKind::kManual:
      return manual;
    case ClockKind::kSteady:
      return SystemClock::Default();
    case ClockKind::kCoarse:
      break;
  }
  return CoarseClock::Default();
}

// One leaked instance per clock kind, made by `make(Clock&) -> T*` on first use (each call site's
// lambda is its own type, so each call site gets its own instances), shared by every thread of
// every run.
template <typename T, typename Make>
T& PerClock(ClockKind kind, Make make) {
  static T* const instances[kClockKinds] = {make(BenchClock(ClockKind::kManual)),
                                            make(BenchClock(ClockKind::kSteady)),
                                            make(BenchClock(ClockKind::kCoarse))};
  return *instances[static_cast<size_t>(kind)];
}

}  // namespace faultline::bench

#define FL_BENCHMARK_CLOCKS(fn)                                                 \
  BENCHMARK_CAPTURE(fn, manual, ::faultline::bench::ClockKind::kManual)        \
      ->Threads(1)                                                              \
      ->Threads(2)                                                              \
      ->UseRealTime();                                                          \
  BENCHMARK_CAPTURE(fn, steady, ::faultline::bench::ClockKind::kSteady)        \
      ->Threads(1)                                                              \
      ->Threads(2)                                                              \
      ->UseRealTime();                                                          \
  BENCHMARK_CAPTURE(fn, coarse, ::faultline::bench::ClockKind::kCoarse)        \
      ->Threads(1)                                                              \
      ->Threads(2)                                                              \
      ->UseRealTime()
