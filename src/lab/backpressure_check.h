// Internal: backpressure's typed observations and its checker (backpressure_checker.cc).
#pragma once

#include <cstdint>
#include <vector>

#include "src/lab/observations.h"

namespace faultline::lab {
struct RunResult;  // faultline/lab/scenario.h: what a checker fills
}  // namespace faultline::lab

namespace faultline::lab {

// From `start_ns` until the next phase: what the dependency can serve, and whether the trigger
// (the slowdown) is on.
struct CapacityPhase {
  int64_t start_ns = 0;
  int64_t capacity_rps = 0;
  bool trigger = false;
};

// The dependency's queue: the deepest it got in the sampling interval ending at `time_ns`.
struct QueueSample {
  int64_t time_ns = 0;
  int64_t depth = 0;
  int64_t bound = 0;  // the queue's declared bound
};

struct BackpressureObservations {
  std::vector<UserRequest> requests;  // in invocation order
  std::vector<CapacityPhase> phases;  // in time order; at least one
  std::vector<QueueSample> queue_samples;
};

// Judges the observations alone. Metrics:
//   goodput_ratio    requests completed successfully while the trigger is on, divided by what the
//                    dependency could have served then: the integral of min(offered, capacity)
//                    over the trigger's phases
//   p99_latency_ms   99th percentile latency of successful requests, whole run
//   max_queue_depth  the largest sampled dependency queue
//   recovery_s       from the trigger's end until every later 1 s window of invoked requests
//                    succeeds at >= 90% (requests still pending at the end count as failed)
//   requests
// Violations: "goodput-collapse" (ratio < 0.7), "queue-over-bound" (largest sample above the last
// sample's bound), "not-recovered" (no recovery, or later than 30 s after the trigger's end).
void CheckBackpressureHistory(const BackpressureObservations& observations, RunResult* result);

// The Jepsen-shaped history: f="request" ({"req": id}), "capacity" markers ({"rps","trigger"},
// process -2) and "queue-depth" samples ({"depth","bound"}, process -3).
check::History BackpressureHistory(const BackpressureObservations& observations);

}  // namespace faultline::lab
