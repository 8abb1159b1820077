// File: faultline/outbox/sql_outbox.h
//
// Native outboxes: the event is inserted into a table of the caller's own SQLite or PostgreSQL
// database, in the caller's own open transaction, on the caller's own connection (sqlite3* or
// PGconn*), next to the rows it announces. The relay reads that table through an OutboxSource
// (relay.h) on a connection of its own.
//
// Table (options.table, default "faultline_outbox"; created by CreateSqliteOutbox /
// CreatePostgresOutbox when missing):
//   SQLite      seq INTEGER PRIMARY KEY AUTOINCREMENT, id, subject, key, payload BLOB,
//               key_hash INTEGER
//   PostgreSQL  seq bigserial PRIMARY KEY, id, subject, key, payload bytea, key_hash bigint,
//               xid xid8 DEFAULT pg_current_xact_id()
// plus <table>_fence (resource PRIMARY KEY, token) for the relay's fenced marks. `id` is the
// broker message id and the inbox key downstream; Append does not check it is unique (the broker
// and the inbox de-duplicate by it: reusing an id for another event loses that event).
// key_hash is internal::KeyHash(key) (outbox.h), which partitions keys among parallel relays.
//
// Gap safety, SQLite (single writer). A transaction that inserts holds SQLite's write lock from its
// first write until it commits or rolls back; AUTOINCREMENT assigns seq = largest seq ever + 1 at
// the insert, and a rollback rolls that back too. So while a transaction holds seq s uncommitted,
// no other transaction can insert at all: seqs commit in seq order, and a reader's snapshot holds a
// prefix of them. The relay may therefore keep a cursor (last seq polled) and never skip a row.
//
// Gap safety, PostgreSQL. A bigserial is taken at INSERT and becomes visible at COMMIT, in any
// order: txn A takes 10, B takes 11 and commits first (S4). A relay with a cursor at 11 would skip
// 10 for good (kamu-cli #1398). Here the relay keeps no cursor (rows are deleted once published),
// and one statement reads, in seq order, the unpublished rows with
//   ready = xid < pg_snapshot_xmin(pg_current_snapshot())
// under one snapshot S, and returns only the rows before the first one that is not ready.
//   - Nothing is skipped: a row not returned now stays in the table until a later Poll returns it.
//   - A ready row's transaction, and every transaction with a lower xid, finished before S: all of
//     their rows are visible in S.
//   - Per-key order. Let A and B append events of key k, A committing before B appends (the
//     application serialized them; otherwise their order is undefined). Then seq_A < seq_B. Suppose
//     B's event is returned under S. A committed before B, which is visible in S, so A's row is
//     visible in S too, unless already published. If unpublished, it comes before B's row in seq
//     order, and every row before B's is ready: A's is returned first, in the same batch.
//   - Liveness: a long-running transaction (or a prepared one) holds pg_snapshot_xmin back and
//     delays every row inserted by a transaction that started after it; nothing is lost.
//
// Errors: kInvalidArgument for bad options or a message failing ValidateMessage
// (payload_bytes_max; nothing inserted); SQLite's and PostgreSQL's errors as SqliteStore and
// PostgresStore map them (kAborted for lock timeouts and serialization failures, kUnavailable for
// a lost connection, kFailedPrecondition for a missing table). A PostgreSQL error aborts the
// caller's transaction, as any failed statement does.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "faultline/adapters/sqlite_store.h"
#include "faultline/core/status.h"
#include "faultline/outbox/broker.h"
#include "faultline/outbox/relay.h"

typedef struct sqlite3 sqlite3;
typedef struct pg_conn PGconn;

namespace faultline::outbox {

struct SqlOutboxOptions {
  std::string table = "faultline_outbox";  // [a-z_][a-z0-9_]{0,56}
  size_t payload_bytes_max = 256 * 1024;

  Status Validate() const;
};

// Creates the table and its fence table when missing (idempotent).
Status CreateSqliteOutbox(sqlite3* db, const SqlOutboxOptions& options = {});
Status CreatePostgresOutbox(PGconn* conn, const SqlOutboxOptions& options = {});

// Inserts `message` on the caller's connection, inside the caller's open transaction (SQLite:
// BEGIN IMMEDIATE is best, so the write lock is taken up front; PostgreSQL: any isolation level).
// Returns the seq taken. The caller commits or rolls back.
Result<uint64_t> AppendSqlite(sqlite3* db, const Message& message,
                              const SqlOutboxOptions& options = {});
Result<uint64_t> AppendPostgres(PGconn* conn, const Message& message,
                                const SqlOutboxOptions& options = {});
// The rows AppendPostgres would insert for each of `messages`, with one multi-row INSERT per
// kAppendBatchRowsMax messages instead of one round trip each; seqs ascend in span order (the
// VALUES list is evaluated in order, so one key's events keep their order). Every message is
// validated first: one that fails is kInvalidArgument and nothing is inserted. Same transaction
// rules as AppendPostgres. Returns the number of rows inserted.
inline constexpr size_t kAppendBatchRowsMax = 1000;  // 5 parameters a row; PostgreSQL allows 65535
Result<size_t> AppendPostgresBatch(PGconn* conn, std::span<const Message> messages,
                                   const SqlOutboxOptions& options = {});

// Relay sources on connections of their own: the SQLite file at `path`, or the PostgreSQL server
// at `conninfo` (keyword=value or a postgresql:// URI). Both create the tables when missing. The
// PostgreSQL source reconnects on its next call after a lost connection.
Result<std::unique_ptr<OutboxSource>> OpenSqliteOutboxSource(
    const std::string& path, const SqlOutboxOptions& options = {},
    SqliteSynchronous synchronous = SqliteSynchronous::kFull);
Result<std::unique_ptr<OutboxSource>> OpenPostgresOutboxSource(
    const std::string& conninfo, const SqlOutboxOptions& options = {});

}  // namespace faultline::outbox
