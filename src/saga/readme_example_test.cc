// The README's saga example ("Outbox and sagas in your own service"), compiled and run as a test
// so it can never go stale. The text between the markers is the README snippet;
// tests/readme_snippets_test.sh checks the README shows this code verbatim.
#include <gtest/gtest.h>

#include <memory>

#include "faultline/core/random.h"
#include "faultline/sim/disk.h"
#include "faultline/store/log_store.h"

// [readme-saga-example]
#include <sstream>

#include "faultline/saga/orchestrator.h"
#include "faultline/saga/participant.h"

using namespace faultline;
using namespace faultline::saga;

// The participant: a bank whose balances live in a LocalStore. The guard, in the same
// transaction as the balance change, applies each forward at most once, undoes it at most once,
// and refuses a forward that arrives after its compensation (a retry still in flight).
Status AddToBalance(LocalStore& bank, const StepCall& call, std::string_view account, int64_t delta,
                    bool compensate) {
  ParticipantGuard guard;
  return RunInTransaction(bank, [&](Transaction& txn) -> Status {
    Result<GuardVerdict> verdict = compensate ? guard.ApplyCompensation(txn, call.forward_key)
                                              : guard.ApplyForward(txn, call.forward_key);
    if (!verdict.ok()) return verdict.status();
    if (*verdict == GuardVerdict::kRefused) return FailedPreconditionError("compensated already");
    if (*verdict != GuardVerdict::kApply) return Status::Ok();  // done before, or nothing to undo
    const std::string key = "balance/" + std::string(account);
    FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(key));
    const int64_t balance = (value ? std::stoll(*value) : 0) + (compensate ? -delta : delta);
    if (balance < 0) return FailedPreconditionError("insufficient funds");
    return txn.Put(key, std::to_string(balance));
  });
}

// The saga's data is "from to amount". Step 0 debits, step 1 credits; each compensation undoes
// its own step. A refusal (insufficient funds) compensates in reverse; a timeout is retried.
StepFunction Transfer(LocalStore& bank, bool credit, bool compensate) {
  return [&bank, credit, compensate](const StepCall& call) {
    std::istringstream in{std::string(call.data)};
    std::string from, to;
    int64_t amount = 0;
    in >> from >> to >> amount;
    return AddToBalance(bank, call, credit ? to : from, credit ? amount : -amount, compensate);
  };
}

Result<std::unique_ptr<Orchestrator>> StartOrchestrator(SagaLog& log, Clock& clock,
                                                        LocalStore& bank) {
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Orchestrator> orchestrator, Orchestrator::Create(log, clock));
  FL_RETURN_IF_ERROR(orchestrator->Register(
      {"transfer",
       {{"debit", Transfer(bank, false, false), Transfer(bank, false, true)},
        {"credit", Transfer(bank, true, false), Transfer(bank, true, true)}}}));
  // Resume every saga a crash interrupted; bad ones are parked, never retried in a loop.
  FL_RETURN_IF_ERROR(orchestrator->RecoverAll().status());
  return orchestrator;
}
// [readme-saga-example]

namespace {

int64_t Balance(LocalStore& store, const std::string& account) {
  std::unique_ptr<Transaction> txn = store.Begin().value();
  std::optional<std::string> v = txn->Get("balance/" + account).value();
  txn->Rollback();
  return v ? std::stoll(*v) : 0;
}

TEST(SagaReadmeExample, TransferCompletesAndAnOverdraftIsCompensated) {
  Rng rng(1);
  sim::SimDisk disk(&rng);
  std::unique_ptr<LogStore> store = LogStore::Open(disk).value();
  ManualClock clock;
  ASSERT_TRUE(
      RunInTransaction(*store, [](Transaction& t) { return t.Put("balance/alice", "150"); }).ok());
  std::unique_ptr<SagaLog> log = SagaLog::Create(*store, clock).value();
  std::unique_ptr<Orchestrator> orchestrator = StartOrchestrator(*log, clock, *store).value();

  EXPECT_EQ(orchestrator->Run("transfer", "t1", "alice bob 100").value(), SagaOutcome::kDone);
  EXPECT_EQ(Balance(*store, "alice"), 50);
  EXPECT_EQ(Balance(*store, "bob"), 100);
  // Alice cannot pay 100 more: the debit is refused and compensated; nothing moves.
  EXPECT_EQ(orchestrator->Run("transfer", "t2", "alice bob 100").value(),
            SagaOutcome::kCompensated);
  EXPECT_EQ(Balance(*store, "alice"), 50);
  EXPECT_EQ(Balance(*store, "bob"), 100);
  // Money flows back the same way.
  EXPECT_EQ(orchestrator->Run("transfer", "t3", "bob alice 30").value(), SagaOutcome::kDone);
  EXPECT_EQ(Balance(*store, "alice"), 80);
  EXPECT_EQ(Balance(*store, "bob"), 70);

  // A crash after the debit was sent: a new orchestrator finishes the transfer at startup.
  ASSERT_TRUE(log->Start("transfer", "t4", 2, "alice bob 10").ok());
  ASSERT_EQ(log->Next("t4").value().kind, Action::kForward);  // armed; the call may have run
  orchestrator.reset();
  orchestrator = StartOrchestrator(*log, clock, *store).value();
  EXPECT_EQ(log->Get("t4").value().phase, Phase::kDone);
  EXPECT_EQ(Balance(*store, "alice"), 70);
  EXPECT_EQ(Balance(*store, "bob"), 80);
}

}  // namespace
