// `faultline bench outbox` end to end: the real binary against temporary SQLite files (both outbox
// kinds) and the test PostgreSQL server, each run reading every event back in per-key order; and
// the misuse contract (exit 2, exactly one line "faultline: error: ..." on stderr).
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/integration/cli_run.h"
#include "tests/integration/idempotency_real_util.h"
#include "tests/integration/pg_test_server.h"

namespace faultline::testing {
namespace {

using Run = CliRun;

void ExpectBenchRan(const Run& run) {
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.err, "");
  EXPECT_NE(run.out.find("drain:  "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("steady: "), std::string::npos) << run.out;
  EXPECT_EQ(std::count(run.out.begin(), run.out.end(), '\n'), 3) << run.out;
  EXPECT_NE(run.out.find("commit-to-publish lag p50 "), std::string::npos) << run.out;
  std::printf("%s", run.out.c_str());
}

TEST(OutboxBenchCli, RunsOnSqliteIntoTheEmbeddedQueue) {
  TempDir dir;
  for (const char* kind : {"kv", "table"}) {
    const std::string store = "sqlite:" + dir.path() + "/app-" + kind + ".db?synchronous=normal";
    const std::string broker = "sqlite:" + dir.path() + "/queue.db?synchronous=normal";
    ExpectBenchRan(Faultline({"bench",     "outbox", "--outbox",    kind,   "--store",      store,
                              "--broker",  broker,   "--events",    "3000", "--rate",       "1000",
                              "--seconds", "1",      "--keys",      "20",   "--relays",     "2",
                              "--batch",   "100",    "--producers", "2",    "--txn-events", "10"}));
  }
}

TEST(OutboxBenchCli, RunsOnPostgresIntoTheEmbeddedQueue) {
  Result<std::string> conninfo = SharedPgConninfo();
  ASSERT_TRUE(conninfo.ok()) << conninfo.status().ToString();
  TempDir dir;
  for (const char* kind : {"kv", "table"}) {
    ExpectBenchRan(Faultline({"bench", "outbox", "--outbox", kind, "--store", PgUri(*conninfo),
                              "--table", UniqueTableName(), "--broker",
                              "sqlite:" + dir.path() + "/queue.db?synchronous=normal", "--events",
                              "1000", "--rate", "300", "--seconds", "1", "--keys", "10"}));
  }
  // Several producers, each on its own connection, with many events per transaction (the table
  // kind's multi-row INSERT, spread over two statements); the read-back checks each key's order.
  const faultline::testing::Run run =
      Faultline({"bench",        "outbox",
                 "--outbox",     "table",
                 "--store",      PgUri(*conninfo),
                 "--table",      UniqueTableName(),
                 "--broker",     "sqlite:" + dir.path() + "/queue2.db?synchronous=normal",
                 "--events",     "3000",
                 "--rate",       "3000",
                 "--seconds",    "1",
                 "--keys",       "7",
                 "--relays",     "2",
                 "--producers",  "3",
                 "--txn-events", "1500"});
  ExpectBenchRan(run);
  EXPECT_NE(run.out.find("3 producer(s), 1500 events per transaction"), std::string::npos)
      << run.out;
}

TEST(OutboxBenchCli, MisuseIsOneLineAndExitTwo) {
  TempDir dir;
  const std::string store = "sqlite:" + dir.path() + "/ok.db";
  const std::string broker = "sqlite:" + dir.path() + "/q.db";
  ExpectMisuse({"bench", "outbox"});
  ExpectMisuse({"bench", "outbox", "--store", store});
  ExpectMisuse({"bench", "outbox", "--broker", broker});
  ExpectMisuse({"bench", "outbox", "--store", "mysql://x", "--broker", broker});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", "kafka://x"});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", "sqlite:"});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", broker + "?fsync=1"});
  ExpectMisuse(
      {"bench", "outbox", "--store", store, "--broker", "sqlite:" + dir.path() + "/no/dir/q.db"});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", broker, "--outbox", "log"});
  ExpectMisuse({"bench", "outbox", "--store", "sqlite:x.db?synchronous=maybe", "--broker", broker,
                "--outbox", "table"});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", broker, "--relays", "0"});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", broker, "--events", "-1"});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", broker, "--rate", "x"});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", broker, "--producers", "0"});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", broker, "--producers", "65"});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", broker, "--txn-events", "0"});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", broker, "--txn-events", "many"});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", broker, "--txn-events", "100001"});
  ExpectMisuse({"bench", "outbox", "--store", store, "--broker", broker, "--outbox", "table",
                "--table", "Bad-Name"});
}

}  // namespace
}  // namespace faultline::testing
