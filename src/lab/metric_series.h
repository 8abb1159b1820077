// Internal: the simulator's metrics recorder. An Observer the scenarios attach to their nodes'
// primitives (ObserverSlot::Attach) that turns each event into the same series the Prometheus
// exporter publishes (observe/metrics.h: faultline_retry_attempts_total{instance_name="client"},
// ...), sampled at the world's simulated time, for the report's charts and the run's JSON.
//
// Determinism: OnEvent reads the world's time (TrueTime, no real clock), draws no randomness and
// schedules nothing; it only appends to its own vectors. Attaching it cannot change a run or its
// determinism hash.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "faultline/core/observer.h"
#include "faultline/env/node.h"
#include "faultline/lab/scenario.h"
#include "faultline/observe/metrics.h"

namespace faultline::lab {

class MetricSeriesRecorder final : public Observer {
 public:
  // Points closer than this to the previous one of the same series replace its value (a chart
  // needs no finer steps; a busy run stays small).
  static constexpr int64_t kResolutionNs = 10'000'000;  // 10 ms

  // `time` (the world) must be set before the first event and outlive the recorder's use.
  void SetTime(const TrueTime* time) { time_ = time; }
  void OnEvent(const Event& event) noexcept override;

  // Appends one Series per recorded counter or gauge (the histogram's buckets are not charted)
  // — counters share the unit "events (cumulative)", each gauge its own — held to `end_ns`, and
  // each series' final value to result->metrics under the series' name.
  void AddTo(int64_t end_ns, RunResult* result) const;

  // The current value of one series (unscaled), 0 if it never moved.
  int64_t Value(const std::string& instance, observe::Cell cell) const;

 private:
  struct Track {
    int64_t value = 0;
    std::vector<std::pair<int64_t, int64_t>> points;  // (time_ns, value)
  };
  void Record(const std::string& instance, observe::Cell cell, int64_t value, bool set);

  const TrueTime* time_ = nullptr;
  std::map<std::pair<std::string, uint16_t>, Track> tracks_;  // ordered: deterministic output
};

// The Prometheus-style name of a series: metric{instance_name="x"[,label="v"]}.
std::string SeriesName(const std::string& instance, observe::Cell cell);

}  // namespace faultline::lab
