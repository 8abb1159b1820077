// Pipeline: the composed order of stages and the rules that keep local rejections from being
// retried.
#include "faultline/resilience/pipeline.h"

#include <gtest/gtest.h>

#include <memory>

#include "faultline/sim/world.h"

namespace faultline {
namespace {

struct Fixture {
  ManualClock clock;
  RetryPolicy retry = std::move(RetryPolicy::Create(RetryOptions())).value();
  std::unique_ptr<TokenRetryBudget> budget =
      std::move(TokenRetryBudget::Create(TokenRetryBudgetOptions())).value();
  std::unique_ptr<CircuitBreaker> breaker;
  std::unique_ptr<Bulkhead> bulkhead;
  Fixture() {
    CircuitBreakerOptions cb;
    cb.window_calls = 10;
    cb.min_calls = 4;
    breaker = std::move(CircuitBreaker::Create(clock, cb)).value();
    BulkheadOptions b;
    b.concurrency_max = 1;
    bulkhead = std::move(Bulkhead::Create(b)).value();
  }
  Pipeline Make() {
    PipelineStages s;
    s.retry = &retry;
    s.budget = budget.get();
    s.breaker = breaker.get();
    s.bulkhead = bulkhead.get();
    return Pipeline(clock, s);
  }
};

auto NoSleep = [](Duration) {};

// The success path calls through once, with the whole remaining deadline as attempt timeout.
TEST(Pipeline, SuccessCallsOnceWithTheRemainingDeadline) {
  Fixture f;
  Pipeline p = f.Make();
  int calls = 0;
  Duration seen;
  const Status s = p.Execute(Deadline::FromRemaining(f.clock.Now(), Duration::Seconds(2)),
                             [&](Duration t) {
                               ++calls;
                               seen = t;
                               return Status::Ok();
                             },
                             NoSleep);
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, Duration::Seconds(2));
}

// A transient failure is retried (up to attempts_max, 3 by default), with a backoff sleep between.
TEST(Pipeline, RetriesTransientFailuresWithBackoff) {
  Fixture f;
  Pipeline p = f.Make();
  int calls = 0;
  int sleeps = 0;
  const Status s = p.Execute(
      Deadline::Infinite(), [&](Duration) { return ++calls < 3 ? UnavailableError("x") : Status::Ok(); },
      [&](Duration d) {
        ++sleeps;
        f.clock.Advance(d);
      });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(sleeps, 2);
}

// A full bulkhead is a local overload: rejected without calling, and never retried.
TEST(Pipeline, BulkheadRejectionIsNotRetried) {
  Fixture f;
  Pipeline p = f.Make();
  BulkheadPermit hog = f.bulkhead->TryAcquire();
  ASSERT_TRUE(hog);
  int calls = 0;
  const Status s = p.Execute(Deadline::Infinite(), [&](Duration) { ++calls; return Status::Ok(); },
                             NoSleep);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(calls, 0);
}

// Once the breaker opens, calls are refused locally and not retried into it.
TEST(Pipeline, OpenBreakerRefusesWithoutCallingOrRetrying) {
  Fixture f;
  Pipeline p = f.Make();
  int calls = 0;
  auto failing = [&](Duration) {
    ++calls;
    return InternalError("boom");  // non-retryable: one call each
  };
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(p.Execute(Deadline::Infinite(), failing, NoSleep).ok());
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(f.breaker->state(), BreakerState::kOpen);
  const Status s = p.Execute(Deadline::Infinite(), failing, NoSleep);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(calls, 4);
}

// No attempt starts after the deadline; backoff never sleeps past it.
TEST(Pipeline, ExpiredDeadlineStartsNoAttempt) {
  Fixture f;
  Pipeline p = f.Make();
  int calls = 0;
  const Status s = p.Execute(Deadline::FromRemaining(f.clock.Now(), Duration::Zero()),
                             [&](Duration) { ++calls; return Status::Ok(); }, NoSleep);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(calls, 0);
}

// A ManualClock that counts its readings.
class CountingClock final : public Clock {
 public:
  MonoTime Now() override {
    ++reads;
    return inner.Now();
  }
  WallTime WallNow() override { return inner.WallNow(); }
  ManualClock inner;
  int reads = 0;
};

// The clock reads pipeline.h promises: one on entry to each attempt, one on completion only for
// the breaker's latency or a failure's retry decision.
struct CountingFixture {
  CountingClock clock;
  RetryPolicy retry = std::move(RetryPolicy::Create(RetryOptions())).value();
  std::unique_ptr<TokenRetryBudget> budget =
      std::move(TokenRetryBudget::Create(TokenRetryBudgetOptions())).value();
  std::unique_ptr<Gcra> limiter = std::move(Gcra::Create(clock, GcraOptions())).value();
  std::unique_ptr<CircuitBreaker> breaker =
      std::move(CircuitBreaker::Create(clock, CircuitBreakerOptions())).value();
  std::unique_ptr<Bulkhead> bulkhead = std::move(Bulkhead::Create(BulkheadOptions())).value();
  Pipeline Make(bool with_breaker) {
    PipelineStages s;
    s.retry = &retry;
    s.budget = budget.get();
    s.limiter = limiter.get();
    s.breaker = with_breaker ? breaker.get() : nullptr;
    s.bulkhead = bulkhead.get();
    clock.reads = 0;
    return Pipeline(clock, s);
  }
};

TEST(Pipeline, SuccessReadsTheClockTwiceWithABreakerAndOnceWithout) {
  CountingFixture f;
  Pipeline p = f.Make(/*with_breaker=*/true);
  auto ok = [&](Duration) {
    f.clock.inner.Advance(Duration::Millis(3));
    return Status::Ok();
  };
  EXPECT_TRUE(p.ExecuteWithTimeout(Duration::Seconds(1), ok, NoSleep).ok());
  EXPECT_EQ(f.clock.reads, 2);
  f.clock.reads = 0;
  EXPECT_TRUE(p.Execute(Deadline::Infinite(), ok, NoSleep).ok());
  EXPECT_EQ(f.clock.reads, 2);
  Pipeline q = f.Make(/*with_breaker=*/false);
  EXPECT_TRUE(q.ExecuteWithTimeout(Duration::Seconds(1), ok, NoSleep).ok());
  EXPECT_EQ(f.clock.reads, 1);
  EXPECT_EQ(f.breaker->counters().successes, 2u);
  EXPECT_EQ(f.breaker->counters().slow_calls, 0u);
}

TEST(Pipeline, BreakerLatencyComesFromTheCompletionReading) {
  CountingFixture f;
  Pipeline p = f.Make(/*with_breaker=*/true);
  EXPECT_TRUE(p.Execute(
                   Deadline::Infinite(),
                   [&](Duration) {
                     f.clock.inner.Advance(Duration::Seconds(61));  // > slow_call_threshold
                     return Status::Ok();
                   },
                   NoSleep)
                  .ok());
  EXPECT_EQ(f.breaker->counters().slow_calls, 1u);
  EXPECT_EQ(f.clock.reads, 2);
}

TEST(Pipeline, EachRetryAddsTwoReads) {
  for (const bool with_breaker : {true, false}) {
    CountingFixture f;
    Pipeline p = f.Make(with_breaker);
    int calls = 0;
    auto flaky = [&](Duration) { return ++calls < 3 ? UnavailableError("x") : Status::Ok(); };
    const Status s =
        p.Execute(Deadline::Infinite(), flaky, [&](Duration d) { f.clock.inner.Advance(d); });
    EXPECT_TRUE(s.ok());
    EXPECT_EQ(calls, 3);
    // Attempts 1 and 2 fail: entry + completion each; attempt 3: entry (+ completion for the
    // breaker).
    EXPECT_EQ(f.clock.reads, with_breaker ? 6 : 5) << "breaker " << with_breaker;
  }
}

// RecordAt() times a transition at the completion instant it is given, without a clock read.
TEST(Pipeline, BreakerRecordAtTimesTheTripAtTheGivenInstant) {
  CountingClock clock;
  CircuitBreakerOptions o;
  o.window_calls = 1;
  o.min_calls = 1;
  o.open_duration_jitter = Ratio::Percent(0);
  MonoTime tripped_at = MonoTime::Max();
  auto breaker = std::move(CircuitBreaker::Create(clock, o, [&](const BreakerTransition& t) {
                   tripped_at = t.at;
                 })).value();
  const BreakerPermit permit = breaker->TryAcquire(MonoTime::FromNanos(100));
  clock.reads = 0;
  breaker->RecordAt(permit, CallOutcome::kFailure, MonoTime::FromNanos(5'000));
  EXPECT_EQ(clock.reads, 0);
  EXPECT_EQ(breaker->state(), BreakerState::kOpen);
  EXPECT_EQ(tripped_at, MonoTime::FromNanos(5'000));
  EXPECT_EQ(breaker->open_until(), MonoTime::FromNanos(5'000) + o.open_duration_min);
}

// The coroutine form runs under the simulator and sleeps its backoffs on the node's executor.
class AsyncNode : public sim::Node {
 public:
  explicit AsyncNode(Env& env) : env_(env) {}
  void Start() override { env_.Spawn(Run()); }
  Status result = UnknownPending();
  int calls = 0;

 private:
  static Status UnknownPending() { return Status(StatusCode::kUnknown, "pending"); }
  Task<void> Run() {
    RetryOptions o;
    o.attempts_max = 4;
    RetryPolicy policy = std::move(RetryPolicy::Create(o)).value();
    PipelineStages stages;
    stages.retry = &policy;
    Pipeline p(env_.clock(), stages);
    result = co_await p.ExecuteAsync(
        env_.executor(), Deadline::Infinite(), [this](Duration) -> Task<Status> {
          ++calls;
          co_return calls < 3 ? UnavailableError("x") : Status::Ok();
        });
  }
  Env& env_;
};

TEST(Pipeline, AsyncFormRetriesOnTheExecutor) {
  sim::World world(1, sim::WorldOptions::Nodes(1));
  world.Boot(NodeId(0), [](Env& env) { return std::make_unique<AsyncNode>(env); });
  world.RunFor(Duration::Seconds(5));
  auto* node = world.node_as<AsyncNode>(NodeId(0));
  EXPECT_TRUE(node->result.ok()) << node->result.ToString();
  EXPECT_EQ(node->calls, 3);
  EXPECT_GT(world.elapsed(), Duration::Zero());
}

}  // namespace
}  // namespace faultline
