// PostgresStore against a server that crashes and restarts under it. Each test starts its own
// server (never the shared one), kills it with SIGQUIT (immediate shutdown: no checkpoint, crash
// recovery on restart) and checks what a client of the store sees.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>

#include <string>

#include "faultline/adapters/postgres_store.h"
#include "tests/integration/pg_test_server.h"

namespace faultline {
namespace {

using testing::PgTestServer;

class PostgresServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<PgTestServer>> server = PgTestServer::Start();
    ASSERT_TRUE(server.ok()) << "cannot start PostgreSQL: " << server.status().ToString();
    server_ = std::move(server).value();
    PostgresStoreOptions options;
    options.conninfo = server_->conninfo();
    options.connections_max = 4;
    Result<std::unique_ptr<PostgresStore>> store = PostgresStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }
  void TearDown() override {
    store_.reset();
    server_.reset();
  }

  Result<std::optional<std::string>> Read(const std::string& key) {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, store_->Begin());
    Result<std::optional<std::string>> value = txn->Get(key);
    txn->Rollback();
    return value;
  }

  std::unique_ptr<PgTestServer> server_;
  std::unique_ptr<PostgresStore> store_;
};

TEST_F(PostgresServerTest, AcknowledgedCommitsSurviveServerCrashes) {
  // Commit, crash the server right after Commit returned, restart, read: every acknowledged
  // commit is there (fsync=on, synchronous_commit=on). Three rounds, so later rounds also run on
  // connections the store replaced after the crash.
  int committed = 0;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 10; ++i, ++committed) {
      const std::string key = "k" + std::to_string(committed);
      ASSERT_TRUE(RunInTransaction(*store_, [&](Transaction& txn) -> Status {
                    FL_ASSIGN_OR_RETURN(bool inserted, txn.InsertIfAbsent(key, "v"));
                    if (!inserted) return InternalError("duplicate");
                    return txn.Put("last", key);
                  }).ok());
    }
    ASSERT_TRUE(server_->Kill(SIGQUIT).ok());
    ASSERT_TRUE(server_->Restart().ok());
    // The pooled connection died with the server; Begin replaces it before anything ran.
    for (int i = 0; i < committed; ++i) {
      Result<std::optional<std::string>> value = Read("k" + std::to_string(i));
      ASSERT_TRUE(value.ok()) << value.status().ToString();
      ASSERT_EQ(*value, "v") << "acknowledged commit k" << i << " lost";
    }
    EXPECT_EQ(Read("last").value(), "k" + std::to_string(committed - 1));
  }
  EXPECT_GE(store_->stats().connects, 4u) << "reconnected after each crash";
}

TEST_F(PostgresServerTest, TransactionOpenAcrossACrashIsUnavailableAndNotApplied) {
  // The server dies between a write and Commit: Commit is kUnavailable (one line), nothing of the
  // transaction survives, and the next Begin after the restart works.
  Result<std::unique_ptr<Transaction>> txn = store_->Begin();
  ASSERT_TRUE(txn.ok());
  ASSERT_TRUE((*txn)->Put("doomed", "x").ok());
  ASSERT_TRUE(server_->Kill(SIGQUIT).ok());
  const Status commit = (*txn)->Commit();
  EXPECT_EQ(commit.code(), StatusCode::kUnavailable) << commit.ToString();
  EXPECT_EQ(std::string(commit.message()).find('\n'), std::string::npos);
  // Down: Begin cannot connect.
  Result<std::unique_ptr<Transaction>> down = store_->Begin();
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status().ToString();
  EXPECT_EQ(std::string(down.status().message()).find('\n'), std::string::npos);
  ASSERT_TRUE(server_->Restart().ok());
  Result<std::optional<std::string>> value = Read("doomed");
  ASSERT_TRUE(value.ok()) << value.status().ToString();
  EXPECT_EQ(*value, std::nullopt);
}

TEST_F(PostgresServerTest, ConnectionKilledMidTransactionIsUnavailableThenReplaced) {
  // A backend terminated under an open transaction (pg_terminate_backend, as an admin or a
  // failover would): the next operation is kUnavailable, and the store reconnects on Begin.
  Result<std::unique_ptr<Transaction>> victim = store_->Begin();
  ASSERT_TRUE(victim.ok());
  ASSERT_TRUE((*victim)->Put("a", "1").ok());
  PGconn* conn = PQconnectdb(server_->conninfo().c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK);
  PGresult* r = PQexec(conn,
                       "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                       "application_name = 'faultline' AND state = 'idle in transaction'");
  EXPECT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQerrorMessage(conn);
  EXPECT_EQ(PQntuples(r), 1);
  PQclear(r);
  PQfinish(conn);
  const Status put = (*victim)->Put("b", "2");
  EXPECT_EQ(put.code(), StatusCode::kUnavailable) << put.ToString();
  EXPECT_EQ((*victim)->Commit().code(), StatusCode::kUnavailable);
  EXPECT_EQ(Read("a").value(), std::nullopt);
  ASSERT_TRUE(RunInTransaction(*store_, [](Transaction& txn) { return txn.Put("a", "3"); }).ok());
  EXPECT_EQ(Read("a").value(), "3");
}

TEST(PostgresStoreOptionsTest, BadOptionsAndConninfoAreRefusedOnOneLine) {
  PostgresStoreOptions options;
  options.conninfo = "host=/tmp";
  options.table = "Robert'); DROP TABLE students;--";
  EXPECT_EQ(PostgresStore::Open(options).status().code(), StatusCode::kInvalidArgument);
  options.table = "faultline_kv";
  options.key_bytes_max = 4096;  // would not fit a btree entry
  EXPECT_EQ(PostgresStore::Open(options).status().code(), StatusCode::kInvalidArgument);
  options.key_bytes_max = 2048;
  options.conninfo = "no_such_option=1";
  Result<std::unique_ptr<PostgresStore>> bad = PostgresStore::Open(options);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status().ToString();
  options.conninfo = "host=/nonexistent-faultline-dir port=1";
  Result<std::unique_ptr<PostgresStore>> down = PostgresStore::Open(options);
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status().ToString();
  EXPECT_EQ(std::string(down.status().message()).find('\n'), std::string::npos);
}

}  // namespace
}  // namespace faultline
