#include "faultline/idempotency/idempotency_keys.h"

#include <optional>
#include <utility>
#include <vector>

#include "faultline/core/buggify.h"
#include "faultline/core/options.h"
#include "src/idempotency/record.h"
#include "src/idempotency/sha256.h"

namespace faultline::idempotency {

using internal::DecodeRecord;
using internal::EncodeRecord;
using internal::OrderedTime;
using internal::Record;
using internal::RecordState;

namespace {

constexpr std::string_view kIndexTag = "\x7fx";

std::string RecordKey(const KeyOptions& o, std::string_view scope, std::string_view key) {
  std::string out;
  out.reserve(o.prefix.size() + scope.size() + 1 + key.size());
  out.append(o.prefix).append(scope).push_back('\0');
  out.append(key);
  return out;
}

std::string IndexPrefix(const KeyOptions& o) { return o.prefix + std::string(kIndexTag); }

// The index entry names the record by its key without the prefix: scope + '\0' + key.
std::string IndexKey(const KeyOptions& o, WallTime expires_at, std::string_view record_key) {
  return IndexPrefix(o) + OrderedTime(expires_at) + std::string(record_key.substr(o.prefix.size()));
}

Status CheckIds(const KeyOptions& o, std::string_view scope, std::string_view key) {
  FL_RETURN_IF_ERROR(internal::CheckName("scope", scope, o.scope_bytes_max, true));
  return internal::CheckName("key", key, o.key_bytes_max, true);
}

// A record as read in a transaction: the raw value (for CompareAndSet) and its decoded form.
struct Loaded {
  std::string value;
  Record record;
};

Result<std::optional<Loaded>> Load(Transaction& txn, const std::string& record_key) {
  FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(record_key));
  if (!value) return std::optional<Loaded>();
  FL_ASSIGN_OR_RETURN(Record record, DecodeRecord(*value));
  return std::optional<Loaded>(Loaded{std::move(*value), std::move(record)});
}

// Replaces `old` by `next` and moves its expiry index entry. The CompareAndSet makes a store that
// is weaker than serializable (a READ COMMITTED session) lose cleanly instead of overwriting a
// concurrent writer; on LogStore it never fails, the transaction's read already being validated.
Status Replace(Transaction& txn, const KeyOptions& o, const std::string& record_key,
               const Loaded& old, const Record& next) {
  FL_ASSIGN_OR_RETURN(bool swapped, txn.CompareAndSet(record_key, old.value, EncodeRecord(next)));
  if (!swapped) return AbortedError("idempotency record changed concurrently");
  if (old.record.expires_at != next.expires_at) {
    FL_RETURN_IF_ERROR(txn.Delete(IndexKey(o, old.record.expires_at, record_key)).status());
    FL_RETURN_IF_ERROR(txn.Put(IndexKey(o, next.expires_at, record_key), ""));
  }
  return Status::Ok();
}

// The record `attempt` may write to, or why not.
Result<Loaded> LoadOwned(Transaction& txn, const std::string& record_key, uint64_t attempt) {
  FL_ASSIGN_OR_RETURN(std::optional<Loaded> loaded, Load(txn, record_key));
  if (!loaded) return NotFoundError("no idempotency record for this key");
  const Record& r = loaded->record;
  if (attempt != r.attempt) {
    return FencedOutError("attempt " + std::to_string(attempt) + " is superseded by attempt " +
                          std::to_string(r.attempt));
  }
  return std::move(*loaded);
}

Claim Claimed(uint64_t attempt, std::string recovery_point) {
  Claim claim;
  claim.state = ClaimState::kClaimed;
  claim.attempt = attempt;
  claim.recovery_point = std::move(recovery_point);
  return claim;
}

Claim Other(ClaimState state, const Record& r) {
  Claim claim;
  claim.state = state;
  claim.attempt = r.attempt;
  return claim;
}

}  // namespace

Fingerprint FingerprintOf(std::string_view canonical_request) {
  return internal::Sha256(canonical_request);
}

Result<Fingerprint> FingerprintFromHex(std::string_view hex) {
  if (hex.size() != 64) {
    return InvalidArgumentError("fingerprint must be 64 hex digits, got " +
                                std::to_string(hex.size()) + " characters");
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Fingerprint fp{};
  for (size_t i = 0; i < fp.size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return InvalidArgumentError("fingerprint has a non-hex character");
    fp[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return fp;
}

Status KeyOptions::Validate() const {
  FL_CHECK_OPTION(!prefix.empty(), "prefix must be non-empty");
  FL_CHECK_OPTION(scope_bytes_max > 0, "scope_bytes_max must be > 0");
  FL_CHECK_OPTION(key_bytes_max > 0, "key_bytes_max must be > 0");
  FL_CHECK_OPTION(recovery_point_bytes_max > 0, "recovery_point_bytes_max must be > 0");
  FL_CHECK_OPTION(lease_min > Duration::Zero(), "lease_min must be > 0");
  FL_CHECK_OPTION(lease_max >= lease_min, "lease_max must be >= lease_min");
  FL_CHECK_OPTION(!lease_max.is_infinite(), "lease_max must be finite");
  FL_CHECK_OPTION(retention > Duration::Zero(), "retention must be > 0");
  FL_CHECK_OPTION(!retention.is_infinite(), "retention must be finite");
  FL_CHECK_OPTION(expire_batch_max > 0, "expire_batch_max must be > 0");
  FL_CHECK_OPTION(commit_attempts_max >= 1 && commit_attempts_max <= 1000,
                  "commit_attempts_max must be in [1, 1000]");
  return Status::Ok();
}

const char* ClaimStateName(ClaimState state) {
  switch (state) {
    case ClaimState::kClaimed:
      return "claimed";
    case ClaimState::kInProgress:
      return "in_progress";
    case ClaimState::kCompleted:
      return "completed";
    case ClaimState::kMismatch:
      return "mismatch";
  }
  return "unknown";
}

Result<std::unique_ptr<IdempotencyKeys>> IdempotencyKeys::Create(LocalStore& store, Clock& clock,
                                                                 KeyOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<IdempotencyKeys>(new IdempotencyKeys(store, clock, std::move(options)));
}

Result<Claim> IdempotencyKeys::Acquire(std::string_view scope, std::string_view key,
                                       const Fingerprint& fp, Duration lease) {
  Claim claim;
  const Status status = RunInTransaction(
      store_,
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(claim, Acquire(txn, scope, key, fp, lease));
        return Status::Ok();
      },
      options_.commit_attempts_max);
  if (!status.ok()) return status;
  if (observer_.attached()) {
    const auto attempt = static_cast<int64_t>(claim.attempt);
    if (claim.state == ClaimState::kCompleted) {
      observer_.Emit(EventKind::kIdempotencyReplayed, MonoTime(), attempt);
    } else if (claim.state == ClaimState::kClaimed) {
      observer_.Emit(claim.takeover ? EventKind::kIdempotencyTakeover
                                    : EventKind::kIdempotencyClaimed,
                     MonoTime(), attempt);
    }
  }
  return claim;
}

Result<Claim> IdempotencyKeys::Acquire(Transaction& txn, std::string_view scope,
                                       std::string_view key, const Fingerprint& fp,
                                       Duration lease) {
  FL_RETURN_IF_ERROR(CheckIds(options_, scope, key));
  if (lease < options_.lease_min || lease > options_.lease_max) {
    return InvalidArgumentError("lease outside [lease_min, lease_max]");
  }
  const WallTime now = clock_.WallNow();
  const std::string record_key = RecordKey(options_, scope, key);
  Record fresh;
  fresh.fingerprint = fp;
  fresh.attempt = 1;
  fresh.lease_until = now + lease;
  fresh.expires_at = fresh.lease_until + options_.retention;
  FL_ASSIGN_OR_RETURN(bool inserted, txn.InsertIfAbsent(record_key, EncodeRecord(fresh)));
  if (inserted) {
    FL_RETURN_IF_ERROR(txn.Put(IndexKey(options_, fresh.expires_at, record_key), ""));
    return Claimed(1, "");
  }
  FL_ASSIGN_OR_RETURN(std::optional<Loaded> loaded, Load(txn, record_key));
  // Only a store weaker than serializable lets the record vanish between the two statements.
  if (!loaded) return AbortedError("idempotency record deleted concurrently");
  const Record& old = loaded->record;
  Record next = fresh;
  next.attempt = old.attempt + 1;
  // Past expires_at a record counts as absent whatever its state, exactly as if Expire had
  // already deleted it: the outcome never depends on when Expire ran.
  const RecordState state = now >= old.expires_at ? RecordState::kReleased : old.state;
  switch (state) {
    case RecordState::kCompleted: {
      if (old.fingerprint != fp) return Other(ClaimState::kMismatch, old);
      Claim claim = Other(ClaimState::kCompleted, old);
      claim.response = old.response;
      return claim;
    }
    case RecordState::kReleased:
      break;  // released, or past retention: a new request, claimed afresh from the top
    case RecordState::kInProgress:
      if (old.fingerprint != fp) return Other(ClaimState::kMismatch, old);
      if (now < old.lease_until) {
        Claim claim = Other(ClaimState::kInProgress, old);
        claim.retry_after = old.lease_until - now;
        return claim;
      }
      FL_PROBE("idempotency.takeover");
      next.recovery_point = old.recovery_point;  // takeover: resume where the last attempt got
      break;
  }
  FL_RETURN_IF_ERROR(Replace(txn, options_, record_key, *loaded, next));
  Claim claim = Claimed(next.attempt, next.recovery_point);
  claim.takeover = state == RecordState::kInProgress;
  return claim;
}

Status IdempotencyKeys::Checkpoint(Transaction& txn, std::string_view scope, std::string_view key,
                                   uint64_t attempt, std::string_view recovery_point,
                                   Duration lease) {
  FL_RETURN_IF_ERROR(CheckIds(options_, scope, key));
  FL_RETURN_IF_ERROR(internal::CheckName("recovery_point", recovery_point,
                                         options_.recovery_point_bytes_max, false));
  if (lease < options_.lease_min || lease > options_.lease_max) {
    return InvalidArgumentError("lease outside [lease_min, lease_max]");
  }
  const WallTime now = clock_.WallNow();
  const std::string record_key = RecordKey(options_, scope, key);
  FL_ASSIGN_OR_RETURN(Loaded loaded, LoadOwned(txn, record_key, attempt));
  if (loaded.record.state != RecordState::kInProgress) {
    return FencedOutError("attempt " + std::to_string(attempt) +
                          " already ended (completed or released)");
  }
  Record next = loaded.record;
  next.recovery_point = std::string(recovery_point);
  next.lease_until = now + lease;
  next.expires_at = next.lease_until + options_.retention;
  return Replace(txn, options_, record_key, loaded, next);
}

Status IdempotencyKeys::Complete(std::string_view scope, std::string_view key, uint64_t attempt,
                                 std::string_view response) {
  return RunInTransaction(
      store_, [&](Transaction& txn) { return Complete(txn, scope, key, attempt, response); },
      options_.commit_attempts_max);
}

Status IdempotencyKeys::Complete(Transaction& txn, std::string_view scope, std::string_view key,
                                 uint64_t attempt, std::string_view response) {
  FL_RETURN_IF_ERROR(CheckIds(options_, scope, key));
  if (response.size() > options_.response_bytes_max) {
    return InvalidArgumentError("response is " + std::to_string(response.size()) +
                                " bytes, over response_bytes_max");
  }
  const WallTime now = clock_.WallNow();
  const std::string record_key = RecordKey(options_, scope, key);
  FL_ASSIGN_OR_RETURN(Loaded loaded, LoadOwned(txn, record_key, attempt));
  switch (loaded.record.state) {
    case RecordState::kCompleted:
      if (loaded.record.response == response) return Status::Ok();
      return FailedPreconditionError("key already completed with a different response");
    case RecordState::kReleased:
      return FencedOutError("attempt " + std::to_string(attempt) + " was released");
    case RecordState::kInProgress:
      break;
  }
  Record next = loaded.record;
  next.state = RecordState::kCompleted;
  next.response = std::string(response);
  next.expires_at = now + options_.retention;
  return Replace(txn, options_, record_key, loaded, next);
}

Status IdempotencyKeys::Release(std::string_view scope, std::string_view key, uint64_t attempt) {
  FL_RETURN_IF_ERROR(CheckIds(options_, scope, key));
  return RunInTransaction(
      store_,
      [&](Transaction& txn) -> Status {
        const WallTime now = clock_.WallNow();
        const std::string record_key = RecordKey(options_, scope, key);
        FL_ASSIGN_OR_RETURN(Loaded loaded, LoadOwned(txn, record_key, attempt));
        switch (loaded.record.state) {
          case RecordState::kReleased:
            return Status::Ok();
          case RecordState::kCompleted:
            return FencedOutError("attempt " + std::to_string(attempt) + " already completed");
          case RecordState::kInProgress:
            break;
        }
        Record next = loaded.record;
        next.state = RecordState::kReleased;
        next.recovery_point.clear();
        next.expires_at = now + options_.retention;
        return Replace(txn, options_, record_key, loaded, next);
      },
      options_.commit_attempts_max);
}

Result<size_t> IdempotencyKeys::Expire() {
  size_t deleted = 0;
  const Status status = RunInTransaction(
      store_,
      [&](Transaction& txn) -> Status {
        deleted = 0;
        const WallTime now = clock_.WallNow();
        const std::string begin = IndexPrefix(options_);
        const std::string end = begin + OrderedTime(now + Duration::Nanos(1));
        FL_ASSIGN_OR_RETURN(std::vector<KeyValue> entries,
                            txn.Scan(begin, end, options_.expire_batch_max));
        for (const KeyValue& entry : entries) {
          const std::string_view rest = std::string_view(entry.key).substr(begin.size());
          FL_ASSIGN_OR_RETURN(WallTime at, internal::ParseOrderedTime(rest));
          const std::string record_key = options_.prefix + std::string(rest.substr(8));
          FL_ASSIGN_OR_RETURN(std::optional<Loaded> loaded, Load(txn, record_key));
          // An entry whose record moved on (or vanished) is stale; Replace never leaves one, but a
          // reader must not trust that.
          if (loaded && loaded->record.expires_at == at) {
            FL_RETURN_IF_ERROR(txn.Delete(record_key).status());
            ++deleted;
          }
          FL_RETURN_IF_ERROR(txn.Delete(entry.key).status());
        }
        return Status::Ok();
      },
      options_.commit_attempts_max);
  if (!status.ok()) return status;
  return deleted;
}

}  // namespace faultline::idempotency
