#include "faultline/resilience/retry.h"

#include "faultline/core/buggify.h"
#include "faultline/core/options.h"

namespace faultline {

std::string_view StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kNone: return "none";
    case StopReason::kSucceeded: return "succeeded";
    case StopReason::kNonRetryable: return "non_retryable";
    case StopReason::kOverloaded: return "overloaded";
    case StopReason::kPushbackStop: return "pushback_stop";
    case StopReason::kAttemptsExhausted: return "attempts_exhausted";
    case StopReason::kDeadline: return "deadline";
    case StopReason::kBudgetExhausted: return "budget_exhausted";
    case StopReason::kCancelled: return "cancelled";
  }
  return "unknown";
}

Status RetryOptions::Validate() const {
  FL_CHECK_OPTION(attempts_max >= 1 && attempts_max <= 100, "attempts_max must be in [1, 100]");
  FL_RETURN_IF_ERROR(backoff.Validate());
  FL_CHECK_OPTION(attempt_duration_min > Duration::Zero(), "attempt_duration_min must be > 0");
  FL_CHECK_OPTION(attempt_timeout >= attempt_duration_min,
                  "attempt_timeout must be >= attempt_duration_min");
  FL_CHECK_OPTION(!retryable_codes.contains(StatusCode::kOk), "retryable_codes must not contain OK");
  FL_CHECK_OPTION(!overloaded_codes.contains(StatusCode::kOk),
                  "overloaded_codes must not contain OK");
  FL_CHECK_OPTION(!retryable_codes.intersects(overloaded_codes),
                  "retryable_codes and overloaded_codes must be disjoint");
  return Status::Ok();
}

Result<RetryPolicy> RetryPolicy::Create(const RetryOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  FL_ASSIGN_OR_RETURN(Backoff backoff, Backoff::Create(options.backoff));
  return RetryPolicy(options, backoff);
}

RetryState::RetryState(const RetryPolicy& policy, RetryBudget* budget, Deadline deadline,
                       uint64_t jitter_seed)
    : policy_(policy), budget_(budget), deadline_(deadline), rng_state_(jitter_seed) {}

RetryState::Attempt RetryState::StartAttempt(MonoTime now) {
  FL_ASSERT_MSG(phase_ == Phase::kReady || phase_ == Phase::kWaiting,
                "StartAttempt before the previous attempt was decided, or after a stop");
  Attempt attempt;
  const Duration remaining = deadline_.Remaining(now);
  if (remaining < policy_.options().attempt_duration_min) {
    // The backoff may have overslept, or the call arrived with too little time: an attempt
    // started now could not finish. The permit goes back to the budget.
    Stop(StopReason::kDeadline);
    return attempt;
  }
  if (phase_ == Phase::kReady && budget_ != nullptr) budget_->RecordRequest();
  permit_ = RetryPermit{};  // consumed: the retry is being sent
  phase_ = Phase::kInAttempt;
  ++attempts_started_;
  attempt.start = true;
  attempt.number = attempts_started_;
  const Duration per_try = policy_.options().attempt_timeout;
  attempt.timeout = per_try < remaining ? per_try : remaining;
  FL_ASSERT(attempt.timeout >= policy_.options().attempt_duration_min);
  return attempt;
}

RetryState::Decision RetryState::DecideImpl(Outcome outcome, MonoTime now, Pushback pushback,
                                            StatusCode code) {
  FL_ASSERT_MSG(phase_ == Phase::kInAttempt, "Decide without an attempt in progress");
  FL_ASSERT(!permit_.granted);
  switch (outcome) {
    case Outcome::kSuccess:
      if (budget_ != nullptr) budget_->RecordSuccess();
      return Stop(StopReason::kSucceeded);
    case Outcome::kNonRetryable:
      return Stop(StopReason::kNonRetryable);
    case Outcome::kOverloaded:
      if (budget_ != nullptr) budget_->RecordFailure();
      return Stop(StopReason::kOverloaded);
    case Outcome::kRetryable:
      if (budget_ != nullptr) budget_->RecordFailure();
      break;
  }
  if (pushback.is_stop()) return Stop(StopReason::kPushbackStop);
  if (attempts_started_ >= policy_.options().attempts_max) {
    Report(EventKind::kRetryExhausted, now, attempts_started_, static_cast<int64_t>(code));
    return Stop(StopReason::kAttemptsExhausted);
  }

  const Duration backoff =
      policy_.backoff().Delay(attempts_started_ - 1, last_backoff_, SplitMix64(rng_state_));
  // BUGGIFY: the retry goes out at once, without its backoff (a pushback delay still holds):
  // extra retries land while the server is still failing.
  Duration delay = FL_BUGGIFY("retry.backoff_skipped") ? Duration::Zero() : backoff;
  if (pushback.is_delay() && pushback.delay > delay) delay = pushback.delay;

  // Never sleep into a deadline the retry could not meet.
  const Duration remaining_at_start = deadline_.Remaining(now + delay);
  if (remaining_at_start < policy_.options().attempt_duration_min) {
    FL_PROBE("retry.deadline_stop");
    Report(EventKind::kDeadlineExceeded, now, attempts_started_);
    return Stop(StopReason::kDeadline);
  }
  // Acquire before sleeping: a retry waiting in backoff already counts against the budget.
  if (budget_ != nullptr) {
    permit_ = budget_->TryAcquireRetry();
    if (!permit_.granted) {
      FL_PROBE("retry.budget_exhausted");
      Report(EventKind::kRetryBudgetDenied, now, attempts_started_ + 1);
      return Stop(StopReason::kBudgetExhausted);
    }
  } else {
    permit_.granted = true;
  }
  last_backoff_ = backoff;
  phase_ = Phase::kWaiting;
  if (observer_ != nullptr) [[unlikely]] {
    if (pushback.is_delay() && delay == pushback.delay && pushback.delay > backoff) {
      observer_->Emit(EventKind::kRetryAfterHonoured, now, attempts_started_ + 1, 0, delay);
    }
    observer_->Emit(EventKind::kRetryScheduled, now, attempts_started_ + 1, 0, delay);
  }

  Decision d;
  d.kind = Decision::Kind::kRetryAfter;
  d.delay = delay;
  const Duration per_try = policy_.options().attempt_timeout;
  d.attempt_timeout = per_try < remaining_at_start ? per_try : remaining_at_start;
  FL_ASSERT(d.delay >= Duration::Zero());
  FL_ASSERT(deadline_.is_infinite() || now + d.delay < deadline_.at());
  return d;
}

void RetryState::Abandon() {
  // A held permit (kWaiting) goes back to the budget inside Stop().
  if (phase_ != Phase::kStopped) Stop(StopReason::kCancelled);
}

RetryState::Decision RetryState::Stop(StopReason reason) {
  ReleasePermit();
  phase_ = Phase::kStopped;
  if (stop_reason_ == StopReason::kNone) stop_reason_ = reason;
  Decision d;
  d.kind = Decision::Kind::kStop;
  d.reason = reason;
  return d;
}

void RetryState::ReleasePermit() {
  if (!permit_.granted) return;
  if (budget_ != nullptr) budget_->ReleaseRetry(permit_);
  permit_ = RetryPermit{};
}

}  // namespace faultline
