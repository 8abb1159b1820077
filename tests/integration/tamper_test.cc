// A table changed behind faultline's back (dropped, recreated with other types) must surface as a
// clear Status from the operation that meets it, never as a crash or as wrong data.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>

#include "faultline/adapters/postgres_store.h"
#include "faultline/adapters/sqlite_store.h"
#include "faultline/lease/fence.h"
#include "tests/integration/pg_test_server.h"

namespace faultline {
namespace {

class SqliteTamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/fltamper-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    options_.path = dir_ + "/t.db";
    options_.table = "kv";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs SQL on the file through a connection of its own.
  void Exec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(options_.path.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }

  std::string dir_;
  SqliteStoreOptions options_;
};

TEST_F(SqliteTamperTest, DroppedTableIsFailedPreconditionForTheWholeTransaction) {
  std::unique_ptr<SqliteStore> store = std::move(SqliteStore::Open(options_)).value();
  ASSERT_TRUE(RunInTransaction(*store, [](Transaction& t) { return t.Put("k", "v"); }).ok());
  Exec("DROP TABLE kv");
  std::unique_ptr<Transaction> txn = std::move(store->Begin()).value();
  const Status get = txn->Get("k").status();
  EXPECT_EQ(get.code(), StatusCode::kFailedPrecondition) << get.ToString();
  EXPECT_NE(std::string(get.message()).find("no such table"), std::string::npos) << get.ToString();
  // The failure sticks: nothing later in this transaction can commit half of it.
  EXPECT_EQ(txn->Put("k2", "v").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(txn->Commit().code(), StatusCode::kFailedPrecondition);
}

TEST_F(SqliteTamperTest, TableOfTheWrongShapeIsRefusedAtOpen) {
  Exec("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)");
  Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(options_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status().ToString();
  EXPECT_NE(std::string(store.status().message()).find("wrong shape"), std::string::npos);
}

TEST_F(SqliteTamperTest, TextValueSlippedInAfterOpenIsDataLossNotGarbage) {
  std::unique_ptr<SqliteStore> store = std::move(SqliteStore::Open(options_)).value();
  ASSERT_TRUE(RunInTransaction(*store, [](Transaction& t) { return t.Put("k", "v"); }).ok());
  Exec("DROP TABLE kv; CREATE TABLE kv (k BLOB PRIMARY KEY, v ANY); "
       "INSERT INTO kv VALUES (x'6b', 'text, not a blob')");
  std::unique_ptr<Transaction> txn = std::move(store->Begin()).value();
  const Status get = txn->Get("k").status();
  EXPECT_EQ(get.code(), StatusCode::kDataLoss) << get.ToString();
  txn->Rollback();
  std::unique_ptr<Transaction> scan = std::move(store->Begin()).value();
  EXPECT_EQ(scan->Scan("", "", 10).status().code(), StatusCode::kDataLoss);
}

class PostgresTamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::string> conninfo = testing::SharedPgConninfo();
    ASSERT_TRUE(conninfo.ok()) << "cannot start PostgreSQL: " << conninfo.status().ToString();
    options_.conninfo = *conninfo;
    options_.table = testing::UniqueTableName();
  }
  void TearDown() override { Exec("DROP TABLE IF EXISTS \"" + options_.table + "\""); }

  void Exec(const std::string& sql) {
    PGconn* conn = PQconnectdb(options_.conninfo.c_str());
    ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
    PGresult* r = PQexec(conn, sql.c_str());
    EXPECT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
        << PQerrorMessage(conn);
    PQclear(r);
    PQfinish(conn);
  }

  PostgresStoreOptions options_;
};

TEST_F(PostgresTamperTest, DroppedTableIsFailedPreconditionForTheWholeTransaction) {
  std::unique_ptr<PostgresStore> store = std::move(PostgresStore::Open(options_)).value();
  ASSERT_TRUE(RunInTransaction(*store, [](Transaction& t) { return t.Put("k", "v"); }).ok());
  Exec("DROP TABLE \"" + options_.table + "\"");
  std::unique_ptr<Transaction> txn = std::move(store->Begin()).value();
  const Status get = txn->Get("k").status();
  EXPECT_EQ(get.code(), StatusCode::kFailedPrecondition) << get.ToString();
  EXPECT_NE(std::string(get.message()).find("42P01"), std::string::npos) << get.ToString();
  EXPECT_EQ(txn->Put("k2", "v").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(txn->Commit().code(), StatusCode::kFailedPrecondition);
}

TEST_F(PostgresTamperTest, ColumnRetypedAfterOpenIsAClearErrorAndRefusedAtOpen) {
  std::unique_ptr<PostgresStore> store = std::move(PostgresStore::Open(options_)).value();
  ASSERT_TRUE(RunInTransaction(*store, [](Transaction& t) { return t.Put("k", "v"); }).ok());
  Exec("ALTER TABLE \"" + options_.table + "\" ALTER COLUMN v TYPE text USING encode(v, 'hex')");
  std::unique_ptr<Transaction> txn = std::move(store->Begin()).value();
  const Status get = txn->Get("k").status();
  EXPECT_TRUE(get.code() == StatusCode::kFailedPrecondition || get.code() == StatusCode::kDataLoss)
      << get.ToString();
  txn->Rollback();
  store.reset();
  Result<std::unique_ptr<PostgresStore>> reopened = PostgresStore::Open(options_);
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), StatusCode::kFailedPrecondition)
      << reopened.status().ToString();
  EXPECT_NE(std::string(reopened.status().message()).find("wrong shape"), std::string::npos);
}

// FencedStore's mark is a row of the same table (key "\x01fence/<resource>", a decimal token).
// Tampered with in PostgreSQL: a non-decimal value is kDataLoss for every fenced call; a value
// lowered below what a writer committed is kDataLoss for that writer. Nothing is written either way.
class PostgresFenceTamperTest : public PostgresTamperTest {
 protected:
  void SetMark(const std::string& value) {
    Exec("UPDATE \"" + options_.table + "\" SET v = convert_to('" + value +
         "', 'UTF8') WHERE k = decode('01', 'hex') || convert_to('fence/ledger', 'UTF8')");
  }
  std::string Balance(PostgresStore& store) {
    Result<std::optional<std::string>> v = lease::FencedStore(store, "ledger").Get("balance");
    return v.ok() && v->has_value() ? **v : "<" + v.status().ToString() + ">";
  }
};

TEST_F(PostgresFenceTamperTest, NonDecimalMarkIsDataLossAndNothingIsWritten) {
  std::unique_ptr<PostgresStore> store = std::move(PostgresStore::Open(options_)).value();
  lease::FencedStore holder(*store, "ledger");
  ASSERT_TRUE(holder.Put(FencingToken(7), "balance", "100").ok());
  for (const char* corrupt : {"seven", "7x", "-7", "07", "", "99999999999999999999999"}) {
    SetMark(corrupt);
    const Status put = holder.Put(FencingToken(8), "balance", "200");
    EXPECT_EQ(put.code(), StatusCode::kDataLoss) << corrupt << ": " << put.ToString();
    EXPECT_NE(std::string(put.message()).find("corrupt fencing mark"), std::string::npos)
        << put.ToString();
    EXPECT_EQ(holder.Delete(FencingToken(8), "balance").code(), StatusCode::kDataLoss) << corrupt;
    EXPECT_EQ(holder.Raise(FencingToken(8)).code(), StatusCode::kDataLoss) << corrupt;
    EXPECT_EQ(holder.Highest().status().code(), StatusCode::kDataLoss) << corrupt;
    // A new writer with no memory of the mark is refused just the same.
    lease::FencedStore newcomer(*store, "ledger");
    EXPECT_EQ(newcomer.Put(FencingToken(1000), "balance", "300").code(), StatusCode::kDataLoss);
    EXPECT_EQ(Balance(*store), "100") << corrupt;
  }
  // Inside a caller's own transaction (the chaos store's path): the same Status, rolled back.
  std::unique_ptr<Transaction> txn = std::move(store->Begin()).value();
  EXPECT_EQ(lease::FencedStore::CheckAndRaise(*txn, "ledger", FencingToken(9)).code(),
            StatusCode::kDataLoss);
  txn->Rollback();
  EXPECT_EQ(Balance(*store), "100");
}

TEST_F(PostgresFenceTamperTest, LoweredMarkIsDataLossForAWriterThatSawItHigher) {
  std::unique_ptr<PostgresStore> store = std::move(PostgresStore::Open(options_)).value();
  lease::FencedStore old_holder(*store, "ledger");
  lease::FencedStore new_holder(*store, "ledger");
  ASSERT_TRUE(old_holder.Put(FencingToken(5), "balance", "100").ok());
  ASSERT_TRUE(new_holder.Raise(FencingToken(9)).ok());
  ASSERT_TRUE(new_holder.Put(FencingToken(9), "balance", "90").ok());
  // Untampered, the old holder is fenced out.
  EXPECT_EQ(old_holder.Put(FencingToken(5), "balance", "200").code(), StatusCode::kFencedOut);
  // Lowered below both holders' marks: the old holder's write would pass the token check (5 >= 3)
  // but it committed 5 itself, so the mark went backwards: kDataLoss, nothing written.
  SetMark("3");
  const Status stale = old_holder.Put(FencingToken(5), "balance", "200");
  EXPECT_EQ(stale.code(), StatusCode::kDataLoss) << stale.ToString();
  EXPECT_NE(std::string(stale.message()).find("went backwards"), std::string::npos)
      << stale.ToString();
  EXPECT_EQ(Balance(*store), "90");
  // The current holder fences itself too rather than write over a mark it knows was lowered.
  const Status current = new_holder.Put(FencingToken(9), "balance", "80");
  EXPECT_EQ(current.code(), StatusCode::kDataLoss) << current.ToString();
  EXPECT_EQ(new_holder.Highest().status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(Balance(*store), "90");
  // The mark row deleted outright: the same.
  Exec("DELETE FROM \"" + options_.table +
       "\" WHERE k = decode('01', 'hex') || convert_to('fence/ledger', 'UTF8')");
  EXPECT_EQ(new_holder.Put(FencingToken(9), "balance", "80").code(), StatusCode::kDataLoss);
  EXPECT_EQ(Balance(*store), "90");
}

}  // namespace
}  // namespace faultline
