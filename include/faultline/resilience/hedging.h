// File: faultline/resilience/hedging.h
//
// Hedged requests (gRPC A6 hedging policy; Dean & Barroso, "The Tail at Scale"): send the call,
// and if no answer has come after hedge_delay, send it again, up to attempts_max copies in flight;
// take whichever succeeds first.
//
// Exact rules of Hedge():
//   - Attempt 0 starts at once; attempt k starts hedge_delay after attempt k-1 (so k·hedge_delay
//     after the start when nothing fails). hedge_delay 0 sends all attempts at once.
//   - A non-fatal failure (non_fatal_codes, default UNAVAILABLE) starts the next attempt
//     immediately instead of waiting out the delay; with a pushback delay, after that delay; with
//     a Stop() pushback (negative grpc-retry-pushback-ms), no further attempt is sent (those in
//     flight continue).
//   - The first success wins: every other attempt is cancelled (its CancelToken fires) and torn
//     down, and its result is never looked at.
//   - A fatal failure (any other code) ends the call with that status; the others are cancelled.
//   - Every attempt after the first spends the retry budget: TryAcquireRetry() right before it
//     is sent; a refused hedge is not sent and no further hedge is tried. Successes and non-fatal
//     failures are recorded in the budget (A6: hedges and retries share the throttle).
//   - An attempt is not started with less than attempt_duration_min left before the deadline. At
//     the deadline every attempt is cancelled and the call ends with kDeadlineExceeded. The
//     caller's `cancel` token ends it with kCancelled.
//   - When every sent attempt failed non-fatally and no more may be sent, the last failure is
//     returned.
//
// Implementation: attempts run as coroutines in a TaskSet owned by the Hedge coroutine's frame, on
// the caller's single-threaded executor; an attempt's completion wakes the hedge through a posted
// callback (never by resuming it inside the attempt's own stack). Destroying the Hedge task (a
// crash) destroys every attempt with it.
//
// Clock reads: one when the hedge starts, one per later pass of its loop (each wake-up: an attempt
// finished, a hedge delay or the deadline elapsed). Use the precise clock: hedge delays are
// latency percentiles.
//
// Thread safety: HedgingPolicy is immutable and shareable. Hedge() runs on one executor; `fn` is
// called on it. The budget may be shared with other threads.
#pragma once

#include <array>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <optional>
#include <utility>

#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/cancel.h"
#include "faultline/env/clock.h"
#include "faultline/env/executor.h"
#include "faultline/env/task.h"
#include "faultline/resilience/deadline.h"
#include "faultline/resilience/internal/hedging.h"
#include "faultline/resilience/retry.h"
#include "faultline/resilience/retry_after.h"
#include "faultline/resilience/retry_budget.h"

namespace faultline {

inline constexpr uint32_t kHedgeAttemptsMax = 10;

struct HedgingOptions {
  // Copies sent at most, the first included (gRPC maxAttempts). [1, kHedgeAttemptsMax].
  uint32_t attempts_max = 3;
  // Delay between successive attempts (gRPC hedgingDelay). >= 0.
  Duration hedge_delay = Duration::Millis(50);
  // Failures that fire the next attempt at once; anything else ends the call (gRPC
  // nonFatalStatusCodes). Must not contain OK.
  StatusCodeSet non_fatal_codes = {StatusCode::kUnavailable};
  // An attempt is not started with less than this left before the deadline. > 0.
  Duration attempt_duration_min = Duration::Millis(1);
  Status Validate() const;
};

class HedgingPolicy {
 public:
  static Result<HedgingPolicy> Create(const HedgingOptions& options);
  bool IsNonFatal(StatusCode code) const { return options_.non_fatal_codes.contains(code); }
  const HedgingOptions& options() const { return options_; }

 private:
  explicit HedgingPolicy(const HedgingOptions& options) : options_(options) {}
  HedgingOptions options_;
};

struct HedgeReport {
  uint32_t attempts_started = 0;
  uint32_t budget_denied = 0;  // hedges the budget refused (0 or 1: after a refusal none is tried)
  int winner = -1;             // index of the successful attempt, -1 if none
  StopReason reason = StopReason::kNone;  // kSucceeded, kNonRetryable (fatal), kAttemptsExhausted,
                                          // kBudgetExhausted, kPushbackStop, kDeadline, kCancelled
};

// An attempt: fn(attempt index (0-based), cancel token) -> Task<Result<T>>.
template <typename T>
using HedgeFn = std::function<Task<Result<T>>(int attempt, CancelToken cancel)>;
// The same, with a slot the attempt may set from the reply to push back (Retry-After,
// grpc-retry-pushback-ms) before it co_returns.
template <typename T>
using HedgeFnWithPushback =
    std::function<Task<Result<T>>(int attempt, CancelToken cancel, Pushback& pushback)>;

// Runs a hedged call; see the file comment. `executor`, `clock` and `budget` (nullptr: no budget)
// must outlive the returned task; the policy is copied into it (it is small). `observer`
// (optional, must outlive the task) receives kHedgeSent (a = hedge number, d = since the start),
// kRetryBudgetDenied (a hedge the budget refused) and kDeadlineExceeded (d = how late).
template <typename T>
Task<Result<T>> Hedge(Executor& executor, Clock& clock, HedgingPolicy policy,
                      RetryBudget* budget, Deadline deadline, HedgeFnWithPushback<T> fn,
                      CancelToken cancel = {}, HedgeReport* report = nullptr,
                      const ObserverSlot* observer = nullptr) {
  using Shared = hedging_internal::Shared<T, kHedgeAttemptsMax>;
  HedgeReport local;
  HedgeReport& rep = report != nullptr ? *report : local;
  rep = HedgeReport{};
  const HedgingOptions& opt = policy.options();

  // Declaration order matters: `attempts` is destroyed first (tearing down attempts still in
  // flight), then the cancel source, then the shared state they point to.
  Shared shared(executor);
  CancelSource attempts_cancel;
  TaskSet attempts;

  Status last = DeadlineExceededError("hedge: no attempt fit before the deadline");
  uint32_t started = 0;
  uint32_t in_flight = 0;
  bool stop_sending = false;
  StopReason stop_cause = StopReason::kAttemptsExhausted;
  // One clock read per pass: the first pass uses the reading that starts the hedge.
  MonoTime now = clock.Now();
  const MonoTime start = now;
  MonoTime next_at = now;
  auto report_event = [observer](EventKind kind, MonoTime at, int64_t a, Duration d) {
    if (observer != nullptr) observer->Emit(kind, at, a, 0, d);
  };
  if (budget != nullptr) budget->RecordRequest();

  for (bool first = true;; first = false) {
    shared.event = false;
    if (!first) now = clock.Now();
    // 1. Look at attempts that finished since the last pass.
    for (uint32_t k = 0; k < started; ++k) {
      auto& slot = shared.slots[k];
      if (!slot.done || slot.seen) continue;
      slot.seen = true;
      --in_flight;
      Result<T>& r = *slot.result;
      if (r.ok()) {
        if (budget != nullptr) budget->RecordSuccess();
        rep.winner = static_cast<int>(k);
        rep.reason = StopReason::kSucceeded;
        attempts_cancel.Cancel();
        co_return std::move(r);
      }
      if (!policy.IsNonFatal(r.status().code())) {
        rep.reason = StopReason::kNonRetryable;
        attempts_cancel.Cancel();
        co_return std::move(r).TakeStatus();
      }
      if (budget != nullptr) budget->RecordFailure();
      last = std::move(r).TakeStatus();
      if (slot.pushback.is_stop()) {
        if (!stop_sending) stop_cause = StopReason::kPushbackStop;
        stop_sending = true;
      } else if (slot.pushback.is_delay()) {
        next_at = now + slot.pushback.delay;
      } else {
        next_at = now;  // a non-fatal failure fires the next attempt at once
      }
    }
    if (cancel.cancelled()) {
      rep.reason = StopReason::kCancelled;
      attempts_cancel.Cancel();
      co_return CancelledError("hedge cancelled");
    }
    if (deadline.Expired(now)) {
      rep.reason = StopReason::kDeadline;
      attempts_cancel.Cancel();
      report_event(EventKind::kDeadlineExceeded, now, started, now - deadline.at());
      co_return DeadlineExceededError("hedge: deadline exceeded");
    }
    // 2. Send the next attempt when it is due.
    if (!stop_sending && started < opt.attempts_max && now >= next_at) {
      if (deadline.Remaining(now) < opt.attempt_duration_min) {
        stop_sending = true;
        stop_cause = StopReason::kDeadline;
      } else if (started > 0 && budget != nullptr && !budget->TryAcquireRetry()) {
        ++rep.budget_denied;
        report_event(EventKind::kRetryBudgetDenied, now, started + 1, Duration());
        stop_sending = true;
        stop_cause = StopReason::kBudgetExhausted;
      } else {
        const uint32_t k = started++;
        ++in_flight;
        rep.attempts_started = started;
        next_at = now + opt.hedge_delay;
        if (k > 0) report_event(EventKind::kHedgeSent, now, k, now - start);
        // Runs until its first suspension (or to completion) before Spawn returns.
        attempts.Spawn(hedging_internal::RunAttempt(&shared, &fn, static_cast<int>(k),
                                                       attempts_cancel.token()));
        continue;  // it may already have finished
      }
    }
    const bool more_to_send = !stop_sending && started < opt.attempts_max;
    // 3. Nothing in flight and nothing more to send: every attempt failed non-fatally.
    if (in_flight == 0 && !more_to_send) {
      rep.reason = started == opt.attempts_max ? StopReason::kAttemptsExhausted : stop_cause;
      co_return last;
    }
    // 4. Wait for an attempt to finish, the next hedge, or the deadline.
    MonoTime wake_at = deadline.at();
    if (more_to_send && next_at < wake_at) wake_at = next_at;
    const Duration timeout = wake_at == MonoTime::Max() ? Duration::Infinite() : wake_at - now;
    co_await hedging_internal::WaitAwaiter<T, kHedgeAttemptsMax>(shared, timeout, cancel);
  }
}

// The brief form: attempts that do not report pushback.
template <typename T>
Task<Result<T>> Hedge(Executor& executor, Clock& clock, HedgingPolicy policy,
                      RetryBudget* budget, Deadline deadline, HedgeFn<T> fn,
                      CancelToken cancel = {}, HedgeReport* report = nullptr,
                      const ObserverSlot* observer = nullptr) {
  return Hedge<T>(executor, clock, policy, budget, deadline,
                  HedgeFnWithPushback<T>([f = std::move(fn)](int attempt, CancelToken token,
                                                              Pushback&) {
                    return f(attempt, std::move(token));
                  }),
                  std::move(cancel), report, observer);
}

}  // namespace faultline
