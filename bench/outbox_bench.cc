// Cost of the transactional outbox per event on SQLite (faultline/outbox/): the SqliteStore and the
// embedded queue in a temporary directory, synchronous=NORMAL (WAL fsynced at checkpoints, as
// `faultline bench outbox` runs them; FULL adds an fsync per commit, a few hundred per second on
// this disk).
//
//   AppendOne/    one event per transaction: RunInTransaction(Outbox::Append) and its commit.
//   AppendBatch/N N events in one transaction; time per event.
//   PollMark/N    Relay::Poll(N) + MarkPublished: the relay's store work per event (no broker).
//   RunOnce/N     Relay::RunOnce into SqliteQueue: poll, publish (one queue transaction per batch),
//                 mark; time per event.
// The outbox is refilled with the timer paused whenever it runs dry.
//
//   outbox_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "faultline/adapters/sqlite_store.h"
#include "faultline/outbox/outbox.h"
#include "faultline/outbox/relay.h"
#include "faultline/outbox/sqlite_queue.h"

namespace faultline::outbox {
namespace {

class Env {
 public:
  Env() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fl-outbox-bench-XXXXXX").string();
    FL_ASSERT(mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
    store = SqliteStore::Open({.path = dir_ + "/app.db", .synchronous = SqliteSynchronous::kNormal})
                .value();
    outbox = Outbox::Create(*store).value();
    relay = Relay::Create(*store, {}, RelayOptions{.batch_max = 4096}).value();
  }
  ~Env() {
    relay.reset();
    outbox.reset();
    queue.reset();
    store.reset();
    std::filesystem::remove_all(dir_);
  }
  SqliteQueue& Queue() {
    if (!queue) {
      queue =
          SqliteQueue::Open({.path = dir_ + "/queue.db", .synchronous = SqliteSynchronous::kNormal})
              .value();
    }
    return *queue;
  }
  Message Event() {
    std::string payload(64, 'p');
    return Message{"ev-" + std::to_string(next_++), "bench.events",
                   "k" + std::to_string(next_ % 100), std::move(payload)};
  }
  void Fill(size_t n) {
    for (size_t done = 0; done < n; done += 1000) {
      FL_ASSERT(RunInTransaction(*store, [&](Transaction& txn) -> Status {
                  for (size_t i = done; i < std::min(n, done + 1000); ++i) {
                    FL_RETURN_IF_ERROR(outbox->Append(txn, Event()).status());
                  }
                  return Status::Ok();
                }).ok());
    }
  }

  std::unique_ptr<SqliteStore> store;
  std::unique_ptr<Outbox> outbox;
  std::unique_ptr<Relay> relay;
  std::unique_ptr<SqliteQueue> queue;

 private:
  std::string dir_;
  uint64_t next_ = 0;
};

void BM_AppendOne(benchmark::State& state) {
  Env env;
  for (auto _ : state) benchmark::DoNotOptimize(env.outbox->AppendOne(env.Event()).value());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AppendOne)->UseRealTime();

void BM_AppendBatch(benchmark::State& state) {
  Env env;
  const auto n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    FL_ASSERT(RunInTransaction(*env.store, [&](Transaction& txn) -> Status {
                for (size_t i = 0; i < n; ++i) {
                  FL_RETURN_IF_ERROR(env.outbox->Append(txn, env.Event()).status());
                }
                return Status::Ok();
              }).ok());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_AppendBatch)->Arg(10)->Arg(100)->Arg(1000)->UseRealTime();

void BM_PollMark(benchmark::State& state) {
  Env env;
  const auto n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    std::vector<OutboxRecord> records = env.relay->Poll(n).value();
    if (records.size() < n) {
      state.PauseTiming();
      env.Fill(100 * n);
      state.ResumeTiming();
      records = env.relay->Poll(n).value();
    }
    FL_ASSERT(env.relay->MarkPublished(records).ok());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_PollMark)->Arg(64)->Arg(512)->Arg(4096)->UseRealTime();

void BM_RunOnce(benchmark::State& state) {
  Env env;
  const auto n = static_cast<size_t>(state.range(0));
  auto relay = Relay::Create(*env.store, {}, RelayOptions{.batch_max = n}).value();
  auto publisher = env.Queue().NewPublisher().value();
  env.Fill(100 * n);
  int64_t total = 0;
  for (auto _ : state) {
    size_t published = relay->RunOnce(*publisher).value();
    if (published < n) {
      state.PauseTiming();
      env.Fill(100 * n);
      state.ResumeTiming();
      published += relay->RunOnce(*publisher).value();
    }
    total += static_cast<int64_t>(published);
  }
  state.SetItemsProcessed(total);
}
BENCHMARK(BM_RunOnce)->Arg(64)->Arg(512)->Arg(4096)->UseRealTime();

}  // namespace
}  // namespace faultline::outbox

BENCHMARK_MAIN();
