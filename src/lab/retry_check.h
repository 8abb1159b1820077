// Internal: retry-amplification's typed observations and its checker (retry_checker.cc).
#pragma once

#include <cstdint>
#include <vector>

#include "src/lab/observations.h"

namespace faultline::lab {
struct RunResult;  // faultline/lab/scenario.h: what a checker fills
}  // namespace faultline::lab

namespace faultline::lab {

// One attempt reaching the database, on behalf of user request `request`.
struct DbAttempt {
  uint64_t request = 0;
  int64_t time_ns = 0;
};

struct RetryObservations {
  std::vector<UserRequest> requests;   // in invocation order
  std::vector<DbAttempt> db_attempts;  // in time order
  int64_t blip_start_ns = -1;          // the database blip; the checker requires both
  int64_t blip_end_ns = -1;
};

// Judges the observations alone. Metrics:
//   db_amplification    database attempts per failed user request (failed or unanswered)
//   db_peak_load_per_s  the busiest 100 ms of database attempts, per second
//   recovery_s          from the blip's end until every later 500 ms window of invoked requests
//                       succeeds at >= 90% (requests still pending at the end count as failed)
//   requests, requests_failed
// Violations: "retry-amplification" (amplification > 1.5) and "not-recovered" (no recovery, or
// later than 10 s after the blip's end).
void CheckRetryHistory(const RetryObservations& observations, RunResult* result);

// The Jepsen-shaped history: f="request" ({"req": id}), f="db-attempt" (info, process -1) and the
// "blip-start" / "blip-end" markers (info, process -2).
check::History RetryHistory(const RetryObservations& observations);

}  // namespace faultline::lab
