#include "faultline/idempotency/inbox.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "src/idempotency/test_util.h"

namespace faultline::idempotency {
namespace {

using testing::Must;
using testing::MustOk;
using testing::SimStoreEnv;

Status Credit(Transaction& txn) {
  FL_ASSIGN_OR_RETURN(std::optional<std::string> v, txn.Get("balance"));
  return txn.Put("balance", std::to_string((v ? std::stoi(*v) : 0) + 10));
}

TEST(InboxTest, DuplicateDeliveriesApplyTheEffectsOnce) {
  SimStoreEnv env;
  auto inbox = Must(Inbox::Create(*env.store, env.clock, "billing"));
  EXPECT_TRUE(Must(inbox->Process("msg-1", Credit)));
  EXPECT_FALSE(Must(inbox->Process("msg-1", Credit)));
  env.CrashAndReopen();  // the record is as durable as the effects
  inbox = Must(Inbox::Create(*env.store, env.clock, "billing"));
  EXPECT_FALSE(Must(inbox->Process("msg-1", Credit)));
  EXPECT_TRUE(Must(inbox->Process("msg-2", Credit)));
  EXPECT_EQ(env.Dump().at("balance"), "20");
  // Another consumer has its own record of the same message.
  auto audit = Must(Inbox::Create(*env.store, env.clock, "audit"));
  EXPECT_TRUE(Must(audit->Process("msg-1", [](Transaction&) { return Status::Ok(); })));
}

TEST(InboxTest, ProcessReportsFirstDeliveriesAndDuplicatesAfterCommit) {
  SimStoreEnv env;
  auto inbox = Must(Inbox::Create(*env.store, env.clock, "billing"));
  struct Decisions final : Observer {
    void OnEvent(const Event& e) noexcept override { kinds.push_back(e.kind); }
    std::vector<EventKind> kinds;
  } decisions;
  inbox->observe().Attach(&decisions, "billing");
  EXPECT_TRUE(Must(inbox->Process("msg-1", Credit)));
  EXPECT_FALSE(Must(inbox->Process("msg-1", Credit)));
  // Failed effects roll the record back: nothing was decided, nothing is reported.
  EXPECT_FALSE(inbox->Process("msg-2", [](Transaction&) { return UnavailableError("x"); }).ok());
  EXPECT_TRUE(Must(inbox->Process("msg-2", Credit)));
  const std::vector<EventKind> want = {EventKind::kIdempotencyClaimed,
                                       EventKind::kIdempotencyReplayed,
                                       EventKind::kIdempotencyClaimed};
  EXPECT_EQ(decisions.kinds, want);
}

TEST(InboxTest, FailedEffectsRollBackTheRecordSoRedeliveryRetries) {
  // The eventuate-tram-core PR #145 lesson: record and effects in one transaction.
  SimStoreEnv env;
  auto inbox = Must(Inbox::Create(*env.store, env.clock, "billing"));
  const Result<bool> failed = inbox->Process("msg-1", [](Transaction& txn) -> Status {
    FL_RETURN_IF_ERROR(Credit(txn));
    return UnavailableError("downstream table locked");
  });
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(env.Dump().empty());
  EXPECT_TRUE(Must(inbox->Process("msg-1", Credit)));
  EXPECT_EQ(env.Dump().at("balance"), "10");
}

TEST(InboxTest, RecordInTheCallersTransactionRollsBackWithIt) {
  SimStoreEnv env;
  auto inbox = Must(Inbox::Create(*env.store, env.clock, "billing"));
  {
    std::unique_ptr<Transaction> txn = Must(env.store->Begin());
    EXPECT_TRUE(Must(inbox->Record(*txn, "msg-1")));
    EXPECT_FALSE(Must(inbox->Record(*txn, "msg-1")));  // sees its own write
    txn->Rollback();
  }
  EXPECT_TRUE(env.Dump().empty());
  std::unique_ptr<Transaction> txn = Must(env.store->Begin());
  EXPECT_TRUE(Must(inbox->Record(*txn, "msg-1")));
  MustOk(txn->Commit());
}

TEST(InboxTest, RacingConsumersCommitExactlyOnce) {
  // S1: the broker redelivers to consumer B while A is still inside its handler. Both record the
  // message in their own transaction; serializability lets exactly one commit.
  SimStoreEnv env;
  auto inbox = Must(Inbox::Create(*env.store, env.clock, "billing"));
  std::unique_ptr<Transaction> a = Must(env.store->Begin());
  std::unique_ptr<Transaction> b = Must(env.store->Begin());
  EXPECT_TRUE(Must(inbox->Record(*a, "msg-1")));
  MustOk(Credit(*a));
  EXPECT_TRUE(Must(inbox->Record(*b, "msg-1")));
  MustOk(Credit(*b));
  MustOk(a->Commit());
  EXPECT_EQ(b->Commit().code(), StatusCode::kAborted);
  // B's retry (what RunInTransaction does) sees the duplicate.
  EXPECT_FALSE(Must(inbox->Process("msg-1", Credit)));
  EXPECT_EQ(env.Dump().at("balance"), "10");
}

TEST(InboxTest, ExpireDeletesOldRecordsInBatchesAndOnlyThisConsumers) {
  SimStoreEnv env;
  InboxOptions options;
  options.retention = Duration::Seconds(60);
  options.expire_batch_max = 2;
  auto inbox = Must(Inbox::Create(*env.store, env.clock, "billing", options));
  auto other = Must(Inbox::Create(*env.store, env.clock, "audit", options));
  auto noop = [](Transaction&) { return Status::Ok(); };
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(Must(inbox->Process("m" + std::to_string(i), noop)));
  EXPECT_TRUE(Must(other->Process("m0", noop)));
  env.clock.Advance(Duration::Seconds(30));
  EXPECT_TRUE(Must(inbox->Process("late", noop)));
  env.clock.Advance(Duration::Seconds(30) - Duration::Nanos(1));
  EXPECT_EQ(Must(inbox->Expire()), 0u);
  env.clock.Advance(Duration::Nanos(1));  // exactly at retention
  EXPECT_EQ(Must(inbox->Expire()), 2u);
  EXPECT_EQ(Must(inbox->Expire()), 2u);
  EXPECT_EQ(Must(inbox->Expire()), 1u);
  EXPECT_EQ(Must(inbox->Expire()), 0u);
  // The expired message would now be applied again (the documented horizon); "late" is not.
  EXPECT_TRUE(Must(inbox->Process("m0", noop)));
  EXPECT_FALSE(Must(inbox->Process("late", noop)));
  EXPECT_FALSE(Must(other->Process("m0", noop)));  // audit's record was not touched
  EXPECT_EQ(Must(other->Expire()), 1u);
}

TEST(InboxTest, BadInputIsInvalidArgument) {
  SimStoreEnv env;
  EXPECT_EQ(Inbox::Create(*env.store, env.clock, "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Inbox::Create(*env.store, env.clock, std::string(256, 'c')).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Inbox::Create(*env.store, env.clock, std::string("a\0b", 3)).status().code(),
            StatusCode::kInvalidArgument);
  InboxOptions bad;
  bad.expire_batch_max = 0;
  const Status invalid = Inbox::Create(*env.store, env.clock, "c", bad).status();
  EXPECT_NE(invalid.message().find("expire_batch_max"), std::string_view::npos);
  auto inbox = Must(Inbox::Create(*env.store, env.clock, "billing"));
  auto noop = [](Transaction&) { return Status::Ok(); };
  EXPECT_EQ(inbox->Process("", noop).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(inbox->Process(std::string(256, 'm'), noop).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(env.Dump().empty());
  // Message ids are opaque bytes: binary ids are fine.
  EXPECT_TRUE(Must(inbox->Process(std::string("\0\xff", 2), noop)));
  EXPECT_EQ(Must(inbox->Process(std::string(255, 'm'), noop)), true);
}

}  // namespace
}  // namespace faultline::idempotency
