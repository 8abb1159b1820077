// The `clock-ordering` scenario: a replicated key-value register whose clients write what they
// just read, across nodes, while every node's clock is wrong — initial offsets up to ±250 ms, drift
// up to ±500 ppm, jumps, strobes — and the network partitions, clogs, loses, duplicates and
// reorders. Three replicas (nodes 0-2) and a time service (node 3, true time, out of the nemesis's
// reach); six clients each loop: read a key at one replica, then write (70%: the same key) at
// another, carrying what they read as causal dependencies.
//
//   naive     last-writer-wins on the coordinator's physical wall clock. A write made after
//             reading another, on a node whose clock is behind, gets a smaller timestamp: it
//             loses to its own cause (lost update) and is ordered before it (causality
//             violation).
//   hlc       last-writer-wins on hybrid logical clocks: the coordinator observes the timestamp
//             the client read, so effects always follow causes. Concurrent writes still lose
//             silently, and a write that starts after another finished but never heard of it can
//             get a smaller timestamp (external consistency).
//   hardened  HLC timestamps + dotted version vectors (concurrent writes kept as siblings; a write
//             drops exactly the siblings its read context covers) + commit-wait on an interval
//             clock synced to the time service: a write's timestamp is at least the interval's
//             `latest`, and it is acknowledged only once `earliest` has passed it.
//
// The checker (clock_checker.cc) judges the history alone.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/lab/scenario.h"
#include "faultline/sim/nemesis.h"
#include "faultline/time/hlc.h"
#include "faultline/time/interval_clock.h"
#include "faultline/time/version_vector.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

constexpr uint32_t kReplicas = 3;
constexpr uint32_t kTimeService = 3;
constexpr uint32_t kNodes = 4;
constexpr uint64_t kKeys = 3;
constexpr uint32_t kClients = 6;
constexpr Duration kFaultStart = Duration::Seconds(1);
constexpr Duration kFaultDuration = Duration::Seconds(20);
constexpr Duration kWorkloadEnd = Duration::Millis(21'500);
constexpr Duration kFinalRead = Duration::Seconds(26);
constexpr Duration kOpTimeout = Duration::Seconds(2);
constexpr Duration kGossipInterval = Duration::Millis(200);
constexpr Duration kSyncInterval = Duration::Millis(500);
constexpr Duration kHlcMaxOffset = Duration::Seconds(1);
constexpr uint16_t kMsgCell = 10;      // LWW: key, id, ts, node
constexpr uint16_t kMsgRegister = 11;  // DVV: key, encoded register
constexpr uint16_t kSchemaV1 = 1;
constexpr uint16_t kMethodTime = 1;

enum class Design : uint8_t { kPhysicalLww, kHlcLww, kHardened };

struct ReadReply {
  std::vector<uint64_t> ids;
  uint64_t observed_ts = 0;  // the largest timestamp among the values read (raw HLC layout)
  VersionVector context;
};

struct WriteRequest {
  uint32_t client = 0;
  uint64_t id = 0;
  uint64_t key = 0;
  uint64_t observed_ts = 0;
  bool has_context = false;
  VersionVector context;
};

class Workload;

// Commit-wait accounting of the hardened replicas, summed over the run.
struct Metrics {
  int64_t commit_waits = 0;
  int64_t commit_wait_ns = 0;
  int64_t half_width_ns = 0;  // the interval clock's error bound ε at each commit
};

class Replica : public sim::Node {
 public:
  virtual ReadReply Read(uint64_t key) = 0;
  // Completes through Workload::WriteDone.
  virtual void Write(const WriteRequest& request) = 0;
  virtual std::vector<uint64_t> FinalIds(uint64_t key) = 0;
};

std::string IdsJson(const std::vector<uint64_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(ids[i]);  // appended: "," + std::string&& trips GCC 12's -Wrestrict
  }
  return s + "]";
}

// Six clients doing read-then-write across replicas, recording the history.
class Workload {
 public:
  explicit Workload(sim::World& world) : world_(world), clients_(kClients) {
    for (uint32_t c = 0; c < kClients; ++c) clients_[c].process = c;
  }

  void Start() {
    for (uint32_t c = 0; c < kClients; ++c) Schedule(c, Duration::Millis(c * 7));
  }

  void WriteDone(uint32_t client, uint64_t id, bool ok, uint64_t ts, uint32_t node) {
    Client& c = clients_[client];
    if (c.pending_write != id) return;  // timed out already: the history says info
    world_.Cancel(c.timeout);
    c.pending_write = 0;
    const std::string value = WriteJson(c) + (ok ? ",\"ts\":" + std::to_string(ts) +
                                                       ",\"node\":" + std::to_string(node)
                                                 : std::string()) + "}";
    Record(c.process, ok ? sim::OpType::kOk : sim::OpType::kFail, "write", value);
    if (!ok) {
      Schedule(client, Think());
      return;
    }
    c.last_write = id;
    if (ts > c.token) c.token = ts;
    // Read the key back at the replica that acknowledged the write: the write, or something that
    // saw it, must be there (what a lost update violates).
    const uint64_t key = c.request.key;
    Workload* self = this;
    sim::World* w = &world_;
    world_.env(NodeId(node)).executor().Post([self, w, client, key, node, id] {
      self->ReadBackDone(client, key, id, w->node_as<Replica>(NodeId(node))->Read(key));
    });
  }

  void ReadBackDone(uint32_t client, uint64_t key, uint64_t after, const ReadReply& reply) {
    Client& c = clients_[client];
    const std::string k = "{\"key\":" + std::to_string(key) + ",\"after\":" + std::to_string(after);
    Record(c.process, sim::OpType::kInvoke, "read", k + "}");
    Record(c.process, sim::OpType::kOk, "read", k + ",\"ids\":" + IdsJson(reply.ids) + "}");
    if (reply.observed_ts > c.token) c.token = reply.observed_ts;
    Schedule(client, Think());
  }

  void FinalReads() {
    for (uint32_t n = 0; n < kReplicas; ++n) {
      auto* r = world_.node_as<Replica>(NodeId(n));
      FL_ASSERT(r != nullptr);
      for (uint64_t k = 0; k < kKeys; ++k) {
        const std::string v = "{\"node\":" + std::to_string(n) + ",\"key\":" + std::to_string(k);
        Record(2000 + n, sim::OpType::kInvoke, "final", v + "}");
        Record(2000 + n, sim::OpType::kOk, "final", v + ",\"ids\":" + IdsJson(r->FinalIds(k)) + "}");
      }
    }
  }

 private:
  struct Client {
    int64_t process = 0;
    uint64_t token = 0;  // largest timestamp this client has seen: its causal token
    uint64_t last_write = 0;
    uint64_t pending_write = 0;
    WriteRequest request;
    std::vector<uint64_t> deps;
    sim::EventId timeout;
  };

  Rng& rng() { return world_.rng(sim::Stream::kWorkload); }
  Duration Think() { return rng().Range(Duration::Zero(), Duration::Millis(20)); }
  void Record(int64_t process, sim::OpType type, const char* f, const std::string& value) {
    RecordOp(world_, process, type, f, value);
  }
  std::string WriteJson(const Client& c) const {
    return "{\"id\":" + std::to_string(c.request.id) + ",\"key\":" +
           std::to_string(c.request.key) + ",\"deps\":" + IdsJson(c.deps);
  }
  void Schedule(uint32_t client, Duration after) {
    world_.Schedule(after, [this, client] { ReadThenWrite(client); });
  }

  // A read is local and instantaneous at the replica (its own event, so it waits out a pause);
  // the write follows after a think time, at a different replica.
  void ReadThenWrite(uint32_t client) {
    if (world_.elapsed() >= kWorkloadEnd) return;
    const uint64_t key = rng().Uniform(kKeys);
    const uint32_t at = static_cast<uint32_t>(rng().Uniform(kReplicas));
    Workload* self = this;
    sim::World* w = &world_;
    world_.env(NodeId(at)).executor().Post([self, w, client, key, at] {
      self->ReadDone(client, key, w->node_as<Replica>(NodeId(at))->Read(key));
    });
  }

  void ReadDone(uint32_t client, uint64_t key, ReadReply reply) {
    Client& c = clients_[client];
    Record(c.process, sim::OpType::kInvoke, "read", "{\"key\":" + std::to_string(key) + "}");
    Record(c.process, sim::OpType::kOk, "read",
           "{\"key\":" + std::to_string(key) + ",\"ids\":" + IdsJson(reply.ids) + "}");
    WriteRequest& req = c.request;
    req = WriteRequest{};
    req.client = client;
    req.id = ++next_id_;
    req.key = rng().Chance(Ratio::Percent(70)) ? key : rng().Uniform(kKeys);
    if (reply.observed_ts > c.token) c.token = reply.observed_ts;
    req.observed_ts = c.token;
    req.has_context = req.key == key;
    if (req.has_context) req.context = reply.context;
    c.deps = reply.ids;
    if (c.last_write != 0) c.deps.push_back(c.last_write);
    world_.Schedule(Think(), [this, client] { SendWrite(client); });
  }

  void SendWrite(uint32_t client) {
    Client& c = clients_[client];
    const uint64_t id = c.request.id;
    Record(c.process, sim::OpType::kInvoke, "write", WriteJson(c) + "}");
    c.pending_write = id;
    const uint32_t at = static_cast<uint32_t>(rng().Uniform(kReplicas));
    Workload* self = this;
    sim::World* w = &world_;
    requests_[id] = c.request;  // the event may run late (a paused replica): keep its own copy
    world_.env(NodeId(at)).executor().Post([self, w, id, at] {
      w->node_as<Replica>(NodeId(at))->Write(self->requests_.at(id));
    });
    c.timeout = world_.Schedule(kOpTimeout, [this, client, id] { TimedOut(client, id); });
  }

  void TimedOut(uint32_t client, uint64_t id) {
    Client& c = clients_[client];
    if (c.pending_write != id) return;
    Record(c.process, sim::OpType::kInfo, "write", WriteJson(c) + "}");
    c.pending_write = 0;
    c.process += kClients;  // an indeterminate op ends its process
    Schedule(client, Think());
  }

  sim::World& world_;
  std::vector<Client> clients_;
  std::map<uint64_t, WriteRequest> requests_;
  uint64_t next_id_ = 0;
};

// Node 3: answers "what time is it" with its wall clock, which the scenario keeps exact.
class TimeService final : public sim::Node {
 public:
  explicit TimeService(Env& env) : env_(env), rpc_(env) {}
  void Start() override {
    rpc_.Handle(kMethodTime, [this](NodeId, std::span<const uint8_t>) -> Result<Bytes> {
      Bytes out;
      ByteWriter(&out).I64(env_.clock().WallNow().nanos());
      return out;
    });
  }

 private:
  Env& env_;
  Rpc rpc_;
};

// What naive and hlc share: last-writer-wins cells, replicated on write and by gossip.
class LwwReplica final : public Replica {
 public:
  LwwReplica(Env& env, Workload* workload, bool use_hlc)
      : env_(env), workload_(workload), use_hlc_(use_hlc), cells_(kKeys) {
    if (use_hlc_) {
      HlcOptions options;
      options.max_offset = kHlcMaxOffset;
      hlc_ = std::move(Hlc::Create(env_.clock(), options)).value();
    }
  }

  void Start() override {
    env_.transport().SetHandler([this](NodeId, const FrameView& f) { OnCell(f); });
    env_.Spawn(GossipLoop());
  }

  ReadReply Read(uint64_t key) override {
    ReadReply r;
    const Cell& c = cells_[key];
    if (c.set) r.ids.push_back(c.id);
    r.observed_ts = c.ts;
    return r;
  }

  void Write(const WriteRequest& req) override {
    uint64_t ts = 0;
    if (use_hlc_) {
      // The receive rule for the client's causal token, then a local event.
      if (!hlc_->Observe(HlcTimestamp::FromRaw(req.observed_ts)).ok()) {
        workload_->WriteDone(req.client, req.id, false, 0, 0);
        return;
      }
      ts = hlc_->Now().raw();
    } else {
      ts = HlcTimestamp::FromWallTime(env_.clock().WallNow()).raw();
    }
    const Cell cell{true, req.id, ts, env_.self().value()};
    Apply(req.key, cell);
    Broadcast(req.key, cell);
    workload_->WriteDone(req.client, req.id, true, ts, cell.node);
  }

  std::vector<uint64_t> FinalIds(uint64_t key) override {
    return cells_[key].set ? std::vector<uint64_t>{cells_[key].id} : std::vector<uint64_t>{};
  }

 private:
  struct Cell {
    bool set = false;
    uint64_t id = 0;
    uint64_t ts = 0;
    uint32_t node = 0;
  };

  void Apply(uint64_t key, const Cell& c) {
    Cell& cur = cells_[key];
    if (!cur.set || cur.ts < c.ts || (cur.ts == c.ts && cur.node < c.node)) cur = c;
  }

  void Broadcast(uint64_t key, const Cell& c) {
    Bytes payload;
    ByteWriter w(&payload);
    w.Varint(key);
    w.Varint(c.id);
    w.U64(c.ts);
    w.U32(c.node);
    for (uint32_t peer = 0; peer < kReplicas; ++peer) {
      if (peer != env_.self().value()) {
        env_.transport().Send(NodeId(peer), kMsgCell, kSchemaV1, payload).IgnoreError();
      }
    }
  }

  void OnCell(const FrameView& f) {
    if (f.type != kMsgCell || f.schema_version != kSchemaV1) return;
    ByteReader r(f.payload);
    uint64_t key = 0;
    Cell c;
    c.set = true;
    if (!r.Varint(&key).ok() || !r.Varint(&c.id).ok() || !r.U64(&c.ts).ok() ||
        !r.U32(&c.node).ok() || !r.empty() || key >= kKeys || c.node >= kReplicas) {
      return;
    }
    // A receive event: the HLC learns of the timestamp (a rejected one is still applied: LWW
    // has no way to refuse it once another replica accepted it).
    if (use_hlc_) hlc_->Observe(HlcTimestamp::FromRaw(c.ts)).IgnoreError();
    Apply(key, c);
  }

  Task<void> GossipLoop() {
    while (true) {
      if (!(co_await Sleep(env_.executor(), kGossipInterval)).ok()) co_return;
      for (uint64_t k = 0; k < kKeys; ++k) {
        if (cells_[k].set) Broadcast(k, cells_[k]);
      }
    }
  }

  Env& env_;
  Workload* workload_;
  bool use_hlc_;
  std::unique_ptr<Hlc> hlc_;
  std::vector<Cell> cells_;
};

// The physical clock a hardened replica gives its HLC: the synced interval clock's `latest`
// (falling back to the raw wall clock before the first sync), so HLC timestamps track true time
// within the error bound instead of the fastest skewed wall clock in the cluster, and commit-wait
// stays about 2ε.
class SyncedClock final : public Clock {
 public:
  SyncedClock(Clock& raw, IntervalClock** interval) : raw_(raw), interval_(interval) {}
  MonoTime Now() override { return raw_.Now(); }
  WallTime WallNow() override {
    Result<TimeInterval> now = (*interval_)->Now();
    return now.ok() ? now->latest : raw_.WallNow();
  }

 private:
  Clock& raw_;
  IntervalClock** interval_;
};

// HLC + dotted version vectors + commit-wait on an interval clock synced to the time service.
class DvvReplica final : public Replica {
 public:
  DvvReplica(Env& env, Workload* workload, Metrics* metrics)
      : env_(env),
        workload_(workload),
        metrics_(metrics),
        rpc_(env),
        synced_clock_(env.clock(), &interval_raw_),
        registers_(kKeys) {
    IntervalClockOptions iv;
    iv.error_at_sync = Duration::Micros(100);
    iv.drift_ppm_bound = 1000;  // the nemesis drifts clocks by at most 500 ppm
    interval_ = std::move(IntervalClock::Create(env_.clock(), iv)).value();
    interval_raw_ = interval_.get();
    HlcOptions options;
    options.max_offset = kHlcMaxOffset;
    hlc_ = std::move(Hlc::Create(synced_clock_, options)).value();
  }

  void Start() override {
    rpc_.SetOneWayHandler([this](NodeId, const FrameView& f) { OnRegister(f); });
    env_.Spawn(SyncLoop());
    env_.Spawn(GossipLoop());
  }

  ReadReply Read(uint64_t key) override {
    ReadReply r;
    for (const DvvSibling& s : registers_[key].siblings()) {
      const auto [id, ts] = Parse(s.value);
      r.ids.push_back(id);
      if (ts > r.observed_ts) r.observed_ts = ts;
    }
    r.context = registers_[key].context();
    return r;
  }

  void Write(const WriteRequest& req) override { env_.Spawn(HandleWrite(req)); }

  std::vector<uint64_t> FinalIds(uint64_t key) override {
    std::vector<uint64_t> ids;
    for (const DvvSibling& s : registers_[key].siblings()) ids.push_back(Parse(s.value).first);
    std::sort(ids.begin(), ids.end());
    return ids;
  }

 private:
  static std::string Format(uint64_t id, uint64_t ts) {
    return std::to_string(id) + ":" + std::to_string(ts);
  }
  static std::pair<uint64_t, uint64_t> Parse(const std::string& v) {
    const size_t colon = v.find(':');
    FL_ASSERT(colon != std::string::npos);
    return {std::stoull(v.substr(0, colon)), std::stoull(v.substr(colon + 1))};
  }

  Task<void> HandleWrite(WriteRequest req) {
    const uint32_t self = env_.self().value();
    Result<TimeInterval> now = interval_->Now();
    if (!now.ok() || !hlc_->Observe(HlcTimestamp::FromRaw(req.observed_ts)).ok()) {
      workload_->WriteDone(req.client, req.id, false, 0, 0);
      co_return;
    }
    // The commit timestamp: after every cause (HLC) and not before true time (interval latest).
    HlcTimestamp ts = hlc_->Now();
    const HlcTimestamp latest = HlcTimestamp::FromWallTime(now->latest + Duration::Micros(1));
    if (latest > ts) ts = latest;
    if (!hlc_->Observe(ts).ok()) {
      workload_->WriteDone(req.client, req.id, false, 0, 0);
      co_return;
    }
    const VersionVector context = req.has_context ? req.context : VersionVector();
    if (!registers_[req.key].Put(self, context, Format(req.id, ts.raw())).ok()) {
      workload_->WriteDone(req.client, req.id, false, 0, 0);
      co_return;
    }
    Broadcast(req.key);
    // Commit-wait: acknowledge only once every clock's earliest has passed the timestamp's
    // microsecond, so anything that starts after the ack gets a larger timestamp.
    const MonoTime wait_start = env_.clock().Now();
    const WallTime must_pass =
        WallTime::FromNanos(static_cast<int64_t>(ts.physical_us() + 1) * 1000 - 1);
    Status waited = co_await interval_->CommitWait(env_.executor(), must_pass);
    metrics_->commit_waits += 1;
    metrics_->commit_wait_ns += (env_.clock().Now() - wait_start).nanos();
    metrics_->half_width_ns += now->width().nanos() / 2;
    workload_->WriteDone(req.client, req.id, waited.ok(), ts.raw(), self);
  }

  void Broadcast(uint64_t key) {
    Bytes payload;
    ByteWriter w(&payload);
    w.Varint(key);
    std::vector<uint8_t> reg;
    EncodeDvvRegister(registers_[key], &reg);
    w.Raw(std::span<const uint8_t>(reg));
    for (uint32_t peer = 0; peer < kReplicas; ++peer) {
      if (peer != env_.self().value()) {
        env_.transport().Send(NodeId(peer), kMsgRegister, kSchemaV1, payload).IgnoreError();
      }
    }
  }

  void OnRegister(const FrameView& f) {
    if (f.type != kMsgRegister || f.schema_version != kSchemaV1) return;
    ByteReader r(f.payload);
    uint64_t key = 0;
    if (!r.Varint(&key).ok() || key >= kKeys) return;
    std::span<const uint8_t> rest;
    if (!r.Raw(r.remaining(), &rest).ok()) return;
    DvvRegister remote;
    if (!DecodeDvvRegister(rest, DvvOptions(), &remote).ok()) return;
    registers_[key].Merge(remote).IgnoreError();
  }

  Task<void> SyncLoop() {
    while (true) {
      const MonoTime sent = env_.clock().Now();
      Result<Bytes> reply = co_await rpc_.Call(NodeId(kTimeService), kMethodTime, Bytes(),
                                               Duration::Millis(100));
      const Duration rtt = env_.clock().Now() - sent;
      int64_t master_ns = 0;
      if (reply.ok() && ByteReader(*reply).I64(&master_ns).ok()) {
        // The reply was stamped somewhere inside the round trip: the midpoint, ± half of it.
        interval_->Sync(WallTime::FromNanos(master_ns) + rtt / 2, rtt / 2 + Duration::Nanos(1))
            .IgnoreError();
      }
      if (!(co_await Sleep(env_.executor(), kSyncInterval)).ok()) co_return;
    }
  }

  Task<void> GossipLoop() {
    while (true) {
      if (!(co_await Sleep(env_.executor(), kGossipInterval)).ok()) co_return;
      for (uint64_t k = 0; k < kKeys; ++k) Broadcast(k);
    }
  }

  Env& env_;
  Workload* workload_;
  Metrics* metrics_;
  Rpc rpc_;
  IntervalClock* interval_raw_ = nullptr;
  SyncedClock synced_clock_;
  std::unique_ptr<IntervalClock> interval_;
  std::unique_ptr<Hlc> hlc_;
  std::vector<DvvRegister> registers_;
};

class ClockOrdering final : public Scenario {
 public:
  std::string_view id() const override { return "clock-ordering"; }
  std::string_view description() const override {
    return "replicated register, read-then-write clients, skewed/drifting/jumping clocks: LWW on "
           "wall clocks vs HLC vs HLC + dotted version vectors + commit-wait";
  }
  std::vector<VariantSpec> variants() const override {
    return {
        {"naive", false, 0.9, "last-writer-wins on the coordinator's wall clock"},
        {"hlc", false, 0.5, "last-writer-wins on hybrid logical clocks"},
        {"hardened", true, 0, "HLC + dotted version vectors + commit-wait on an interval clock"},
    };
  }
  std::vector<std::string> key_metrics() const override {
    return {"writes_acked", "causality_violations", "lost_updates", "concurrent_writes_lost",
            "external_consistency_violations", "commit_wait_ms_mean", "error_bound_ms_mean"};
  }

  RunResult Run(const RunContext& ctx) const override {
    FL_ASSERT(ctx.variant != nullptr);
    const std::string& v = ctx.variant->name;
    FL_ASSERT(v == "naive" || v == "hlc" || v == "hardened");
    const Design design = v == "naive" ? Design::kPhysicalLww
                          : v == "hlc" ? Design::kHlcLww
                                       : Design::kHardened;
    sim::WorldOptions options = sim::WorldOptions::Nodes(kNodes);
    options.clocks.offset_max = Duration::Millis(250);
    options.clocks.drift_ppm_max = 500;
    sim::World world(ctx.seed, options);
    ObserveRun(world, ctx);
    // The time service keeps true time: no offset, no drift, out of the nemesis's reach.
    world.clock(NodeId(kTimeService)).SetDrift(0);
    world.clock(NodeId(kTimeService)).ResetWall();

    Workload workload(world);
    Metrics metrics;
    Workload* w = &workload;
    Metrics* m = &metrics;
    for (uint32_t i = 0; i < kReplicas; ++i) {
      world.Boot(NodeId(i), [w, m, design](Env& env) -> std::unique_ptr<sim::Node> {
        if (design == Design::kHardened) return std::make_unique<DvvReplica>(env, w, m);
        return std::make_unique<LwwReplica>(env, w, design == Design::kHlcLww);
      });
    }
    world.Boot(NodeId(kTimeService),
               [](Env& env) -> std::unique_ptr<sim::Node> { return std::make_unique<TimeService>(env); });

    sim::NemesisOptions nemesis;
    nemesis.start = kFaultStart;
    nemesis.duration = kFaultDuration;
    nemesis.crashes = false;  // the registers live in memory; durability is selftest's subject
    nemesis.clock_jump_max = Duration::Millis(300);
    nemesis.drift_ppm_max = 500;
    const std::vector<sim::FaultAction> schedule =
        sim::Nemesis::Draw(nemesis, kReplicas, world.rng(sim::Stream::kNemesis));
    sim::Nemesis::Install(world, schedule, nemesis);
    workload.Start();
    world.RunUntil(sim::SimTime::FromNanos(kFinalRead.nanos()));
    workload.FinalReads();

    RunResult result;
    CheckClockHistory(world.history(), &result);
    const double waits = metrics.commit_waits > 0 ? static_cast<double>(metrics.commit_waits) : 1;
    result.metrics["commit_wait_ms_mean"] = static_cast<double>(metrics.commit_wait_ns) / waits / 1e6;
    result.metrics["error_bound_ms_mean"] = static_cast<double>(metrics.half_width_ns) / waits / 1e6;
    result.metrics["faults"] = static_cast<double>(schedule.size());
    FinishRun(world, ctx, &result);
    return result;
  }
};

}  // namespace

const Scenario* ClockOrderingScenario() {
  static const ClockOrdering scenario;
  return &scenario;
}

}  // namespace faultline::lab
