// The saga log and its participants on SqliteStore (a real database file): the same state machine
// as on LogStore, surviving a process restart (the store closed and reopened) mid-saga.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "faultline/adapters/sqlite_store.h"
#include "faultline/saga/orchestrator.h"
#include "src/saga/test_util.h"

namespace faultline::saga {
namespace {

using testing::CountingParticipant;
using testing::Must;
using testing::MustOk;

class SqliteSagaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/flsaga-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    Open();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open() {
    SqliteStoreOptions options;
    options.path = dir_ + "/saga.db";
    options.synchronous = SqliteSynchronous::kNormal;
    store_ = Must(SqliteStore::Open(options));
  }
  std::unique_ptr<Orchestrator> MakeOrchestrator(SagaLog& log, CountingParticipant& participant,
                                                 uint32_t refuse_at) {
    OrchestratorOptions options;
    options.sleep = [this](Duration d) { clock_.Advance(d); };
    std::unique_ptr<Orchestrator> orch = Must(Orchestrator::Create(log, clock_, options));
    SagaDefinition def;
    def.type = "transfer";
    for (uint32_t i = 0; i < 3; ++i) {
      const std::string counter = "c" + std::to_string(i);
      def.steps.push_back(
          {"step",
           [&participant, counter, i, refuse_at](const StepCall& c) -> Status {
             if (i == refuse_at) return FailedPreconditionError("refused");
             return participant.Forward(c.forward_key, std::string(c.saga_id) + counter);
           },
           [&participant, counter](const StepCall& c) {
             return participant.Compensate(c.forward_key, std::string(c.saga_id) + counter);
           }});
    }
    MustOk(orch->Register(std::move(def)));
    return orch;
  }

  std::string dir_;
  ManualClock clock_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteSagaTest, ForwardPathAndReverseCompensationOnOneDatabase) {
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*store_, clock_));
  CountingParticipant participant(*store_);
  std::unique_ptr<Orchestrator> ok = MakeOrchestrator(*log, participant, UINT32_MAX);
  EXPECT_EQ(Must(ok->Run("transfer", "a", "")), SagaOutcome::kDone);
  std::unique_ptr<Orchestrator> refusing = MakeOrchestrator(*log, participant, 2);
  EXPECT_EQ(Must(refusing->Run("transfer", "b", "")), SagaOutcome::kCompensated);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(participant.Value("ac" + std::to_string(i)), 1);
    EXPECT_EQ(participant.Value("bc" + std::to_string(i)), 0);
  }
  EXPECT_TRUE(Must(log->Unfinished()).empty());
}

TEST_F(SqliteSagaTest, ArmedStepSurvivesARestartAndRecoveryFinishesTheSaga) {
  {
    std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*store_, clock_));
    MustOk(log->Start("transfer", "a", 3, ""));
    ASSERT_EQ(Must(log->Next("a")).kind, Action::kForward);
    MustOk(log->RecordForward("a", 0, Status::Ok()));
    ASSERT_EQ(Must(log->Next("a")).kind, Action::kForward);  // step 1 sent; the process dies
  }
  store_.reset();
  Open();
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*store_, clock_));
  const SagaState state = Must(log->Get("a"));
  EXPECT_EQ(state.cursor, 1u);
  EXPECT_TRUE(state.started);
  CountingParticipant participant(*store_);
  std::unique_ptr<Orchestrator> orch = MakeOrchestrator(*log, participant, UINT32_MAX);
  const RecoveryReport report = Must(orch->RecoverAll());
  EXPECT_EQ(report.outcomes.at("a"), SagaOutcome::kDone);
  EXPECT_EQ(Must(log->Get("a")).phase, Phase::kDone);
}

TEST_F(SqliteSagaTest, CorruptRowIsParkedNotRetried) {
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*store_, clock_));
  MustOk(log->Start("transfer", "a", 3, ""));
  MustOk(RunInTransaction(*store_, [](Transaction& t) { return t.Put("saga/s/a", "\x01\x09"); }));
  CountingParticipant participant(*store_);
  std::unique_ptr<Orchestrator> orch = MakeOrchestrator(*log, participant, UINT32_MAX);
  EXPECT_EQ(Must(orch->RecoverAll()).outcomes.at("a"), SagaOutcome::kParked);
  EXPECT_EQ(Must(log->Parked()).size(), 1u);
  EXPECT_TRUE(Must(log->Unfinished()).empty());
}

}  // namespace
}  // namespace faultline::saga
