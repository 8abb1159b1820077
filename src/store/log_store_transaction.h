// LogStore's transaction, private to the store: log_store.cc creates, validates and applies it;
// log_store_transaction.cc implements the Transaction interface (buffered writes and the read
// set that Commit validates).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/store/log_store.h"

namespace faultline {

namespace internal {

// A LogStore transaction: buffered writes, a recorded read set, checked and applied at Commit.
class LogStoreTransaction final : public Transaction {
 public:
  LogStoreTransaction(LogStore* store, uint64_t begin_seq) : store_(store), begin_seq_(begin_seq) {
    FL_ASSERT(store != nullptr);
  }
  ~LogStoreTransaction() override {
    if (!finished_) Rollback();
  }

  Result<std::optional<std::string>> Get(std::string_view key) override;
  Status Put(std::string_view key, std::string_view value) override;
  Result<bool> InsertIfAbsent(std::string_view key, std::string_view value) override;
  Result<bool> CompareAndSet(std::string_view key, std::optional<std::string_view> expected,
                             std::optional<std::string_view> desired) override;
  Result<bool> Delete(std::string_view key) override;
  Result<std::vector<KeyValue>> Scan(std::string_view begin, std::string_view end,
                                     size_t limit) override;
  Status Commit() override;
  void Rollback() override {
    if (!finished_) Finish();
  }

 private:
  friend class faultline::LogStore;
  struct Range {
    std::string begin;
    std::string end;  // exclusive; unused when !bounded
    bool bounded = false;
  };

  const LogStoreOptions& options() const { return store_->options_; }
  Status CheckOpen() const;
  // Every point operation starts here: open transaction, key and value to write within limits.
  Status CheckOp(std::string_view key, std::optional<std::string_view> value = std::nullopt) const;
  Status CheckReadRoom() const;
  // The key's value as this transaction sees it; records a read when it consults committed state.
  Result<std::optional<std::string_view>> Lookup(std::string_view key);
  Status BufferWrite(std::string_view key, std::optional<std::string_view> value);
  void Finish();

  LogStore* const store_;
  const uint64_t begin_seq_;
  bool finished_ = false;
  std::map<std::string, std::optional<std::string>, std::less<>> writes_;  // nullopt: delete
  uint64_t write_bytes_ = 0;
  std::set<std::string, std::less<>> read_keys_;
  std::vector<Range> read_ranges_;
};

}  // namespace internal
}  // namespace faultline
