// File: faultline/env/executor.h
//
// The timer/executor seam: a single-threaded, cooperative event loop per node. Callbacks run one
// at a time, never concurrently with each other; a callback that blocks stalls the node (which is
// exactly what the simulator's "pause" fault models).
#pragma once

#include <cstdint>

#include "faultline/core/inline_function.h"
#include "faultline/core/time.h"

namespace faultline {

// A callback stored inline (no heap allocation). Capture at most 48 bytes.
using Callback = InlineFunction<void(), 48>;

// Identifies a scheduled callback. The zero id is "no timer".
struct TimerId {
  uint64_t value = 0;
  explicit operator bool() const { return value != 0; }
  friend bool operator==(TimerId a, TimerId b) { return a.value == b.value; }
};

class Executor {
 public:
  virtual ~Executor() = default;

  // Runs `callback` once `delay` of this node's monotonic time has passed (delay <= 0: on a later
  // turn of the loop, never inline). Returns an id for Cancel().
  virtual TimerId ScheduleAfter(Duration delay, Callback callback) = 0;

  // Cancels a pending callback. Returns false when it already ran, was cancelled, or `id` is zero.
  virtual bool Cancel(TimerId id) = 0;

  // Runs `callback` on a later turn of the loop.
  TimerId Post(Callback callback) { return ScheduleAfter(Duration::Zero(), std::move(callback)); }
};

}  // namespace faultline
