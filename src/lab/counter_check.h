// Internal: selftest's typed observations and its checker (counter_checker.cc).
#pragma once

#include <cstdint>
#include <vector>

#include "src/lab/observations.h"

namespace faultline::lab {
struct RunResult;  // faultline/lab/scenario.h: what a checker fills
}  // namespace faultline::lab

namespace faultline::lab {

// One client's increment of the replicated counter.
struct CounterIncrement {
  int64_t process = 0;
  int64_t invoke_ns = 0;
  Outcome outcome = Outcome::kPending;
  int64_t end_ns = 0;  // when outcome != kPending
};

// A replica's value once the faults have healed.
struct CounterRead {
  int64_t process = 0;
  uint32_t node = 0;
  int64_t value = 0;
  int64_t time_ns = 0;
};

struct CounterObservations {
  std::vector<CounterIncrement> increments;  // in invocation order
  std::vector<CounterRead> final_reads;      // at least one
};

// Judges the observations alone. An increment counts as acknowledged when ok, as attempted unless
// it certainly failed (an info or pending one may or may not have been applied). Adds violations
// lost-acknowledged-increment (per final read below the acknowledged count), phantom-increment (per
// final read above the attempted count) and replicas-diverged (final reads differ), and metrics
// acked_increments, lost_increments, phantom_increments, replica_spread.
void CheckCounterHistory(const CounterObservations& observations, RunResult* result);

// The Jepsen-shaped history of the observations: f="inc" (value 1) and f="read" (the value).
check::History CounterHistory(const CounterObservations& observations);

}  // namespace faultline::lab
