// `faultline bench idempotency` end to end: the real binary against a temporary SQLite file and the
// test PostgreSQL server (exit 0, both rows printed, nothing left behind in the table), and the
// misuse contract (exit 2, exactly one line "faultline: error: ..." on stderr).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "faultline/adapters/open_store.h"
#include "tests/integration/idempotency_real_util.h"
#include "tests/integration/pg_test_server.h"

#ifndef FAULTLINE_BIN
#error "FAULTLINE_BIN must name the faultline binary"
#endif

extern char** environ;

namespace faultline::testing {
namespace {

struct Run {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Run Faultline(const std::vector<std::string>& args) {
  TempDir dir;
  const std::string out = dir.path() + "/out", err = dir.path() + "/err";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> storage = {FAULTLINE_BIN};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  Run run;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) == 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  posix_spawn_file_actions_destroy(&actions);
  run.out = ReadAll(out);
  run.err = ReadAll(err);
  return run;
}

void ExpectMisuse(const std::vector<std::string>& args) {
  const Run run = Faultline(args);
  std::string shown;
  for (const std::string& a : args) shown += a + " ";
  EXPECT_EQ(run.exit_code, 2) << shown << "\n" << run.err;
  EXPECT_EQ(run.err.rfind("faultline: error: ", 0), 0u) << shown << ": " << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << shown << ": " << run.err;
  EXPECT_EQ(run.out, "") << shown;
}

void ExpectBenchRan(const Run& run) {
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.err, "");
  EXPECT_NE(run.out.find("bare effect (1 commit)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("claim+effect+complete (2 commits)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("added by idempotency: p50 "), std::string::npos) << run.out;
  std::printf("%s", run.out.c_str());
}

void ExpectTableEmpty(const std::string& uri, const std::string& table) {
  OpenStoreOptions options;
  options.table = table;
  Result<std::unique_ptr<LocalStore>> store = OpenStore(uri, options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Result<std::map<std::string, std::string>> dump = DumpStore(**store);
  ASSERT_TRUE(dump.ok()) << dump.status().ToString();
  EXPECT_EQ(dump->size(), 0u) << "the bench left rows behind";
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
