// split-brain's cluster nodes (0-4): the naive heartbeat-timeout design and the lease designs
// (majority leases over PaxosLease, self-fencing, a phi-accrual detector on the leader's
// heartbeats). Both serve clients through a LeaderCache: reads from a cache of the store, writes
// through to the store with the leader's token.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/lease/leader_elector.h"
#include "faultline/lease/paxos_lease.h"
#include "faultline/lease/phi_accrual.h"
#include "src/lab/split_brain.h"

namespace faultline::lab::split_brain {
namespace {

constexpr Duration kNaiveTimeoutMin = Duration::Millis(500);  // naive election timeout [T, 2T)
constexpr uint16_t kMsgNaiveHeartbeat = 20;
constexpr uint16_t kMsgLeaderHeartbeat = 21;
constexpr uint16_t kSchemaV1 = 1;

uint64_t MakeToken(uint64_t round, uint32_t node) { return (round << 16) | node; }

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

// Majority leases (PaxosLease among nodes 0-4, or an external LeaseService such as etcd),
// self-fencing, a phi-accrual detector on the leader's heartbeats.
class LeaseNode : public ClusterNode {
 public:
  LeaseNode(Env& env, uint32_t incarnation, lease::LeaseService* external, LeaseWrap wrap,
            Observer* metrics)
      : env_(env), rpc_(env), cache_(env, rpc_, incarnation), incarnation_(incarnation),
        external_(external), wrap_(std::move(wrap)), metrics_(metrics) {
    rpc_.SetOneWayHandler([this](NodeId from, const FrameView& frame) { OnFrame(from, frame); });
  }
  ~LeaseNode() override {
    stop_.Cancel();
    env_.executor().Cancel(tick_);
  }

  void Start() override {
    lease::LeaseService* service = external_;
    if (service == nullptr) {
      const lease::PaxosLeaseOptions options = LeaseOptions();
      auto acceptor = lease::PaxosLeaseAcceptor::Create(env_, rpc_, options, incarnation_ > 0);
      FL_ASSERT_MSG(acceptor.ok(), acceptor.status().ToString().c_str());
      acceptor_ = std::move(acceptor).value();
      auto client = lease::PaxosLeaseClient::Create(env_, rpc_, options);
      FL_ASSERT(client.ok());
      client_ = std::move(client).value();
      service = client_.get();
    }
    lease::ElectorOptions elector_options;
    elector_options.name = "leader";
    elector_options.ttl = kTtl;
    elector_options.retry_min = kRetryMin;
    lease::LeaseService& used = wrap_ ? wrap_(*service) : *service;
    auto elector = lease::LeaderElector::Create(env_, used, elector_options);
    FL_ASSERT(elector.ok());
    elector_ = std::move(elector).value();
    elector_->observe().Attach(metrics_, "elector");
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
    detector_->observe().Attach(metrics_, "failure_detector");
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

  // The lease's valid_until: CanAct() turns false there on this node's clock.
  std::optional<MonoTime> ActingUntil() const override {
    if (!ActingLeader()) return std::nullopt;
    return elector_->grant()->valid_until;
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
  lease::LeaseService* external_;
  LeaseWrap wrap_;
  std::unique_ptr<lease::PaxosLeaseAcceptor> acceptor_;
  std::unique_ptr<lease::PaxosLeaseClient> client_;
  std::unique_ptr<lease::LeaderElector> elector_;
  std::unique_ptr<lease::FailureDetector> detector_;
  Observer* metrics_;
  std::optional<NodeId> leader_hint_;
  uint64_t hint_token_ = 0;
  CancelSource stop_;
  TimerId tick_;
};

}  // namespace

std::unique_ptr<ClusterNode> MakeClusterNode(Env& env, Design design, uint32_t incarnation,
                                             lease::LeaseService* service, LeaseWrap wrap,
                                             Observer* metrics) {
  if (design == Design::kNaive) return std::make_unique<NaiveNode>(env, incarnation);
  return std::make_unique<LeaseNode>(env, incarnation, service, std::move(wrap), metrics);
}

}  // namespace faultline::lab::split_brain
