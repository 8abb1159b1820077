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
//             Every 250 ms the balancer polls each shard's load deciders (shard::LoadSplitDecider,
//             one per range or override). A kHotKey report names a single hot tenant, which no
//             split can spread: the mover isolates it on shard 2 (AddShard + SetOverride). A
//             kSplit report splits the range at the finder's key (a map change only: both halves
//             stay where they are). A hot-key report on a tenant that is isolated already is
//             counted, not acted on: no endless splitting. Once no range is above the deciders'
//             threshold, the balancer evens the shards out: from the requests each range served in
//             the last 15 s it plans range moves, busiest shard to idlest, while max/mean is above
//             1.03 and a move lowers the peak by at least 1 % of the mean. Isolating a 30 % tenant
//             on the added shard leaves 35 % on each of the others; the plan moves a few small
//             ranges onto the isolated tenant's shard until all three carry a third.
//
// The move (hardened; of a tenant, or of a hash range minus the tenants with overrides): copy the
// records from the source (Pull from change seq 0) into the target (Ingest: idempotent), catch up
// from the source's change seq until the delta is small, fence the data on the source at the new
// map's epoch (durable; from then on the source refuses its reads and writes, and clients buffer
// and retry), copy the last delta, verify (a digest of the records on both sides; one full re-copy
// on mismatch), then switch: one compare-and-set of the directory's map, pushed to the shards.
// When the cutover cannot finish within kCutoverBudget (400 ms) after the fence (a participant
// crashed or is cut off), the move is reversed (unfence: the source serves the data again, the map
// never changed) and retried a second later.
//
// The directory stands for a replicated metadata store (etcd under Vitess, PD under TiKV): the
// nemesis partitions it and skews its clock, but never crashes or pauses it.
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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

constexpr Duration kPollInterval = Duration::Millis(250);
constexpr Duration kCallTimeout = Duration::Millis(150);
constexpr Duration kCallRetry = Duration::Millis(30);
constexpr Duration kStepDeadline = Duration::Seconds(3);
constexpr Duration kCutoverBudget = Duration::Millis(400);
constexpr Duration kMoveRetry = Duration::Seconds(1);
constexpr Duration kPushDeadline = Duration::Seconds(3);
constexpr size_t kCatchUpDone = 20;  // fence once a catch-up round copies this few records
constexpr int kCatchUpRounds = 5;
constexpr uint32_t kSpareShard = kShards - 1;
constexpr Duration kBalanceWindow = Duration::Seconds(15);
constexpr int64_t kBalanceSlackPermille = 30;  // rebalance when max/mean > 1.03
constexpr int64_t kGainPermille = 10;          // a move must lower the peak by 1 % of the mean
constexpr int kPlanMovesMax = 8;
constexpr int kRangeMoveAttempts = 3;

shard::ShardMap InitialMap() {
  std::vector<shard::ShardId> shards;
  for (uint32_t i = 0; i < kHashRanges; ++i) shards.push_back(shard::ShardId(i % kInitialShards));
  Result<shard::ShardMap> map = shard::ShardMap::EvenHash(shards);
  FL_ASSERT(map.ok());
  return std::move(map).value();
}

// A move of the records a selector names from shard `src` to shard `dst`, committed by `change`
// (the new map from the current one).
struct Move {
  Selector sel;
  uint32_t src = 0;
  uint32_t dst = 0;
  std::function<Result<shard::ShardMap>(const shard::ShardMap&)> change;
};

struct Pulled {
  uint64_t seq = 0;
  std::vector<StoredWrite> writes;
};

class Directory final : public DirectoryNode {
 public:
  Directory(Env& env, Design design, ShardingObservations* obs, const TrueTime* true_time,
            MoveFaults* faults)
      : env_(env), rpc_(env), design_(design), obs_(obs), true_time_(true_time), faults_(faults) {
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
  int64_t now_ns() const { return true_time_->NowNs(); }

  // Calls until a reply or until `deadline` (world time) passes.
  Task<Result<Bytes>> CallUntil(uint32_t to, uint16_t method, Bytes request, int64_t deadline_ns) {
    while (true) {
      Result<Bytes> reply = co_await rpc_.Call(NodeId(to), method, request, kCallTimeout);
      if (reply.ok() || now_ns() >= deadline_ns) co_return reply;
      const Status slept = co_await Sleep(env_.executor(), kCallRetry);
      if (!slept.ok()) co_return CancelledError("stop");
    }
  }

  Task<Result<Pulled>> Pull(uint32_t from, const Selector& sel, uint64_t after,
                            int64_t deadline_ns) {
    Bytes req;
    ByteWriter w(&req);
    PutSelector(w, sel);
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
  Task<Result<std::pair<uint64_t, size_t>>> CopyDelta(const Move& m, uint64_t after) {
    Result<Pulled> p = co_await Pull(m.src, m.sel, after, now_ns() + kStepDeadline.nanos());
    if (!p.ok()) co_return p.status();
    const Status s = co_await Ingest(m.dst, p->writes, now_ns() + kStepDeadline.nanos());
    if (!s.ok()) co_return s;
    co_return std::make_pair(p->seq, p->writes.size());
  }

  Task<Result<std::pair<uint64_t, uint64_t>>> Digest(uint32_t shard, const Selector& sel,
                                                     int64_t deadline_ns) {
    Bytes req;
    ByteWriter w(&req);
    PutSelector(w, sel);
    Result<Bytes> reply = co_await CallUntil(shard, kMethodDigest, std::move(req), deadline_ns);
    if (!reply.ok()) co_return reply.status();
    ByteReader r(*reply);
    uint64_t count = 0, digest = 0;
    Status s = r.U64(&count);
    if (s.ok()) s = r.U64(&digest);
    if (!s.ok()) co_return s;
    co_return std::make_pair(count, digest);
  }

  Task<bool> Verified(const Move& m, int64_t deadline_ns) {
    auto a = co_await Digest(m.src, m.sel, deadline_ns);
    auto b = co_await Digest(m.dst, m.sel, deadline_ns);
    co_return a.ok() && b.ok() && *a == *b;
  }

  static Bytes FenceRequest(const Selector& sel, uint64_t epoch) {
    Bytes req;
    ByteWriter w(&req);
    PutSelector(w, sel);
    w.U64(epoch);
    return req;
  }

  // Reverses a cutover: the source takes the data back (the map never changed). Retried until
  // the source confirms: until then the data stays fenced there, which is safe.
  Task<void> Reverse(const Move& m, uint64_t epoch, int64_t fence_ns) {
    while (true) {
      Result<Bytes> done = co_await CallUntil(m.src, kMethodUnfence, FenceRequest(m.sel, epoch),
                                              now_ns() + kStepDeadline.nanos());
      if (done.ok()) break;
    }
    obs_->cutovers.push_back(Cutover{fence_ns, now_ns(), false});
  }

  // One attempt at a move; true once the map names the target.
  Task<bool> MoveOnce(const Move& m) {
    faults_->AtMoveStep(m.src, m.dst);
    auto copied = co_await CopyDelta(m, 0);
    for (int round = 0; copied.ok() && round < kCatchUpRounds; ++round) {
      if (copied->second <= kCatchUpDone) break;
      copied = co_await CopyDelta(m, copied->first);
    }
    if (!copied.ok()) co_return false;
    faults_->AtMoveStep(m.src, m.dst);
    const uint64_t epoch = map_->version() + 1;
    const int64_t fence_ns = now_ns();
    const int64_t budget_end = fence_ns + kCutoverBudget.nanos();
    Result<Bytes> fenced =
        co_await CallUntil(m.src, kMethodFence, FenceRequest(m.sel, epoch), budget_end);
    if (fenced.ok()) {
      faults_->AtMoveStep(m.src, m.dst);
      auto last = co_await CopyDelta(m, copied->first);
      bool same = false;
      if (last.ok()) same = co_await Verified(m, budget_end);
      if (last.ok() && !same && now_ns() < budget_end) {  // one full re-copy, then verify again
        last = co_await CopyDelta(m, 0);
        if (last.ok()) same = co_await Verified(m, budget_end);
      }
      if (same && now_ns() < budget_end && Switch(m)) {
        obs_->cutovers.push_back(Cutover{fence_ns, now_ns(), true});
        co_return true;
      }
    }
    co_await Reverse(m, epoch, fence_ns);
    co_return false;
  }

  // The cutover's commit point: one compare-and-set of the directory's map. Local to this node,
  // so it either happened or it did not. Records, for the checker, every tenant whose owner the
  // change moved.
  bool Switch(const Move& m) {
    Result<shard::ShardMap> next = directory_->Update(m.change);
    if (!next.ok()) return false;
    auto before = map_;
    map_ = std::make_shared<const shard::ShardMap>(std::move(next).value());
    std::vector<sharding::Switch> moved;
    for (uint32_t t = 0; t < kTenants; ++t) {
      const std::string tenant = TenantName(t);
      const uint32_t from = before->RouteTenantKey(tenant, tenant).shard.value();
      const uint32_t to = map_->RouteTenantKey(tenant, tenant).shard.value();
      if (from != to) moved.push_back(sharding::Switch{obs_->Next(), now_ns(), tenant, from, to});
    }
    for (sharding::Switch& sw : moved) {
      sw.group = static_cast<uint32_t>(moved.size());
      obs_->switches.push_back(std::move(sw));
    }
    history_.clear();  // the loads moved: measure afresh
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
      const Status slept = co_await Sleep(env_.executor(), kCallRetry);
      if (!slept.ok()) break;
    }
  }

  // Runs a move until it switches, at most `attempts` times, a second apart.
  Task<bool> RunMove(Move m, int attempts) {
    ++obs_->counters.moves_started;
    for (int i = 0; i < attempts; ++i) {
      const bool moved = co_await MoveOnce(m);
      if (moved) co_return true;
      const Status slept = co_await Sleep(env_.executor(), kMoveRetry);
      if (!slept.ok()) co_return false;
    }
    co_return false;
  }

  // The hot tenant to a shard of its own placement: an override on the spare shard.
  Move IsolateMove(const std::string& tenant, uint32_t src) const {
    Move m;
    m.sel.tenant = tenant;
    m.src = src;
    m.dst = kSpareShard;
    m.change = [tenant](const shard::ShardMap& map) -> Result<shard::ShardMap> {
      bool known = false;
      for (shard::ShardId s : map.shards()) known = known || s.value() == kSpareShard;
      if (known) return map.SetOverride(tenant, shard::ShardId(kSpareShard));
      FL_ASSIGN_OR_RETURN(shard::ShardMap added, map.AddShard(shard::ShardId(kSpareShard)));
      return added.SetOverride(tenant, shard::ShardId(kSpareShard));
    };
    return m;
  }

  Move RangeMove(const shard::ShardRange& range, uint32_t dst) const {
    Move m;
    m.sel.begin = range.begin;
    m.sel.end = range.end;
    for (const auto& [tenant, o] : map_->overrides()) m.sel.excluded.push_back(tenant);
    m.src = range.shard.value();
    m.dst = dst;
    const shard::ShardRange expected = range;
    m.change = [expected, dst](const shard::ShardMap& map) -> Result<shard::ShardMap> {
      const shard::ShardRange* now = map.FindRange(expected.id);
      if (now == nullptr || !(*now == expected)) return FailedPreconditionError("range changed");
      return map.Move(expected.id, shard::ShardId(dst));
    };
    return m;
  }

  // One poll of one shard's deciders: adds each range's or override's served count to `served`,
  // splits the ranges it reports (kSplit) and returns a hot tenant to isolate (kHotKey on a
  // tenant without an override), or "".
  Task<std::string> PollShard(uint32_t shard, std::map<uint64_t, uint64_t>* served) {
    Result<Bytes> reply = co_await rpc_.Call(NodeId(shard), kMethodStats, {}, kCallTimeout);
    if (!reply.ok()) co_return std::string("\x01");  // unreachable: no complete snapshot
    co_return Decide(shard, *reply, served);
  }

  std::string Decide(uint32_t shard, const Bytes& stats, std::map<uint64_t, uint64_t>* served) {
    using Kind = shard::LoadSplitDecider::Decision::Kind;
    ByteReader r(stats);
    uint64_t n = 0, boot = 0;
    if (!r.U64(&boot).ok() || !r.Varint(&n).ok() || n > 4 * kHashRanges + kTenants) {
      return "\x01";
    }
    if (boots_[shard] != boot) history_.clear();  // restarted: its counters began again
    boots_[shard] = boot;
    std::string hot;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t id = 0, qps = 0, count = 0;
      uint8_t kind = 0;
      std::string key;
      if (!r.U64(&id).ok() || !r.U64(&qps).ok() || !r.U64(&count).ok() || !r.U8(&kind).ok() ||
          !r.Bytes(&key, kNameBytesMax).ok()) {
        return "\x01";
      }
      const std::optional<Placement> at = PlacementOf(id);
      if (at && at->shard == shard) (*served)[id] += count;
      if (at && at->range && (kind & kFindingBit) != 0) hot_range_ = true;
      kind &= static_cast<uint8_t>(~kFindingBit);
      if (static_cast<Kind>(kind) == Kind::kSplit) SplitRange(id, key);
      if (static_cast<Kind>(kind) != Kind::kHotKey || key.empty() || !hot.empty()) continue;
      if (map_->overrides().count(key) != 0) {
        ++obs_->counters.hot_key_reports;  // isolated already: reported, not split again
        continue;
      }
      obs_->detections.push_back(Detection{now_ns(), shard, key});
      hot = key;
    }
    return hot;
  }

  void SplitRange(uint64_t id, const std::string& at) {
    const shard::ShardRange* range = map_->FindRange(shard::RangeId(id));
    if (range == nullptr) return;
    Result<shard::ShardMap> next = directory_->Update(
        [&](const shard::ShardMap& m) { return m.Split(shard::RangeId(id), at); });
    if (!next.ok()) return;
    map_ = std::make_shared<const shard::ShardMap>(std::move(next).value());
    ++obs_->counters.splits;
    history_.clear();
    PushMap();
  }

  // Range moves that even out the shards' loads, from the served counts of the last
  // kBalanceWindow: repeatedly the range of the busiest shard whose move to the idlest shard
  // lowers the larger of the two the most. Empty while max/mean is within kBalanceSlackPermille.
  std::vector<Move> Plan() const {
    const auto& [t0, first] = history_.front();
    const auto& [t1, last] = history_.back();
    std::map<uint32_t, int64_t> load;
    for (shard::ShardId s : map_->shards()) load[s.value()] = 0;
    std::map<uint64_t, int64_t> rate;  // range id -> requests in the window
    for (const auto& [id, count] : last) {
      const std::optional<Placement> at = PlacementOf(id);
      if (!at) continue;
      const auto before = first.find(id);  // absent: not served yet when the window began
      const int64_t n = static_cast<int64_t>(count - (before == first.end() ? 0 : before->second));
      load[at->shard] += n;
      if (at->range) rate[id] = n;  // ranges move; an override stays where it was isolated
    }
    int64_t total = 0;
    for (const auto& [s, n] : load) total += n;
    const auto shards = static_cast<int64_t>(load.size());
    std::vector<Move> plan;
    for (int step = 0; step < kPlanMovesMax && total > 0; ++step) {
      auto [a, la] = *std::max_element(load.begin(), load.end(), ByLoad);
      auto [b, lb] = *std::min_element(load.begin(), load.end(), ByLoad);
      if (la * shards * 1000 <= (1000 + kBalanceSlackPermille) * total) break;
      uint64_t best = 0;
      int64_t best_peak = la;
      for (const auto& [id, n] : rate) {
        if (map_->FindRange(shard::RangeId(id))->shard.value() != a) continue;
        const int64_t peak = std::max(la - n, lb + n);
        if (peak < best_peak) std::tie(best, best_peak) = std::tie(id, peak);
      }
      if (best == 0 || (la - best_peak) * shards * 1000 < kGainPermille * total) break;
      plan.push_back(RangeMove(*map_->FindRange(shard::RangeId(best)), b));
      load[a] -= rate[best];
      load[b] += rate[best];
      rate.erase(best);
    }
    (void)t0;
    (void)t1;
    return plan;
  }

  struct Placement {
    uint32_t shard = 0;
    bool range = false;
  };
  // Where the map places a range or an override id; nullopt for an id it no longer has.
  std::optional<Placement> PlacementOf(uint64_t id) const {
    if (const shard::ShardRange* r = map_->FindRange(shard::RangeId(id))) {
      return Placement{r->shard.value(), true};
    }
    for (const auto& [tenant, o] : map_->overrides()) {
      if (o.id.value() == id) return Placement{o.shard.value(), false};
    }
    return std::nullopt;
  }

  static bool ByLoad(const std::pair<const uint32_t, int64_t>& x,
                     const std::pair<const uint32_t, int64_t>& y) {
    return x.second < y.second;
  }

  Task<void> Balance() {
    while (true) {
      const Status slept = co_await Sleep(env_.executor(), kPollInterval);
      if (!slept.ok()) co_return;
      const std::vector<shard::ShardId> shards = map_->shards();
      const uint64_t version = map_->version();
      std::map<uint64_t, uint64_t> served;
      hot_range_ = false;
      std::string hot;
      uint32_t on = 0;
      bool complete = true;
      for (size_t i = 0; i < shards.size() && hot.empty(); ++i) {
        on = shards[i].value();
        hot = co_await PollShard(on, &served);
        if (hot == "\x01") complete = false, hot.clear();
      }
      if (!hot.empty()) {
        (void)co_await RunMove(IsolateMove(hot, on), INT32_MAX);
        continue;
      }
      // Hot spots first (PD schedules hot regions apart from balance): no balancing while a range
      // is above the deciders' threshold and its finder has not spoken yet.
      if (!complete || map_->version() != version || hot_range_) continue;
      history_.emplace_back(now_ns(), std::move(served));
      // Keep the newest snapshot at least kBalanceWindow old, and nothing older.
      while (history_.size() > 1 &&
             history_.back().first - history_[1].first >= kBalanceWindow.nanos()) {
        history_.pop_front();
      }
      if (history_.back().first - history_.front().first < kBalanceWindow.nanos()) continue;
      for (Move& m : Plan()) {
        if (co_await RunMove(std::move(m), kRangeMoveAttempts)) ++obs_->counters.range_moves;
      }
    }
  }

  Task<void> NaiveReshard() {
    const Status slept = co_await Sleep(env_.executor(), kNaiveReshardAt);
    if (!slept.ok()) co_return;
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
    std::vector<sharding::Switch> moved;
    for (uint32_t t = 0; t < kTenants; ++t) {
      const std::string tenant = TenantName(t);
      const uint64_t h = shard::KeyHash(tenant);
      const int32_t before = shard::JumpConsistentHash(h, kInitialShards);
      const int32_t after = shard::JumpConsistentHash(h, kShards);
      if (before == after) continue;
      moved.push_back(sharding::Switch{obs_->Next(), now_ns(), tenant,
                                       static_cast<uint32_t>(before), static_cast<uint32_t>(after)});
    }
    for (sharding::Switch& sw : moved) {
      sw.group = static_cast<uint32_t>(moved.size());
      obs_->switches.push_back(std::move(sw));
    }
  }

  Env& env_;
  Rpc rpc_;
  Design design_;
  ShardingObservations* obs_;
  const TrueTime* true_time_;
  MoveFaults* faults_;
  std::unique_ptr<LogStore> store_;
  std::unique_ptr<shard::Directory> directory_;
  std::shared_ptr<const shard::ShardMap> map_;
  // Served counts per range or override id, one snapshot per poll over the last kBalanceWindow;
  // cleared whenever the map changes.
  std::deque<std::pair<int64_t, std::map<uint64_t, uint64_t>>> history_;
  bool hot_range_ = false;
  std::map<uint32_t, uint64_t> boots_;  // each shard's boot id at the last poll  // the last poll saw a range above the deciders' threshold
  uint32_t shard_count_ = kInitialShards;
};

}  // namespace

std::unique_ptr<DirectoryNode> MakeDirectoryNode(Env& env, Design design,
                                                 ShardingObservations* obs, const TrueTime* true_time,
                                                 MoveFaults* faults) {
  return std::make_unique<Directory>(env, design, obs, true_time, faults);
}

}  // namespace faultline::lab::sharding
