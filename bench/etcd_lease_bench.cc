// Lease operations against a real etcd and against the embedded PaxosLease on the real runtime:
// the figures of the README's "Leader election on etcd" comparison.
//
//   EtcdAcquireRevoke/M   acquire + revoke cycles on an etcd of M members (started here through
//                         EtcdCluster: heartbeat 50 ms, election timeout 500 ms, loopback);
//                         acquire_p50_us / acquire_p99_us time the Acquire alone (lease/grant +
//                         the create-if-absent txn), items_per_second counts cycles.
//   EtcdKeepAlive/M       KeepAlive of one held lease, back to back (lease/keepalive + the
//                         create_revision check): items_per_second = keep-alives per second.
//   PaxosAcquireRevoke    the same cycle on PaxosLease: three RealEnv nodes in this process, UDP
//   PaxosKeepAlive        on 127.0.0.1, every acceptor promise fsynced by PosixDisk under $TMPDIR.
//
// One client, one request at a time: latency-bound figures, not server capacity.
//   etcd_lease_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "faultline/adapters/etcd_lease.h"
#include "faultline/env/rpc.h"
#include "faultline/lease/paxos_lease.h"
#include "faultline/runtime/etcd_cluster.h"
#include "faultline/runtime/real_env.h"
#include "src/runtime/runtime_test_util.h"

namespace faultline {
namespace {

using lease::LeaseGrant;
using runtime::RealEnv;

// Runs `task` on `env` from this thread; the loop stops as soon as the task finished, so the
// measured time is the call's, not a polling period's. Every call is bounded by its own timeouts
// (request_timeout, round_timeout).
template <typename T>
Task<void> Capture(RealEnv* env, Task<T> task, std::optional<T>* out) {
  T value = co_await std::move(task);
  out->emplace(std::move(value));
  env->Stop();
}

template <typename T>
std::optional<T> RunOn(RealEnv& env, Task<T> task) {
  std::optional<T> out;
  env.Spawn(Capture(&env, std::move(task), &out));
  while (!out.has_value()) env.Run();
  return out;
}

double Percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return static_cast<double>(v[i]) / 1000.0;
}

void Report(benchmark::State& state, const std::vector<int64_t>& samples, uint64_t failed,
            const char* what) {
  state.counters[std::string(what) + "_p50_us"] = Percentile(samples, 0.50);
  state.counters[std::string(what) + "_p99_us"] = Percentile(samples, 0.99);
  state.counters["failed"] = static_cast<double>(failed);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

// ---- etcd ----

runtime::EtcdCluster* Cluster(size_t members) {
  static std::unique_ptr<runtime::EtcdCluster> clusters[4];
  if (!clusters[members]) {
    runtime::EtcdClusterOptions o;
    o.members = members;
    auto c = runtime::EtcdCluster::Start(o);
    if (!c.ok()) return nullptr;
    clusters[members] = std::move(c).value();
  }
  return clusters[members].get();
}

struct EtcdClient {
  std::unique_ptr<RealEnv> env;
  std::unique_ptr<adapters::EtcdLeaseService> service;
  ~EtcdClient() {
    if (env) env->DestroySpawned();
    service.reset();
  }
};

std::unique_ptr<EtcdClient> OpenEtcd(size_t members, benchmark::State& state) {
  runtime::EtcdCluster* cluster = Cluster(members);
  if (cluster == nullptr) {
    state.SkipWithError("etcd did not start (install etcd-server)");
    return nullptr;
  }
  auto client = std::make_unique<EtcdClient>();
  runtime::RealEnvOptions o;
  o.self = NodeId(1);
  o.peers = {runtime::Peer{NodeId(1), 0, false}};
  client->env = std::move(RealEnv::Open(o)).value();
  adapters::EtcdLeaseOptions options;
  options.endpoints = cluster->endpoints();
  options.key_prefix = "/bench/" + std::to_string(getpid()) + "/";
  client->service = std::move(adapters::EtcdLeaseService::Open(*client->env, NodeId(1), options)).value();
  return client;
}

void BM_EtcdAcquireRevoke(benchmark::State& state) {
  std::unique_ptr<EtcdClient> c = OpenEtcd(static_cast<size_t>(state.range(0)), state);
  if (!c) return;
  std::vector<int64_t> samples;
  uint64_t failed = 0;
  for (auto _ : state) {
    const MonoTime start = c->env->clock().Now();
    auto grant = RunOn(*c->env, c->service->Acquire("bench", Duration::Seconds(5)));
    if (!grant || !grant->ok()) {
      ++failed;
      continue;
    }
    samples.push_back((c->env->clock().Now() - start).nanos());
    auto revoked = RunOn(*c->env, c->service->Revoke(grant->value()));
    if (!revoked || !revoked->ok()) ++failed;
  }
  Report(state, samples, failed, "acquire");
}
BENCHMARK(BM_EtcdAcquireRevoke)->Arg(1)->Arg(3)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_EtcdKeepAlive(benchmark::State& state) {
  std::unique_ptr<EtcdClient> c = OpenEtcd(static_cast<size_t>(state.range(0)), state);
  if (!c) return;
  auto grant = RunOn(*c->env, c->service->Acquire("bench-ka", Duration::Seconds(30)));
  if (!grant || !grant->ok()) {
    state.SkipWithError("acquire failed");
    return;
  }
  LeaseGrant held = grant->value();
  std::vector<int64_t> samples;
  uint64_t failed = 0;
  for (auto _ : state) {
    const MonoTime start = c->env->clock().Now();
    auto renewed = RunOn(*c->env, c->service->KeepAlive(held));
    if (!renewed || !renewed->ok()) {
      ++failed;
      continue;
    }
    held = renewed->value();
    samples.push_back((c->env->clock().Now() - start).nanos());
  }
  Report(state, samples, failed, "keepalive");
  auto revoked = RunOn(*c->env, c->service->Revoke(held));
  (void)revoked;
}
BENCHMARK(BM_EtcdKeepAlive)->Arg(1)->Arg(3)->UseRealTime()->Unit(benchmark::kMicrosecond);

// ---- PaxosLease on the real runtime ----

class PaxosCluster {
 public:
  static constexpr uint32_t kNodes = 3;
  PaxosCluster() {
    const char* tmp = std::getenv("TMPDIR");
    dir_ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/flpaxosbench-" +
           std::to_string(getpid());
    const std::vector<uint16_t> ports = runtime::testing::FreePorts(kNodes);
    lease::PaxosLeaseOptions options;
    for (uint32_t i = 0; i < kNodes; ++i) options.acceptors.push_back(NodeId(i));
    options.lock_delay = Duration::Zero();
    for (uint32_t i = 0; i < kNodes; ++i) {
      Node& n = nodes_[i];
      n.env = runtime::testing::OpenEnv(i, ports, {}, dir_ + "/n" + std::to_string(i));
      n.rpc = std::make_unique<Rpc>(*n.env);
      n.acceptor = std::move(lease::PaxosLeaseAcceptor::Create(*n.env, *n.rpc, options, false)).value();
      n.client = std::move(lease::PaxosLeaseClient::Create(*n.env, *n.rpc, options)).value();
    }
    for (uint32_t i = 1; i < kNodes; ++i) {
      RealEnv* env = nodes_[i].env.get();
      threads_.emplace_back([env] { env->Run(); });
    }
  }
  ~PaxosCluster() {
    for (uint32_t i = 1; i < kNodes; ++i) nodes_[i].env->Stop();
    for (std::thread& t : threads_) t.join();
    for (Node& n : nodes_) {
      n.env->DestroySpawned();
      n.client.reset();
      n.acceptor.reset();
      n.rpc.reset();
      n.env.reset();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  RealEnv& env() { return *nodes_[0].env; }
  lease::PaxosLeaseClient& client() { return *nodes_[0].client; }

 private:
  struct Node {
    std::unique_ptr<RealEnv> env;
    std::unique_ptr<Rpc> rpc;
    std::unique_ptr<lease::PaxosLeaseAcceptor> acceptor;
    std::unique_ptr<lease::PaxosLeaseClient> client;
  };
  std::string dir_;
  Node nodes_[kNodes];
  std::vector<std::thread> threads_;
};

void BM_PaxosAcquireRevoke(benchmark::State& state) {
  PaxosCluster c;
  std::vector<int64_t> samples;
  uint64_t failed = 0;
  for (auto _ : state) {
    const MonoTime start = c.env().clock().Now();
    auto grant = RunOn(c.env(), c.client().Acquire("bench", Duration::Seconds(5)));
    if (!grant || !grant->ok()) {
      ++failed;
      continue;
    }
    samples.push_back((c.env().clock().Now() - start).nanos());
    auto revoked = RunOn(c.env(), c.client().Revoke(grant->value()));
    if (!revoked || !revoked->ok()) ++failed;
  }
  Report(state, samples, failed, "acquire");
}
BENCHMARK(BM_PaxosAcquireRevoke)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_PaxosKeepAlive(benchmark::State& state) {
  PaxosCluster c;
  auto grant = RunOn(c.env(), c.client().Acquire("bench-ka", Duration::Seconds(30)));
  if (!grant || !grant->ok()) {
    state.SkipWithError("acquire failed");
    return;
  }
  LeaseGrant held = grant->value();
  std::vector<int64_t> samples;
  uint64_t failed = 0;
  for (auto _ : state) {
    const MonoTime start = c.env().clock().Now();
    auto renewed = RunOn(c.env(), c.client().KeepAlive(held));
    if (!renewed || !renewed->ok()) {
      ++failed;
      continue;
    }
    held = renewed->value();
    samples.push_back((c.env().clock().Now() - start).nanos());
  }
  Report(state, samples, failed, "keepalive");
}
BENCHMARK(BM_PaxosKeepAlive)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace faultline

BENCHMARK_MAIN();
