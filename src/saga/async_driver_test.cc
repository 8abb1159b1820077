// AsyncOrchestrator inside a simulated node: steps are coroutines that take simulated time, a
// lost reply is retried by its step key, and a crash of the node at any instant of the run is
// followed by a restart whose RecoverAll finishes the saga with every step applied exactly once.
#include "faultline/saga/async_driver.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "faultline/env/env.h"
#include "faultline/sim/world.h"
#include "faultline/store/log_store.h"
#include "src/saga/test_util.h"

namespace faultline::saga {
namespace {

using testing::CountingParticipant;
using testing::Must;
using testing::MustOk;
using testing::SimStoreEnv;

constexpr NodeId kNode(0);

// What outlives the node: the participant (another service) and the observations.
struct Shared {
  SimStoreEnv part{7};
  CountingParticipant participant{*part.store};
  uint32_t lose_reply_of_step = UINT32_MAX;  // the first forward of this step loses its reply
  uint32_t refuse_step = UINT32_MAX;
  std::optional<SagaOutcome> outcome;
  int forward_calls = 0;
};

Task<Status> CallParticipant(Executor& executor, Shared* shared, std::string forward_key,
                             uint32_t step, uint32_t attempt, bool forward) {
  Status slept = co_await Sleep(executor, Duration::Millis(10));  // the request's flight
  if (!slept.ok()) co_return slept;
  const std::string counter = "t1/" + std::to_string(step);
  if (!forward) co_return shared->participant.Compensate(forward_key, counter);
  shared->forward_calls += 1;
  if (step == shared->refuse_step) co_return FailedPreconditionError("refused");
  FL_ASSERT(shared->participant.Forward(forward_key, counter).ok());
  if (step == shared->lose_reply_of_step && attempt == 1) {
    co_return DeadlineExceededError("reply lost");
  }
  slept = co_await Sleep(executor, Duration::Millis(10));  // the reply's flight
  if (!slept.ok()) co_return slept;
  co_return Status::Ok();
}

class SagaNode final : public sim::Node {
 public:
  SagaNode(Env& env, Shared* shared) : env_(env), shared_(shared) {
    store_ = Must(LogStore::Open(env.disk()));
    SagaOptions options;
    options.retry_backoff.delay_initial = Duration::Millis(5);
    options.retry_backoff.delay_max = Duration::Millis(50);
    log_ = Must(SagaLog::Create(*store_, env.clock(), options));
    orch_ = Must(AsyncOrchestrator::Create(*log_, env.executor(), env.clock()));
    AsyncSagaDefinition def;
    def.type = "transfer";
    for (uint32_t i = 0; i < 3; ++i) {
      auto call = [this, i](bool forward) {
        return [this, i, forward](const StepCall& c) {
          return CallParticipant(env_.executor(), shared_, std::string(c.forward_key), i, c.attempt,
                                 forward);
        };
      };
      def.steps.push_back({"step" + std::to_string(i), call(true), call(false)});
    }
    MustOk(orch_->Register(std::move(def)));
  }
  void Start() override { env_.Spawn(Main()); }

 private:
  Task<void> Main() {
    Result<RecoveryReport> report = co_await orch_->RecoverAll();
    FL_ASSERT(report.ok() && report->errors.empty());
    Result<SagaOutcome> outcome = co_await orch_->Run("transfer", "t1", "");
    FL_ASSERT(outcome.ok());
    shared_->outcome = *outcome;
  }

  Env& env_;
  Shared* shared_;
  std::unique_ptr<LogStore> store_;
  std::unique_ptr<SagaLog> log_;
  std::unique_ptr<AsyncOrchestrator> orch_;
};

std::unique_ptr<sim::World> Boot(Shared* shared) {
  sim::WorldOptions options;
  options.node_count = 1;
  auto world = std::make_unique<sim::World>(1, options);
  world->Boot(kNode, [shared](Env& env) { return std::make_unique<SagaNode>(env, shared); });
  return world;
}

TEST(AsyncOrchestrator, LostReplyIsRetriedByItsKeyAndAppliedOnce) {
  Shared shared;
  shared.lose_reply_of_step = 1;
  auto world = Boot(&shared);
  world->RunFor(Duration::Seconds(5));
  ASSERT_EQ(shared.outcome, SagaOutcome::kDone);
  EXPECT_EQ(shared.forward_calls, 4);  // step 1 twice
  for (int i = 0; i < 3; ++i) EXPECT_EQ(shared.participant.Value("t1/" + std::to_string(i)), 1);
}

TEST(AsyncOrchestrator, RefusedStepIsCompensatedInReverse) {
  Shared shared;
  shared.refuse_step = 2;
  auto world = Boot(&shared);
  world->RunFor(Duration::Seconds(5));
  ASSERT_EQ(shared.outcome, SagaOutcome::kCompensated);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(shared.participant.Value("t1/" + std::to_string(i)), 0);
}

// The node crashes at every millisecond of a run (mid-call, mid-reply, between steps), restarts
// 50 ms later and recovers: the saga ends done with each step applied exactly once.
TEST(AsyncOrchestrator, CrashAtAnyInstantThenRestartCompletesTheSaga) {
  int run_ms = 0;  // how long an uncrashed run takes
  {
    Shared shared;
    shared.lose_reply_of_step = 2;
    auto world = Boot(&shared);
    while (!shared.outcome.has_value() && run_ms < 5000) {
      world->RunFor(Duration::Millis(1));
      ++run_ms;
    }
    ASSERT_GE(run_ms, 60);  // three calls of 20 ms at least
  }
  for (int crash_ms = 0; crash_ms < run_ms; ++crash_ms) {
    SCOPED_TRACE("crash at " + std::to_string(crash_ms) + " ms");
    Shared shared;
    shared.lose_reply_of_step = 2;
    auto world = Boot(&shared);
    world->RunFor(Duration::Millis(crash_ms));
    ASSERT_FALSE(shared.outcome.has_value());  // the crash interrupts a run in progress
    world->Crash(kNode);
    world->RunFor(Duration::Millis(50));
    world->Restart(kNode);
    world->RunFor(Duration::Seconds(5));
    ASSERT_EQ(shared.outcome, SagaOutcome::kDone);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(shared.participant.Value("t1/" + std::to_string(i)), 1);
  }
}

}  // namespace
}  // namespace faultline::saga
