#include "faultline/idempotency/inbox.h"

#include <optional>
#include <utility>
#include <vector>

#include "faultline/core/options.h"
#include "src/idempotency/record.h"

namespace faultline::idempotency {

namespace {

constexpr uint8_t kInboxVersion = 1;

std::string EncodeInboxValue(WallTime expires_at) {
  std::string out(1, static_cast<char>(kInboxVersion));
  out += internal::OrderedTime(expires_at);
  return out;
}

}  // namespace

Status InboxOptions::Validate() const {
  FL_CHECK_OPTION(!prefix.empty(), "prefix must be non-empty");
  FL_CHECK_OPTION(consumer_bytes_max > 0, "consumer_bytes_max must be > 0");
  FL_CHECK_OPTION(message_id_bytes_max > 0, "message_id_bytes_max must be > 0");
  FL_CHECK_OPTION(retention > Duration::Zero(), "retention must be > 0");
  FL_CHECK_OPTION(!retention.is_infinite(), "retention must be finite");
  FL_CHECK_OPTION(expire_batch_max > 0, "expire_batch_max must be > 0");
  FL_CHECK_OPTION(commit_attempts_max >= 1 && commit_attempts_max <= 1000,
                  "commit_attempts_max must be in [1, 1000]");
  return Status::Ok();
}

Result<std::unique_ptr<Inbox>> Inbox::Create(LocalStore& store, Clock& clock, std::string consumer,
                                             InboxOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  FL_RETURN_IF_ERROR(internal::CheckName("consumer", consumer, options.consumer_bytes_max, true));
  return std::unique_ptr<Inbox>(new Inbox(store, clock, std::move(consumer), std::move(options)));
}

Result<bool> Inbox::Record(Transaction& txn, std::string_view message_id) {
  FL_RETURN_IF_ERROR(
      internal::CheckName("message id", message_id, options_.message_id_bytes_max, false));
  const WallTime expires_at = clock_.WallNow() + options_.retention;
  std::string key = options_.prefix + consumer_;
  key.push_back('\0');
  key.append(message_id);
  FL_ASSIGN_OR_RETURN(bool inserted, txn.InsertIfAbsent(key, EncodeInboxValue(expires_at)));
  if (!inserted) return false;
  std::string index = options_.prefix + "\x7f" + consumer_;
  index.push_back('\0');
  index += internal::OrderedTime(expires_at);
  index.append(message_id);
  FL_RETURN_IF_ERROR(txn.Put(index, ""));
  return true;
}

Result<bool> Inbox::Process(std::string_view message_id,
                            const std::function<Status(Transaction&)>& effects) {
  bool applied = false;
  const Status status = RunInTransaction(
      store_,
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(applied, Record(txn, message_id));
        if (!applied) return Status::Ok();
        return effects(txn);
      },
      options_.commit_attempts_max);
  if (!status.ok()) return status;
  observer_.Emit(applied ? EventKind::kIdempotencyClaimed : EventKind::kIdempotencyReplayed,
                 MonoTime());
  return applied;
}

Result<size_t> Inbox::Expire() {
  size_t deleted = 0;
  const Status status = RunInTransaction(
      store_,
      [&](Transaction& txn) -> Status {
        deleted = 0;
        std::string begin = options_.prefix + "\x7f" + consumer_;
        begin.push_back('\0');
        const std::string end =
            begin + internal::OrderedTime(clock_.WallNow() + Duration::Nanos(1));
        FL_ASSIGN_OR_RETURN(std::vector<KeyValue> entries,
                            txn.Scan(begin, end, options_.expire_batch_max));
        for (const KeyValue& entry : entries) {
          const std::string_view rest = std::string_view(entry.key).substr(begin.size());
          if (rest.size() <= 8) return DataLossError("inbox index entry does not decode");
          std::string key = options_.prefix + consumer_;
          key.push_back('\0');
          key.append(rest.substr(8));
          FL_ASSIGN_OR_RETURN(bool existed, txn.Delete(key));
          if (existed) ++deleted;
          FL_RETURN_IF_ERROR(txn.Delete(entry.key).status());
        }
        return Status::Ok();
      },
      options_.commit_attempts_max);
  if (!status.ok()) return status;
  return deleted;
}

}  // namespace faultline::idempotency
