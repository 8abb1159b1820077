#include "faultline/adapters/sqlite_store.h"

#include <sqlite3.h>

#include <array>
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faultline/core/options.h"
#include "src/adapters/store_common.h"

namespace faultline {

struct SqliteStore::Counters {
  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> aborts{0};
};

namespace internal {
namespace {

enum Stmt : int {
  kBegin,
  kCommit,
  kRollback,
  kGet,
  kPut,
  kInsert,
  kCasUpdate,
  kCasDelete,
  kDelete,
  kScan,
  kScanAll,
  kStmtCount,
};

std::string StatementText(Stmt stmt, const std::string& t) {
  switch (stmt) {
    case kBegin: return "BEGIN IMMEDIATE";
    case kCommit: return "COMMIT";
    case kRollback: return "ROLLBACK";
    case kGet: return "SELECT v FROM \"" + t + "\" WHERE k = ?1";
    case kPut:
      return "INSERT INTO \"" + t + "\" (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = "
             "excluded.v";
    case kInsert:
      return "INSERT INTO \"" + t + "\" (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO NOTHING";
    case kCasUpdate: return "UPDATE \"" + t + "\" SET v = ?3 WHERE k = ?1 AND v = ?2";
    case kCasDelete: return "DELETE FROM \"" + t + "\" WHERE k = ?1 AND v = ?2";
    case kDelete: return "DELETE FROM \"" + t + "\" WHERE k = ?1";
    case kScan:
      return "SELECT k, v FROM \"" + t + "\" WHERE k >= ?1 AND k < ?2 ORDER BY k LIMIT ?3";
    case kScanAll: return "SELECT k, v FROM \"" + t + "\" WHERE k >= ?1 ORDER BY k LIMIT ?2";
    case kStmtCount: break;
  }
  FL_ASSERT_MSG(false, "unknown statement");
  return {};
}

// Maps an SQLite result code to a canonical Status: lock waits that timed out are kAborted (retry
// the transaction), I/O trouble kUnavailable, corruption kDataLoss, schema trouble (no such table,
// wrong column types) kFailedPrecondition.
Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string message = "sqlite: ";
  message.append(what);
  message.append(": ");
  message.append(OneLine(db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return AbortedError(message);
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_PERM: return UnavailableError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return DataLossError(message);
    case SQLITE_TOOBIG: return InvalidArgumentError(message);
    case SQLITE_ERROR:
    case SQLITE_SCHEMA:
    case SQLITE_MISMATCH:
    case SQLITE_CONSTRAINT: return FailedPreconditionError(message);
    default: return InternalError(message);
  }
}

// A bound statement: reset and unbound when it goes out of scope, so cached statements never hold
// pointers into callers' buffers (bound with SQLITE_STATIC).
class Bound {
 public:
  explicit Bound(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Bound() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Bound(const Bound&) = delete;
  Bound& operator=(const Bound&) = delete;

  // A zero-length blob needs a non-null pointer, or SQLite binds NULL.
  Bound& Blob(int index, std::string_view bytes) {
    const int rc = sqlite3_bind_blob64(stmt_, index, bytes.data() != nullptr ? bytes.data() : "",
                                       bytes.size(), SQLITE_STATIC);
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
  }
  Bound& Int(int index, int64_t value) {
    const int rc = sqlite3_bind_int64(stmt_, index, value);
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
  }
  int Step() { return bind_rc_ != SQLITE_OK ? bind_rc_ : sqlite3_step(stmt_); }
  sqlite3_stmt* stmt() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

Result<std::string> BlobColumn(sqlite3_stmt* stmt, int column, std::string_view table) {
  const int type = sqlite3_column_type(stmt, column);
  if (type != SQLITE_BLOB) {
    std::string message = "sqlite: table \"";
    message.append(table);
    message.append("\" returned a non-BLOB ");
    message.append(column == 0 && sqlite3_column_count(stmt) == 2 ? "key" : "value");
    message.append(" (was the table altered?)");
    return DataLossError(message);
  }
  const void* data = sqlite3_column_blob(stmt, column);
  const int size = sqlite3_column_bytes(stmt, column);
  if (size == 0) return std::string();
  return std::string(static_cast<const char*>(data), static_cast<size_t>(size));
}

// Runs one statement without parameters and results (PRAGMA, DDL).
Status ExecSimple(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  sqlite3_free(error);
  if (rc != SQLITE_OK) return SqliteError(db, rc, sql);
  return Status::Ok();
}

// Runs a PRAGMA that answers one text row, returning that text.
Result<std::string> PragmaText(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, rc, sql);
  std::string text;
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    const unsigned char* p = sqlite3_column_text(stmt, 0);
    if (p != nullptr) text = reinterpret_cast<const char*>(p);
    rc = sqlite3_step(stmt);
  }
  Status status = rc == SQLITE_DONE ? Status::Ok() : SqliteError(db, rc, sql);
  sqlite3_finalize(stmt);
  FL_RETURN_IF_ERROR(status);
  return text;
}

}  // namespace

struct SqliteConnection {
  sqlite3* db = nullptr;
  std::array<sqlite3_stmt*, kStmtCount> stmts{};

  SqliteConnection() = default;
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;
  ~SqliteConnection() {
    for (sqlite3_stmt* stmt : stmts) sqlite3_finalize(stmt);
    sqlite3_close_v2(db);
  }
  bool in_transaction() const { return sqlite3_get_autocommit(db) == 0; }
};

namespace {

// Checks an existing table's shape; creates it when missing. Runs once, in Open.
Status EnsureTable(sqlite3* db, const std::string& table) {
  sqlite3_stmt* stmt = nullptr;
  const std::string info = "PRAGMA table_info(\"" + table + "\")";
  int rc = sqlite3_prepare_v2(db, info.c_str(), -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, rc, info);
  std::vector<std::string> shape;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    auto text = [stmt](int column) {
      const unsigned char* p = sqlite3_column_text(stmt, column);
      return std::string(p != nullptr ? reinterpret_cast<const char*>(p) : "");
    };
    // name type notnull pk
    shape.push_back(text(1) + " " + text(2) + " " + text(3) + " " + text(5));
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return SqliteError(db, rc, info);
  if (shape.empty()) {
    return ExecSimple(db, "CREATE TABLE IF NOT EXISTS \"" + table +
                              "\" (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL) STRICT, "
                              "WITHOUT ROWID");
  }
  const std::vector<std::string> expected = {"k BLOB 1 1", "v BLOB 1 0"};
  FL_ASSIGN_OR_RETURN(const std::string strict,
                      PragmaText(db, "SELECT strict FROM pragma_table_list WHERE name = '" +
                                         table + "' AND schema = 'main'"));
  if (shape != expected || strict != "1") {
    std::string got;
    for (const std::string& column : shape) got.append(got.empty() ? "" : ", ").append(column);
    return FailedPreconditionError("sqlite: table \"" + table +
                                   "\" exists with the wrong shape (want STRICT k BLOB PRIMARY "
                                   "KEY, v BLOB NOT NULL; have " +
                                   got + (strict == "1" ? ", STRICT" : ", not STRICT") + ")");
  }
  return Status::Ok();
}

}  // namespace

class SqliteTransaction final : public Transaction {
 public:
  SqliteTransaction(SqliteStore* store, std::unique_ptr<SqliteConnection> conn)
      : store_(store), conn_(std::move(conn)) {}
  ~SqliteTransaction() override {
    if (!finished_) Rollback();
  }

  Result<std::optional<std::string>> Get(std::string_view key) override {
    FL_RETURN_IF_ERROR(Check(key, nullptr));
    FL_RETURN_IF_ERROR(EnsureBegun());
    Bound q(stmt(kGet));
    q.Blob(1, key);
    const int rc = q.Step();
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    if (rc != SQLITE_ROW) return Fail(SqliteError(conn_->db, rc, "get"));
    Result<std::string> value = BlobColumn(q.stmt(), 0, table());
    if (!value.ok()) return Fail(value.status());
    return std::optional<std::string>(std::move(value).value());
  }

  Status Put(std::string_view key, std::string_view value) override {
    FL_RETURN_IF_ERROR(Check(key, &value));
    return Write(kPut, key, &value, nullptr).status();
  }

  Result<bool> InsertIfAbsent(std::string_view key, std::string_view value) override {
    FL_RETURN_IF_ERROR(Check(key, &value));
    return Write(kInsert, key, &value, nullptr);
  }

  Result<bool> CompareAndSet(std::string_view key, std::optional<std::string_view> expected,
                             std::optional<std::string_view> desired) override {
    FL_RETURN_IF_ERROR(Check(key, desired ? &*desired : nullptr));
    if (!expected && !desired) {
      FL_ASSIGN_OR_RETURN(const std::optional<std::string> current, Get(key));
      return !current.has_value();
    }
    if (!expected) return Write(kInsert, key, &*desired, nullptr);
    if (!desired) return Write(kCasDelete, key, &*expected, nullptr);
    return Write(kCasUpdate, key, &*expected, &*desired);
  }

  Result<bool> Delete(std::string_view key) override {
    FL_RETURN_IF_ERROR(Check(key, nullptr));
    return Write(kDelete, key, nullptr, nullptr);
  }

  Result<std::vector<KeyValue>> Scan(std::string_view begin, std::string_view end,
                                     size_t limit) override {
    FL_RETURN_IF_ERROR(CheckOpen());
    FL_RETURN_IF_ERROR(CheckScanLimit(limit, options().scan_limit_max));
    std::vector<KeyValue> out;
    const bool bounded = !end.empty();
    if (bounded && end <= begin) return out;  // an empty range reads nothing
    FL_RETURN_IF_ERROR(EnsureBegun());
    Bound q(stmt(bounded ? kScan : kScanAll));
    q.Blob(1, begin);
    if (bounded) q.Blob(2, end);
    q.Int(bounded ? 3 : 2, static_cast<int64_t>(limit));
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      Result<std::string> key = BlobColumn(q.stmt(), 0, table());
      if (!key.ok()) return Fail(key.status());
      Result<std::string> value = BlobColumn(q.stmt(), 1, table());
      if (!value.ok()) return Fail(value.status());
      out.push_back({std::move(key).value(), std::move(value).value()});
    }
    if (rc != SQLITE_DONE) return Fail(SqliteError(conn_->db, rc, "scan"));
    FL_ASSERT(out.size() <= limit);
    return out;
  }

  Status Commit() override {
    FL_RETURN_IF_ERROR(CheckFinished());
    if (!failed_.ok()) {
      Status failed = failed_;
      Finish();
      return failed;
    }
    Status status;
    if (begun_) {
      Bound q(stmt(kCommit));
      const int rc = q.Step();
      if (rc != SQLITE_DONE) status = SqliteError(conn_->db, rc, "commit");
    }
    if (status.ok()) {
      store_->counters_->commits.fetch_add(1, std::memory_order_relaxed);
    } else {
      RollbackIfOpen();
      Count(status);
    }
    Finish();
    return status;
  }

  void Rollback() override {
    if (finished_) return;
    RollbackIfOpen();
    Finish();
  }

 private:
  const SqliteStoreOptions& options() const { return store_->options_; }
  const std::string& table() const { return store_->options_.table; }
  sqlite3_stmt* stmt(Stmt s) const { return conn_->stmts[s]; }

  Status CheckFinished() const {
    if (finished_) return FailedPreconditionError("transaction already committed or rolled back");
    return Status::Ok();
  }
  Status CheckOpen() const {
    FL_RETURN_IF_ERROR(CheckFinished());
    return failed_;
  }
  Status Check(std::string_view key, const std::string_view* value) const {
    FL_RETURN_IF_ERROR(CheckOpen());
    return CheckKeyValue(key, value, options().key_bytes_max, options().value_bytes_max);
  }

  // BEGIN IMMEDIATE at the first operation: waits up to busy_timeout_ms for the write lock.
  Status EnsureBegun() {
    if (begun_) return Status::Ok();
    Bound q(stmt(kBegin));
    const int rc = q.Step();
    if (rc != SQLITE_DONE) return Fail(SqliteError(conn_->db, rc, "begin immediate"));
    begun_ = true;
    return Status::Ok();
  }

  // Runs a write statement; returns whether it changed a row.
  Result<bool> Write(Stmt s, std::string_view key, const std::string_view* a,
                     const std::string_view* b) {
    FL_RETURN_IF_ERROR(EnsureBegun());
    Bound q(stmt(s));
    q.Blob(1, key);
    if (a != nullptr) q.Blob(2, *a);
    if (b != nullptr) q.Blob(3, *b);
    const int rc = q.Step();
    if (rc != SQLITE_DONE) return Fail(SqliteError(conn_->db, rc, "write"));
    const int changes = sqlite3_changes(conn_->db);
    FL_ASSERT(changes == 0 || changes == 1);
    return changes == 1;
  }

  // A database error ends the SQL transaction: roll back and remember the cause.
  Status Fail(Status cause) {
    FL_ASSERT(!cause.ok());
    RollbackIfOpen();
    Count(cause);
    failed_ = cause;
    return cause;
  }

  void Count(const Status& status) {
    if (status.code() == StatusCode::kAborted) {
      store_->counters_->aborts.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void RollbackIfOpen() {
    if (!conn_->in_transaction()) return;
    Bound q(stmt(kRollback));
    if (q.Step() != SQLITE_DONE || conn_->in_transaction()) reusable_ = false;
  }

  void Finish() {
    finished_ = true;
    store_->Release(std::move(conn_), reusable_);
  }

  SqliteStore* store_;
  std::unique_ptr<SqliteConnection> conn_;
  bool begun_ = false;
  bool finished_ = false;
  bool reusable_ = true;
  Status failed_;
};

}  // namespace internal

Status SqliteStoreOptions::Validate() const {
  FL_CHECK_OPTION(!path.empty(), "path must name a database file");
  FL_CHECK_OPTION(path != ":memory:" && path.rfind("file:", 0) != 0,
                  "path must name a database file (every connection shares it)");
  FL_CHECK_OPTION(internal::IsPlainIdentifier(table), "table must match [a-z_][a-z0-9_]{0,62}");
  FL_CHECK_OPTION(busy_timeout_ms <= 600000, "busy_timeout_ms must be <= 600000");
  FL_CHECK_OPTION(connections_max >= 1 && connections_max <= 256,
                  "connections_max must be in [1, 256]");
  FL_CHECK_OPTION(acquire_timeout_ms <= 600000, "acquire_timeout_ms must be <= 600000");
  FL_CHECK_OPTION(key_bytes_max >= 1 && key_bytes_max <= (1u << 20),
                  "key_bytes_max must be in [1, 1 MiB]");
  FL_CHECK_OPTION(value_bytes_max <= (256u << 20), "value_bytes_max must be <= 256 MiB");
  FL_CHECK_OPTION(scan_limit_max >= 1 && scan_limit_max <= 10000000,
                  "scan_limit_max must be in [1, 10000000]");
  return Status::Ok();
}

SqliteStore::SqliteStore(SqliteStoreOptions options)
    : options_(std::move(options)),
      pool_(std::make_unique<internal::ConnectionPool<internal::SqliteConnection>>(
          options_.connections_max, std::chrono::milliseconds(options_.acquire_timeout_ms))),
      counters_(std::make_unique<Counters>()) {}

SqliteStore::~SqliteStore() {
  FL_ASSERT_MSG(pool_->lent() == 0, "SqliteStore destroyed with a transaction open");
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(SqliteStoreOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(options)));
  // The first connection creates (or checks) the table; it then joins the pool.
  FL_ASSIGN_OR_RETURN(std::unique_ptr<internal::SqliteConnection> conn,
                      store->pool_->Acquire([&store] { return store->Connect(); }));
  store->Release(std::move(conn), true);
  return store;
}

Result<std::unique_ptr<internal::SqliteConnection>> SqliteStore::Connect() {
  auto conn = std::make_unique<internal::SqliteConnection>();
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(options_.path.c_str(), &conn->db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status status = internal::SqliteError(conn->db, rc, "open " + options_.path);
    return UnavailableError(status.message());
  }
  sqlite3_extended_result_codes(conn->db, 1);
  sqlite3_busy_timeout(conn->db, static_cast<int>(options_.busy_timeout_ms));
  FL_ASSIGN_OR_RETURN(const std::string mode,
                      internal::PragmaText(conn->db, "PRAGMA journal_mode=WAL"));
  if (mode != "wal") {
    return UnavailableError("sqlite: " + options_.path + ": cannot switch to WAL (journal_mode " +
                            mode + ")");
  }
  const char* sync = options_.synchronous == SqliteSynchronous::kFull ? "FULL" : "NORMAL";
  FL_RETURN_IF_ERROR(internal::ExecSimple(conn->db, std::string("PRAGMA synchronous=") + sync));
  FL_RETURN_IF_ERROR(internal::EnsureTable(conn->db, options_.table));
  for (int s = 0; s < internal::kStmtCount; ++s) {
    const std::string sql = internal::StatementText(static_cast<internal::Stmt>(s), options_.table);
    rc = sqlite3_prepare_v3(conn->db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT,
                            &conn->stmts[static_cast<size_t>(s)], nullptr);
    if (rc != SQLITE_OK) return internal::SqliteError(conn->db, rc, "prepare");
  }
  return conn;
}

void SqliteStore::Release(std::unique_ptr<internal::SqliteConnection> conn, bool reusable) {
  pool_->Release(std::move(conn), reusable);
}

Result<std::unique_ptr<Transaction>> SqliteStore::Begin() {
  FL_ASSIGN_OR_RETURN(std::unique_ptr<internal::SqliteConnection> conn,
                      pool_->Acquire([this] { return Connect(); }));
  FL_ASSERT(!conn->in_transaction());
  return std::unique_ptr<Transaction>(
      std::make_unique<internal::SqliteTransaction>(this, std::move(conn)));
}

SqliteStoreStats SqliteStore::stats() const {
  SqliteStoreStats stats;
  stats.commits = counters_->commits.load(std::memory_order_relaxed);
  stats.aborts = counters_->aborts.load(std::memory_order_relaxed);
  stats.connections = pool_->existing();
  return stats;
}

}  // namespace faultline
