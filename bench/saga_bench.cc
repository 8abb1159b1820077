// Saga steps per second (faultline/saga/): one iteration is one saga of 4 steps run to the end by
// the synchronous Orchestrator; items are steps. Each step costs the log two commits (Next arms the
// step, RecordForward records it); the "Guarded" rows add the participant's work in the same store
// (ParticipantGuard + one balance write: a third commit per step), which is what a service whose
// saga log and participant share a database pays.
//
//   LogStore  over MemDisk (files in memory, Sync free): the cost of the code, not of a disk.
//   Sqlite    a database file in $TMPDIR (default /tmp), WAL, synchronous=NORMAL (fsync at
//             checkpoints only; see the README's store figures for FULL).
//
// Rates are per wall-clock second (UseRealTime): SQLite waits on I/O, which CPU time would hide.
//
//   saga_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bench/mem_disk.h"
#include "faultline/adapters/sqlite_store.h"
#include "faultline/env/clock.h"
#include "faultline/env/disk.h"
#include "faultline/saga/orchestrator.h"
#include "faultline/saga/participant.h"
#include "faultline/store/log_store.h"

namespace faultline {
namespace {

using saga::Orchestrator;
using saga::SagaLog;
using saga::StepCall;

constexpr uint32_t kSteps = 4;

using bench::MemDisk;

template <typename T>
T Must(Result<T> r) {
  FL_ASSERT_MSG(r.ok(), r.status().ToString().c_str());
  return std::move(r).value();
}

// The participant's side of a guarded step: guard + one counter write, one transaction.
Status GuardedApply(LocalStore& store, const StepCall& call) {
  saga::ParticipantGuard guard;
  return RunInTransaction(store, [&](Transaction& txn) -> Status {
    FL_ASSIGN_OR_RETURN(saga::GuardVerdict verdict, guard.ApplyForward(txn, call.forward_key));
    if (verdict != saga::GuardVerdict::kApply) return Status::Ok();
    return txn.Put("balance/" + std::to_string(call.step), call.forward_key);
  });
}

void RunSagas(benchmark::State& state, LocalStore& store, bool guarded) {
  ManualClock clock;
  std::unique_ptr<SagaLog> log = Must(SagaLog::Create(store, clock));
  std::unique_ptr<Orchestrator> orch = Must(Orchestrator::Create(*log, clock));
  saga::SagaDefinition def{"bench", {}};
  for (uint32_t i = 0; i < kSteps; ++i) {
    saga::StepFunction forward = [&store, guarded](const StepCall& call) {
      return guarded ? GuardedApply(store, call) : Status::Ok();
    };
    def.steps.push_back({"step", forward, [](const StepCall&) { return Status::Ok(); }});
  }
  FL_ASSERT(orch->Register(std::move(def)).ok());
  uint64_t n = 0;
  for (auto _ : state) {
    const std::string id = "saga-" + std::to_string(n++);
    const saga::SagaOutcome outcome = Must(orch->Run("bench", id, "data"));
    FL_ASSERT(outcome == saga::SagaOutcome::kDone);
    // Finished sagas are forgotten, so the store stays small and rows measure the steady state.
    FL_ASSERT(log->Forget(id).ok());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kSteps));
}

void BM_SagaSteps_LogStore(benchmark::State& state) {
  MemDisk disk;
  std::unique_ptr<LogStore> store = Must(LogStore::Open(disk));
  RunSagas(state, *store, state.range(0) != 0);
}
BENCHMARK(BM_SagaSteps_LogStore)->ArgName("guarded")->Arg(0)->Arg(1)->UseRealTime();

void BM_SagaSteps_Sqlite(benchmark::State& state) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/flsagabench-XXXXXX";
  FL_ASSERT(mkdtemp(dir.data()) != nullptr);
  {
    SqliteStoreOptions options;
    options.path = dir + "/saga.db";
    options.synchronous = SqliteSynchronous::kNormal;
    std::unique_ptr<SqliteStore> store = Must(SqliteStore::Open(options));
    RunSagas(state, *store, state.range(0) != 0);
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SagaSteps_Sqlite)->ArgName("guarded")->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace faultline

BENCHMARK_MAIN();
