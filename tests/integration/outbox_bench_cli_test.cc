// `faultline bench outbox` end to end: the real binary against temporary SQLite files (both outbox
// kinds) and the test PostgreSQL server, each run reading every event back in per-key order; and
// the misuse contract (exit 2, exactly one line "faultline: error: ..." on stderr).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <sstream>

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
