// File: faultline/time/interval_clock.h
//
// A TrueTime-like interval clock (Spanner, OSDI'12) and CockroachDB's read uncertainty interval.
//
// IntervalClock answers "what time is it?" with an interval [earliest, latest] that contains true
// time, as long as its inputs keep their promises: every Sync reference is within its stated error
// of true time, and the local oscillator's rate error stays within drift_ppm_bound. Between syncs
// the interval is carried forward on the node's MONOTONIC clock, so a step of the local wall clock
// (NTP step, operator error, a simulator JumpWall) moves neither bound:
//
//   elapsed    = mono_now - mono_at_sync
//   half_width = reference_error + error_at_sync + ceil(elapsed · ρ / (1e6 − ρ))   (ρ = ppm bound)
//   [earliest, latest] = reference + elapsed ∓ half_width
//
// (ρ/(1e6−ρ) rather than ρ/1e6 because the true elapsed time is elapsed / (1 + d) for a rate error
// |d| ≤ ρ/1e6; the exact bound keeps the interval sound at every ρ.) When half_width exceeds
// error_max, or before the first Sync, Now() fails with kUnavailable: the node must stop serving
// clock-dependent operations until it syncs again.
//
// Commit wait (Spanner): pick s >= Now().latest, then wait until After(s), i.e. earliest > s,
// before acknowledging; that takes about 2·half_width. CommitWait() sleeps on the executor and
// re-reads Now() after each wake-up, because a sleep is measured on the monotonic clock and a Sync
// may move the interval meanwhile; it never returns Ok before earliest > s.
//
// Thread safety: IntervalClock is thread-safe (a mutex guards the sync state; Now() and Sync() may
// race). CommitWait() runs on the executor it is given. UncertaintyInterval is a value type.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "faultline/core/options.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/cancel.h"
#include "faultline/env/clock.h"
#include "faultline/env/executor.h"
#include "faultline/env/task.h"

namespace faultline {

// A closed interval of wall time; earliest <= latest.
struct TimeInterval {
  WallTime earliest;
  WallTime latest;
  Duration width() const { return latest - earliest; }
  bool Contains(WallTime t) const { return earliest <= t && t <= latest; }
};

struct IntervalClockOptions {
  // Error added to every Sync on top of the reference's own error: reading the local clock,
  // scheduling delay of the sync daemon. >= 0.
  Duration error_at_sync = Duration::Micros(100);
  // Bound on the local oscillator's rate error in parts per million (Spanner assumes 200 µs/s).
  // The interval widens by this much per unit of monotonic time since the last sync.
  // In [0, 100'000].
  int64_t drift_ppm_bound = 200;
  // Largest tolerated half-width; beyond it Now() reports kUnavailable. > 0.
  Duration error_max = Duration::Millis(500);
  // Sleep/re-check rounds one CommitWait may take before giving up with kUnavailable (a Sync that
  // keeps moving the interval backwards would otherwise wait forever). >= 1.
  uint32_t commit_wait_rounds_max = 16;
  Status Validate() const;
};

class IntervalClock {
 public:
  // `clock` must outlive the IntervalClock.
  static Result<std::unique_ptr<IntervalClock>> Create(Clock& clock,
                                                       IntervalClockOptions options = {});
  IntervalClock(const IntervalClock&) = delete;
  IntervalClock& operator=(const IntervalClock&) = delete;

  // Records a synchronisation at the current monotonic time: `reference` is true time within
  // ±reference_error *now* (a time master's reply: its timestamp plus half the round trip,
  // with reference_error = master error + RTT/2). Errors, nothing recorded:
  //   kInvalidArgument    reference_error < 0;
  //   kOutOfRange         reference_error + error_at_sync > error_max (useless sync);
  //   kFailedPrecondition the reference interval is disjoint from the current valid interval: one
  //                       of the two broke its promise (a falseticker); keep the current one.
  Status Sync(WallTime reference, Duration reference_error);

  // [earliest, latest] containing true time, or kUnavailable (never synced, or too uncertain).
  Result<TimeInterval> Now();
  // True time is certainly after t (t < earliest). False when the clock is unavailable.
  bool After(WallTime t);
  // True time is certainly before t (t > latest). False when the clock is unavailable.
  bool Before(WallTime t);

  // Monotonic time to wait, from now, until earliest > t under the current sync (zero when it
  // already is). kUnavailable when the clock is unavailable now.
  Result<Duration> CommitWaitDuration(WallTime t);
  // Sleeps on `executor` until earliest > t. Ok only when After(t) held at return. kUnavailable
  // when the clock becomes unavailable or commit_wait_rounds_max rounds pass; kCancelled from the
  // token. The IntervalClock must outlive the returned task.
  Task<Status> CommitWait(Executor& executor, WallTime t, CancelToken token = {});

  const IntervalClockOptions& options() const { return options_; }

 private:
  IntervalClock(Clock& clock, IntervalClockOptions options) : clock_(clock), options_(options) {}
  struct SyncPoint {
    bool valid = false;
    WallTime reference;
    Duration error;  // reference_error + error_at_sync
    MonoTime mono;
  };
  // The half-width `elapsed` after a sync with error `error`.
  Duration HalfWidth(Duration error, Duration elapsed) const;
  Result<TimeInterval> IntervalAt(const SyncPoint& sync, MonoTime now) const;
  SyncPoint Snapshot();

  Clock& clock_;
  const IntervalClockOptions options_;
  std::mutex mu_;
  SyncPoint sync_;  // guarded by mu_
};

// CockroachDB's read uncertainty interval. A read at read_ts cannot order itself against a value
// written at a timestamp in (read_ts, limit], limit = read_ts + max_offset: the writer's clock
// may have been ahead by up to max_offset, so that write may have happened before the read in real
// time. Such a value forces a restart at a timestamp above it, with the SAME limit: the limit is
// fixed by the clock bound at the read's start, so restarts are bounded and the interval only
// shrinks. Timestamps here are wall times; an HLC user compares the wall component and restarts at
// the value's timestamp with the logical part incremented.
struct UncertaintyInterval {
  WallTime read_ts;
  WallTime limit;  // inclusive

  enum class Visibility : uint8_t {
    kVisible,    // value_ts <= read_ts: in the read's snapshot
    kUncertain,  // read_ts < value_ts <= limit: restart the read at restart_ts
    kFuture,     // value_ts > limit: certainly written after the read began; ignore
  };
  struct Classification {
    Visibility visibility;
    WallTime restart_ts;  // value_ts + 1 ns when kUncertain; read_ts otherwise
  };

  // limit = read_ts + max_offset (max_offset >= 0).
  static UncertaintyInterval ForRead(WallTime read_ts, Duration max_offset);

  Classification Classify(WallTime value_ts) const;
  // The interval of the restarted read after an uncertain value at value_ts: read_ts moves to
  // just above value_ts, limit stays. value_ts must have been classified kUncertain.
  UncertaintyInterval RestartAbove(WallTime value_ts) const;
  // Nothing is uncertain any more (read_ts reached the limit).
  bool empty() const { return read_ts >= limit; }
};

}  // namespace faultline
