// Native outbox tables in SQLite (faultline/outbox/sql_outbox.h): Append on the caller's
// connection, and the relay's source on a connection of its own.
#include <algorithm>
#include <utility>

#include "faultline/core/options.h"
#include "faultline/outbox/outbox.h"
#include "faultline/outbox/sql_outbox.h"
#include "src/adapters/sqlite_util.h"
#include "src/adapters/store_common.h"

namespace faultline::outbox {

namespace sq = ::faultline::internal::sqlite;

Status SqlOutboxOptions::Validate() const {
  FL_CHECK_OPTION(::faultline::internal::IsPlainIdentifier(table) && table.size() <= 56,
                  "table must match [a-z_][a-z0-9_]{0,56}");
  FL_CHECK_OPTION(payload_bytes_max > 0 && payload_bytes_max <= (size_t{1} << 30),
                  "payload_bytes_max must be in [1, 2^30]");
  return Status::Ok();
}

Status CreateSqliteOutbox(sqlite3* db, const SqlOutboxOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  const std::string& t = options.table;
  return sq::Exec(db,
                  "CREATE TABLE IF NOT EXISTS \"" + t +
                      "\" (seq INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL,"
                      " subject BLOB NOT NULL, key BLOB NOT NULL, payload BLOB NOT NULL,"
                      " key_hash INTEGER NOT NULL);"
                      "CREATE TABLE IF NOT EXISTS \"" +
                      t +
                      "_fence\" (resource BLOB PRIMARY KEY NOT NULL, token INTEGER NOT NULL)"
                      " WITHOUT ROWID;",
                  "create outbox table");
}

Result<uint64_t> AppendSqlite(sqlite3* db, const Message& message,
                              const SqlOutboxOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  FL_RETURN_IF_ERROR(ValidateMessage(message, options.payload_bytes_max));
  sq::Stmt insert;
  FL_RETURN_IF_ERROR(insert.Prepare(db, "INSERT INTO \"" + options.table +
                                            "\" (id, subject, key, payload, key_hash)"
                                            " VALUES (?1, ?2, ?3, ?4, ?5)"));
  insert.Blob(1, message.id);
  insert.Blob(2, message.subject);
  insert.Blob(3, message.key);
  insert.Blob(4, message.payload);
  insert.Int(5, static_cast<int64_t>(internal::KeyHash(message.key)));
  FL_RETURN_IF_ERROR(insert.Run("outbox append"));
  return static_cast<uint64_t>(sqlite3_last_insert_rowid(db));
}

namespace {

// Keeps a cursor: seqs commit in seq order under SQLite's single writer (see sql_outbox.h), so
// every row committed later has a higher seq than every row a snapshot holds.
class SqliteSource final : public OutboxSource {
 public:
  static Result<std::unique_ptr<OutboxSource>> Open(const std::string& path,
                                                    const SqlOutboxOptions& options,
                                                    SqliteSynchronous synchronous) {
    FL_RETURN_IF_ERROR(options.Validate());
    auto source = std::unique_ptr<SqliteSource>(new SqliteSource());
    FL_ASSIGN_OR_RETURN(source->db_, sq::Open(path, synchronous, 5000));
    sqlite3* db = source->db_.get();
    FL_RETURN_IF_ERROR(CreateSqliteOutbox(db, options));
    const std::string& t = options.table;
    FL_RETURN_IF_ERROR(source->poll_.Prepare(
        db, "SELECT seq, id, subject, key, payload FROM \"" + t +
                "\" WHERE seq > ?1 AND (?2 = 1 OR key_hash % ?2 = ?3) ORDER BY seq LIMIT ?4"));
    FL_RETURN_IF_ERROR(source->delete_.Prepare(db, "DELETE FROM \"" + t + "\" WHERE seq = ?1"));
    FL_RETURN_IF_ERROR(source->fence_read_.Prepare(
        db, "SELECT token FROM \"" + t + "_fence\" WHERE resource = ?1"));
    FL_RETURN_IF_ERROR(source->fence_write_.Prepare(
        db, "INSERT INTO \"" + t +
                "_fence\" (resource, token) VALUES (?1, ?2)"
                " ON CONFLICT (resource) DO UPDATE SET token = excluded.token"));
    return std::unique_ptr<OutboxSource>(std::move(source));
  }

  Result<std::vector<OutboxRecord>> Poll(size_t max, uint32_t partition,
                                         uint32_t partitions) override {
    poll_.Int(1, static_cast<int64_t>(cursor_));
    poll_.Int(2, partitions);
    poll_.Int(3, partition);
    poll_.Int(4, static_cast<int64_t>(max));
    std::vector<OutboxRecord> out;
    int rc;
    while ((rc = poll_.Step()) == SQLITE_ROW) {
      out.push_back(OutboxRecord{static_cast<uint64_t>(poll_.ColumnInt(0)),
                                 Message{poll_.ColumnBytes(1), poll_.ColumnBytes(2),
                                         poll_.ColumnBytes(3), poll_.ColumnBytes(4)}});
    }
    const Status status = rc == SQLITE_DONE ? Status::Ok() : sq::Error(db_.get(), rc, "poll");
    poll_.Reset();
    FL_RETURN_IF_ERROR(status);
    return out;
  }

  Status MarkPublished(std::span<const OutboxRecord> records, std::optional<FencingToken> token,
                       const std::string& fence_resource) override {
    if (records.empty()) return Status::Ok();
    const Status status = sq::InWriteTransaction(db_.get(), [&]() -> Status {
      if (token.has_value()) FL_RETURN_IF_ERROR(CheckAndRaise(*token, fence_resource));
      for (const OutboxRecord& record : records) {
        delete_.Int(1, static_cast<int64_t>(record.seq));
        FL_RETURN_IF_ERROR(delete_.Run("mark published"));
      }
      return Status::Ok();
    });
    FL_RETURN_IF_ERROR(status);
    cursor_ = std::max(cursor_, records.back().seq);
    return Status::Ok();
  }

 private:
  SqliteSource() = default;

  Status CheckAndRaise(FencingToken token, const std::string& resource) {
    fence_read_.Blob(1, resource);
    const int rc = fence_read_.Step();
    const int64_t highest = rc == SQLITE_ROW ? fence_read_.ColumnInt(0) : 0;
    const Status read =
        rc == SQLITE_ROW || rc == SQLITE_DONE ? Status::Ok() : sq::Error(db_.get(), rc, "fence");
    fence_read_.Reset();
    FL_RETURN_IF_ERROR(read);
    if (static_cast<int64_t>(token.value()) < highest) {
      return FencedOutError("outbox relay: fencing token " + std::to_string(token.value()) +
                            " is below " + std::to_string(highest));
    }
    fence_write_.Blob(1, resource);
    fence_write_.Int(2, static_cast<int64_t>(token.value()));
    return fence_write_.Run("raise fence");
  }

  sq::DbPtr db_;
  sq::Stmt poll_, delete_, fence_read_, fence_write_;
  uint64_t cursor_ = 0;  // every row of this partition at or below it was marked
};

}  // namespace

Result<std::unique_ptr<OutboxSource>> OpenSqliteOutboxSource(const std::string& path,
                                                             const SqlOutboxOptions& options,
                                                             SqliteSynchronous synchronous) {
  return SqliteSource::Open(path, options, synchronous);
}

}  // namespace faultline::outbox
