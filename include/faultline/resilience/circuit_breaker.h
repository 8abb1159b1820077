// File: faultline/resilience/circuit_breaker.h
//
// CircuitBreaker: stops calling a dependency that is failing or slow, probes it after a while, and
// resumes when the probes succeed. Semantics follow Resilience4j's CircuitBreaker with the known
// bugs of the anchors fixed (resilience research, section 3 items 1-3):
//
// Window (Closed state). The last `window_calls` calls (kCountBased), or the calls of the last
// `window_buckets` buckets of `bucket_duration` each (kTimeBased; buckets are keyed by the
// monotonic tick since Create(); a record whose tick is a whole window or more past the newest
// bucket evicts every bucket; a window of one bucket is legal). The breaker trips to Open when
//   calls >= min_calls  and  (failures / calls >= failure_rate_threshold
//                             or slow_calls / calls >= slow_call_rate_threshold),
// compared with >= in exact integer arithmetic. A call is slow iff latency > slow_call_threshold.
// kIgnored outcomes count in neither numerator nor denominator. The snapshot is O(1): running
// totals are kept beside the buckets/slots.
//
// Open. Every TryAcquire is rejected with retry_after = the time left. The open duration after the
// k-th consecutive opening (k = 0 for a trip from Closed, +1 for every HalfOpen -> Open without a
// Closed in between, reset by Closed) is
//   d_k = min(open_duration_max, open_duration_min · open_duration_multiplier^k)
//   open for d_k + U[0, d_k · open_duration_jitter]      (the cap is applied before the jitter)
// on the injected monotonic clock. The first TryAcquire at or after that instant moves the breaker
// to HalfOpen and gets the first probe permit (transitions are lazy: no timer, no thread).
//
// HalfOpen. Exactly `half_open_permits` probe permits are handed out, by CAS on the state word
// (never more, never negative). The decision is taken when all of them have recorded: Open again
// if the probes' failure or slow-call rate reaches its threshold, else Closed with a fresh window.
// A probe that records kIgnored, or is Release()d (cancelled or abandoned), gives its permit back.
// Dwell limit (the Resilience4j #903/#935 and Polly #1979 bug: probes that never record left the
// breaker half-open forever): once the breaker has been HalfOpen for half_open_dwell_max, the next
// TryAcquire moves it back to Open. We chose Open rather than re-issuing permits: probes that
// neither succeed nor fail within the dwell are most likely hanging on the dependency, and Open
// (with the backed-off duration, since this counts as a consecutive opening) is the safe side.
//
// Epochs. Every transition increments the state epoch, and every permit carries the epoch that
// admitted it. Record() of a permit from an older epoch only counts as a stale result: a late
// result never trips, re-opens or closes a newer state, nor is it counted in a newer window or
// probe set (the Resilience4j #1432 family).
//
// ForcedOpen rejects everything (retry_after = Infinite) and Disabled admits everything and
// records nothing, until Reset() (which closes with a fresh window and backoff).
//
// Transitions are linearized on one 64-bit atomic word (state, epoch, probe tallies). The thread
// whose CAS wins a transition publishes it in two steps: it first installs the new state marked
// "pending", performs the side effects (computes the open deadline, resets the window, calls the
// listener) and then clears the mark. While pending (a few nanoseconds unless that thread is
// descheduled) TryAcquire rejects with retry_after = 0. So listener calls are totally ordered, and
// side-effect data is written by one thread at a time.
//
// Consistency of the windows under concurrency (both are lock-free):
// - Count window: a record takes a ticket by fetch_add and swaps its outcome into slot
//   ticket mod window_calls; the running totals change by (new - old) of that swap. Totals always
//   equal the sum of the slots once no record is in flight, and are never decoded as negative. A
//   snapshot taken during concurrent records may be off by the records in flight. Two records a
//   whole lap apart that race on one slot may leave the older outcome in it (counts stay exact for
//   what the slot holds).
// - Time window: a record for a newer tick rotates the window (one thread at a time, by CAS on the
//   head tick; records that meet a rotation in progress spin briefly, then are dropped and counted
//   in dropped_records). A record that read the head before a concurrent rotation evicted its
//   bucket may be counted in the bucket that replaced it (attributed up to one window later).
// - A Closed-epoch record that passed the epoch check and then stalled for a whole open and
//   half-open period may land in the next Closed window (the epoch check and the window write are
//   not one atomic step). The stale record itself can never cause a transition: every transition
//   is a CAS from the exact state word (epoch included) the deciding record validated against.
// The counters (BreakerCounters) are statistics kept in 16 per-thread stripes with relaxed
// load+store increments, so that hot paths write only their own thread's cache line (the Open
// rejection path writes nothing shared). They are exact with up to 16 threads; beyond that,
// threads sharing a stripe may lose increments. Decisions never read them.
//
// Hot paths (TryAcquire, Record, Release) are lock-free, allocation-free and never throw. The
// listener runs on the thread that won a transition, while the transition is pending: it must be
// quick and must not call this breaker's Reset/ForceOpen/Disable (they would wait for it).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "faultline/core/assert.h"
#include "faultline/core/ids.h"
#include "faultline/core/inline_function.h"
#include "faultline/core/observer.h"
#include "faultline/core/random.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"
#include "faultline/resilience/internal/breaker_windows.h"
#include "faultline/resilience/internal/striped_counters.h"

namespace faultline {

enum class BreakerState : uint8_t {
  kClosed = 0,
  kOpen = 1,
  kHalfOpen = 2,
  kForcedOpen = 3,
  kDisabled = 4,
};
// "closed", "open", "half-open", "forced-open", "disabled".
std::string_view BreakerStateName(BreakerState state);

// What a call's result means to the breaker. kIgnored: neither success nor failure (a cancelled
// call, a client-side validation error, a "not my fault" status); a half-open probe gives its
// permit back.
enum class CallOutcome : uint8_t { kSuccess, kFailure, kIgnored };

enum class BreakerWindowType : uint8_t { kCountBased, kTimeBased };

struct BreakerEpochTag {};
// Incremented by every transition; 28 significant bits (wraps after 2^28 transitions).
using BreakerEpoch = StrongId<BreakerEpochTag, uint32_t>;

struct CircuitBreakerOptions {
  BreakerWindowType window_type = BreakerWindowType::kCountBased;
  // kCountBased: the window is the last `window_calls` recorded calls. 1 ..= 2^20.
  uint32_t window_calls = 100;
  // kTimeBased: the window is `window_buckets` buckets of `bucket_duration`. 1 ..= 2^16, > 0.
  uint32_t window_buckets = 10;
  Duration bucket_duration = Duration::Seconds(1);
  // No decision before the window holds this many calls. >= 1; kCountBased: <= window_calls.
  uint32_t min_calls = 100;
  // Trip when failures/calls >= this. 0 < ratio <= 1.
  Ratio failure_rate_threshold = Ratio::Percent(50);
  // Trip when slow_calls/calls >= this. 0 < ratio <= 1.
  Ratio slow_call_rate_threshold = Ratio::Percent(100);
  // A call is slow iff its latency is strictly greater than this. >= 0.
  Duration slow_call_threshold = Duration::Seconds(60);
  // Probe permits in HalfOpen, all of which must record before the decision. 1 ..= 255.
  uint32_t half_open_permits = 10;
  // The longest the breaker stays HalfOpen before returning to Open. > 0 and finite.
  Duration half_open_dwell_max = Duration::Seconds(60);
  // Open duration backoff: min(open_duration_max, open_duration_min · multiplier^k) plus jitter.
  Duration open_duration_min = Duration::Seconds(5);    // > 0
  Duration open_duration_max = Duration::Seconds(300);  // >= open_duration_min, finite
  uint32_t open_duration_multiplier = 2;                // >= 1 (1: constant)
  Ratio open_duration_jitter = Ratio::Percent(10);      // 0 <= ratio <= 1
  // Seeds the jitter draws (deterministic under the simulator).
  uint64_t jitter_seed = 0x5eed'b7ea'4e7;

  Status Validate() const;
};

enum class TransitionReason : uint8_t {
  kFailureRate,           // Closed -> Open
  kSlowCallRate,          // Closed -> Open
  kOpenDurationElapsed,   // Open -> HalfOpen
  kProbesFailed,          // HalfOpen -> Open
  kProbesSucceeded,       // HalfOpen -> Closed
  kHalfOpenDwellExpired,  // HalfOpen -> Open
  kManual,                // ForceOpen(), Disable(), Reset()
};
std::string_view TransitionReasonName(TransitionReason reason);

struct BreakerTransition {
  BreakerState from = BreakerState::kClosed;
  BreakerState to = BreakerState::kClosed;
  TransitionReason reason = TransitionReason::kManual;
  BreakerEpoch epoch;      // the new state's epoch
  MonoTime at;             // the `now` of the call that caused it
  Duration open_duration;  // to == kOpen: how long it stays open; else zero
};

// Called once per transition, in transition order. Capture at most 32 bytes.
using BreakerListener = InlineFunction<void(const BreakerTransition&), 32>;

// The answer of TryAcquire: 16 bytes, trivially copyable, returned in registers.
class BreakerPermit {
 public:
  bool admitted() const { return admitted_; }
  explicit operator bool() const { return admitted_; }
  // Admitted permits: the `now` at admission (for measuring latency).
  MonoTime start() const {
    FL_ASSERT(admitted_);
    return MonoTime::FromNanos(time_ns_);
  }
  // Rejected permits: how long until the breaker may admit again. Open: the exact time left.
  // HalfOpen with every probe out: the time left before the dwell limit (an upper bound).
  // ForcedOpen: Infinite. A transition in progress: zero.
  Duration retry_after() const {
    FL_ASSERT(!admitted_);
    return Duration::Nanos(time_ns_);
  }
  BreakerEpoch epoch() const { return BreakerEpoch(epoch_); }
  // The state that admitted or rejected this permit.
  BreakerState state() const { return state_; }

 private:
  friend class CircuitBreaker;
  static BreakerPermit Admit(MonoTime now, uint32_t epoch, BreakerState state) {
    BreakerPermit p;
    p.time_ns_ = now.nanos();
    p.epoch_ = epoch;
    p.state_ = state;
    p.admitted_ = true;
    return p;
  }
  static BreakerPermit Reject(Duration retry_after, uint32_t epoch, BreakerState state) {
    BreakerPermit p;
    p.time_ns_ = retry_after.nanos();
    p.epoch_ = epoch;
    p.state_ = state;
    p.admitted_ = false;
    return p;
  }
  int64_t time_ns_ = 0;
  uint32_t epoch_ = 0;
  BreakerState state_ = BreakerState::kClosed;
  bool admitted_ = false;
};

// The Closed window's running totals.
struct BreakerWindowSnapshot {
  uint64_t calls = 0;
  uint64_t failures = 0;
  uint64_t slow_calls = 0;
};

struct BreakerCounters {
  uint64_t admitted = 0;         // permits handed out (all states)
  uint64_t rejected = 0;         // TryAcquire answered no
  uint64_t successes = 0;        // recorded kSuccess (current-epoch only)
  uint64_t failures = 0;         // recorded kFailure (current-epoch only)
  uint64_t slow_calls = 0;       // of the above, slower than slow_call_threshold
  uint64_t ignored = 0;          // recorded kIgnored or Release()d
  uint64_t stale_results = 0;    // recorded with a permit of an older epoch: discarded
  uint64_t dropped_records = 0;  // time window: met a rotation in progress, or older than window
  uint64_t opened = 0;           // transitions into Open (any reason)
  uint64_t half_opened = 0;
  uint64_t closed = 0;
  uint64_t dwell_expirations = 0;  // HalfOpen -> Open by half_open_dwell_max
};

class CircuitBreaker {
 public:
  // Fails with kInvalidArgument naming the offending option. `clock` must outlive the breaker.
  static Result<std::unique_ptr<CircuitBreaker>> Create(Clock& clock,
                                                        const CircuitBreakerOptions& options,
                                                        BreakerListener listener = nullptr);
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;
  ~CircuitBreaker();

  // Asks to make one call. Admitted permits must be given back exactly once, by Record() or
  // Release(): a permit is a plain value, and recording or releasing one twice is a programmer
  // error the breaker cannot detect (a half-open probe would count twice; ScopedBreakerCall
  // prevents it). Reads the clock once.
  BreakerPermit TryAcquire() { return TryAcquire(clock_.Now()); }
  // The same with a `now` the caller already read from this breaker's clock (one clock read per
  // request for a whole pipeline). Reads no clock.
  BreakerPermit TryAcquire(MonoTime now) {
    const uint64_t w = state_.load(std::memory_order_acquire);
    if ((w & kStateAndPendingMask) == static_cast<uint64_t>(BreakerState::kClosed)) {
      Bump(kAdmittedCounter);
      return BreakerPermit::Admit(now, WordEpoch(w), BreakerState::kClosed);
    }
    if ((w & kStateAndPendingMask) == static_cast<uint64_t>(BreakerState::kOpen)) {
      const int64_t until = open_until_ns_.load(std::memory_order_relaxed);
      if (now.nanos() < until) {
        Bump(kRejectedCounter);
        observer_.Emit(EventKind::kBreakerRejected, now);
        return BreakerPermit::Reject(Duration::Nanos(until - now.nanos()), WordEpoch(w),
                                     BreakerState::kOpen);
      }
    }
    return AcquireSlow(now);
  }

  // Reports the result of an admitted call. `latency` decides "slow" and, for a time window, the
  // bucket (the outcome is keyed at permit.start() + latency). Reads no clock, except once when
  // this record causes a transition (a trip, or the last half-open probe), to time it.
  void Record(const BreakerPermit& permit, CallOutcome outcome, Duration latency) {
    RecordImpl(permit, outcome, latency, kReadClockAtTransition);
  }
  // Record() with the completion instant `end` the caller already read from this breaker's clock:
  // latency = end - permit.start(), and a transition is timed at `end`. Reads no clock.
  void RecordAt(const BreakerPermit& permit, CallOutcome outcome, MonoTime end) {
    RecordImpl(permit, outcome, end - permit.start(), end.nanos());
  }
  // Record() measuring the latency as clock.Now() - permit.start(): one clock read.
  void Record(const BreakerPermit& permit, CallOutcome outcome) {
    RecordAt(permit, outcome, clock_.Now());
  }
  // Gives back an admitted permit whose call was cancelled or abandoned: same as kIgnored.
  // Reads no clock (an ignored outcome never causes a transition).
  void Release(const BreakerPermit& permit) {
    Record(permit, CallOutcome::kIgnored, Duration::Zero());
  }

  // Manual control. Each is a transition with reason kManual (a new epoch; outstanding permits
  // become stale). ForceOpen: reject everything until Reset(). Disable: admit everything, record
  // nothing, until Reset(). Reset: Closed with an empty window and no backoff history.
  void ForceOpen();
  void Disable();
  void Reset();

  // Reports kBreakerTransition (a = from, b = to: BreakerState values) after each transition,
  // next to the listener, and kBreakerRejected for every refused call. Attach before sharing.
  ObserverSlot& observe() { return observer_; }

  // The current state (a transition in progress reports its target state). Transitions out of
  // Open and HalfOpen happen lazily, inside TryAcquire.
  BreakerState state() const { return WordState(state_.load(std::memory_order_acquire)); }
  BreakerEpoch epoch() const {
    return BreakerEpoch(WordEpoch(state_.load(std::memory_order_acquire)));
  }
  // Totals of the Closed window (a time window as of its newest recorded bucket).
  BreakerWindowSnapshot window() const;
  BreakerCounters counters() const;
  // Consecutive openings since the last Closed (the k of the open-duration backoff).
  uint32_t consecutive_opens() const { return reopen_count_.load(std::memory_order_relaxed); }
  // When the current (or last) Open period ends.
  MonoTime open_until() const {
    return MonoTime::FromNanos(open_until_ns_.load(std::memory_order_relaxed));
  }
  // Probe permits currently handed out and recorded in HalfOpen (zero in other states).
  uint32_t half_open_issued() const { return WordIssued(state_.load(std::memory_order_acquire)); }
  uint32_t half_open_recorded() const {
    return WordRecorded(state_.load(std::memory_order_acquire));
  }
  const CircuitBreakerOptions& options() const { return options_; }
  Clock& clock() const { return clock_; }

 private:
  // State word: bits 0-2 state, bit 3 pending, bits 4-31 epoch, then the HalfOpen tallies:
  // bits 32-39 permits issued (outstanding + recorded), 40-47 recorded, 48-55 failed, 56-63 slow.
  static constexpr uint64_t kStateMask = 0x7;
  static constexpr uint64_t kPendingBit = 0x8;
  static constexpr uint64_t kStateAndPendingMask = 0xf;
  static constexpr int kEpochShift = 4;
  static constexpr uint32_t kEpochMask = (1u << 28) - 1;
  static constexpr int kIssuedShift = 32;
  static constexpr int kRecordedShift = 40;
  static constexpr int kFailedShift = 48;
  static constexpr int kSlowShift = 56;

  static BreakerState WordState(uint64_t w) { return static_cast<BreakerState>(w & kStateMask); }
  static bool WordPending(uint64_t w) { return (w & kPendingBit) != 0; }
  static uint32_t WordEpoch(uint64_t w) {
    return static_cast<uint32_t>(w >> kEpochShift) & kEpochMask;
  }
  static uint32_t WordIssued(uint64_t w) { return static_cast<uint32_t>(w >> kIssuedShift) & 0xff; }
  static uint32_t WordRecorded(uint64_t w) {
    return static_cast<uint32_t>(w >> kRecordedShift) & 0xff;
  }
  static uint32_t WordFailed(uint64_t w) { return static_cast<uint32_t>(w >> kFailedShift) & 0xff; }
  static uint32_t WordSlow(uint64_t w) { return static_cast<uint32_t>(w >> kSlowShift) & 0xff; }
  static uint64_t MakeWord(BreakerState s, uint32_t epoch, bool pending) {
    return static_cast<uint64_t>(s) | (pending ? kPendingBit : 0) |
           (static_cast<uint64_t>(epoch & kEpochMask) << kEpochShift);
  }
  static uint64_t ClosedWord(uint32_t epoch) {
    return MakeWord(BreakerState::kClosed, epoch, false);
  }

  enum Counter : uint32_t {
    kAdmittedCounter,
    kRejectedCounter,
    kSuccessesCounter,
    kFailuresCounter,
    kSlowCounter,
    kIgnoredCounter,
    kStaleCounter,
    kDroppedCounter,
    kCounterCount,
  };
  void Bump(Counter c) { stripes_->Bump(c); }
  uint64_t Sum(Counter c) const { return stripes_->Sum(c); }

  bool ShouldTrip(const breaker_internal::Tally& t) const {
    if (t.calls < static_cast<int64_t>(options_.min_calls)) return false;
    return AtLeast(t.failures, t.calls, options_.failure_rate_threshold) ||
           AtLeast(t.slow, t.calls, options_.slow_call_rate_threshold);
  }
  // part / whole >= ratio, exactly.
  static bool AtLeast(int64_t part, int64_t whole, Ratio ratio) {
    return static_cast<UInt128>(static_cast<uint64_t>(part)) * ratio.denominator >=
           static_cast<UInt128>(static_cast<uint64_t>(whole)) * ratio.numerator;
  }

  // No `at` yet: a transition reads the clock.
  static constexpr int64_t kReadClockAtTransition = INT64_MIN;
  void RecordImpl(const BreakerPermit& permit, CallOutcome outcome, Duration latency,
                  int64_t at_ns) {
    FL_ASSERT_MSG(permit.admitted(), "Record() of a rejected permit");
    if (permit.state() != BreakerState::kClosed) {
      RecordSlow(permit, outcome, latency, at_ns);
      return;
    }
    const uint64_t w = state_.load(std::memory_order_acquire);
    if (w != ClosedWord(permit.epoch_)) {
      Bump(kStaleCounter);
      return;
    }
    if (outcome == CallOutcome::kIgnored) {
      Bump(kIgnoredCounter);
      return;
    }
    const bool failure = outcome == CallOutcome::kFailure;
    const bool slow = latency > options_.slow_call_threshold;
    Bump(failure ? kFailuresCounter : kSuccessesCounter);
    if (slow) Bump(kSlowCounter);
    breaker_internal::Tally t;
    if (count_window_ != nullptr) {
      t = count_window_->Add(failure, slow);
    } else {
      const Duration after = latency > Duration::Zero() ? latency : Duration::Zero();
      if (!time_window_->Add(permit.start() + after, failure, slow, &t)) {
        Bump(kDroppedCounter);
        return;
      }
    }
    if (ShouldTrip(t)) Trip(w, t, at_ns);
  }
  MonoTime TransitionTime(int64_t at_ns) {
    return at_ns == kReadClockAtTransition ? clock_.Now() : MonoTime::FromNanos(at_ns);
  }

  CircuitBreaker(Clock& clock, const CircuitBreakerOptions& options, BreakerListener listener);
  BreakerPermit AcquireSlow(MonoTime now);
  void RecordSlow(const BreakerPermit& permit, CallOutcome outcome, Duration latency,
                  int64_t at_ns);
  void Trip(uint64_t closed_word, const breaker_internal::Tally& t, int64_t at_ns);
  // CAS from exactly `from` to `to` (a new epoch); the winner performs the side effects and
  // publishes. `issued` probe permits are pre-taken in the published word (the caller's own).
  bool Transition(uint64_t from, BreakerState to, TransitionReason reason, MonoTime now,
                  uint32_t issued);
  void ManualTransition(BreakerState to);
  Duration NextOpenDuration();

  Clock& clock_;
  const CircuitBreakerOptions options_;
  // Read by every call; written only by transitions.
  alignas(64) std::atomic<uint64_t> state_{0};
  std::atomic<int64_t> open_until_ns_{0};
  std::atomic<int64_t> half_open_deadline_ns_{0};
  std::atomic<uint32_t> reopen_count_{0};
  // Transition-only data (owned by the pending transition's thread).
  alignas(64) Rng rng_;
  BreakerListener listener_;
  std::atomic<uint64_t> opened_{0};
  std::atomic<uint64_t> half_opened_{0};
  std::atomic<uint64_t> closed_{0};
  std::atomic<uint64_t> dwell_expirations_{0};
  std::unique_ptr<breaker_internal::CountWindow> count_window_;
  std::unique_ptr<breaker_internal::TimeWindow> time_window_;
  std::unique_ptr<resilience_internal::StripedCounters<kCounterCount>> stripes_;
  ObserverSlot observer_;  // read only on a rejection or a transition
};

// RAII for one call: records on Record(), Releases the permit (as abandoned) if destroyed
// without having recorded. Not thread-safe; a ScopedBreakerCall belongs to the caller.
class ScopedBreakerCall {
 public:
  explicit ScopedBreakerCall(CircuitBreaker& breaker)
      : breaker_(&breaker), permit_(breaker.TryAcquire()), done_(!permit_.admitted()) {}
  ScopedBreakerCall(const ScopedBreakerCall&) = delete;
  ScopedBreakerCall& operator=(const ScopedBreakerCall&) = delete;
  ~ScopedBreakerCall() {
    if (!done_) breaker_->Release(permit_);
  }
  bool admitted() const { return permit_.admitted(); }
  const BreakerPermit& permit() const { return permit_; }
  void Record(CallOutcome outcome, Duration latency) {
    FL_ASSERT_MSG(!done_, "ScopedBreakerCall recorded twice or not admitted");
    done_ = true;
    breaker_->Record(permit_, outcome, latency);
  }
  void Record(CallOutcome outcome) {
    FL_ASSERT_MSG(!done_, "ScopedBreakerCall recorded twice or not admitted");
    done_ = true;
    breaker_->Record(permit_, outcome);
  }

 private:
  CircuitBreaker* breaker_;
  BreakerPermit permit_;
  bool done_;
};

}  // namespace faultline
