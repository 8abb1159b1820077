// The conformance suite's etcd world: two EtcdLeaseService clients (nodes 1 and 2) on one
// RealEnv, against a real etcd started by the test process.
#include <atomic>
#include <chrono>
#include <map>
#include <thread>
#include <unistd.h>
#include <utility>

#include "faultline/adapters/etcd_lease.h"
#include "faultline/runtime/real_env.h"
#include "tests/lease/lease_worlds.h"

namespace faultline::lease_conformance {
namespace {

class EtcdWorld final : public LeaseWorld {
 public:
  static Result<std::unique_ptr<LeaseWorld>> Make(runtime::EtcdCluster& cluster) {
    static std::atomic<uint64_t> next_world{0};
    std::unique_ptr<EtcdWorld> world(new EtcdWorld());
    runtime::RealEnvOptions env_options;
    env_options.self = NodeId(1);
    env_options.peers = {runtime::Peer{NodeId(1), 0, false}};
    FL_ASSIGN_OR_RETURN(world->env_, runtime::RealEnv::Open(env_options));
    const std::string prefix = "/conformance/" + std::to_string(getpid()) + "/" +
                               std::to_string(next_world.fetch_add(1)) + "/";
    for (size_t i = 0; i < 2; ++i) {
      adapters::EtcdLeaseOptions options;
      options.endpoints = cluster.endpoints();
      options.key_prefix = prefix;
      options.request_timeout = Duration::Seconds(2);
      runtime::RealEnv* env = world->env_.get();
      std::atomic<int64_t>* delay = &world->delay_ns_[i];
      options.post_to_loop = [env, delay](std::function<void()> fn) {
        const int64_t ns = delay->load();
        if (ns > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
        env->PostFromAnyThread(std::move(fn));
      };
      FL_ASSIGN_OR_RETURN(auto service, adapters::EtcdLeaseService::Open(
                                            *world->env_, NodeId(static_cast<uint32_t>(i + 1)),
                                            std::move(options)));
      world->services_.push_back(std::move(service));
    }
    return std::unique_ptr<LeaseWorld>(std::move(world));
  }

  ~EtcdWorld() override {
    env_->DestroySpawned();
    services_.clear();
  }

  size_t clients() const override { return services_.size(); }
  lease::LeaseService& service(size_t i) override { return *services_[i]; }
  NodeId id(size_t i) const override { return NodeId(static_cast<uint32_t>(i + 1)); }
  MonoTime Now(size_t) override { return env_->clock().Now(); }
  bool RunTask(size_t, Task<void> task, Duration limit) override {
    auto done = std::make_shared<bool>(false);
    env_->Spawn(Flag(std::move(task), done));
    const MonoTime end = env_->clock().Now() + limit;
    while (!*done && env_->clock().Now() < end) env_->RunFor(Duration::Millis(1));
    return *done;
  }
  void Advance(Duration d) override {
    const MonoTime end = env_->clock().Now() + d;
    while (env_->clock().Now() < end) env_->RunFor(end - env_->clock().Now());
  }
  void SetReplyDelay(size_t i, Duration extra) override { delay_ns_[i].store(extra.nanos()); }
  Duration Ttl() const override { return Duration::Seconds(1); }
  // etcd keeps a lease ceil(ttl) s (at least 1 s) after the grant and its leader checks for
  // expired leases every 500 ms; the revoke is one raft round (a few ms on loopback).
  Duration ExpiryBound(Duration ttl) const override {
    const int64_t s = std::max<int64_t>((ttl.nanos() + 999'999'999) / 1'000'000'000, 1);
    return Duration::Seconds(s) + Duration::Millis(500) + Duration::Millis(500);
  }
  // Two replies (grant, txn) each this late: well inside request_timeout and ttl.
  Duration SlowReply() const override { return Duration::Millis(200); }
  Duration CallLimit() const override { return Duration::Seconds(10); }

 private:
  EtcdWorld() = default;
  static Task<void> Flag(Task<void> task, std::shared_ptr<bool> done) {
    co_await std::move(task);
    *done = true;
  }

  std::unique_ptr<runtime::RealEnv> env_;
  std::atomic<int64_t> delay_ns_[2] = {0, 0};
  std::vector<std::unique_ptr<adapters::EtcdLeaseService>> services_;
};

}  // namespace

Result<runtime::EtcdCluster*> SharedEtcdCluster(size_t members) {
  static std::map<size_t, std::unique_ptr<runtime::EtcdCluster>> clusters;
  auto it = clusters.find(members);
  if (it != clusters.end()) return it->second.get();
  runtime::EtcdClusterOptions options;
  options.members = members;
  FL_ASSIGN_OR_RETURN(std::unique_ptr<runtime::EtcdCluster> cluster,
                      runtime::EtcdCluster::Start(options));
  runtime::EtcdCluster* raw = cluster.get();
  clusters.emplace(members, std::move(cluster));
  return raw;
}

Result<std::unique_ptr<LeaseWorld>> MakeEtcdWorld(size_t members) {
  FL_ASSIGN_OR_RETURN(runtime::EtcdCluster * cluster, SharedEtcdCluster(members));
  return EtcdWorld::Make(*cluster);
}

}  // namespace faultline::lease_conformance
