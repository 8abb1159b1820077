// Internal: clock-ordering's typed observations and its checker (clock_checker.cc).
#pragma once

#include <cstdint>
#include <vector>

#include "src/lab/observations.h"

namespace faultline::lab {
struct RunResult;  // faultline/lab/scenario.h: what a checker fills
}  // namespace faultline::lab

namespace faultline::lab {

// One client write: what it depended on, and how it ended.
struct ClockWrite {
  uint64_t id = 0;  // unique, > 0
  uint64_t key = 0;
  // Its causes: the values its client had just read, and that client's previous write. Every dep
  // is a smaller id.
  std::vector<uint64_t> deps;
  int64_t process = 0;
  int64_t invoke_ns = 0;
  Outcome outcome = Outcome::kPending;
  int64_t end_ns = 0;  // when outcome != kPending
  uint64_t ts = 0;     // when kOk: the commit timestamp (HLC layout; physical µs << 12 | logical)
  uint32_t node = 0;   // when kOk: the replica that acknowledged it
};

// A client read of one key at one replica. `after` != 0 marks the read-back of write `after` at the
// replica that acknowledged it, right after the acknowledgement.
struct ClockRead {
  int64_t process = 0;
  uint64_t key = 0;
  uint64_t after = 0;
  std::vector<uint64_t> ids;  // the values read (ids of the writes that made them)
  int64_t time_ns = 0;
};

// A replica's values of one key once the run has quiesced.
struct ClockFinal {
  uint32_t node = 0;
  uint64_t key = 0;
  std::vector<uint64_t> ids;
  int64_t time_ns = 0;
};

struct ClockObservations {
  std::vector<ClockWrite> writes;  // in invocation order (ids are not)
  std::vector<ClockRead> reads;    // in time order
  std::vector<ClockFinal> finals;
  // Timestamps appear in violation details as seconds since this instant (µs since the Unix epoch,
  // in the timestamps' own layout): the simulator's wall-clock epoch. 0 for raw values.
  int64_t ts_origin_us = 0;
};

// Judges the observations alone, for:
//   causality           an acknowledged write must carry a larger (ts, node) than each acknowledged
//                       cause: "causality-violation" per (effect, cause) pair.
//   no lost updates     an acknowledged write W must be in its read-back (or in the causal past of
//                       a value read back), and after convergence in the final values (or their
//                       causal past). Otherwise W was lost: to a causally earlier write
//                       ("lost-update"), to a concurrent one ("concurrent-write-lost"), or to
//                       nothing ("write-vanished"). Each write counts once, by its first loss.
//   external            a write invoked after another was acknowledged (in true time) must carry a
//   consistency         larger stamp: "external-consistency-violation" per such write.
// plus "replicas-diverged" per (key, replica) whose final values differ from the first replica's.
// Metrics: writes_acked, causality_violations, lost_updates, concurrent_writes_lost,
// external_consistency_violations.
void CheckClockHistory(const ClockObservations& observations, RunResult* result);

// The Jepsen-shaped history: f="write" (invoke {"id","key","deps"}, ok adds "ts","node"),
// f="read" ({"key"} or {"key","after"}, ok adds "ids") and f="final" ({"node","key"}, ok adds
// "ids").
check::History ClockHistory(const ClockObservations& observations);

}  // namespace faultline::lab
