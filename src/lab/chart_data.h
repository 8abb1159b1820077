// Internal: what the scenarios record for the lab report's charts (faultline lab --html): the
// faults of a run as spans, and time series derived from the observations a scenario already
// keeps. Everything here runs after the simulation, on recorded data: it draws no randomness and
// schedules nothing, so it cannot change a run or its determinism hash.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "faultline/lab/scenario.h"
#include "faultline/sim/nemesis.h"

namespace faultline::lab {

// The spans of a nemesis schedule: each fault paired with the action that ends it (heal, resume,
// restart, clock reset, link repair; HealAll ends whatever is still open; a clog ends after its
// length). Actions due after `end_ns` are left out and open spans end at `end_ns`.
std::vector<FaultSpan> FaultSpans(const std::vector<sim::FaultAction>& schedule, int64_t end_ns);

// Events per second in consecutive windows of `window_ns` from 0 to `end_ns`: one point per
// window, at the window's start. `times_ns` need not be sorted.
Series RateSeries(std::string name, const std::vector<int64_t>& times_ns, int64_t window_ns,
                  int64_t end_ns);

// A count that rises by one at each of `times_ns` (need not be sorted): a point at 0 and one
// after each distinct time. At most `max_points` points (later increments merge into the last).
Series CumulativeSeries(std::string name, std::string unit, std::vector<int64_t> times_ns,
                        int64_t end_ns, size_t max_points = 2000);

// The simulation's sampling interval for charts.
inline constexpr int64_t kChartWindowNs = 100'000'000;  // 100 ms
// For event streams of a few dozen per second, where 100 ms windows would hold 0 or 1 events.
inline constexpr int64_t kChartSlowWindowNs = 500'000'000;  // 500 ms

}  // namespace faultline::lab
