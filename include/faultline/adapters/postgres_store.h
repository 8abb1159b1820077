// File: faultline/adapters/postgres_store.h
//
// PostgresStore: LocalStore on a PostgreSQL server through libpq, for production.
//
// Schema: one table (options.table, default "faultline_kv"), created when missing:
//   CREATE TABLE kv (k bytea PRIMARY KEY, v bytea NOT NULL)
// bytea compares with memcmp() and then by length, LogStore's key order. Open checks that an
// existing table has exactly this shape (k bytea primary key, v bytea not null) and refuses
// anything else with kFailedPrecondition; a table dropped or altered behind the store's back after
// Open surfaces from the operation that meets it as kFailedPrecondition (undefined table, type
// mismatch) or kDataLoss (a non-bytea column read back), never as a crash.
//
// Operations are native SQL with binary parameters and results, prepared once per connection:
//   Get             SELECT v FROM kv WHERE k = $1
//   Put             INSERT ... ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v
//   InsertIfAbsent  INSERT ... ON CONFLICT (k) DO NOTHING RETURNING 1      (a row: inserted)
//   CompareAndSet   UPDATE ... WHERE k = $1 AND v = $2 RETURNING 1, DELETE ... RETURNING 1, or
//                   the insert above when `expected` is absent
//   Delete          DELETE FROM kv WHERE k = $1 RETURNING 1
//   Scan            SELECT k, v FROM kv WHERE k >= $1 [AND k < $2] ORDER BY k LIMIT $n
//
// Transactions. Begin runs BEGIN ISOLATION LEVEL SERIALIZABLE, so transactions are serializable
// (PostgreSQL's SSI). A serialization failure (SQLSTATE 40001, which also covers INSERT ... ON
// CONFLICT meeting a row its snapshot cannot see) or a deadlock (40P01) fails the operation or the
// Commit that met it with kAborted; RunInTransaction retries the whole transaction. A lock wait
// longer than lock_timeout_ms (55P03) is kAborted too, so two transactions opened by one thread
// that write the same row cannot hang it.
//
// Connections. A bounded pool (connections_max, opened on demand; each open transaction holds
// one). A lost connection fails the operation that meets it with kUnavailable and is closed; the
// next Begin connects afresh (Begin also replaces a pooled connection that turns out dead before
// the transaction did anything, so a server restart costs the open transactions, not later ones).
// kUnavailable from Commit means the outcome is unknown: the server may have committed before the
// connection broke. Bad conninfo is kInvalidArgument, an unreachable server kUnavailable, both with
// libpq's message on one line.
//
// Durability is the server's: with fsync=on and synchronous_commit=on (the defaults) a commit
// acknowledged by Commit survives a server crash.
//
// Threads. A PostgresStore is thread-safe; a Transaction must be used by one thread at a time.
// With every connection lent, Begin waits up to acquire_timeout_ms and then fails with
// kResourceExhausted. The store must outlive its transactions (FL_ASSERT). Every call blocks the
// calling thread for a network round trip: see the README ("Stores") for calling it from an
// executor.
//
// Errors besides LocalStore's: kInvalidArgument for invalid options, keys, values and scan limits
// (LogStore's rules; key_bytes_max is at most 2048 because a btree entry must fit a third of an
// 8 kB page), checked before anything is sent. After any error from the server the transaction is
// rolled back and every later operation on it (Commit included) returns the same error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "faultline/core/status.h"
#include "faultline/store/local_store.h"

namespace faultline {

namespace pq {
class Connection;
}  // namespace pq
namespace internal {
class PostgresTransaction;
template <typename Conn>
class ConnectionPool;
}  // namespace internal

struct PostgresStoreOptions {
  std::string conninfo;                 // libpq keyword=value string or postgresql:// URI
  std::string table = "faultline_kv";   // [a-z_][a-z0-9_]{0,62}, in the search_path's schema
  uint32_t connections_max = 8;
  uint32_t acquire_timeout_ms = 5000;   // Begin's wait for a free connection
  uint32_t connect_timeout_s = 5;       // libpq connect_timeout (unless conninfo sets one)
  uint32_t lock_timeout_ms = 5000;      // a longer row-lock wait fails kAborted; 0: wait forever
  uint32_t statement_timeout_ms = 0;    // 0: none; else kDeadlineExceeded
  uint32_t key_bytes_max = 2048;
  uint32_t value_bytes_max = 1 << 20;
  size_t scan_limit_max = 100000;

  // kInvalidArgument naming the offending field.
  Status Validate() const;
};

struct PostgresStoreStats {
  uint64_t commits = 0;     // acknowledged commits
  uint64_t aborts = 0;      // kAborted returned by any operation
  uint64_t connects = 0;    // connections opened (the first ones included)
  uint32_t connections = 0; // connections currently open (idle + in use)
};

class PostgresStore final : public LocalStore {
 public:
  // Connects once, creates the table when missing and checks its shape.
  static Result<std::unique_ptr<PostgresStore>> Open(PostgresStoreOptions options);

  // Fails an FL_ASSERT if a transaction is still open.
  ~PostgresStore() override;
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

  Result<std::unique_ptr<Transaction>> Begin() override;

  const PostgresStoreOptions& options() const { return options_; }
  PostgresStoreStats stats() const;

 private:
  friend class internal::PostgresTransaction;
  explicit PostgresStore(PostgresStoreOptions options);
  Result<std::unique_ptr<pq::Connection>> Connect();
  Result<std::unique_ptr<pq::Connection>> AcquireBegun();
  void Release(std::unique_ptr<pq::Connection> conn, bool reusable);

  const PostgresStoreOptions options_;
  std::unique_ptr<internal::ConnectionPool<pq::Connection>> pool_;
  struct Counters;
  std::unique_ptr<Counters> counters_;
};

}  // namespace faultline
