// File: faultline/shard/shard_store.h
//
// ShardStore: one shard's rows in a LocalStore, with fenced writes and a change log a mover tails.
//
// Layout, every key under options.prefix P:
//   P "d/" key        the row (value bytes as written)
//   P "f/" begin      an owned range: [begin, end), its epoch and state (the fence record)
//   P "h"             the log head: the sequence number the next accepted write gets
//   P "l/" seq        a change-log entry (seq 8-byte big-endian, so log order is key order)
//
// Fenced writes. Write() runs ONE transaction that (1) finds the fence record whose range holds the
// key, (2) refuses the write unless the range is kServing and the write's epoch is not below the
// record's, (3) reads and bumps the log head, (4) writes the row and (5) appends the log entry
// {seq, key, value or delete, epoch}. Because every accepted write and every fence change
// (SetRange) read-modify-write the same head row, they are totally ordered by the store's
// serializable transactions: a fence that commits first makes the write re-read it and be refused;
// a write that commits first has a sequence number below the head the fence read. So "the head at
// fencing time" bounds every write the source will ever accept in that range, which is what the
// mover's final catch-up copies up to. The head row also makes the log gapless and in commit order
// (a tailer never skips an entry committed late with a lower number).
//
// Refusals (nothing written):
//   no record holds the key           kFailedPrecondition "KeyNotInShard: ..."
//   state kMovedOut                   kFencedOut "RangeMoved: ... current epoch E"
//   epoch below the record's          kFencedOut "StaleEpoch: ... current epoch E"
//   state kFenced (cutover running)   kFailedPrecondition "RangeFenced: ... epoch E"
//   state kIncoming (not yet opened)  kFailedPrecondition "RangeNotOpen: ... epoch E"
// IsMoveRetryable() is true for all but the first: a client refreshes its map and retries
// (ShardClient does, within a bounded buffer window). Reads check ownership the same way; a read
// is allowed in kFenced (the source still holds the latest data until the switch) but not in
// kIncoming or kMovedOut.
//
// Mover operations (ApplyRow, ScanRows, ReadLog, SetRange) bypass the client checks: they are how a
// range's rows arrive on a target that does not serve it yet. Applied rows are not logged (the
// log records client writes only; a reverse mover tails the target's log from the switch on).
//
// Thread safety: as the LocalStore. The one-shot client Write queues the calls of one process on a
// mutex: every write to a shard store read-modify-writes its head row, so they could never run in
// parallel anyway, and under PostgreSQL's serializable isolation writers racing for the row fail
// with 40001 instead of waiting, which lets a writer that just committed win again and again while
// the others starve. Queued, they take turns; conflicts remain only across processes (kAborted,
// retried by RunInTransaction and then by ShardClient).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/ids.h"
#include "faultline/core/status.h"
#include "faultline/store/local_store.h"

namespace faultline::shard {

enum class RangeState : uint8_t {
  kServing = 1,   // accepts client reads and writes with epoch >= the record's
  kFenced = 2,    // moving away, cutover running: client writes refused (retryable), reads allowed
  kIncoming = 3,  // moving in, not yet opened: client reads and writes refused (retryable)
  kMovedOut = 4,  // moved away: refused with kFencedOut and the current epoch
};
std::string_view RangeStateName(RangeState state);

// A fence record. end "" = unbounded.
struct OwnedRange {
  std::string begin;
  std::string end;
  Epoch epoch;
  RangeState state = RangeState::kServing;
  friend bool operator==(const OwnedRange&, const OwnedRange&) = default;
};

struct LogEntry {
  uint64_t seq = 0;
  std::string key;
  std::optional<std::string> value;  // nullopt: the write deleted the row
  Epoch epoch;
};

// True for the refusals a move causes and a retry after a map refresh can get past.
bool IsMoveRetryable(const Status& status);

// True when `key` is in [begin, end) (end "" unbounded).
bool RangeContains(std::string_view begin, std::string_view end, std::string_view key);

struct ShardStoreOptions {
  std::string prefix = "faultline/shard/data/";
  uint32_t attempts_max = 64;  // RunInTransaction attempts for the one-shot operations
  uint32_t ranges_max = 4096;  // fence records per shard
};

class ShardStore {
 public:
  // `store` must outlive this. prefix non-empty.
  ShardStore(LocalStore& store, ShardStoreOptions options = {});

  LocalStore& store() { return *store_; }
  const ShardStoreOptions& options() const { return options_; }

  // --- client operations
  // Puts (value) or deletes (nullopt) `key` with the route's epoch, in its own transaction.
  Status Write(std::string_view key, std::optional<std::string_view> value, Epoch epoch);
  // The same inside the caller's transaction (with its other writes, atomically).
  Status Write(Transaction& txn, std::string_view key, std::optional<std::string_view> value,
               Epoch epoch);
  Result<std::optional<std::string>> Read(std::string_view key, Epoch epoch);

  // --- fence records
  Result<std::vector<OwnedRange>> Ranges(Transaction& txn);
  Result<std::vector<OwnedRange>> Ranges();
  // Makes [range.begin, range.end) one record with range's epoch and state, trimming or splitting
  // the records it overlaps (their parts outside keep their epoch and state), and bumps the head.
  // Returns the head after the change: every write this store accepted in the range before is
  // below it, and none at or above it can be accepted while the state refuses writes.
  Result<uint64_t> SetRange(Transaction& txn, const OwnedRange& range);
  Result<uint64_t> SetRange(const OwnedRange& range);
  // Removes every record inside [begin, end) (parts of records overlapping it are kept).
  Status DropRange(Transaction& txn, std::string_view begin, std::string_view end);

  // --- mover operations
  // The next sequence number to be assigned.
  Result<uint64_t> LogHead(Transaction& txn);
  // Entries with from <= seq < to, in order, at most `limit`.
  Result<std::vector<LogEntry>> ReadLog(Transaction& txn, uint64_t from, uint64_t to, size_t limit);
  // Rows with key in [begin, end) (end "" unbounded), in key order, at most `limit`; keys without
  // the prefix.
  Result<std::vector<KeyValue>> ScanRows(Transaction& txn, std::string_view begin,
                                         std::string_view end, size_t limit);
  // Writes (or deletes) a row without a fence check and without a log entry.
  Status ApplyRow(Transaction& txn, std::string_view key, std::optional<std::string_view> value);
  // Deletes up to `limit` change-log entries below `before`; returns how many. The log is never
  // trimmed on its own: call this with the lowest position any mover still tails from (a
  // Reshard's fence_seq once it is complete or reversed, its start_seq while it runs).
  Result<size_t> TruncateLog(Transaction& txn, uint64_t before, size_t limit);
  // Deletes up to `limit` rows of [begin, end); returns how many.
  Result<size_t> DeleteRows(Transaction& txn, std::string_view begin, std::string_view end,
                            size_t limit);

 private:
  std::string RowKey(std::string_view key) const;
  std::string FenceKey(std::string_view begin) const;
  std::string LogKey(uint64_t seq) const;
  std::string HeadKey() const;
  Result<uint64_t> BumpHead(Transaction& txn);
  // The record holding `key`, or nullopt.
  Result<std::optional<OwnedRange>> FindRange(Transaction& txn, std::string_view key);

  LocalStore* store_;
  ShardStoreOptions options_;
  std::unique_ptr<std::mutex> write_mu_ = std::make_unique<std::mutex>();
};

}  // namespace faultline::shard
