// SagaLog, the sans-IO state machine, driven by hand: what Next asks for, in which order, with
// which keys, and what a crash, a timeout, a refusal or a corrupt row does to it.
#include "faultline/saga/saga_log.h"

#include <gtest/gtest.h>

#include <vector>

#include "src/saga/test_util.h"

namespace faultline::saga {
namespace {

using testing::Must;
using testing::MustOk;
using testing::SimStoreEnv;

SagaOptions FastOptions() {
  SagaOptions options;
  options.retry_backoff.delay_initial = Duration::Millis(10);
  options.retry_backoff.delay_max = Duration::Millis(100);
  options.forward_attempts_max = 3;
  options.compensation_attempts_max = 3;
  return options;
}

class SagaLogTest : public ::testing::Test {
 protected:
  void SetUp() override { log_ = Must(SagaLog::Create(*env_.store, env_.clock, FastOptions())); }
  void Reopen() {
    log_.reset();
    env_.CrashAndReopen();
    log_ = Must(SagaLog::Create(*env_.store, env_.clock, FastOptions()));
  }
  void Corrupt(const std::string& key) {
    MustOk(RunInTransaction(*env_.store, [&](Transaction& txn) -> Status {
      std::optional<std::string> v = Must(txn.Get(key));
      FL_ASSERT(v.has_value());
      (*v)[v->size() / 2] ^= 0x5a;
      return txn.Put(key, *v);
    }));
  }

  SimStoreEnv env_;
  std::unique_ptr<SagaLog> log_;
};

TEST_F(SagaLogTest, ForwardPathRunsEveryStepInOrderThenIsDone) {
  MustOk(log_->Start("transfer", "t1", 3, "payload"));
  for (uint32_t i = 0; i < 3; ++i) {
    const Action a = Must(log_->Next("t1"));
    ASSERT_EQ(a.kind, Action::kForward);
    EXPECT_EQ(a.step, i);
    EXPECT_EQ(a.step_key, "t1#" + std::to_string(i));
    EXPECT_EQ(a.forward_key, a.step_key);
    EXPECT_EQ(a.attempt, 1u);
    MustOk(log_->RecordForward("t1", i, Status::Ok()));
  }
  EXPECT_EQ(Must(log_->Next("t1")).kind, Action::kDone);
  EXPECT_TRUE(Must(log_->Unfinished()).empty());
  EXPECT_EQ(Must(log_->Get("t1")).phase, Phase::kDone);
}

TEST_F(SagaLogTest, StartIsIdempotentAndRefusesADifferentSagaUnderTheSameId) {
  MustOk(log_->Start("transfer", "t1", 2, "a"));
  MustOk(log_->Start("transfer", "t1", 2, "a"));
  EXPECT_EQ(log_->Start("transfer", "t1", 2, "b").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(log_->Start("refund", "t1", 2, "a").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(log_->Start("transfer", "t1", 3, "a").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(Must(log_->Unfinished()), std::vector<std::string>{"t1"});
}

TEST_F(SagaLogTest, BadInputIsRefusedWithInvalidArgument) {
  EXPECT_EQ(log_->Start("transfer", "", 1, "").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(log_->Start("transfer", std::string("a\0b", 3), 1, "").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(log_->Start("", "t", 1, "").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(log_->Start("transfer", "t", 0, "").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(log_->Start("transfer", "t", 100000, "").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(log_->Next("nope").status().code(), StatusCode::kNotFound);
  SagaOptions bad;
  bad.compensation_attempts_max = 0;
  EXPECT_EQ(SagaLog::Create(*env_.store, env_.clock, bad).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SagaLogTest, DefiniteFailureCompensatesFromTheFailedStepDownInReverse) {
  MustOk(log_->Start("transfer", "t1", 4, ""));
  for (uint32_t i = 0; i < 2; ++i) {
    ASSERT_EQ(Must(log_->Next("t1")).kind, Action::kForward);
    MustOk(log_->RecordForward("t1", i, Status::Ok()));
  }
  ASSERT_EQ(Must(log_->Next("t1")).step, 2u);
  MustOk(log_->RecordForward("t1", 2, FailedPreconditionError("insufficient funds")));
  std::vector<uint32_t> order;
  for (;;) {
    const Action a = Must(log_->Next("t1"));
    if (a.kind == Action::kCompensated) break;
    ASSERT_EQ(a.kind, Action::kCompensate);
    EXPECT_EQ(a.step_key, "t1#" + std::to_string(a.step) + "c");
    EXPECT_EQ(a.forward_key, "t1#" + std::to_string(a.step));
    EXPECT_NE(a.reason.find("insufficient funds"), std::string::npos) << a.reason;
    order.push_back(a.step);
    MustOk(log_->RecordCompensation("t1", a.step, Status::Ok()));
  }
  // Step 2 is compensated too (an earlier attempt may still be in flight); step 3 never started.
  EXPECT_EQ(order, (std::vector<uint32_t>{2, 1, 0}));
  EXPECT_TRUE(Must(log_->Unfinished()).empty());
}

TEST_F(SagaLogTest, StartedStepSurvivesACrashAndIsRetriedAsPossiblyApplied) {
  MustOk(log_->Start("transfer", "t1", 2, ""));
  ASSERT_EQ(Must(log_->Next("t1")).kind, Action::kForward);
  Reopen();  // crashed after sending step 0, before its outcome
  const SagaState state = Must(log_->Get("t1"));
  EXPECT_TRUE(state.started);
  EXPECT_EQ(Must(log_->Unfinished()), std::vector<std::string>{"t1"});
  const Action again = Must(log_->Next("t1"));
  EXPECT_EQ(again.kind, Action::kForward);
  EXPECT_EQ(again.step, 0u);
  EXPECT_EQ(again.attempt, 2u);
  EXPECT_EQ(again.step_key, "t1#0");  // same key: the participant dedups
}

TEST_F(SagaLogTest, UnknownOutcomeWaitsABackoffThenRetriesThenGivesUpAndCompensates) {
  MustOk(log_->Start("transfer", "t1", 2, ""));
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    Action a = Must(log_->Next("t1"));
    if (a.kind == Action::kWait) {
      EXPECT_GT(a.not_before, env_.clock.WallNow());
      env_.clock.Advance(a.not_before - env_.clock.WallNow());
      a = Must(log_->Next("t1"));
    }
    ASSERT_EQ(a.kind, Action::kForward);
    EXPECT_EQ(a.attempt, attempt);
    MustOk(log_->RecordForward("t1", 0, DeadlineExceededError("timeout")));
  }
  env_.clock.Advance(Duration::Seconds(1));
  const Action a = Must(log_->Next("t1"));
  ASSERT_EQ(a.kind, Action::kCompensate);
  EXPECT_EQ(a.step, 0u);
  EXPECT_NE(a.reason.find("gave up"), std::string::npos) << a.reason;
  MustOk(log_->RecordCompensation("t1", 0, Status::Ok()));
  EXPECT_EQ(Must(log_->Next("t1")).kind, Action::kCompensated);
}

TEST_F(SagaLogTest, AWallClockJumpingBackNeverStretchesABackoffBeyondItsCap) {
  MustOk(log_->Start("transfer", "t1", 1, ""));
  ASSERT_EQ(Must(log_->Next("t1")).kind, Action::kForward);
  MustOk(log_->RecordForward("t1", 0, UnavailableError("timeout")));
  EXPECT_EQ(Must(log_->Next("t1")).kind, Action::kWait);
  env_.clock.SetWall(env_.clock.WallNow() - Duration::Seconds(3600));
  const Action a = Must(log_->Next("t1"));  // retry_at is an hour ahead now: past the 100 ms cap
  EXPECT_EQ(a.kind, Action::kForward);
  EXPECT_EQ(a.attempt, 2u);
}

TEST_F(SagaLogTest, StaleOrDuplicateOutcomesChangeNothing) {
  MustOk(log_->Start("transfer", "t1", 2, ""));
  EXPECT_EQ(log_->RecordForward("t1", 0, Status::Ok()).code(), StatusCode::kFailedPrecondition);
  ASSERT_EQ(Must(log_->Next("t1")).kind, Action::kForward);
  MustOk(log_->RecordForward("t1", 0, Status::Ok()));
  EXPECT_EQ(log_->RecordForward("t1", 0, Status::Ok()).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(log_->RecordCompensation("t1", 0, Status::Ok()).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(Must(log_->Get("t1")).cursor, 1u);
}

TEST_F(SagaLogTest, CompensationRetriesExhaustedParkTheSagaWithAReason) {
  MustOk(log_->Start("transfer", "t1", 1, ""));
  ASSERT_EQ(Must(log_->Next("t1")).kind, Action::kForward);
  MustOk(log_->RecordForward("t1", 0, InvalidArgumentError("bad account")));
  for (int i = 0; i < 3; ++i) {
    env_.clock.Advance(Duration::Seconds(1));
    ASSERT_EQ(Must(log_->Next("t1")).kind, Action::kCompensate);
    MustOk(log_->RecordCompensation("t1", 0, UnavailableError("ledger down")));
  }
  const Action a = Must(log_->Next("t1"));
  EXPECT_EQ(a.kind, Action::kParked);
  EXPECT_NE(a.reason.find("ledger down"), std::string::npos) << a.reason;
  EXPECT_TRUE(Must(log_->Unfinished()).empty());
  const std::vector<ParkedSaga> parked = Must(log_->Parked());
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_EQ(parked[0].saga_id, "t1");
  EXPECT_NE(parked[0].reason.find("failed 3 times"), std::string::npos) << parked[0].reason;

  // A person fixed the ledger: Unpark re-arms the compensation with fresh attempts.
  MustOk(log_->Unpark("t1"));
  EXPECT_TRUE(Must(log_->Parked()).empty());
  const Action again = Must(log_->Next("t1"));
  ASSERT_EQ(again.kind, Action::kCompensate);
  EXPECT_EQ(again.attempt, 1u);
  MustOk(log_->RecordCompensation("t1", 0, Status::Ok()));
  EXPECT_EQ(Must(log_->Next("t1")).kind, Action::kCompensated);
}

TEST_F(SagaLogTest, ACompensationThatNeverReportsBackIsParkedNotLoopedForever) {
  MustOk(log_->Start("transfer", "t1", 1, ""));
  ASSERT_EQ(Must(log_->Next("t1")).kind, Action::kForward);
  MustOk(log_->RecordForward("t1", 0, InvalidArgumentError("no")));
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Must(log_->Next("t1")).kind, Action::kCompensate);
    Reopen();  // the compensation crashed the process every time
  }
  const Action a = Must(log_->Next("t1"));
  EXPECT_EQ(a.kind, Action::kParked);
  EXPECT_NE(a.reason.find("never reported"), std::string::npos) << a.reason;
  EXPECT_EQ(Must(log_->Parked()).size(), 1u);
}

TEST_F(SagaLogTest, CorruptRowIsDataLossAndParkMovesItOutOfTheRunningSet) {
  MustOk(log_->Start("transfer", "t1", 2, "data"));
  MustOk(log_->Start("transfer", "t2", 2, "data"));
  Corrupt("saga/s/t1");
  EXPECT_EQ(log_->Next("t1").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(log_->RecordForward("t1", 0, Status::Ok()).code(), StatusCode::kDataLoss);
  MustOk(log_->Park("t1", "row does not decode"));
  MustOk(log_->Park("t1", "again"));  // idempotent
  EXPECT_EQ(Must(log_->Unfinished()), std::vector<std::string>{"t2"});
  const std::vector<ParkedSaga> parked = Must(log_->Parked());
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_EQ(parked[0].reason, "row does not decode");
  EXPECT_TRUE(parked[0].started_at.has_value());
  EXPECT_EQ(log_->Unpark("t1").code(), StatusCode::kFailedPrecondition);
}

TEST_F(SagaLogTest, StuckReportsRunningAndParkedSagasOlderThanTheBound) {
  MustOk(log_->Start("transfer", "old", 1, ""));
  MustOk(log_->Start("transfer", "parked", 1, ""));
  MustOk(log_->Park("parked", "unknown type"));
  env_.clock.Advance(Duration::Seconds(601));
  MustOk(log_->Start("transfer", "young", 1, ""));
  MustOk(log_->Start("transfer", "finished", 1, ""));
  ASSERT_EQ(Must(log_->Next("finished")).kind, Action::kForward);
  MustOk(log_->RecordForward("finished", 0, Status::Ok()));
  const std::vector<StuckSaga> stuck = Must(log_->Stuck(env_.clock.WallNow()));
  ASSERT_EQ(stuck.size(), 2u);
  EXPECT_EQ(stuck[0].saga_id, "old");
  EXPECT_FALSE(stuck[0].parked);
  EXPECT_EQ(stuck[0].age, Duration::Seconds(601));
  EXPECT_EQ(stuck[1].saga_id, "parked");
  EXPECT_TRUE(stuck[1].parked);
  EXPECT_EQ(stuck[1].reason, "unknown type");
  EXPECT_TRUE(Must(log_->Stuck(env_.clock.WallNow() - Duration::Seconds(2))).empty());
}

TEST_F(SagaLogTest, ForgetDeletesFinishedOrParkedSagasButNeverARunningOne) {
  MustOk(log_->Start("transfer", "done", 1, ""));
  ASSERT_EQ(Must(log_->Next("done")).kind, Action::kForward);
  MustOk(log_->RecordForward("done", 0, Status::Ok()));
  MustOk(log_->Start("transfer", "running", 1, ""));
  MustOk(log_->Start("transfer", "corrupt", 1, ""));
  Corrupt("saga/s/corrupt");
  MustOk(log_->Park("corrupt", "bad row"));

  EXPECT_EQ(log_->Forget("running").code(), StatusCode::kFailedPrecondition);
  MustOk(log_->Forget("done"));
  MustOk(log_->Forget("done"));  // absent: ok
  EXPECT_EQ(log_->Get("done").status().code(), StatusCode::kNotFound);
  MustOk(log_->Forget("corrupt"));  // a person resolved it
  EXPECT_TRUE(Must(log_->Parked()).empty());
  EXPECT_EQ(Must(log_->Unfinished()), std::vector<std::string>{"running"});
}

}  // namespace
}  // namespace faultline::saga
