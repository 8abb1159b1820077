// Tests for faultline/lease/fence.h: the fencing rule (equal admitted, higher raises, lower refused
// with kFencedOut) in the lock-free FenceGuard, in FencedStore over a LogStore on a SimDisk (where
// a refused write must leave the key AND the mark untouched, the mark must survive a crash, commit
// conflicts are retried a bounded number of times, and a corrupt mark is kDataLoss rather than a
// guess), and in FencedKv. A rapidcheck property runs all three against the model "admitted iff
// token >= running max". The threaded suite (FenceGuardConcurrentTest) runs under TSan in
// ./run sanitize.
#include "faultline/lease/fence.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "faultline/core/random.h"
#include "faultline/sim/disk.h"
#include "faultline/store/log_store.h"

namespace faultline::lease {
namespace {

using sim::SimDisk;

template <typename T>
T Must(Result<T> result) {
  FL_ASSERT_MSG(result.ok(), result.status().ToString().c_str());
  return std::move(result).value();
}

void MustOk(const Status& status) { FL_ASSERT_MSG(status.ok(), status.ToString().c_str()); }

FencingToken Token(uint64_t v) { return FencingToken(v); }

const std::string kMarkKey = std::string("\x01") + "fence/orders";

// A LogStore on its own simulated disk.
struct StoreFixture {
  Rng rng{42};
  SimDisk disk{&rng};
  std::unique_ptr<LogStore> store = Must(LogStore::Open(disk));

  void CrashAndReopen() {
    store.reset();
    disk.Crash();
    store = Must(LogStore::Open(disk));
  }
  // The raw stored value of `key`, bypassing the fence.
  std::optional<std::string> Raw(std::string_view key) {
    std::unique_ptr<Transaction> txn = Must(store->Begin());
    std::optional<std::string> v = Must(txn->Get(key));
    txn->Rollback();
    return v;
  }
  void PutRaw(std::string_view key, std::string_view value) {
    std::unique_ptr<Transaction> txn = Must(store->Begin());
    MustOk(txn->Put(key, value));
    MustOk(txn->Commit());
  }
};

// --- FenceGuard ----------------------------------------------------------------------------------

TEST(FenceGuardTest, EqualTokenAdmittedHigherRaisesLowerRejected) {
  // The rule itself: one holder writes many times with its token; a newer holder raises the mark;
  // the older one is then refused with kFencedOut and the mark does not move back.
  FenceGuard guard;
  EXPECT_EQ(guard.highest(), Token(0));
  EXPECT_TRUE(guard.Admit(Token(5)).ok());
  EXPECT_TRUE(guard.Admit(Token(5)).ok());
  EXPECT_TRUE(guard.TryAdmit(Token(5)));
  EXPECT_EQ(guard.highest(), Token(5));
  EXPECT_TRUE(guard.Admit(Token(7)).ok());
  EXPECT_EQ(guard.highest(), Token(7));

  const Status stale = guard.Admit(Token(6));
  EXPECT_EQ(stale.code(), StatusCode::kFencedOut);
  EXPECT_EQ(stale.message(), "fencing token 6 is below 7");
  EXPECT_FALSE(guard.TryAdmit(Token(0)));
  EXPECT_EQ(guard.highest(), Token(7));
}

TEST(FenceGuardTest, InitialMarkFencesEveryOlderToken) {
  // A guard restored from a persisted mark must refuse what the mark already fenced.
  FenceGuard guard(Token(100));
  EXPECT_EQ(guard.Admit(Token(99)).code(), StatusCode::kFencedOut);
  EXPECT_TRUE(guard.Admit(Token(100)).ok());
  EXPECT_EQ(guard.highest(), Token(100));
}

TEST(FenceGuardTest, StaleTokenErrorNamesBothTokens) {
  const Status s = StaleTokenError(Token(3), Token(18446744073709551615ull));
  EXPECT_EQ(s.code(), StatusCode::kFencedOut);
  EXPECT_EQ(s.message(), "fencing token 3 is below 18446744073709551615");
}

TEST(FenceGuardConcurrentTest, RacingRaisersNeverAdmitBelowAnEarlierCompletedAdmission) {
  // Linearizability of the CAS loop: 4 threads race tokens around the current mark. An admission
  // that completed before another attempt started (in any thread) bounds it from below, so every
  // thread's admitted tokens are non-decreasing, every refusal is below the mark, and the final
  // mark is the highest token ever admitted.
  constexpr int kThreads = 4;
  constexpr int kOpsPerThread = 100000;
  FenceGuard guard;
  std::atomic<uint64_t> completed_max{0};  // max token whose admission has returned
  std::vector<uint64_t> admitted_max(kThreads, 0);
  std::vector<uint64_t> admitted_count(kThreads, 0);
  std::vector<uint64_t> rejected_count(kThreads, 0);
  std::vector<uint64_t> violations(kThreads, 0);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Rng rng(7, static_cast<uint64_t>(t));
      uint64_t own_last = 0;
      for (int i = 0; i < kOpsPerThread; ++i) {
        const int64_t base = static_cast<int64_t>(guard.highest().value());
        const uint64_t token = static_cast<uint64_t>(std::max<int64_t>(0, base + rng.Range(-3, 3)));
        const uint64_t floor = completed_max.load(std::memory_order_acquire);
        bool admitted = false;
        if (i % 2 == 0) {
          admitted = guard.TryAdmit(Token(token));
        } else {
          const Status s = guard.Admit(Token(token));
          admitted = s.ok();
          if (!admitted && s.code() != StatusCode::kFencedOut) ++violations[t];
        }
        if (admitted) {
          if (token < floor || token < own_last) ++violations[t];
          own_last = token;
          ++admitted_count[t];
          admitted_max[t] = std::max(admitted_max[t], token);
          uint64_t seen = completed_max.load(std::memory_order_acquire);
          while (token > seen && !completed_max.compare_exchange_weak(seen, token)) {
          }
        } else {
          // Refused: some admission already raised the mark above it, for good.
          if (guard.highest().value() <= token) ++violations[t];
          ++rejected_count[t];
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();

  uint64_t overall_max = 0;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(violations[t], 0u) << "thread " << t;
    EXPECT_GT(admitted_count[t], 0u) << "thread " << t;
    overall_max = std::max(overall_max, admitted_max[t]);
  }
  uint64_t rejected = 0;
  for (const uint64_t r : rejected_count) rejected += r;
  EXPECT_GT(rejected, 0u);  // the race really produced both outcomes
  EXPECT_EQ(guard.highest().value(), overall_max);
}

// --- FencedStore ---------------------------------------------------------------------------------

TEST(FencedStoreTest, EqualAdmittedHigherRaisesLowerRejectedWritingNothing) {
  // The resource-side rule over a transactional store: a stale holder's write must change neither
  // the key nor the mark (both are read back raw, bypassing FencedStore).
  StoreFixture f;
  FencedStore fenced(*f.store, "orders");
  EXPECT_EQ(Must(fenced.Highest()), Token(0));
  EXPECT_FALSE(f.Raw(kMarkKey).has_value());

  MustOk(fenced.Put(Token(5), "k", "a"));
  MustOk(fenced.Put(Token(5), "k", "b"));  // equal: same holder, another write
  EXPECT_EQ(f.Raw("k"), "b");
  EXPECT_EQ(f.Raw(kMarkKey), "5");

  MustOk(fenced.Put(Token(9), "k", "c"));  // higher: a newer holder raises
  EXPECT_EQ(f.Raw(kMarkKey), "9");

  const Status stale = fenced.Put(Token(5), "k", "zombie");
  EXPECT_EQ(stale.code(), StatusCode::kFencedOut);
  EXPECT_EQ(stale.message(), "fencing token 5 is below 9");
  EXPECT_EQ(f.Raw("k"), "c");
  EXPECT_EQ(f.Raw(kMarkKey), "9");
  EXPECT_EQ(Must(fenced.Highest()), Token(9));
  EXPECT_EQ(Must(fenced.Get("k")), "c");

  // A stale write to a key that does not exist yet must not create it either.
  EXPECT_EQ(fenced.Put(Token(8), "fresh", "x").code(), StatusCode::kFencedOut);
  EXPECT_FALSE(f.Raw("fresh").has_value());
}

TEST(FencedStoreTest, DeleteAndRaiseAreFencedToo) {
  // Raise is how a new holder fences older ones before it even reads; Delete is a write.
  StoreFixture f;
  FencedStore fenced(*f.store, "orders");
  MustOk(fenced.Put(Token(3), "k", "v"));
  MustOk(fenced.Raise(Token(4)));
  EXPECT_EQ(f.Raw(kMarkKey), "4");
  EXPECT_EQ(fenced.Delete(Token(3), "k").code(), StatusCode::kFencedOut);
  EXPECT_EQ(f.Raw("k"), "v");
  EXPECT_EQ(fenced.Raise(Token(2)).code(), StatusCode::kFencedOut);
  EXPECT_EQ(f.Raw(kMarkKey), "4");
  MustOk(fenced.Raise(Token(4)));
  MustOk(fenced.Delete(Token(4), "k"));
  EXPECT_FALSE(f.Raw("k").has_value());
}

TEST(FencedStoreTest, RefusalsReportTheTokenAndTheMarkThatRefusedIt) {
  StoreFixture f;
  FencedStore fenced(*f.store, "orders");
  struct Refusals final : Observer {
    void OnEvent(const Event& e) noexcept override {
      if (e.kind == EventKind::kFencingRejected) seen.push_back({e.a, e.b});
    }
    std::vector<std::pair<int64_t, int64_t>> seen;
  } refusals;
  fenced.observe().Attach(&refusals, "orders");
  MustOk(fenced.Put(Token(5), "k", "v"));
  EXPECT_EQ(fenced.Put(Token(3), "k", "w").code(), StatusCode::kFencedOut);
  MustOk(fenced.Raise(Token(9)));
  EXPECT_EQ(fenced.Delete(Token(6), "k").code(), StatusCode::kFencedOut);
  EXPECT_EQ(fenced.Raise(Token(8)).code(), StatusCode::kFencedOut);
  const std::vector<std::pair<int64_t, int64_t>> want = {{3, 5}, {6, 9}, {8, 9}};
  EXPECT_EQ(refusals.seen, want);
}

TEST(FencedStoreTest, MarksOfDifferentResourcesAreIndependent) {
  StoreFixture f;
  FencedStore a(*f.store, "a");
  FencedStore b(*f.store, "b");
  MustOk(a.Raise(Token(10)));
  MustOk(b.Put(Token(1), "kb", "v"));
  EXPECT_EQ(Must(a.Highest()), Token(10));
  EXPECT_EQ(Must(b.Highest()), Token(1));
}

TEST(FencedStoreTest, MarkPersistsAcrossCrashAndReopen) {
  // A restarted resource that forgot its mark would re-admit every zombie; the mark is committed
  // in the same durable transaction as the write, so a crash keeps both.
  StoreFixture f;
  {
    FencedStore fenced(*f.store, "orders");
    MustOk(fenced.Put(Token(12), "k", "v12"));
  }
  f.CrashAndReopen();
  FencedStore fenced(*f.store, "orders");
  EXPECT_EQ(Must(fenced.Highest()), Token(12));
  EXPECT_EQ(fenced.Put(Token(11), "k", "zombie").code(), StatusCode::kFencedOut);
  EXPECT_EQ(f.Raw("k"), "v12");
  MustOk(fenced.Put(Token(12), "k", "again"));
  EXPECT_EQ(f.Raw("k"), "again");
}

TEST(FencedStoreTest, CheckAndRaiseInsideACallersMultiKeyTransaction) {
  // A caller writing several keys checks the token in its own transaction: all keys and the mark
  // commit together, and a stale token leaves none of them.
  StoreFixture f;
  MustOk(RunInTransaction(*f.store, [](Transaction& txn) -> Status {
    FL_RETURN_IF_ERROR(FencedStore::CheckAndRaise(txn, "orders", Token(4)));
    FL_RETURN_IF_ERROR(txn.Put("order/1", "paid"));
    return txn.Put("ledger/1", "+10");
  }));
  EXPECT_EQ(f.Raw("order/1"), "paid");
  EXPECT_EQ(f.Raw("ledger/1"), "+10");
  EXPECT_EQ(f.Raw(kMarkKey), "4");

  const Status stale = RunInTransaction(*f.store, [](Transaction& txn) -> Status {
    FL_RETURN_IF_ERROR(txn.Put("order/1", "refunded"));  // written before the check
    FL_RETURN_IF_ERROR(FencedStore::CheckAndRaise(txn, "orders", Token(3)));
    return txn.Put("ledger/1", "-10");
  });
  EXPECT_EQ(stale.code(), StatusCode::kFencedOut);
  EXPECT_EQ(f.Raw("order/1"), "paid");
  EXPECT_EQ(f.Raw("ledger/1"), "+10");
  EXPECT_EQ(f.Raw(kMarkKey), "4");
}

TEST(FencedStoreTest, CorruptMarkIsDataLossNotAGuess) {
  // Reading a damaged mark as 0 (or as any number) could un-fence a stale holder: refuse instead.
  for (const char* corrupt : {"", "abc", "12x", "-1", "+5", "007", " 5", "18446744073709551616",
                              "99999999999999999999999"}) {
    StoreFixture f;
    f.PutRaw(kMarkKey, corrupt);
    FencedStore fenced(*f.store, "orders");
    EXPECT_EQ(fenced.Put(Token(1000), "k", "v").code(), StatusCode::kDataLoss) << corrupt;
    EXPECT_EQ(fenced.Raise(Token(1000)).code(), StatusCode::kDataLoss) << corrupt;
    EXPECT_EQ(fenced.Delete(Token(1000), "k").code(), StatusCode::kDataLoss) << corrupt;
    EXPECT_EQ(fenced.Highest().status().code(), StatusCode::kDataLoss) << corrupt;
    EXPECT_FALSE(f.Raw("k").has_value()) << corrupt;
    EXPECT_EQ(f.Raw(kMarkKey), corrupt);
  }
  // The largest token is not corruption.
  StoreFixture f;
  f.PutRaw(kMarkKey, "18446744073709551615");
  FencedStore fenced(*f.store, "orders");
  EXPECT_EQ(Must(fenced.Highest()), Token(18446744073709551615ull));
  MustOk(fenced.Put(Token(18446744073709551615ull), "k", "v"));
}

TEST(FencedStoreTest, UserKeysInTheMarkNamespaceAreRejected) {
  // Otherwise Put(token, "\x01fence/orders", "0") would reset the mark and re-admit zombies.
  StoreFixture f;
  FencedStore fenced(*f.store, "orders");
  MustOk(fenced.Raise(Token(9)));
  EXPECT_EQ(fenced.Put(Token(9), kMarkKey, "0").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fenced.Delete(Token(9), kMarkKey).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.Raw(kMarkKey), "9");
}

// Wraps a LogStore. Before each of the next `conflicts` commits it commits a competing blind write
// of `competitor_value` to the mark key, which the wrapped transaction has read, so that commit
// fails with kAborted -- another writer raising (or re-asserting) the mark at the worst moment.
class InterferingStore final : public LocalStore {
 public:
  InterferingStore(LogStore& inner, std::string competitor_value, int conflicts)
      : inner_(inner), competitor_value_(std::move(competitor_value)), conflicts_(conflicts) {}

  Result<std::unique_ptr<Transaction>> Begin() override {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, inner_.Begin());
    ++begins_;
    return std::unique_ptr<Transaction>(new Txn(*this, std::move(txn)));
  }
  int begins() const { return begins_; }

 private:
  class Txn final : public Transaction {
   public:
    Txn(InterferingStore& owner, std::unique_ptr<Transaction> inner)
        : owner_(owner), inner_(std::move(inner)) {}
    Result<std::optional<std::string>> Get(std::string_view key) override {
      return inner_->Get(key);
    }
    Status Put(std::string_view key, std::string_view value) override {
      return inner_->Put(key, value);
    }
    Result<bool> InsertIfAbsent(std::string_view key, std::string_view value) override {
      return inner_->InsertIfAbsent(key, value);
    }
    Result<bool> CompareAndSet(std::string_view key, std::optional<std::string_view> expected,
                               std::optional<std::string_view> desired) override {
      return inner_->CompareAndSet(key, expected, desired);
    }
    Result<bool> Delete(std::string_view key) override { return inner_->Delete(key); }
    Result<std::vector<KeyValue>> Scan(std::string_view begin, std::string_view end,
                                       size_t limit) override {
      return inner_->Scan(begin, end, limit);
    }
    Status Commit() override {
      if (owner_.conflicts_ > 0) {
        --owner_.conflicts_;
        std::unique_ptr<Transaction> competitor = Must(owner_.inner_.Begin());
        MustOk(competitor->Put(kMarkKey, owner_.competitor_value_));
        MustOk(competitor->Commit());
      }
      return inner_->Commit();
    }
    void Rollback() override { inner_->Rollback(); }

   private:
    InterferingStore& owner_;
    std::unique_ptr<Transaction> inner_;
  };

  LogStore& inner_;
  const std::string competitor_value_;
  int conflicts_;
  int begins_ = 0;
};

TEST(FencedStoreTest, CommitConflictIsRetriedUntilItCommits) {
  // Another writer with the same token re-asserts the mark three times in a row; each collision
  // aborts our commit, and the retry (which re-reads the mark) then goes through.
  StoreFixture f;
  MustOk(FencedStore(*f.store, "orders").Raise(Token(5)));
  InterferingStore interfering(*f.store, "5", 3);
  FencedStore fenced(interfering, "orders");
  MustOk(fenced.Put(Token(5), "k", "v"));
  EXPECT_EQ(interfering.begins(), 4);
  EXPECT_EQ(f.Raw("k"), "v");
  EXPECT_EQ(f.store->stats().aborts, 3u);
}

TEST(FencedStoreTest, PersistentConflictGivesUpAfterTheBoundWritingNothing) {
  // The retry loop is bounded: under a storm of conflicts it returns kAborted after exactly
  // kCommitAttemptsMax attempts, and none of them wrote anything.
  StoreFixture f;
  MustOk(FencedStore(*f.store, "orders").Raise(Token(5)));
  InterferingStore interfering(*f.store, "5", 1000);
  FencedStore fenced(interfering, "orders");
  EXPECT_EQ(fenced.Put(Token(6), "k", "v").code(), StatusCode::kAborted);
  EXPECT_EQ(interfering.begins(), static_cast<int>(FencedStore::kCommitAttemptsMax));
  EXPECT_FALSE(f.Raw("k").has_value());
  EXPECT_EQ(f.Raw(kMarkKey), "5");
}

TEST(FencedStoreTest, RaiseCommittedDuringOurTransactionFencesTheRetry) {
  // The race the transaction exists for: a newer holder raises the mark to 9 between our read of
  // the mark (5) and our commit with token 7. Our commit must abort, and the retry must see 9 and
  // refuse -- never "7 was fine when I looked".
  StoreFixture f;
  MustOk(FencedStore(*f.store, "orders").Raise(Token(5)));
  InterferingStore interfering(*f.store, "9", 1);
  FencedStore fenced(interfering, "orders");
  const Status s = fenced.Put(Token(7), "k", "zombie");
  EXPECT_EQ(s.code(), StatusCode::kFencedOut);
  EXPECT_EQ(s.message(), "fencing token 7 is below 9");
  EXPECT_EQ(interfering.begins(), 2);
  EXPECT_FALSE(f.Raw("k").has_value());
  EXPECT_EQ(f.Raw(kMarkKey), "9");
}

// --- FencedKv ------------------------------------------------------------------------------------

TEST(FencedKvTest, PutRaiseAndReadGetAndRejectedCount) {
  // The simulator's fenced storage service: a new holder's RaiseAndRead fences the old one before
  // returning the state, and refusals are counted.
  FencedKv kv;
  MustOk(kv.Put(Token(1), "x", "1"));
  MustOk(kv.Put(Token(1), "y", "1"));
  EXPECT_EQ(kv.Get("x"), "1");
  EXPECT_FALSE(kv.Get("z").has_value());

  const auto snapshot = Must(kv.RaiseAndRead(Token(2)));
  EXPECT_EQ(snapshot.size(), 2u);
  EXPECT_EQ(snapshot.at("y"), "1");
  EXPECT_EQ(kv.highest(), Token(2));

  const Status zombie = kv.Put(Token(1), "x", "zombie");
  EXPECT_EQ(zombie.code(), StatusCode::kFencedOut);
  EXPECT_EQ(kv.Get("x"), "1");
  EXPECT_EQ(kv.rejected(), 1u);
  EXPECT_EQ(kv.RaiseAndRead(Token(1)).status().code(), StatusCode::kFencedOut);
  EXPECT_EQ(kv.rejected(), 2u);

  MustOk(kv.Put(Token(2), "x", "2"));
  EXPECT_EQ(kv.Get("x"), "2");
  EXPECT_EQ(kv.rejected(), 2u);
  EXPECT_EQ(kv.highest(), Token(2));
}

// --- Property ------------------------------------------------------------------------------------

RC_GTEST_PROP(FenceProperty, AdmittedTokensNonDecreasingAndEveryRejectionBelowTheRunningMax,
              (const std::vector<uint8_t>& raw)) {
  // For any token sequence (small values, so equal tokens and reorderings are common), FenceGuard,
  // FencedKv and FencedStore all decide exactly like the model "admit iff token >= running max",
  // the admitted tokens form a non-decreasing sequence, and the stored state is the last admitted
  // write's.
  StoreFixture f;
  FencedStore store(*f.store, "orders");
  FenceGuard guard;
  FencedKv kv;
  uint64_t running_max = 0;
  uint64_t last_admitted = 0;
  std::optional<std::string> last_value;
  uint64_t rejected = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    const uint64_t token = raw[i] % 16;
    const std::string value = std::to_string(i);
    const bool model = token >= running_max;
    const bool by_guard = guard.Admit(Token(token)).ok();
    const Status kv_status = kv.Put(Token(token), "k", value);
    const Status store_status = store.Put(Token(token), "k", value);
    RC_ASSERT(by_guard == model);
    RC_ASSERT(kv_status.ok() == model);
    RC_ASSERT(store_status.ok() == model);
    if (model) {
      RC_ASSERT(token >= last_admitted);
      last_admitted = token;
      running_max = token;
      last_value = value;
    } else {
      RC_ASSERT(token < running_max);
      RC_ASSERT(kv_status.code() == StatusCode::kFencedOut);
      RC_ASSERT(store_status.code() == StatusCode::kFencedOut);
      ++rejected;
    }
  }
  RC_ASSERT(guard.highest().value() == running_max);
  RC_ASSERT(kv.highest().value() == running_max);
  RC_ASSERT(kv.rejected() == rejected);
  RC_ASSERT(Must(store.Highest()).value() == running_max);
  RC_ASSERT(kv.Get("k") == last_value);
  RC_ASSERT(f.Raw("k") == last_value);
}

}  // namespace
}  // namespace faultline::lease
