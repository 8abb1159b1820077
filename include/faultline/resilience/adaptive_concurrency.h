// File: faultline/resilience/adaptive_concurrency.h
//
// AdaptiveConcurrencyLimiter: admits a call iff the calls in flight are fewer than a limit that a
// pluggable algorithm moves with every completed call's latency and outcome (Netflix
// concurrency-limits' AIMD, Vegas and Gradient2; research/resilience.md §1 and §3 item 9).
//
//   AdaptiveConcurrencyLimiter::Token t = limiter->TryAcquire();          // any thread
//   if (!t) return ResourceExhaustedError("over the concurrency limit");  // shed locally
//   Status s = Call();
//   if (s.ok())                                   limiter->OnSuccess(t, rtt);   // a latency sample
//   else if (s.code() == kDeadlineExceeded ||
//            s.code() == kResourceExhausted)      limiter->OnDropped(t);        // overload signal
//   else                                          limiter->OnIgnored(t);        // no sample
//
// Admission (TryAcquire) is one CAS loop on the in-flight counter that re-checks the limit on
// every attempt, so two callers can never both pass a check made for the last slot (Envoy's
// load-then-increment race, research §1). It is lock-free, allocation-free and reads the clock
// once when it admits (the token's start, for OnSuccess(token) without an explicit rtt); none with
// TryAcquire(now). OnSuccess(token) reads it once more; the other completions read none. Use the
// precise clock: Vegas and Gradient2 need sub-millisecond RTT samples.
//
// Completion (OnSuccess / OnDropped) releases the slot with one atomic decrement, then feeds the
// sample to the algorithm under a mutex: the limit update is per completed call, never on the
// admission path, and allocates nothing. OnIgnored (cancellations, errors that say nothing about
// load: research §1 CL issue #146) only releases the slot.
//
// Epochs: Remeasure() (or a Vegas no-load probe, or a per-round limit change, below) starts a new
// epoch; a sample from a call admitted in an earlier epoch is discarded (counted in stale_samples),
// because its latency was shaped by the load before the re-measure (Envoy issue #11579: minRTT
// skewed by pre-window calls).
//
// The limit is always within [limit_min, limit_max] and limit_min >= 1, so the limiter can never
// shut a caller out for good (brpc issue #1006: a limit that floors at 0 never recovers). When the
// limit shrinks below the calls already in flight, those calls finish normally; only new admissions
// stop until inflight < limit again.
//
// Every admitted token must be completed exactly once by OnSuccess, OnDropped or OnIgnored;
// completing a rejected token fails an FL_ASSERT. All methods are thread-safe. The limiter and its
// clock must outlive every outstanding token.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"

namespace faultline {

// One completed call, as the limit algorithm sees it.
struct LimitSample {
  // The call's round trip; > 0 (a zero or negative rtt is raised to 1 ns). Zero for drops.
  Duration rtt;
  // Calls in flight when this call was admitted, itself included (>= 1).
  uint32_t inflight = 0;
  // The call timed out or was refused by an overloaded server.
  bool dropped = false;
};

struct LimitUpdate {
  // The next estimated limit (fractional; the limiter clamps it to [limit_min, limit_max] and
  // admits floor(limit) calls).
  double limit = 0;
  // Start a new epoch: samples of calls admitted before this update are discarded. Used for a
  // Vegas no-load probe (a re-measure) and for "one change per round trip" (below).
  bool new_epoch = false;
};

// A limit algorithm. Called only under the limiter's mutex, one sample at a time, so an
// implementation needs no synchronisation of its own. Must not allocate or block.
class LimitAlgorithm {
 public:
  virtual ~LimitAlgorithm() = default;
  virtual std::string_view name() const = 0;
  // `limit` is the current estimate, already within the limiter's bounds.
  virtual LimitUpdate Update(double limit, const LimitSample& sample) = 0;
  // Remeasure() was called: forget any latency baseline.
  virtual void Remeasure() {}
};

// One change per round trip (the default for AIMD and Vegas; TCP adjusts its window once per RTT,
// not once per ack): a sample that changes the limit starts a new epoch, so the samples of calls
// admitted under the old limit are discarded (stale_samples). Without it (one_change_per_round =
// false: concurrency-limits' exact per-sample behaviour) every sample of a round acts on the limit:
// AIMD's +1 per sample doubles the limit each round and k drops of one round multiply it by 0.9^k;
// on a closed loop of 400 clients against a 50-slot service this swings between 1 and ~2× capacity
// (measured with the convergence tests' model), where with it the limit stays in a sawtooth just below capacity.

// Loss-based AIMD (concurrency-limits AIMDLimit): on a drop, or a success slower than `timeout`,
// limit' = floor(floor(limit) · backoff_ratio); else if inflight·2 >= limit, limit' =
// floor(limit)+1 (grow only while the limit is actually used); else unchanged.
struct AimdOptions {
  // Multiplicative decrease. [0.5, 1). CL default 0.9.
  double backoff_ratio = 0.9;
  // A success slower than this counts as a drop. > 0. CL default 5 s.
  Duration timeout = Duration::Seconds(5);
  bool one_change_per_round = true;
};

// Delay-based TCP Vegas (concurrency-limits VegasLimit). lg = max(1, floor(log10(floor(limit)))).
// A drop: limit − lg (drops carry no latency: they neither probe nor touch rtt_noload). Otherwise
// the first sample, and every sample faster than rtt_noload, only set rtt_noload; then
// queue = ceil(limit · (1 − rtt_noload/rtt)); alpha = alpha_factor·lg, beta = beta_factor·lg,
// threshold = lg. inflight·2 < limit: unchanged (app-limited); queue <= threshold: limit + beta;
// queue < alpha: limit + lg; queue > beta: limit − lg; else unchanged.
// Then limit' = (1 − smoothing)·limit + smoothing·max(1, new).
// Every jitter·probe_multiplier·limit samples (jitter uniform in [0.5, 1) on a 1/1000 grid, drawn
// from probe_seed: deterministic) the sample is a no-load probe: rtt_noload = its rtt and a new
// re-measure epoch starts (this is how Vegas forgets a no-load RTT the service no longer achieves).
// (CL's log10 table returns sqrt(limit) above 1000; faultline uses log10 throughout.)
struct VegasOptions {
  uint32_t alpha_factor = 3;       // >= 1. CL: 3
  uint32_t beta_factor = 6;        // > alpha_factor. CL: 6
  double smoothing = 1.0;          // (0, 1]. CL: 1.0
  uint32_t probe_multiplier = 30;  // >= 1. CL: 30
  uint64_t probe_seed = 1;
  bool one_change_per_round = true;
};

// Gradient2 (concurrency-limits Gradient2Limit), per sample. long_rtt is an exponential average of
// every success's rtt (plain mean over the first `warmup_samples`, then factor
// 2/(long_window_samples+1)); if long_rtt/rtt > 2 it decays ×0.95 (recovery after a long overload).
// If inflight < limit/2 (app-limited) the limit is unchanged; else
//   gradient = clamp(rtt_tolerance · long_rtt / rtt, 0.5, 1.0)
//   limit'   = (1 − smoothing)·limit + smoothing·(limit·gradient + queue_size).
// A drop (which CL ignores: its issue #137 shows the limit then climbing to max under timeouts) is
// faultline's addition: the floor gradient 0.5 without the queue_size allowance, long_rtt
// untouched:  limit' = (1 − smoothing)·limit + smoothing·0.5·limit.
// one_decrease_per_round (faultline's default; false = CL per sample): an update with gradient < 1,
// or a drop, starts a new epoch, so one round's worth of slow samples backs off once, not once per
// sample (per sample, a 400-client closed loop on a service with a steep latency knee at C = 50
// swings between 8 and ~110; with it, it stays within 67..78).
struct Gradient2Options {
  double smoothing = 0.2;              // (0, 1]. CL: 0.2
  uint32_t queue_size = 4;             // growth allowance per sample; <= 2^20. CL: 4
  double rtt_tolerance = 1.5;          // >= 1. CL: 1.5
  uint32_t long_window_samples = 600;  // >= 1. CL: 600
  uint32_t warmup_samples = 10;        // >= 1. CL: 10
  bool one_decrease_per_round = true;
};

enum class LimitAlgorithmKind : uint8_t { kAimd, kVegas, kGradient2 };

struct AdaptiveConcurrencyOptions {
  LimitAlgorithmKind algorithm = LimitAlgorithmKind::kGradient2;
  // Bounds of the limit. 1 <= limit_min <= limit_initial <= limit_max <= 2^30. (CL's AIMD and
  // Gradient2 default to a floor of 20; faultline defaults to 1 so that a collapsed service is
  // probed by one call at a time.)
  uint32_t limit_initial = 20;
  uint32_t limit_min = 1;
  uint32_t limit_max = 200;
  AimdOptions aimd;
  VegasOptions vegas;
  Gradient2Options gradient2;

  Status Validate() const;
};

struct AdaptiveConcurrencyCounters {
  uint64_t admitted = 0;       // TryAcquire granted a slot
  uint64_t rejected = 0;       // TryAcquire found inflight >= limit
  uint64_t succeeded = 0;      // OnSuccess calls
  uint64_t dropped = 0;        // OnDropped calls
  uint64_t ignored = 0;        // OnIgnored calls
  uint64_t stale_samples = 0;  // successes/drops discarded: admitted before the current epoch
  uint64_t epochs = 0;         // epochs started (Remeasure(), a probe, a per-round change)
};

std::unique_ptr<LimitAlgorithm> MakeAimdLimit(const AimdOptions& options);
std::unique_ptr<LimitAlgorithm> MakeVegasLimit(const VegasOptions& options);
std::unique_ptr<LimitAlgorithm> MakeGradient2Limit(const Gradient2Options& options);

class AdaptiveConcurrencyLimiter {
 public:
  // An admission (or a refusal). A plain value: copy it to wherever the call completes.
  class Token {
   public:
    Token() = default;
    bool admitted() const { return admitted_; }
    explicit operator bool() const { return admitted_; }
    MonoTime start() const { return start_; }
    // Calls in flight right after this admission, itself included; 0 when rejected.
    uint32_t inflight() const { return inflight_; }
    // The limit this admission was checked against; inflight() <= limit() always.
    uint32_t limit() const { return limit_; }
    uint64_t epoch() const { return epoch_; }

   private:
    friend class AdaptiveConcurrencyLimiter;
    MonoTime start_;
    uint64_t epoch_ = 0;
    uint32_t inflight_ = 0;
    uint32_t limit_ = 0;
    bool admitted_ = false;
  };

  // Uses the algorithm named by options.algorithm. Fails with kInvalidArgument naming the field.
  static Result<std::unique_ptr<AdaptiveConcurrencyLimiter>> Create(
      Clock& clock, const AdaptiveConcurrencyOptions& options);
  // A custom algorithm (options.algorithm and the per-algorithm options are then unused).
  static Result<std::unique_ptr<AdaptiveConcurrencyLimiter>> Create(
      Clock& clock, const AdaptiveConcurrencyOptions& options,
      std::unique_ptr<LimitAlgorithm> algorithm);
  AdaptiveConcurrencyLimiter(const AdaptiveConcurrencyLimiter&) = delete;
  AdaptiveConcurrencyLimiter& operator=(const AdaptiveConcurrencyLimiter&) = delete;
  ~AdaptiveConcurrencyLimiter();

  // Admits iff inflight < limit, atomically. Never waits, never allocates. Reads the clock once,
  // for the token's start, only when admitting.
  Token TryAcquire() { return TryAcquireImpl(nullptr); }
  // The same with the start time `now` the caller already read from this limiter's clock: reads
  // no clock.
  Token TryAcquire(MonoTime now) { return TryAcquireImpl(&now); }

  // The call succeeded in `rtt`: a latency sample. Reads no clock.
  void OnSuccess(const Token& token, Duration rtt) { Complete(token, rtt, Outcome::kSuccess); }
  // The call succeeded; rtt = clock.Now() − token.start(): one clock read.
  void OnSuccess(const Token& token) { OnSuccess(token, clock_.Now() - token.start()); }
  // The call timed out or was refused for overload: the algorithm backs off. Reads no clock.
  void OnDropped(const Token& token) { Complete(token, Duration::Zero(), Outcome::kDropped); }
  // The call was cancelled, or failed for a reason unrelated to load: no sample, no clock read.
  void OnIgnored(const Token& token) { Complete(token, Duration::Zero(), Outcome::kIgnored); }

 private:
  Token TryAcquireImpl(const MonoTime* now) {
    // The epoch is read before the slot is taken: a call racing a Remeasure() counts as admitted
    // before it (its sample is discarded), never after.
    const uint64_t epoch = epoch_.load(std::memory_order_acquire);
    uint32_t n = inflight_.load(std::memory_order_relaxed);
    uint32_t lim = 0;
    do {
      lim = limit_.load(std::memory_order_relaxed);
      if (n >= lim) {
        rejected_.fetch_add(1, std::memory_order_relaxed);
        observer_.Emit(EventKind::kAdaptiveRejected, now != nullptr ? *now : MonoTime(), n, lim);
        return Token();
      }
    } while (!inflight_.compare_exchange_weak(n, n + 1, std::memory_order_acquire,
                                              std::memory_order_relaxed));
    FL_ASSERT(n + 1 <= lim);
    Token t;
    t.admitted_ = true;
    t.inflight_ = n + 1;
    t.limit_ = lim;
    t.epoch_ = epoch;
    t.start_ = now != nullptr ? *now : clock_.Now();
    return t;
  }

 public:
  // Starts a new epoch: outstanding calls' samples will be discarded; the algorithm forgets its
  // latency baseline.
  void Remeasure();

  uint32_t limit() const { return limit_.load(std::memory_order_relaxed); }
  uint32_t inflight() const { return inflight_.load(std::memory_order_relaxed); }
  uint64_t epoch() const { return epoch_.load(std::memory_order_relaxed); }
  // The algorithm's fractional estimate (takes the mutex).
  double estimated_limit() const;
  std::string_view algorithm_name() const { return algorithm_->name(); }
  AdaptiveConcurrencyCounters counters() const;
  const AdaptiveConcurrencyOptions& options() const { return options_; }
  // Reports kAdaptiveRejected (a = in flight, b = limit) and kAdaptiveLimit (a = the new limit)
  // whenever the published limit changes. Attach before sharing.
  ObserverSlot& observe() { return observer_; }

 private:
  enum class Outcome : uint8_t { kSuccess, kDropped, kIgnored };
  AdaptiveConcurrencyLimiter(Clock& clock, const AdaptiveConcurrencyOptions& options,
                             std::unique_ptr<LimitAlgorithm> algorithm);
  void Complete(const Token& token, Duration rtt, Outcome outcome);
  // Clamps and publishes `estimate`; mu_ held. `at`: the completion instant, when known.
  void Publish(double estimate, MonoTime at = MonoTime());

  Clock& clock_;
  const AdaptiveConcurrencyOptions options_;
  // Admission state: its own cache line (written by every admission and completion).
  alignas(64) std::atomic<uint32_t> inflight_{0};
  // Read by every admission, written only by limit updates.
  alignas(64) std::atomic<uint32_t> limit_{0};
  std::atomic<uint64_t> epoch_{0};
  alignas(64) std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> succeeded_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> ignored_{0};
  std::atomic<uint64_t> stale_samples_{0};
  std::atomic<uint64_t> epochs_{0};
  // Limit update state.
  alignas(64) mutable std::mutex mu_;
  std::unique_ptr<LimitAlgorithm> algorithm_;  // guarded by mu_
  double estimate_ = 0;                        // guarded by mu_
  ObserverSlot observer_;
};

}  // namespace faultline
