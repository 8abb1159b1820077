#include "src/adapters/sqlite_util.h"

#include "src/adapters/store_common.h"

namespace faultline::internal::sqlite {

Status Error(sqlite3* db, int rc, std::string_view what) {
  std::string message = "sqlite: ";
  message.append(what);
  message.append(": ");
  message.append(OneLine(db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return AbortedError(message);
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return UnavailableError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLossError(message);
    case SQLITE_TOOBIG:
      return InvalidArgumentError(message);
    case SQLITE_ERROR:
    case SQLITE_SCHEMA:
    case SQLITE_MISMATCH:
    case SQLITE_CONSTRAINT:
      return FailedPreconditionError(message);
    default:
      return InternalError(message);
  }
}

Result<DbPtr> Open(const std::string& path, SqliteSynchronous synchronous,
                   uint32_t busy_timeout_ms) {
  if (path.empty()) return InvalidArgumentError("sqlite: path must be non-empty");
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) {
    Status status = Error(db.get(), rc, "open " + path);
    return UnavailableError(status.message());
  }
  sqlite3_busy_timeout(db.get(), static_cast<int>(busy_timeout_ms));
  sqlite3_extended_result_codes(db.get(), 1);
  FL_RETURN_IF_ERROR(Exec(db.get(), "PRAGMA journal_mode=WAL", "journal_mode"));
  FL_RETURN_IF_ERROR(Exec(db.get(),
                          synchronous == SqliteSynchronous::kFull ? "PRAGMA synchronous=FULL"
                                                                  : "PRAGMA synchronous=NORMAL",
                          "synchronous"));
  return db;
}

Status Exec(sqlite3* db, const std::string& sql, std::string_view what) {
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? Status::Ok() : Error(db, rc, what);
}

Status Stmt::Prepare(sqlite3* db, const std::string& sql) {
  db_ = db;
  const int rc =
      sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  return rc == SQLITE_OK ? Status::Ok() : Error(db, rc, "prepare");
}

Status Stmt::Run(std::string_view what) {
  const int rc = Step();
  Status status = rc == SQLITE_DONE || rc == SQLITE_ROW ? Status::Ok() : Error(db_, rc, what);
  Reset();
  return status;
}

}  // namespace faultline::internal::sqlite
