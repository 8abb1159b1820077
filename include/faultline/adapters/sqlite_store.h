// File: faultline/adapters/sqlite_store.h
//
// SqliteStore: LocalStore on an SQLite database file, the embedded default for one machine.
//
// Schema: one table (options.table, default "faultline_kv"), created when missing:
//   CREATE TABLE kv (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL) STRICT, WITHOUT ROWID
// SQLite compares BLOBs with memcmp() and then by length, which is exactly LogStore's key order
// (std::string comparison), so Scan returns the same pairs in the same order. Open checks that an
// existing table has this shape (two BLOB columns, k the primary key, STRICT) and refuses anything
// else with kFailedPrecondition; a table changed behind the store's back after Open surfaces as
// kFailedPrecondition (no such table, wrong shape) or kDataLoss (a non-BLOB value read back) from
// the operation that meets it, never as a crash.
//
// Transactions and isolation. The database runs in WAL mode. A transaction issues
// BEGIN IMMEDIATE at its first operation (not in Begin, so that waiting for the write lock happens
// inside RunInTransaction's retry loop): SQLite then admits one writing transaction at a time, so
// transactions are serializable by construction and a Commit never fails with a conflict. A
// transaction that cannot take the write lock within busy_timeout_ms (another transaction holds it
// that long) fails that first operation with kAborted, which RunInTransaction retries. The same
// holds within one thread: a second transaction opened while the first is still open waits
// busy_timeout_ms and then fails kAborted (the first one must finish first).
//
// Durability. `synchronous` per store: kFull fsyncs the WAL at every commit (a commit acknowledged
// by Commit survives a process crash and a power cut); kNormal fsyncs only at checkpoints (a
// commit survives a crash of the process, but a power cut or kernel crash may lose the last
// commits; never half of one). Measured rates are in the README.
//
// Threads. A SqliteStore is thread-safe: Begin may be called from any thread. Each open
// transaction owns one SQLite connection from a bounded pool (connections_max, opened on demand;
// each connection caches its prepared statements); a Transaction object must be used by one
// thread at a time. With every connection lent, Begin waits up to acquire_timeout_ms and then
// fails with kResourceExhausted. The store must outlive its transactions (FL_ASSERT).
//
// Errors (besides LocalStore's): kInvalidArgument for invalid options, keys, values and scan
// limits (the same rules as LogStore: non-empty keys up to key_bytes_max, values up to
// value_bytes_max, 1 <= limit <= scan_limit_max), checked before anything is written;
// kUnavailable for I/O errors and a database that cannot be opened; kDataLoss for a corrupt file.
// After any error from the database the transaction is rolled back and every later operation on
// it (Commit included) returns the same error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "faultline/core/status.h"
#include "faultline/store/local_store.h"

namespace faultline {

namespace internal {
struct SqliteConnection;
class SqliteTransaction;
template <typename Conn>
class ConnectionPool;
}  // namespace internal

enum class SqliteSynchronous : uint8_t {
  kNormal,  // fsync at checkpoints only: survives a process crash, not a power cut
  kFull,    // fsync per commit: survives both
};

struct SqliteStoreOptions {
  std::string path;                     // database file; created when missing
  std::string table = "faultline_kv";   // [a-z_][a-z0-9_]{0,62}
  SqliteSynchronous synchronous = SqliteSynchronous::kFull;
  uint32_t busy_timeout_ms = 5000;      // wait for the write lock before kAborted
  uint32_t connections_max = 8;         // open transactions at once
  uint32_t acquire_timeout_ms = 5000;   // Begin's wait for a free connection
  uint32_t key_bytes_max = 4096;
  uint32_t value_bytes_max = 1 << 20;
  size_t scan_limit_max = 100000;

  // kInvalidArgument naming the offending field.
  Status Validate() const;
};

struct SqliteStoreStats {
  uint64_t commits = 0;          // acknowledged commits (read-only ones included)
  uint64_t aborts = 0;           // kAborted returned by any operation (lock wait timed out)
  uint32_t connections = 0;      // connections currently open (idle + in use)
};

class SqliteStore final : public LocalStore {
 public:
  // Opens (creating when missing) the database and the table, switches it to WAL and checks the
  // table's shape. kInvalidArgument for invalid options; kUnavailable when the file cannot be
  // opened; kFailedPrecondition for a table of the wrong shape; kDataLoss for a corrupt file.
  static Result<std::unique_ptr<SqliteStore>> Open(SqliteStoreOptions options);

  // Fails an FL_ASSERT if a transaction is still open.
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // Takes a connection (kResourceExhausted after acquire_timeout_ms when all are in use). Does not
  // touch the database; BEGIN IMMEDIATE runs with the transaction's first operation.
  Result<std::unique_ptr<Transaction>> Begin() override;

  const SqliteStoreOptions& options() const { return options_; }
  SqliteStoreStats stats() const;

 private:
  friend class internal::SqliteTransaction;
  explicit SqliteStore(SqliteStoreOptions options);
  Result<std::unique_ptr<internal::SqliteConnection>> Connect();
  void Release(std::unique_ptr<internal::SqliteConnection> conn, bool reusable);

  const SqliteStoreOptions options_;
  std::unique_ptr<internal::ConnectionPool<internal::SqliteConnection>> pool_;
  struct Counters;
  std::unique_ptr<Counters> counters_;
};

}  // namespace faultline
