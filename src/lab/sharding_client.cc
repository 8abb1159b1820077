// The `sharding` scenario's clients (n4..n7) and its workload.
//
// Each client node sends an open-loop Poisson stream (kOpsPerSecond / kClientNodes per node). An
// operation picks its tenant (from kHotStart on, the hot tenant with probability 30 %, else one of
// the other 999 uniformly), a key of that tenant by Zipf(1.2) over 1000 ranks, and reads it or
// writes a new record under it with a write id unique to the operation. Data is placed by tenant
// (all of a tenant's keys on one shard, the co-location that tenant-sharded databases choose), so
// the hot tenant's 30 % lands on one shard.
//
// Both designs retry an operation until it succeeds or kOpDeadline passes (then it is a
// client-visible error), with the same write id on every attempt; they differ in routing:
//   naive     shard = JumpConsistentHash(KeyHash(tenant), n), n from a config the client re-reads
//             from the directory every 3 s.
//   hardened  a shard::Router-style cached ShardMap: kEpochNotMatch installs the server's newer
//             map and retries at once; kFenced (the tenant is in a cutover) waits briefly and
//             re-reads the directory's map — the request is buffered in the client, not failed.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "faultline/env/rpc.h"
#include "faultline/env/task.h"
#include "faultline/shard/partitioner.h"
#include "faultline/shard/router.h"
#include "faultline/shard/shard_map.h"
#include "src/lab/sharding.h"

namespace faultline::lab::sharding {

std::string TenantName(uint32_t t) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "t%04u", t);
  return buf;
}

std::string KeyName(uint32_t k) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "k%04u", k);
  return buf;
}

namespace {

// k^0.2 by Newton's method on x^5 = k with IEEE + - * / only: the same bits on every platform.
double FifthRoot(double k) {
  double x = 4.0;  // above the root for every k <= 1024: the iteration decreases to it
  for (int i = 0; i < 60; ++i) x = (4.0 * x + k / (x * x * x * x)) / 5.0;
  return x;
}

struct ZipfTable {
  std::vector<uint64_t> cumulative;  // cumulative[i] = sum of weights of ranks 1..i+1
  ZipfTable() {
    uint64_t total = 0;
    for (uint32_t k = 1; k <= kKeysPerTenant; ++k) {
      const double weight = 1e12 / (static_cast<double>(k) * FifthRoot(k));  // 1e12 * k^-1.2
      total += static_cast<uint64_t>(weight);
      cumulative.push_back(total);
    }
  }
};

const ZipfTable& Zipf() {
  static const ZipfTable table;
  return table;
}

}  // namespace

uint64_t ZipfTotal() { return Zipf().cumulative.back(); }

uint32_t ZipfRank(uint64_t uniform) {
  const std::vector<uint64_t>& c = Zipf().cumulative;
  return static_cast<uint32_t>(std::upper_bound(c.begin(), c.end(), uniform) - c.begin()) + 1;
}

namespace {

constexpr Duration kOpDeadline = Duration::Seconds(10);
constexpr Duration kCallTimeout = Duration::Millis(250);
constexpr Duration kBufferWait = Duration::Millis(25);
constexpr Duration kUnavailableWait = Duration::Millis(20);
constexpr Duration kConfigPoll = Duration::Seconds(3);

class Client final : public Node {
 public:
  Client(Env& env, Design design, ShardingObservations* obs, const TrueTime* true_time, uint32_t hot)
      : env_(env), rpc_(env), design_(design), obs_(obs), true_time_(true_time), hot_(hot) {}

  void Start() override {
    if (design_ == Design::kHardened) {
      env_.Spawn(RefreshMap());
    } else {
      env_.Spawn(PollConfig());
    }
    start_ = env_.clock().Now();
    env_.Spawn(Generate());
  }

 private:
  int64_t now_ns() const { return true_time_->NowNs(); }

  Task<void> Generate() {
    const Duration mean = Duration::Nanos(Duration::Seconds(1).nanos() * kClientNodes /
                                          kOpsPerSecond);
    Rng& rng = env_.random();
    while (true) {
      const Status slept = co_await Sleep(env_.executor(), rng.Exponential(mean));
      if (!slept.ok()) co_return;
      const Duration elapsed = env_.clock().Now() - start_;  // this node's own clock
      if (elapsed >= kWorkloadEnd) co_return;
      ClientOp op;
      op.node = env_.self().value();
      uint32_t t = static_cast<uint32_t>(rng.Uniform(kTenants - 1));
      if (t >= hot_) ++t;  // one of the others
      if (elapsed >= kHotStart && rng.Chance(Ratio::Percent(kHotPercent))) t = hot_;
      op.tenant = TenantName(t);
      op.key = KeyName(ZipfRank(rng.Uniform(ZipfTotal())));
      op.write = rng.Chance(Ratio::Percent(kWritePercent));
      if (op.write) op.wid = (uint64_t{op.node} << 40) | ++writes_;
      op.invoke_ns = now_ns();
      obs_->ops.push_back(std::move(op));
      env_.Spawn(Run(obs_->ops.size() - 1));
    }
  }

  WireRoute RouteOf(const std::string& tenant) const {
    WireRoute w;
    if (design_ == Design::kNaive) {
      w.shard = static_cast<uint32_t>(shard::JumpConsistentHash(
          shard::KeyHash(tenant), static_cast<int32_t>(shard_count_)));
      return w;
    }
    const shard::Route r = router_->RouteTenantKey(tenant, tenant);
    w.shard = r.shard.value();
    w.range = r.range.value();
    w.epoch = r.epoch.value();
    w.by_override = r.by_override;
    return w;
  }

  Bytes Request(const ClientOp& op, const WireRoute& route) const {
    Bytes req;
    ByteWriter w(&req);
    w.Bytes(op.tenant);
    w.Bytes(op.key);
    if (op.write) w.U64(op.wid);
    PutRoute(w, route);
    return req;
  }

  // One operation, retried until ok or kOpDeadline. `i` indexes obs_->ops (which may grow).
  Task<void> Run(size_t i) {
    const int64_t deadline = obs_->ops[i].invoke_ns + kOpDeadline.nanos();
    uint32_t failures = 0;
    while (now_ns() < deadline) {
      if (design_ == Design::kHardened && router_ == nullptr) {
        const Status slept = co_await Sleep(env_.executor(), kUnavailableWait);
        if (!slept.ok()) co_return;
        continue;
      }
      const WireRoute route = RouteOf(obs_->ops[i].tenant);
      const Bytes req = Request(obs_->ops[i], route);
      ++obs_->ops[i].attempts;
      const uint16_t method = obs_->ops[i].write ? kMethodWrite : kMethodRead;
      Result<Bytes> reply = co_await rpc_.Call(NodeId(route.shard), method, req, kCallTimeout);
      const ReplyCode code =
          reply.ok() && !reply->empty() ? static_cast<ReplyCode>((*reply)[0]) : ReplyCode::kUnavailable;
      if (reply.ok() && code == ReplyCode::kOk) {
        obs_->ops[i].ok = true;
        obs_->ops[i].end_ns = now_ns();
        co_return;
      }
      if (reply.ok() && code == ReplyCode::kEpochNotMatch && router_ != nullptr) {
        ++obs_->ops[i].redirects;
        Result<bool> newer = router_->OnStaleEpoch(std::span<const uint8_t>(*reply).subspan(1));
        if (newer.ok() && *newer) continue;
        co_await RefreshMapOnce();
        continue;
      }
      Duration wait = kUnavailableWait;
      if (reply.ok() && code == ReplyCode::kFenced) {
        ++obs_->ops[i].buffered;
        wait = kBufferWait;
      } else if (!reply.ok()) {
        // Timeout or a crashed server: back off (capped exponential with jitter).
        const int64_t cap = std::min<int64_t>(400, int64_t{25} << std::min<uint32_t>(failures, 4));
        ++failures;
        wait = Duration::Millis(cap / 2 + static_cast<int64_t>(env_.random().Uniform(cap / 2 + 1)));
      }
      const Status slept = co_await Sleep(env_.executor(), wait);
      if (!slept.ok()) co_return;
      // A cutover, or a server silent three times running (crashed, cut off, or the tenant moved
      // while the server's answers were lost): ask the directory.
      if (design_ == Design::kHardened &&
          (code == ReplyCode::kFenced || (!reply.ok() && failures % 3 == 0))) {
        co_await RefreshMapOnce();
      }
    }
    obs_->ops[i].failed = true;
    obs_->ops[i].end_ns = now_ns();
  }

  Task<void> RefreshMapOnce() {
    Result<Bytes> reply =
        co_await rpc_.Call(NodeId(kDirectoryNode), kMethodGetMap, {}, Duration::Millis(150));
    if (!reply.ok()) co_return;
    Result<shard::ShardMap> map = shard::ShardMap::Decode(*reply);
    if (!map.ok()) co_return;
    auto shared = std::make_shared<const shard::ShardMap>(std::move(map).value());
    if (router_ == nullptr) {
      router_ = std::make_unique<shard::Router>(std::move(shared));
    } else {
      router_->OnStaleEpoch(std::move(shared));
    }
  }

  Task<void> RefreshMap() {
    while (router_ == nullptr) {
      co_await RefreshMapOnce();
      if (router_ != nullptr) break;
      const Status slept = co_await Sleep(env_.executor(), kUnavailableWait);
      if (!slept.ok()) co_return;
    }
  }

  Task<void> PollConfig() {
    const Duration phase = Duration::Millis(static_cast<int64_t>(env_.random().Uniform(3000)));
    const Status phased = co_await Sleep(env_.executor(), phase);
    if (!phased.ok()) co_return;
    while (true) {
      Result<Bytes> reply =
          co_await rpc_.Call(NodeId(kDirectoryNode), kMethodGetConfig, {}, Duration::Millis(150));
      if (reply.ok()) {
        ByteReader r(*reply);
        uint32_t n = 0;
        if (r.U32(&n).ok() && n >= 1 && n <= kShards) shard_count_ = n;
      }
      const Status slept = co_await Sleep(env_.executor(), kConfigPoll);
      if (!slept.ok()) co_return;
    }
  }

  Env& env_;
  Rpc rpc_;
  Design design_;
  ShardingObservations* obs_;
  const TrueTime* true_time_;
  uint32_t hot_;
  uint64_t writes_ = 0;
  MonoTime start_;
  uint32_t shard_count_ = kInitialShards;
  std::unique_ptr<shard::Router> router_;
};

}  // namespace

std::unique_ptr<Node> MakeClientNode(Env& env, Design design, ShardingObservations* obs,
                                          const TrueTime* true_time, uint32_t hot_tenant) {
  return std::make_unique<Client>(env, design, obs, true_time, hot_tenant);
}

}  // namespace faultline::lab::sharding
