// File: faultline/store/log_store.h
//
// LogStore: the LocalStore implementation used by the simulator and by embedded single-node
// deployments. It keeps the whole key space in memory (an ordered map) and makes commits durable
// with a write-ahead log on any `Disk`, so under SimDisk a crash keeps every acknowledged commit
// and loses every unacknowledged one, never half of one.
//
// Contract (see local_store.h for the interface):
// - Transactions are serializable, by optimistic concurrency control. A transaction records what it
//   read from committed state: point keys (Get, InsertIfAbsent, CompareAndSet and Delete all read
//   their key) and scanned ranges. A Scan that returned `limit` pairs has read [begin, last key
//   returned]; one that returned fewer has read all of [begin, end). Reads answered entirely from
//   the transaction's own writes depend on nothing and are not recorded. At Commit, if any
//   recorded key, or any key inside a recorded range, was changed (written or deleted) by a
//   transaction that committed after this one began, Commit fails with kAborted and applies
//   nothing. Blind writes (Put without a read) never conflict; the later commit wins.
// - Reads see committed state plus the transaction's own writes (read-your-writes, also in Scan,
//   where own puts and deletes are merged in key order before the limit applies).
// - Commit appends one record to the log and syncs it; only then is the transaction applied in
//   memory and ok returned. A read-only transaction commits without touching the disk.
// - Keys must be non-empty (kInvalidArgument): an empty key is almost always an uninitialised
//   variable, and rejecting it keeps the empty string free to mean "unbounded" in Scan. Keys over
//   key_bytes_max and values over value_bytes_max are kInvalidArgument; a Scan limit of 0 or over
//   scan_limit_max is kInvalidArgument; a transaction that would buffer more than txn_writes_max
//   distinct keys or txn_bytes_max bytes, or record more than txn_reads_max reads, gets
//   kResourceExhausted from the operation that would exceed it (the transaction stays usable).
//   Begin with open_txns_max transactions open is kResourceExhausted.
// - Any operation on a committed or rolled-back transaction is kFailedPrecondition; Rollback of a
//   finished transaction does nothing. Destroying an unfinished transaction rolls it back.
// - I/O failure poisons the store (the PostgreSQL fsync lesson: after a failed write or fsync
//   nobody knows what reached the platter). The failing Commit returns kUnavailable and is not
//   applied in memory; every later Begin, Commit and Compact returns kUnavailable until the store
//   is reopened, and reopening recovers whatever did reach the disk: the unacknowledged
//   transaction whole, or not at all. A failed compaction also poisons the store, but the commit
//   that triggered it was already durable and still returns ok.
//
// Files on the Disk, for options.name = "store":
//   store.super.a, store.super.b   superblock slots, 12 bytes each: u64 generation, u32 CRC-32C of
//                                  those 8 bytes (little-endian). Generation 0 means invalid.
//   store.log.<generation>         the log of that generation: a sequence of records
//     record  = u32 payload length, u32 CRC-32C(payload), payload
//     payload = u64 commit seq, varint op count, ops
//     op      = u8 1 (put), bytes key, bytes value  |  u8 2 (delete), bytes key
//   ("bytes" is a varint length then the raw bytes.) Every generation's log starts with a snapshot
//   of the whole state as put records (split so each obeys txn_writes_max and txn_bytes_max; an
//   empty state is one record with zero ops), followed by one record per committed transaction.
//   Commit seqs never decrease along a log.
//
// Compaction and crash safety. When the log grows past max(wal_bytes_max, 2 x the last snapshot)
// (the factor keeps a state larger than wal_bytes_max from compacting on every commit):
//   1. write the snapshot to store.log.<g+1> (a stale file of that name is removed first); Sync;
//   2. write generation g+1 into the slot that does NOT hold g (it holds g-1, or garbage); Sync;
//   3. remove store.log.<g>.
// The slot holding the live generation is never written, so a crash at any point leaves it valid:
// before step 2's Sync the old generation (whose log is complete) is what recovery finds, after it
// the new one (whose log was synced in step 1). A torn slot fails its CRC and is ignored.
// Open reads both slots, takes the valid one with the highest generation and replays its log:
// records are applied in order until the first one that is cut short or fails its CRC -- the torn
// tail of a crash; the file is truncated to the end of the last good record and synced, so later
// appends never follow garbage. A record whose CRC matches but which does not decode (unknown op,
// a length over the options' limits, decreasing seq) was written whole, so it is not a torn tail:
// Open fails with kDataLoss rather than silently truncate acknowledged commits (this also catches
// reopening with lower key/value/transaction limits than the data was written with). Open then
// syncs the log and the chosen slot -- what it read may have been an unsynced write still in the
// page cache of a process that died after a failed fsync, and serving it un-synced would let a
// later power loss un-commit what readers saw -- and only then removes every other store.log.*.
// With no valid slot, a never-initialised store (no slot b, no log beyond generation 1's empty
// snapshot) is created afresh; anything else is kDataLoss.
//
// Memory: the whole state lives in memory, and Open and compaction hold one full log or snapshot
// image at a time. Tombstones and per-key commit seqs are kept only while an open transaction
// began before them, and dropped when none did.
//
// Thread safety: none. A LogStore and its transactions belong to one node's executor. The store
// must outlive its transactions; destroying it with a transaction open fails an FL_ASSERT. At most
// one LogStore may have a given (Disk, name) open at a time; nothing detects a second one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/env/disk.h"
#include "faultline/store/local_store.h"

namespace faultline {

namespace internal {
class LogStoreTransaction;
}  // namespace internal

// The points inside WriteGeneration (fresh store creation and compaction) where a test hook can
// stop the work as a crash would.
enum class LogStoreCompactionStep : uint8_t {
  kSnapshotWritten,    // the new generation's log is written, not yet synced
  kSnapshotSynced,     // the new log is durable; no superblock touched
  kSuperblockWritten,  // the new slot is written, not yet synced
  kSuperblockSynced,   // the new generation is published; the old log still exists
  kOldLogRemoved,      // compaction finished (not reached when creating a fresh store)
};

struct LogStoreOptions {
  std::string name = "store";        // file-name prefix on the Disk
  uint64_t wal_bytes_max = 4 << 20;  // compact once the log grows past this (see header)
  uint32_t key_bytes_max = 4096;
  uint32_t value_bytes_max = 1 << 20;
  uint32_t txn_writes_max = 10000;    // distinct keys written by one transaction
  uint64_t txn_bytes_max = 64 << 20;  // key + value bytes buffered by one transaction
  uint32_t txn_reads_max = 100000;    // point keys + ranges recorded by one transaction
  uint32_t open_txns_max = 1024;
  size_t scan_limit_max = 100000;
  // Test hook: called at each step of WriteGeneration; a non-ok return stops the work right there,
  // as a crash would (the store is poisoned). Empty in production.
  std::function<Status(LogStoreCompactionStep)> compaction_hook_for_test;

  // kInvalidArgument naming the offending field.
  Status Validate() const;
};

struct LogStoreStats {
  uint64_t commits = 0;            // acknowledged commits that wrote a log record
  uint64_t read_only_commits = 0;  // acknowledged commits with no writes (no I/O)
  uint64_t aborts = 0;             // commits refused with kAborted
  uint64_t compactions = 0;        // completed compactions since Open
  uint64_t recovered_records = 0;  // log records replayed by Open (snapshot records included)
  bool recovered_tail_discarded = false;  // Open cut a torn tail off the log
  uint64_t recovered_tail_bytes = 0;      // how many bytes it cut
  uint64_t generation = 0;                // the live log generation
  uint64_t log_bytes = 0;                 // size of the live log
  uint64_t last_commit_seq = 0;
  uint64_t keys = 0;              // live keys
  uint64_t versions_tracked = 0;  // per-key commit seqs (incl. tombstones) kept for conflicts
  uint32_t open_transactions = 0;
};

class LogStore final : public LocalStore {
 public:
  // Recovers the state from `disk` (see the header comment), creating an empty store when there is
  // none. kInvalidArgument for invalid options, kDataLoss for a store it cannot recover without
  // losing acknowledged data, or the Disk's error. `disk` must outlive the store.
  static Result<std::unique_ptr<LogStore>> Open(Disk& disk, LogStoreOptions options = {});

  // Fails an FL_ASSERT if a transaction is still open.
  ~LogStore() override;
  LogStore(const LogStore&) = delete;
  LogStore& operator=(const LogStore&) = delete;

  // kUnavailable once poisoned; kResourceExhausted with open_txns_max transactions open.
  Result<std::unique_ptr<Transaction>> Begin() override;

  // Rewrites the log now (normally triggered by Commit). Safe with transactions open: it changes
  // no logical state. kUnavailable (and poisoned) on I/O failure.
  Status Compact();

  LogStoreStats stats() const;
  // Non-ok (kUnavailable) once an I/O failure poisoned the store.
  const Status& poison() const { return poison_; }
  bool poisoned() const { return !poison_.ok(); }
  const LogStoreOptions& options() const { return options_; }

  // File names, for tools and tests. `slot` is 0 (".super.a") or 1 (".super.b").
  static std::string LogFileName(std::string_view name, uint64_t generation);
  static std::string SuperblockFileName(std::string_view name, int slot);

 private:
  friend class internal::LogStoreTransaction;
  struct SlotState {
    bool exists = false;
    uint64_t generation = 0;  // 0: missing or invalid
  };

  LogStore(Disk& disk, LogStoreOptions options);

  // Open.
  Status Recover();
  Result<SlotState> ReadSlot(int slot);
  Status CheckNeverInitialized(const SlotState& slot_b);
  Result<uint64_t> Replay(std::span<const uint8_t> log);
  Status ApplyRecord(std::span<const uint8_t> payload);
  Status RemoveStaleLogs();

  // Compaction and fresh creation.
  Status WriteGeneration(uint64_t generation, int slot);
  std::vector<uint8_t> EncodeSnapshot() const;
  Status Step(LogStoreCompactionStep step) const;
  void MaybeCompact();

  // Transactions.
  Status CommitTransaction(const internal::LogStoreTransaction& txn);
  bool HasConflict(const internal::LogStoreTransaction& txn) const;
  void EndTransaction(uint64_t begin_seq);
  void PruneVersions();
  void Poison(const Status& cause);

  Disk& disk_;
  const LogStoreOptions options_;
  std::map<std::string, std::string, std::less<>> data_;
  // Commit seq of the last change (put or delete) to a key, kept only while some open transaction
  // began before it; a missing key means "not changed since the oldest open transaction began".
  std::map<std::string, uint64_t, std::less<>> modified_seq_;
  // (seq, key) for every entry made in modified_seq_, in seq order (commits append increasing
  // seqs), so pruning pops from the front: amortised O(1) per write. An entry whose key was
  // changed again since is stale and skipped.
  std::deque<std::pair<uint64_t, std::string>> modified_order_;
  std::map<uint64_t, uint32_t> open_begin_seqs_;  // begin seq -> open transactions with it
  uint32_t open_txns_ = 0;
  uint64_t last_seq_ = 0;
  uint64_t generation_ = 0;
  int super_slot_ = 0;  // the slot holding generation_
  std::string log_file_;
  uint64_t log_bytes_ = 0;
  uint64_t snapshot_bytes_ = 0;  // size of the snapshot that starts the live log (0: unknown)
  Status poison_;
  LogStoreStats stats_;
};

}  // namespace faultline
