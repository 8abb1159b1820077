// File: faultline/env/clock.h
//
// The time seam. Node code and every time-dependent primitive read time only through a Clock, so
// the same code runs against the simulator's per-node clocks (offset, drift, jumps, strobe) and
// against the system clocks in production (faultline/adapters/system_clock.h).
//
// Contract: Now() is monotonic: successive calls on one Clock never decrease. WallNow() is the
// node's belief about real time and may jump backwards. Implementations are thread-safe.
#pragma once

#include <atomic>

#include "faultline/core/assert.h"
#include "faultline/core/time.h"

namespace faultline {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time of this node. Never decreases.
  virtual MonoTime Now() = 0;
  // Wall-clock time of this node (Unix epoch nanoseconds as the node believes). May jump.
  virtual WallTime WallNow() = 0;
};

// A clock that moves only when told to: for unit tests of time-dependent primitives (seastar's
// manual_clock, userver's mock-now). Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(MonoTime start = MonoTime::FromNanos(0),
                       WallTime wall_start = WallTime::FromNanos(1'700'000'000'000'000'000))
      : mono_ns_(start.nanos()), wall_ns_(wall_start.nanos()) {}

  MonoTime Now() override { return MonoTime::FromNanos(mono_ns_.load(std::memory_order_acquire)); }
  WallTime WallNow() override {
    return WallTime::FromNanos(wall_ns_.load(std::memory_order_acquire));
  }

  // Moves both clocks forward by d (d >= 0).
  void Advance(Duration d) {
    FL_ASSERT(d >= Duration::Zero());
    mono_ns_.fetch_add(d.nanos(), std::memory_order_acq_rel);
    wall_ns_.fetch_add(d.nanos(), std::memory_order_acq_rel);
  }
  // Sets the wall clock, which may go backwards; the monotonic clock is untouched.
  void SetWall(WallTime t) { wall_ns_.store(t.nanos(), std::memory_order_release); }

 private:
  std::atomic<int64_t> mono_ns_;
  std::atomic<int64_t> wall_ns_;
};

}  // namespace faultline
