#include "faultline/outbox/sqlite_queue.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "faultline/core/options.h"
#include "src/adapters/sqlite_util.h"

namespace faultline::outbox {

namespace {

namespace sq = ::faultline::internal::sqlite;

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS fl_stream (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id BLOB NOT NULL UNIQUE, subject BLOB NOT NULL, key BLOB NOT NULL, payload BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS fl_consumer (name BLOB PRIMARY KEY NOT NULL,"
    " subject_prefix BLOB NOT NULL, next_seq INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS fl_pending (consumer BLOB NOT NULL, seq INTEGER NOT NULL,"
    " deliveries INTEGER NOT NULL, due_ns INTEGER NOT NULL, PRIMARY KEY (consumer, seq))"
    " WITHOUT ROWID;";

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Result<sq::DbPtr> Connect(const SqliteQueueOptions& options) {
  FL_ASSIGN_OR_RETURN(sq::DbPtr db,
                      sq::Open(options.path, options.synchronous, options.busy_timeout_ms));
  return db;
}

class QueuePublisher final : public Publisher {
 public:
  static Result<std::unique_ptr<Publisher>> Create(const SqliteQueueOptions& options) {
    auto p = std::unique_ptr<QueuePublisher>(new QueuePublisher(options.payload_bytes_max));
    FL_ASSIGN_OR_RETURN(p->db_, Connect(options));
    FL_RETURN_IF_ERROR(p->insert_.Prepare(
        p->db_.get(),
        "INSERT INTO fl_stream (id, subject, key, payload) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT (id) DO NOTHING"));
    return std::unique_ptr<Publisher>(std::move(p));
  }

  Status Publish(std::span<const Message> batch) override {
    for (const Message& m : batch) FL_RETURN_IF_ERROR(ValidateMessage(m, payload_bytes_max_));
    if (batch.empty()) return Status::Ok();
    const Status status = sq::InWriteTransaction(db_.get(), [&]() -> Status {
      for (const Message& m : batch) {
        insert_.Blob(1, m.id);
        insert_.Blob(2, m.subject);
        insert_.Blob(3, m.key);
        insert_.Blob(4, m.payload);
        FL_RETURN_IF_ERROR(insert_.Run("publish"));
      }
      return Status::Ok();
    });
    // A lock wait that timed out is the broker not answering in time, for the relay.
    if (status.code() == StatusCode::kAborted) return UnavailableError(status.message());
    return status;
  }

 private:
  explicit QueuePublisher(size_t payload_bytes_max) : payload_bytes_max_(payload_bytes_max) {}
  size_t payload_bytes_max_;
  sq::DbPtr db_;
  sq::Stmt insert_;
};

class QueueConsumer final : public Consumer {
 public:
  static Result<std::unique_ptr<Consumer>> Create(const SqliteQueueOptions& options,
                                                  std::string name, std::string prefix);

  Result<std::vector<Delivery>> Fetch(size_t max, Duration wait) override {
    if (max == 0 || max > fetch_max_) {
      return InvalidArgumentError("fetch max must be in [1, fetch_max]");
    }
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::nanoseconds(std::max<int64_t>(0, wait.nanos()));
    auto backoff = std::chrono::microseconds(200);
    while (true) {
      std::vector<Delivery> out;
      const Status status =
          sq::InWriteTransaction(db_.get(), [&]() -> Status { return FetchOnce(max, out); });
      if (!status.ok() && status.code() != StatusCode::kAborted) return status;
      if (status.ok() && !out.empty()) return out;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        if (!status.ok()) return UnavailableError(status.message());
        return std::vector<Delivery>();
      }
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(backoff, deadline - now));
      backoff = std::min<std::chrono::microseconds>(backoff * 2, std::chrono::milliseconds(5));
    }
  }

  Status Ack(const Delivery& delivery) override {
    ack_.Blob(1, name_);
    ack_.Int(2, static_cast<int64_t>(delivery.stream_seq));
    return ack_.Run("ack");
  }

  Status Nak(const Delivery& delivery) override {
    nak_.Blob(1, name_);
    nak_.Int(2, static_cast<int64_t>(delivery.stream_seq));
    return nak_.Run("nak");
  }

 private:
  QueueConsumer(std::string name, std::string prefix, const SqliteQueueOptions& options)
      : name_(std::move(name)),
        prefix_(std::move(prefix)),
        ack_wait_ns_(options.ack_wait.nanos()),
        fetch_max_(options.fetch_max) {}
  Status Register();
  Status FetchOnce(size_t max, std::vector<Delivery>& out);
  Status FetchDue(size_t max, int64_t now, std::vector<Delivery>& out);
  Status FetchNew(size_t max, int64_t now, std::vector<Delivery>& out);

  const std::string name_;
  const std::string prefix_;
  const int64_t ack_wait_ns_;
  const size_t fetch_max_;
  sq::DbPtr db_;
  sq::Stmt due_, redeliver_, next_seq_, fresh_, pend_, advance_, last_seq_, ack_, nak_;
};

Result<std::unique_ptr<Consumer>> QueueConsumer::Create(const SqliteQueueOptions& options,
                                                        std::string name, std::string prefix) {
  auto c = std::unique_ptr<QueueConsumer>(
      new QueueConsumer(std::move(name), std::move(prefix), options));
  FL_ASSIGN_OR_RETURN(c->db_, Connect(options));
  sqlite3* db = c->db_.get();
  FL_RETURN_IF_ERROR(c->due_.Prepare(
      db,
      "SELECT p.seq, p.deliveries, s.id, s.subject, s.key, s.payload FROM fl_pending p"
      " JOIN fl_stream s ON s.seq = p.seq WHERE p.consumer = ?1 AND p.due_ns <= ?2"
      " ORDER BY p.seq LIMIT ?3"));
  FL_RETURN_IF_ERROR(
      c->redeliver_.Prepare(db,
                            "UPDATE fl_pending SET deliveries = deliveries + 1, due_ns = ?3"
                            " WHERE consumer = ?1 AND seq = ?2"));
  FL_RETURN_IF_ERROR(c->next_seq_.Prepare(db, "SELECT next_seq FROM fl_consumer WHERE name = ?1"));
  FL_RETURN_IF_ERROR(
      c->fresh_.Prepare(db,
                        "SELECT seq, id, subject, key, payload FROM fl_stream WHERE seq >= ?1 AND"
                        " (?3 = 0 OR substr(subject, 1, ?3) = ?4) ORDER BY seq LIMIT ?2"));
  FL_RETURN_IF_ERROR(c->pend_.Prepare(
      db,
      "INSERT INTO fl_pending (consumer, seq, deliveries, due_ns) VALUES (?1, ?2, 1, ?3)"
      " ON CONFLICT DO NOTHING"));
  FL_RETURN_IF_ERROR(
      c->advance_.Prepare(db, "UPDATE fl_consumer SET next_seq = ?2 WHERE name = ?1"));
  FL_RETURN_IF_ERROR(c->last_seq_.Prepare(db, "SELECT coalesce(max(seq), 0) FROM fl_stream"));
  FL_RETURN_IF_ERROR(
      c->ack_.Prepare(db, "DELETE FROM fl_pending WHERE consumer = ?1 AND seq = ?2"));
  FL_RETURN_IF_ERROR(
      c->nak_.Prepare(db, "UPDATE fl_pending SET due_ns = 0 WHERE consumer = ?1 AND seq = ?2"));
  FL_RETURN_IF_ERROR(c->Register());
  return std::unique_ptr<Consumer>(std::move(c));
}

// Creates the durable consumer on first use; a reopen must name the same subject prefix.
Status QueueConsumer::Register() {
  sqlite3* db = db_.get();
  return sq::InWriteTransaction(db, [&]() -> Status {
    sq::Stmt insert;
    FL_RETURN_IF_ERROR(
        insert.Prepare(db,
                       "INSERT INTO fl_consumer (name, subject_prefix, next_seq) VALUES (?1, ?2, 1)"
                       " ON CONFLICT DO NOTHING"));
    insert.Blob(1, name_);
    insert.Blob(2, prefix_);
    FL_RETURN_IF_ERROR(insert.Run("create consumer"));
    sq::Stmt read;
    FL_RETURN_IF_ERROR(read.Prepare(db, "SELECT subject_prefix FROM fl_consumer WHERE name = ?1"));
    read.Blob(1, name_);
    const int rc = read.Step();
    if (rc != SQLITE_ROW) return sq::Error(db, rc, "read consumer");
    if (read.ColumnBytes(0) != prefix_) {
      return FailedPreconditionError("sqlite queue: consumer \"" + name_ +
                                     "\" exists with another subject prefix");
    }
    return Status::Ok();
  });
}

Status QueueConsumer::FetchOnce(size_t max, std::vector<Delivery>& out) {
  out.clear();
  const int64_t now = NowNanos();
  FL_RETURN_IF_ERROR(FetchDue(max, now, out));
  if (out.size() < max) FL_RETURN_IF_ERROR(FetchNew(max - out.size(), now, out));
  return Status::Ok();
}

Status QueueConsumer::FetchDue(size_t max, int64_t now, std::vector<Delivery>& out) {
  due_.Blob(1, name_);
  due_.Int(2, now);
  due_.Int(3, static_cast<int64_t>(max));
  int rc;
  while ((rc = due_.Step()) == SQLITE_ROW) {
    Delivery d;
    d.stream_seq = static_cast<uint64_t>(due_.ColumnInt(0));
    d.delivery = static_cast<uint32_t>(due_.ColumnInt(1)) + 1;
    d.message =
        Message{due_.ColumnBytes(2), due_.ColumnBytes(3), due_.ColumnBytes(4), due_.ColumnBytes(5)};
    out.push_back(std::move(d));
  }
  const Status status = rc == SQLITE_DONE ? Status::Ok() : sq::Error(db_.get(), rc, "fetch due");
  due_.Reset();
  FL_RETURN_IF_ERROR(status);
  for (const Delivery& d : out) {
    redeliver_.Blob(1, name_);
    redeliver_.Int(2, static_cast<int64_t>(d.stream_seq));
    redeliver_.Int(3, now + ack_wait_ns_);
    FL_RETURN_IF_ERROR(redeliver_.Run("redeliver"));
  }
  return Status::Ok();
}

Status QueueConsumer::FetchNew(size_t max, int64_t now, std::vector<Delivery>& out) {
  next_seq_.Blob(1, name_);
  int rc = next_seq_.Step();
  if (rc != SQLITE_ROW) {
    const Status status = sq::Error(db_.get(), rc, "read consumer");
    next_seq_.Reset();
    return status.ok() ? DataLossError("sqlite queue: consumer row is gone") : status;
  }
  const int64_t next = next_seq_.ColumnInt(0);
  next_seq_.Reset();
  fresh_.Int(1, next);
  fresh_.Int(2, static_cast<int64_t>(max));
  fresh_.Int(3, static_cast<int64_t>(prefix_.size()));
  fresh_.Blob(4, prefix_);
  const size_t first = out.size();
  while ((rc = fresh_.Step()) == SQLITE_ROW) {
    Delivery d;
    d.stream_seq = static_cast<uint64_t>(fresh_.ColumnInt(0));
    d.delivery = 1;
    d.message = Message{fresh_.ColumnBytes(1), fresh_.ColumnBytes(2), fresh_.ColumnBytes(3),
                        fresh_.ColumnBytes(4)};
    out.push_back(std::move(d));
  }
  const Status status = rc == SQLITE_DONE ? Status::Ok() : sq::Error(db_.get(), rc, "fetch new");
  fresh_.Reset();
  FL_RETURN_IF_ERROR(status);
  for (size_t i = first; i < out.size(); ++i) {
    pend_.Blob(1, name_);
    pend_.Int(2, static_cast<int64_t>(out[i].stream_seq));
    pend_.Int(3, now + ack_wait_ns_);
    FL_RETURN_IF_ERROR(pend_.Run("pend"));
  }
  // Everything up to the last row returned was examined; when fewer than `max` matched, so was
  // the rest of the stream.
  int64_t advance_to = out.size() > first ? static_cast<int64_t>(out.back().stream_seq) + 1 : next;
  if (out.size() - first < max) {
    rc = last_seq_.Step();
    const int64_t last = rc == SQLITE_ROW ? last_seq_.ColumnInt(0) : 0;
    const Status read = rc == SQLITE_ROW ? Status::Ok() : sq::Error(db_.get(), rc, "last seq");
    last_seq_.Reset();
    FL_RETURN_IF_ERROR(read);
    advance_to = std::max(advance_to, last + 1);
  }
  if (advance_to == next) return Status::Ok();
  advance_.Blob(1, name_);
  advance_.Int(2, advance_to);
  return advance_.Run("advance consumer");
}

}  // namespace

Status SqliteQueueOptions::Validate() const {
  FL_CHECK_OPTION(!path.empty(), "path must be non-empty");
  FL_CHECK_OPTION(ack_wait > Duration::Zero() && !ack_wait.is_infinite(),
                  "ack_wait must be > 0 and finite");
  FL_CHECK_OPTION(payload_bytes_max > 0 && payload_bytes_max <= (size_t{1} << 30),
                  "payload_bytes_max must be in [1, 2^30]");
  FL_CHECK_OPTION(fetch_max > 0, "fetch_max must be > 0");
  return Status::Ok();
}

Result<std::unique_ptr<SqliteQueue>> SqliteQueue::Open(SqliteQueueOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  FL_ASSIGN_OR_RETURN(sq::DbPtr db, Connect(options));
  FL_RETURN_IF_ERROR(sq::Exec(db.get(), kSchema, "create tables"));
  return std::unique_ptr<SqliteQueue>(new SqliteQueue(std::move(options)));
}

Result<std::unique_ptr<Publisher>> SqliteQueue::NewPublisher() {
  return QueuePublisher::Create(options_);
}

Result<std::unique_ptr<Consumer>> SqliteQueue::NewConsumer(std::string_view durable,
                                                           std::string_view subject_prefix) {
  if (durable.empty() || durable.size() > 255) {
    return InvalidArgumentError("consumer name must be 1..255 bytes");
  }
  return QueueConsumer::Create(options_, std::string(durable), std::string(subject_prefix));
}

Result<uint64_t> SqliteQueue::StoredCount() {
  FL_ASSIGN_OR_RETURN(sq::DbPtr db, Connect(options_));
  sq::Stmt count;
  FL_RETURN_IF_ERROR(count.Prepare(db.get(), "SELECT count(*) FROM fl_stream"));
  const int rc = count.Step();
  if (rc != SQLITE_ROW) return sq::Error(db.get(), rc, "count");
  return static_cast<uint64_t>(count.ColumnInt(0));
}

}  // namespace faultline::outbox
