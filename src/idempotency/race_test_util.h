// Race tests of IdempotencyKeys that any thread-safe LocalStore can be put through: the SQLite and
// PostgreSQL stores instantiate them with an `open` that returns a new connection per call;
// LogStore (single-threaded) runs them behind LockedStore below.
//
// RaceAcquire: `threads` threads, each with its own store handle and IdempotencyKeys, released
// together, Acquire one key with one request. Exactly one must be kClaimed (attempt 1) and every
// other one kInProgress — never a second owner, never an error. The winner then completes, and a
// second racing round must see kCompleted with the winner's bytes, every time.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "faultline/env/clock.h"
#include "faultline/idempotency/idempotency_keys.h"
#include "faultline/store/local_store.h"

namespace faultline::idempotency::testing {

// Makes a single-threaded LocalStore usable from many threads by running every call — of the
// store and of its transactions, destruction included — under one mutex. Conflicts between
// transactions are still the store's to detect.
class LockedStore final : public LocalStore {
 public:
  LockedStore(LocalStore& inner, std::mutex& mu) : inner_(inner), mu_(mu) {}
  Result<std::unique_ptr<Transaction>> Begin() override {
    std::lock_guard<std::mutex> lock(mu_);
    FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, inner_.Begin());
    return std::unique_ptr<Transaction>(new LockedTransaction(std::move(txn), mu_));
  }

 private:
  class LockedTransaction final : public Transaction {
   public:
    LockedTransaction(std::unique_ptr<Transaction> inner, std::mutex& mu)
        : inner_(std::move(inner)), mu_(mu) {}
    ~LockedTransaction() override {
      std::lock_guard<std::mutex> lock(mu_);
      inner_.reset();
    }
    Result<std::optional<std::string>> Get(std::string_view key) override {
      std::lock_guard<std::mutex> lock(mu_);
      return inner_->Get(key);
    }
    Status Put(std::string_view key, std::string_view value) override {
      std::lock_guard<std::mutex> lock(mu_);
      return inner_->Put(key, value);
    }
    Result<bool> InsertIfAbsent(std::string_view key, std::string_view value) override {
      std::lock_guard<std::mutex> lock(mu_);
      return inner_->InsertIfAbsent(key, value);
    }
    Result<bool> CompareAndSet(std::string_view key, std::optional<std::string_view> expected,
                               std::optional<std::string_view> desired) override {
      std::lock_guard<std::mutex> lock(mu_);
      return inner_->CompareAndSet(key, expected, desired);
    }
    Result<bool> Delete(std::string_view key) override {
      std::lock_guard<std::mutex> lock(mu_);
      return inner_->Delete(key);
    }
    Result<std::vector<KeyValue>> Scan(std::string_view begin, std::string_view end,
                                       size_t limit) override {
      std::lock_guard<std::mutex> lock(mu_);
      return inner_->Scan(begin, end, limit);
    }
    Status Commit() override {
      std::lock_guard<std::mutex> lock(mu_);
      return inner_->Commit();
    }
    void Rollback() override {
      std::lock_guard<std::mutex> lock(mu_);
      inner_->Rollback();
    }

   private:
    std::unique_ptr<Transaction> inner_;
    std::mutex& mu_;
  };

  LocalStore& inner_;
  std::mutex& mu_;
};

// One round: every thread Acquires (scope, key) at once. Returns the claims, in thread order.
inline std::vector<Result<Claim>> AcquireRound(
    const std::function<std::unique_ptr<LocalStore>()>& open, Clock& clock, int threads,
    std::string_view key) {
  std::vector<std::unique_ptr<LocalStore>> stores;
  std::vector<std::unique_ptr<IdempotencyKeys>> keys;
  for (int i = 0; i < threads; ++i) {
    stores.push_back(open());
    auto created = IdempotencyKeys::Create(*stores.back(), clock);
    FL_ASSERT(created.ok());
    keys.push_back(std::move(created).value());
  }
  std::vector<Result<Claim>> claims(threads, Result<Claim>(InternalError("not run")));
  std::latch start(threads);
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&, i] {
      start.arrive_and_wait();
      claims[i] = keys[i]->Acquire("race", key, FingerprintOf("POST /race"), Duration::Seconds(60));
    });
  }
  for (std::thread& t : workers) t.join();
  return claims;
}

inline void RaceAcquire(const std::function<std::unique_ptr<LocalStore>()>& open, int threads,
                        std::string_view key = "race-key") {
  ASSERT_GE(threads, 2);
  ManualClock clock;
  const std::vector<Result<Claim>> first = AcquireRound(open, clock, threads, key);
  int claimed = -1;
  for (int i = 0; i < threads; ++i) {
    ASSERT_TRUE(first[i].ok()) << first[i].status().ToString();
    if (first[i]->state == ClaimState::kClaimed) {
      EXPECT_EQ(claimed, -1) << "two owners: threads " << claimed << " and " << i;
      EXPECT_EQ(first[i]->attempt, 1u);
      claimed = i;
    } else {
      EXPECT_EQ(first[i]->state, ClaimState::kInProgress) << ClaimStateName(first[i]->state);
    }
  }
  ASSERT_NE(claimed, -1) << "nobody claimed the key";

  std::unique_ptr<LocalStore> store = open();
  auto keys = IdempotencyKeys::Create(*store, clock);
  ASSERT_TRUE(keys.ok());
  const std::string response("winner\0bytes", 12);
  ASSERT_TRUE((*keys)->Complete("race", key, first[claimed]->attempt, response).ok());
  for (const Result<Claim>& replay : AcquireRound(open, clock, threads, key)) {
    ASSERT_TRUE(replay.ok()) << replay.status().ToString();
    EXPECT_EQ(replay->state, ClaimState::kCompleted);
    EXPECT_EQ(replay->response, response);
  }
}

}  // namespace faultline::idempotency::testing
