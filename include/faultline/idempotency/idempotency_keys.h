// File: faultline/idempotency/idempotency_keys.h
//
// Idempotency keys: a client retries a request with the same key, and the server runs its side
// effects at most once and answers every retry with the first answer, byte for byte (Stripe's
// contract, the IETF Idempotency-Key draft, Brandur's atomic phases, AWS Powertools' in-progress
// expiry). Written against LocalStore, so it runs on LogStore (simulator, embedded), SQLite and
// PostgreSQL unchanged.
//
// A record per (scope, key) — scope is the caller's identity (account, tenant, endpoint), so two
// clients that pick the same key never collide — holds:
//   state        in-progress | completed | released (below)
//   fingerprint  of the request that claimed the key (a retry with another request is a Mismatch)
//   attempt      1, 2, ...: the fencing token of the current claim; a takeover increments it
//   lease_until  wall time after which an in-progress claim may be taken over
//   recovery     the last recovery point an attempt committed ("" = none: start from the top)
//   response     once completed: the stored response, replayed byte-identical
//   expires_at   wall time from which the record may be deleted: `retention` after the claim
//                ended (completion, release, or the lease running out while in progress)
//
// A third state, released, is what Release leaves behind: it keeps the attempt number and counts
// as absent for Acquire (the next claim gets attempt + 1, whatever its fingerprint). Deleting the
// record instead would restart the count at 1 and hand a paused holder of attempt 1 a live token.
// An attempt number is reused only after Expire deleted the record, at least `retention` after the
// claim ended; so fencing holds against any holder paused for less than `retention`.
//
// Encoding (LocalStore value, little-endian): u8 version (1), u8 state (1 in-progress,
// 2 completed, 3 released), 32-byte fingerprint, u64 attempt (>= 1), i64 lease_until ns,
// i64 expires_at ns, bytes recovery_point, bytes response, u32 CRC-32C of everything before it
// ("bytes" = varint length + raw). A value that does not decode exactly, or whose CRC does not
// match, is kDataLoss. The expiry index lives under prefix + "\x7f" + "x" + big-endian
// (expires_at ns XOR 2^63) + scope + '\0' + key (0x7F is never the first byte of a scope), written
// in the same transaction as the record; Expire scans it in time order.
//
// Acquire returns a Claim in exactly one of these states:
//   kClaimed     the caller owns the key with `attempt` (a fencing token) and resumes from
//                `recovery_point` ("" on a first claim; the last committed phase on a takeover);
//   kInProgress  another attempt holds a live claim; `retry_after` says when it may have finished
//                or expired (HTTP 409 + Retry-After);
//   kCompleted   `response` is the stored response (replay it);
//   kMismatch    the key was claimed with a different fingerprint (HTTP 422); nothing changes.
// A record past its expires_at counts as absent, whatever its state, exactly as if Expire had
// already deleted it (so no outcome depends on when Expire runs): the key may be claimed afresh (a
// new request, Stripe's 24 h rule) with attempt = old + 1, any fingerprint, from the top. "Past"
// is inclusive: at now == expires_at the record is expired, for Acquire and Expire alike. For an
// in-progress record that is `retention` after its lease ran out: retention must exceed the
// longest time a client keeps retrying one request, or a late retry restarts from the top.
// An attempt whose lease ran out but that nobody took over may still Checkpoint, Complete or
// Release: the lease bounds how long others wait; the attempt number decides who may write.
// The precedence on an existing record: past expires_at, or released → claimed afresh;
// completed → mismatch check, then replay; in progress → mismatch check, then kInProgress while
// now < lease_until, takeover (attempt + 1, same fingerprint, recovery point kept) from then on.
//
// Fencing. Complete, Checkpoint and Release name the attempt they belong to. When an in-progress
// claim's lease has run out, the next Acquire takes it over with attempt + 1; from then on every
// call naming the old attempt fails with kFencedOut and writes nothing — so a holder that was
// paused past its lease can never overwrite its successor's response, nor release the successor's
// claim. Lease expiry is judged on the claimant's Clock::WallNow(): claimants on different machines
// need loosely synchronised wall clocks for *liveness* (a takeover not too early or too late),
// never for *safety*, which the attempt number provides.
//
// Atomicity. Acquire, Checkpoint and Complete have a form that runs inside the caller's
// Transaction, so the claim (or the checkpoint, or the completion) commits in the same local
// transaction as the caller's own writes: if the transaction aborts, neither happened. The forms
// without a Transaction, Release and Expire run their own (RunInTransaction, retrying kAborted up to
// commit_attempts_max times).
//
// Errors: kInvalidArgument for an empty scope or key, one over its limit (default 255 bytes), a key
// or scope with bytes outside printable ASCII 0x20..0x7E, a response over response_bytes_max, a
// lease outside [lease_min, lease_max]; kFencedOut as above; kNotFound for Complete/Checkpoint/
// Release of a key that has no record; kFailedPrecondition for Complete of an already completed key
// by its own attempt with a different response (the same response again is ok: idempotent);
// kDataLoss for a stored record that does not decode (altered behind faultline's back); the store's
// own errors otherwise (kUnavailable; kAborted from the Transaction forms, and from the others only
// when all commit_attempts_max attempts conflicted — sustained contention on one key: retry later).
// Thread safety: an IdempotencyKeys is immutable after Create and may be shared by threads, as long
// as the LocalStore is safe to use from them.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"
#include "faultline/store/local_store.h"

namespace faultline::idempotency {

// SHA-256 of the canonical request the key was used with (method, path, body, ...).
using Fingerprint = std::array<uint8_t, 32>;
Fingerprint FingerprintOf(std::string_view canonical_request);
// Parses 64 lowercase or uppercase hex digits. kInvalidArgument otherwise (wrong length included).
Result<Fingerprint> FingerprintFromHex(std::string_view hex);

struct KeyOptions {
  // LocalStore keys used: prefix + scope + '\0' + key. Must be non-empty.
  std::string prefix = "idem/";
  size_t scope_bytes_max = 255;
  size_t key_bytes_max = 255;
  size_t recovery_point_bytes_max = 64;
  // The whole record (response + recovery point + 64 bytes) must fit the store's value limit
  // (LogStore: 1 MiB by default), hence half of that by default.
  size_t response_bytes_max = 1 << 19;
  Duration lease_min = Duration::Millis(10);
  Duration lease_max = Duration::Seconds(3600);
  // How long a completed record is replayed (and then may be deleted by Expire).
  Duration retention = Duration::Seconds(24 * 3600);
  // Records deleted per Expire transaction at most.
  size_t expire_batch_max = 1000;
  // Attempts (first included) of the forms that run their own transaction, when Commit conflicts.
  // Under SERIALIZABLE a handful of clients on one key conflict often; 1..1000.
  uint32_t commit_attempts_max = 32;

  Status Validate() const;
};

enum class ClaimState : uint8_t { kClaimed, kInProgress, kCompleted, kMismatch };
const char* ClaimStateName(ClaimState state);

struct Claim {
  ClaimState state = ClaimState::kClaimed;
  // kClaimed: this attempt's fencing token (1 on a first claim). Otherwise the record's attempt.
  uint64_t attempt = 0;
  // kClaimed: where to resume ("" = from the top). Otherwise empty.
  std::string recovery_point;
  // kInProgress: time until the current claim's lease runs out (≥ 0).
  Duration retry_after;
  // kCompleted: the stored response, byte-identical.
  std::string response;
  // kClaimed: an in-progress claim whose lease ran out was taken over (attempt > 1).
  bool takeover = false;
};

class IdempotencyKeys {
 public:
  // `store` and `clock` must outlive the object. kInvalidArgument for invalid options.
  static Result<std::unique_ptr<IdempotencyKeys>> Create(LocalStore& store, Clock& clock,
                                                         KeyOptions options = {});

  // Claims (scope, key) for a request with fingerprint `fp`, holding it for `lease`.
  Result<Claim> Acquire(std::string_view scope, std::string_view key, const Fingerprint& fp,
                        Duration lease);
  Result<Claim> Acquire(Transaction& txn, std::string_view scope, std::string_view key,
                        const Fingerprint& fp, Duration lease);

  // Ends an atomic phase: records `recovery_point` (non-empty) for `attempt` (and extends the
  // lease by `lease`, measured from now). kFencedOut if the attempt was superseded, released or
  // the key completed.
  Status Checkpoint(Transaction& txn, std::string_view scope, std::string_view key,
                    uint64_t attempt, std::string_view recovery_point, Duration lease);

  // Stores `response` and marks the key completed; replays return it from now on.
  Status Complete(std::string_view scope, std::string_view key, uint64_t attempt,
                  std::string_view response);
  Status Complete(Transaction& txn, std::string_view scope, std::string_view key, uint64_t attempt,
                  std::string_view response);

  // The attempt failed before any side effect: marks the record released (see above), so a retry
  // claims afresh (Powertools: "handler exception → delete record"). kFencedOut if superseded or
  // completed; releasing an already released attempt again is ok.
  Status Release(std::string_view scope, std::string_view key, uint64_t attempt);

  // Deletes up to expire_batch_max records whose expires_at <= now (completed or released past
  // their retention; in progress with a lease that ran out `retention` ago). Returns how many.
  Result<size_t> Expire();

  const KeyOptions& options() const { return options_; }
  // Acquire (the overload that runs its own transaction, after it committed) reports
  // kIdempotencyClaimed (a = attempt), kIdempotencyTakeover (a = the new attempt) or
  // kIdempotencyReplayed (a = the record's attempt). The overload inside a caller's transaction
  // reports nothing: only the caller knows whether it commits. No clock: `at` is MonoTime().
  ObserverSlot& observe() { return observer_; }

 private:
  IdempotencyKeys(LocalStore& store, Clock& clock, KeyOptions options)
      : store_(store), clock_(clock), options_(std::move(options)) {}
  LocalStore& store_;
  Clock& clock_;
  KeyOptions options_;
  ObserverSlot observer_;
};

}  // namespace faultline::idempotency
