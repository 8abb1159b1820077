// The synchronous Orchestrator over SagaLog: the forward path, reverse compensation, a crash at
// every durable write of the log (the process dies, a new orchestrator recovers on the same store),
// bad input on recovery (unknown type, changed step count, corrupt row) and exhausted retries.
#include "faultline/saga/orchestrator.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "src/saga/test_util.h"

namespace faultline::saga {
namespace {

using testing::CountingParticipant;
using testing::DyingStore;
using testing::Must;
using testing::MustOk;
using testing::SimStoreEnv;

SagaOptions FastOptions() {
  SagaOptions options;
  options.retry_backoff.delay_initial = Duration::Millis(10);
  options.retry_backoff.delay_max = Duration::Millis(100);
  options.forward_attempts_max = 3;
  options.compensation_attempts_max = 4;
  return options;
}

// A saga type of `steps` steps against one CountingParticipant (counter "<saga>/<step>"). Step
// `refuse_at` (if < steps) is refused by the participant; every call is appended to `calls`.
struct Fixture {
  explicit Fixture(uint32_t steps_in, uint32_t refuse_at_in = UINT32_MAX)
      : steps(steps_in), refuse_at(refuse_at_in), participant(*part.store) {}

  SagaDefinition Definition() {
    SagaDefinition def;
    def.type = "transfer";
    for (uint32_t i = 0; i < steps; ++i) {
      SagaStep step;
      step.name = "step" + std::to_string(i);
      step.forward = [this, i](const StepCall& call) -> Status {
        calls.push_back(std::string(call.step_key));
        if (i == refuse_at) return FailedPreconditionError("insufficient funds");
        return participant.Forward(call.forward_key, Counter(call.saga_id, i));
      };
      step.compensate = [this, i](const StepCall& call) -> Status {
        calls.push_back(std::string(call.step_key));
        if (compensation_failures > 0) {
          --compensation_failures;
          return UnavailableError("participant down");
        }
        return participant.Compensate(call.forward_key, Counter(call.saga_id, i));
      };
      def.steps.push_back(std::move(step));
    }
    return def;
  }
  static std::string Counter(std::string_view saga, uint32_t step) {
    return std::string(saga) + "/" + std::to_string(step);
  }
  std::unique_ptr<Orchestrator> MakeOrchestrator(SagaLog& log) {
    OrchestratorOptions options;
    options.sleep = [this](Duration d) { env.clock.Advance(d); };
    std::unique_ptr<Orchestrator> orch = Must(Orchestrator::Create(log, env.clock, options));
    MustOk(orch->Register(Definition()));
    return orch;
  }
  // Net effect of every step: all 1 (done) or all 0 (compensated) is what a saga must end with.
  std::vector<int64_t> Effects(std::string_view saga) {
    std::vector<int64_t> out;
    for (uint32_t i = 0; i < steps; ++i) out.push_back(participant.Value(Counter(saga, i)));
    return out;
  }

  uint32_t steps;
  uint32_t refuse_at;
  int compensation_failures = 0;
  SimStoreEnv env{1};
  SimStoreEnv part{2};
  CountingParticipant participant;
  std::vector<std::string> calls;
};

TEST(Orchestrator, ForwardPathAppliesEveryStepOnce) {
  Fixture f(3);
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*f.env.store, f.env.clock, FastOptions()));
  std::unique_ptr<Orchestrator> orch = f.MakeOrchestrator(*log);
  EXPECT_EQ(Must(orch->Run("transfer", "t1", "100 from a to b")), SagaOutcome::kDone);
  EXPECT_EQ(f.Effects("t1"), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(f.calls, (std::vector<std::string>{"t1#0", "t1#1", "t1#2"}));
  // Running it again is idempotent: nothing is called.
  EXPECT_EQ(Must(orch->Run("transfer", "t1", "100 from a to b")), SagaOutcome::kDone);
  EXPECT_EQ(f.calls.size(), 3u);
}

TEST(Orchestrator, FailureInTheMiddleCompensatesInReverseOrder) {
  Fixture f(4, /*refuse_at=*/2);
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*f.env.store, f.env.clock, FastOptions()));
  std::unique_ptr<Orchestrator> orch = f.MakeOrchestrator(*log);
  EXPECT_EQ(Must(orch->Run("transfer", "t1", "")), SagaOutcome::kCompensated);
  EXPECT_EQ(f.calls, (std::vector<std::string>{"t1#0", "t1#1", "t1#2", "t1#2c", "t1#1c", "t1#0c"}));
  EXPECT_EQ(f.Effects("t1"), (std::vector<int64_t>{0, 0, 0, 0}));
}

TEST(Orchestrator, CompensationRetriesUntilItSucceedsWithinTheBudget) {
  Fixture f(2, /*refuse_at=*/1);
  f.compensation_failures = 3;  // the budget is 4 attempts
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*f.env.store, f.env.clock, FastOptions()));
  std::unique_ptr<Orchestrator> orch = f.MakeOrchestrator(*log);
  EXPECT_EQ(Must(orch->Run("transfer", "t1", "")), SagaOutcome::kCompensated);
  EXPECT_EQ(f.Effects("t1"), (std::vector<int64_t>{0, 0}));
}

TEST(Orchestrator, CompensationRetriesExhaustedParkTheSaga) {
  Fixture f(2, /*refuse_at=*/1);
  f.compensation_failures = 1000;
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*f.env.store, f.env.clock, FastOptions()));
  std::unique_ptr<Orchestrator> orch = f.MakeOrchestrator(*log);
  EXPECT_EQ(Must(orch->Run("transfer", "t1", "")), SagaOutcome::kParked);
  const std::vector<ParkedSaga> parked = Must(log->Parked());
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_NE(parked[0].reason.find("participant down"), std::string::npos) << parked[0].reason;
  EXPECT_EQ(f.calls.size(), 2u + 4u);  // two forwards, four compensation attempts of step 1
  EXPECT_TRUE(Must(orch->RecoverAll()).outcomes.empty());  // parked: never driven again
}

// The process dies after `k` durable commits of the saga log, for every k until a run completes
// untouched; a fresh orchestrator on the recovered store then resumes. Every run must end done
// with every step applied once, or compensated with none applied: never anything in between.
void CrashAtEveryCommit(uint32_t steps, uint32_t refuse_at, SagaOutcome expected) {
  for (int64_t k = 0;; ++k) {
    SCOPED_TRACE("crash after commit " + std::to_string(k));
    Fixture f(steps, refuse_at);
    bool died = false;
    {
      DyingStore dying(*f.env.store, k);
      std::unique_ptr<SagaLog> log = Must(SagaLog::Create(dying, f.env.clock, FastOptions()));
      std::unique_ptr<Orchestrator> orch = f.MakeOrchestrator(*log);
      Result<SagaOutcome> outcome = orch->Run("transfer", "t1", "data");
      died = !outcome.ok();
      if (died) {
        EXPECT_EQ(outcome.status().code(), StatusCode::kUnavailable);
      }
    }
    f.env.CrashAndReopen();
    std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*f.env.store, f.env.clock, FastOptions()));
    std::unique_ptr<Orchestrator> orch = f.MakeOrchestrator(*log);
    const RecoveryReport report = Must(orch->RecoverAll());
    EXPECT_TRUE(report.errors.empty());
    // A crash before Start committed leaves nothing to recover: the client retries Run.
    EXPECT_EQ(Must(orch->Run("transfer", "t1", "data")), expected);
    const std::vector<int64_t> effects = f.Effects("t1");
    for (uint32_t i = 0; i < steps; ++i) {
      EXPECT_EQ(effects[i], expected == SagaOutcome::kDone ? 1 : 0) << "step " << i;
    }
    EXPECT_TRUE(Must(log->Unfinished()).empty());
    if (!died) {
      // Start, and Next + Record per forward (and per compensation): every one was a crash point.
      EXPECT_GE(k, 1 + 2 * steps);
      break;
    }
    ASSERT_LT(k, 100) << "the run never completed";
  }
}

TEST(Orchestrator, CrashAtEveryCommitThenRecoveryCompletesTheSaga) {
  CrashAtEveryCommit(3, UINT32_MAX, SagaOutcome::kDone);
}

TEST(Orchestrator, CrashAtEveryCommitThenRecoveryCompensatesTheSaga) {
  CrashAtEveryCommit(3, 2, SagaOutcome::kCompensated);
}

TEST(Orchestrator, UnknownTypeOnRecoveryIsParkedAndTheOthersStillRecover) {
  Fixture f(2);
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*f.env.store, f.env.clock, FastOptions()));
  MustOk(log->Start("refund", "r1", 2, ""));    // a type this build does not know
  MustOk(log->Start("transfer", "t1", 5, ""));  // started by a build with five steps
  MustOk(log->Start("transfer", "t2", 2, ""));
  std::unique_ptr<Orchestrator> orch = f.MakeOrchestrator(*log);
  const RecoveryReport report = Must(orch->RecoverAll());
  EXPECT_EQ(report.resumed, 3u);
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(report.outcomes.at("r1"), SagaOutcome::kParked);
  EXPECT_EQ(report.outcomes.at("t1"), SagaOutcome::kParked);
  EXPECT_EQ(report.outcomes.at("t2"), SagaOutcome::kDone);
  EXPECT_EQ(report.parked_now, (std::vector<std::string>{"r1", "t1"}));
  const std::vector<ParkedSaga> parked = Must(log->Parked());
  ASSERT_EQ(parked.size(), 2u);
  EXPECT_EQ(parked[0].reason, "saga type 'refund' is not registered with this orchestrator");
  EXPECT_EQ(parked[1].reason,
            "saga type 'transfer' has 2 steps registered, the saga was started with 5");
  // A second recovery does not touch them again: no crash loop.
  EXPECT_EQ(Must(orch->RecoverAll()).resumed, 0u);
}

TEST(Orchestrator, CorruptRowOnRecoveryIsParkedWithItsReason) {
  Fixture f(2);
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*f.env.store, f.env.clock, FastOptions()));
  MustOk(log->Start("transfer", "t1", 2, ""));
  MustOk(log->Start("transfer", "t2", 2, ""));
  MustOk(RunInTransaction(*f.env.store, [](Transaction& txn) {
    return txn.Put("saga/s/t1", std::string("\x02garbage", 8));
  }));
  std::unique_ptr<Orchestrator> orch = f.MakeOrchestrator(*log);
  const RecoveryReport report = Must(orch->RecoverAll());
  EXPECT_EQ(report.outcomes.at("t1"), SagaOutcome::kParked);
  EXPECT_EQ(report.outcomes.at("t2"), SagaOutcome::kDone);
  const std::vector<ParkedSaga> parked = Must(log->Parked());
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_NE(parked[0].reason.find("saga row is corrupt: DATA_LOSS"), std::string::npos)
      << parked[0].reason;
  EXPECT_EQ(Must(log->Stuck(f.env.clock.WallNow() + Duration::Seconds(3600))).size(), 1u);
  // A client retrying Run on the corrupt saga gets the parked outcome, not an error loop.
  EXPECT_EQ(Must(orch->Run("transfer", "t1", "")), SagaOutcome::kParked);
  EXPECT_EQ(f.calls.size(), 2u);  // only t2 ran its two forwards
}

// Two drivers on one saga (a restarted orchestrator while the old one still runs): the second
// finishes the saga during the first one's call; the first's stale outcome is refused and it
// carries on from where the log says the saga is, instead of failing. Each step applies once.
TEST(Orchestrator, ASecondDriverFinishingTheSagaMidCallIsFollowedNotFought) {
  Fixture f(3);
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*f.env.store, f.env.clock, FastOptions()));
  std::unique_ptr<Orchestrator> other = f.MakeOrchestrator(*log);
  OrchestratorOptions options;
  std::unique_ptr<Orchestrator> first = Must(Orchestrator::Create(*log, f.env.clock, options));
  SagaDefinition def = f.Definition();
  bool raced = false;
  StepFunction inner = def.steps[0].forward;
  def.steps[0].forward = [&](const StepCall& call) -> Status {
    if (!raced) {
      raced = true;
      EXPECT_EQ(Must(other->Drive(call.saga_id)), SagaOutcome::kDone);
    }
    return inner(call);
  };
  MustOk(first->Register(std::move(def)));
  EXPECT_EQ(Must(first->Run("transfer", "t1", "")), SagaOutcome::kDone);
  EXPECT_EQ(f.Effects("t1"), (std::vector<int64_t>{1, 1, 1}));
}

TEST(Orchestrator, RegisterRefusesIncompleteDefinitions) {
  Fixture f(1);
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*f.env.store, f.env.clock, FastOptions()));
  std::unique_ptr<Orchestrator> orch = f.MakeOrchestrator(*log);
  EXPECT_EQ(orch->Register(f.Definition()).code(), StatusCode::kAlreadyExists);
  SagaDefinition def = f.Definition();
  def.type = "other";
  def.steps[0].compensate = nullptr;
  EXPECT_EQ(orch->Register(def).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(orch->Run("nope", "x", "").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace faultline::saga
