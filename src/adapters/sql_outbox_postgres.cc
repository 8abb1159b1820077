// Native outbox tables in PostgreSQL (faultline/outbox/sql_outbox.h): Append on the caller's
// connection, and the relay's gap-safe source (pg_snapshot_xmin) on a connection of its own.
#include <algorithm>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "faultline/outbox/outbox.h"
#include "faultline/outbox/sql_outbox.h"
#include "src/adapters/pq.h"

namespace faultline::outbox {

namespace {

// Parameters for PQexecParams: bytea in binary, everything else as text the server casts.
class Args {
 public:
  Args& Bytes(std::string_view bytes) {
    values_.push_back(bytes.data() != nullptr ? bytes.data() : "");
    lengths_.push_back(static_cast<int>(bytes.size()));
    formats_.push_back(1);
    return *this;
  }
  Args& Text(std::string text) {
    owned_.push_back(std::move(text));
    values_.push_back(owned_.back().c_str());
    lengths_.push_back(0);
    formats_.push_back(0);
    return *this;
  }
  // `result_format` 0 text, 1 binary. The error as a Status naming `what`.
  Result<pq::ResultPtr> Exec(PGconn* conn, const std::string& sql, int result_format,
                             std::string_view what) const {
    pq::ResultPtr result(PQexecParams(conn, sql.c_str(), static_cast<int>(values_.size()), nullptr,
                                      values_.data(), lengths_.data(), formats_.data(),
                                      result_format));
    const ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      return pq::ErrorStatus(conn, result.get(), what);
    }
    return result;
  }

 private:
  std::deque<std::string> owned_;
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

std::string Bytes(const PGresult* result, int row, int column) {
  return std::string(PQgetvalue(result, row, column),
                     static_cast<size_t>(PQgetlength(result, row, column)));
}

uint64_t BinaryInt8(const PGresult* result, int row, int column) {
  uint64_t v = 0;
  const char* data = PQgetvalue(result, row, column);
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(data[i]);
  return v;
}

}  // namespace

Status CreatePostgresOutbox(PGconn* conn, const SqlOutboxOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  const std::string& t = options.table;
  {
    // Skip CREATE ... IF NOT EXISTS when both exist: it would send a NOTICE per table.
    pq::ResultPtr exists(
        PQexec(conn, ("SELECT to_regclass('" + t + "') IS NOT NULL AND to_regclass('" + t +
                      "_fence') IS NOT NULL")
                         .c_str()));
    if (exists && PQresultStatus(exists.get()) == PGRES_TUPLES_OK &&
        PQgetvalue(exists.get(), 0, 0)[0] == 't') {
      return Status::Ok();
    }
  }
  const std::string sql = "CREATE TABLE IF NOT EXISTS " + t +
                          " (seq bigserial PRIMARY KEY, id bytea NOT NULL, subject bytea NOT NULL,"
                          " key bytea NOT NULL, payload bytea NOT NULL, key_hash bigint NOT NULL,"
                          " xid xid8 NOT NULL DEFAULT pg_current_xact_id());"
                          "CREATE TABLE IF NOT EXISTS " +
                          t + "_fence (resource bytea PRIMARY KEY, token bigint NOT NULL)";
  pq::ResultPtr result(PQexec(conn, sql.c_str()));
  if (!result || PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
    return pq::ErrorStatus(conn, result.get(), "create outbox table");
  }
  return Status::Ok();
}

Result<uint64_t> AppendPostgres(PGconn* conn, const Message& message,
                                const SqlOutboxOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  FL_RETURN_IF_ERROR(ValidateMessage(message, options.payload_bytes_max));
  Args args;
  args.Bytes(message.id).Bytes(message.subject).Bytes(message.key).Bytes(message.payload);
  args.Text(std::to_string(internal::KeyHash(message.key)));
  FL_ASSIGN_OR_RETURN(pq::ResultPtr result,
                      args.Exec(conn,
                                "INSERT INTO " + options.table +
                                    " (id, subject, key, payload, key_hash)"
                                    " VALUES ($1, $2, $3, $4, $5::bigint) RETURNING seq",
                                0, "outbox append"));
  if (PQntuples(result.get()) != 1) return InternalError("postgres: outbox append returned no seq");
  return std::stoull(PQgetvalue(result.get(), 0, 0));
}

Result<size_t> AppendPostgresBatch(PGconn* conn, std::span<const Message> messages,
                                   const SqlOutboxOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  for (const Message& message : messages) {
    FL_RETURN_IF_ERROR(ValidateMessage(message, options.payload_bytes_max));
  }
  size_t inserted = 0;
  while (inserted < messages.size()) {
    const std::span<const Message> chunk =
        messages.subspan(inserted, std::min(kAppendBatchRowsMax, messages.size() - inserted));
    Args args;
    std::string sql =
        "INSERT INTO " + options.table + " (id, subject, key, payload, key_hash) VALUES ";
    for (size_t row = 0; row < chunk.size(); ++row) {
      const Message& m = chunk[row];
      args.Bytes(m.id).Bytes(m.subject).Bytes(m.key).Bytes(m.payload);
      args.Text(std::to_string(internal::KeyHash(m.key)));
      const size_t p = row * 5;
      sql += (row == 0 ? "($" : ",($") + std::to_string(p + 1) + ",$" + std::to_string(p + 2) +
             ",$" + std::to_string(p + 3) + ",$" + std::to_string(p + 4) + ",$" +
             std::to_string(p + 5) + "::bigint)";
    }
    FL_ASSIGN_OR_RETURN(pq::ResultPtr result, args.Exec(conn, sql, 0, "outbox append batch"));
    const char* tuples = PQcmdTuples(result.get());
    if (std::to_string(chunk.size()) != tuples) {
      return InternalError("postgres: outbox append batch inserted " + std::string(tuples) +
                           " of " + std::to_string(chunk.size()) + " rows");
    }
    inserted += chunk.size();
  }
  return inserted;
}

namespace {

// No cursor: rows are deleted once published, and Poll returns the prefix of ready rows (see
// sql_outbox.h for why that never skips a row nor reorders a key).
class PostgresSource final : public OutboxSource {
 public:
  PostgresSource(std::string conninfo, SqlOutboxOptions options)
      : conninfo_(std::move(conninfo)), options_(std::move(options)) {}

  Status Connect() {
    if (conn_ != nullptr && conn_->ok()) return Status::Ok();
    conn_.reset();
    FL_ASSIGN_OR_RETURN(conn_, pq::Connection::Connect(conninfo_, 5));
    return Status::Ok();
  }

  Status CreateTables() { return CreatePostgresOutbox(conn_->raw(), options_); }

  Result<std::vector<OutboxRecord>> Poll(size_t max, uint32_t partition,
                                         uint32_t partitions) override {
    FL_RETURN_IF_ERROR(Connect());
    Args args;
    args.Text(std::to_string(partitions)).Text(std::to_string(partition));
    args.Text(std::to_string(max));
    FL_ASSIGN_OR_RETURN(
        pq::ResultPtr result,
        args.Exec(conn_->raw(),
                  "SELECT seq, id, subject, key, payload,"
                  " xid < pg_snapshot_xmin(pg_current_snapshot()) FROM " +
                      options_.table +
                      " WHERE ($1::bigint = 1 OR key_hash % $1::bigint = $2::bigint)"
                      " ORDER BY seq LIMIT $3::bigint",
                  1, "outbox poll"));
    std::vector<OutboxRecord> out;
    const PGresult* r = result.get();
    for (int row = 0; row < PQntuples(r); ++row) {
      if (PQgetvalue(r, row, 5)[0] == 0) break;  // not ready: neither it nor anything after it
      out.push_back(OutboxRecord{
          BinaryInt8(r, row, 0),
          Message{Bytes(r, row, 1), Bytes(r, row, 2), Bytes(r, row, 3), Bytes(r, row, 4)}});
    }
    return out;
  }

  Status MarkPublished(std::span<const OutboxRecord> records, std::optional<FencingToken> token,
                       const std::string& fence_resource) override {
    if (records.empty()) return Status::Ok();
    FL_RETURN_IF_ERROR(Connect());
    FL_RETURN_IF_ERROR(conn_->Exec("BEGIN").status());
    Status status = MarkInTransaction(records, token, fence_resource);
    if (status.ok()) status = conn_->Exec("COMMIT").status();
    if (!status.ok() && conn_->ok()) conn_->Exec("ROLLBACK").status().IgnoreError();
    return status;
  }

 private:
  Status MarkInTransaction(std::span<const OutboxRecord> records, std::optional<FencingToken> token,
                           const std::string& fence_resource) {
    if (token.has_value()) {
      Args fence;
      fence.Bytes(fence_resource).Text(std::to_string(token->value()));
      FL_ASSIGN_OR_RETURN(pq::ResultPtr raised,
                          fence.Exec(conn_->raw(),
                                     "INSERT INTO " + options_.table +
                                         "_fence AS f (resource, token) VALUES ($1, $2::bigint)"
                                         " ON CONFLICT (resource) DO UPDATE SET token ="
                                         " EXCLUDED.token WHERE f.token <= EXCLUDED.token"
                                         " RETURNING token",
                                     0, "raise fence"));
      if (PQntuples(raised.get()) != 1) {
        return FencedOutError("outbox relay: fencing token " + std::to_string(token->value()) +
                              " is below the table's mark");
      }
    }
    std::string seqs = "{";
    for (const OutboxRecord& record : records) {
      if (seqs.size() > 1) seqs.push_back(',');
      seqs += std::to_string(record.seq);
    }
    seqs.push_back('}');
    Args del;
    del.Text(std::move(seqs));
    return del
        .Exec(conn_->raw(), "DELETE FROM " + options_.table + " WHERE seq = ANY($1::bigint[])", 0,
              "mark published")
        .status();
  }

  const std::string conninfo_;
  const SqlOutboxOptions options_;
  std::unique_ptr<pq::Connection> conn_;
};

}  // namespace

Result<std::unique_ptr<OutboxSource>> OpenPostgresOutboxSource(const std::string& conninfo,
                                                               const SqlOutboxOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  auto source = std::make_unique<PostgresSource>(conninfo, options);
  FL_RETURN_IF_ERROR(source->Connect());
  FL_RETURN_IF_ERROR(source->CreateTables());
  return std::unique_ptr<OutboxSource>(std::move(source));
}

}  // namespace faultline::outbox
