// Sharding hot paths: key hashing, jump hash, rendezvous, ring lookup, and the Router's cached-map
// lookup (range and hash mode, 64 and 1024 ranges) with allocations per operation (target: 0).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/alloc_counter.h"
#include "faultline/shard/partitioner.h"
#include "faultline/shard/router.h"
#include "faultline/shard/shard_map.h"

namespace faultline::shard {
namespace {

void ReportAllocs(benchmark::State& state, uint64_t allocs_before) {
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(bench::Allocations() - allocs_before) /
                         static_cast<double>(state.iterations()));
}

std::string Key(uint64_t i) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "user:%08llu", static_cast<unsigned long long>(i));
  return buf;
}

// 4096 keys to cycle through, so the branch predictor cannot learn one answer.
const std::vector<std::string>& Keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (uint64_t i = 0; i < 4096; ++i) k.push_back(Key((i * 2654435761ULL) % 10'000'000));
    return k;
  }();
  return keys;
}

void BM_KeyHash16B(benchmark::State& state) {
  const auto& keys = Keys();
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(KeyHash(keys[i++ & 4095]));
}
BENCHMARK(BM_KeyHash16B);

void BM_JumpHash(benchmark::State& state) {
  const auto buckets = static_cast<int32_t>(state.range(0));
  uint64_t key = 0x9e3779b97f4a7c15ULL;
  for (auto _ : state) {
    benchmark::DoNotOptimize(JumpConsistentHash(key, buckets));
    key += 0x9e3779b97f4a7c15ULL;
  }
}
BENCHMARK(BM_JumpHash)->Arg(16)->Arg(1024);

void BM_Rendezvous16(benchmark::State& state) {
  std::vector<Rendezvous::Member> members;
  for (uint32_t i = 0; i < 16; ++i) {
    members.push_back({ShardId(i), state.range(0) == 0 ? 1.0 : 1.0 + i});
  }
  const Rendezvous r = Rendezvous::Create(members).value();
  uint64_t key = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(r.Pick(key));
    key += 0x9e3779b97f4a7c15ULL;
  }
  state.SetLabel(state.range(0) == 0 ? "equal weights" : "weighted");
}
BENCHMARK(BM_Rendezvous16)->Arg(0)->Arg(1);

void BM_RingLookup(benchmark::State& state) {
  HashRing ring;
  for (uint32_t i = 0; i < static_cast<uint32_t>(state.range(0)); ++i) {
    (void)ring.AddShard(ShardId(i));
  }
  uint64_t key = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ring.Lookup(key));
    key += 0x9e3779b97f4a7c15ULL;
  }
  state.SetLabel(std::to_string(ring.points().size()) + " vnodes");
}
BENCHMARK(BM_RingLookup)->Arg(16)->Arg(64);

// A range-mode map with `ranges` ranges over the user:%08d key space, spread over 16 shards.
std::shared_ptr<const ShardMap> RangeMap(int ranges) {
  ShardMap m = ShardMap::Single(KeyMode::kRange, ShardId(0));
  for (uint32_t s = 1; s < 16; ++s) m = m.AddShard(ShardId(s)).value();
  for (int i = 1; i < ranges; ++i) {
    const std::string at = Key(static_cast<uint64_t>(i) * 10'000'000 / ranges);
    const RangeId last = m.ranges().back().id;
    m = m.Split(last, at).value();
    if (i % 16 != 0)
      m = m.Move(m.ranges().back().id, ShardId(static_cast<uint32_t>(i % 16))).value();
  }
  return std::make_shared<const ShardMap>(std::move(m));
}

std::shared_ptr<const ShardMap> HashMap(int ranges) {
  std::vector<ShardId> shards;
  for (int i = 0; i < ranges; ++i) shards.push_back(ShardId(static_cast<uint32_t>(i)));
  return std::make_shared<const ShardMap>(ShardMap::EvenHash(shards).value());
}

void BM_RouterRouteKey(benchmark::State& state) {
  const int ranges = static_cast<int>(state.range(0));
  const bool hash = state.range(1) == 1;
  Router router(hash ? HashMap(ranges) : RangeMap(ranges));
  const auto& keys = Keys();
  size_t i = 0;
  const uint64_t allocs = bench::Allocations();
  for (auto _ : state) benchmark::DoNotOptimize(router.RouteKey(keys[i++ & 4095]));
  ReportAllocs(state, allocs);
  state.SetLabel(std::to_string(router.map().ranges().size()) + (hash ? " hash" : " key") +
                 " ranges");
}
BENCHMARK(BM_RouterRouteKey)->Args({64, 0})->Args({1024, 0})->Args({64, 1})->Args({1024, 1});

// Tenant routing with 1000 overrides present (one map lookup, then the range search).
void BM_RouterRouteTenantKey(benchmark::State& state) {
  ShardMap m = *RangeMap(1024);
  for (int t = 0; t < 1000; ++t)
    m = m.SetOverride("tenant-" + std::to_string(t), ShardId(3)).value();
  Router router(std::make_shared<const ShardMap>(std::move(m)));
  const auto& keys = Keys();
  size_t i = 0;
  const uint64_t allocs = bench::Allocations();
  for (auto _ : state) {
    benchmark::DoNotOptimize(router.RouteTenantKey("tenant-x", keys[i++ & 4095]));
  }
  ReportAllocs(state, allocs);
}
BENCHMARK(BM_RouterRouteTenantKey);

// The server-side check of a request's (range, epoch), 1024 ranges.
void BM_CheckEpoch(benchmark::State& state) {
  const auto map = RangeMap(1024);
  std::vector<Route> routes;
  for (const auto& k : Keys()) routes.push_back(map->RouteKey(k));
  size_t i = 0;
  const uint64_t allocs = bench::Allocations();
  for (auto _ : state) {
    const Route& r = routes[i++ & 4095];
    benchmark::DoNotOptimize(map->CheckEpoch(r.shard, r.range, r.epoch));
  }
  ReportAllocs(state, allocs);
}
BENCHMARK(BM_CheckEpoch);

}  // namespace
}  // namespace faultline::shard

BENCHMARK_MAIN();
