// The `split-brain` scenario: five nodes elect a leader, and the leader serves a key-value
// service whose data lives in a shared store (node 5: the database, the S3 bucket, the disk array
// of Kleppmann's story). Clients send reads and writes to whichever node they believe leads. The
// leader answers reads from its cache and writes through to the store.
//
//   naive      heartbeat-timeout self-election: a follower that has not heard a leader for an
//              election timeout promotes itself; a leader steps down only when it hears a higher
//              term. The store accepts every write. A partitioned, paused or deaf leader goes on
//              serving: two leaders, stale writes, stale reads.
//   lease-only majority leases (PaxosLease over the five nodes) with self-fencing on the holder's
//              monotonic clock, but a store that does not check tokens: a write delayed in the
//              network past its sender's lease still lands (Kleppmann's argument).
//   hardened   majority leases + self-fencing + a store that checks fencing tokens: a new leader
//              raises the store's token before it reads, and every older holder's write is refused.
//
// The nemesis (per seed) combines the generic schedule over nodes 0-4 (partitions of every shape,
// including bridge and flapping links faster than the election timeout; clock drift within the
// bound; jumps; loss, duplication, reordering; pauses; crashes) with faults aimed at whoever leads
// at the time: the leader hears nobody but can still send (asymmetric), the leader paused longer
// than the lease TTL (the GC-pause story), the leader isolated, and a write of the leader held in
// the network while it is deposed and released afterwards (the delayed message with an old token).
// At the end of the fault phase everything heals; four seconds later the leader is crashed, to
// measure failover.
//
// The checker (split_brain_checker.cc) judges the history alone: writes the store accepted with a
// token below one it had already seen; instants at which two nodes could act as leader (sampled
// every millisecond of true time); linearizability of the clients' operations; recovery after the
// heal and the failover time.
#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/lab/scenario.h"
#include "faultline/lease/fence.h"
#include "faultline/lease/leader_elector.h"
#include "faultline/lease/paxos_lease.h"
#include "faultline/lease/phi_accrual.h"
#include "faultline/sim/nemesis.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

constexpr uint32_t kClusterNodes = 5;
constexpr uint32_t kStoreNode = 5;
constexpr uint32_t kNodes = 6;
constexpr uint32_t kKeys = 3;
constexpr uint32_t kClients = 5;

constexpr Duration kTtl = Duration::Seconds(2);
constexpr Duration kRetryMin = Duration::Millis(250);  // candidates retry in [T, 2T)
constexpr Duration kHeartbeat = Duration::Millis(100);
constexpr Duration kNaiveTimeoutMin = Duration::Millis(500);  // naive election timeout [T, 2T)
constexpr Duration kStoreTimeout = Duration::Millis(500);
constexpr Duration kClientTimeout = Duration::Seconds(1);
constexpr Duration kFaultStart = Duration::Seconds(1);
constexpr Duration kFaultDuration = Duration::Seconds(20);
constexpr Duration kFailoverAfterHeal = Duration::Seconds(4);
constexpr Duration kRestartAfterFailover = Duration::Seconds(6);
constexpr Duration kRunEnd = Duration::Seconds(34);
constexpr Duration kLivenessBound = Duration::Seconds(10);
// An upper bound on one round trip here: 2 × (0.5 ms + an exponential tail of mean 0.5 ms).
constexpr Duration kRttBound = Duration::Millis(10);

constexpr uint16_t kMsgNaiveHeartbeat = 20;
constexpr uint16_t kMsgLeaderHeartbeat = 21;
constexpr uint16_t kSchemaV1 = 1;
constexpr uint16_t kMethodStoreWrite = 1;
constexpr uint16_t kMethodStoreLoad = 2;

constexpr int64_t kStoreProcess = 1000;
constexpr int64_t kProbeProcess = 2000;
constexpr int64_t kNemesisProcess = 3000;

enum class Design : uint8_t { kNaive, kLeaseOnly, kHardened };

uint64_t MakeToken(uint64_t round, uint32_t node) { return (round << 16) | node; }

// ---- the shared store (node 5) ----

struct Cell {
  uint64_t value = 0;
  uint64_t seq = 0;  // the store's order of accepted writes
};

// The store: one register per key, a duplicate filter (the network duplicates requests) and, when
// `fenced`, a FencedKv that refuses tokens below the highest it has seen.
class StoreNode : public sim::Node {
 public:
  StoreNode(Env& env, sim::World* world, bool fenced) : rpc_(env), world_(world), fenced_(fenced) {
    rpc_.Handle(kMethodStoreWrite, [this](NodeId from, std::span<const uint8_t> req) {
      return Write(from, req);
    });
    rpc_.Handle(kMethodStoreLoad, [this](NodeId from, std::span<const uint8_t> req) {
      return Load(from, req);
    });
  }

 private:
  Result<Bytes> Write(NodeId from, std::span<const uint8_t> request) {
    ByteReader r(request);
    uint64_t token = 0, write_id = 0, value = 0;
    uint32_t key = 0;
    if (!r.U64(&token).ok() || !r.U64(&write_id).ok() || !r.U32(&key).ok() ||
        !r.U64(&value).ok() || !r.empty() || key >= kKeys) {
      return InvalidArgumentError("malformed store write");
    }
    auto seen = applied_.find(write_id);
    if (seen != applied_.end()) return Reply(seen->second);  // a duplicate: same answer
    const std::string json = "{\"token\":" + std::to_string(token) + ",\"node\":" +
                             std::to_string(from.value()) + ",\"key\":" + std::to_string(key) +
                             ",\"value\":" + std::to_string(value);
    if (fenced_) {
      const Status admitted = kv_.Put(FencingToken(token), std::to_string(key), std::to_string(value));
      if (!admitted.ok()) {
        RecordOp(*world_, kStoreProcess, sim::OpType::kFail, "store-write", json + "}");
        return admitted;
      }
    }
    Cell& cell = cells_[key];
    cell.value = value;
    cell.seq = ++seq_;
    applied_[write_id] = cell.seq;
    RecordOp(*world_, kStoreProcess, sim::OpType::kOk, "store-write",
             json + ",\"seq\":" + std::to_string(cell.seq) + "}");
    return Reply(cell.seq);
  }

  // A new leader's read of everything. Fenced: raises the token first, so that every older
  // holder's write is refused from now on.
  Result<Bytes> Load(NodeId from, std::span<const uint8_t> request) {
    ByteReader r(request);
    uint64_t token = 0;
    if (!r.U64(&token).ok() || !r.empty()) return InvalidArgumentError("malformed store load");
    const std::string json = "{\"token\":" + std::to_string(token) + ",\"node\":" +
                             std::to_string(from.value()) + "}";
    if (fenced_) {
      auto raised = kv_.RaiseAndRead(FencingToken(token));
      if (!raised.ok()) {
        RecordOp(*world_, kStoreProcess, sim::OpType::kFail, "store-load", json);
        return raised.status();
      }
    }
    RecordOp(*world_, kStoreProcess, sim::OpType::kOk, "store-load", json);
    Bytes out;
    ByteWriter w(&out);
    w.U32(static_cast<uint32_t>(cells_.size()));
    for (const auto& [key, cell] : cells_) {
      w.U32(key);
      w.U64(cell.value);
      w.U64(cell.seq);
    }
    return out;
  }

  static Result<Bytes> Reply(uint64_t seq) {
    Bytes out;
    ByteWriter w(&out);
    w.U64(seq);
    return out;
  }

  Rpc rpc_;
  sim::World* world_;
  bool fenced_;
  lease::FencedKv kv_;
  std::map<uint32_t, Cell> cells_;
  std::map<uint64_t, uint64_t> applied_;  // write id -> seq
  uint64_t seq_ = 0;
};

// ---- cluster nodes ----

struct ClientRequest {
  bool write = false;
  uint32_t key = 0;
  uint64_t value = 0;
};

enum class Outcome : uint8_t { kOk, kFail, kInfo };

struct ClientReply {
  Outcome outcome = Outcome::kFail;
  std::optional<uint64_t> value;  // a read's result (nullopt: never written)
};

using ClientCallback = std::function<void(const ClientReply&)>;

class ClusterNode : public sim::Node {
 public:
  // Runs on this node's executor; `done` is called at most once (never if the node crashes).
  virtual void ClientOp(const ClientRequest& request, ClientCallback done) = 0;
  // True iff this node would serve a client now: believes it leads (naive) or holds a valid lease
  // and has loaded the store (lease designs). Read by the world-level probe.
  virtual bool ActingLeader() const = 0;
};

// What a leader keeps: a cache of the store, filled by a load and by its own acknowledged writes.
// Writes may be acknowledged out of order (the network reorders), so a cell is replaced only by a
// newer store sequence number.
class LeaderCache {
 public:
  LeaderCache(Env& env, Rpc& rpc, uint32_t incarnation)
      : env_(env), rpc_(rpc), incarnation_(incarnation) {}

  void Reset() {
    ++generation_;
    token_ = 0;
    loaded_ = false;
    loading_ = false;
    fenced_out_ = false;
    cells_.clear();
  }
  bool ready() const { return loaded_ && !fenced_out_; }

  // Called on every tick of a node that may lead with `token`: (re)starts the load of the store
  // until one succeeds. A load that timed out is retried; one refused by the fence is not (a newer
  // holder exists).
  void EnsureLoaded(Env& env, uint64_t token) {
    if (token != token_) Reset();
    if (loaded_ || loading_ || fenced_out_) return;
    token_ = token;
    env.Spawn(Load(token));
  }

 private:
  // Loads the store as the holder of `token`; sets ready() unless a newer holder has fenced it.
  Task<void> Load(uint64_t token) {
    const uint64_t generation = ++generation_;
    loading_ = true;
    loaded_ = false;
    cells_.clear();
    Bytes out;
    ByteWriter w(&out);
    w.U64(token);
    const Bytes request = out;
    Result<Bytes> reply =
        co_await rpc_.Call(NodeId(kStoreNode), kMethodStoreLoad, request, kStoreTimeout);
    if (generation != generation_) co_return;
    loading_ = false;
    if (!reply.ok()) {
      if (reply.status().code() == StatusCode::kFencedOut) fenced_out_ = true;
      co_return;
    }
    ByteReader r(*reply);
    uint32_t n = 0;
    if (!r.U32(&n).ok()) co_return;
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t key = 0;
      Cell cell;
      if (!r.U32(&key).ok() || !r.U64(&cell.value).ok() || !r.U64(&cell.seq).ok()) co_return;
      cells_[key] = cell;
    }
    loaded_ = true;
  }

 public:
  // A client's request at this node: refused unless `acting`; reads from the cache; writes
  // through to the store with `token`.
  void Serve(Env& env, bool acting, uint64_t token, const ClientRequest& request,
             ClientCallback done) {
    if (!acting) {
      done(ClientReply{});
    } else if (!request.write) {
      done(Read(request.key));
    } else {
      env.Spawn(Write(token, request, std::move(done)));
    }
  }

  ClientReply Read(uint32_t key) const {
    ClientReply reply;
    reply.outcome = Outcome::kOk;
    auto it = cells_.find(key);
    if (it != cells_.end()) reply.value = it->second.value;
    return reply;
  }

  // Writes through to the store with `token`; the reply says whether it took effect.
  Task<void> Write(uint64_t token, ClientRequest request, ClientCallback done) {
    const uint64_t generation = generation_;
    Bytes out;
    ByteWriter w(&out);
    w.U64(token);
    w.U64((uint64_t{env_.self().value()} << 56) | (uint64_t{incarnation_} << 40) | ++writes_);
    w.U32(request.key);
    w.U64(request.value);
    const Bytes body = out;
    Result<Bytes> reply =
        co_await rpc_.Call(NodeId(kStoreNode), kMethodStoreWrite, body, kStoreTimeout);
    ClientReply outcome;
    if (reply.ok()) {
      ByteReader r(*reply);
      uint64_t seq = 0;
      if (r.U64(&seq).ok() && generation == generation_) {
        Cell& cell = cells_[request.key];
        if (seq > cell.seq) cell = Cell{request.value, seq};
      }
      outcome.outcome = Outcome::kOk;
    } else if (reply.status().code() == StatusCode::kFencedOut) {
      // Refused atomically by the store: it certainly did not happen, and a newer holder exists.
      if (generation == generation_) fenced_out_ = true;
      outcome.outcome = Outcome::kFail;
    } else {
      outcome.outcome = Outcome::kInfo;  // lost request or lost reply: unknown
    }
    done(outcome);
  }

 private:
  Env& env_;
  Rpc& rpc_;
  uint32_t incarnation_;
  uint64_t generation_ = 0;
  uint64_t token_ = 0;
  uint64_t writes_ = 0;
  bool loaded_ = false;
  bool loading_ = false;
  bool fenced_out_ = false;
  std::map<uint32_t, Cell> cells_;
};

void Broadcast(Env& env, uint16_t type, uint64_t token) {
  Bytes out;
    ByteWriter w(&out);
  w.U64(token);
  const Bytes body = out;
  for (uint32_t i = 0; i < kClusterNodes; ++i) {
    if (i != env.self().value()) env.transport().Send(NodeId(i), type, kSchemaV1, body).IgnoreError();
  }
}

std::optional<uint64_t> DecodeToken(const FrameView& frame) {
  ByteReader r(frame.payload);
  uint64_t token = 0;
  if (!r.U64(&token).ok() || !r.empty()) return std::nullopt;
  return token;
}

// Heartbeat-timeout self-election, no quorum, no lease.
class NaiveNode : public ClusterNode {
 public:
  NaiveNode(Env& env, uint32_t incarnation)
      : env_(env), rpc_(env), cache_(env, rpc_, incarnation) {
    rpc_.SetOneWayHandler([this](NodeId from, const FrameView& frame) { OnFrame(from, frame); });
  }
  ~NaiveNode() override { env_.executor().Cancel(tick_); }

  void Start() override {
    last_heard_ = env_.clock().Now();
    PickTimeout();
    Tick();
  }

  void ClientOp(const ClientRequest& request, ClientCallback done) override {
    cache_.Serve(env_, ActingLeader(), term_, request, std::move(done));
  }

  bool ActingLeader() const override { return leader_ && cache_.ready(); }

 private:
  void PickTimeout() {
    timeout_ = kNaiveTimeoutMin +
               Duration::Nanos(static_cast<int64_t>(env_.random().Uniform(
                   static_cast<uint64_t>(kNaiveTimeoutMin.nanos()))));
  }

  void Tick() {
    const MonoTime now = env_.clock().Now();
    if (leader_) {
      Broadcast(env_, kMsgNaiveHeartbeat, term_);
    } else if (now - last_heard_ >= timeout_) {
      // Nobody heard for a timeout: promote ourselves.
      term_ = MakeToken((highest_ >> 16) + 1, env_.self().value());
      highest_ = term_;
      leader_ = true;
      Broadcast(env_, kMsgNaiveHeartbeat, term_);
    }
    if (leader_) cache_.EnsureLoaded(env_, term_);
    tick_ = env_.executor().ScheduleAfter(kHeartbeat, [this] { Tick(); });
  }

  void OnFrame(NodeId, const FrameView& frame) {
    if (frame.type != kMsgNaiveHeartbeat) return;
    const std::optional<uint64_t> token = DecodeToken(frame);
    if (!token || *token < highest_) return;  // an older leader: ignored, never told
    highest_ = *token;
    last_heard_ = env_.clock().Now();
    if (leader_ && *token > term_) {
      leader_ = false;
      cache_.Reset();
      PickTimeout();
    }
  }

  Env& env_;
  Rpc rpc_;
  LeaderCache cache_;
  bool leader_ = false;
  uint64_t term_ = 0;
  uint64_t highest_ = 0;
  MonoTime last_heard_;
  Duration timeout_;
  TimerId tick_;
};

lease::PaxosLeaseOptions LeaseOptions() {
  lease::PaxosLeaseOptions o;
  for (uint32_t i = 0; i < kClusterNodes; ++i) o.acceptors.push_back(NodeId(i));
  o.drift_ppm_max = 1000;  // the nemesis drifts clocks by at most ±500 ppm
  o.margin = Duration::Millis(50);
  o.round_timeout = Duration::Millis(250);
  o.restart_quiet = kTtl + Duration::Millis(500);
  return o;
}

// Majority leases, self-fencing, a phi-accrual detector on the leader's heartbeats.
class LeaseNode : public ClusterNode {
 public:
  LeaseNode(Env& env, uint32_t incarnation)
      : env_(env), rpc_(env), cache_(env, rpc_, incarnation), incarnation_(incarnation) {
    rpc_.SetOneWayHandler([this](NodeId from, const FrameView& frame) { OnFrame(from, frame); });
  }
  ~LeaseNode() override {
    stop_.Cancel();
    env_.executor().Cancel(tick_);
  }

  void Start() override {
    const lease::PaxosLeaseOptions options = LeaseOptions();
    auto acceptor = lease::PaxosLeaseAcceptor::Create(env_, rpc_, options, incarnation_ > 0);
    FL_ASSERT_MSG(acceptor.ok(), acceptor.status().ToString().c_str());
    acceptor_ = std::move(acceptor).value();
    auto client = lease::PaxosLeaseClient::Create(env_, rpc_, options);
    FL_ASSERT(client.ok());
    client_ = std::move(client).value();
    lease::ElectorOptions elector_options;
    elector_options.name = "leader";
    elector_options.ttl = kTtl;
    elector_options.retry_min = kRetryMin;
    auto elector = lease::LeaderElector::Create(env_, *client_, elector_options);
    FL_ASSERT(elector.ok());
    elector_ = std::move(elector).value();
    elector_->SetCampaignGate([this] { return ShouldCampaign(); });
    elector_->SetListener([this](lease::LeaderState state, const lease::LeaseGrant* grant) {
      OnState(state, grant);
    });
    lease::FailureDetectorOptions detector_options;
    detector_options.phi.first_heartbeat_estimate = kHeartbeat;
    detector_options.phi.min_std = Duration::Millis(50);
    detector_options.phi.acceptable_pause = Duration::Millis(200);
    // A node whose own loop stalled for a second (a pause) suspects nobody for a second after.
    detector_options.pause_threshold = Duration::Seconds(1);
    detector_options.quiet = Duration::Seconds(1);
    auto detector = lease::FailureDetector::Create(detector_options);
    FL_ASSERT(detector.ok());
    detector_ = std::move(detector).value();
    env_.Spawn(CampaignForever());
    Tick();
  }

  void ClientOp(const ClientRequest& request, ClientCallback done) override {
    cache_.Serve(env_, ActingLeader(), elector_->token().value(), request, std::move(done));
  }

  // Self-fencing: a lease valid on this node's own monotonic clock, checked at every use.
  bool ActingLeader() const override {
    return elector_ != nullptr && elector_->CanAct() && cache_.ready();
  }

 private:
  Task<void> CampaignForever() {
    while (!stop_.cancelled()) {
      co_await elector_->Campaign(stop_.token());
      if (stop_.cancelled()) break;
      Status slept = co_await Sleep(env_.executor(), kRetryMin, stop_.token());
      if (!slept.ok()) break;
    }
  }

  // Campaign only when no leader is known or the known one is suspected: a follower's attempt
  // while a leader is healthy would only cost a round.
  bool ShouldCampaign() const {
    if (!leader_hint_) return true;
    return detector_->Suspect(*leader_hint_, env_.clock().Now());
  }

  void OnState(lease::LeaderState state, const lease::LeaseGrant* grant) {
    if (state == lease::LeaderState::kLeader && grant != nullptr) {
      cache_.EnsureLoaded(env_, grant->token.value());
      leader_hint_ = env_.self();
    } else if (state == lease::LeaderState::kLost || state == lease::LeaderState::kFollower) {
      cache_.Reset();
      if (leader_hint_ == env_.self()) leader_hint_.reset();
    }
  }

  void Tick() {
    const MonoTime now = env_.clock().Now();
    detector_->Tick(now);
    if (elector_->CanAct()) {
      cache_.EnsureLoaded(env_, elector_->token().value());
      Broadcast(env_, kMsgLeaderHeartbeat, elector_->token().value());
    }
    tick_ = env_.executor().ScheduleAfter(kHeartbeat, [this] { Tick(); });
  }

  void OnFrame(NodeId from, const FrameView& frame) {
    if (frame.type != kMsgLeaderHeartbeat) return;
    const std::optional<uint64_t> token = DecodeToken(frame);
    if (!token || *token < hint_token_) return;
    hint_token_ = *token;
    leader_hint_ = from;
    detector_->Heartbeat(from, env_.clock().Now()).IgnoreError();
  }

  Env& env_;
  Rpc rpc_;
  LeaderCache cache_;
  uint32_t incarnation_;
  std::unique_ptr<lease::PaxosLeaseAcceptor> acceptor_;
  std::unique_ptr<lease::PaxosLeaseClient> client_;
  std::unique_ptr<lease::LeaderElector> elector_;
  std::unique_ptr<lease::FailureDetector> detector_;
  std::optional<NodeId> leader_hint_;
  uint64_t hint_token_ = 0;
  CancelSource stop_;
  TimerId tick_;
};

// ---- the world-level workload, probe and leader-aimed nemesis ----

std::string OpJson(uint32_t key, std::optional<uint64_t> value) {
  return "{\"key\":" + std::to_string(key) +
         ",\"value\":" + (value ? std::to_string(*value) : std::string("null")) + "}";
}

class Harness {
 public:
  explicit Harness(sim::World& world) : world_(world), clients_(kClients) {
    for (uint32_t c = 0; c < kClients; ++c) clients_[c].process = c;
  }

  void Start() {
    for (uint32_t c = 0; c < kClients; ++c) Next(c, Duration::Millis(3 * c));
    Probe();
  }

  // The nodes that could act as leader now, as the history records them.
  std::vector<uint32_t> ActingLeaders() {
    std::vector<uint32_t> acting;
    for (uint32_t i = 0; i < kClusterNodes; ++i) {
      if (world_.state(NodeId(i)) == sim::ProcessState::kDown) continue;
      auto* node = world_.node_as<ClusterNode>(NodeId(i));
      if (node != nullptr && node->ActingLeader()) acting.push_back(i);
    }
    return acting;
  }

  // Every millisecond of true time: record the set of nodes able to act when it changes.
  void Probe() {
    std::vector<uint32_t> acting = ActingLeaders();
    if (acting != last_acting_ || !probed_) {
      probed_ = true;
      std::string json = "{\"nodes\":[";
      for (size_t i = 0; i < acting.size(); ++i) json += (i ? "," : "") + std::to_string(acting[i]);
      RecordOp(world_, kProbeProcess, sim::OpType::kOk, "leaders", json + "]}");
      last_acting_ = std::move(acting);
    }
    world_.Schedule(Duration::Millis(1), [this] { Probe(); });
  }

  void Marker(std::string_view f, const std::string& json) {
    RecordOp(world_, kNemesisProcess, sim::OpType::kOk, f, json);
  }
  // Leader-aimed faults that found a leader to aim at.
  void CountLeaderFault() { ++leader_faults_; }
  int64_t leader_faults() const { return leader_faults_; }

 private:
  struct Client {
    int64_t process = 0;
    uint64_t op = 0;  // current op number; replies for older ones are ignored
    uint32_t target = 0;
    ClientRequest request;
    sim::EventId timeout;
  };

  void Next(uint32_t c, Duration after) {
    world_.Schedule(after, [this, c] { Invoke(c); });
  }

  void Invoke(uint32_t c) {
    Client& client = clients_[c];
    if (world_.elapsed() >= kRunEnd - Duration::Seconds(1)) return;
    Rng& rng = world_.rng(sim::Stream::kWorkload);
    client.request.write = rng.Chance(Ratio::Percent(50));
    client.request.key = static_cast<uint32_t>(rng.Uniform(kKeys));
    client.request.value = client.request.write ? ++values_ : 0;
    const uint64_t op = ++client.op;
    const std::string f = client.request.write ? "write" : "read";
    RecordOp(world_, client.process, sim::OpType::kInvoke, f,
             OpJson(client.request.key,
                    client.request.write ? std::optional<uint64_t>(client.request.value)
                                         : std::nullopt));
    client.timeout = world_.Schedule(kClientTimeout, [this, c, op] {
      Finish(c, op, ClientReply{Outcome::kInfo, std::nullopt});
    });
    const NodeId target(client.target);
    if (world_.state(target) == sim::ProcessState::kDown) {
      Finish(c, op, ClientReply{});
      return;
    }
    Harness* self = this;
    world_.env(target).executor().Post([self, c, op] { self->Deliver(c, op); });
  }

  // On the target node's executor.
  void Deliver(uint32_t c, uint64_t op) {
    const Client& client = clients_[c];
    // Timed out while queued at a paused node: the request is dropped (its op is already info,
    // and the client has moved on to another request).
    if (client.op != op) return;
    auto* node = world_.node_as<ClusterNode>(NodeId(client.target));
    Harness* self = this;
    node->ClientOp(client.request,
                   [self, c, op](const ClientReply& reply) { self->Finish(c, op, reply); });
  }

  void Finish(uint32_t c, uint64_t op, const ClientReply& reply) {
    Client& client = clients_[c];
    if (client.op != op) return;  // already finished (timeout or reply)
    ++client.op;
    world_.Cancel(client.timeout);
    const std::string f = client.request.write ? "write" : "read";
    Rng& rng = world_.rng(sim::Stream::kWorkload);
    switch (reply.outcome) {
      case Outcome::kOk:
        RecordOp(world_, client.process, sim::OpType::kOk, f,
                 OpJson(client.request.key,
                        client.request.write ? std::optional<uint64_t>(client.request.value)
                                             : reply.value));
        break;
      case Outcome::kFail:
        RecordOp(world_, client.process, sim::OpType::kFail, f,
                 OpJson(client.request.key, std::nullopt));
        // Not the leader (or refused): try another node next time.
        client.target = static_cast<uint32_t>(rng.Uniform(kClusterNodes));
        break;
      case Outcome::kInfo:
        RecordOp(world_, client.process, sim::OpType::kInfo, f,
                 OpJson(client.request.key, std::nullopt));
        // Jepsen's rule: a process whose op is indeterminate is replaced by a fresh one.
        client.process += kClients;
        client.target = static_cast<uint32_t>(rng.Uniform(kClusterNodes));
        break;
    }
    Next(c, Duration::Millis(10 + static_cast<int64_t>(rng.Uniform(40))));
  }

  sim::World& world_;
  std::vector<Client> clients_;
  uint64_t values_ = 0;
  std::vector<uint32_t> last_acting_;
  bool probed_ = false;
  int64_t leader_faults_ = 0;
};

enum class LeaderFault : uint8_t { kDeaf, kPause, kIsolate, kDelayedWrite };
constexpr int kLeaderFaultKinds = 4;

const char* LeaderFaultName(LeaderFault f) {
  switch (f) {
    case LeaderFault::kDeaf: return "leader-deaf";
    case LeaderFault::kPause: return "leader-pause";
    case LeaderFault::kIsolate: return "leader-isolated";
    case LeaderFault::kDelayedWrite: return "leader-write-delayed";
  }
  return "?";
}

struct AimedFault {
  Duration at;
  Duration length;
  LeaderFault kind = LeaderFault::kDeaf;
  // When nobody leads at `at`, the fault waits for a leader, 250 ms at a time, this many times.
  uint8_t waits_left = 8;
};

// Faults aimed at whoever leads when they fire: drawn per seed, before the run.
std::vector<AimedFault> DrawAimedFaults(Rng& rng) {
  std::vector<AimedFault> faults;
  Duration at = kFaultStart + Duration::Seconds(1);
  const Duration end = kFaultStart + kFaultDuration - Duration::Seconds(4);
  while (true) {
    at = at + Duration::Millis(500 + static_cast<int64_t>(rng.Uniform(1500)));
    if (at >= end) break;
    AimedFault f;
    f.at = at;
    f.kind = static_cast<LeaderFault>(rng.Uniform(kLeaderFaultKinds));
    // Long enough to outlive the lease: TTL plus up to 3 s.
    f.length = kTtl + Duration::Millis(500 + static_cast<int64_t>(rng.Uniform(2500)));
    faults.push_back(f);
    at = at + f.length;
  }
  return faults;
}

void ApplyAimedFault(sim::World& world, Harness& harness, AimedFault fault) {
  const std::vector<uint32_t> acting = harness.ActingLeaders();
  if (acting.empty()) {
    if (fault.waits_left == 0) return;
    --fault.waits_left;
    sim::World* w = &world;
    Harness* h = &harness;
    world.Schedule(Duration::Millis(250), [w, h, fault] { ApplyAimedFault(*w, *h, fault); });
    return;
  }
  const uint32_t leader = acting.back();
  harness.CountLeaderFault();
  harness.Marker(LeaderFaultName(fault.kind), "{\"node\":" + std::to_string(leader) +
                                                  ",\"length_ms\":" +
                                                  std::to_string(fault.length.millis()) + "}");
  switch (fault.kind) {
    case LeaderFault::kDeaf: {
      // The leader hears nobody (not even the store's replies) but can still send.
      sim::Grudge grudge(kNodes);
      for (uint32_t i = 0; i < kNodes; ++i) grudge.Block(i, leader);
      world.network().Partition(grudge);
      world.Schedule(fault.length, [&world] { world.network().Heal(); });
      break;
    }
    case LeaderFault::kPause:
      world.Pause(NodeId(leader));
      world.Schedule(fault.length, [&world, leader] {
        if (world.state(NodeId(leader)) == sim::ProcessState::kPaused) world.Resume(NodeId(leader));
      });
      break;
    case LeaderFault::kIsolate: {
      sim::Grudge grudge(kClusterNodes);
      for (uint32_t i = 0; i < kClusterNodes; ++i) grudge.BlockBoth(i, leader);
      world.network().Partition(grudge);
      world.Schedule(fault.length, [&world] { world.network().Heal(); });
      break;
    }
    case LeaderFault::kDelayedWrite: {
      // Hold what the leader sends to the store, cut the leader off from its peers until it is
      // deposed and a successor has written, then let the old messages through.
      world.network().Hold(leader, kStoreNode);
      sim::Grudge grudge(kClusterNodes);
      for (uint32_t i = 0; i < kClusterNodes; ++i) grudge.BlockBoth(i, leader);
      world.network().Partition(grudge);
      world.Schedule(fault.length, [&world] { world.network().Heal(); });
      world.Schedule(fault.length + Duration::Seconds(1),
                     [&world, leader] { world.network().Release(leader, kStoreNode); });
      break;
    }
  }
}

class SplitBrain final : public Scenario {
 public:
  std::string_view id() const override { return "split-brain"; }
  std::string_view description() const override {
    return "leader election under asymmetric/bridge/flapping partitions, pauses > TTL, drift and "
           "delayed messages";
  }
  std::vector<VariantSpec> variants() const override {
    return {
        {"naive", false, 0.5,
         "heartbeat-timeout self-election; the store accepts any write"},
        {"lease-only", false, 0.2,
         "majority leases + self-fencing; the store does not check tokens"},
        {"hardened", true, 0.0,
         "majority leases + self-fencing + fencing tokens checked by the store"},
    };
  }
  std::vector<std::string> key_metrics() const override {
    return {"stale_writes", "dual_leader_ms", "linearizable", "recovery_ms", "failover_ms"};
  }

  RunResult Run(const RunContext& ctx) const override {
    FL_ASSERT(ctx.variant != nullptr);
    const std::string& v = ctx.variant->name;
    FL_ASSERT(v == "naive" || v == "lease-only" || v == "hardened");
    const Design design = v == "naive"        ? Design::kNaive
                          : v == "lease-only" ? Design::kLeaseOnly
                                              : Design::kHardened;
    sim::WorldOptions options = sim::WorldOptions::Nodes(kNodes);
    options.clocks.drift_ppm_max = 500;
    sim::World world(ctx.seed, options);
    ObserveRun(world, ctx);
    world.clock(NodeId(kStoreNode)).SetDrift(0);

    sim::World* w = &world;
    for (uint32_t i = 0; i < kClusterNodes; ++i) {
      const NodeId id(i);
      world.Boot(id, [w, id, design](Env& env) -> std::unique_ptr<sim::Node> {
        const uint32_t incarnation = w->incarnation(id);
        if (design == Design::kNaive) return std::make_unique<NaiveNode>(env, incarnation);
        return std::make_unique<LeaseNode>(env, incarnation);
      });
    }
    const bool fenced = design == Design::kHardened;
    world.Boot(NodeId(kStoreNode), [w, fenced](Env& env) -> std::unique_ptr<sim::Node> {
      return std::make_unique<StoreNode>(env, w, fenced);
    });

    Harness harness(world);
    sim::NemesisOptions nemesis;
    nemesis.start = kFaultStart;
    nemesis.duration = kFaultDuration;
    nemesis.interval_mean = Duration::Millis(2000);
    nemesis.flap_period = Duration::Millis(150);  // faster than the election timeout
    nemesis.drift_ppm_max = 500;
    nemesis.clock_jump_max = Duration::Seconds(2);
    nemesis.down_max = 2;
    const std::vector<sim::FaultAction> schedule =
        sim::Nemesis::Draw(nemesis, kClusterNodes, world.rng(sim::Stream::kNemesis));
    sim::Nemesis::Install(world, schedule, nemesis);
    const std::vector<AimedFault> aimed = DrawAimedFaults(world.rng(sim::Stream::kNemesis));
    Harness* h = &harness;
    for (const AimedFault& fault : aimed) {
      world.ScheduleAt(sim::SimTime::FromNanos(fault.at.nanos()),
                       [w, h, fault] { ApplyAimedFault(*w, *h, fault); });
    }
    const Duration heal = kFaultStart + kFaultDuration;
    world.ScheduleAt(sim::SimTime::FromNanos(heal.nanos()), [h] {
      h->Marker("heal", "{\"bound_ms\":" + std::to_string(kLivenessBound.millis()) + "}");
    });
    // Failover: crash whoever leads, then bring it back.
    const Duration failover_bound = kTtl + kRetryMin + kRetryMin + kRttBound + kRttBound;
    world.ScheduleAt(sim::SimTime::FromNanos((heal + kFailoverAfterHeal).nanos()),
                     [w, h, failover_bound] {
                       const std::vector<uint32_t> acting = h->ActingLeaders();
                       if (acting.size() != 1) {
                         h->Marker("failover-skipped", "{}");
                         return;
                       }
                       const uint32_t leader = acting.front();
                       h->Marker("failover-crash",
                                 "{\"node\":" + std::to_string(leader) + ",\"bound_ms\":" +
                                     std::to_string(failover_bound.millis()) + "}");
                       w->Crash(NodeId(leader));
                       w->Schedule(kRestartAfterFailover,
                                   [w, leader] { w->Restart(NodeId(leader)); });
                     });
    harness.Start();
    world.RunUntil(sim::SimTime::FromNanos(kRunEnd.nanos()));

    RunResult result;
    CheckSplitBrainHistory(world.history(), &result);
    result.metrics["faults"] = static_cast<double>(schedule.size() + aimed.size());
    result.metrics["leader_faults"] = static_cast<double>(harness.leader_faults());
    FinishRun(world, ctx, &result);
    return result;
  }
};

}  // namespace

const Scenario* SplitBrainScenario() {
  static const SplitBrain scenario;
  return &scenario;
}

}  // namespace faultline::lab
