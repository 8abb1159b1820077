// The `sharding` scenario's shard server (see sharding.h for the topology and the record layout).
//
//   naive     accepts every request it gets: no map, no epochs, no fences; a write increments its
//             record's application count (a retried write that had been applied is applied twice).
//   hardened  checks each request's route against its cached ShardMap (CheckRoute: a stale route
//             gets kEpochNotMatch with the server's map, a route newer than the server's map makes
//             it refresh from the directory); refuses requests for a tenant it has fenced (the
//             fence is durable, in the same LogStore); applies a write at most once (its write id
//             is the record's key); and keeps a LoadSplitDecider per range or tenant override it
//             serves, which the balancer polls.
//
// The mover's side (both designs): Pull (a tenant's records changed after a change seq: the copy
// and the catch-up), PullNew (the naive copy of every tenant that a new shard count moves), Ingest
// (idempotent: a record is set to the source's state, never applied again), Fence/Unfence, Digest.
// Each handler runs as one step on the node's executor, so a fence check and the write it guards
// are atomic.
#include <charconv>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "faultline/env/rpc.h"
#include "faultline/env/task.h"
#include "faultline/shard/load_split.h"
#include "faultline/shard/partitioner.h"
#include "faultline/shard/shard_map.h"
#include "faultline/store/log_store.h"
#include "src/lab/sharding.h"

namespace faultline::lab::sharding {

void PutRoute(ByteWriter& w, const WireRoute& r) {
  w.U32(r.shard);
  w.U64(r.range);
  w.U64(r.epoch);
  w.U8(r.by_override ? 1 : 0);
}

Status GetRoute(ByteReader& r, WireRoute* out) {
  uint8_t by_override = 0;
  FL_RETURN_IF_ERROR(r.U32(&out->shard));
  FL_RETURN_IF_ERROR(r.U64(&out->range));
  FL_RETURN_IF_ERROR(r.U64(&out->epoch));
  FL_RETURN_IF_ERROR(r.U8(&by_override));
  out->by_override = by_override != 0;
  return Status::Ok();
}

void PutWrites(ByteWriter& w, const std::vector<StoredWrite>& writes) {
  w.Varint(writes.size());
  for (const StoredWrite& s : writes) {
    w.Bytes(s.tenant);
    w.Bytes(s.key);
    w.U64(s.wid);
    w.U32(s.count);
    w.U64(s.seq);
  }
}

Status GetWrites(ByteReader& r, std::vector<StoredWrite>* out) {
  uint64_t n = 0;
  FL_RETURN_IF_ERROR(r.Varint(&n));
  if (n > kWritesPerMessageMax) return OutOfRangeError("too many writes in one message");
  out->resize(n);
  for (StoredWrite& s : *out) {
    FL_RETURN_IF_ERROR(r.Bytes(&s.tenant, kNameBytesMax));
    FL_RETURN_IF_ERROR(r.Bytes(&s.key, kNameBytesMax));
    FL_RETURN_IF_ERROR(r.U64(&s.wid));
    FL_RETURN_IF_ERROR(r.U32(&s.count));
    FL_RETURN_IF_ERROR(r.U64(&s.seq));
  }
  return Status::Ok();
}

namespace {

constexpr Duration kMapFetchTimeout = Duration::Millis(200);
constexpr Duration kMapFetchRetry = Duration::Millis(50);
constexpr size_t kIngestBatch = 5000;
constexpr size_t kScanLimit = 100000;  // LogStoreOptions::scan_limit_max

// Per range: a range carries 1/64 of the other tenants' load (~3 ops/s here) plus, on one range,
// the hot tenant (~90 ops/s). A range above 25 ops/s starts a finder; the finder reports after 3 s
// (CockroachDB waits 10 s; the scenario's times are scaled down like its rates).
shard::LoadSplitOptions DeciderOptions() {
  shard::LoadSplitOptions o;
  o.record_duration = Duration::Seconds(3);
  o.min_counter = 100;
  o.qps_threshold = 25;
  o.qps_window = Duration::Seconds(1);
  o.hot_key_percent = 80;
  return o;
}

std::string RecordKey(std::string_view tenant, std::string_view key, uint64_t wid) {
  std::string s = "r/";
  s.append(tenant);
  s += '/';
  s.append(key);
  s += '/';
  s += std::to_string(wid);
  return s;
}

std::string TenantPrefix(std::string_view tenant) {
  std::string s = "r/";
  s.append(tenant);
  s += '/';
  return s;
}

// "r/<tenant>/<key>/<wid>" and "<count>:<seq>" -> StoredWrite.
std::optional<StoredWrite> ParseRecord(const KeyValue& kv) {
  const std::string& k = kv.key;
  const size_t a = k.find('/', 2);
  const size_t b = a == std::string::npos ? a : k.find('/', a + 1);
  const size_t c = kv.value.find(':');
  if (k.rfind("r/", 0) != 0 || b == std::string::npos || c == std::string::npos) return {};
  StoredWrite s;
  s.tenant = k.substr(2, a - 2);
  s.key = k.substr(a + 1, b - a - 1);
  const char* v = kv.value.data();
  if (std::from_chars(k.data() + b + 1, k.data() + k.size(), s.wid).ec != std::errc() ||
      std::from_chars(v, v + c, s.count).ec != std::errc() ||
      std::from_chars(v + c + 1, v + kv.value.size(), s.seq).ec != std::errc()) {
    return {};
  }
  return s;
}

std::string RecordValue(uint32_t count, uint64_t seq) {
  return std::to_string(count) + ":" + std::to_string(seq);
}

Bytes Code(ReplyCode code) { return Bytes{static_cast<uint8_t>(code)}; }

class ShardServer final : public ShardNode {
 public:
  ShardServer(Env& env, Design design, ShardingObservations* obs, sim::World* world)
      : env_(env), rpc_(env), design_(design), obs_(obs), world_(world) {
    Sync(kMethodWrite, &ShardServer::Write);
    Sync(kMethodRead, &ShardServer::Read);
    Sync(kMethodPull, &ShardServer::Pull);
    Sync(kMethodPullNew, &ShardServer::PullNew);
    Sync(kMethodIngest, &ShardServer::Ingest);
    Sync(kMethodFence, &ShardServer::Fence);
    Sync(kMethodUnfence, &ShardServer::Unfence);
    Sync(kMethodDigest, &ShardServer::Digest);
    Sync(kMethodStats, &ShardServer::Stats);
    Sync(kMethodInstallMap, &ShardServer::InstallMap);
  }

  void Start() override {
    auto store = LogStore::Open(env_.disk(), LogStoreOptions{});
    FL_ASSERT_MSG(store.ok(), store.status().ToString().c_str());
    store_ = std::move(store).value();
    const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
      FL_ASSIGN_OR_RETURN(std::optional<std::string> seq, txn.Get("m/seq"));
      if (seq) std::from_chars(seq->data(), seq->data() + seq->size(), seq_);
      FL_ASSIGN_OR_RETURN(std::vector<KeyValue> fences, txn.Scan("f/", "f0", 100000));
      for (const KeyValue& kv : fences) {
        uint64_t epoch = 0;
        std::from_chars(kv.value.data(), kv.value.data() + kv.value.size(), epoch);
        fences_[kv.key.substr(2)] = epoch;
      }
      return Status::Ok();
    });
    FL_ASSERT_MSG(s.ok(), s.ToString().c_str());
    if (design_ == Design::kHardened) RefreshMap();
  }

  std::vector<StoredWrite> Dump() override {
    std::vector<StoredWrite> out;
    (void)RunInTransaction(*store_, [&](Transaction& txn) -> Status {
      out.clear();
      FL_ASSIGN_OR_RETURN(std::vector<KeyValue> all, txn.Scan("r/", "r0", kScanLimit));
      for (const KeyValue& kv : all) {
        if (std::optional<StoredWrite> w = ParseRecord(kv)) out.push_back(std::move(*w));
      }
      return Status::Ok();
    });
    return out;
  }

 private:
  using Handler = Result<Bytes> (ShardServer::*)(std::span<const uint8_t>);
  void Sync(uint16_t method, Handler h) {
    rpc_.Handle(method, [this, h](NodeId, std::span<const uint8_t> r) { return (this->*h)(r); });
  }

  uint32_t self() const { return env_.self().value(); }
  int64_t now_ns() const { return world_->now().nanos(); }

  // Hardened admission: the route must be current here and the tenant not fenced. Returns the
  // reply to send instead of serving, or nullopt to serve.
  std::optional<Bytes> Admit(const std::string& tenant, const WireRoute& route) {
    if (design_ == Design::kNaive) return std::nullopt;
    if (map_ == nullptr) {
      RefreshMap();
      return Code(ReplyCode::kUnavailable);
    }
    const shard::Route r{shard::ShardId(route.shard), shard::RangeId(route.range),
                         Epoch(route.epoch), route.by_override};
    const shard::EpochCheck check = map_->CheckRoute(shard::ShardId(self()), tenant, r);
    if (check.kind == shard::EpochCheck::Kind::kEpochNotMatch) {
      Bytes out = Code(ReplyCode::kEpochNotMatch);
      const std::vector<uint8_t> encoded = map_->Encode();
      out.insert(out.end(), encoded.begin(), encoded.end());
      return out;
    }
    if (check.kind == shard::EpochCheck::Kind::kServerBehind) {
      RefreshMap();
      return Code(ReplyCode::kUnavailable);
    }
    if (fences_.count(tenant) != 0) return Code(ReplyCode::kFenced);
    RecordLoad(tenant, route.range);
    return std::nullopt;
  }

  void RecordLoad(const std::string& tenant, uint64_t id) {
    auto it = deciders_.find(id);
    if (it == deciders_.end()) {
      it = deciders_
               .emplace(id, std::make_unique<shard::LoadSplitDecider>(env_.clock(), env_.random(),
                                                                      DeciderOptions()))
               .first;
    }
    char buf[8];
    const std::string routing(shard::HashRoutingKey(tenant, buf));
    if (tenants_by_routing_key_.size() < 2 * kTenants) tenants_by_routing_key_[routing] = tenant;
    it->second->Record(routing);
  }

  Result<Bytes> Write(std::span<const uint8_t> request) {
    ByteReader r(request);
    std::string tenant, key;
    uint64_t wid = 0;
    WireRoute route;
    FL_RETURN_IF_ERROR(r.Bytes(&tenant, kNameBytesMax));
    FL_RETURN_IF_ERROR(r.Bytes(&key, kNameBytesMax));
    FL_RETURN_IF_ERROR(r.U64(&wid));
    FL_RETURN_IF_ERROR(GetRoute(r, &route));
    if (std::optional<Bytes> refused = Admit(tenant, route)) return std::move(*refused);
    bool applied = false;
    const uint64_t seq = seq_ + 1;
    const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
      const std::string rk = RecordKey(tenant, key, wid);
      FL_ASSIGN_OR_RETURN(std::optional<std::string> old, txn.Get(rk));
      uint32_t count = 0;
      if (old) {
        const std::optional<StoredWrite> w = ParseRecord(KeyValue{rk, *old});
        if (w) count = w->count;
      }
      applied = !old || design_ == Design::kNaive;
      if (!applied) return Status::Ok();
      FL_RETURN_IF_ERROR(txn.Put(rk, RecordValue(count + 1, seq)));
      return txn.Put("m/seq", std::to_string(seq));
    });
    FL_RETURN_IF_ERROR(s);
    if (applied) seq_ = seq;
    obs_->served.push_back(Served{obs_->Next(), now_ns(), self(), true, applied, tenant, wid});
    return Code(ReplyCode::kOk);
  }

  Result<Bytes> Read(std::span<const uint8_t> request) {
    ByteReader r(request);
    std::string tenant, key;
    WireRoute route;
    FL_RETURN_IF_ERROR(r.Bytes(&tenant, kNameBytesMax));
    FL_RETURN_IF_ERROR(r.Bytes(&key, kNameBytesMax));
    FL_RETURN_IF_ERROR(GetRoute(r, &route));
    if (std::optional<Bytes> refused = Admit(tenant, route)) return std::move(*refused);
    size_t records = 0;
    const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
      const std::string begin = TenantPrefix(tenant) + key + "/";
      const std::string end = TenantPrefix(tenant) + key + "0";
      FL_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, txn.Scan(begin, end, 100000));
      records = kvs.size();
      return Status::Ok();
    });
    FL_RETURN_IF_ERROR(s);
    obs_->served.push_back(Served{obs_->Next(), now_ns(), self(), false, false, tenant, 0});
    Bytes out = Code(ReplyCode::kOk);
    ByteWriter(&out).U32(static_cast<uint32_t>(records));
    return out;
  }

  // Records of `tenant` ("" = every tenant) whose change seq is above `after`.
  Result<std::vector<StoredWrite>> Scan(const std::string& tenant, uint64_t after) {
    std::vector<StoredWrite> out;
    const std::string begin = tenant.empty() ? "r/" : TenantPrefix(tenant);
    const std::string end = tenant.empty() ? "r0" : "r/" + tenant + "0";
    const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
      out.clear();
      FL_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, txn.Scan(begin, end, kScanLimit));
      for (const KeyValue& kv : kvs) {
        std::optional<StoredWrite> w = ParseRecord(kv);
        if (w && w->seq > after) out.push_back(std::move(*w));
      }
      return Status::Ok();
    });
    FL_RETURN_IF_ERROR(s);
    return out;
  }

  Result<Bytes> Pull(std::span<const uint8_t> request) {
    ByteReader r(request);
    std::string tenant;
    uint64_t after = 0;
    FL_RETURN_IF_ERROR(r.Bytes(&tenant, kNameBytesMax));
    FL_RETURN_IF_ERROR(r.U64(&after));
    if (tenant.empty()) return InvalidArgumentError("pull: empty tenant");
    FL_ASSIGN_OR_RETURN(std::vector<StoredWrite> writes, Scan(tenant, after));
    Bytes out;
    ByteWriter w(&out);
    w.U64(seq_);
    PutWrites(w, writes);
    return out;
  }

  Result<Bytes> PullNew(std::span<const uint8_t> request) {
    ByteReader r(request);
    uint32_t n = 0, target = 0;
    FL_RETURN_IF_ERROR(r.U32(&n));
    FL_RETURN_IF_ERROR(r.U32(&target));
    if (n == 0 || n > kShards) return InvalidArgumentError("pull-new: bad shard count");
    FL_ASSIGN_OR_RETURN(std::vector<StoredWrite> all, Scan("", 0));
    std::vector<StoredWrite> moving;
    for (StoredWrite& w : all) {
      const int32_t to = shard::JumpConsistentHash(shard::KeyHash(w.tenant),
                                                   static_cast<int32_t>(n));
      if (static_cast<uint32_t>(to) == target) moving.push_back(std::move(w));
    }
    Bytes out;
    ByteWriter w(&out);
    PutWrites(w, moving);
    return out;
  }

  Result<Bytes> Ingest(std::span<const uint8_t> request) {
    ByteReader r(request);
    std::vector<StoredWrite> writes;
    FL_RETURN_IF_ERROR(GetWrites(r, &writes));
    for (size_t begin = 0; begin < writes.size(); begin += kIngestBatch) {
      const size_t end = std::min(writes.size(), begin + kIngestBatch);
      uint64_t seq = seq_;
      const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
        seq = seq_;
        for (size_t i = begin; i < end; ++i) {
          const StoredWrite& w = writes[i];
          FL_RETURN_IF_ERROR(
              txn.Put(RecordKey(w.tenant, w.key, w.wid), RecordValue(w.count, ++seq)));
        }
        return txn.Put("m/seq", std::to_string(seq));
      });
      FL_RETURN_IF_ERROR(s);
      seq_ = seq;
    }
    return Bytes{};
  }

  Result<Bytes> Fence(std::span<const uint8_t> request) {
    ByteReader r(request);
    std::string tenant;
    uint64_t epoch = 0;
    FL_RETURN_IF_ERROR(r.Bytes(&tenant, kNameBytesMax));
    FL_RETURN_IF_ERROR(r.U64(&epoch));
    if (tenant.empty()) return InvalidArgumentError("fence: empty tenant");
    if (fences_.count(tenant) == 0) {
      FL_RETURN_IF_ERROR(RunInTransaction(*store_, [&](Transaction& txn) -> Status {
        return txn.Put("f/" + tenant, std::to_string(epoch));
      }));
      fences_[tenant] = epoch;
      obs_->fences.push_back(FenceEvent{obs_->Next(), now_ns(), self(), tenant, epoch, true});
    }
    Bytes out;
    ByteWriter(&out).U64(seq_);
    return out;
  }

  Result<Bytes> Unfence(std::span<const uint8_t> request) {
    ByteReader r(request);
    std::string tenant;
    uint64_t epoch = 0;
    FL_RETURN_IF_ERROR(r.Bytes(&tenant, kNameBytesMax));
    FL_RETURN_IF_ERROR(r.U64(&epoch));
    auto it = fences_.find(tenant);
    if (it != fences_.end() && it->second == epoch) {
      FL_RETURN_IF_ERROR(RunInTransaction(*store_, [&](Transaction& txn) -> Status {
        return txn.Delete("f/" + tenant).status();
      }));
      fences_.erase(it);
      obs_->fences.push_back(FenceEvent{obs_->Next(), now_ns(), self(), tenant, epoch, false});
    }
    return Bytes{};
  }

  Result<Bytes> Digest(std::span<const uint8_t> request) {
    ByteReader r(request);
    std::string tenant;
    FL_RETURN_IF_ERROR(r.Bytes(&tenant, kNameBytesMax));
    if (tenant.empty()) return InvalidArgumentError("digest: empty tenant");
    FL_ASSIGN_OR_RETURN(std::vector<StoredWrite> writes, Scan(tenant, 0));
    uint64_t digest = 0;
    for (const StoredWrite& w : writes) {
      digest += shard::KeyHash(w.key + "/" + std::to_string(w.wid) + "/" + std::to_string(w.count));
    }
    Bytes out;
    ByteWriter w(&out);
    w.U64(writes.size());
    w.U64(digest);
    return out;
  }

  // Per range or override this server measured: u64 id, u64 qps, u8 decision, bytes tenant
  // (kHotKey) or routing key (kSplit).
  Result<Bytes> Stats(std::span<const uint8_t>) {
    Bytes out;
    ByteWriter w(&out);
    w.Varint(deciders_.size());
    for (const auto& [id, decider] : deciders_) {
      shard::LoadSplitDecider::Decision d = decider->Poll();
      if (d.kind == shard::LoadSplitDecider::Decision::Kind::kHotKey) {
        auto t = tenants_by_routing_key_.find(d.key);
        d.key = t == tenants_by_routing_key_.end() ? "" : t->second;
      }
      w.U64(id);
      w.U64(decider->last_qps());
      w.U8(static_cast<uint8_t>(d.kind));
      w.Bytes(d.key);
    }
    return out;
  }

  Result<Bytes> InstallMap(std::span<const uint8_t> request) {
    FL_ASSIGN_OR_RETURN(shard::ShardMap map, shard::ShardMap::Decode(request));
    Install(std::move(map));
    return Bytes{};
  }

  void Install(shard::ShardMap map) {
    if (map_ != nullptr && map.version() <= map_->version()) return;
    // A range or override whose epoch changed is measured afresh.
    for (auto it = deciders_.begin(); it != deciders_.end();) {
      const shard::ShardRange* now = map.FindRange(shard::RangeId(it->first));
      const shard::ShardRange* before =
          map_ == nullptr ? nullptr : map_->FindRange(shard::RangeId(it->first));
      const bool same = now != nullptr && before != nullptr && now->epoch == before->epoch;
      it = same ? std::next(it) : deciders_.erase(it);
    }
    map_ = std::make_shared<const shard::ShardMap>(std::move(map));
  }

  void RefreshMap() {
    if (refreshing_) return;
    refreshing_ = true;
    env_.Spawn(FetchMap());
  }

  Task<void> FetchMap() {
    while (true) {
      Result<Bytes> reply =
          co_await rpc_.Call(NodeId(kDirectoryNode), kMethodGetMap, {}, kMapFetchTimeout);
      if (reply.ok()) {
        Result<shard::ShardMap> map = shard::ShardMap::Decode(*reply);
        if (map.ok()) {
          Install(std::move(map).value());
          break;
        }
      }
      if (!(co_await Sleep(env_.executor(), kMapFetchRetry)).ok()) break;
    }
    refreshing_ = false;
  }

  Env& env_;
  Rpc rpc_;
  Design design_;
  ShardingObservations* obs_;
  sim::World* world_;
  std::unique_ptr<LogStore> store_;
  uint64_t seq_ = 0;
  std::map<std::string, uint64_t> fences_;
  std::shared_ptr<const shard::ShardMap> map_;
  std::map<uint64_t, std::unique_ptr<shard::LoadSplitDecider>> deciders_;
  std::map<std::string, std::string> tenants_by_routing_key_;
  bool refreshing_ = false;
};

}  // namespace

std::unique_ptr<ShardNode> MakeShardNode(Env& env, Design design, ShardingObservations* obs,
                                         sim::World* world) {
  return std::make_unique<ShardServer>(env, design, obs, world);
}

}  // namespace faultline::lab::sharding
