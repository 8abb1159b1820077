// File: faultline/store/local_store.h
//
// LocalStore: the transactional, ordered key-value interface every stateful faultline pattern is
// written against (idempotency keys, inbox, outbox, saga log, fencing high-water marks, lease
// tables, shard directory). It is deliberately the intersection of what an embedded engine and a
// server engine do well, so each implementation maps it onto native features:
//
//   operation         SQLite (WAL, BEGIN IMMEDIATE)         PostgreSQL
//   Get               SELECT v FROM kv WHERE k = ?           same
//   Put               INSERT ... ON CONFLICT DO UPDATE      same
//   InsertIfAbsent    INSERT ... ON CONFLICT DO NOTHING     ... DO NOTHING RETURNING k
//   CompareAndSet     UPDATE ... WHERE k = ? AND v = ?      same (row count)
//   Delete            DELETE ... WHERE k = ?                same
//   Scan              WHERE k >= ? AND k < ? ORDER BY k LIMIT n
//   Commit            COMMIT (SQLITE_BUSY -> kAborted)      COMMIT (40001 -> kAborted)
//
// Keys are byte strings ordered lexicographically (memcmp); values are byte strings. Transactions
// are serializable: a transaction whose reads were invalidated by another's commit fails Commit()
// with kAborted, and the caller retries the whole transaction (RunInTransaction does). Commit()
// returns ok only once the transaction is durable: a crash after that keeps it, a crash before it
// loses all of it, never part.
//
// Reads are guaranteed serializable only once Commit returns ok. A transaction that is rolled
// back (or whose Commit fails) may have read a state that no serial order produces: PostgreSQL's
// SSI validates a transaction's reads at COMMIT, and may also cancel a read-only transaction with
// kAborted, from a read or from Commit. Code that acts on what it read (a fenced reader, a check
// before a side effect) must Commit the reading transaction, and retry on kAborted.
//
// Implementations: LogStore (store/log_store.h: simulator or any Disk), SqliteStore and
// PostgresStore (adapters/sqlite_store.h, adapters/postgres_store.h), or OpenStore(uri)
// (adapters/open_store.h). All of them pass the same conformance suite (tests/store/).
//
// Errors: kInvalidArgument for keys or values over the store's limits, kAborted for conflicts
// (from Commit, or from any operation of an engine that detects them early or times out a lock
// wait), kUnavailable for I/O failure or a lost server connection (after which implementations
// may refuse further work until reopened; from Commit it means the outcome is unknown),
// kFailedPrecondition for use of a finished transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/status.h"

namespace faultline {

struct KeyValue {
  std::string key;
  std::string value;
  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

class Transaction {
 public:
  // Destroying a transaction that was not committed rolls it back.
  virtual ~Transaction() = default;

  // The value, or nullopt when absent. Sees this transaction's own writes.
  virtual Result<std::optional<std::string>> Get(std::string_view key) = 0;
  virtual Status Put(std::string_view key, std::string_view value) = 0;
  // Writes `value` only if `key` is absent. Returns true when it wrote, false when the key existed
  // (its value untouched). The atomic check-and-set idempotency keys are built on.
  virtual Result<bool> InsertIfAbsent(std::string_view key, std::string_view value) = 0;
  // If the current value equals `expected` (nullopt: key absent), sets it to `desired` (nullopt:
  // delete) and returns true; otherwise changes nothing and returns false.
  virtual Result<bool> CompareAndSet(std::string_view key, std::optional<std::string_view> expected,
                                     std::optional<std::string_view> desired) = 0;
  // Returns true when the key existed.
  virtual Result<bool> Delete(std::string_view key) = 0;
  // Pairs with begin <= key < end (empty `end`: no upper bound), in key order, at most `limit`.
  virtual Result<std::vector<KeyValue>> Scan(std::string_view begin, std::string_view end,
                                             size_t limit) = 0;

  // Makes every write durable and visible atomically. kAborted on a serialization conflict.
  // The transaction is finished afterwards, whatever the outcome.
  virtual Status Commit() = 0;
  // Discards every write. The transaction is finished afterwards.
  virtual void Rollback() = 0;
};

class LocalStore {
 public:
  virtual ~LocalStore() = default;
  virtual Result<std::unique_ptr<Transaction>> Begin() = 0;
};

// Runs `body` in a transaction and commits it, retrying the whole transaction when Commit (or the
// body) fails with kAborted, at most `attempts_max` times. Any other error from the body rolls back
// and is returned.
Status RunInTransaction(LocalStore& store, const std::function<Status(Transaction&)>& body,
                        uint32_t attempts_max = 8);

}  // namespace faultline
