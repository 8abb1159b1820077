// File: faultline/runtime/chaos_clock.h
//
// ChaosClock: the production Clock of a node running as a real process, with the same fault
// controls as the simulator's sim::SimClock (drift, wall jumps, reset) and the same formulas, over
// the host's CLOCK_MONOTONIC instead of simulated true time t:
//
//   mono(t) = mono_anchor + (t - t_anchor) · (1 + drift_ppm/1e6)     never decreases
//   wall(t) = wall_base + (mono(t) - mono_boot) + wall_offset         may jump
//
// where t is CLOCK_MONOTONIC, mono_boot = mono at construction (= CLOCK_MONOTONIC then, so with no
// drift Now() reads exactly CLOCK_MONOTONIC), and wall_base = CLOCK_REALTIME at construction. The
// wall clock is derived from the monotonic one on purpose: offsets and jumps are exact and
// independent of whatever NTP does to the host's CLOCK_REALTIME meanwhile. A drift change
// re-anchors (mono stays continuous); integer rounding across a re-anchor is clamped so Now() never
// steps back.
//
// "True" time, for wall_error() and TrueDelayFor(), is the host's clocks: CLOCK_MONOTONIC elapsed
// since construction added to wall_base.
//
// Thread-safe: Now()/WallNow() take a short mutex (they update the monotonicity clamp); control
// calls are rare and take the same mutex; drift_ppm() and TrueDelayFor() read an atomic.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>

#include "faultline/env/clock.h"

namespace faultline::runtime {

// The host's CLOCK_MONOTONIC in nanoseconds.
int64_t HostMonotonicNanos();
// The host's CLOCK_REALTIME in nanoseconds since the Unix epoch.
int64_t HostRealtimeNanos();

class ChaosClock final : public Clock {
 public:
  ChaosClock();

  MonoTime Now() override;
  WallTime WallNow() override;

  // Rate error in parts per million, |ppm| <= 100'000 (asserted). Re-anchors at the current
  // instant, so Now() stays continuous; only its rate changes.
  void SetDrift(int64_t drift_ppm);
  int64_t drift_ppm() const { return drift_ppm_.load(std::memory_order_acquire); }
  // Steps the wall clock by `delta` (either sign); the monotonic clock is untouched.
  void JumpWall(Duration delta);
  // Steps the wall clock back to true wall time; the drift is kept (so the error grows again).
  void ResetWall();
  // The wall clock's current error against true wall time (host CLOCK_REALTIME at construction +
  // host CLOCK_MONOTONIC elapsed).
  Duration wall_error();

  // Called (on the SetDrift caller's thread, after the change) whenever the rate changes; a
  // RealEnv installs one to re-arm its timers at the new rate. nullptr removes it. The listener
  // must not call back into this clock's SetDrift.
  void SetRateListener(std::function<void()> listener);

  // The true (host CLOCK_MONOTONIC) span after which Now() has advanced by `mono_delay` at the
  // current rate, rounded up so a timer armed with it never fires before its monotonic deadline.
  // <= 0 gives 0; Infinite stays Infinite. If the rate rises later, a timer armed with the old
  // answer fires early in node time: the caller re-checks Now() and re-arms (RealEnv does).
  Duration TrueDelayFor(Duration mono_delay) const;

 private:
  int64_t MonoAtLocked(int64_t t_ns) const;
  int64_t NowLocked();

  mutable std::mutex mu_;
  const int64_t host_boot_ns_;  // CLOCK_MONOTONIC at construction
  const int64_t wall_base_ns_;  // CLOCK_REALTIME at construction
  int64_t t_anchor_ns_;         // host instant of the last re-anchor
  int64_t mono_anchor_ns_;      // node mono at that instant
  int64_t mono_last_ns_;        // monotonicity clamp
  int64_t wall_offset_ns_ = 0;
  std::atomic<int64_t> drift_ppm_{0};
  std::mutex listener_mu_;  // held while the listener runs, so removing it waits for a call
  std::function<void()> listener_;
};

}  // namespace faultline::runtime
