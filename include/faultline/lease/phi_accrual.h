// File: faultline/lease/phi_accrual.h
//
// Failure detection that accrues suspicion instead of timing out, and refuses to convict anybody
// while this node itself was the one that stalled.
//
//   PhiAccrualDetector  one peer's heartbeat history and its suspicion level phi (Hayashibara et
//                       al.; the formula and defaults of Akka's PhiAccrualFailureDetector).
//   LocalPauseGuard     notices that this node's own loop stalled (GC, VM pause, disk stall) and
//                       vetoes convictions until it has been running again for a while
//                       (Cassandra's FailureDetector: own gap > 5 s => convict nobody).
//   FailureDetector     one PhiAccrualDetector per peer behind one LocalPauseGuard.
//
// phi. After a heartbeat, phi(Δt) = -log10(1 - F(Δt)), where Δt is the silence since the latest
// heartbeat and F the CDF of a normal distribution fitted to the recent inter-arrival intervals:
//   mean = mean of the window + acceptable_pause        (Akka's acceptable-heartbeat-pause)
//   std  = max(population std dev of the window, min_std)
// F uses Akka's logistic approximation: y = (Δt - mean) / std, z = y (1.5976 + 0.070566 y²),
// phi = log10(1 + e^z), i.e. Akka's -log10(e / (1 + e)) with e = e^-z. It is evaluated in the
// overflow-free form phi = (max(z, 0) + log1p(e^-|z|)) / ln 10, so phi is finite for every Δt
// (for large Δt it grows like the cubic z / ln 10 instead of saturating at infinity) and
// non-decreasing in Δt. phi = 1 means a 10% chance that the peer is alive and merely late, 2 means
// 1%, 8 (the default threshold) one in 10^8. Phi is 0 before the first heartbeat.
//
// Suspicion. Suspect(now) is phi > threshold, decided without transcendental functions: Create
// solves phi(y*) = threshold once (with IEEE-exact operations only, so y* is bit-identical on every
// platform), and each heartbeat turns it into the silence after which the peer is suspected,
//   SuspectAfter() = latest heartbeat + floor(mean + y* · std).
// Suspect(now) is then one integer comparison, now > SuspectAfter(), and the simulator's decisions
// do not depend on the libm. Suspect and Phi(now) > threshold can disagree only within rounding
// (nanoseconds) of the boundary.
//
// History. The window holds the last window_max intervals in a ring buffer allocated once by
// Create; running sums of the intervals and of their squares are kept in exact integer nanoseconds
// (128-bit), so mean and std never drift however long the detector runs. Like Akka, the window
// starts with two bootstrap intervals, first_heartbeat_estimate · (1 ∓ 1/4) (mean = the estimate,
// std = estimate / 4), which age out as real intervals arrive. Also like Akka, the interval that
// ends a suspicion (Δt > SuspectAfter at the heartbeat) is not recorded: one long outage must not
// teach the detector that long silences are normal. Intervals are clamped to kPhiIntervalMax.
//
// Time. `now` is this node's monotonic clock. A heartbeat not later than the latest one (a
// duplicate, or timestamps taken out of order) is ignored and counted; Phi and Suspect treat a
// `now` before the latest heartbeat as Δt = 0.
//
// Cost. Phi, Suspect, SuspectAfter and Heartbeat are O(1), allocation-free and never throw.
// Thread safety: none; one detector belongs to one node's loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "faultline/core/ids.h"
#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"

namespace faultline::lease {

// Longest interval the history records (longer ones are clamped): ~39 hours. Together with
// kPhiWindowMax it bounds the 128-bit running sums (window · interval² · window < 2^127).
inline constexpr Duration kPhiIntervalMax = Duration::Nanos(int64_t{1} << 47);
inline constexpr uint32_t kPhiWindowMax = 65536;
inline constexpr double kPhiThresholdMin = 1.0;
inline constexpr double kPhiThresholdMax = 100.0;

struct PhiAccrualOptions {
  // Suspect when phi exceeds this, in [kPhiThresholdMin, kPhiThresholdMax]. Akka: 8; Cassandra
  // uses 5-16 (with an exponential model).
  double threshold = 8.0;
  // Intervals kept in the history, in [2, kPhiWindowMax].
  uint32_t window_max = 1000;
  // Floor of the std dev, in (0, kPhiIntervalMax]: perfectly regular heartbeats would otherwise
  // make the detector hair-triggered.
  Duration min_std = Duration::Millis(100);
  // Silence tolerated on top of the usual interval (added to the mean), in [0, kPhiIntervalMax].
  Duration acceptable_pause = Duration::Seconds(3);
  // Expected heartbeat interval before any has been measured, in (0, kPhiIntervalMax / 2].
  Duration first_heartbeat_estimate = Duration::Seconds(1);

  // kInvalidArgument naming the offending field.
  Status Validate() const;
};

struct PhiAccrualStats {
  uint64_t heartbeats = 0;         // accepted heartbeats, the first one included
  uint64_t stale_heartbeats = 0;   // ignored: not later than the latest heartbeat
  uint64_t intervals_skipped = 0;  // heartbeats that ended a suspicion (interval not recorded)
};

class PhiAccrualDetector {
 public:
  // kInvalidArgument for invalid options. Allocates the window.
  static Result<std::unique_ptr<PhiAccrualDetector>> Create(const PhiAccrualOptions& options);

  PhiAccrualDetector(const PhiAccrualDetector&) = delete;
  PhiAccrualDetector& operator=(const PhiAccrualDetector&) = delete;

  // Records a heartbeat received at `now` (see the header comment for which intervals count).
  void Heartbeat(MonoTime now);
  // The suspicion level after Δt = now - latest heartbeat; 0 before the first heartbeat.
  double Phi(MonoTime now) const;
  // now > SuspectAfter(): false before the first heartbeat.
  bool Suspect(MonoTime now) const { return now > suspect_after_; }
  // The last instant at which the peer is not yet suspected, if no heartbeat arrives before it
  // (MonoTime::Max() before the first heartbeat). Lets a caller arm one timer instead of polling.
  MonoTime SuspectAfter() const { return suspect_after_; }

  bool has_heartbeat() const { return has_heartbeat_; }
  MonoTime last_heartbeat() const { return last_heartbeat_; }
  // Intervals in the window (bootstrap intervals included until they age out).
  uint32_t samples() const { return count_; }
  // Mean and population std dev of the window's intervals, in nanoseconds: the measured values,
  // before acceptable_pause and min_std are applied.
  double interval_mean_ns() const { return mean_ns_; }
  double interval_std_ns() const { return std_ns_; }
  const PhiAccrualStats& stats() const { return stats_; }
  const PhiAccrualOptions& options() const { return options_; }

 private:
  friend class FailureDetector;
  // `suspicion_y` solves phi(y) = options.threshold (see SuspicionY in the .cc).
  PhiAccrualDetector(const PhiAccrualOptions& options, double suspicion_y);
  static double SuspicionY(double threshold);

  void Record(int64_t interval_ns);
  // Recomputes the mean, std and suspect_after_ from the running sums.
  void Refresh();

  const PhiAccrualOptions options_;
  const double suspicion_y_;
  std::unique_ptr<int64_t[]> window_;  // ring of options_.window_max intervals
  uint32_t head_ = 0;                  // next slot to write
  uint32_t count_ = 0;
  UInt128 sum_ns_ = 0;     // sum of the window's intervals
  UInt128 sum_sq_ns_ = 0;  // sum of their squares
  double mean_ns_ = 0;
  double std_ns_ = 0;
  double mean_eff_ns_ = 0;  // mean_ns_ + acceptable_pause
  double std_eff_ns_ = 1;   // max(std_ns_, min_std)
  bool has_heartbeat_ = false;
  MonoTime last_heartbeat_;
  MonoTime suspect_after_ = MonoTime::Max();
  PhiAccrualStats stats_;
  // FailureDetector's observer: the current suspicion was reported (cleared by a heartbeat).
  mutable bool suspicion_reported_ = false;
};

// Vetoes convictions while this node's own loop is, or just was, stalled. The loop calls Tick with
// its monotonic `now` on every iteration (at least every pause_threshold / 2 or so while healthy).
// A gap between consecutive ticks longer than pause_threshold is a local pause: every peer looked
// silent only because this node was not listening, so nobody is convicted until `quiet` has passed
// since the tick that ended the pause. A `now` past pause_threshold since the latest tick (the
// stall is still going on, or the loop has not ticked yet since it resumed) also vetoes. Before
// the first tick nothing is vetoed. Ticks not later than the latest one are ignored.
// O(1), allocation-free; not thread-safe.
class LocalPauseGuard {
 public:
  // quiet = pause_threshold (Cassandra). pause_threshold must be > 0 (FL_ASSERT).
  explicit LocalPauseGuard(Duration pause_threshold = Duration::Seconds(5))
      : LocalPauseGuard(pause_threshold, pause_threshold) {}
  // pause_threshold > 0 and quiet >= 0 (FL_ASSERT).
  LocalPauseGuard(Duration pause_threshold, Duration quiet);

  void Tick(MonoTime now);
  bool MayConvict(MonoTime now) const;
  // Local pauses detected so far.
  uint64_t pauses() const { return pauses_; }
  // The longest gap between ticks seen so far.
  Duration longest_gap() const { return longest_gap_; }
  Duration pause_threshold() const { return pause_threshold_; }
  Duration quiet() const { return quiet_; }

 private:
  const Duration pause_threshold_;
  const Duration quiet_;
  bool ticked_ = false;
  MonoTime last_tick_;
  MonoTime quiet_until_ = MonoTime::Min();  // convictions allowed from this instant on
  uint64_t pauses_ = 0;
  Duration longest_gap_;
};

struct FailureDetectorOptions {
  PhiAccrualOptions phi;  // for every peer
  // LocalPauseGuard: a gap between this node's own ticks longer than this is a local pause, in
  // (0, kPhiIntervalMax]; convictions resume `quiet` after it ended, in [0, kPhiIntervalMax].
  Duration pause_threshold = Duration::Seconds(5);
  Duration quiet = Duration::Seconds(5);
  // Peers tracked at once, in [1, 1 << 20]. Each costs a window of phi.window_max intervals.
  uint32_t peers_max = 1024;

  // kInvalidArgument naming the offending field ("phi.threshold ...").
  Status Validate() const;
};

// Suspect(peer, now) = guard.MayConvict(now) && the peer's detector suspects it. A peer that never
// sent a heartbeat (or was removed) is unknown: phi 0, never suspected. Heartbeat from a new peer
// allocates its detector (kResourceExhausted once peers_max peers are tracked); every other call
// is O(1) and allocation-free. Not thread-safe: it belongs to one node's loop, which also calls
// Tick.
class FailureDetector {
 public:
  static Result<std::unique_ptr<FailureDetector>> Create(const FailureDetectorOptions& options);
  // Shorthand: these phi options and pause threshold, quiet = pause_threshold, default peers_max.
  static Result<std::unique_ptr<FailureDetector>> Create(const PhiAccrualOptions& phi,
                                                         Duration pause_threshold);

  // This node's own loop is alive at `now` (LocalPauseGuard::Tick).
  void Tick(MonoTime now) { guard_.Tick(now); }
  Status Heartbeat(NodeId peer, MonoTime now);
  double Phi(NodeId peer, MonoTime now) const;
  bool Suspect(NodeId peer, MonoTime now) const;
  // Forgets a peer (it left the cluster). Returns whether it was known.
  bool Remove(NodeId peer);

  // The peer's detector, or nullptr when unknown.
  const PhiAccrualDetector* detector(NodeId peer) const;
  size_t peers() const { return detectors_.size(); }
  const LocalPauseGuard& guard() const { return guard_; }
  const FailureDetectorOptions& options() const { return options_; }
  // Reports kPhiSuspect (a = peer, b = phi × 1000 at `now`) the first time Suspect(peer, now)
  // returns true after the peer's latest heartbeat: one event per suspicion, however often it is
  // asked. Phi is computed only when an observer is attached, and never decides anything.
  ObserverSlot& observe() { return observer_; }

 private:
  FailureDetector(const FailureDetectorOptions& options, double suspicion_y);

  const FailureDetectorOptions options_;
  const double suspicion_y_;
  LocalPauseGuard guard_;
  std::unordered_map<NodeId, std::unique_ptr<PhiAccrualDetector>> detectors_;
  ObserverSlot observer_;
};

}  // namespace faultline::lease
