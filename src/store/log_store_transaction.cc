// The Transaction interface of LogStore's transactions; see log_store_transaction.h.
#include "src/store/log_store_transaction.h"

#include <algorithm>
#include <utility>

namespace faultline::internal {

Status LogStoreTransaction::CheckOpen() const {
  if (finished_) return FailedPreconditionError("transaction already committed or rolled back");
  return Status::Ok();
}

Status LogStoreTransaction::CheckOp(std::string_view key,
                                    std::optional<std::string_view> value) const {
  FL_RETURN_IF_ERROR(CheckOpen());
  if (key.empty()) return InvalidArgumentError("empty key");
  if (key.size() > options().key_bytes_max) {
    return InvalidArgumentError("key longer than key_bytes_max");
  }
  if (value && value->size() > options().value_bytes_max) {
    return InvalidArgumentError("value longer than value_bytes_max");
  }
  return Status::Ok();
}

Status LogStoreTransaction::CheckReadRoom() const {
  if (read_keys_.size() + read_ranges_.size() >= options().txn_reads_max) {
    return ResourceExhaustedError("transaction already recorded txn_reads_max reads");
  }
  return Status::Ok();
}

Result<std::optional<std::string_view>> LogStoreTransaction::Lookup(std::string_view key) {
  const auto own = writes_.find(key);
  if (own != writes_.end()) {
    if (!own->second) return std::optional<std::string_view>();
    return std::optional<std::string_view>(*own->second);
  }
  if (!read_keys_.contains(key)) {
    FL_RETURN_IF_ERROR(CheckReadRoom());
    read_keys_.emplace(key);
  }
  const auto it = store_->data_.find(key);
  if (it == store_->data_.end()) return std::optional<std::string_view>();
  return std::optional<std::string_view>(it->second);
}

Status LogStoreTransaction::BufferWrite(std::string_view key,
                                        std::optional<std::string_view> value) {
  const auto it = writes_.find(key);
  const bool fresh = it == writes_.end();
  const uint64_t old_bytes = fresh ? 0 : key.size() + (it->second ? it->second->size() : 0);
  const uint64_t new_bytes = key.size() + (value ? value->size() : 0);
  if (fresh && writes_.size() >= options().txn_writes_max) {
    return ResourceExhaustedError("transaction already buffers txn_writes_max writes");
  }
  if (write_bytes_ - old_bytes + new_bytes > options().txn_bytes_max) {
    return ResourceExhaustedError("transaction would buffer more than txn_bytes_max bytes");
  }
  std::optional<std::string> stored;
  if (value) stored.emplace(*value);
  if (fresh) {
    writes_.emplace(std::string(key), std::move(stored));
  } else {
    it->second = std::move(stored);
  }
  write_bytes_ = write_bytes_ - old_bytes + new_bytes;
  FL_ASSERT(writes_.size() <= options().txn_writes_max);
  FL_ASSERT(write_bytes_ <= options().txn_bytes_max);
  return Status::Ok();
}

Result<std::optional<std::string>> LogStoreTransaction::Get(std::string_view key) {
  FL_RETURN_IF_ERROR(CheckOp(key));
  FL_ASSIGN_OR_RETURN(const std::optional<std::string_view> value, Lookup(key));
  if (!value) return std::optional<std::string>();
  return std::optional<std::string>(*value);
}

Status LogStoreTransaction::Put(std::string_view key, std::string_view value) {
  FL_RETURN_IF_ERROR(CheckOp(key, value));
  return BufferWrite(key, value);
}

Result<bool> LogStoreTransaction::InsertIfAbsent(std::string_view key, std::string_view value) {
  FL_RETURN_IF_ERROR(CheckOp(key, value));
  FL_ASSIGN_OR_RETURN(const std::optional<std::string_view> current, Lookup(key));
  if (current) return false;
  FL_RETURN_IF_ERROR(BufferWrite(key, value));
  return true;
}

Result<bool> LogStoreTransaction::CompareAndSet(std::string_view key,
                                                std::optional<std::string_view> expected,
                                                std::optional<std::string_view> desired) {
  FL_RETURN_IF_ERROR(CheckOp(key, desired));
  FL_ASSIGN_OR_RETURN(const std::optional<std::string_view> current, Lookup(key));
  const bool matches =
      current.has_value() == expected.has_value() && (!current || *current == *expected);
  if (!matches) return false;
  // Deleting an absent key changes nothing; buffering it would only cause false conflicts.
  if (desired || current) FL_RETURN_IF_ERROR(BufferWrite(key, desired));
  return true;
}

Result<bool> LogStoreTransaction::Delete(std::string_view key) {
  FL_RETURN_IF_ERROR(CheckOp(key));
  FL_ASSIGN_OR_RETURN(const std::optional<std::string_view> current, Lookup(key));
  if (!current) return false;
  FL_RETURN_IF_ERROR(BufferWrite(key, std::nullopt));
  return true;
}

Result<std::vector<KeyValue>> LogStoreTransaction::Scan(std::string_view begin,
                                                        std::string_view end, size_t limit) {
  FL_RETURN_IF_ERROR(CheckOpen());
  if (limit == 0 || limit > options().scan_limit_max) {
    return InvalidArgumentError("scan limit must be in [1, scan_limit_max]");
  }
  std::vector<KeyValue> out;
  const bool bounded = !end.empty();
  if (bounded && end <= begin) return out;  // an empty range reads nothing
  FL_RETURN_IF_ERROR(CheckReadRoom());
  const auto in_range = [&](std::string_view key) { return !bounded || key < end; };
  const auto& data = store_->data_;
  auto committed = data.lower_bound(begin);
  auto own = writes_.lower_bound(begin);
  while (out.size() < limit) {
    const bool has_committed = committed != data.end() && in_range(committed->first);
    const bool has_own = own != writes_.end() && in_range(own->first);
    if (!has_committed && !has_own) break;
    if (has_own && (!has_committed || own->first <= committed->first)) {
      if (has_committed && committed->first == own->first) ++committed;  // own write shadows it
      if (own->second) out.push_back({own->first, *own->second});
      ++own;
    } else {
      out.push_back({committed->first, committed->second});
      ++committed;
    }
  }
  FL_ASSERT(out.size() <= limit);
  Range range{std::string(begin), std::string(end), bounded};
  if (out.size() == limit) {
    // A full page read only up to its last key: the smallest key after it is last + '\0'.
    range.end = out.back().key + '\0';
    range.bounded = true;
  }
  read_ranges_.push_back(std::move(range));
  return out;
}

Status LogStoreTransaction::Commit() {
  FL_RETURN_IF_ERROR(CheckOpen());
  Status status = store_->CommitTransaction(*this);
  Finish();
  if (status.ok()) store_->MaybeCompact();
  return status;
}

void LogStoreTransaction::Finish() {
  FL_ASSERT(!finished_);
  finished_ = true;
  writes_.clear();
  read_keys_.clear();
  read_ranges_.clear();
  write_bytes_ = 0;
  store_->EndTransaction(begin_seq_);
}

}  // namespace faultline::internal
