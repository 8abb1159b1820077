// The idempotency-claim commit round on each real store: one transaction doing
// InsertIfAbsent(fresh key) + Put(per-thread "last" key), committed, with 1 and 2 threads.
//
//   SQLite: WAL, BEGIN IMMEDIATE, synchronous NORMAL (no fsync per commit) and FULL (fsync per
//           commit), a file in $TMPDIR (the machine's disk, not tmpfs, unless $TMPDIR says so).
//   PostgreSQL: a server started here (fsync=on; synchronous_commit=on, the durable default, and
//           =off), reached over TCP on 127.0.0.1; or FAULTLINE_TEST_PG (settings then are that
//           server's, and both variants run on it).
//
// Report medians: --benchmark_repetitions=5 --benchmark_report_aggregates_only=true.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "faultline/adapters/postgres_store.h"
#include "faultline/adapters/sqlite_store.h"
#include "tests/integration/pg_test_server.h"

namespace faultline {
namespace {

std::unique_ptr<LocalStore> g_store;
std::string g_dir;

void CommitRounds(benchmark::State& state) {
  const std::string prefix = "t" + std::to_string(state.thread_index()) + "-";
  const std::string last = prefix + "last";
  uint64_t i = 0;
  for (auto _ : state) {
    const std::string key = prefix + std::to_string(i++);
    const Status status = RunInTransaction(*g_store, [&](Transaction& txn) -> Status {
      FL_ASSIGN_OR_RETURN(const bool inserted, txn.InsertIfAbsent(key, "claimed"));
      if (!inserted) return InternalError("key reused");
      return txn.Put(last, key);
    }, 64);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_SqliteCommitRound(benchmark::State& state) {
  if (state.thread_index() == 0) {
    const char* tmp = std::getenv("TMPDIR");
    g_dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/flbench-XXXXXX";
    FL_ASSERT(mkdtemp(g_dir.data()) != nullptr);
    SqliteStoreOptions options;
    options.path = g_dir + "/bench.db";
    options.synchronous = state.range(0) == 1 ? SqliteSynchronous::kFull : SqliteSynchronous::kNormal;
    Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(options);
    FL_ASSERT_MSG(store.ok(), store.status().ToString().c_str());
    g_store = std::move(store).value();
  }
  CommitRounds(state);
  if (state.thread_index() == 0) {
    g_store.reset();
    std::filesystem::remove_all(g_dir);
  }
}
BENCHMARK(BM_SqliteCommitRound)->ArgName("full")->Arg(0)->Arg(1)->Threads(1)->Threads(2)
    ->UseRealTime();

// One server per synchronous_commit setting, started on first use and kept for the run.
std::string PostgresConninfo(bool synchronous_commit) {
  if (const char* env = std::getenv("FAULTLINE_TEST_PG"); env != nullptr && *env != '\0') {
    return env;
  }
  static std::unique_ptr<testing::PgTestServer> servers[2];
  std::unique_ptr<testing::PgTestServer>& server = servers[synchronous_commit ? 1 : 0];
  if (server == nullptr) {
    testing::PgTestServerOptions options;
    options.tcp_port = testing::FreeLoopbackPort().value();
    options.synchronous_commit = synchronous_commit ? "on" : "off";
    Result<std::unique_ptr<testing::PgTestServer>> started = testing::PgTestServer::Start(options);
    FL_ASSERT_MSG(started.ok(), started.status().ToString().c_str());
    server = std::move(started).value();
  }
  return server->conninfo();
}

void BM_PostgresCommitRound(benchmark::State& state) {
  if (state.thread_index() == 0) {
    PostgresStoreOptions options;
    options.conninfo = PostgresConninfo(state.range(0) == 1);
    options.table = testing::UniqueTableName();
    Result<std::unique_ptr<PostgresStore>> store = PostgresStore::Open(options);
    FL_ASSERT_MSG(store.ok(), store.status().ToString().c_str());
    g_store = std::move(store).value();
  }
  CommitRounds(state);
  if (state.thread_index() == 0) g_store.reset();
}
BENCHMARK(BM_PostgresCommitRound)->ArgName("sync_commit")->Arg(1)->Arg(0)->Threads(1)->Threads(2)
    ->UseRealTime();

}  // namespace
}  // namespace faultline

BENCHMARK_MAIN();
