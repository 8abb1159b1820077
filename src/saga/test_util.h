// Shared fixtures of the saga tests: a LogStore on a SimDisk with a ManualClock
// (src/store/sim_store_env.h), a store wrapper that "dies" after a number of commits (a process
// crash between any two durable writes), and a participant that applies effects through
// ParticipantGuard and counts them.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "faultline/core/random.h"
#include "faultline/env/clock.h"
#include "faultline/saga/participant.h"
#include "faultline/sim/disk.h"
#include "faultline/store/log_store.h"
#include "src/store/sim_store_env.h"

namespace faultline::saga::testing {

using faultline::testing::Must;
using faultline::testing::MustOk;
using faultline::testing::SimStoreEnv;

// Forwards to `inner` until `commits_left` commits have been acknowledged; from then on every
// Begin and Commit fails with kUnavailable and writes nothing: the process died.
class DyingStore final : public LocalStore {
 public:
  DyingStore(LocalStore& inner, int64_t commits_left) : inner_(inner), left_(commits_left) {}
  Result<std::unique_ptr<Transaction>> Begin() override {
    if (left_ <= 0) return UnavailableError("process died");
    FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, inner_.Begin());
    return std::unique_ptr<Transaction>(new Txn(std::move(txn), &left_));
  }
  bool dead() const { return left_ <= 0; }

 private:
  class Txn final : public Transaction {
   public:
    Txn(std::unique_ptr<Transaction> inner, int64_t* left)
        : inner_(std::move(inner)), left_(left) {}
    Result<std::optional<std::string>> Get(std::string_view k) override { return inner_->Get(k); }
    Status Put(std::string_view k, std::string_view v) override { return inner_->Put(k, v); }
    Result<bool> InsertIfAbsent(std::string_view k, std::string_view v) override {
      return inner_->InsertIfAbsent(k, v);
    }
    Result<bool> CompareAndSet(std::string_view k, std::optional<std::string_view> e,
                               std::optional<std::string_view> d) override {
      return inner_->CompareAndSet(k, e, d);
    }
    Result<bool> Delete(std::string_view k) override { return inner_->Delete(k); }
    Result<std::vector<KeyValue>> Scan(std::string_view b, std::string_view e,
                                       size_t limit) override {
      return inner_->Scan(b, e, limit);
    }
    Status Commit() override {
      if (*left_ <= 0) {
        inner_->Rollback();
        return UnavailableError("process died");
      }
      FL_RETURN_IF_ERROR(inner_->Commit());
      *left_ -= 1;
      return Status::Ok();
    }
    void Rollback() override { inner_->Rollback(); }

   private:
    std::unique_ptr<Transaction> inner_;
    int64_t* left_;
  };
  LocalStore& inner_;
  int64_t left_;
};

// A participant holding one counter per step in its own store: forward adds 1, compensation
// subtracts 1, both through ParticipantGuard. `applied[step]` is the net effect.
class CountingParticipant {
 public:
  explicit CountingParticipant(LocalStore& store) : store_(store) {}

  Status Forward(std::string_view forward_key, const std::string& counter) {
    return RunInTransaction(store_, [&](Transaction& txn) -> Status {
      FL_ASSIGN_OR_RETURN(GuardVerdict verdict, guard_.ApplyForward(txn, forward_key));
      if (verdict == GuardVerdict::kRefused) {
        return FailedPreconditionError("forward refused: compensated already");
      }
      if (verdict == GuardVerdict::kApply) return Add(txn, counter, 1);
      return Status::Ok();
    });
  }
  Status Compensate(std::string_view forward_key, const std::string& counter) {
    return RunInTransaction(store_, [&](Transaction& txn) -> Status {
      FL_ASSIGN_OR_RETURN(GuardVerdict verdict, guard_.ApplyCompensation(txn, forward_key));
      if (verdict == GuardVerdict::kApply) return Add(txn, counter, -1);
      return Status::Ok();
    });
  }
  int64_t Value(const std::string& counter) {
    std::unique_ptr<Transaction> txn = Must(store_.Begin());
    std::optional<std::string> v = Must(txn->Get("counter/" + counter));
    txn->Rollback();
    return v ? std::stoll(*v) : 0;
  }

 private:
  Status Add(Transaction& txn, const std::string& counter, int64_t delta) {
    FL_ASSIGN_OR_RETURN(std::optional<std::string> v, txn.Get("counter/" + counter));
    const int64_t now = (v ? std::stoll(*v) : 0) + delta;
    return txn.Put("counter/" + counter, std::to_string(now));
  }
  LocalStore& store_;
  ParticipantGuard guard_;
};

}  // namespace faultline::saga::testing
