// File: faultline/observe/traced_retry.h
//
// Retry() with its decisions recorded as spans, so that a trace shows a retry storm: which layer
// retried, how many times, with what backoff, what the budget said, and where the deadline ran
// out.
//
//   Result<Bytes> r = co_await TracedRetry(env, tracer, request.trace, "retry.b->c", policy,
//       &budget, Deadline::At(request.deadline),
//       [&](RetryAttempt& a, TraceContext attempt) -> Task<Result<Bytes>> {
//         co_return co_await rpc.Call(c, kMethod, body, a.timeout, a.cancel, attempt);
//       });
//
// Spans (each a child of the one above it):
//   <name> (INTERNAL)  retry.layer, deadline.budget_ms (remaining at the start);
//                      at the end retry.attempts, retry.stop_reason, retry.backoff_total_ms,
//                      deadline.exceeded (the loop stopped on the deadline, or the last attempt
//                      timed out), status.
//   retry.attempt      one per attempt: retry.attempt (1-based), retry.attempt_timeout_ms,
//                      deadline.remaining_ms at its start, retry.backoff_ms (slept before it),
//                      retry.retry_after_honoured (the server's pushback set that backoff);
//                      after it ended: retry.decision ("retry" / "stop"), retry.stop_reason,
//                      retry.budget ("granted" / "denied" / "none"), retry.next_backoff_ms,
//                      status. fn's calls made under `attempt` are its children.
// The RetryState's own decision events (core/observer.h: retry_scheduled, retry_after_honoured,
// retry_budget_denied, retry_exhausted, deadline_exceeded) become events of the loop span, and
// are also passed to `metrics` when given (e.g. the Prometheus observer), so one retry loop
// feeds both. The loop itself is Retry()'s (retry.h), step for step: same RetryState rules, same clock reads,
// same jitter seed drawn from env.random() — so a traced run makes the same decisions as an
// untraced one (the span ids draw from the same Rng only when a span is recorded).
#pragma once

#include <string>
#include <utility>

#include "faultline/env/env.h"
#include "faultline/env/trace_context.h"
#include "faultline/observe/span_observer.h"
#include "faultline/observe/tracer.h"
#include "faultline/resilience/retry.h"

namespace faultline::observe {

namespace traced_retry_internal {
template <typename Fn>
using Result = typename retry_internal::TaskValue<
    std::invoke_result_t<Fn&, RetryAttempt&, TraceContext>>::type;

inline int64_t Ms(Duration d) { return d.is_infinite() ? -1 : d.nanos() / 1'000'000; }

// Hands each event to the span observer and to an optional second observer.
class Fanout final : public Observer {
 public:
  Fanout(Observer& first, Observer* second) : first_(first), second_(second) {}
  void OnEvent(const Event& event) noexcept override {
    first_.OnEvent(event);
    if (second_ != nullptr) second_->OnEvent(event);
  }

 private:
  Observer& first_;
  Observer* second_;
};

// The attempt span's decision attributes, once RetryState decided after the attempt.
inline void RecordDecision(Tracer::Span& span, const RetryState::Decision& d, bool has_budget,
                           const Status& status) {
  span.SetString("retry.decision", d.retry() ? "retry" : "stop");
  if (!d.retry()) span.SetString("retry.stop_reason", StopReasonName(d.reason));
  span.SetString("retry.budget", d.reason == StopReason::kBudgetExhausted ? "denied"
                                 : has_budget && d.retry()               ? "granted"
                                                                         : "none");
  if (d.retry()) span.SetInt("retry.next_backoff_ms", Ms(d.delay));
  if (status.code() == StatusCode::kDeadlineExceeded) span.SetBool("deadline.exceeded", true);
  span.End(status);
}

// The loop span's closing attributes.
inline void FinishLoop(Tracer::Span& loop, uint32_t attempts, StopReason reason,
                       Duration backoff_total, const Status& status) {
  loop.SetInt("retry.attempts", attempts);
  loop.SetString("retry.stop_reason", StopReasonName(reason));
  loop.SetInt("retry.backoff_total_ms", Ms(backoff_total));
  loop.SetBool("deadline.exceeded", reason == StopReason::kDeadline ||
                                        status.code() == StatusCode::kDeadlineExceeded);
  loop.End(status);
}
}  // namespace traced_retry_internal

template <typename Fn>
Task<traced_retry_internal::Result<Fn>> TracedRetry(Env& env, Tracer& tracer, TraceContext parent,
                                                    std::string name, const RetryPolicy& policy,
                                                    RetryBudget* budget, Deadline deadline, Fn fn,
                                                    CancelToken cancel = {},
                                                    Observer* metrics = nullptr) {
  using traced_retry_internal::Ms;
  const uint64_t jitter_seed = env.random().Next();  // drawn first, as Retry(env, ...) does
  Tracer::Span loop = tracer.StartSpan(name, parent);
  loop.SetString("retry.layer", name);
  loop.SetInt("deadline.budget_ms", Ms(deadline.Remaining(env.clock().Now())));
  RetryState state(policy, budget, deadline, jitter_seed);
  SpanEventObserver events(tracer);
  events.Bind(loop.id());
  traced_retry_internal::Fanout fanout(events, metrics);
  ObserverSlot slot;
  slot.Attach(&fanout, name);
  state.Observe(&slot);
  Status last = DeadlineExceededError("retry: no attempt fit before the deadline");
  Duration backoff;  // slept before the next attempt
  Duration backoff_total;
  bool pushback_honoured = false;
  uint32_t attempts = 0;
  auto finish = [&](StopReason reason, const Status& status) {
    traced_retry_internal::FinishLoop(loop, attempts, reason, backoff_total, status);
  };
  for (;;) {
    if (cancel.cancelled()) {
      state.Abandon();
      const Status c = CancelledError("retry cancelled");
      finish(StopReason::kCancelled, c);
      co_return c;
    }
    const MonoTime now = env.clock().Now();
    const RetryState::Attempt a = state.StartAttempt(now);
    if (!a.start) {
      loop.AddEvent("retry.deadline_exhausted",
                    {IntAttr("deadline.remaining_ms", Ms(deadline.Remaining(now)))});
      finish(state.stop_reason(), last);
      co_return last;
    }
    attempts = a.number;
    Tracer::Span span = tracer.StartSpan("retry.attempt", loop.context());
    span.SetInt("retry.attempt", a.number)
        .SetInt("retry.attempt_timeout_ms", Ms(a.timeout))
        .SetInt("deadline.remaining_ms", Ms(deadline.Remaining(now)))
        .SetInt("retry.backoff_ms", Ms(backoff))
        .SetBool("retry.retry_after_honoured", pushback_honoured);
    RetryAttempt attempt;
    attempt.number = a.number;
    attempt.timeout = a.timeout;
    attempt.cancel = cancel;
    auto result = co_await fn(attempt, span.context());
    const RetryState::Decision d = state.Decide(result.status(), env.clock().Now(), attempt.pushback);
    traced_retry_internal::RecordDecision(span, d, budget != nullptr, result.status());
    if (!d.retry()) {
      finish(d.reason, result.status());
      co_return std::move(result);
    }
    pushback_honoured = attempt.pushback.is_delay() && d.delay == attempt.pushback.delay;
    backoff = d.delay;
    backoff_total += d.delay;
    last = std::move(result).TakeStatus();
    const Status slept = co_await Sleep(env.executor(), d.delay, cancel);
    if (!slept.ok()) {
      state.Abandon();
      const Status c = CancelledError("retry cancelled during backoff");
      finish(StopReason::kCancelled, c);
      co_return c;
    }
  }
}

}  // namespace faultline::observe
