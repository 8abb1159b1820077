// The `sharding` scenario's directory node (n3): the routing authority, the balancer and the mover.
//
//   naive     the routing is a shard count the clients hash with (jump consistent hash of the
//             tenant). At 12 s the operator adds shard 2: it copies from shards 0 and 1 every
//             record of the tenants that the new count moves (one snapshot each), then publishes
//             the count 3. Nothing stops the sources from taking writes after their snapshot, and
//             each client picks the new count up at its next config poll (every 3 s), so until
//             then it keeps writing to the old shard.
//   hardened  the routing is a shard::ShardMap (64 hash ranges of the tenant id over shards 0 and
//             1, tenant overrides on top) kept in a shard::Directory on this node's LogStore.
//             Every 500 ms the balancer polls each shard's load deciders (shard::LoadSplitDecider,
//             one per range or override). A kHotKey report names a single hot tenant, which no
//             split can spread: the mover isolates it on shard 2 (AddShard + SetOverride). A
//             kSplit report splits the range at the finder's key (a map change only: both halves
//             stay where they are). A hot-key report on a tenant that is isolated already is
//             counted, not acted on: no endless splitting.
//
// The move (hardened): copy the tenant's records from the source (Pull from change seq 0) into
// the target (Ingest: idempotent), catch up from the source's change seq until the delta is small,
// fence the tenant on the source at the new map's epoch (durable; from then on the source refuses
// the tenant's reads and writes, and clients buffer and retry), copy the last delta, verify (a
// digest of the tenant's records on both sides; one full re-copy on mismatch), then switch: one
// compare-and-set of the directory's map, pushed to the shards. When the cutover cannot finish
// within kCutoverBudget after the fence (a participant crashed or is cut off), the move is reversed
// (unfence: the source owns the tenant again, the map never changed) and retried a second later.
//
// The directory stands for a replicated metadata store (etcd under Vitess, PD under TiKV): the
// nemesis partitions it and skews its clock, but never crashes or pauses it.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "faultline/env/rpc.h"
#include "faultline/env/task.h"
#include "faultline/shard/directory.h"
#include "faultline/shard/load_split.h"
#include "faultline/shard/partitioner.h"
#include "faultline/shard/shard_map.h"
#include "faultline/store/log_store.h"
#include "src/lab/sharding.h"

namespace faultline::lab::sharding {
namespace {

constexpr Duration kPollInterval = Duration::Millis(500);
constexpr Duration kCallTimeout = Duration::Millis(150);
constexpr Duration kCallRetry = Duration::Millis(30);
constexpr Duration kStepDeadline = Duration::Seconds(3);
constexpr Duration kCutoverBudget = Duration::Millis(800);
constexpr Duration kMoveRetry = Duration::Seconds(1);
constexpr Duration kPushDeadline = Duration::Seconds(3);
constexpr size_t kCatchUpDone = 20;  // fence once a catch-up round copies this few records
constexpr int kCatchUpRounds = 5;
constexpr uint32_t kSpareShard = kShards - 1;

shard::ShardMap InitialMap() {
  std::vector<shard::ShardId> shards;
  for (uint32_t i = 0; i < kHashRanges; ++i) shards.push_back(shard::ShardId(i % kInitialShards));
  Result<shard::ShardMap> map = shard::ShardMap::EvenHash(shards);
  FL_ASSERT(map.ok());
  return std::move(map).value();
}

struct Pulled {
  uint64_t seq = 0;
  std::vector<StoredWrite> writes;
};

class Directory final : public DirectoryNode {
 public:
  Directory(Env& env, Design design, ShardingObservations* obs, sim::World* world,
            MoveFaults* faults)
      : env_(env), rpc_(env), design_(design), obs_(obs), world_(world), faults_(faults) {
    rpc_.Handle(kMethodGetMap, [this](NodeId, std::span<const uint8_t>) -> Result<Bytes> {
      if (map_ == nullptr) return UnavailableError("no map");
      return map_->Encode();
    });
    rpc_.Handle(kMethodGetConfig, [this](NodeId, std::span<const uint8_t>) -> Result<Bytes> {
      Bytes out;
      ByteWriter(&out).U32(shard_count_);
      return out;
    });
  }

  void Start() override {
    auto store = LogStore::Open(env_.disk(), LogStoreOptions{});
    FL_ASSERT_MSG(store.ok(), store.status().ToString().c_str());
    store_ = std::move(store).value();
    directory_ = std::make_unique<shard::Directory>(*store_);
    if (design_ == Design::kNaive) {
      env_.Spawn(NaiveReshard());
      return;
    }
    Result<shard::ShardMap> map = directory_->Load();
    if (map.status().code() == StatusCode::kNotFound) {
      FL_ASSERT(directory_->Initialize(InitialMap()).ok());
      map = directory_->Load();
    }
    FL_ASSERT_MSG(map.ok(), map.status().ToString().c_str());
    map_ = std::make_shared<const shard::ShardMap>(std::move(map).value());
    env_.Spawn(Balance());
  }

  uint32_t OwnerOf(const std::string& tenant) const override {
    if (design_ == Design::kNaive) {
      return static_cast<uint32_t>(shard::JumpConsistentHash(
          shard::KeyHash(tenant), static_cast<int32_t>(shard_count_)));
    }
    return map_->RouteTenantKey(tenant, tenant).shard.value();
  }

 private:
  int64_t now_ns() const { return world_->now().nanos(); }

  // Calls until a reply or until `deadline` (world time) passes.
  Task<Result<Bytes>> CallUntil(uint32_t to, uint16_t method, Bytes request, int64_t deadline_ns) {
    while (true) {
      Result<Bytes> reply = co_await rpc_.Call(NodeId(to), method, request, kCallTimeout);
      if (reply.ok() || now_ns() >= deadline_ns) co_return reply;
      if (!(co_await Sleep(env_.executor(), kCallRetry)).ok()) co_return CancelledError("stop");
    }
  }

  Task<Result<Pulled>> Pull(uint32_t from, const std::string& tenant, uint64_t after,
                            int64_t deadline_ns) {
    Bytes req;
    ByteWriter w(&req);
    w.Bytes(tenant);
    w.U64(after);
    Result<Bytes> reply = co_await CallUntil(from, kMethodPull, std::move(req), deadline_ns);
    if (!reply.ok()) co_return reply.status();
    ByteReader r(*reply);
    Pulled p;
    Status s = r.U64(&p.seq);
    if (s.ok()) s = GetWrites(r, &p.writes);
    if (!s.ok()) co_return s;
    co_return p;
  }

  Task<Status> Ingest(uint32_t to, const std::vector<StoredWrite>& writes, int64_t deadline_ns) {
    if (writes.empty()) co_return Status::Ok();
    Bytes req;
    ByteWriter w(&req);
    PutWrites(w, writes);
    Result<Bytes> reply = co_await CallUntil(to, kMethodIngest, std::move(req), deadline_ns);
    co_return reply.status();
  }

  // Pull from `after` and ingest; returns the source's change seq and how many records moved.
  Task<Result<std::pair<uint64_t, size_t>>> CopyDelta(const std::string& tenant, uint32_t src,
                                                       uint32_t dst, uint64_t after) {
    Result<Pulled> p = co_await Pull(src, tenant, after, now_ns() + kStepDeadline.nanos());
    if (!p.ok()) co_return p.status();
    const Status s = co_await Ingest(dst, p->writes, now_ns() + kStepDeadline.nanos());
    if (!s.ok()) co_return s;
    co_return std::make_pair(p->seq, p->writes.size());
  }

  Task<Result<std::pair<uint64_t, uint64_t>>> Digest(uint32_t shard, const std::string& tenant,
                                                     int64_t deadline_ns) {
    Bytes req;
    ByteWriter(&req).Bytes(tenant);
    Result<Bytes> reply = co_await CallUntil(shard, kMethodDigest, std::move(req), deadline_ns);
    if (!reply.ok()) co_return reply.status();
    ByteReader r(*reply);
    uint64_t count = 0, digest = 0;
    Status s = r.U64(&count);
    if (s.ok()) s = r.U64(&digest);
    if (!s.ok()) co_return s;
    co_return std::make_pair(count, digest);
  }

  Task<bool> Verified(const std::string& tenant, uint32_t src, uint32_t dst, int64_t deadline_ns) {
    auto a = co_await Digest(src, tenant, deadline_ns);
    auto b = co_await Digest(dst, tenant, deadline_ns);
    co_return a.ok() && b.ok() && *a == *b;
  }

  Bytes FenceRequest(const std::string& tenant, uint64_t epoch) {
    Bytes req;
    ByteWriter w(&req);
    w.Bytes(tenant);
    w.U64(epoch);
    return req;
  }

  // Reverses a cutover: the source takes the tenant back (the map never changed). Retried until
  // the source confirms: until then the tenant stays fenced there, which is safe.
  Task<void> Reverse(const std::string& tenant, uint32_t src, uint64_t epoch, int64_t fence_ns) {
    while (true) {
      Result<Bytes> done = co_await CallUntil(src, kMethodUnfence, FenceRequest(tenant, epoch),
                                              now_ns() + kStepDeadline.nanos());
      if (done.ok()) break;
    }
    obs_->cutovers.push_back(Cutover{fence_ns, now_ns(), false});
  }

  // One attempt at moving `tenant` from `src` to `dst`; true once the map names `dst`.
  Task<bool> MoveOnce(const std::string& tenant, uint32_t src, uint32_t dst) {
    faults_->AtMoveStep(src, dst);
    auto copied = co_await CopyDelta(tenant, src, dst, 0);
    for (int round = 0; copied.ok() && round < kCatchUpRounds; ++round) {
      if (copied->second <= kCatchUpDone) break;
      copied = co_await CopyDelta(tenant, src, dst, copied->first);
    }
    if (!copied.ok()) co_return false;
    faults_->AtMoveStep(src, dst);
    const uint64_t epoch = map_->version() + 1;
    const int64_t fence_ns = now_ns();
    const int64_t budget_end = fence_ns + kCutoverBudget.nanos();
    Result<Bytes> fenced =
        co_await CallUntil(src, kMethodFence, FenceRequest(tenant, epoch), budget_end);
    if (fenced.ok()) {
      faults_->AtMoveStep(src, dst);
      auto last = co_await CopyDelta(tenant, src, dst, copied->first);
      bool same = false;
      if (last.ok()) same = co_await Verified(tenant, src, dst, budget_end);
      if (last.ok() && !same && now_ns() < budget_end) {  // one full re-copy, then verify again
        last = co_await CopyDelta(tenant, src, dst, 0);
        if (last.ok()) same = co_await Verified(tenant, src, dst, budget_end);
      }
      if (same && now_ns() < budget_end && Switch(tenant, src, dst)) {
        obs_->cutovers.push_back(Cutover{fence_ns, now_ns(), true});
        co_return true;
      }
    }
    co_await Reverse(tenant, src, epoch, fence_ns);
    co_return false;
  }

  // The cutover's commit point: one compare-and-set of the directory's map. Local to this node,
  // so it either happened or it did not.
  bool Switch(const std::string& tenant, uint32_t src, uint32_t dst) {
    Result<shard::ShardMap> next =
        directory_->Update([&](const shard::ShardMap& m) -> Result<shard::ShardMap> {
          bool known = false;
          for (shard::ShardId s : m.shards()) known = known || s.value() == dst;
          if (known) return m.SetOverride(tenant, shard::ShardId(dst));
          FL_ASSIGN_OR_RETURN(shard::ShardMap added, m.AddShard(shard::ShardId(dst)));
          return added.SetOverride(tenant, shard::ShardId(dst));
        });
    if (!next.ok()) return false;
    map_ = std::make_shared<const shard::ShardMap>(std::move(next).value());
    obs_->switches.push_back(sharding::Switch{obs_->Next(), now_ns(), tenant, src, dst});
    PushMap();
    return true;
  }

  void PushMap() {
    for (uint32_t s = 0; s < kShards; ++s) env_.Spawn(Push(s, map_->Encode(), map_->version()));
  }

  Task<void> Push(uint32_t shard, Bytes encoded, uint64_t version) {
    const int64_t deadline = now_ns() + kPushDeadline.nanos();
    while (map_->version() == version && now_ns() < deadline) {
      if ((co_await rpc_.Call(NodeId(shard), kMethodInstallMap, encoded, kCallTimeout)).ok()) break;
      if (!(co_await Sleep(env_.executor(), kCallRetry)).ok()) break;
    }
  }

  Task<void> Isolate(std::string tenant, uint32_t src) {
    ++obs_->counters.moves_started;
    while (true) {
      const bool moved = co_await MoveOnce(tenant, src, kSpareShard);
      if (moved) co_return;
      const Status slept = co_await Sleep(env_.executor(), kMoveRetry);
      if (!slept.ok()) co_return;
    }
  }

  // One poll of one shard's deciders: splits ranges it reports (kSplit) and returns a hot tenant
  // to isolate (kHotKey on a tenant without an override), or "".
  Task<std::string> PollShard(uint32_t shard) {
    Result<Bytes> reply = co_await rpc_.Call(NodeId(shard), kMethodStats, {}, kCallTimeout);
    if (!reply.ok()) co_return std::string();
    co_return Decide(shard, *reply);
  }

  std::string Decide(uint32_t shard, const Bytes& stats) {
    using Kind = shard::LoadSplitDecider::Decision::Kind;
    ByteReader r(stats);
    uint64_t n = 0;
    if (!r.Varint(&n).ok() || n > 4 * kHashRanges + kTenants) return "";
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t id = 0, qps = 0;
      uint8_t kind = 0;
      std::string key;
      if (!r.U64(&id).ok() || !r.U64(&qps).ok() || !r.U8(&kind).ok() ||
          !r.Bytes(&key, kNameBytesMax).ok()) {
        return "";
      }
      if (static_cast<Kind>(kind) == Kind::kSplit) SplitRange(id, key);
      if (static_cast<Kind>(kind) != Kind::kHotKey || key.empty()) continue;
      if (map_->overrides().count(key) != 0) {
        ++obs_->counters.hot_key_reports;  // isolated already: reported, not split again
        continue;
      }
      obs_->detections.push_back(Detection{now_ns(), shard, key});
      return key;
    }
    return "";
  }

  void SplitRange(uint64_t id, const std::string& at) {
    const shard::ShardRange* range = map_->FindRange(shard::RangeId(id));
    if (range == nullptr) return;
    Result<shard::ShardMap> next = directory_->Update(
        [&](const shard::ShardMap& m) { return m.Split(shard::RangeId(id), at); });
    if (!next.ok()) return;
    map_ = std::make_shared<const shard::ShardMap>(std::move(next).value());
    ++obs_->counters.splits;
    PushMap();
  }

  Task<void> Balance() {
    while (true) {
      const Status slept = co_await Sleep(env_.executor(), kPollInterval);
      if (!slept.ok()) co_return;
      const std::vector<shard::ShardId> shards = map_->shards();
      std::string hot;
      uint32_t on = 0;
      for (size_t i = 0; i < shards.size() && hot.empty(); ++i) {
        on = shards[i].value();
        hot = co_await PollShard(on);
      }
      if (!hot.empty()) co_await Isolate(hot, on);
    }
  }

  Task<void> NaiveReshard() {
    if (!(co_await Sleep(env_.executor(), kNaiveReshardAt)).ok()) co_return;
    ++obs_->counters.moves_started;
    const int64_t forever = INT64_MAX;
    for (uint32_t src = 0; src < kInitialShards; ++src) {
      faults_->AtMoveStep(src, kSpareShard);
      Bytes req;
      ByteWriter w(&req);
      w.U32(kShards);
      w.U32(kSpareShard);
      Result<Bytes> reply = co_await CallUntil(src, kMethodPullNew, std::move(req), forever);
      if (!reply.ok()) continue;
      std::vector<StoredWrite> writes;
      ByteReader r(*reply);
      if (!GetWrites(r, &writes).ok()) continue;
      (void)co_await Ingest(kSpareShard, writes, forever);
    }
    shard_count_ = kShards;
    for (uint32_t t = 0; t < kTenants; ++t) {
      const std::string tenant = TenantName(t);
      const uint64_t h = shard::KeyHash(tenant);
      const int32_t before = shard::JumpConsistentHash(h, kInitialShards);
      const int32_t after = shard::JumpConsistentHash(h, kShards);
      if (before == after) continue;
      obs_->switches.push_back(sharding::Switch{obs_->Next(), now_ns(), tenant, static_cast<uint32_t>(before),
                                                static_cast<uint32_t>(after)});
    }
  }

  Env& env_;
  Rpc rpc_;
  Design design_;
  ShardingObservations* obs_;
  sim::World* world_;
  MoveFaults* faults_;
  std::unique_ptr<LogStore> store_;
  std::unique_ptr<shard::Directory> directory_;
  std::shared_ptr<const shard::ShardMap> map_;
  uint32_t shard_count_ = kInitialShards;
};

}  // namespace

std::unique_ptr<DirectoryNode> MakeDirectoryNode(Env& env, Design design,
                                                 ShardingObservations* obs, sim::World* world,
                                                 MoveFaults* faults) {
  return std::make_unique<Directory>(env, design, obs, world, faults);
}

}  // namespace faultline::lab::sharding
