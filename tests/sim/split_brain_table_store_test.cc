// split-brain's store over a LocalStore table (MakeTableStoreNode), in the simulator on a
// LogStore: the record says what the table's transactions decided, the fence is checked in the
// write's own transaction, a duplicate is answered alike and recorded once, a tampered row is
// refused without a record. `faultline chaos split-brain --store postgresql` runs the same node
// on PostgreSQL (tests/chaos_test.sh).
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/sim/world.h"
#include "faultline/store/log_store.h"
#include "src/lab/split_brain.h"

namespace faultline::lab::split_brain {
namespace {

constexpr NodeId kClient(0);
constexpr NodeId kStore(1);

struct Reply {
  StatusCode code = StatusCode::kOk;
  uint64_t seq = 0;
  uint32_t cells = 0;
};

// Node 0: sends the calls it is given, one at a time, and keeps the replies.
class Caller : public Node {
 public:
  explicit Caller(Env& env) : env_(env), rpc_(env) {}
  Task<void> Write(uint64_t token, uint64_t id, uint32_t key, uint64_t value, Reply* out) {
    Bytes body;
    ByteWriter w(&body);
    w.U64(token);
    w.U64(id);
    w.U32(key);
    w.U64(value);
    Result<Bytes> r = co_await rpc_.Call(kStore, kMethodStoreWrite, body, Duration::Seconds(1));
    out->code = r.ok() ? StatusCode::kOk : r.status().code();
    if (r.ok()) ByteReader(*r).U64(&out->seq).IgnoreError();
  }
  Task<void> Load(uint64_t token, Reply* out) {
    Bytes body;
    ByteWriter(&body).U64(token);
    Result<Bytes> r = co_await rpc_.Call(kStore, kMethodStoreLoad, body, Duration::Seconds(1));
    out->code = r.ok() ? StatusCode::kOk : r.status().code();
    if (r.ok()) ByteReader(*r).U32(&out->cells).IgnoreError();
  }
  Env& env() { return env_; }

 private:
  Env& env_;
  Rpc rpc_;
};

class TableStoreTest : public ::testing::Test {
 protected:
  TableStoreTest() : world_(1, sim::WorldOptions::Nodes(2)) {
    world_.Boot(kClient, [this](Env& env) {
      auto caller = std::make_unique<Caller>(env);
      caller_ = caller.get();
      return caller;
    });
    world_.Boot(kStore, [this](Env& env) {
      table_ = LogStore::Open(env.disk(), LogStoreOptions{}).value();
      return MakeTableStoreNode(env, &world_, &record_, /*fenced=*/true, *table_);
    });
    world_.RunFor(Duration::Millis(10));
  }

  Reply Write(uint64_t token, uint64_t id, uint32_t key, uint64_t value) {
    Reply reply;
    caller_->env().Spawn(caller_->Write(token, id, key, value, &reply));
    world_.RunFor(Duration::Millis(200));
    return reply;
  }
  Reply Load(uint64_t token) {
    Reply reply;
    caller_->env().Spawn(caller_->Load(token, &reply));
    world_.RunFor(Duration::Millis(200));
    return reply;
  }
  std::vector<StoreOp> Ops() const {
    std::vector<StoreOp> ops;
    for (const Observation& o : record_.observations) {
      if (const auto* op = std::get_if<StoreOp>(&o)) ops.push_back(*op);
    }
    return ops;
  }

  sim::World world_;
  Caller* caller_ = nullptr;
  std::unique_ptr<LogStore> table_;
  Record record_;
};

TEST_F(TableStoreTest, RecordsWhatTheTransactionsDecided) {
  const Reply first = Write(/*token=*/5, /*id=*/1, /*key=*/0, /*value=*/10);
  ASSERT_EQ(first.code, StatusCode::kOk);
  EXPECT_EQ(first.seq, 1u);
  const Reply load = Load(7);  // a new holder raises the mark in the load's transaction
  ASSERT_EQ(load.code, StatusCode::kOk);
  EXPECT_EQ(load.cells, 1u);
  EXPECT_EQ(Write(5, 2, 1, 11).code, StatusCode::kFencedOut);  // the deposed holder: refused
  const Reply second = Write(7, 3, 1, 12);
  ASSERT_EQ(second.code, StatusCode::kOk);
  EXPECT_EQ(second.seq, 2u);  // the refused write took no sequence number

  const std::vector<StoreOp> ops = Ops();
  ASSERT_EQ(ops.size(), 4u);
  EXPECT_TRUE(ops[0].accepted && !ops[0].load && ops[0].token == 5 && ops[0].seq == 1);
  EXPECT_TRUE(ops[1].accepted && ops[1].load && ops[1].token == 7);
  EXPECT_TRUE(!ops[2].accepted && ops[2].token == 5 && ops[2].key == 1);
  EXPECT_TRUE(ops[3].accepted && ops[3].token == 7 && ops[3].seq == 2);
}

TEST_F(TableStoreTest, DuplicateAnsweredAlikeAndRecordedOnce) {
  EXPECT_EQ(Write(5, 1, 0, 10).seq, 1u);
  const Reply again = Write(5, 1, 0, 10);
  EXPECT_EQ(again.code, StatusCode::kOk);
  EXPECT_EQ(again.seq, 1u);
  EXPECT_EQ(Ops().size(), 1u);
}

TEST_F(TableStoreTest, TamperedSequenceRowRefusedWithoutRecord) {
  EXPECT_EQ(Write(5, 1, 0, 10).code, StatusCode::kOk);
  ASSERT_TRUE(RunInTransaction(*table_, [](Transaction& txn) { return txn.Put("seq", "x1"); }).ok());
  EXPECT_EQ(Write(5, 2, 0, 11).code, StatusCode::kDataLoss);
  EXPECT_EQ(Ops().size(), 1u);  // nothing decided, nothing recorded
}

}  // namespace
}  // namespace faultline::lab::split_brain
