// `faultline bench idempotency` end to end: the real binary against a temporary SQLite file and the
// test PostgreSQL server (exit 0, both rows printed, nothing left behind in the table), and the
// misuse contract (exit 2, exactly one line "faultline: error: ..." on stderr).
#include <gtest/gtest.h>

#include "faultline/adapters/open_store.h"
#include "tests/integration/cli_run.h"
#include "tests/integration/idempotency_real_util.h"
#include "tests/integration/pg_test_server.h"

namespace faultline::testing {
namespace {

using Run = CliRun;

void ExpectBenchRan(const Run& run) {
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.err, "");
  EXPECT_NE(run.out.find("bare effect (1 commit)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("claim+effect+complete (2 commits)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("added by idempotency: p50 "), std::string::npos) << run.out;
  std::printf("%s", run.out.c_str());
}

TEST(IdempotencyBenchCli, RunsOnSqliteAndCleansUp) {
  TempDir dir;
  const std::string uri = "sqlite:" + dir.path() + "/bench.db?synchronous=normal";
  ExpectBenchRan(Faultline({"bench", "idempotency", "--store", uri, "--threads", "2", "--ops",
                            "300", "--keys", "50", "--skew", "1.1"}));
  ExpectTableEmpty(uri, "faultline_bench");
}

TEST(IdempotencyBenchCli, RunsOnPostgresAndCleansUp) {
  Result<std::string> conninfo = SharedPgConninfo();
  ASSERT_TRUE(conninfo.ok()) << conninfo.status().ToString();
  const std::string table = UniqueTableName();
  ExpectBenchRan(Faultline({"bench", "idempotency", "--store", PgUri(*conninfo), "--threads", "2",
                            "--ops", "200", "--table", table}));
  ExpectTableEmpty(PgUri(*conninfo), table);
}

TEST(IdempotencyBenchCli, MisuseIsOneLineAndExitTwo) {
  TempDir dir;
  ExpectMisuse({"bench"});
  ExpectMisuse({"bench", "idempotency"});
  ExpectMisuse({"bench", "idempotency", "--store", "mysql://localhost/db"});
  ExpectMisuse({"bench", "idempotency", "--store", "sqlite:"});
  ExpectMisuse({"bench", "idempotency", "--store", "sqlite:x.db?synchronous=sometimes"});
  ExpectMisuse({"bench", "idempotency", "--store", "sqlite:" + dir.path() + "/no/dir/x.db"});
  ExpectMisuse({"bench", "idempotency", "--store",
                "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=3"});
  ExpectMisuse({"bench", "idempotency", "--store", "postgresql://%zz"});
  const std::string ok_uri = "sqlite:" + dir.path() + "/ok.db";
  ExpectMisuse({"bench", "idempotency", "--store", ok_uri, "--threads", "0"});
  ExpectMisuse({"bench", "idempotency", "--store", ok_uri, "--ops", "-5"});
  ExpectMisuse({"bench", "idempotency", "--store", ok_uri, "--skew", "abc"});
  ExpectMisuse({"bench", "idempotency", "--store", ok_uri, "--table", "Robert'); DROP"});
}

}  // namespace
}  // namespace faultline::testing
