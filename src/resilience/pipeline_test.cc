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
