#include "apps/faultline/bench_outbox_backends.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <utility>

#include "faultline/adapters/open_store.h"
#include "faultline/outbox/outbox.h"
#include "faultline/outbox/sql_outbox.h"

namespace faultline::app {
namespace {

class KvBackend final : public OutboxBackend {
 public:
  KvBackend(std::unique_ptr<LocalStore> store, std::string prefix) : store_(std::move(store)) {
    options_.prefix = std::move(prefix);
  }
  Status AppendBatch(const std::vector<outbox::Message>& batch) override {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<outbox::Outbox> box,
                        outbox::Outbox::Create(*store_, options_));
    return RunInTransaction(*store_, [&](Transaction& txn) -> Status {
      for (const outbox::Message& m : batch) FL_RETURN_IF_ERROR(box->Append(txn, m).status());
      return Status::Ok();
    });
  }
  Result<std::unique_ptr<outbox::OutboxSource>> NewSource() override {
    return outbox::NewLocalStoreSource(*store_, options_);
  }
  Status Cleanup() override {
    return RunInTransaction(*store_, [&](Transaction& txn) {
      return txn.Delete(outbox::internal::CounterKey(options_.prefix)).status();
    });
  }

 private:
  std::unique_ptr<LocalStore> store_;
  outbox::OutboxOptions options_;
};

Status SqliteExec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) == SQLITE_OK) return Status::Ok();
  Status status = UnavailableError(std::string("sqlite: ") + sql + ": " + (error ? error : "?"));
  sqlite3_free(error);
  return status;
}

class SqliteTableBackend final : public OutboxBackend {
 public:
  static Result<std::unique_ptr<OutboxBackend>> Open(const std::string& path, bool full,
                                                     outbox::SqlOutboxOptions options) {
    auto backend = std::unique_ptr<SqliteTableBackend>(new SqliteTableBackend());
    backend->path_ = path;
    backend->full_ = full;
    backend->options_ = std::move(options);
    if (sqlite3_open(path.c_str(), &backend->db_) != SQLITE_OK) {
      return UnavailableError("sqlite: cannot open " + path);
    }
    sqlite3_busy_timeout(backend->db_, 5000);
    FL_RETURN_IF_ERROR(SqliteExec(backend->db_, "PRAGMA journal_mode=WAL"));
    FL_RETURN_IF_ERROR(
        SqliteExec(backend->db_, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"));
    FL_RETURN_IF_ERROR(outbox::CreateSqliteOutbox(backend->db_, backend->options_));
    const std::string clear = "DELETE FROM " + backend->options_.table;
    FL_RETURN_IF_ERROR(SqliteExec(backend->db_, clear.c_str()));
    return std::unique_ptr<OutboxBackend>(std::move(backend));
  }
  ~SqliteTableBackend() override { sqlite3_close(db_); }

  Status AppendBatch(const std::vector<outbox::Message>& batch) override {
    FL_RETURN_IF_ERROR(SqliteExec(db_, "BEGIN IMMEDIATE"));
    for (const outbox::Message& m : batch) {
      const Status appended = outbox::AppendSqlite(db_, m, options_).status();
      if (!appended.ok()) {
        SqliteExec(db_, "ROLLBACK").IgnoreError();
        return appended;
      }
    }
    return SqliteExec(db_, "COMMIT");
  }
  Result<std::unique_ptr<outbox::OutboxSource>> NewSource() override {
    return outbox::OpenSqliteOutboxSource(
        path_, options_, full_ ? SqliteSynchronous::kFull : SqliteSynchronous::kNormal);
  }
  Status Cleanup() override { return Status::Ok(); }

 private:
  SqliteTableBackend() = default;
  std::string path_;
  bool full_ = true;
  outbox::SqlOutboxOptions options_;
  sqlite3* db_ = nullptr;
};

class PostgresTableBackend final : public OutboxBackend {
 public:
  static Result<std::unique_ptr<OutboxBackend>> Open(const std::string& uri,
                                                     outbox::SqlOutboxOptions options) {
    auto backend = std::unique_ptr<PostgresTableBackend>(new PostgresTableBackend());
    backend->uri_ = uri;
    backend->options_ = std::move(options);
    backend->conn_ = PQconnectdb(uri.c_str());
    if (PQstatus(backend->conn_) != CONNECTION_OK) {
      return UnavailableError(std::string("postgres: ") + PQerrorMessage(backend->conn_));
    }
    FL_RETURN_IF_ERROR(outbox::CreatePostgresOutbox(backend->conn_, backend->options_));
    FL_RETURN_IF_ERROR(backend->Exec("DELETE FROM " + backend->options_.table));
    return std::unique_ptr<OutboxBackend>(std::move(backend));
  }
  ~PostgresTableBackend() override { PQfinish(conn_); }

  Status AppendBatch(const std::vector<outbox::Message>& batch) override {
    FL_RETURN_IF_ERROR(Exec("BEGIN"));
    for (const outbox::Message& m : batch) {
      const Status appended = outbox::AppendPostgres(conn_, m, options_).status();
      if (!appended.ok()) {
        Exec("ROLLBACK").IgnoreError();
        return appended;
      }
    }
    return Exec("COMMIT");
  }
  Result<std::unique_ptr<outbox::OutboxSource>> NewSource() override {
    return outbox::OpenPostgresOutboxSource(uri_, options_);
  }
  Status Cleanup() override { return Status::Ok(); }

 private:
  PostgresTableBackend() = default;
  Status Exec(const std::string& sql) {
    PGresult* result = PQexec(conn_, sql.c_str());
    const bool ok = PQresultStatus(result) == PGRES_COMMAND_OK;
    PQclear(result);
    if (ok) return Status::Ok();
    return UnavailableError("postgres: " + sql + ": " + PQerrorMessage(conn_));
  }
  std::string uri_;
  outbox::SqlOutboxOptions options_;
  PGconn* conn_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<OutboxBackend>> OpenOutboxBackend(const std::string& kind,
                                                         const std::string& store_uri,
                                                         const std::string& table,
                                                         const std::string& run,
                                                         uint32_t connections_max) {
  if (kind == "kv") {
    OpenStoreOptions options;
    options.table = table;
    options.connections_max = connections_max;
    FL_ASSIGN_OR_RETURN(std::unique_ptr<LocalStore> store, OpenStore(store_uri, options));
    return std::unique_ptr<OutboxBackend>(
        std::make_unique<KvBackend>(std::move(store), "bench-outbox/" + run + "/"));
  }
  if (kind != "table") return InvalidArgumentError("--outbox must be kv or table");
  outbox::SqlOutboxOptions options;
  options.table = table + "_outbox";
  FL_RETURN_IF_ERROR(options.Validate());
  if (store_uri.rfind("sqlite:", 0) == 0) {
    std::string path = store_uri.substr(7);
    bool full = true;
    const size_t query = path.find('?');
    if (query != std::string::npos) {
      const std::string params = path.substr(query + 1);
      path.resize(query);
      if (params == "synchronous=normal") {
        full = false;
      } else if (params != "synchronous=full") {
        return InvalidArgumentError("store URI: unknown sqlite parameter \"" + params + "\"");
      }
    }
    if (path.empty()) return InvalidArgumentError("store URI sqlite:PATH needs a PATH");
    return SqliteTableBackend::Open(path, full, options);
  }
  if (store_uri.rfind("postgresql://", 0) == 0 || store_uri.rfind("postgres://", 0) == 0) {
    return PostgresTableBackend::Open(store_uri, options);
  }
  return InvalidArgumentError("store URI is neither sqlite:PATH nor postgresql://...");
}

}  // namespace faultline::app
