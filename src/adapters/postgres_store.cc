#include "faultline/adapters/postgres_store.h"

#include <array>
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faultline/core/options.h"
#include "src/adapters/pq.h"
#include "src/adapters/store_common.h"

namespace faultline {

struct PostgresStore::Counters {
  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> aborts{0};
  std::atomic<uint64_t> connects{0};
};

namespace internal {
namespace {

struct Statement {
  const char* name;
  int params;
  std::array<Oid, 3> types;
};

enum Stmt : int { kGet, kPut, kInsert, kCasUpdate, kCasDelete, kDelete, kScan, kScanAll, kCount };

constexpr std::array<Statement, kCount> kStatements = {{
    {"fl_get", 1, {pq::kByteaOid, 0, 0}},
    {"fl_put", 2, {pq::kByteaOid, pq::kByteaOid, 0}},
    {"fl_insert", 2, {pq::kByteaOid, pq::kByteaOid, 0}},
    {"fl_cas_update", 3, {pq::kByteaOid, pq::kByteaOid, pq::kByteaOid}},
    {"fl_cas_delete", 2, {pq::kByteaOid, pq::kByteaOid, 0}},
    {"fl_delete", 1, {pq::kByteaOid, 0, 0}},
    {"fl_scan", 3, {pq::kByteaOid, pq::kByteaOid, pq::kInt8Oid}},
    {"fl_scan_all", 2, {pq::kByteaOid, pq::kInt8Oid, 0}},
}};

std::string StatementText(Stmt stmt, const std::string& table) {
  const std::string t = "\"" + table + "\"";
  switch (stmt) {
    case kGet: return "SELECT v FROM " + t + " WHERE k = $1";
    case kPut:
      // RETURNING v = $2 compares the stored column with the bytea parameter: if the column was
      // retyped behind the store's back (bytea -> text converts silently on assignment), the
      // statement fails to plan and PostgreSQL aborts the transaction, so nothing is written.
      return "INSERT INTO " + t + " (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = "
             "EXCLUDED.v RETURNING v = $2";
    case kInsert:
      return "INSERT INTO " + t + " (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING RETURNING "
             "v = $2";
    case kCasUpdate: return "UPDATE " + t + " SET v = $3 WHERE k = $1 AND v = $2 RETURNING 1";
    case kCasDelete: return "DELETE FROM " + t + " WHERE k = $1 AND v = $2 RETURNING 1";
    case kDelete: return "DELETE FROM " + t + " WHERE k = $1 RETURNING 1";
    case kScan: return "SELECT k, v FROM " + t + " WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3";
    case kScanAll: return "SELECT k, v FROM " + t + " WHERE k >= $1 ORDER BY k LIMIT $2";
    case kCount: break;
  }
  FL_ASSERT_MSG(false, "unknown statement");
  return {};
}

// A bytea column of a binary-format result, checked (a table altered behind our back may answer
// with another type).
Result<std::string> ByteaColumn(const PGresult* result, int row, int column,
                                std::string_view table) {
  if (PQnfields(result) <= column || PQftype(result, column) != pq::kByteaOid ||
      PQfformat(result, column) != 1 || PQgetisnull(result, row, column)) {
    std::string message = "postgres: table \"";
    message.append(table);
    message.append("\" returned a non-bytea or NULL column (was the table altered?)");
    return DataLossError(message);
  }
  return std::string(PQgetvalue(result, row, column),
                     static_cast<size_t>(PQgetlength(result, row, column)));
}

// Creates the table when missing and checks its shape. Runs once, in Open.
Status EnsureTable(pq::Connection& conn, const std::string& table) {
  const std::string shape_sql =
      "SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || "
      "a.attnotnull::text || ' ' || EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid "
      "AND i.indisprimary AND i.indnatts = 1 AND i.indkey[0] = a.attnum)::text "
      "FROM pg_attribute a WHERE a.attrelid = to_regclass('\"" + table + "\"') "
      "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";
  for (int attempt = 0; attempt < 2; ++attempt) {
    FL_ASSIGN_OR_RETURN(pq::ResultPtr shape, conn.Exec(shape_sql));
    std::vector<std::string> columns;
    for (int row = 0; row < PQntuples(shape.get()); ++row) {
      columns.emplace_back(PQgetvalue(shape.get(), row, 0));
    }
    if (!columns.empty()) {
      const std::vector<std::string> expected = {"k bytea true true", "v bytea true false"};
      if (columns == expected) return Status::Ok();
      std::string have;
      for (const std::string& c : columns) have.append(have.empty() ? "" : ", ").append(c);
      return FailedPreconditionError("postgres: table \"" + table +
                                     "\" exists with the wrong shape (want k bytea primary key, "
                                     "v bytea not null; have name/type/notnull/pk: " +
                                     have + ")");
    }
    // Two stores creating the table at once can collide in the catalog (23505/42P07): look again.
    Result<pq::ResultPtr> created = conn.Exec("CREATE TABLE IF NOT EXISTS \"" + table +
                                              "\" (k bytea PRIMARY KEY, v bytea NOT NULL)");
    if (!created.ok() && created.status().code() != StatusCode::kFailedPrecondition) {
      return created.status();
    }
  }
  return FailedPreconditionError("postgres: cannot create table \"" + table + "\"");
}

}  // namespace

class PostgresTransaction final : public Transaction {
 public:
  PostgresTransaction(PostgresStore* store, std::unique_ptr<pq::Connection> conn)
      : store_(store), conn_(std::move(conn)) {}
  ~PostgresTransaction() override {
    if (!finished_) Rollback();
  }

  Result<std::optional<std::string>> Get(std::string_view key) override {
    FL_RETURN_IF_ERROR(Check(key, nullptr));
    pq::Params params;
    params.Bytes(key);
    FL_ASSIGN_OR_RETURN(pq::ResultPtr result, Run(kGet, params));
    if (PQntuples(result.get()) == 0) return std::optional<std::string>();
    Result<std::string> value = ByteaColumn(result.get(), 0, 0, table());
    if (!value.ok()) return Fail(value.status());
    return std::optional<std::string>(std::move(value).value());
  }

  Status Put(std::string_view key, std::string_view value) override {
    FL_RETURN_IF_ERROR(Check(key, &value));
    pq::Params params;
    params.Bytes(key).Bytes(value);
    return Run(kPut, params).status();
  }

  Result<bool> InsertIfAbsent(std::string_view key, std::string_view value) override {
    FL_RETURN_IF_ERROR(Check(key, &value));
    pq::Params params;
    params.Bytes(key).Bytes(value);
    return Returned(kInsert, params);
  }

  Result<bool> CompareAndSet(std::string_view key, std::optional<std::string_view> expected,
                             std::optional<std::string_view> desired) override {
    FL_RETURN_IF_ERROR(Check(key, desired ? &*desired : nullptr));
    pq::Params params;
    params.Bytes(key);
    if (!expected && !desired) {
      FL_ASSIGN_OR_RETURN(const std::optional<std::string> current, Get(key));
      return !current.has_value();
    }
    if (!expected) return Returned(kInsert, params.Bytes(*desired));
    if (!desired) return Returned(kCasDelete, params.Bytes(*expected));
    return Returned(kCasUpdate, params.Bytes(*expected).Bytes(*desired));
  }

  Result<bool> Delete(std::string_view key) override {
    FL_RETURN_IF_ERROR(Check(key, nullptr));
    pq::Params params;
    params.Bytes(key);
    return Returned(kDelete, params);
  }

  Result<std::vector<KeyValue>> Scan(std::string_view begin, std::string_view end,
                                     size_t limit) override {
    FL_RETURN_IF_ERROR(CheckOpen());
    FL_RETURN_IF_ERROR(CheckScanLimit(limit, store_->options_.scan_limit_max));
    std::vector<KeyValue> out;
    const bool bounded = !end.empty();
    if (bounded && end <= begin) return out;  // an empty range reads nothing
    pq::Params params;
    params.Bytes(begin);
    if (bounded) params.Bytes(end);
    params.Int8(static_cast<int64_t>(limit));
    FL_ASSIGN_OR_RETURN(pq::ResultPtr result, Run(bounded ? kScan : kScanAll, params));
    const int rows = PQntuples(result.get());
    FL_ASSERT(static_cast<size_t>(rows) <= limit);
    out.reserve(static_cast<size_t>(rows));
    for (int row = 0; row < rows; ++row) {
      Result<std::string> key = ByteaColumn(result.get(), row, 0, table());
      if (!key.ok()) return Fail(key.status());
      Result<std::string> value = ByteaColumn(result.get(), row, 1, table());
      if (!value.ok()) return Fail(value.status());
      out.push_back({std::move(key).value(), std::move(value).value()});
    }
    return out;
  }

  Status Commit() override {
    if (finished_) return FailedPreconditionError("transaction already committed or rolled back");
    Status status = failed_;
    if (status.ok()) {
      Result<pq::ResultPtr> result = conn_->Exec("COMMIT");
      if (!result.ok()) {
        status = result.status();
        if (status.code() == StatusCode::kUnavailable) {
          status = UnavailableError(std::string(status.message()) + " (commit outcome unknown)");
        }
      }
    }
    if (status.ok()) {
      store_->counters_->commits.fetch_add(1, std::memory_order_relaxed);
    } else if (failed_.ok()) {
      Count(status);
    }
    // A failed COMMIT ends the transaction on the server; a broken connection is dropped.
    Finish(conn_->ok() && conn_->transaction_status() == PQTRANS_IDLE);
    return status;
  }

  void Rollback() override {
    if (finished_) return;
    Finish(RollbackIfOpen());
  }

 private:
  const std::string& table() const { return store_->options_.table; }

  Status CheckOpen() const {
    if (finished_) return FailedPreconditionError("transaction already committed or rolled back");
    return failed_;
  }
  Status Check(std::string_view key, const std::string_view* value) const {
    FL_RETURN_IF_ERROR(CheckOpen());
    const PostgresStoreOptions& o = store_->options_;
    return CheckKeyValue(key, value, o.key_bytes_max, o.value_bytes_max);
  }

  Result<pq::ResultPtr> Run(Stmt stmt, const pq::Params& params) {
    Result<pq::ResultPtr> result = conn_->ExecPrepared(kStatements[stmt].name, params);
    if (!result.ok()) return Fail(result.status());
    return result;
  }

  // Runs a statement with RETURNING: true when it returned a row.
  Result<bool> Returned(Stmt stmt, const pq::Params& params) {
    FL_ASSIGN_OR_RETURN(pq::ResultPtr result, Run(stmt, params));
    const int rows = PQntuples(result.get());
    FL_ASSERT(rows == 0 || rows == 1);
    return rows == 1;
  }

  // A server error ends the SQL transaction (PostgreSQL refuses everything but ROLLBACK after
  // one): roll back and remember the cause.
  Status Fail(Status cause) {
    FL_ASSERT(!cause.ok());
    reusable_ = RollbackIfOpen();
    Count(cause);
    failed_ = cause;
    return cause;
  }

  void Count(const Status& status) {
    if (status.code() == StatusCode::kAborted) {
      store_->counters_->aborts.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // True when the connection is idle and healthy afterwards.
  bool RollbackIfOpen() {
    if (!conn_->ok()) return false;
    if (conn_->transaction_status() != PQTRANS_IDLE) {
      if (!conn_->Exec("ROLLBACK").ok()) return false;
    }
    return conn_->ok() && conn_->transaction_status() == PQTRANS_IDLE;
  }

  void Finish(bool reusable) {
    finished_ = true;
    store_->Release(std::move(conn_), reusable && reusable_);
  }

  PostgresStore* store_;
  std::unique_ptr<pq::Connection> conn_;
  bool finished_ = false;
  bool reusable_ = true;
  Status failed_;
};

}  // namespace internal

Status PostgresStoreOptions::Validate() const {
  FL_CHECK_OPTION(!conninfo.empty(), "conninfo must not be empty");
  FL_CHECK_OPTION(internal::IsPlainIdentifier(table), "table must match [a-z_][a-z0-9_]{0,62}");
  FL_CHECK_OPTION(connections_max >= 1 && connections_max <= 256,
                  "connections_max must be in [1, 256]");
  FL_CHECK_OPTION(acquire_timeout_ms <= 600000, "acquire_timeout_ms must be <= 600000");
  FL_CHECK_OPTION(connect_timeout_s >= 2 && connect_timeout_s <= 600,
                  "connect_timeout_s must be in [2, 600]");
  FL_CHECK_OPTION(lock_timeout_ms <= 600000, "lock_timeout_ms must be <= 600000");
  FL_CHECK_OPTION(statement_timeout_ms <= 3600000, "statement_timeout_ms must be <= 3600000");
  FL_CHECK_OPTION(key_bytes_max >= 1 && key_bytes_max <= 2048,
                  "key_bytes_max must be in [1, 2048]");
  FL_CHECK_OPTION(value_bytes_max <= (256u << 20), "value_bytes_max must be <= 256 MiB");
  FL_CHECK_OPTION(scan_limit_max >= 1 && scan_limit_max <= 10000000,
                  "scan_limit_max must be in [1, 10000000]");
  return Status::Ok();
}

PostgresStore::PostgresStore(PostgresStoreOptions options)
    : options_(std::move(options)),
      pool_(std::make_unique<internal::ConnectionPool<pq::Connection>>(
          options_.connections_max, std::chrono::milliseconds(options_.acquire_timeout_ms))),
      counters_(std::make_unique<Counters>()) {}

PostgresStore::~PostgresStore() {
  FL_ASSERT_MSG(pool_->lent() == 0, "PostgresStore destroyed with a transaction open");
}

Result<std::unique_ptr<PostgresStore>> PostgresStore::Open(PostgresStoreOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<PostgresStore> store(new PostgresStore(std::move(options)));
  FL_ASSIGN_OR_RETURN(std::unique_ptr<pq::Connection> conn,
                      store->pool_->Acquire([&store] { return store->Connect(); }));
  store->Release(std::move(conn), true);
  return store;
}

Result<std::unique_ptr<pq::Connection>> PostgresStore::Connect() {
  FL_ASSIGN_OR_RETURN(std::unique_ptr<pq::Connection> conn,
                      pq::Connection::Connect(options_.conninfo, options_.connect_timeout_s));
  counters_->connects.fetch_add(1, std::memory_order_relaxed);
  FL_RETURN_IF_ERROR(conn->Exec("SET lock_timeout = " + std::to_string(options_.lock_timeout_ms) +
                                "; SET statement_timeout = " +
                                std::to_string(options_.statement_timeout_ms))
                         .status());
  FL_RETURN_IF_ERROR(internal::EnsureTable(*conn, options_.table));
  for (int s = 0; s < internal::kCount; ++s) {
    const internal::Statement& st = internal::kStatements[static_cast<size_t>(s)];
    FL_RETURN_IF_ERROR(conn->Prepare(
        st.name, internal::StatementText(static_cast<internal::Stmt>(s), options_.table),
        st.params, st.types.data()));
  }
  return conn;
}

void PostgresStore::Release(std::unique_ptr<pq::Connection> conn, bool reusable) {
  pool_->Release(std::move(conn), reusable);
}

// A connection with BEGIN done. A pooled connection that fails BEGIN with kUnavailable died while
// idle (a server restart, an idle timeout): nothing of this transaction has run, so the pool's
// idle connections are dropped and one fresh connection is tried.
Result<std::unique_ptr<pq::Connection>> PostgresStore::AcquireBegun() {
  static const std::string kBegin = "BEGIN ISOLATION LEVEL SERIALIZABLE";
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = false;
    FL_ASSIGN_OR_RETURN(std::unique_ptr<pq::Connection> conn,
                        pool_->Acquire([this] { return Connect(); }, &reused));
    Result<pq::ResultPtr> begun = conn->Exec(kBegin);
    if (begun.ok()) return conn;
    const bool dead = !conn->ok();
    Release(std::move(conn), false);
    if (!(dead && reused && attempt == 0)) return begun.status();
    pool_->DropIdle();
  }
  FL_ASSERT_MSG(false, "unreachable");
  return InternalError("unreachable");
}

Result<std::unique_ptr<Transaction>> PostgresStore::Begin() {
  FL_ASSIGN_OR_RETURN(std::unique_ptr<pq::Connection> conn, AcquireBegun());
  return std::unique_ptr<Transaction>(
      std::make_unique<internal::PostgresTransaction>(this, std::move(conn)));
}

PostgresStoreStats PostgresStore::stats() const {
  PostgresStoreStats stats;
  stats.commits = counters_->commits.load(std::memory_order_relaxed);
  stats.aborts = counters_->aborts.load(std::memory_order_relaxed);
  stats.connects = counters_->connects.load(std::memory_order_relaxed);
  stats.connections = pool_->existing();
  return stats;
}

}  // namespace faultline
