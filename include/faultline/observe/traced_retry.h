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
// are also passed to `metrics` when given (e.g. the Prometheus observer; reached through an
// ObserverSlot attached as `name`, so its Bind applies), so one retry loop feeds both. The loop
// is Retry()'s own (retry_internal::RetryLoop in retry.h, with span-recording hooks): same
// RetryState rules, same clock reads, same jitter seed drawn from env.random() — so a traced run
// makes the same decisions as an untraced one (the span ids draw from the same Rng only when a
// span is recorded).
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

// Hands each event to the span observer and to an optional second observer. The second is
// reached through an ObserverSlot attached under the loop's name, so an exporter's Bind (its
// per-instance cells) serves every event and none is looked up by name.
class Fanout final : public Observer {
 public:
  Fanout(Observer& first, Observer* second, std::string_view name) : first_(first) {
    second_.Attach(second, name);
  }
  void OnEvent(const Event& event) noexcept override {
    first_.OnEvent(event);
    second_.Emit(event.kind, event.at, event.a, event.b, event.d);
  }

 private:
  Observer& first_;
  ObserverSlot second_;
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

// RetryLoop's hooks for TracedRetry: the loop span's events and one span per attempt.
class LoopSpans {
 public:
  LoopSpans(Tracer& tracer, Tracer::Span& loop, Deadline deadline, bool has_budget)
      : tracer_(tracer), loop_(loop), deadline_(deadline), has_budget_(has_budget) {}

  void BeforeAttempt(const RetryState::Attempt& a, MonoTime now) {
    attempt_ = tracer_.StartSpan("retry.attempt", loop_.context());
    attempt_.SetInt("retry.attempt", a.number)
        .SetInt("retry.attempt_timeout_ms", Ms(a.timeout))
        .SetInt("deadline.remaining_ms", Ms(deadline_.Remaining(now)))
        .SetInt("retry.backoff_ms", Ms(backoff_))
        .SetBool("retry.retry_after_honoured", pushback_honoured_);
  }
  void AfterAttempt(const RetryState::Decision& d, const RetryAttempt& attempt,
                    const Status& status) {
    RecordDecision(attempt_, d, has_budget_, status);
    if (!d.retry()) return;
    pushback_honoured_ = attempt.pushback.is_delay() && d.delay == attempt.pushback.delay;
    backoff_ = d.delay;
  }
  void NoAttemptFits(MonoTime now) {
    loop_.AddEvent("retry.deadline_exhausted",
                   {IntAttr("deadline.remaining_ms", Ms(deadline_.Remaining(now)))});
  }
  void Finished(const RetryReport& report, const Status& status) {
    FinishLoop(loop_, report.attempts, report.reason, report.slept, status);
  }
  // The context fn's calls for the current attempt continue.
  const TraceContext& attempt_context() const { return attempt_.context(); }

  // What RetryLoop holds (by value): a handle on the spans in TracedRetry's frame.
  struct Hooks {
    LoopSpans* spans;
    void BeforeAttempt(const RetryState::Attempt& a, MonoTime now) { spans->BeforeAttempt(a, now); }
    void AfterAttempt(const RetryState::Decision& d, const RetryAttempt& attempt,
                      const Status& status) {
      spans->AfterAttempt(d, attempt, status);
    }
    void NoAttemptFits(MonoTime now) { spans->NoAttemptFits(now); }
    void Finished(const RetryReport& report, const Status& status) {
      spans->Finished(report, status);
    }
  };

 private:
  Tracer& tracer_;
  Tracer::Span& loop_;
  const Deadline deadline_;
  const bool has_budget_;
  Tracer::Span attempt_;
  Duration backoff_;  // slept before the next attempt
  bool pushback_honoured_ = false;
};
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
  SpanEventObserver events(tracer);
  events.Bind(loop.id());
  traced_retry_internal::Fanout fanout(events, metrics, name);
  ObserverSlot slot;
  slot.Attach(&fanout, name);
  traced_retry_internal::LoopSpans spans(tracer, loop, deadline, budget != nullptr);
  // Retry()'s own loop, step for step: the hooks only record what it decided.
  co_return co_await retry_internal::RetryLoop(
      env.executor(), env.clock(), policy, budget, deadline, jitter_seed,
      [&fn, &spans](RetryAttempt& attempt) { return fn(attempt, spans.attempt_context()); },
      std::move(cancel), nullptr, &slot, traced_retry_internal::LoopSpans::Hooks{&spans});
}

}  // namespace faultline::observe
