// File: faultline/saga/participant.h
//
// The participant side of a saga: what a service that executes saga steps keeps in its own
// LocalStore, inside the same transaction as the step's effects.
//
// ParticipantGuard — the tombstone rule. A saga step's forward and its compensation may reach a
// participant in any order: a forward call times out, the saga gives it up and compensates, and
// the forward (retried, delayed, duplicated by the network) arrives after the compensation, or
// never. One record per forward key, written in the caller's transaction:
//   ApplyForward       absent → record "applied",     kApply     (apply the effect now)
//                      applied →                      kDuplicate (already applied: answer ok)
//                      compensated →                  kRefused   (tombstone: answer a definite
//                                                                 failure, apply nothing)
//   ApplyCompensation  applied → record "compensated", kApply    (undo the effect now)
//                      absent → record "compensated",  kTombstone (nothing to undo; the tombstone
//                                                                 refuses a late forward)
//                      compensated →                  kDuplicate (already undone: answer ok)
// So each forward is applied at most once, a compensation undoes it at most once, and a forward
// never applies after its compensation. Both calls take the FORWARD key (Action::forward_key).
// Records are kept until the caller deletes them with Forget: only once no forward of that key
// can still arrive (the saga finished and the longest a call may stay in flight has passed).
// Keys: prefix + forward_key; value one byte 'F' (applied) or 'C' (compensated). Any other value
// is kDataLoss.
//
// SemanticLocks — Eventuate's semantic lock with a stash. A saga that changes a record claims it
// ("target": an account id, an order id) so no other saga modifies it until the claimant releases
// it (on completion, or in its compensation). A later claimant is queued (FIFO) and told to wait;
// Release hands the lock to the first queued saga and returns its id so the caller can wake it
// (Eventuate's unlock redelivers the first stashed command). A queue longer than waiters_max
// refuses more claimants with kResourceExhausted: park or fail that saga.
// With SagaLog: a forward that finds the record claimed answers kUnavailable (an unknown outcome),
// so the step is retried after a backoff until a Release hands it the lock; forward_attempts_max
// times the backoff bounds the wait, after which the saga compensates. Every compensation of a
// step that claims must Release (holder or queued: both are cleared), or a saga that gave up while
// queued is later handed a lock it never releases.
// Keys: prefix + "l/" + target → u8 version (1), u64 next waiter seq, bytes owner;
//       prefix + "w/" + target + '\0' + big-endian u64 seq → claimant saga id.
// Targets must be printable ASCII (0x20..0x7E): '\0' delimits them.
//
// Errors: kInvalidArgument for empty or oversized keys/ids, kDataLoss for a row that does not
// decode, kResourceExhausted for a full queue, the store's errors otherwise. Thread safety:
// immutable; as safe as the transactions handed in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/store/local_store.h"

namespace faultline::saga {

enum class GuardVerdict : uint8_t { kApply, kDuplicate, kRefused, kTombstone };
const char* GuardVerdictName(GuardVerdict verdict);

class ParticipantGuard {
 public:
  explicit ParticipantGuard(std::string prefix = "saga-guard/") : prefix_(std::move(prefix)) {}

  Result<GuardVerdict> ApplyForward(Transaction& txn, std::string_view forward_key);
  Result<GuardVerdict> ApplyCompensation(Transaction& txn, std::string_view forward_key);
  // Deletes the record of `forward_key` (retention cleanup). True when one existed.
  Result<bool> Forget(Transaction& txn, std::string_view forward_key);

 private:
  std::string prefix_;
};

struct SemanticLockOptions {
  std::string prefix = "saga-lock/";
  size_t target_bytes_max = 255;
  size_t saga_id_bytes_max = 200;
  uint32_t waiters_max = 64;
  Status Validate() const;
};

class SemanticLocks {
 public:
  static Result<SemanticLocks> Create(SemanticLockOptions options = {});

  // True when `saga_id` holds the lock on `target` (now, or already: idempotent). False when
  // another saga holds it: `saga_id` is queued (once, however often it asks) and must wait until a
  // Release hands the lock over.
  Result<bool> Claim(Transaction& txn, std::string_view target, std::string_view saga_id);
  // The holder releases: the lock goes to the first queued saga, whose id is returned (nullopt:
  // the lock is free). A queued saga that gives up calls Release too: it leaves the queue
  // (nullopt). Releasing a lock `saga_id` neither holds nor waits for is ok and changes nothing
  // (idempotent: a retried compensation).
  Result<std::optional<std::string>> Release(Transaction& txn, std::string_view target,
                                             std::string_view saga_id);
  // The holder, or nullopt.
  Result<std::optional<std::string>> Owner(Transaction& txn, std::string_view target);
  // The queued saga ids in order.
  Result<std::vector<std::string>> Waiters(Transaction& txn, std::string_view target);

 private:
  explicit SemanticLocks(SemanticLockOptions options) : options_(std::move(options)) {}
  SemanticLockOptions options_;
};

}  // namespace faultline::saga
