// ParticipantGuard's tombstone rule and SemanticLocks' contention and handover.
#include "faultline/saga/participant.h"

#include <gtest/gtest.h>

#include "faultline/saga/saga_log.h"
#include "src/saga/test_util.h"

namespace faultline::saga {
namespace {

using testing::Must;
using testing::MustOk;
using testing::SimStoreEnv;

template <typename F>
auto InTxn(LocalStore& store, F&& body) {
  std::unique_ptr<Transaction> txn = Must(store.Begin());
  auto result = body(*txn);
  MustOk(txn->Commit());
  return result;
}

TEST(ParticipantGuard, ForwardAppliesOnceAndDuplicatesAreAnsweredWithoutApplying) {
  SimStoreEnv env;
  ParticipantGuard guard;
  auto fwd = [&](Transaction& t) { return Must(guard.ApplyForward(t, "s#0")); };
  auto comp = [&](Transaction& t) { return Must(guard.ApplyCompensation(t, "s#0")); };
  EXPECT_EQ(InTxn(*env.store, fwd), GuardVerdict::kApply);
  EXPECT_EQ(InTxn(*env.store, fwd), GuardVerdict::kDuplicate);
  EXPECT_EQ(InTxn(*env.store, comp), GuardVerdict::kApply);
  EXPECT_EQ(InTxn(*env.store, comp), GuardVerdict::kDuplicate);
  // The forward, retried after its compensation, is refused: never applied twice net.
  EXPECT_EQ(InTxn(*env.store, fwd), GuardVerdict::kRefused);
}

TEST(ParticipantGuard, CompensationBeforeForwardLeavesATombstoneThatRefusesTheLateForward) {
  SimStoreEnv env;
  ParticipantGuard guard;
  EXPECT_EQ(
      InTxn(*env.store, [&](Transaction& t) { return Must(guard.ApplyCompensation(t, "s#1")); }),
      GuardVerdict::kTombstone);
  EXPECT_EQ(InTxn(*env.store, [&](Transaction& t) { return Must(guard.ApplyForward(t, "s#1")); }),
            GuardVerdict::kRefused);
  // Survives a crash: the tombstone is durable with the transaction that wrote it.
  env.CrashAndReopen();
  EXPECT_EQ(InTxn(*env.store, [&](Transaction& t) { return Must(guard.ApplyForward(t, "s#1")); }),
            GuardVerdict::kRefused);
}

TEST(ParticipantGuard, ACorruptRecordIsDataLoss) {
  SimStoreEnv env;
  ParticipantGuard guard;
  MustOk(RunInTransaction(*env.store, [](Transaction& t) { return t.Put("saga-guard/s#0", "X"); }));
  std::unique_ptr<Transaction> txn = Must(env.store->Begin());
  EXPECT_EQ(guard.ApplyForward(*txn, "s#0").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(guard.ApplyForward(*txn, "").status().code(), StatusCode::kInvalidArgument);
}

TEST(SemanticLocks, SecondClaimantWaitsAndReleaseHandsTheLockToTheFirstWaiter) {
  SimStoreEnv env;
  SemanticLocks locks = Must(SemanticLocks::Create());
  auto claim = [&](const char* saga) {
    return InTxn(*env.store, [&](Transaction& t) { return Must(locks.Claim(t, "acct-1", saga)); });
  };
  auto release = [&](const char* saga) {
    return InTxn(*env.store,
                 [&](Transaction& t) { return Must(locks.Release(t, "acct-1", saga)); });
  };
  auto owner = [&] {
    return InTxn(*env.store, [&](Transaction& t) { return Must(locks.Owner(t, "acct-1")); });
  };
  EXPECT_TRUE(claim("A"));
  EXPECT_TRUE(claim("A"));   // idempotent
  EXPECT_FALSE(claim("B"));  // queued
  EXPECT_FALSE(claim("C"));
  EXPECT_FALSE(claim("B"));  // queued once
  EXPECT_EQ(InTxn(*env.store, [&](Transaction& t) { return Must(locks.Waiters(t, "acct-1")); }),
            (std::vector<std::string>{"B", "C"}));
  EXPECT_EQ(release("A"), std::optional<std::string>("B"));
  EXPECT_EQ(owner(), std::optional<std::string>("B"));
  EXPECT_TRUE(claim("B"));                // the handed-over saga's retry finds it holds the lock
  EXPECT_FALSE(claim("A"));               // A comes back: queued behind C
  EXPECT_EQ(release("C"), std::nullopt);  // C gives up (compensates): leaves the queue
  EXPECT_EQ(release("B"), std::optional<std::string>("A"));
  EXPECT_EQ(release("A"), std::nullopt);
  EXPECT_EQ(owner(), std::nullopt);
  EXPECT_EQ(release("A"), std::nullopt);  // a retried release of a free lock is ok
}

TEST(SemanticLocks, QueueOverTheLimitIsResourceExhausted) {
  SimStoreEnv env;
  SemanticLockOptions options;
  options.waiters_max = 2;
  SemanticLocks locks = Must(SemanticLocks::Create(options));
  std::unique_ptr<Transaction> txn = Must(env.store->Begin());
  EXPECT_TRUE(Must(locks.Claim(*txn, "k", "A")));
  EXPECT_FALSE(Must(locks.Claim(*txn, "k", "B")));
  EXPECT_FALSE(Must(locks.Claim(*txn, "k", "C")));
  EXPECT_EQ(locks.Claim(*txn, "k", "D").status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(locks.Claim(*txn, "k\x01", "D").status().code(), StatusCode::kInvalidArgument);
  options.waiters_max = 0;
  EXPECT_EQ(SemanticLocks::Create(options).status().code(), StatusCode::kInvalidArgument);
}

// The intended use with a saga: a forward that finds the record claimed reports kUnavailable (an
// unknown outcome), so SagaLog retries it after a backoff; the holder's last step releases, which
// hands the lock over, and the waiter's retry then finds it holds the lock and proceeds.
TEST(SemanticLocks, ASagaWaitingForALockIsRetriedUntilTheHolderHandsItOver) {
  SimStoreEnv env;
  SemanticLocks locks = Must(SemanticLocks::Create());
  SagaOptions options;
  options.retry_backoff.delay_initial = Duration::Millis(10);
  options.retry_backoff.jitter = Jitter::kNone;
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*env.store, env.clock, options));
  // Step 0 claims "acct-1" and writes; step 1 releases it.
  auto forward = [&](const std::string& saga, uint32_t step) -> Status {
    return RunInTransaction(*env.store, [&](Transaction& txn) -> Status {
      if (step == 1) return locks.Release(txn, "acct-1", saga).status();
      FL_ASSIGN_OR_RETURN(bool held, locks.Claim(txn, "acct-1", saga));
      if (!held) return UnavailableError("acct-1 is claimed by another saga");
      return txn.Put("acct-1", saga);
    });
  };
  auto run_one = [&](const std::string& saga) {
    const Action a = Must(log->Next(saga));
    if (a.kind != Action::kForward) return a.kind;
    MustOk(log->RecordForward(saga, a.step, forward(saga, a.step)));
    return a.kind;
  };
  MustOk(log->Start("transfer", "A", 2, ""));
  MustOk(log->Start("transfer", "B", 2, ""));
  EXPECT_EQ(run_one("A"), Action::kForward);  // A holds acct-1
  EXPECT_EQ(run_one("B"), Action::kForward);  // B is queued, its step 0 to be retried
  EXPECT_EQ(run_one("B"), Action::kWait);
  env.clock.Advance(Duration::Millis(10));
  EXPECT_EQ(run_one("B"), Action::kForward);  // still held by A: queued once, retried later
  EXPECT_EQ(Must(log->Get("B")).attempts, 2u);
  EXPECT_EQ(run_one("A"), Action::kForward);  // A releases: handed over to B
  EXPECT_EQ(run_one("A"), Action::kDone);
  env.clock.Advance(Duration::Millis(20));
  EXPECT_EQ(run_one("B"), Action::kForward);  // B's retry finds it holds the lock
  EXPECT_EQ(Must(log->Get("B")).cursor, 1u);
  EXPECT_EQ(run_one("B"), Action::kForward);
  EXPECT_EQ(run_one("B"), Action::kDone);
  std::unique_ptr<Transaction> txn = Must(env.store->Begin());
  EXPECT_EQ(Must(txn->Get("acct-1")), std::optional<std::string>("B"));
  EXPECT_EQ(Must(locks.Owner(*txn, "acct-1")), std::nullopt);
}

}  // namespace
}  // namespace faultline::saga
