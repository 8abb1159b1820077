#include "apps/faultline/bench_outbox_backends.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <utility>

#include "faultline/adapters/open_store.h"
#include "faultline/outbox/outbox.h"
#include "faultline/outbox/sql_outbox.h"

namespace faultline::app {
namespace {

class KvAppender final : public OutboxAppender {
 public:
  KvAppender(LocalStore& store, const outbox::OutboxOptions& options)
      : store_(store), options_(options) {}
  Status AppendBatch(const std::vector<outbox::Message>& batch) override {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<outbox::Outbox> box,
                        outbox::Outbox::Create(store_, options_));
    return RunInTransaction(store_, [&](Transaction& txn) -> Status {
      for (const outbox::Message& m : batch) FL_RETURN_IF_ERROR(box->Append(txn, m).status());
      return Status::Ok();
    });
  }

 private:
  LocalStore& store_;
  const outbox::OutboxOptions options_;
};

class KvBackend final : public OutboxBackend {
 public:
  KvBackend(std::unique_ptr<LocalStore> store, std::string prefix) : store_(std::move(store)) {
    options_.prefix = std::move(prefix);
  }
  Result<std::unique_ptr<OutboxAppender>> NewAppender() override {
    return std::unique_ptr<OutboxAppender>(std::make_unique<KvAppender>(*store_, options_));
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

// One connection to the SQLite file, in WAL mode with the run's synchronous setting.
Result<sqlite3*> OpenSqlite(const std::string& path, bool full) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    return UnavailableError("sqlite: cannot open " + path);
  }
  sqlite3_busy_timeout(db, 5000);
  Status status = SqliteExec(db, "PRAGMA journal_mode=WAL");
  if (status.ok()) {
    status = SqliteExec(db, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  }
  if (!status.ok()) {
    sqlite3_close(db);
    return status;
  }
  return db;
}

class SqliteTableAppender final : public OutboxAppender {
 public:
  SqliteTableAppender(sqlite3* db, const outbox::SqlOutboxOptions& options)
      : db_(db), options_(options) {}
  ~SqliteTableAppender() override { sqlite3_close(db_); }

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

 private:
  sqlite3* const db_;
  const outbox::SqlOutboxOptions options_;
};

class SqliteTableBackend final : public OutboxBackend {
 public:
  static Result<std::unique_ptr<OutboxBackend>> Open(const std::string& path, bool full,
                                                     outbox::SqlOutboxOptions options) {
    FL_ASSIGN_OR_RETURN(sqlite3* const db, OpenSqlite(path, full));
    Status status = outbox::CreateSqliteOutbox(db, options);
    if (status.ok()) status = SqliteExec(db, ("DELETE FROM " + options.table).c_str());
    sqlite3_close(db);
    FL_RETURN_IF_ERROR(status);
    auto backend = std::unique_ptr<SqliteTableBackend>(new SqliteTableBackend());
    backend->path_ = path;
    backend->full_ = full;
    backend->options_ = std::move(options);
    return std::unique_ptr<OutboxBackend>(std::move(backend));
  }

  Result<std::unique_ptr<OutboxAppender>> NewAppender() override {
    FL_ASSIGN_OR_RETURN(sqlite3* const db, OpenSqlite(path_, full_));
    return std::unique_ptr<OutboxAppender>(std::make_unique<SqliteTableAppender>(db, options_));
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
};

// A connection of the bench's own; the caller owns the result.
Result<PGconn*> ConnectPostgres(const std::string& uri) {
  PGconn* conn = PQconnectdb(uri.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn);
    PQfinish(conn);
    std::replace(message.begin(), message.end(), '\n', ' ');
    return UnavailableError("postgres: " + message);
  }
  return conn;
}

Status PostgresExec(PGconn* conn, const std::string& sql) {
  PGresult* result = PQexec(conn, sql.c_str());
  const bool ok = PQresultStatus(result) == PGRES_COMMAND_OK;
  PQclear(result);
  if (ok) return Status::Ok();
  return UnavailableError("postgres: " + sql + ": " + PQerrorMessage(conn));
}

class PostgresTableAppender final : public OutboxAppender {
 public:
  PostgresTableAppender(PGconn* conn, const outbox::SqlOutboxOptions& options)
      : conn_(conn), options_(options) {}
  ~PostgresTableAppender() override { PQfinish(conn_); }

  Status AppendBatch(const std::vector<outbox::Message>& batch) override {
    FL_RETURN_IF_ERROR(PostgresExec(conn_, "BEGIN"));
    const Status appended = outbox::AppendPostgresBatch(conn_, batch, options_).status();
    if (!appended.ok()) {
      PostgresExec(conn_, "ROLLBACK").IgnoreError();
      return appended;
    }
    return PostgresExec(conn_, "COMMIT");
  }

 private:
  PGconn* const conn_;
  const outbox::SqlOutboxOptions options_;
};

class PostgresTableBackend final : public OutboxBackend {
 public:
  static Result<std::unique_ptr<OutboxBackend>> Open(const std::string& uri,
                                                     outbox::SqlOutboxOptions options) {
    FL_ASSIGN_OR_RETURN(PGconn* const conn, ConnectPostgres(uri));
    Status status = outbox::CreatePostgresOutbox(conn, options);
    if (status.ok()) status = PostgresExec(conn, "DELETE FROM " + options.table);
    PQfinish(conn);
    FL_RETURN_IF_ERROR(status);
    auto backend = std::unique_ptr<PostgresTableBackend>(new PostgresTableBackend());
    backend->uri_ = uri;
    backend->options_ = std::move(options);
    return std::unique_ptr<OutboxBackend>(std::move(backend));
  }

  Result<std::unique_ptr<OutboxAppender>> NewAppender() override {
    FL_ASSIGN_OR_RETURN(PGconn* const conn, ConnectPostgres(uri_));
    return std::unique_ptr<OutboxAppender>(std::make_unique<PostgresTableAppender>(conn, options_));
  }
  Result<std::unique_ptr<outbox::OutboxSource>> NewSource() override {
    return outbox::OpenPostgresOutboxSource(uri_, options_);
  }
  Status Cleanup() override { return Status::Ok(); }

 private:
  PostgresTableBackend() = default;
  std::string uri_;
  outbox::SqlOutboxOptions options_;
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
