// Cost of idempotency keys on LogStore over an in-memory disk (faultline/idempotency/).
// Targets (txn_shard research, section 3): claim overhead p50 < 0.3 ms on in-process SQLite,
// replay p99 < 2 ms; these rows are the LogStore baseline the SQL stores will be compared with.
//
//   AcquireComplete  one request's bookkeeping: Acquire (first claim: InsertIfAbsent + index put,
//                    one commit) then Complete (read, CAS, index move, one commit) on a fresh key.
//                    Every 1024 rounds the clock jumps past retention and Expire empties the store
//                    with the timer paused, so the state stays small and the rows measure the
//                    steady state, not a growing map.
//   Replay           Acquire of a completed key: read, decode, copy the response; a read-only
//                    commit (no I/O). Response sizes 0 B, 1 KiB, 64 KiB.
//   InProgress       Acquire of a key held by a live claim (the 409 path).
//   InboxProcess     Inbox::Process of a new message with an empty effect (expired like above).
//   Fingerprint      SHA-256 of a 1 KiB canonical request.
//   ParseHeader      ParseIdempotencyKeyHeader of a 36-character UUID key.
// Every row reports allocs_per_op from the global operator-new counter. The disk is MemDisk below,
// whose Sync is free: SimDisk's Sync copies the whole file image to model durability, which would
// make every commit cost O(log size) and measure the simulator instead of the code.
//
//   idempotency_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bench/alloc_counter.h"
#include "bench/mem_disk.h"
#include "faultline/env/clock.h"
#include "faultline/env/disk.h"
#include "faultline/idempotency/http.h"
#include "faultline/idempotency/idempotency_keys.h"
#include "faultline/idempotency/inbox.h"
#include "faultline/store/log_store.h"

namespace faultline {
namespace {

using idempotency::Claim;
using idempotency::ClaimState;
using idempotency::IdempotencyKeys;

using bench::MemDisk;

constexpr Duration kLease = Duration::Seconds(30);
constexpr int kExpireEvery = 1024;

template <typename T>
T Must(Result<T> r) {
  FL_ASSERT_MSG(r.ok(), r.status().ToString().c_str());
  return std::move(r).value();
}

struct Env {
  Env() {
    store = Must(LogStore::Open(disk));
    keys = Must(IdempotencyKeys::Create(*store, clock));
  }
  ~Env() {
    keys.reset();
    store.reset();
  }
  // Empties the store of expired records, timer paused.
  void ExpireAll(benchmark::State& state) {
    state.PauseTiming();
    clock.Advance(keys->options().retention + kLease);
    while (Must(keys->Expire()) > 0) {
    }
    state.ResumeTiming();
  }
  MemDisk disk;
  ManualClock clock;
  std::unique_ptr<LogStore> store;
  std::unique_ptr<IdempotencyKeys> keys;
};

void CountAllocs(benchmark::State& state, uint64_t before) {
  state.counters["allocs_per_op"] = benchmark::Counter(
      static_cast<double>(bench::Allocations() - before) / static_cast<double>(state.iterations()));
}

void BM_AcquireComplete(benchmark::State& state) {
  Env env;
  const idempotency::Fingerprint fp = idempotency::FingerprintOf("POST /charges amount=100");
  const std::string response(256, 'r');
  std::string key = "key-0000000000";
  uint64_t i = 0;
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    const std::string n = std::to_string(i);
    key.replace(key.size() - n.size(), n.size(), n);
    const Claim claim = Must(env.keys->Acquire("acct_1", key, fp, kLease));
    FL_ASSERT(claim.state == ClaimState::kClaimed);
    const Status done = env.keys->Complete("acct_1", key, claim.attempt, response);
    FL_ASSERT(done.ok());
    if (++i % kExpireEvery == 0) env.ExpireAll(state);
  }
  CountAllocs(state, before);
}
BENCHMARK(BM_AcquireComplete);

void BM_Replay(benchmark::State& state) {
  Env env;
  const idempotency::Fingerprint fp = idempotency::FingerprintOf("POST /charges amount=100");
  const std::string response(static_cast<size_t>(state.range(0)), 'r');
  const Claim claim = Must(env.keys->Acquire("acct_1", "key", fp, kLease));
  FL_ASSERT(env.keys->Complete("acct_1", "key", claim.attempt, response).ok());
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    const Claim replay = Must(env.keys->Acquire("acct_1", "key", fp, kLease));
    FL_ASSERT(replay.state == ClaimState::kCompleted);
    benchmark::DoNotOptimize(replay.response.data());
  }
  CountAllocs(state, before);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Replay)->Arg(0)->Arg(1024)->Arg(64 * 1024);

void BM_InProgress(benchmark::State& state) {
  Env env;
  const idempotency::Fingerprint fp = idempotency::FingerprintOf("POST /charges amount=100");
  FL_ASSERT(Must(env.keys->Acquire("acct_1", "key", fp, Duration::Seconds(3600))).state ==
            ClaimState::kClaimed);
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    const Claim busy = Must(env.keys->Acquire("acct_1", "key", fp, kLease));
    FL_ASSERT(busy.state == ClaimState::kInProgress);
  }
  CountAllocs(state, before);
}
BENCHMARK(BM_InProgress);

void BM_InboxProcess(benchmark::State& state) {
  Env env;
  auto inbox = Must(idempotency::Inbox::Create(*env.store, env.clock, "billing"));
  std::string id = "msg-0000000000";
  uint64_t i = 0;
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    const std::string n = std::to_string(i);
    id.replace(id.size() - n.size(), n.size(), n);
    FL_ASSERT(Must(inbox->Process(id, [](Transaction&) { return Status::Ok(); })));
    if (++i % kExpireEvery == 0) {
      state.PauseTiming();
      env.clock.Advance(Duration::Seconds(48 * 3600));
      while (Must(inbox->Expire()) > 0) {
      }
      state.ResumeTiming();
    }
  }
  CountAllocs(state, before);
}
BENCHMARK(BM_InboxProcess);

void BM_Fingerprint(benchmark::State& state) {
  const std::string request(1024, 'x');
  const uint64_t before = bench::Allocations();
  for (auto _ : state) benchmark::DoNotOptimize(idempotency::FingerprintOf(request));
  CountAllocs(state, before);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 1024);
}
BENCHMARK(BM_Fingerprint);

void BM_ParseHeader(benchmark::State& state) {
  const std::string field = "\"8e03978e-40d5-43e8-bc93-6894a57f9324\"";
  const uint64_t before = bench::Allocations();
  for (auto _ : state) {
    benchmark::DoNotOptimize(idempotency::ParseIdempotencyKeyHeader(field));
  }
  CountAllocs(state, before);
}
BENCHMARK(BM_ParseHeader);

}  // namespace
}  // namespace faultline

BENCHMARK_MAIN();
