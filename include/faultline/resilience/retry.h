// File: faultline/resilience/retry.h
//
// Retries that cannot amplify an outage: bounded attempts, outcome classification, deadline
// awareness, jittered backoff, server pushback, and a shared retry budget.
//
// RetryPolicy (immutable, shareable) says what to do; RetryState (one per logical call) applies it
// step by step and can be driven by any runtime:
//
//   RetryState state(policy, &budget, deadline, jitter_seed);
//   for (;;) {
//     RetryState::Attempt a = state.StartAttempt(clock.Now());
//     if (!a.start) break;                                  // deadline: no time for an attempt
//     Status s = CallWithTimeout(a.timeout);
//     RetryState::Decision d = state.Decide(s, clock.Now(), pushback_from_reply);
//     if (!d.retry()) break;                                // d.reason says why
//     SleepFor(d.delay);
//   }
//
// and Retry() below is the same loop as a coroutine on the Env seams (it runs under the simulator).
//
// Exact rules of Decide(outcome, now, pushback), in order:
//   1. Classify (Classify(status)): OK -> kSuccess; retryable_codes (default UNAVAILABLE) ->
//      kRetryable; overloaded_codes (default RESOURCE_EXHAUSTED: "shed, do not retry now", SRE
//      book) -> kOverloaded, NEVER retried; everything else -> kNonRetryable.
//   2. Budget accounting (A6): success -> RecordSuccess(); retryable or overloaded ->
//      RecordFailure(); non-retryable -> nothing.
//   3. Stop on success / non-retryable / overloaded / pushback Stop() (gRPC negative pushback) /
//      attempts_max reached.
//   4. delay = Backoff::Delay(retry index) (jittered, capped); with a pushback delay (Retry-After,
//      grpc-retry-pushback-ms) delay = max(delay, pushback): never earlier than the server asked,
//      never earlier than our own backoff.
//   5. Deadline: the retry would start at now + delay; if less than attempt_duration_min would be
//      left then, stop with kDeadline WITHOUT sleeping (linkerd #2369: retries ran hours past a
//      5 s total timeout). So a sleep never runs past the deadline.
//   6. Budget: TryAcquireRetry() now, before the sleep, so that retries waiting in backoff count
//      against the budget (Envoy #30205); refused -> kBudgetExhausted. The permit is held until
//      the next StartAttempt (consumed) or handed back by Abandon() / the destructor / a
//      StartAttempt that finds the deadline too close (released).
//   7. Otherwise RetryAfter(delay, attempt_timeout) with attempt_timeout = min(attempt_timeout,
//      time left at the retry's start).
// StartAttempt(now) re-checks the deadline (the sleep may have overslept) and returns the
// per-try timeout min(attempt_timeout, remaining).
//
// Clock reads: RetryState reads none (it is handed `now`). The loop above and Retry() read two per
// attempt: one to start it, one to decide after it.
//
// Thread safety: RetryPolicy is immutable and may be shared by any number of threads.
// RetryState belongs to one logical call (one thread or one coroutine at a time). Neither
// allocates or throws; the budget they call is thread-safe.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <type_traits>
#include <utility>

#include "faultline/core/observer.h"
#include "faultline/core/random.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/cancel.h"
#include "faultline/env/clock.h"
#include "faultline/env/env.h"
#include "faultline/env/executor.h"
#include "faultline/env/task.h"
#include "faultline/resilience/backoff.h"
#include "faultline/resilience/deadline.h"
#include "faultline/resilience/retry_after.h"
#include "faultline/resilience/retry_budget.h"

namespace faultline {

// How an attempt ended, as far as retrying is concerned.
enum class Outcome : uint8_t {
  kSuccess,
  kRetryable,     // transient: may be retried
  kNonRetryable,  // retrying cannot help (bad request, not found, ...)
  kOverloaded,    // the server is shedding load: do not retry (it would add to the overload)
};

// Why a retry loop ended.
enum class StopReason : uint8_t {
  kNone,               // not stopped
  kSucceeded,
  kNonRetryable,
  kOverloaded,
  kPushbackStop,       // the server said not to retry (negative gRPC pushback)
  kAttemptsExhausted,  // attempts_max attempts were made
  kDeadline,           // the next attempt could not finish before the deadline
  kBudgetExhausted,    // the retry budget refused the retry
  kCancelled,
};
std::string_view StopReasonName(StopReason reason);

// A set of status codes (one bit per canonical code).
class StatusCodeSet {
 public:
  constexpr StatusCodeSet() = default;
  constexpr StatusCodeSet(std::initializer_list<StatusCode> codes) {
    for (StatusCode c : codes) bits_ |= Bit(c);
  }
  constexpr bool contains(StatusCode c) const { return (bits_ & Bit(c)) != 0; }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr bool intersects(StatusCodeSet o) const { return (bits_ & o.bits_) != 0; }
  constexpr uint32_t bits() const { return bits_; }

 private:
  static constexpr uint32_t Bit(StatusCode c) { return uint32_t{1} << static_cast<uint32_t>(c); }
  uint32_t bits_ = 0;
};

struct RetryOptions {
  // Attempts in total, the first included (gRPC maxAttempts). [1, 100].
  uint32_t attempts_max = 3;
  BackoffOptions backoff;
  // Timeout of each attempt (Envoy per_try_timeout); each attempt also gets at most what is left
  // of the deadline. Must be >= attempt_duration_min.
  Duration attempt_timeout = Duration::Infinite();
  // An attempt is not started with less than this left before the deadline: it could not
  // finish. Must be > 0.
  Duration attempt_duration_min = Duration::Millis(1);
  StatusCodeSet retryable_codes = {StatusCode::kUnavailable};
  StatusCodeSet overloaded_codes = {StatusCode::kResourceExhausted};
  // OK must be in neither set, and the sets must be disjoint.
  Status Validate() const;
};

class RetryPolicy {
 public:
  static Result<RetryPolicy> Create(const RetryOptions& options);

  Outcome Classify(const Status& status) const { return Classify(status.code()); }
  Outcome Classify(StatusCode code) const {
    if (code == StatusCode::kOk) return Outcome::kSuccess;
    if (options_.retryable_codes.contains(code)) return Outcome::kRetryable;
    if (options_.overloaded_codes.contains(code)) return Outcome::kOverloaded;
    return Outcome::kNonRetryable;
  }
  const Backoff& backoff() const { return backoff_; }
  const RetryOptions& options() const { return options_; }

 private:
  RetryPolicy(const RetryOptions& options, const Backoff& backoff)
      : options_(options), backoff_(backoff) {}
  RetryOptions options_;
  Backoff backoff_;
};

class RetryState {
 public:
  // `policy` and `budget` (nullptr: no budget) must outlive the state. `jitter_seed` seeds the
  // state's private jitter stream (under the simulator: env.random().Next()).
  RetryState(const RetryPolicy& policy, RetryBudget* budget, Deadline deadline,
             uint64_t jitter_seed);
  RetryState(const RetryState&) = delete;
  RetryState& operator=(const RetryState&) = delete;
  // Releases a permit still held (a retry decided but never started).
  ~RetryState() { Abandon(); }

  struct Attempt {
    bool start = false;              // false: do not send; stop_reason() says why (kDeadline)
    uint32_t number = 0;             // 1-based
    Duration timeout;                // min(attempt_timeout, remaining)
  };
  // Call before every attempt: first right away, then after each RetryAfter delay.
  Attempt StartAttempt(MonoTime now);

  struct Decision {
    enum class Kind : uint8_t { kRetryAfter, kStop };
    Kind kind = Kind::kStop;
    Duration delay;            // kRetryAfter: sleep this long, then StartAttempt
    Duration attempt_timeout;  // kRetryAfter: the retry's timeout if it starts after `delay`
    StopReason reason = StopReason::kNone;  // kStop: why
    bool retry() const { return kind == Kind::kRetryAfter; }
  };
  // Call after every attempt with its outcome; see the file comment for the rules.
  Decision Decide(Outcome outcome, MonoTime now, Pushback pushback = Pushback::None()) {
    return DecideImpl(outcome, now, pushback, StatusCode::kOk);
  }
  Decision Decide(const Status& status, MonoTime now, Pushback pushback = Pushback::None()) {
    return DecideImpl(policy_.Classify(status), now, pushback, status.code());
  }

  // Reports the retry decisions to `slot` (nullptr: none; must outlive the state), all timed at
  // Decide's `now`: kRetryScheduled (a = the attempt about to run, d = the delay),
  // kRetryAfterHonoured (d = the pushback that replaced a shorter backoff), kRetryBudgetDenied
  // (a = the refused attempt), kRetryExhausted (a = attempts made, b = the last StatusCode when
  // Decide was given a Status), kDeadlineExceeded (no retry fits before the deadline). Nothing
  // is reported for a success.
  void Observe(const ObserverSlot* slot) { observer_ = slot; }

  // The decided retry will not be sent (cancelled during backoff, shutdown): releases its budget
  // permit and stops. Idempotent; a no-op once stopped for another reason.
  void Abandon();

  uint32_t attempts_started() const { return attempts_started_; }
  StopReason stop_reason() const { return stop_reason_; }
  bool stopped() const { return phase_ == Phase::kStopped; }
  // True while a retry has been granted by the budget but not yet started.
  bool holding_permit() const { return permit_.granted; }
  Deadline deadline() const { return deadline_; }

 private:
  enum class Phase : uint8_t { kReady, kInAttempt, kWaiting, kStopped };
  Decision DecideImpl(Outcome outcome, MonoTime now, Pushback pushback, StatusCode code);
  Decision Stop(StopReason reason);
  void ReleasePermit();
  void Report(EventKind kind, MonoTime now, int64_t a, int64_t b = 0, Duration d = Duration()) {
    if (observer_ != nullptr) [[unlikely]] observer_->Emit(kind, now, a, b, d);
  }

  const RetryPolicy& policy_;
  RetryBudget* budget_;
  Deadline deadline_;
  uint64_t rng_state_;
  Phase phase_ = Phase::kReady;
  StopReason stop_reason_ = StopReason::kNone;
  uint32_t attempts_started_ = 0;
  Duration last_backoff_;
  RetryPermit permit_;
  const ObserverSlot* observer_ = nullptr;
};

// ---- Coroutine helper ---------------------------------------------------------------------------

// What Retry() hands to each attempt.
struct RetryAttempt {
  uint32_t number = 0;  // 1-based
  Duration timeout;     // the attempt must give up after this (pass it to Rpc::Call)
  CancelToken cancel;   // the caller's token
  // Set by the attempt from the reply (ParseRetryAfter, ParseGrpcPushbackMs) to push back.
  Pushback pushback;
};

struct RetryReport {
  uint32_t attempts = 0;
  StopReason reason = StopReason::kNone;
  Duration slept;  // total backoff
};

namespace retry_internal {
template <typename R>
struct TaskValue;
template <typename T>
struct TaskValue<Task<T>> {
  using type = T;
};
template <typename Fn>
using AttemptResult = typename TaskValue<std::invoke_result_t<Fn&, RetryAttempt&>>::type;
}  // namespace retry_internal

namespace retry_internal {
// What RetryLoop tells whoever watches it, at fixed points of the one loop both Retry() and
// observe::TracedRetry run (TracedRetry records spans from these). The default does nothing and
// inlines away: Retry() pays nothing for the hooks.
//   BeforeAttempt(a, now)      an attempt is about to start (`now`: the reading that started it)
//   AfterAttempt(d, at, s)     it ended with `s`, pushback at.pushback, and RetryState decided `d`
//   NoAttemptFits(now)         StartAttempt refused (the deadline): the loop stops
//   Finished(report, status)   the loop returns `status` (or the successful result), report final
struct NoLoopHooks {
  void BeforeAttempt(const RetryState::Attempt&, MonoTime) {}
  void AfterAttempt(const RetryState::Decision&, const RetryAttempt&, const Status&) {}
  void NoAttemptFits(MonoTime) {}
  void Finished(const RetryReport&, const Status&) {}
};

// The retry loop (see Retry below); `hooks` is held by value (a NoLoopHooks, or a small handle).
template <typename Fn, typename Hooks>
Task<AttemptResult<Fn>> RetryLoop(Executor& executor, Clock& clock, const RetryPolicy& policy,
                                  RetryBudget* budget, Deadline deadline, uint64_t jitter_seed,
                                  Fn fn, CancelToken cancel, RetryReport* report,
                                  const ObserverSlot* observer, Hooks hooks) {
  RetryState state(policy, budget, deadline, jitter_seed);
  state.Observe(observer);
  RetryReport local;
  RetryReport& rep = report != nullptr ? *report : local;
  rep = RetryReport{};
  Status last = DeadlineExceededError("retry: no attempt fit before the deadline");
  for (;;) {
    if (cancel.cancelled()) {
      state.Abandon();
      rep.reason = StopReason::kCancelled;
      const Status c = CancelledError("retry cancelled");
      hooks.Finished(rep, c);
      co_return c;
    }
    const MonoTime now = clock.Now();
    const RetryState::Attempt a = state.StartAttempt(now);
    if (!a.start) {
      rep.reason = state.stop_reason();
      hooks.NoAttemptFits(now);
      hooks.Finished(rep, last);
      co_return last;
    }
    rep.attempts = a.number;
    RetryAttempt attempt;
    attempt.number = a.number;
    attempt.timeout = a.timeout;
    attempt.cancel = cancel;
    hooks.BeforeAttempt(a, now);
    auto result = co_await fn(attempt);
    const RetryState::Decision d = state.Decide(result.status(), clock.Now(), attempt.pushback);
    hooks.AfterAttempt(d, attempt, result.status());
    if (!d.retry()) {
      rep.reason = d.reason;
      hooks.Finished(rep, result.status());
      co_return std::move(result);
    }
    last = std::move(result).TakeStatus();
    const Status slept = co_await Sleep(executor, d.delay, cancel);
    rep.slept += d.delay;
    if (!slept.ok()) {
      state.Abandon();
      rep.reason = StopReason::kCancelled;
      const Status c = CancelledError("retry cancelled during backoff");
      hooks.Finished(rep, c);
      co_return c;
    }
  }
}
}  // namespace retry_internal

// Runs fn(attempt) -> Task<Result<T>> until RetryState says stop, sleeping the backoff on
// `executor` (so it runs under the simulator). Returns the successful result, else the last
// attempt's error (kDeadlineExceeded if no attempt fit before the deadline, kCancelled if `cancel`
// fired during a backoff sleep). `fn` must honour attempt.timeout (Retry does not race it against
// a timer). `executor`, `clock`, `policy` and `budget` must outlive the returned task.
// `observer` (optional, must outlive the task) receives the retry decisions (RetryState::Observe).
// One loop (retry_internal::RetryLoop) serves this and observe::TracedRetry.
template <typename Fn>
Task<retry_internal::AttemptResult<Fn>> Retry(Executor& executor, Clock& clock,
                                              const RetryPolicy& policy, RetryBudget* budget,
                                              Deadline deadline, uint64_t jitter_seed, Fn fn,
                                              CancelToken cancel = {},
                                              RetryReport* report = nullptr,
                                              const ObserverSlot* observer = nullptr) {
  return retry_internal::RetryLoop(executor, clock, policy, budget, deadline, jitter_seed,
                                   std::move(fn), std::move(cancel), report, observer,
                                   retry_internal::NoLoopHooks{});
}

// The same on a node's Env: its executor, its clock, and a jitter seed drawn from its
// deterministic random stream (so a simulated run replays the same delays).
template <typename Fn>
Task<retry_internal::AttemptResult<Fn>> Retry(Env& env, const RetryPolicy& policy,
                                              RetryBudget* budget, Deadline deadline, Fn fn,
                                              CancelToken cancel = {},
                                              RetryReport* report = nullptr,
                                              const ObserverSlot* observer = nullptr) {
  return Retry(env.executor(), env.clock(), policy, budget, deadline, env.random().Next(),
               std::move(fn), std::move(cancel), report, observer);
}

}  // namespace faultline
