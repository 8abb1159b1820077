// Internal SQLite helpers of the outbox adapters (sqlite_queue.cc, sql_outbox_sqlite.cc): owned
// connections and statements, and SQLite result codes mapped to Status the way SqliteStore does.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "faultline/adapters/sqlite_store.h"
#include "faultline/core/status.h"

namespace faultline::internal::sqlite {

// SQLITE_BUSY/LOCKED -> kAborted; I/O, full, cannot open, read-only -> kUnavailable; corrupt,
// not a database -> kDataLoss; TOOBIG -> kInvalidArgument; ERROR, SCHEMA, MISMATCH, CONSTRAINT ->
// kFailedPrecondition; anything else kInternal. "sqlite: <what>: <message>".
Status Error(sqlite3* db, int rc, std::string_view what);

struct DbDeleter {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbDeleter>;

// Opens `path` (created when missing) in WAL mode with the given synchronous level and busy
// timeout.
Result<DbPtr> Open(const std::string& path, SqliteSynchronous synchronous,
                   uint32_t busy_timeout_ms);

// Runs statements without parameters or results (DDL, BEGIN, COMMIT).
Status Exec(sqlite3* db, const std::string& sql, std::string_view what);

// A prepared statement. Bind* then Step; Reset before reuse (Step's callers do it through Done).
class Stmt {
 public:
  Stmt() = default;
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Status Prepare(sqlite3* db, const std::string& sql);
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  // Blob and text are bound SQLITE_STATIC: the bytes must outlive Step.
  void Blob(int index, std::string_view bytes) {
    sqlite3_bind_blob64(stmt_, index, bytes.data() != nullptr ? bytes.data() : "", bytes.size(),
                        SQLITE_STATIC);
  }
  void Int(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  // SQLITE_ROW, SQLITE_DONE, or an error code.
  int Step() { return sqlite3_step(stmt_); }
  // Runs to SQLITE_DONE and resets. The error as a Status.
  Status Run(std::string_view what);
  std::string ColumnBytes(int column) const {
    const void* data = sqlite3_column_blob(stmt_, column);
    const int size = sqlite3_column_bytes(stmt_, column);
    return size > 0 ? std::string(static_cast<const char*>(data), static_cast<size_t>(size))
                    : std::string();
  }
  int64_t ColumnInt(int column) const { return sqlite3_column_int64(stmt_, column); }
  sqlite3* db() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT around `body`; ROLLBACK when the body or COMMIT fails.
template <typename Body>
Status InWriteTransaction(sqlite3* db, Body&& body) {
  FL_RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE", "begin"));
  Status status = body();
  if (status.ok()) status = Exec(db, "COMMIT", "commit");
  if (!status.ok() && !sqlite3_get_autocommit(db)) Exec(db, "ROLLBACK", "rollback").IgnoreError();
  return status;
}

}  // namespace faultline::internal::sqlite
