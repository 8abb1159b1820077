// File: faultline/sim/clock.h
//
// A node's clocks in the simulator, as functions of true time t:
//   mono(t) = mono_anchor + (t - t_anchor) · (1 + drift_ppm/1e6)      never decreases
//   wall(t) = mono(t) + wall_offset (+ strobe, while strobing)        may jump
// Faults: drift changes (re-anchored so mono stays continuous), wall jumps (±), strobe (wall flips
// between two offsets with a period, like Jepsen's clock strobe) and Reset (an NTP step back to
// true wall time). Timers are armed on node-monotonic time and converted to true time through the
// inverse of the current rate; if the rate rises before such a timer is due, the World re-arms it
// for the rest of its monotonic delay, so a timer never fires before its monotonic deadline (it may
// fire late, as on a real OS).
#pragma once

// Node code (files compiled with FAULTLINE_NODE_CODE) runs on the real runtime too: it may not see
// the simulator.
#ifdef FAULTLINE_NODE_CODE
#error "node code must not include faultline/sim/ headers"
#endif

#include <cstdint>

#include "faultline/env/clock.h"
#include "faultline/sim/scheduler.h"

namespace faultline::sim {

// The Unix time at which every simulation starts (2025-01-01T00:00:00Z), so wall clocks look real.
inline constexpr int64_t kSimEpochUnixNs = 1'735'689'600'000'000'000;

class SimClock final : public Clock {
 public:
  // `wall_offset` is the node's initial error against true wall time; `mono_base` its boot value.
  SimClock(const Scheduler* scheduler, Duration mono_base, Duration wall_offset, int64_t drift_ppm);

  MonoTime Now() override;
  WallTime WallNow() override;

  // Rate error in parts per million; |ppm| <= 100'000.
  void SetDrift(int64_t drift_ppm);
  int64_t drift_ppm() const { return drift_ppm_; }
  // Steps the wall clock by delta (monotonic time is untouched).
  void JumpWall(Duration delta) { wall_offset_ += delta; }
  // Flips the wall clock between +0 and +delta every `period` until `until` (true time).
  void Strobe(Duration delta, Duration period, SimTime until);
  // Steps the wall clock back to true wall time plus `residual` and stops any strobe.
  void ResetWall(Duration residual = Duration::Zero());

  // The wall clock's current error against true wall time.
  Duration wall_error();
  // True-time span after which this clock's monotonic time has advanced by `mono_delay`.
  Duration TrueDelayFor(Duration mono_delay) const;

 private:
  int64_t MonoAt(int64_t t_ns) const;
  const Scheduler* scheduler_;
  int64_t t_anchor_ns_ = 0;
  int64_t mono_anchor_ns_ = 0;
  int64_t drift_ppm_ = 0;
  int64_t mono_last_ns_ = INT64_MIN;
  Duration wall_offset_;
  Duration strobe_delta_;
  Duration strobe_period_;
  SimTime strobe_start_;
  SimTime strobe_until_;
};

}  // namespace faultline::sim
