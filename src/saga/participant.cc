#include "faultline/saga/participant.h"

#include <utility>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/core/options.h"
#include "src/saga/saga_record.h"

namespace faultline::saga {
namespace {

constexpr char kApplied = 'F';
constexpr char kCompensated = 'C';
constexpr uint8_t kLockVersion = 1;

struct LockRow {
  uint64_t next_seq = 0;
  std::string owner;
};

std::string EncodeLock(const LockRow& row) {
  std::vector<uint8_t> out;
  ByteWriter writer(&out);
  writer.U8(kLockVersion);
  writer.U64(row.next_seq);
  writer.Bytes(row.owner);
  return std::string(out.begin(), out.end());
}

Result<LockRow> DecodeLock(std::string_view value) {
  ByteReader reader({reinterpret_cast<const uint8_t*>(value.data()), value.size()});
  LockRow row;
  uint8_t version = 0;
  Status status = reader.U8(&version);
  if (status.ok() && version != kLockVersion) status = DataLossError("unknown version");
  if (status.ok()) status = reader.U64(&row.next_seq);
  if (status.ok()) status = reader.Bytes(&row.owner, value.size());
  if (status.ok() && (!reader.empty() || row.owner.empty())) status = DataLossError("bad fields");
  if (!status.ok()) {
    return DataLossError("semantic lock row does not decode: " + std::string(status.message()));
  }
  return row;
}

std::string BigEndian(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * (7 - i)));
  return out;
}

Result<std::optional<char>> GuardState(Transaction& txn, const std::string& key) {
  FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(key));
  if (!value) return std::optional<char>();
  if (value->size() != 1 || ((*value)[0] != kApplied && (*value)[0] != kCompensated)) {
    return DataLossError("participant guard record for " + key + " does not decode");
  }
  return std::optional<char>((*value)[0]);
}

}  // namespace

const char* GuardVerdictName(GuardVerdict verdict) {
  switch (verdict) {
    case GuardVerdict::kApply:
      return "apply";
    case GuardVerdict::kDuplicate:
      return "duplicate";
    case GuardVerdict::kRefused:
      return "refused";
    case GuardVerdict::kTombstone:
      return "tombstone";
  }
  return "?";
}

// ---- ParticipantGuard -----------------------------------------------------------------------

Result<GuardVerdict> ParticipantGuard::ApplyForward(Transaction& txn,
                                                    std::string_view forward_key) {
  if (forward_key.empty()) return InvalidArgumentError("forward key is empty");
  const std::string key = prefix_ + std::string(forward_key);
  FL_ASSIGN_OR_RETURN(std::optional<char> state, GuardState(txn, key));
  if (!state) {
    FL_RETURN_IF_ERROR(txn.Put(key, std::string(1, kApplied)));
    return GuardVerdict::kApply;
  }
  return *state == kApplied ? GuardVerdict::kDuplicate : GuardVerdict::kRefused;
}

Result<GuardVerdict> ParticipantGuard::ApplyCompensation(Transaction& txn,
                                                         std::string_view forward_key) {
  if (forward_key.empty()) return InvalidArgumentError("forward key is empty");
  const std::string key = prefix_ + std::string(forward_key);
  FL_ASSIGN_OR_RETURN(std::optional<char> state, GuardState(txn, key));
  if (state && *state == kCompensated) return GuardVerdict::kDuplicate;
  FL_RETURN_IF_ERROR(txn.Put(key, std::string(1, kCompensated)));
  return state ? GuardVerdict::kApply : GuardVerdict::kTombstone;
}

Result<bool> ParticipantGuard::Forget(Transaction& txn, std::string_view forward_key) {
  if (forward_key.empty()) return InvalidArgumentError("forward key is empty");
  return txn.Delete(prefix_ + std::string(forward_key));
}

// ---- SemanticLocks --------------------------------------------------------------------------

Status SemanticLockOptions::Validate() const {
  FL_CHECK_OPTION(!prefix.empty(), "prefix must be non-empty");
  FL_CHECK_OPTION(target_bytes_max > 0, "target_bytes_max must be > 0");
  FL_CHECK_OPTION(saga_id_bytes_max > 0, "saga_id_bytes_max must be > 0");
  FL_CHECK_OPTION(waiters_max >= 1 && waiters_max <= 100000, "waiters_max must be in [1, 100000]");
  return Status::Ok();
}

Result<SemanticLocks> SemanticLocks::Create(SemanticLockOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return SemanticLocks(std::move(options));
}

Result<bool> SemanticLocks::Claim(Transaction& txn, std::string_view target,
                                  std::string_view saga_id) {
  FL_RETURN_IF_ERROR(internal::CheckPrintable("lock target", target, options_.target_bytes_max));
  FL_RETURN_IF_ERROR(internal::CheckPrintable("saga id", saga_id, options_.saga_id_bytes_max));
  const std::string lock_key = options_.prefix + "l/" + std::string(target);
  FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(lock_key));
  if (!value) {
    FL_RETURN_IF_ERROR(txn.Put(lock_key, EncodeLock({0, std::string(saga_id)})));
    return true;
  }
  FL_ASSIGN_OR_RETURN(LockRow row, DecodeLock(*value));
  if (row.owner == saga_id) return true;
  FL_ASSIGN_OR_RETURN(std::vector<std::string> waiters, Waiters(txn, target));
  for (const std::string& w : waiters) {
    if (w == saga_id) return false;  // already queued
  }
  if (waiters.size() >= options_.waiters_max) {
    return ResourceExhaustedError("semantic lock " + std::string(target) + " has " +
                                  std::to_string(waiters.size()) + " waiters, the limit");
  }
  std::string waiter_key = options_.prefix + "w/" + std::string(target);
  waiter_key.push_back('\0');
  waiter_key += BigEndian(row.next_seq);
  row.next_seq += 1;
  FL_RETURN_IF_ERROR(txn.Put(waiter_key, saga_id));
  FL_RETURN_IF_ERROR(txn.Put(lock_key, EncodeLock(row)));
  return false;
}

Result<std::optional<std::string>> SemanticLocks::Release(Transaction& txn, std::string_view target,
                                                          std::string_view saga_id) {
  FL_RETURN_IF_ERROR(internal::CheckPrintable("lock target", target, options_.target_bytes_max));
  FL_RETURN_IF_ERROR(internal::CheckPrintable("saga id", saga_id, options_.saga_id_bytes_max));
  const std::string lock_key = options_.prefix + "l/" + std::string(target);
  FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(lock_key));
  if (!value) return std::optional<std::string>();  // free: a retried release
  FL_ASSIGN_OR_RETURN(LockRow row, DecodeLock(*value));
  std::string begin = options_.prefix + "w/" + std::string(target);
  begin.push_back('\0');
  std::string end = options_.prefix + "w/" + std::string(target);
  end.push_back('\1');
  FL_ASSIGN_OR_RETURN(std::vector<KeyValue> queue, txn.Scan(begin, end, options_.waiters_max + 1));
  if (row.owner != saga_id) {
    for (const KeyValue& w : queue) {
      if (w.value == saga_id) {
        FL_RETURN_IF_ERROR(txn.Delete(w.key).status());
        return std::optional<std::string>();
      }
    }
    return std::optional<std::string>();  // neither holder nor waiter: already released
  }
  if (queue.empty()) {
    FL_RETURN_IF_ERROR(txn.Delete(lock_key).status());
    return std::optional<std::string>();
  }
  row.owner = queue.front().value;
  FL_RETURN_IF_ERROR(txn.Delete(queue.front().key).status());
  FL_RETURN_IF_ERROR(txn.Put(lock_key, EncodeLock(row)));
  return std::optional<std::string>(row.owner);
}

Result<std::optional<std::string>> SemanticLocks::Owner(Transaction& txn, std::string_view target) {
  FL_RETURN_IF_ERROR(internal::CheckPrintable("lock target", target, options_.target_bytes_max));
  FL_ASSIGN_OR_RETURN(std::optional<std::string> value,
                      txn.Get(options_.prefix + "l/" + std::string(target)));
  if (!value) return std::optional<std::string>();
  FL_ASSIGN_OR_RETURN(LockRow row, DecodeLock(*value));
  return std::optional<std::string>(std::move(row.owner));
}

Result<std::vector<std::string>> SemanticLocks::Waiters(Transaction& txn, std::string_view target) {
  FL_RETURN_IF_ERROR(internal::CheckPrintable("lock target", target, options_.target_bytes_max));
  std::string begin = options_.prefix + "w/" + std::string(target);
  begin.push_back('\0');
  std::string end = options_.prefix + "w/" + std::string(target);
  end.push_back('\1');
  FL_ASSIGN_OR_RETURN(std::vector<KeyValue> queue, txn.Scan(begin, end, options_.waiters_max + 1));
  std::vector<std::string> out;
  out.reserve(queue.size());
  for (KeyValue& w : queue) out.push_back(std::move(w.value));
  return out;
}

}  // namespace faultline::saga
