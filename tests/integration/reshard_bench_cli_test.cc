// `faultline bench reshard` end to end: the real binary moving a range between two SQLite files and
// between two PostgreSQL databases of the test server with writers running (exit 0, every figure
// printed, the checks passed, nothing left behind), and the misuse contract (exit 2, exactly one
// line "faultline: error: ..." on stderr).
#include <gtest/gtest.h>

#include <algorithm>

#include "faultline/adapters/open_store.h"
#include "tests/integration/cli_run.h"
#include "tests/integration/pg_test_server.h"
#include "tests/integration/reshard_real_util.h"

namespace faultline::testing {
namespace {

using Run = CliRun;

void ExpectMoved(const Run& run) {
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out;
  EXPECT_EQ(run.err, "");
  for (const char* line :
       {"rows/s", "catch-up", "verify", "cutover", "waited at the fence: p50", "0 error(s)",
        "check         0 lost, 0 duplicated, 0 writes accepted by the source "
        "after the fence"}) {
    EXPECT_NE(run.out.find(line), std::string::npos) << line << "\n" << run.out;
  }
  std::printf("%s", run.out.c_str());
}

TEST(ReshardBenchCli, MovesBetweenSqliteFilesAndCleansUp) {
  TempDir dir;
  const std::string a = "sqlite:" + dir.path() + "/a.db?synchronous=normal";
  const std::string b = "sqlite:" + dir.path() + "/b.db?synchronous=normal";
  ExpectMoved(Faultline({"bench", "reshard", "--from", a, "--to", b, "--rows", "3000", "--writers",
                         "2", "--batch", "500"}));
  ExpectTableEmpty(a, "faultline_bench");
  ExpectTableEmpty(b, "faultline_bench");
}

TEST(ReshardBenchCli, MovesBetweenPostgresDatabasesAndCleansUp) {
  Result<ReshardDbs> dbs = MakeReshardDbs("postgres");
  ASSERT_TRUE(dbs.ok()) << dbs.status().ToString();
  ExpectMoved(Faultline({"bench", "reshard", "--from", dbs->a_uri, "--to", dbs->b_uri, "--rows",
                         "1000", "--writers", "2", "--rate", "200", "--table", dbs->a_table}));
  ExpectTableEmpty(dbs->a_uri, dbs->a_table);
  ExpectTableEmpty(dbs->b_uri, dbs->a_table);
  DropCreated(*dbs);
}

TEST(ReshardBenchCli, MisuseIsOneLineAndExitTwo) {
  TempDir dir;
  const std::string ok = "sqlite:" + dir.path() + "/ok.db";
  ExpectMisuse({"bench", "reshard"});
  ExpectMisuse({"bench", "reshard", "--from", ok});
  ExpectMisuse({"bench", "reshard", "--from", "mysql://localhost/db", "--to", ok});
  ExpectMisuse({"bench", "reshard", "--from", ok, "--to", "sqlite:"});
  ExpectMisuse({"bench", "reshard", "--from", ok, "--to", "sqlite:" + dir.path() + "/no/dir/x.db"});
  ExpectMisuse({"bench", "reshard", "--from", ok, "--to",
                "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=3"});
  ExpectMisuse({"bench", "reshard", "--from", ok, "--to", ok, "--rows", "0"});
  ExpectMisuse({"bench", "reshard", "--from", ok, "--to", ok, "--writers", "-1"});
  ExpectMisuse({"bench", "reshard", "--from", ok, "--to", ok, "--batch", "abc"});
}

}  // namespace
}  // namespace faultline::testing
