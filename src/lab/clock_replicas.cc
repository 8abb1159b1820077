// The clock-ordering scenario's replicas: last-writer-wins on wall clocks or on HLCs, and the
// hardened design (HLC + dotted version vectors + commit-wait on a synced interval clock); and the
// time service the hardened replicas sync to.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/time/hlc.h"
#include "faultline/time/interval_clock.h"
#include "faultline/time/version_vector.h"
#include "src/lab/clock_ordering.h"

namespace faultline::lab::clock {
namespace {

constexpr Duration kGossipInterval = Duration::Millis(200);
constexpr Duration kSyncInterval = Duration::Millis(500);
constexpr Duration kHlcMaxOffset = Duration::Seconds(1);
constexpr uint16_t kMsgCell = 10;      // LWW: key, id, ts, node
constexpr uint16_t kMsgRegister = 11;  // DVV: key, encoded register
constexpr uint16_t kSchemaV1 = 1;
constexpr uint16_t kMethodTime = 1;

// Node 3: answers "what time is it" with its wall clock, which the scenario keeps exact.
class TimeService final : public Node {
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
  LwwReplica(Env& env, WriteSink* sink, bool use_hlc)
      : env_(env), sink_(sink), use_hlc_(use_hlc), cells_(kKeys) {
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
        sink_->WriteDone(req.client, req.id, false, 0, 0);
        return;
      }
      ts = hlc_->Now().raw();
    } else {
      ts = HlcTimestamp::FromWallTime(env_.clock().WallNow()).raw();
    }
    const Cell cell{true, req.id, ts, env_.self().value()};
    Apply(req.key, cell);
    Broadcast(req.key, cell);
    sink_->WriteDone(req.client, req.id, true, ts, cell.node);
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
      const Status slept = co_await Sleep(env_.executor(), kGossipInterval);
      if (!slept.ok()) co_return;
      for (uint64_t k = 0; k < kKeys; ++k) {
        if (cells_[k].set) Broadcast(k, cells_[k]);
      }
    }
  }

  Env& env_;
  WriteSink* sink_;
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
  DvvReplica(Env& env, WriteSink* sink, Metrics* metrics)
      : env_(env),
        sink_(sink),
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
      sink_->WriteDone(req.client, req.id, false, 0, 0);
      co_return;
    }
    // The commit timestamp: after every cause (HLC) and not before true time (interval latest).
    HlcTimestamp ts = hlc_->Now();
    const HlcTimestamp latest = HlcTimestamp::FromWallTime(now->latest + Duration::Micros(1));
    if (latest > ts) ts = latest;
    if (!hlc_->Observe(ts).ok()) {
      sink_->WriteDone(req.client, req.id, false, 0, 0);
      co_return;
    }
    const VersionVector context = req.has_context ? req.context : VersionVector();
    if (!registers_[req.key].Put(self, context, Format(req.id, ts.raw())).ok()) {
      sink_->WriteDone(req.client, req.id, false, 0, 0);
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
    sink_->WriteDone(req.client, req.id, waited.ok(), ts.raw(), self);
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
      Result<Bytes> reply =
          co_await rpc_.Call(NodeId(kTimeService), kMethodTime, Bytes(), Duration::Millis(100));
      const Duration rtt = env_.clock().Now() - sent;
      int64_t master_ns = 0;
      if (reply.ok() && ByteReader(*reply).I64(&master_ns).ok()) {
        // The reply was stamped somewhere inside the round trip: the midpoint, ± half of it.
        interval_->Sync(WallTime::FromNanos(master_ns) + rtt / 2, rtt / 2 + Duration::Nanos(1))
            .IgnoreError();
      }
      const Status slept = co_await Sleep(env_.executor(), kSyncInterval);
      if (!slept.ok()) co_return;
    }
  }

  Task<void> GossipLoop() {
    while (true) {
      const Status slept = co_await Sleep(env_.executor(), kGossipInterval);
      if (!slept.ok()) co_return;
      for (uint64_t k = 0; k < kKeys; ++k) Broadcast(k);
    }
  }

  Env& env_;
  WriteSink* sink_;
  Metrics* metrics_;
  Rpc rpc_;
  IntervalClock* interval_raw_ = nullptr;
  SyncedClock synced_clock_;
  std::unique_ptr<IntervalClock> interval_;
  std::unique_ptr<Hlc> hlc_;
  std::vector<DvvRegister> registers_;
};

}  // namespace

std::unique_ptr<Replica> MakeLwwReplica(Env& env, WriteSink* sink, bool use_hlc) {
  return std::make_unique<LwwReplica>(env, sink, use_hlc);
}

std::unique_ptr<Replica> MakeDvvReplica(Env& env, WriteSink* sink, Metrics* metrics) {
  return std::make_unique<DvvReplica>(env, sink, metrics);
}

std::unique_ptr<Node> MakeTimeService(Env& env) { return std::make_unique<TimeService>(env); }

}  // namespace faultline::lab::clock
