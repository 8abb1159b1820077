// File: faultline/observe/traced_hedge.h
//
// Hedge() with a span per hedged call and per copy sent, so a trace shows which copies went out,
// when, and which one won.
//
//   Result<Bytes> r = co_await TracedHedge<Bytes>(env, tracer, request.trace, "hedge get",
//       policy, &budget, deadline,
//       [&](int attempt, CancelToken cancel, Pushback&, TraceContext ctx) -> Task<Result<Bytes>> {
//         co_return co_await rpc.Call(replica[attempt], kGet, key, timeout, cancel, ctx);
//       });
//
// Spans:
//   <name> (INTERNAL)  hedge.layer; at the end hedge.attempts_started, hedge.winner (-1: none),
//                      hedge.budget_denied, hedge.stop_reason, status; the Hedge's observer
//                      events (hedge_sent with its delay, retry_budget_denied, deadline_exceeded)
//                      as span events, also passed to `metrics` when given.
//   hedge.attempt      one per copy sent: hedge.attempt (0 = the original), hedge.sent_after_ms
//                      (since the hedged call started), status; a copy torn down because another
//                      won (or the deadline passed) ends with hedge.cancelled = true.
#pragma once

#include <string>
#include <utility>

#include "faultline/env/env.h"
#include "faultline/observe/span_observer.h"
#include "faultline/observe/traced_retry.h"
#include "faultline/observe/tracer.h"
#include "faultline/resilience/hedging.h"

namespace faultline::observe {

template <typename T>
using TracedHedgeFn = std::function<Task<Result<T>>(int attempt, CancelToken cancel,
                                                    Pushback& pushback, TraceContext context)>;

namespace traced_hedge_internal {
// Marks an attempt span cancelled when its coroutine is torn down before it finished.
struct CancelMark {
  Tracer::Span* span;
  bool finished = false;
  ~CancelMark() {
    if (!finished) span->SetBool("hedge.cancelled", true);
  }
};
}  // namespace traced_hedge_internal

template <typename T>
Task<Result<T>> TracedHedge(Env& env, Tracer& tracer, TraceContext parent, std::string name,
                            HedgingPolicy policy, RetryBudget* budget, Deadline deadline,
                            TracedHedgeFn<T> fn, CancelToken cancel = {},
                            Observer* metrics = nullptr) {
  Tracer::Span hedge = tracer.StartSpan(name, parent);
  hedge.SetString("hedge.layer", name);
  SpanEventObserver events(tracer);
  events.Bind(hedge.id());
  traced_retry_internal::Fanout fanout(events, metrics, name);
  ObserverSlot slot;
  slot.Attach(&fanout, name);
  const MonoTime start = env.clock().Now();
  const TraceContext hedge_context = hedge.context();
  HedgeFnWithPushback<T> wrapped = [&env, &tracer, &fn, hedge_context, start](
                                       int attempt, CancelToken token,
                                       Pushback& pushback) -> Task<Result<T>> {
    Tracer::Span span = tracer.StartSpan("hedge.attempt", hedge_context);
    traced_hedge_internal::CancelMark mark{&span};
    span.SetInt("hedge.attempt", attempt)
        .SetInt("hedge.sent_after_ms", (env.clock().Now() - start).nanos() / 1'000'000);
    Result<T> r = co_await fn(attempt, std::move(token), pushback, span.context());
    mark.finished = true;
    span.End(r.status());
    co_return r;
  };
  HedgeReport report;
  Result<T> result = co_await Hedge<T>(env.executor(), env.clock(), std::move(policy), budget,
                                       deadline, std::move(wrapped), std::move(cancel), &report,
                                       &slot);
  hedge.SetInt("hedge.attempts_started", report.attempts_started)
      .SetInt("hedge.winner", report.winner)
      .SetInt("hedge.budget_denied", report.budget_denied)
      .SetString("hedge.stop_reason", StopReasonName(report.reason));
  hedge.End(result.status());
  co_return result;
}

}  // namespace faultline::observe
