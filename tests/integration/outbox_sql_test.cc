// Native outbox tables in a caller's own SQLite and PostgreSQL transactions, and their relay
// sources: the gap cases (S4) with real concurrent connections, per-key order across a finished
// transaction that is not yet "ready", fencing and bad input.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "faultline/outbox/relay.h"
#include "faultline/outbox/sql_outbox.h"
#include "tests/integration/idempotency_real_util.h"
#include "tests/integration/pg_test_server.h"
#include "tests/outbox/memory_publisher.h"

namespace faultline::outbox {
namespace {

using faultline::testing::SharedPgConninfo;
using faultline::testing::TempDir;
using faultline::testing::UniqueTableName;
using testing::MemoryPublisher;

template <typename T>
T Must(Result<T> result) {
  FL_ASSERT_MSG(result.ok(), result.status().ToString().c_str());
  return std::move(result).value();
}

Message Event(const std::string& id, const std::string& key = "k") {
  return Message{id, "orders.created", key, "payload-" + id};
}

std::vector<std::string> Ids(const std::vector<OutboxRecord>& records) {
  std::vector<std::string> ids;
  for (const OutboxRecord& r : records) ids.push_back(r.message.id);
  return ids;
}

// ---- SQLite ----

struct SqliteDb {
  SqliteDb() {
    path = dir.path() + "/app.db";
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 100);
    Exec("PRAGMA journal_mode=WAL");
    EXPECT_TRUE(CreateSqliteOutbox(db).ok());
    Exec("CREATE TABLE orders (id TEXT PRIMARY KEY, state TEXT)");
  }
  ~SqliteDb() { sqlite3_close(db); }
  int Exec(const std::string& sql) const {
    return sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  }
  TempDir dir;
  std::string path;
  sqlite3* db = nullptr;
};

TEST(SqliteOutboxTest, AppendCommitsAndRollsBackWithTheCallersTransaction) {
  SqliteDb app;
  ASSERT_EQ(app.Exec("BEGIN IMMEDIATE"), SQLITE_OK);
  ASSERT_EQ(app.Exec("INSERT INTO orders VALUES ('o1', 'created')"), SQLITE_OK);
  EXPECT_EQ(Must(AppendSqlite(app.db, Event("e1", "o1"))), 1u);
  ASSERT_EQ(app.Exec("COMMIT"), SQLITE_OK);
  ASSERT_EQ(app.Exec("BEGIN IMMEDIATE"), SQLITE_OK);
  EXPECT_EQ(Must(AppendSqlite(app.db, Event("phantom", "o2"))), 2u);
  ASSERT_EQ(app.Exec("ROLLBACK"), SQLITE_OK);
  ASSERT_EQ(app.Exec("BEGIN IMMEDIATE"), SQLITE_OK);
  const Status big =
      AppendSqlite(app.db, Message{"e9", "s", "k", std::string(300000, 'x')}).status();
  EXPECT_EQ(big.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Must(AppendSqlite(app.db, Event("e2", "o1"))), 2u);  // the rollback took no seq
  ASSERT_EQ(app.Exec("COMMIT"), SQLITE_OK);

  auto relay = Must(Relay::Create(Must(OpenSqliteOutboxSource(app.path)), {}));
  MemoryPublisher broker;
  EXPECT_EQ(Must(relay->RunOnce(broker)), 2u);
  EXPECT_EQ(Must(relay->RunOnce(broker)), 0u);
  ASSERT_EQ(broker.stored.size(), 2u);
  EXPECT_EQ(broker.stored[0], Event("e1", "o1"));
  EXPECT_EQ(broker.stored[1], Event("e2", "o1"));
}

// The single-writer proof, observed: while A holds seq 1 uncommitted, B cannot insert at all, so
// no seq above 1 can commit before 1 does.
TEST(SqliteOutboxTest, SecondWriterWaitsForTheFirst) {
  SqliteDb app;
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(app.path.c_str(), &other), SQLITE_OK);
  sqlite3_busy_timeout(other, 50);
  ASSERT_EQ(app.Exec("BEGIN IMMEDIATE"), SQLITE_OK);
  EXPECT_EQ(Must(AppendSqlite(app.db, Event("a"))), 1u);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_EQ(AppendSqlite(other, Event("b")).status().code(), StatusCode::kAborted);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  ASSERT_EQ(app.Exec("COMMIT"), SQLITE_OK);
  EXPECT_EQ(Must(AppendSqlite(other, Event("b"))), 2u);
  sqlite3_close(other);
}

TEST(SqliteOutboxTest, DeposedRelaysMarksAreRefused) {
  SqliteDb app;
  for (const char* id : {"e1", "e2"}) ASSERT_TRUE(AppendSqlite(app.db, Event(id)).ok());
  std::optional<FencingToken> old_token = FencingToken(1);
  auto old_relay = Must(Relay::Create(Must(OpenSqliteOutboxSource(app.path)),
                                      RelayOptions{.batch_max = 1}, [&] { return old_token; }));
  auto new_relay =
      Must(Relay::Create(Must(OpenSqliteOutboxSource(app.path)), RelayOptions{.batch_max = 1},
                         [] { return FencingToken(2); }));
  std::vector<OutboxRecord> stale = Must(old_relay->Poll(1));
  MemoryPublisher broker;
  EXPECT_EQ(Must(new_relay->RunOnce(broker)), 1u);
  EXPECT_EQ(old_relay->MarkPublished(stale).code(), StatusCode::kFencedOut);
  EXPECT_EQ(Must(new_relay->RunOnce(broker)), 1u);
  EXPECT_EQ(Must(new_relay->RunOnce(broker)), 0u);
  EXPECT_EQ(Ids(std::vector<OutboxRecord>{}).size(), 0u);
  ASSERT_EQ(broker.stored.size(), 2u);
}

TEST(SqliteOutboxTest, BadOptionsAreRefused) {
  SqliteDb app;
  EXPECT_EQ(CreateSqliteOutbox(app.db, SqlOutboxOptions{.table = "Bad-Name"}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(AppendSqlite(app.db, Event("e"), SqlOutboxOptions{.table = "missing"}).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(AppendSqlite(app.db, Message{"", "s", "k", "p"}).status().code(),
            StatusCode::kInvalidArgument);
}

// ---- PostgreSQL ----

struct PgConn {
  explicit PgConn(const std::string& conninfo) : conn(PQconnectdb(conninfo.c_str())) {
    EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  }
  ~PgConn() { PQfinish(conn); }
  void Exec(const std::string& sql) const {
    PGresult* r = PQexec(conn, sql.c_str());
    EXPECT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
        << sql << ": " << PQerrorMessage(conn);
    PQclear(r);
  }
  PGconn* conn;
};

class PostgresOutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::string> conninfo = SharedPgConninfo();
    ASSERT_TRUE(conninfo.ok()) << conninfo.status().ToString();
    conninfo_ = *conninfo;
    options_.table = UniqueTableName();
    a_ = std::make_unique<PgConn>(conninfo_);
    b_ = std::make_unique<PgConn>(conninfo_);
    c_ = std::make_unique<PgConn>(conninfo_);
    ASSERT_TRUE(CreatePostgresOutbox(a_->conn, options_).ok());
    a_->Exec("CREATE TABLE " + options_.table + "_side (v int)");
    relay_ = Must(Relay::Create(Must(OpenPostgresOutboxSource(conninfo_, options_))));
  }
  uint64_t Append(PgConn& conn, const std::string& id, const std::string& key = "k") {
    return Must(AppendPostgres(conn.conn, Event(id, key), options_));
  }
  // Gives the connection's open transaction an xid now.
  void TakeXid(PgConn& conn) { conn.Exec("INSERT INTO " + options_.table + "_side VALUES (1)"); }
  std::vector<std::string> PollIds() { return Ids(Must(relay_->Poll(100))); }
  // The first non-empty poll (within 30 s), marked. Other tests share the server: one of their
  // transactions, older than ours, holds pg_snapshot_xmin back for a moment and delays readiness
  // (never the order or the content of what becomes ready).
  std::vector<std::string> DrainIds() {
    std::vector<OutboxRecord> records = PollUntilAny(*relay_);
    EXPECT_TRUE(relay_->MarkPublished(records).ok());
    return Ids(records);
  }
  // Drains until `n` events came out (or 30 s passed), in the order they came.
  std::vector<std::string> DrainN(size_t n) {
    std::vector<std::string> ids;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (ids.size() < n && std::chrono::steady_clock::now() < deadline) {
      for (std::string& id : DrainIds()) ids.push_back(std::move(id));
    }
    return ids;
  }
  static std::vector<OutboxRecord> PollUntilAny(Relay& relay) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (true) {
      std::vector<OutboxRecord> records = Must(relay.Poll(100));
      if (!records.empty() || std::chrono::steady_clock::now() > deadline) return records;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::string conninfo_;
  SqlOutboxOptions options_;
  std::unique_ptr<PgConn> a_, b_, c_;
  std::unique_ptr<Relay> relay_;
};

// S4: A takes seq n, B takes n+1 and commits first. A relay keeping a cursor would publish n+1 and
// skip n for good. Here B's row is not ready while A runs, and both come out, in order, after A.
TEST_F(PostgresOutboxTest, UncommittedLowerSeqHoldsBackTheHigherOne) {
  a_->Exec("BEGIN");
  b_->Exec("BEGIN");
  const uint64_t seq_a = Append(*a_, "a");
  const uint64_t seq_b = Append(*b_, "b");
  ASSERT_LT(seq_a, seq_b);
  b_->Exec("COMMIT");
  PGresult* visible = PQexec(c_->conn, ("SELECT id FROM " + options_.table).c_str());
  ASSERT_EQ(PQntuples(visible), 1);  // the gap: b is visible, a is not
  PQclear(visible);
  EXPECT_EQ(PollIds(), std::vector<std::string>{});
  a_->Exec("COMMIT");
  EXPECT_EQ(DrainN(2), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(PollIds(), std::vector<std::string>{});
}

// The same gap with the xids the other way round (B's transaction took its xid first): B's row is
// ready and published while A runs (they were concurrent: their order is undefined), and A's lower
// seq is still published once A commits. Nothing is skipped.
TEST_F(PostgresOutboxTest, LowerSeqCommittingLateIsNotSkipped) {
  b_->Exec("BEGIN");
  TakeXid(*b_);
  a_->Exec("BEGIN");
  const uint64_t seq_a = Append(*a_, "a");
  const uint64_t seq_b = Append(*b_, "b");
  ASSERT_LT(seq_a, seq_b);
  b_->Exec("COMMIT");
  EXPECT_EQ(DrainIds(), std::vector<std::string>{"b"});
  a_->Exec("COMMIT");
  EXPECT_EQ(DrainIds(), std::vector<std::string>{"a"});
}

// Per-key order when a finished transaction is not yet ready. B takes an xid, then C (left open),
// then A appends key k (seq n) and commits; B appends k (seq n+1) after it and commits. B's row is
// ready (its xid is below C's) and A's is not: publishing ready rows alone would put n+1 before n
// for one key. The relay stops at A's row until C finishes.
TEST_F(PostgresOutboxTest, ReadyRowsBehindAnUnreadyOneWait) {
  b_->Exec("BEGIN");
  TakeXid(*b_);
  c_->Exec("BEGIN");
  TakeXid(*c_);
  a_->Exec("BEGIN");
  Append(*a_, "first", "order-7");
  a_->Exec("COMMIT");
  Append(*b_, "second", "order-7");
  b_->Exec("COMMIT");
  EXPECT_EQ(PollIds(), std::vector<std::string>{});
  c_->Exec("COMMIT");
  EXPECT_EQ(DrainN(2), (std::vector<std::string>{"first", "second"}));
}

TEST_F(PostgresOutboxTest, RelayPublishesPartitionsAndFences) {
  for (int i = 0; i < 40; ++i) Append(*a_, "e" + std::to_string(i), "k" + std::to_string(i % 7));
  MemoryPublisher broker;
  std::vector<std::unique_ptr<Relay>> relays;
  for (uint32_t p = 0; p < 2; ++p) {
    relays.push_back(
        Must(Relay::Create(Must(OpenPostgresOutboxSource(conninfo_, options_)),
                           RelayOptions{.batch_max = 8, .partition = p, .partitions = 2},
                           [] { return FencingToken(5); })));
  }
  size_t total = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (total < 40 && std::chrono::steady_clock::now() < deadline) {
    for (auto& relay : relays) total += Must(relay->RunOnce(broker));
  }
  EXPECT_EQ(total, 40u);
  for (auto& relay : relays) EXPECT_EQ(Must(relay->RunOnce(broker)), 0u);
  EXPECT_EQ(broker.stored.size(), 40u);
  Append(*a_, "late");
  auto deposed = Must(Relay::Create(Must(OpenPostgresOutboxSource(conninfo_, options_)), {},
                                    [] { return FencingToken(4); }));
  std::vector<OutboxRecord> records = PollUntilAny(*deposed);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(deposed->MarkPublished(records).code(), StatusCode::kFencedOut);
  EXPECT_EQ(Ids(Must(deposed->Poll(10))), std::vector<std::string>{"late"});
}

TEST_F(PostgresOutboxTest, BadEventsInsertNothing) {
  a_->Exec("BEGIN");
  const Status big =
      AppendPostgres(a_->conn, Message{"e", "s", "k", std::string(300000, 'x')}, options_).status();
  EXPECT_EQ(big.code(), StatusCode::kInvalidArgument);
  a_->Exec("COMMIT");
  EXPECT_EQ(PollIds(), std::vector<std::string>{});
  EXPECT_EQ(AppendPostgres(a_->conn, Event("e"), SqlOutboxOptions{.table = "no_such_table"})
                .status()
                .code(),
            StatusCode::kFailedPrecondition);
}

// The batch path writes the rows Append writes (the relay reads them back field for field, binary
// bytes included), in span order, over more than one statement; a bad event anywhere inserts none.
TEST_F(PostgresOutboxTest, AppendBatchWritesAppendsRowsInOrder) {
  std::vector<Message> batch;
  for (size_t i = 0; i < kAppendBatchRowsMax + 7; ++i) {
    batch.push_back(Message{"b" + std::to_string(i), "s.sub", "k" + std::to_string(i % 3),
                            std::string("p\0\xff", 4) + std::to_string(i)});
  }
  std::vector<Message> bad = {batch[0], Message{"", "s", "k", "p"}};
  a_->Exec("BEGIN");
  EXPECT_EQ(AppendPostgresBatch(a_->conn, bad, options_).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Must(AppendPostgresBatch(a_->conn, batch, options_)), batch.size());
  a_->Exec("COMMIT");
  std::vector<Message> got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (got.size() < batch.size() && std::chrono::steady_clock::now() < deadline) {
    std::vector<OutboxRecord> records = PollUntilAny(*relay_);
    for (const OutboxRecord& r : records) got.push_back(r.message);
    ASSERT_TRUE(relay_->MarkPublished(records).ok());
  }
  EXPECT_EQ(got, batch);
}

}  // namespace
}  // namespace faultline::outbox
