// One behavioural contract, three stores: every test here runs against LogStore (simulated
// disk), SqliteStore and PostgresStore (a real server), so that code written against LocalStore
// (idempotency keys, fencing marks, outbox rows) behaves the same on each.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/store/store_harness.h"

namespace faultline::testing {
namespace {

using Model = std::map<std::string, std::string>;

class StoreConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<StoreHarness>> harness = MakeStoreHarness(GetParam());
    ASSERT_TRUE(harness.ok()) << GetParam() << ": " << harness.status().ToString();
    harness_ = std::move(harness).value();
    Reopen();
  }
  void TearDown() override { store_.reset(); }

  void Reopen() {
    store_.reset();
    Result<std::unique_ptr<LocalStore>> store = harness_->Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  std::unique_ptr<Transaction> Begin() {
    Result<std::unique_ptr<Transaction>> txn = store_->Begin();
    EXPECT_TRUE(txn.ok()) << txn.status().ToString();
    return txn.ok() ? std::move(txn).value() : nullptr;
  }

  // Commits the writes (nullopt: delete) in one transaction.
  void Apply(const std::map<std::string, std::optional<std::string>>& writes) {
    ASSERT_TRUE(RunInTransaction(*store_, [&](Transaction& txn) -> Status {
                  for (const auto& [key, value] : writes) {
                    if (value) {
                      FL_RETURN_IF_ERROR(txn.Put(key, *value));
                    } else {
                      FL_RETURN_IF_ERROR(txn.Delete(key).status());
                    }
                  }
                  return Status::Ok();
                }).ok());
  }

  Model Dump() {
    std::unique_ptr<Transaction> txn = Begin();
    Model model;
    Result<std::vector<KeyValue>> all = txn->Scan("", "", harness_->scan_limit_max());
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    if (all.ok()) {
      for (KeyValue& kv : *all) model.emplace(std::move(kv.key), std::move(kv.value));
    }
    txn->Rollback();
    return model;
  }

  std::optional<std::string> Read(const std::string& key) {
    std::unique_ptr<Transaction> txn = Begin();
    Result<std::optional<std::string>> value = txn->Get(key);
    EXPECT_TRUE(value.ok()) << value.status().ToString();
    txn->Rollback();
    return value.ok() ? *value : std::nullopt;
  }

  std::unique_ptr<StoreHarness> harness_;
  std::unique_ptr<LocalStore> store_;
};

template <typename T>
T Must(Result<T> result) {
  FL_ASSERT_MSG(result.ok(), result.status().ToString().c_str());
  return std::move(result).value();
}

TEST_P(StoreConformanceTest, PutGetOverwriteDelete) {
  // The basic contract: values round-trip (binary and empty ones too), Put overwrites, Delete
  // reports whether the key existed, and all of it is visible after commit.
  const std::string binary("\x00\xff\x01 bin", 7);
  {
    std::unique_ptr<Transaction> txn = Begin();
    EXPECT_EQ(Must(txn->Get("a")), std::nullopt);
    ASSERT_TRUE(txn->Put("a", "1").ok());
    ASSERT_TRUE(txn->Put("a", "2").ok());
    ASSERT_TRUE(txn->Put(binary, binary).ok());
    ASSERT_TRUE(txn->Put("empty", "").ok());
    ASSERT_TRUE(txn->Put("gone", "x").ok());
    EXPECT_TRUE(Must(txn->Delete("gone")));
    EXPECT_FALSE(Must(txn->Delete("never")));
    ASSERT_TRUE(txn->Commit().ok());
  }
  EXPECT_EQ(Read("a"), "2");
  EXPECT_EQ(Read(binary), binary);
  EXPECT_EQ(Read("empty"), "");
  EXPECT_EQ(Read("gone"), std::nullopt);
  Apply({{"a", std::nullopt}});
  EXPECT_EQ(Read("a"), std::nullopt);
}

TEST_P(StoreConformanceTest, InsertIfAbsentWritesOnlyWhenAbsent) {
  // The idempotency-key primitive: true exactly once per key; the loser leaves the value alone.
  {
    std::unique_ptr<Transaction> txn = Begin();
    EXPECT_TRUE(Must(txn->InsertIfAbsent("k", "first")));
    EXPECT_FALSE(Must(txn->InsertIfAbsent("k", "second")));  // own write counts
    ASSERT_TRUE(txn->Commit().ok());
  }
  {
    std::unique_ptr<Transaction> txn = Begin();
    EXPECT_FALSE(Must(txn->InsertIfAbsent("k", "third")));
    EXPECT_TRUE(Must(txn->InsertIfAbsent("k2", "")));
    ASSERT_TRUE(txn->Commit().ok());
  }
  EXPECT_EQ(Read("k"), "first");
  EXPECT_EQ(Read("k2"), "");
}

TEST_P(StoreConformanceTest, CompareAndSetAllFourShapes) {
  // expected/desired each present or absent: insert-if-absent, update, delete-if-equal, and the
  // pure absence check. A mismatch changes nothing.
  std::unique_ptr<Transaction> txn = Begin();
  EXPECT_TRUE(Must(txn->CompareAndSet("c", std::nullopt, std::nullopt)));   // absent: true
  EXPECT_TRUE(Must(txn->CompareAndSet("c", std::nullopt, "v1")));           // insert
  EXPECT_FALSE(Must(txn->CompareAndSet("c", std::nullopt, "zz")));          // present now
  EXPECT_FALSE(Must(txn->CompareAndSet("c", std::nullopt, std::nullopt)));  // present: false
  EXPECT_FALSE(Must(txn->CompareAndSet("c", "wrong", "v2")));
  EXPECT_TRUE(Must(txn->CompareAndSet("c", "v1", "v2")));                   // update
  EXPECT_FALSE(Must(txn->CompareAndSet("c", "v1", std::nullopt)));
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(Read("c"), "v2");
  txn = Begin();
  EXPECT_FALSE(Must(txn->CompareAndSet("missing", "v", "w")));
  EXPECT_TRUE(Must(txn->CompareAndSet("c", "v2", std::nullopt)));           // delete
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(Read("c"), std::nullopt);
  EXPECT_EQ(Read("missing"), std::nullopt);
}

TEST_P(StoreConformanceTest, ScanIsMemcmpOrderedWithBoundsAndLimit) {
  // Keys order by unsigned bytes, shorter first on a common prefix (memcmp, then length): the
  // order LogStore's std::map gives, which SQLite BLOBs and PostgreSQL bytea must reproduce.
  const std::vector<std::string> keys = {std::string("\x00", 1), "a", std::string("a\x00", 2),
                                         "a\x01", "ab", "b", "\x7f", "\x80", "\xff",
                                         "\xff\xff"};
  std::map<std::string, std::optional<std::string>> writes;
  for (const std::string& k : keys) writes[k] = "v" + k;
  Apply(writes);
  std::unique_ptr<Transaction> txn = Begin();
  std::vector<KeyValue> all = Must(txn->Scan("", "", 100));
  ASSERT_EQ(all.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(all[i].key, keys[i]) << i;
  // [begin, end): begin included, end excluded.
  std::vector<KeyValue> mid = Must(txn->Scan("a", "b", 100));
  ASSERT_EQ(mid.size(), 4u);
  EXPECT_EQ(mid.front().key, "a");
  EXPECT_EQ(mid.back().key, "ab");
  EXPECT_EQ(mid.back().value, "vab");
  // Limit cuts in key order; an empty or inverted range reads nothing.
  std::vector<KeyValue> two = Must(txn->Scan("a", "", 2));
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[1].key, std::string("a\x00", 2));
  EXPECT_TRUE(Must(txn->Scan("b", "b", 10)).empty());
  EXPECT_TRUE(Must(txn->Scan("c", "b", 10)).empty());
  std::vector<KeyValue> high = Must(txn->Scan("\x80", "", 10));
  ASSERT_EQ(high.size(), 3u);
  EXPECT_EQ(high[0].key, "\x80");
  txn->Rollback();
}

TEST_P(StoreConformanceTest, ReadYourWritesInsideATransaction) {
  // Get, Scan, InsertIfAbsent and CompareAndSet all see the transaction's own uncommitted puts
  // and deletes, merged with committed state in key order.
  Apply({{"a", "1"}, {"b", "2"}, {"c", "3"}});
  std::unique_ptr<Transaction> txn = Begin();
  ASSERT_TRUE(txn->Put("bb", "new").ok());
  EXPECT_TRUE(Must(txn->Delete("b")));
  ASSERT_TRUE(txn->Put("a", "1x").ok());
  EXPECT_EQ(Must(txn->Get("bb")), "new");
  EXPECT_EQ(Must(txn->Get("b")), std::nullopt);
  const std::vector<KeyValue> expected = {{"a", "1x"}, {"bb", "new"}, {"c", "3"}};
  EXPECT_EQ(Must(txn->Scan("", "", 10)), expected);
  EXPECT_TRUE(Must(txn->InsertIfAbsent("b", "again")));
  EXPECT_TRUE(Must(txn->CompareAndSet("a", "1x", "1y")));
  EXPECT_EQ(Must(txn->Get("a")), "1y");
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(Dump(), (Model{{"a", "1y"}, {"b", "again"}, {"bb", "new"}, {"c", "3"}}));
}

TEST_P(StoreConformanceTest, RollbackAndDestroyDiscardEveryWrite) {
  Apply({{"keep", "1"}});
  {
    std::unique_ptr<Transaction> txn = Begin();
    ASSERT_TRUE(txn->Put("x", "1").ok());
    EXPECT_TRUE(Must(txn->Delete("keep")));
    txn->Rollback();
  }
  {
    std::unique_ptr<Transaction> txn = Begin();
    EXPECT_TRUE(Must(txn->InsertIfAbsent("y", "1")));
    // destroyed without Commit: rolled back
  }
  EXPECT_EQ(Dump(), (Model{{"keep", "1"}}));
}

TEST_P(StoreConformanceTest, FinishedTransactionIsFailedPrecondition) {
  std::unique_ptr<Transaction> txn = Begin();
  ASSERT_TRUE(txn->Put("a", "1").ok());
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(txn->Get("a").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(txn->Put("a", "2").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(txn->Commit().code(), StatusCode::kFailedPrecondition);
  txn->Rollback();  // no-op
  std::unique_ptr<Transaction> rolled = Begin();
  rolled->Rollback();
  EXPECT_EQ(rolled->Scan("", "", 1).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Read("a"), "1");
}

TEST_P(StoreConformanceTest, OversizedOrEmptyArgumentsAreInvalidAndWriteNothing) {
  // Limits are checked before anything reaches the engine; the transaction stays usable and a
  // commit after the refused calls writes only the valid ones.
  const std::string long_key(harness_->key_bytes_max() + 1, 'k');
  const std::string max_key(harness_->key_bytes_max(), 'm');
  const std::string long_value(harness_->value_bytes_max() + 1, 'v');
  std::unique_ptr<Transaction> txn = Begin();
  EXPECT_EQ(txn->Put("", "v").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->Put(long_key, "v").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->Put("k", long_value).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->InsertIfAbsent(long_key, "v").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->InsertIfAbsent("k", long_value).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->CompareAndSet("k", std::nullopt, long_value).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->Get(long_key).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->Delete("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->Scan("", "", 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->Scan("", "", harness_->scan_limit_max() + 1).status().code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(txn->Put(max_key, "at the limit").ok());
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(Dump(), (Model{{max_key, "at the limit"}}));
}

// Runs scripted steps of two transactions in order. A transaction whose step fails is rolled
// back and its later steps skipped; every failure must be kAborted. Returns which committed.
struct Step {
  int txn;
  std::function<Status(Transaction&)> op;  // Commit is a step too
};

std::vector<bool> RunScript(LocalStore& store, const std::vector<Step>& steps) {
  std::vector<std::unique_ptr<Transaction>> txns;
  for (int i = 0; i < 2; ++i) txns.push_back(Must(store.Begin()));
  std::vector<bool> alive = {true, true};
  std::vector<bool> committed = {false, false};
  for (const Step& step : steps) {
    const size_t t = static_cast<size_t>(step.txn);
    if (!alive[t]) continue;
    const Status status = step.op(*txns[t]);
    if (status.ok()) continue;
    EXPECT_EQ(status.code(), StatusCode::kAborted) << status.ToString();
    alive[t] = false;
    txns[t]->Rollback();
  }
  for (size_t t = 0; t < 2; ++t) committed[t] = alive[t];
  return committed;
}

Status Increment(Transaction& txn, const std::string& key, std::string* seen) {
  FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(key));
  *seen = value.value_or("0");
  return Status::Ok();
}

TEST_P(StoreConformanceTest, ConcurrentReadModifyWriteLosesNoUpdate) {
  // Two transactions read the same counter, then both write read+1. Serializability allows only
  // one of them to commit (else an increment is lost). Two orders: the second write after the
  // first commit, and before it (PostgreSQL waits on the row lock, then lock_timeout -> kAborted;
  // SQLite never lets the second transaction start while the first holds the write lock).
  for (const bool write_before_commit : {false, true}) {
    SCOPED_TRACE(write_before_commit ? "second write before first commit" : "after");
    Apply({{"n", "0"}});
    std::string seen[2];
    auto read = [&](int t) {
      return Step{t, [&, t](Transaction& txn) { return Increment(txn, "n", &seen[t]); }};
    };
    auto write = [&](int t) {
      return Step{t, [&, t](Transaction& txn) {
                    return txn.Put("n", std::to_string(std::stoi(seen[t]) + 1));
                  }};
    };
    auto commit = [](int t) { return Step{t, [](Transaction& txn) { return txn.Commit(); }}; };
    const std::vector<Step> steps =
        write_before_commit
            ? std::vector<Step>{read(0), read(1), write(0), write(1), commit(0), commit(1)}
            : std::vector<Step>{read(0), read(1), write(0), commit(0), write(1), commit(1)};
    const std::vector<bool> committed = RunScript(*store_, steps);
    EXPECT_EQ(committed[0] + committed[1], 1) << "exactly one increment may commit";
    EXPECT_EQ(Read("n"), "1");
  }
}

TEST_P(StoreConformanceTest, WriteSkewIsPrevented) {
  // The on-call invariant x + y >= 1: each transaction reads both, sees 2, and takes one off
  // duty. Under snapshot isolation both commit (x = y = 0); serializable must refuse one.
  Apply({{"x", "1"}, {"y", "1"}});
  auto check_and_clear = [](const std::string& mine) {
    return [mine](Transaction& txn) -> Status {
      FL_ASSIGN_OR_RETURN(std::optional<std::string> x, txn.Get("x"));
      FL_ASSIGN_OR_RETURN(std::optional<std::string> y, txn.Get("y"));
      if (std::stoi(x.value()) + std::stoi(y.value()) >= 2) return txn.Put(mine, "0");
      return Status::Ok();
    };
  };
  auto commit = [](Transaction& txn) { return txn.Commit(); };
  const std::vector<bool> committed = RunScript(
      *store_, {{0, check_and_clear("x")}, {1, check_and_clear("y")}, {0, commit}, {1, commit}});
  EXPECT_EQ(committed[0] + committed[1], 1);
  const int x = std::stoi(Read("x").value());
  const int y = std::stoi(Read("y").value());
  EXPECT_EQ(x + y, 1);
}

TEST_P(StoreConformanceTest, RunInTransactionRetriesAbortedAttempts) {
  // A body that fails kAborted is rolled back (its writes discarded) and run again; any other
  // error is returned at once without retry.
  int attempts = 0;
  ASSERT_TRUE(RunInTransaction(*store_, [&](Transaction& txn) -> Status {
                ++attempts;
                FL_RETURN_IF_ERROR(txn.Put("attempt-" + std::to_string(attempts), "x"));
                if (attempts < 3) return AbortedError("simulated conflict");
                return Status::Ok();
              }).ok());
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(Dump(), (Model{{"attempt-3", "x"}}));
  attempts = 0;
  const Status status = RunInTransaction(*store_, [&](Transaction&) {
    ++attempts;
    return UnavailableError("disk on fire");
  });
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(attempts, 1);
}

TEST_P(StoreConformanceTest, ThreadsIncrementingThroughRunInTransactionLoseNothing) {
  // Real contention: 4 threads x 15 read-modify-write increments of one counter, each retried by
  // RunInTransaction on kAborted. The final count is exact.
  Apply({{"counter", "0"}});
  constexpr int kThreads = 4;
  constexpr int kIncrements = 15;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        const Status status = RunInTransaction(
            *store_,
            [](Transaction& txn) -> Status {
              FL_ASSIGN_OR_RETURN(std::optional<std::string> v, txn.Get("counter"));
              return txn.Put("counter", std::to_string(std::stoi(v.value()) + 1));
            },
            64);
        if (!status.ok()) {
          ADD_FAILURE() << status.ToString();
          failures.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Read("counter"), std::to_string(kThreads * kIncrements));
}

TEST_P(StoreConformanceTest, ThreadsRacingInsertIfAbsentExactlyOneWins) {
  // The idempotency claim under a real race: 8 threads released together each try to claim the
  // same key. Exactly one sees true, and the stored value is that winner's.
  constexpr int kThreads = 8;
  for (int round = 0; round < 3; ++round) {
    const std::string key = "claim-" + std::to_string(round);
    std::barrier start(kThreads);
    std::atomic<int> winners{0};
    std::atomic<int> winner{-1};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        bool won = false;
        const Status status = RunInTransaction(
            *store_,
            [&](Transaction& txn) -> Status {
              FL_ASSIGN_OR_RETURN(won, txn.InsertIfAbsent(key, std::to_string(t)));
              return Status::Ok();
            },
            64);
        EXPECT_TRUE(status.ok()) << status.ToString();
        if (status.ok() && won) {
          winners.fetch_add(1);
          winner.store(t);
        }
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(winners.load(), 1) << key;
    EXPECT_EQ(Read(key), std::to_string(winner.load())) << key;
  }
}

TEST_P(StoreConformanceTest, CommittedStateSurvivesReopen) {
  // Durability across a clean close: everything committed is there after reopening the same
  // data; what was rolled back or left open is not.
  Apply({{"a", "1"}, {"b", std::string("\x00\x01", 2)}});
  {
    std::unique_ptr<Transaction> txn = Begin();
    ASSERT_TRUE(txn->Put("uncommitted", "x").ok());
    txn->Rollback();
  }
  Reopen();
  EXPECT_EQ(Dump(), (Model{{"a", "1"}, {"b", std::string("\x00\x01", 2)}}));
  Apply({{"a", std::nullopt}});
  Reopen();
  EXPECT_EQ(Dump(), (Model{{"b", std::string("\x00\x01", 2)}}));
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreConformanceTest,
                         ::testing::Values("log", "sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param;
                         });

}  // namespace
}  // namespace faultline::testing
