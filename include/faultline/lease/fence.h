// File: faultline/lease/fence.h
//
// Fencing at the resource: the storage side of Kleppmann's argument. A lease alone cannot stop a
// holder that was paused (GC, VM migration) or whose message sat in the network past its lease
// from writing; the resource must refuse it. Every write carries the writer's fencing token; the
// resource atomically compares-and-raises the highest token it has seen *together with* the write
// and rejects a lower token with kFencedOut. Equal tokens are admitted (one holder, many writes).
//
//   FenceGuard      an in-memory high-water mark, lock-free, for a resource in this process.
//   FencedStore     the same rule over any LocalStore: the high-water mark is a row written in the
//                   same transaction as the guarded write, so the check and the side effect commit
//                   or abort together (SQLite/PostgreSQL tables enforce it the same way).
//   FencedKv        an in-memory key-value map guarded by one FenceGuard: the simulator's
//                   stand-in for a storage service that checks tokens.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "faultline/core/ids.h"
#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/store/local_store.h"

namespace faultline::lease {

// kFencedOut: "fencing token <token> is below <highest>".
Status StaleTokenError(FencingToken token, FencingToken highest);

class FenceGuard {
 public:
  FenceGuard() = default;
  explicit FenceGuard(FencingToken initial) : highest_(initial.value()) {}

  // Admits `token` iff token >= highest seen, raising the mark to it; kFencedOut otherwise.
  // Lock-free (one CAS loop); safe from any thread.
  Status Admit(FencingToken token);
  // Like Admit, without the Status allocation on rejection: true iff admitted.
  bool TryAdmit(FencingToken token) {
    uint64_t seen = highest_.load(std::memory_order_acquire);
    const uint64_t t = token.value();
    while (t > seen) {
      if (highest_.compare_exchange_weak(seen, t, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
        return true;
      }
    }
    if (t == seen) return true;
    observer_.Emit(EventKind::kFencingRejected, MonoTime(), static_cast<int64_t>(t),
                   static_cast<int64_t>(seen));
    return false;
  }
  FencingToken highest() const { return FencingToken(highest_.load(std::memory_order_acquire)); }
  // Every refused token is reported as kFencingRejected (a = token, b = the mark that refused it;
  // no clock: `at` is MonoTime()). Attach before sharing.
  ObserverSlot& observe() { return observer_; }

 private:
  std::atomic<uint64_t> highest_{0};
  ObserverSlot observer_;
};

// The fencing rule inside a LocalStore transaction. The high-water mark of `resource` lives at key
// "\x01fence/<resource>" as a decimal token (no mark: nothing fenced yet, every token admitted).
//
// Errors, besides the store's own: kFencedOut for a token below the mark (nothing written);
// kAborted when commit conflicts persisted through kCommitAttemptsMax attempts (nothing written);
// kDataLoss when the stored mark is not a decimal token (it is never guessed at, since a wrong
// guess un-fences a stale holder), and when it is below (or absent, after) a mark this FencedStore
// itself committed or read: a mark never goes backwards, so the row was tampered with or the
// table restored from an old copy, and the writer fences itself (nothing written) rather than
// trust it. A lowering that stays at or above what this instance saw cannot be told apart from
// a true history by it (another instance, e.g. the current holder's, may still catch it);
// CheckAndRaise, being static, keeps no such memory; kInvalidArgument for a user key inside the reserved
// "\x01fence/" namespace (such a write could overwrite a mark). Not thread-safe beyond what the
// LocalStore is: one FencedStore per store owner.
class FencedStore {
 public:
  // Total attempts (first try included) of one Put/Delete/Raise when Commit fails with kAborted.
  static constexpr uint32_t kCommitAttemptsMax = 8;

  // `resource` must be non-empty (FL_ASSERT). `store` must outlive this object.
  FencedStore(LocalStore& store, std::string resource);

  // In one serializable transaction: reads the mark, rejects token < mark (kFencedOut, nothing
  // written), raises it to token, and puts key = value. Commit conflicts are retried.
  Status Put(FencingToken token, std::string_view key, std::string_view value);
  // The same, deleting key.
  Status Delete(FencingToken token, std::string_view key);
  // Raises the mark without writing anything else (a new holder announcing itself before it reads,
  // so that every older holder is fenced from then on). kFencedOut if token < mark.
  Status Raise(FencingToken token);
  // Reads in a transaction that commits (validated under SERIALIZABLE), retrying kAborted.
  Result<FencingToken> Highest();
  Result<std::optional<std::string>> Get(std::string_view key);

  // Checks and raises the mark inside a caller's transaction, for writes that touch several keys.
  // On kFencedOut the caller must not commit its other writes (roll back). The caller retries
  // kAborted from its own Commit (RunInTransaction does).
  static Status CheckAndRaise(Transaction& txn, std::string_view resource, FencingToken token);

  // Put/Delete/Raise refused with kFencedOut are reported as kFencingRejected (a = token,
  // b = the mark that refused it, as read by the refusing transaction). CheckAndRaise, being
  // static, reports nothing.
  ObserverSlot& observe() { return observer_; }

 private:
  // kDataLoss when the stored mark is below seen_ (see the class comment); read in `txn`.
  Status CheckNotLowered(Transaction& txn) const;
  // CheckAndRaise that also stores the mark it read in *mark when it refuses.
  static Status CheckAndRaise(Transaction& txn, std::string_view resource, FencingToken token,
                              FencingToken* mark);
  // Notes a committed token in seen_; reports kFencedOut (with the refusing mark).
  Status Reported(Status s, FencingToken token, FencingToken mark);

  LocalStore& store_;
  std::string resource_;
  FencingToken seen_;  // the highest mark this instance committed or read; 0: none yet
  ObserverSlot observer_;
};

// An in-memory fenced key-value map (single-threaded).
class FencedKv {
 public:
  Status Put(FencingToken token, const std::string& key, std::string value);
  // Raises the mark and returns a snapshot of every key (a new holder's fenced read).
  Result<std::map<std::string, std::string>> RaiseAndRead(FencingToken token);
  std::optional<std::string> Get(const std::string& key) const;
  FencingToken highest() const { return guard_.highest(); }
  uint64_t rejected() const { return rejected_; }
  // kFencingRejected for every refused write or read (see FenceGuard::observe()).
  ObserverSlot& observe() { return guard_.observe(); }

 private:
  FenceGuard guard_;
  std::map<std::string, std::string> data_;
  uint64_t rejected_ = 0;
};

}  // namespace faultline::lease
