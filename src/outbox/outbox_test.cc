#include "faultline/outbox/outbox.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "faultline/outbox/relay.h"
#include "src/outbox/test_util.h"

namespace faultline::outbox {
namespace {

using testing::Event;
using testing::Must;
using testing::MustOk;
using testing::SimStoreEnv;

TEST(OutboxTest, AppendInsideTheCallersTransactionCommitsWithItsState) {
  SimStoreEnv env;
  auto outbox = Must(Outbox::Create(*env.store));
  std::unique_ptr<Transaction> txn = Must(env.store->Begin());
  MustOk(txn->Put("order/1", "created"));
  EXPECT_EQ(Must(outbox->Append(*txn, Event("e1", "order-1"))), 1u);
  EXPECT_EQ(Must(outbox->Append(*txn, Event("e2", "order-1"))), 2u);
  MustOk(txn->Commit());
  EXPECT_EQ(Must(outbox->AppendOne(Event("e3", "order-2"))), 3u);

  auto relay = Must(Relay::Create(*env.store));
  std::vector<OutboxRecord> records = Must(relay->Poll(10));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0], (OutboxRecord{1, Event("e1", "order-1")}));
  EXPECT_EQ(records[1], (OutboxRecord{2, Event("e2", "order-1")}));
  EXPECT_EQ(records[2], (OutboxRecord{3, Event("e3", "order-2")}));
}

// A rolled-back transaction leaves no event behind and consumes no seq (its counter write is
// rolled back with it): committed seqs stay dense.
TEST(OutboxTest, RolledBackAppendLeavesNothingAndTakesNoSeq) {
  SimStoreEnv env;
  auto outbox = Must(Outbox::Create(*env.store));
  EXPECT_EQ(Must(outbox->AppendOne(Event("e1", "k"))), 1u);
  std::unique_ptr<Transaction> txn = Must(env.store->Begin());
  EXPECT_EQ(Must(outbox->Append(*txn, Event("phantom", "k"))), 2u);
  txn->Rollback();
  EXPECT_EQ(Must(outbox->AppendOne(Event("e2", "k"))), 2u);
  auto relay = Must(Relay::Create(*env.store));
  std::vector<OutboxRecord> records = Must(relay->Poll(10));
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].message.id, "e1");
  EXPECT_EQ(records[1].message.id, "e2");
}

// S4 over LocalStore: A and B both append; whichever commits second read a counter the first one
// wrote, so it cannot commit with it: B commits seq 1 first, A's Commit is kAborted, and A's retry
// takes seq 2. "A holds 10 while B commits 11" cannot happen.
TEST(OutboxTest, ConcurrentAppendersCannotCommitOutOfSeqOrder) {
  SimStoreEnv env;
  auto outbox = Must(Outbox::Create(*env.store));
  std::unique_ptr<Transaction> a = Must(env.store->Begin());
  std::unique_ptr<Transaction> b = Must(env.store->Begin());
  EXPECT_EQ(Must(outbox->Append(*a, Event("a", "k"))), 1u);
  EXPECT_EQ(Must(outbox->Append(*b, Event("b", "k"))), 1u);
  MustOk(b->Commit());
  EXPECT_EQ(a->Commit().code(), StatusCode::kAborted);
  a = Must(env.store->Begin());
  EXPECT_EQ(Must(outbox->Append(*a, Event("a", "k"))), 2u);
  MustOk(a->Commit());
  auto relay = Must(Relay::Create(*env.store));
  std::vector<OutboxRecord> records = Must(relay->Poll(10));
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].message.id, "b");
  EXPECT_EQ(records[1].message.id, "a");
}

TEST(OutboxTest, BadEventsAreRefusedAndWriteNothing) {
  SimStoreEnv env;
  OutboxOptions options;
  options.payload_bytes_max = 100;
  auto outbox = Must(Outbox::Create(*env.store, options));
  MustOk(outbox->AppendOne(Event("e1", "k")).status());
  const auto before = env.Dump();
  std::unique_ptr<Transaction> txn = Must(env.store->Begin());
  const Status big = outbox->Append(*txn, Event("e2", "k", std::string(101, 'x'))).status();
  EXPECT_EQ(big.code(), StatusCode::kInvalidArgument) << big.ToString();
  EXPECT_NE(big.message().find("over the limit of 100"), std::string_view::npos);
  EXPECT_EQ(outbox->Append(*txn, Event("", "k")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(outbox->Append(*txn, Event(std::string(256, 'i'), "k")).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(outbox->Append(*txn, Message{"e3", "", "k", "p"}).status().code(),
            StatusCode::kInvalidArgument);
  MustOk(txn->Commit());
  EXPECT_EQ(env.Dump(), before);
  EXPECT_EQ(outbox->AppendOne(Event("e4", "k", std::string(101, 'x'))).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(env.Dump(), before);
  EXPECT_EQ(Outbox::Create(*env.store, OutboxOptions{.prefix = ""}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(OutboxTest, CommittedEventsSurvivePowerLoss) {
  SimStoreEnv env;
  auto outbox = Must(Outbox::Create(*env.store));
  for (int i = 0; i < 20; ++i)
    MustOk(outbox->AppendOne(Event("e" + std::to_string(i), "k")).status());
  std::unique_ptr<Transaction> open = Must(env.store->Begin());
  MustOk(outbox->Append(*open, Event("uncommitted", "k")).status());
  open.reset();
  env.CrashAndReopen();
  outbox = Must(Outbox::Create(*env.store));
  EXPECT_EQ(Must(outbox->AppendOne(Event("after", "k"))), 21u);
  auto relay = Must(Relay::Create(*env.store));
  std::vector<OutboxRecord> records = Must(relay->Poll(100));
  ASSERT_EQ(records.size(), 21u);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(records[i].message.id, "e" + std::to_string(i));
  EXPECT_EQ(records[20].message.id, "after");
}

TEST(OutboxTest, CorruptRecordsAndCountersAreDataLoss) {
  SimStoreEnv env;
  auto outbox = Must(Outbox::Create(*env.store));
  MustOk(outbox->AppendOne(Event("e1", "k")).status());
  MustOk(RunInTransaction(*env.store, [](Transaction& txn) {
    return txn.Put(internal::RecordKey("outbox/", 1), std::string("\x01\x05"
                                                                  "ab"));
  }));
  auto relay = Must(Relay::Create(*env.store));
  EXPECT_EQ(relay->Poll(10).status().code(), StatusCode::kDataLoss);
  MustOk(RunInTransaction(
      *env.store, [](Transaction& txn) { return txn.Put(internal::CounterKey("outbox/"), "7"); }));
  EXPECT_EQ(outbox->AppendOne(Event("e2", "k")).status().code(), StatusCode::kDataLoss);
}

TEST(OutboxTest, KeyHashIsStableAndFitsASignedBigint) {
  EXPECT_EQ(internal::KeyHash(""), 14695981039346656037ull & ~(uint64_t{1} << 63));
  EXPECT_EQ(internal::KeyHash("order-1"), internal::KeyHash(std::string("order-1")));
  for (int i = 0; i < 1000; ++i) {
    EXPECT_LT(internal::KeyHash("k" + std::to_string(i)), uint64_t{1} << 63);
  }
}

}  // namespace
}  // namespace faultline::outbox
