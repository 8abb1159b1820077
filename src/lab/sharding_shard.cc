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
#include <algorithm>
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

void PutSelector(ByteWriter& w, const Selector& s) {
  w.Bytes(s.tenant);
  w.Bytes(s.begin);
  w.Bytes(s.end);
  w.Varint(s.excluded.size());
  for (const std::string& t : s.excluded) w.Bytes(t);
}

Status GetSelector(ByteReader& r, Selector* out) {
  uint64_t n = 0;
  FL_RETURN_IF_ERROR(r.Bytes(&out->tenant, kNameBytesMax));
  FL_RETURN_IF_ERROR(r.Bytes(&out->begin, kNameBytesMax));
  FL_RETURN_IF_ERROR(r.Bytes(&out->end, kNameBytesMax));
  FL_RETURN_IF_ERROR(r.Varint(&n));
  if (n > kTenants) return OutOfRangeError("too many excluded tenants");
  out->excluded.resize(n);
  for (std::string& t : out->excluded) FL_RETURN_IF_ERROR(r.Bytes(&t, kNameBytesMax));
  if (out->tenant.empty() && !out->end.empty() && out->end <= out->begin) {
    return InvalidArgumentError("selector: empty range");
  }
  return Status::Ok();
}

std::string RoutingKey(const std::string& tenant) {
  char buf[8];
  return std::string(shard::HashRoutingKey(tenant, buf));
}

bool Selector::Contains(const std::string& t) const {
  if (!tenant.empty()) return t == tenant;
  const std::string k = RoutingKey(t);
  if (k < begin || (!end.empty() && k >= end)) return false;
  return std::find(excluded.begin(), excluded.end(), t) == excluded.end();
}

namespace {

constexpr Duration kMapFetchTimeout = Duration::Millis(200);
constexpr Duration kMapFetchRetry = Duration::Millis(50);
constexpr size_t kIngestBatch = 5000;
constexpr size_t kScanLimit = 100000;  // LogStoreOptions::scan_limit_max
constexpr size_t kReadRecordsMax = 16;  // a read returns the first 16 records of its key

// Per range: a range carries 1/64 of the other tenants' load (~3 ops/s here) plus, on one range,
// the hot tenant (~90 ops/s). A range above 20 ops/s over a 0.25 s window starts a finder (a
// normal range reaches 5 requests in a window with probability 0.15 %, four windows running almost
// never); the finder reports after 1 s (CockroachDB: 1 s windows, 10 s of recording; the
// scenario's times are scaled down like its rates). The deciders live in memory: a restart of the
// hot tenant's shard begins the finder again, so detection takes about 1.5 s of its uptime. A
// pause or a clogged link stalls the range's traffic, which reads as one long low window (windows
// roll on requests): the finder survives two of those in a row (low_windows_tolerated), so a
// shard faulted again and again between restarts still reports in time.
shard::LoadSplitOptions DeciderOptions() {
  shard::LoadSplitOptions o;
  o.record_duration = Duration::Seconds(1);
  o.min_counter = 100;
  o.qps_threshold = 20;
  o.qps_window = Duration::Millis(250);
  o.hot_key_percent = 80;
  o.low_windows_tolerated = 2;
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
  ShardServer(Env& env, Design design, ShardingObservations* obs, const TrueTime* true_time)
      : env_(env), rpc_(env), design_(design), obs_(obs), true_time_(true_time) {
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
      // The change seq continues from the highest one stored.
      FL_ASSIGN_OR_RETURN(std::vector<KeyValue> records, txn.Scan("r/", "r0", kScanLimit));
      for (const KeyValue& kv : records) {
        if (std::optional<StoredWrite> w = ParseRecord(kv)) seq_ = std::max(seq_, w->seq);
      }
      FL_ASSIGN_OR_RETURN(std::vector<KeyValue> fences, txn.Scan("f/", "f0", kScanLimit));
      for (const KeyValue& kv : fences) {
        ByteReader r(std::span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(kv.value.data()), kv.value.size()));
        FenceState f;
        FL_RETURN_IF_ERROR(r.U64(&f.epoch));
        FL_RETURN_IF_ERROR(GetSelector(r, &f.selector));
        fences_[kv.key] = std::move(f);
      }
      return Status::Ok();
    });
    FL_ASSERT_MSG(s.ok(), s.ToString().c_str());
    boot_ = env_.random().Next();
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
  int64_t now_ns() const { return true_time_->NowNs(); }

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
    if (Fenced(tenant, route)) return Code(ReplyCode::kFenced);
    RecordLoad(tenant, route.range);
    return std::nullopt;
  }

  // A fence at epoch e covers the tenant (tenant fence) or the requests routed by a range it
  // contains (range fence) while the route's entry, which names this server, is older than e. An
  // entry that names this server at a later epoch is a later move back here: the fence is spent.
  bool Fenced(const std::string& tenant, const WireRoute& route) const {
    for (const auto& [id, f] : fences_) {
      if (route.epoch > f.epoch) continue;
      if (!f.selector.tenant.empty() ? f.selector.tenant == tenant
                                     : !route.by_override && f.selector.Contains(tenant)) {
        return true;
      }
    }
    return false;
  }

  void RecordLoad(const std::string& tenant, uint64_t id) {
    ++served_[id];
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
      return txn.Put(rk, RecordValue(count + 1, seq));
    });
    FL_RETURN_IF_ERROR(s);
    if (applied) seq_ = seq;
    obs_->served.push_back(
        Served{obs_->Next(), now_ns(), self(), true, applied, route.by_override, tenant, wid});
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
      FL_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, txn.Scan(begin, end, kReadRecordsMax));
      records = kvs.size();
      return Status::Ok();
    });
    FL_RETURN_IF_ERROR(s);
    obs_->served.push_back(
        Served{obs_->Next(), now_ns(), self(), false, false, route.by_override, tenant, 0});
    Bytes out = Code(ReplyCode::kOk);
    ByteWriter(&out).U32(static_cast<uint32_t>(records));
    return out;
  }

  // Records the selector holds (nullptr: every record) whose change seq is above `after`.
  Result<std::vector<StoredWrite>> Scan(const Selector* sel, uint64_t after) {
    std::vector<StoredWrite> out;
    const bool one = sel != nullptr && !sel->tenant.empty();
    const std::string begin = one ? TenantPrefix(sel->tenant) : "r/";
    const std::string end = one ? "r/" + sel->tenant + "0" : "r0";
    const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
      out.clear();
      FL_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, txn.Scan(begin, end, kScanLimit));
      std::string last_tenant;
      bool in = false;
      for (const KeyValue& kv : kvs) {
        std::optional<StoredWrite> w = ParseRecord(kv);
        if (!w || w->seq <= after) continue;
        if (w->tenant != last_tenant) {
          last_tenant = w->tenant;
          in = sel == nullptr || sel->Contains(w->tenant);
        }
        if (in) out.push_back(std::move(*w));
      }
      return Status::Ok();
    });
    FL_RETURN_IF_ERROR(s);
    return out;
  }

  Result<Bytes> Pull(std::span<const uint8_t> request) {
    ByteReader r(request);
    Selector sel;
    uint64_t after = 0;
    FL_RETURN_IF_ERROR(GetSelector(r, &sel));
    FL_RETURN_IF_ERROR(r.U64(&after));
    FL_ASSIGN_OR_RETURN(std::vector<StoredWrite> writes, Scan(&sel, after));
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
    FL_ASSIGN_OR_RETURN(std::vector<StoredWrite> all, Scan(nullptr, 0));
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
        return Status::Ok();
      });
      FL_RETURN_IF_ERROR(s);
      seq_ = seq;
    }
    return Bytes{};
  }

  static std::string FenceKey(const Selector& sel) {
    return sel.tenant.empty() ? "f/g" + sel.begin + "\x01" + sel.end : "f/t" + sel.tenant;
  }

  void RecordFence(const Selector& sel, uint64_t epoch, bool fenced) {
    obs_->fences.push_back(FenceEvent{obs_->Next(), now_ns(), self(), sel.tenant, sel.begin,
                                      sel.end, epoch, fenced});
  }

  Result<Bytes> Fence(std::span<const uint8_t> request) {
    ByteReader r(request);
    FenceState f;
    FL_RETURN_IF_ERROR(GetSelector(r, &f.selector));
    FL_RETURN_IF_ERROR(r.U64(&f.epoch));
    const std::string key = FenceKey(f.selector);
    auto it = fences_.find(key);
    if (it == fences_.end() || it->second.epoch != f.epoch) {
      Bytes value;
      ByteWriter w(&value);
      w.U64(f.epoch);
      PutSelector(w, f.selector);
      FL_RETURN_IF_ERROR(RunInTransaction(*store_, [&](Transaction& txn) -> Status {
        return txn.Put(key, std::string(value.begin(), value.end()));
      }));
      RecordFence(f.selector, f.epoch, true);
      fences_[key] = std::move(f);
    }
    Bytes out;
    ByteWriter(&out).U64(seq_);
    return out;
  }

  Result<Bytes> Unfence(std::span<const uint8_t> request) {
    ByteReader r(request);
    Selector sel;
    uint64_t epoch = 0;
    FL_RETURN_IF_ERROR(GetSelector(r, &sel));
    FL_RETURN_IF_ERROR(r.U64(&epoch));
    const std::string key = FenceKey(sel);
    auto it = fences_.find(key);
    if (it != fences_.end() && it->second.epoch == epoch) {
      FL_RETURN_IF_ERROR(RunInTransaction(*store_, [&](Transaction& txn) -> Status {
        return txn.Delete(key).status();
      }));
      fences_.erase(it);
      RecordFence(sel, epoch, false);
    }
    return Bytes{};
  }

  Result<Bytes> Digest(std::span<const uint8_t> request) {
    ByteReader r(request);
    Selector sel;
    FL_RETURN_IF_ERROR(GetSelector(r, &sel));
    FL_ASSIGN_OR_RETURN(std::vector<StoredWrite> writes, Scan(&sel, 0));
    uint64_t digest = 0;
    for (const StoredWrite& w : writes) {
      digest += shard::KeyHash(w.tenant + "/" + w.key + "/" + std::to_string(w.wid) + "/" +
                               std::to_string(w.count));
    }
    Bytes out;
    ByteWriter w(&out);
    w.U64(writes.size());
    w.U64(digest);
    return out;
  }

  // u64 boot (drawn at start), then per range or override this server measured: u64 id, u64 qps (last window), u64 served (since
  // the start), u8 decision (| kFindingBit while its finder runs: the range is above the
  // threshold), bytes tenant (kHotKey) or routing key (kSplit).
  Result<Bytes> Stats(std::span<const uint8_t>) {
    Bytes out;
    ByteWriter w(&out);
    w.U64(boot_);
    w.Varint(deciders_.size());
    for (const auto& [id, decider] : deciders_) {
      shard::LoadSplitDecider::Decision d = decider->Poll();
      if (d.kind == shard::LoadSplitDecider::Decision::Kind::kHotKey) {
        auto t = tenants_by_routing_key_.find(d.key);
        d.key = t == tenants_by_routing_key_.end() ? "" : t->second;
      }
      w.U64(id);
      w.U64(decider->last_qps());
      w.U64(served_[id]);
      w.U8(static_cast<uint8_t>(d.kind) | (decider->finding() ? kFindingBit : 0));
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
      const Status slept = co_await Sleep(env_.executor(), kMapFetchRetry);
      if (!slept.ok()) break;
    }
    refreshing_ = false;
  }

  Env& env_;
  Rpc rpc_;
  Design design_;
  ShardingObservations* obs_;
  const TrueTime* true_time_;
  std::unique_ptr<LogStore> store_;
  uint64_t seq_ = 0;
  struct FenceState {
    Selector selector;
    uint64_t epoch = 0;
  };
  std::map<std::string, FenceState> fences_;  // by store key
  std::map<uint64_t, uint64_t> served_;       // range or override id -> requests served
  uint64_t boot_ = 0;                         // drawn at each start: the counters restarted
  std::shared_ptr<const shard::ShardMap> map_;
  std::map<uint64_t, std::unique_ptr<shard::LoadSplitDecider>> deciders_;
  std::map<std::string, std::string> tenants_by_routing_key_;
  bool refreshing_ = false;
};

}  // namespace

std::unique_ptr<ShardNode> MakeShardNode(Env& env, Design design, ShardingObservations* obs,
                                         const TrueTime* true_time) {
  return std::make_unique<ShardServer>(env, design, obs, true_time);
}

}  // namespace faultline::lab::sharding
