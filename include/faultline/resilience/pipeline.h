// File: faultline/resilience/pipeline.h
//
// Pipeline: the resilience primitives composed outer -> inner, like a Polly v8 pipeline:
//
//   total timeout (Deadline) -> retry (RetryPolicy + RetryBudget, backoff, pushback)
//     -> rate limiter (Gcra) -> circuit breaker -> bulkhead -> the call
//
// Every stage is optional (nullptr). Clock reads: each attempt reads the clock once on entry —
// that reading serves the total timeout, the retry state, the rate limiter and the breaker — and
// at most once on completion: only when the breaker needs the call's latency or the attempt
// failed (the retry decision needs the time only to fit a backoff before the deadline). So a
// call that succeeds at once reads the clock twice with a breaker and once without; a retry adds
// two (the failed attempt's completion, the next attempt's entry after the backoff).
// ExecuteWithTimeout() takes the total timeout as a Duration and starts it at the first entry
// reading, where Execute(Deadline) needs the caller to have read the clock for the deadline.
// The limiter and the breaker are handed readings of the pipeline's clock: construct them on the
// same Clock.
//
// Local rejections never reach the call and are classified as overload (RESOURCE_EXHAUSTED from
// the limiter and the bulkhead, UNAVAILABLE "circuit open" from the breaker is treated as overload
// too): the retry stage does not retry them, because retrying into a protection that just said no
// only adds load.
//
//   Pipeline p(clock, {.retry = &policy, .budget = &budget, .breaker = breaker.get(), ...});
//   Status s = p.Execute(deadline, [&](Duration attempt_timeout) { return CallBackend(attempt_timeout); },
//                        [](Duration d) { std::this_thread::sleep_for(...); });
//   Status s = p.ExecuteWithTimeout(Duration::Seconds(1), fn, sleep);  // the same, one read fewer
//   // or, in a coroutine on an Executor (under the simulator):
//   Status s = co_await p.ExecuteAsync(executor, deadline, [&](Duration t) -> Task<Status> {...});
//
// Observer (observe()): the retry decisions (see RetryState::Observe) and, per Execute,
// kCallCompleted (a = the StatusCode returned, b = 1 when d is the measured latency of the whole
// call). The latency is measured only where the pipeline already holds a completion reading (a
// breaker's, or a failed attempt's); a success without a breaker takes no completion reading, so
// it reports b = 0, d = 0: attaching an observer never adds a clock read. Stages report their own
// events through their own observe().
//
// Thread safety: a Pipeline is immutable after construction (attach the observer before sharing)
// and may be shared; the stages it
// points to are thread-safe (see their headers). Execute allocates nothing and throws nothing
// beyond what `fn` does.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

#include "faultline/core/observer.h"
#include "faultline/env/clock.h"
#include "faultline/env/task.h"
#include "faultline/resilience/bulkhead.h"
#include "faultline/resilience/circuit_breaker.h"
#include "faultline/resilience/deadline.h"
#include "faultline/resilience/rate_limiter.h"
#include "faultline/resilience/retry.h"
#include "faultline/resilience/retry_budget.h"

namespace faultline {

struct PipelineStages {
  const RetryPolicy* retry = nullptr;  // nullptr: one attempt
  RetryBudget* budget = nullptr;       // consulted before every retry
  Gcra* limiter = nullptr;
  CircuitBreaker* breaker = nullptr;
  Bulkhead* bulkhead = nullptr;
};

class Pipeline {
 public:
  // `clock` and every stage must outlive the pipeline.
  Pipeline(Clock& clock, PipelineStages stages) : clock_(clock), stages_(stages) {}

  // One attempt through limiter, breaker and bulkhead. `now` is the attempt's entry reading.
  // Returns the call's status, or the local rejection. Reads the clock once more, on completion,
  // iff a breaker admitted the call (for its latency).
  template <typename Fn>
  Status Attempt(MonoTime now, Duration attempt_timeout, Fn& fn) {
    Completion done;
    return AttemptImpl(now, attempt_timeout, fn, &done);
  }

  // Runs `fn(Duration attempt_timeout) -> Status` until it succeeds or the retry stage stops;
  // `sleep(Duration)` waits out backoffs (a thread sleep, or nothing in a test).
  template <typename Fn, typename Sleeper>
  Status Execute(Deadline deadline, Fn&& fn, Sleeper&& sleep, uint64_t jitter_seed = 0) {
    return Run(clock_.Now(), deadline, fn, sleep, jitter_seed);
  }
  // Execute() with a total timeout that starts at the first attempt's entry reading.
  template <typename Fn, typename Sleeper>
  Status ExecuteWithTimeout(Duration timeout, Fn&& fn, Sleeper&& sleep, uint64_t jitter_seed = 0) {
    const MonoTime now = clock_.Now();
    return Run(now, Deadline::FromRemaining(now, timeout), fn, sleep, jitter_seed);
  }

  // The same as a coroutine: `fn(Duration) -> Task<Status>`, backoffs slept on `executor`.
  template <typename Fn>
  Task<Status> ExecuteAsync(Executor& executor, Deadline deadline, Fn fn,
                            uint64_t jitter_seed = 0) {
    MonoTime now = clock_.Now();
    const MonoTime start = now;
    const uint32_t attempts_max = stages_.retry == nullptr ? 1 : UINT32_MAX;
    RetryState* state = nullptr;
    std::optional<RetryState> storage;
    if (stages_.retry != nullptr) {
      state = &storage.emplace(*stages_.retry, stages_.budget, deadline, jitter_seed);
      if (observer_.attached()) [[unlikely]] state->Observe(&observer_);
    }
    Status last = DeadlineExceededError("no attempt fit in the deadline");
    for (uint32_t n = 0; n < attempts_max; ++n) {
      Duration timeout = deadline.Remaining(now);
      if (state != nullptr) {
        const RetryState::Attempt a = state->StartAttempt(now);
        if (!a.start) break;
        timeout = a.timeout;
      } else if (deadline.Expired(now)) {
        break;
      }
      Completion done;
      last = co_await AttemptAsync(now, timeout, fn, &done);
      if (state == nullptr) {
        ReportCall(last, start, now, done);
        co_return last;
      }
      const MonoTime end = CompletionTime(last, now, done);
      const RetryState::Decision d = state->Decide(last, end);
      if (!d.retry()) {
        ReportCall(last, start, end, Completion{end, done.read || !last.ok()});
        co_return last;
      }
      Status slept = co_await faultline::Sleep(executor, d.delay);
      if (!slept.ok()) co_return CancelledError("cancelled");
      now = clock_.Now();
    }
    ReportCall(last, start, now, Completion{now, true});
    co_return last;
  }

  const PipelineStages& stages() const { return stages_; }
  ObserverSlot& observe() { return observer_; }

 private:
  static CallOutcome BreakerOutcome(const Status& s) {
    if (s.ok()) return CallOutcome::kSuccess;
    // The callee shedding load or our own deadline passing says nothing about its health.
    if (s.code() == StatusCode::kResourceExhausted || s.code() == StatusCode::kCancelled) {
      return CallOutcome::kIgnored;
    }
    return CallOutcome::kFailure;
  }

  // An attempt's completion reading, if one was taken.
  struct Completion {
    MonoTime end;
    bool read = false;
  };

  // The retry loop from the first entry reading `now`.
  template <typename Fn, typename Sleeper>
  Status Run(MonoTime now, Deadline deadline, Fn& fn, Sleeper& sleep, uint64_t jitter_seed) {
    const MonoTime start = now;
    if (stages_.retry == nullptr) {
      if (deadline.Expired(now)) {
        Status s = DeadlineExceededError("deadline passed");
        ReportCall(s, start, now, Completion{now, true});
        return s;
      }
      Completion done;
      Status s = AttemptImpl(now, deadline.Remaining(now), fn, &done);
      if (observer_.attached()) [[unlikely]] ReportCall(s, start, now, done);
      return s;
    }
    RetryState state(*stages_.retry, stages_.budget, deadline, jitter_seed);
    if (observer_.attached()) [[unlikely]] state.Observe(&observer_);
    Status last;  // ok until an attempt fails: an error Status allocates, the success path must not
    while (true) {
      const RetryState::Attempt a = state.StartAttempt(now);
      if (!a.start) {
        if (last.ok()) last = DeadlineExceededError("no attempt fit in the deadline");
        ReportCall(last, start, now, Completion{now, true});
        return last;
      }
      Completion done;
      last = AttemptImpl(now, a.timeout, fn, &done);
      const MonoTime end = CompletionTime(last, now, done);
      const RetryState::Decision d = state.Decide(last, end);
      if (!d.retry()) {
        if (observer_.attached()) [[unlikely]] {
          ReportCall(last, start, end, Completion{end, done.read || !last.ok()});
        }
        return last;
      }
      sleep(d.delay);
      now = clock_.Now();
    }
  }

  // kCallCompleted for a call that started at `start`. `done.read`: `done.end` is a completion
  // reading (the latency is measured); otherwise `now` (an entry reading) times the event.
  void ReportCall(const Status& s, MonoTime start, MonoTime now, const Completion& done) const {
    if (!observer_.attached()) [[likely]] return;
    if (done.read) {
      observer_.Emit(EventKind::kCallCompleted, done.end, static_cast<int64_t>(s.code()), 1,
                     done.end - start);
    } else {
      observer_.Emit(EventKind::kCallCompleted, now, static_cast<int64_t>(s.code()), 0);
    }
  }

  // The time the retry decision is taken at. RetryState::Decide reads it only for a failure (to
  // fit the backoff before the deadline), so a success hands it the entry reading, unread.
  MonoTime CompletionTime(const Status& s, MonoTime now, const Completion& done) {
    if (done.read) return done.end;
    return s.ok() ? now : clock_.Now();
  }

  // Attempt(), noting the completion reading the breaker took in `*done`.
  template <typename Fn>
  Status AttemptImpl(MonoTime now, Duration attempt_timeout, Fn& fn, Completion* done) {
    if (stages_.limiter != nullptr && !stages_.limiter->TryAcquire(now).admitted()) {
      return ResourceExhaustedError("rate limited");
    }
    BreakerPermit permit;
    if (stages_.breaker != nullptr) {
      permit = stages_.breaker->TryAcquire(now);
      if (!permit.admitted()) return ResourceExhaustedError("circuit open");
    }
    BulkheadPermit slot;
    if (stages_.bulkhead != nullptr) {
      slot = stages_.bulkhead->TryAcquire();
      if (!slot) {
        if (stages_.breaker != nullptr) stages_.breaker->Release(permit);
        return ResourceExhaustedError("bulkhead full");
      }
    }
    Status s = fn(attempt_timeout);
    if (stages_.breaker != nullptr) {
      done->end = clock_.Now();
      done->read = true;
      stages_.breaker->RecordAt(permit, BreakerOutcome(s), done->end);
    }
    return s;
  }

  template <typename Fn>
  Task<Status> AttemptAsync(MonoTime now, Duration attempt_timeout, Fn& fn, Completion* done) {
    if (stages_.limiter != nullptr && !stages_.limiter->TryAcquire(now).admitted()) {
      co_return ResourceExhaustedError("rate limited");
    }
    BreakerPermit permit;
    if (stages_.breaker != nullptr) {
      permit = stages_.breaker->TryAcquire(now);
      if (!permit.admitted()) co_return ResourceExhaustedError("circuit open");
    }
    BulkheadPermit slot;
    if (stages_.bulkhead != nullptr) {
      slot = stages_.bulkhead->TryAcquire();
      if (!slot) {
        if (stages_.breaker != nullptr) stages_.breaker->Release(permit);
        co_return ResourceExhaustedError("bulkhead full");
      }
    }
    Status s = co_await fn(attempt_timeout);
    if (stages_.breaker != nullptr) {
      done->end = clock_.Now();
      done->read = true;
      stages_.breaker->RecordAt(permit, BreakerOutcome(s), done->end);
    }
    co_return s;
  }

  Clock& clock_;
  PipelineStages stages_;
  ObserverSlot observer_;
};

}  // namespace faultline
