// The `idempotency` scenario: payments. Two application servers (n0, n1) each serve a "charge
// card" HTTP endpoint and consume "charge card" messages from an at-least-once broker (n3) as two
// competing consumers of one group. Both paths charge a card network (n4, the external side
// effect) and record the charge in a payments database (n2, a LogStore on its own simulated disk).
// Clients send charge requests with an Idempotency-Key and retry timed-out or failed ones with the
// same key; now and then a client reuses an old key for a NEW request, which must be refused as a
// mismatch.
//
//   naive     check-then-act in application code: read "has this key (message) been processed?",
//             if not call the card network with a fresh request id, then store the response in a
//             separate step, then answer (ack). A retry or a redelivery that arrives while the
//             first attempt is still at the card network, or after a crash between the charge and
//             the store, charges the card again. No fingerprints: a reused key replays the old
//             answer.
//   hardened  idempotency::IdempotencyKeys: the claim is the store's atomic insert with the
//             request's fingerprint and a lease; an attempt number fences a paused or taken-over
//             server; recovery points ("created") let a takeover resume; the charge phase sends the
//             card network a provider-side key derived from the idempotency key, so a takeover or a
//             second consumer gets the first charge back; the ledger entry and Complete commit in
//             one transaction. Messages go through an idempotency::Inbox: Record and the ledger
//             entry commit together, the provider key is derived from the message id, and a
//             consumer acks only after that commit (or after finding the record committed), so an
//             ack, even a late one that the broker applies to another consumer's redelivery
//             (nats-server #4786), only ever confirms work that is committed.
//
// Faults (1 s .. 9 s, then everything heals and the system quiesces until 14 s): the generic
// nemesis over the servers and the database (crashes with power loss, pauses, partitions, clock
// jumps, drift and strobes, loss, duplication, reordering, clogs); crashes aimed between the
// phases of a charge (after the charge, after the commit, before the answer or the ack); servers
// paused for longer than the broker's ack-wait; broker crashes (it restarts from its log and
// redelivers what was in flight); the broker's own duplicate deliveries; and a card network that
// is sometimes slower than ack-wait and the clients' timeout. Times are scaled down: ack-wait is
// 300 ms here (JetStream's default is 30 s), the claim lease 600 ms, the client timeout 400 ms.
//
// The checker (idempotency_checker.cc) reads typed observations: the card network's charges, the
// clients' answers and the broker's accepted acks.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/env/task.h"
#include "faultline/idempotency/idempotency_keys.h"
#include "faultline/idempotency/phased_operation.h"
#include "faultline/lab/scenario.h"
#include "faultline/sim/nemesis.h"
#include "src/lab/chart_data.h"
#include "src/lab/idempotency_broker.h"
#include "src/lab/idempotency_nodes.h"
#include "src/lab/idempotency_observations.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

constexpr uint32_t kServers = 2;  // n0, n1
constexpr uint32_t kDbNode = 2;
constexpr uint32_t kBrokerNode = 3;
constexpr uint32_t kProviderNode = 4;
constexpr uint32_t kNodes = 5;
constexpr uint32_t kClients = 3;

constexpr Duration kAckWait = Duration::Millis(300);
constexpr Duration kDbTimeout = Duration::Millis(150);
constexpr Duration kProviderTimeout = Duration::Millis(1500);
constexpr Duration kBrokerTimeout = Duration::Millis(100);
constexpr Duration kFetchIdle = Duration::Millis(20);
constexpr uint32_t kPullers = 3;  // deliveries a server works on at once (JetStream: MaxAckPending)
constexpr Duration kClientTimeout = Duration::Millis(400);
constexpr uint32_t kAttemptsMax = 25;
constexpr Duration kFaultStart = Duration::Seconds(1);
constexpr Duration kFaultDuration = Duration::Seconds(8);
constexpr Duration kWorkloadEnd = Duration::Millis(8500);  // no new requests or messages after
constexpr Duration kRetryEnd = Duration::Seconds(13);     // clients stop retrying
constexpr Duration kRunEnd = Duration::Seconds(14);
constexpr Ratio kCrashAtPoint = Ratio::Percent(2);
constexpr Ratio kKeyReuse = Ratio::Percent(8);
constexpr Ratio kResend = Ratio::Percent(15);
constexpr Duration kPublishInterval = Duration::Millis(100);  // mean, exponential
constexpr Duration kPublishRetry = Duration::Millis(100);

enum class Design : uint8_t { kNaive, kHardened };

struct ChargeRequest {
  uint32_t client = 0;
  std::string key;
  std::string payment;
  int64_t amount = 0;
  std::string canonical;  // "POST /v1/charges payment=...&amount=..."
};

struct ServerReply {
  ClientAnswerKind kind = ClientAnswerKind::kError;
  std::string body;
};
using ReplyFn = std::function<void(const ServerReply&)>;

std::string ResponseBody(const std::string& payment, const std::string& charge, int64_t amount) {
  return "{\"payment\":\"" + payment + "\",\"charge\":\"" + charge +
         "\",\"amount\":" + std::to_string(amount) + "}";
}

// What node code may ask of the world: whether to crash at an aimed crash point.
class CrashPoints {
 public:
  virtual ~CrashPoints() = default;
  // True: the caller's node will be crashed by a world event before its next timer fires; it must
  // stop at once (co_await a short sleep, then return).
  virtual bool CrashHere(NodeId self) = 0;
};

// ---- an application server: the HTTP endpoint and a consumer ----

class ServerNode final : public sim::Node {
 public:
  ServerNode(Env& env, Design design, CrashPoints* crash, IdempotencyObservations* obs)
      : env_(env), rpc_(env), design_(design), crash_(crash), obs_(obs) {}

  void Start() override {
    for (uint32_t i = 0; i < kPullers; ++i) env_.Spawn(ConsumeLoop());
  }

  // Runs on this node's executor; `done` is called at most once (never if the node crashes).
  void Serve(ChargeRequest request, ReplyFn done) {
    if (design_ == Design::kNaive) {
      env_.Spawn(ServeNaive(std::move(request), std::move(done)));
    } else {
      env_.Spawn(ServeHardened(std::move(request), std::move(done)));
    }
  }

 private:
  // An aimed crash point: true when the node is about to crash (the caller returns at once).
  Task<bool> Crashing() {
    if (!crash_->CrashHere(env_.self())) co_return false;
    (void)co_await Sleep(env_.executor(), Duration::Millis(1));
    co_return true;
  }

  Rpc::CallAwaiter Db(uint16_t method, const Bytes& request) {
    return rpc_.Call(NodeId(kDbNode), method, request, kDbTimeout);
  }

  // The card network; `key` empty = no provider-side idempotency key. Returns the charge id.
  Task<Result<std::string>> ChargeCard(const std::string& payment, int64_t amount,
                                       const std::string& key) {
    Bytes req;
    ByteWriter w(&req);
    w.Bytes(payment);
    w.I64(amount);
    w.Bytes(key);
    Result<Bytes> reply = co_await rpc_.Call(NodeId(kProviderNode), kProviderCharge, req,
                                             kProviderTimeout);
    if (!reply.ok()) co_return reply.status();
    ByteReader r(*reply);
    std::string charge;
    if (!ReadField(r, &charge).ok() || !r.empty()) {
      co_return DataLossError("malformed charge reply");
    }
    co_return charge;
  }

  Task<void> ServeNaive(ChargeRequest req, ReplyFn done) {
    const std::string key = "api/" + std::to_string(req.client) + "/" + req.key;
    Bytes lookup;
    ByteWriter(&lookup).Bytes(key);
    Result<Bytes> seen = co_await Db(kDbNaiveLookup, lookup);
    if (!seen.ok()) co_return done(ServerReply{});
    ByteReader r(*seen);
    uint8_t found = 0;
    std::string stored;
    if (!r.U8(&found).ok() || !ReadField(r, &stored).ok()) co_return done(ServerReply{});
    if (found != 0) {
      ++obs_->counters.replays;
      co_return done(ServerReply{ClientAnswerKind::kCharged, stored});
    }
    Result<std::string> charge = co_await ChargeCard(req.payment, req.amount, "");
    if (!charge.ok()) co_return done(ServerReply{});
    if (co_await Crashing()) co_return;
    const std::string body = ResponseBody(req.payment, *charge, req.amount);
    Bytes mark;
    ByteWriter w(&mark);
    w.Bytes(key);
    w.Bytes(req.payment);
    w.Bytes(*charge);
    w.Bytes(body);
    Result<Bytes> marked = co_await Db(kDbNaiveMark, mark);
    if (!marked.ok()) co_return done(ServerReply{});
    if (co_await Crashing()) co_return;
    done(ServerReply{ClientAnswerKind::kCharged, body});
  }

  Task<void> ServeHardened(ChargeRequest req, ReplyFn done) {
    const std::string scope = "client-" + std::to_string(req.client);
    Bytes claim_req;
    ByteWriter cw(&claim_req);
    cw.Bytes(scope);
    cw.Bytes(req.key);
    cw.Bytes(req.canonical);
    Result<Bytes> claimed = co_await Db(kDbClaim, claim_req);
    if (!claimed.ok()) co_return done(ServerReply{});
    ByteReader r(*claimed);
    uint8_t state = 0;
    uint64_t attempt = 0;
    std::string recovery, response;
    if (!r.U8(&state).ok() || !r.U64(&attempt).ok() || !ReadField(r, &recovery).ok() ||
        !r.Bytes(&response, 1 << 20).ok()) {
      co_return done(ServerReply{});
    }
    switch (static_cast<idempotency::ClaimState>(state)) {
      case idempotency::ClaimState::kCompleted:
        ++obs_->counters.replays;
        co_return done(ServerReply{ClientAnswerKind::kCharged, response});
      case idempotency::ClaimState::kMismatch:
        co_return done(ServerReply{ClientAnswerKind::kMismatch, ""});
      case idempotency::ClaimState::kInProgress:
        co_return done(ServerReply{ClientAnswerKind::kInProgress, ""});
      case idempotency::ClaimState::kClaimed:
        break;
    }
    if (recovery.empty()) {  // phase 1: the payment row, ending in the recovery point "created"
      Bytes create;
      ByteWriter w(&create);
      w.Bytes(scope);
      w.Bytes(req.key);
      w.U64(attempt);
      w.Bytes(req.payment);
      w.I64(req.amount);
      Result<Bytes> created = co_await Db(kDbCreate, create);
      if (!created.ok()) co_return done(ServerReply{});
      if (co_await Crashing()) co_return;
    }
    // Phase 2: the charge, under a provider-side key derived from the idempotency key (the same
    // for every attempt of the request). RunPhased does not fit here — its steps are synchronous
    // calls and local transactions, and this server reaches both over the network — but the key
    // is its StepKey.
    const std::string step_key = idempotency::StepKey(scope, req.key, "charge");
    Result<std::string> charge = co_await ChargeCard(req.payment, req.amount, step_key);
    if (!charge.ok()) co_return done(ServerReply{});
    if (co_await Crashing()) co_return;
    // Phase 3: the ledger entry and the stored response, one transaction, fenced by the attempt.
    const std::string body = ResponseBody(req.payment, *charge, req.amount);
    Bytes complete;
    ByteWriter w(&complete);
    w.Bytes(scope);
    w.Bytes(req.key);
    w.U64(attempt);
    w.Bytes(req.payment);
    w.Bytes(*charge);
    w.Bytes(body);
    Result<Bytes> completed = co_await Db(kDbComplete, complete);
    if (!completed.ok()) {
      const bool fenced = completed.status().code() == StatusCode::kFencedOut;
      co_return done(ServerReply{fenced ? ClientAnswerKind::kInProgress : ClientAnswerKind::kError,
                                 ""});
    }
    if (co_await Crashing()) co_return;
    done(ServerReply{ClientAnswerKind::kCharged, body});
  }

  Task<void> ConsumeLoop() {
    while (true) {
      Result<Bytes> fetched = co_await rpc_.Call(NodeId(kBrokerNode), kBrokerFetch, {},
                                                 kBrokerTimeout);
      if (!fetched.ok() || fetched->empty() || (*fetched)[0] == 0) {
        const Status slept = co_await Sleep(env_.executor(), kFetchIdle);
        if (!slept.ok()) co_return;
        continue;
      }
      Result<BrokerDelivery> d =
          DecodeDelivery(std::span<const uint8_t>(fetched->data() + 1, fetched->size() - 1));
      if (!d.ok()) continue;
      const bool settled = design_ == Design::kNaive ? co_await ConsumeNaive(*d)
                                                     : co_await ConsumeHardened(*d);
      if (!settled) continue;  // crashing, or not done: the broker redelivers after ack-wait
      Bytes ack;
      ByteWriter w(&ack);
      w.U64(d->seq);
      w.U32(d->delivery);
      (void)co_await rpc_.Call(NodeId(kBrokerNode), kBrokerAck, ack, kBrokerTimeout);
    }
  }

  // True when the message may be acked.
  Task<bool> ConsumeNaive(const BrokerDelivery& d) {
    const std::string key = "msg/" + d.message.id;
    Bytes lookup;
    ByteWriter(&lookup).Bytes(key);
    Result<Bytes> seen = co_await Db(kDbNaiveLookup, lookup);
    if (!seen.ok() || seen->empty()) co_return false;
    if ((*seen)[0] != 0) co_return true;  // processed already
    Result<std::string> charge = co_await ChargeCard(d.message.payment, d.message.amount, "");
    if (!charge.ok()) co_return false;
    if (co_await Crashing()) co_return false;
    Bytes mark;
    ByteWriter w(&mark);
    w.Bytes(key);
    w.Bytes(d.message.payment);
    w.Bytes(*charge);
    w.Bytes("");
    Result<Bytes> marked = co_await Db(kDbNaiveMark, mark);
    if (!marked.ok()) co_return false;
    if (co_await Crashing()) co_return false;
    co_return true;
  }

  // True only once the inbox record is committed (by this delivery or an earlier one): the ack
  // that follows confirms committed work, whichever delivery the broker applies it to.
  Task<bool> ConsumeHardened(const BrokerDelivery& d) {
    Result<std::string> charge =
        co_await ChargeCard(d.message.payment, d.message.amount, "msg/" + d.message.id);
    if (!charge.ok()) co_return false;
    if (co_await Crashing()) co_return false;
    Bytes commit;
    ByteWriter w(&commit);
    w.Bytes(d.message.id);
    w.Bytes(d.message.payment);
    w.Bytes(*charge);
    Result<Bytes> committed = co_await Db(kDbInbox, commit);
    if (!committed.ok()) co_return false;
    if (co_await Crashing()) co_return false;
    co_return true;
  }

  Env& env_;
  Rpc rpc_;
  Design design_;
  CrashPoints* crash_;
  IdempotencyObservations* obs_;
};

// ---- the world side: clients, the publisher, aimed faults ----

class Harness final : public CrashPoints {
 public:
  Harness(sim::World& world, IdempotencyObservations* obs)
      : world_(world), obs_(obs), clients_(kClients) {
    for (uint32_t i = 0; i < kClients; ++i) clients_[i].process = i;
  }

  // The faults aimed at the servers, as applied (for the report's charts).
  std::vector<FaultSpan> aimed_faults;

  void Start() {
    for (uint32_t c = 0; c < kClients; ++c) NextRequest(c, Duration::Millis(10 + 7 * c));
    world_.Schedule(Duration::Millis(5), [this] { PublishNext(); });
  }

  bool CrashHere(NodeId self) override {
    const Duration t = world_.elapsed();
    if (t < kFaultStart || t >= kFaultStart + kFaultDuration) return false;
    Rng& rng = world_.rng(sim::Stream::kNemesis);
    if (!rng.Chance(kCrashAtPoint)) return false;
    ++obs_->counters.crashes_aimed;
    const Duration down = rng.Range(Duration::Millis(100), Duration::Millis(600));
    aimed_faults.push_back(FaultSpan{"aimed crash", "n" + std::to_string(self.value()), t.nanos(),
                                     (t + down).nanos()});
    sim::World* w = &world_;
    world_.Schedule(Duration::Zero(), [w, self, down] {
      w->Crash(self);
      w->Schedule(down, [w, self] { w->Restart(self); });
    });
    return true;
  }

  // A server paused for longer than ack-wait (and than the client timeout), while it may be in
  // the middle of a delivery or a request.
  void PauseServer(uint32_t server, Duration length) {
    const NodeId id(server);
    if (world_.state(id) != sim::ProcessState::kUp) return;
    ++obs_->counters.pauses_aimed;
    aimed_faults.push_back(FaultSpan{"aimed pause", "n" + std::to_string(server),
                                     world_.now().nanos(), (world_.now() + length).nanos()});
    world_.Pause(id);
    sim::World* w = &world_;
    world_.Schedule(length, [w, id] { w->Resume(id); });
  }

 private:
  struct Client {
    int64_t process = 0;
    uint64_t op = 0;  // the current attempt; answers for older ones are ignored
    ChargeRequest request;
    int64_t first_invoke_ns = 0;
    uint32_t attempt = 0;
    uint32_t server = 0;
    bool resent = false;  // sent again after a 200
    sim::EventId timeout;
    std::vector<std::string> keys;  // keys this client has used
  };

  void NextRequest(uint32_t c, Duration after) {
    world_.Schedule(after, [this, c] { NewRequest(c); });
  }

  void NewRequest(uint32_t c) {
    if (world_.elapsed() >= kWorkloadEnd) return;
    Client& cl = clients_[c];
    Rng& rng = world_.rng(sim::Stream::kWorkload);
    const std::string n = std::to_string(++requests_);
    ChargeRequest& req = cl.request;
    req.client = c;
    if (!cl.keys.empty() && rng.Chance(kKeyReuse)) {
      req.key = cl.keys[rng.Uniform(cl.keys.size())];  // a new request under an old key
    } else {
      req.key = "k" + n;
      cl.keys.push_back(req.key);
    }
    req.payment = "p" + n;
    req.amount = 100 + static_cast<int64_t>(rng.Uniform(900));
    req.canonical =
        "POST /v1/charges payment=" + req.payment + "&amount=" + std::to_string(req.amount);
    cl.first_invoke_ns = world_.now().nanos();
    cl.attempt = 0;
    cl.resent = false;
    Attempt(c);
  }

  std::string RequestJson(const Client& cl) const {
    return "{\"key\":\"" + cl.request.key + "\",\"payment\":\"" + cl.request.payment +
           "\",\"amount\":" + std::to_string(cl.request.amount) +
           ",\"attempt\":" + std::to_string(cl.attempt) + "}";
  }

  void Attempt(uint32_t c) {
    Client& cl = clients_[c];
    ++cl.attempt;
    const uint64_t op = ++cl.op;
    cl.server = static_cast<uint32_t>(world_.rng(sim::Stream::kWorkload).Uniform(kServers));
    RecordOp(world_, cl.process, check::OpType::kInvoke, "charge", RequestJson(cl));
    const NodeId server(cl.server);
    if (world_.state(server) == sim::ProcessState::kDown) {
      Answer(c, op, ServerReply{ClientAnswerKind::kRefused, ""});
      return;
    }
    cl.timeout = world_.Schedule(kClientTimeout, [this, c, op] {
      Answer(c, op, ServerReply{ClientAnswerKind::kTimeout, ""});
    });
    Harness* self = this;
    world_.env(server).executor().Post([self, c, op] { self->Deliver(c, op); });
  }

  // On the server's executor: the request arrives (parked while the server is paused, lost if it
  // crashes first).
  void Deliver(uint32_t c, uint64_t op) {
    const Client& cl = clients_[c];
    if (cl.op != op) return;  // timed out while queued at a paused server
    Harness* self = this;
    world_.node_as<ServerNode>(NodeId(cl.server))
        ->Serve(cl.request, [self, c, op](const ServerReply& r) { self->Answer(c, op, r); });
  }

  void Answer(uint32_t c, uint64_t op, const ServerReply& reply) {
    Client& cl = clients_[c];
    if (cl.op != op) return;  // already answered (timeout, or the server after the timeout)
    ++cl.op;
    world_.Cancel(cl.timeout);
    obs_->answers.push_back(ClientAnswer{c, cl.request.key, cl.request.canonical,
                                         cl.request.payment, cl.first_invoke_ns,
                                         world_.now().nanos(), cl.attempt, cl.server, reply.kind,
                                         reply.body});
    RecordAnswer(cl, reply);
    Rng& rng = world_.rng(sim::Stream::kWorkload);
    const bool final =
        reply.kind == ClientAnswerKind::kCharged || reply.kind == ClientAnswerKind::kMismatch;
    // Now and then a client sends a request again after its 200 (a double submit, a proxy retry
    // after a dropped response): the answer must be the first one, byte for byte.
    if (reply.kind == ClientAnswerKind::kCharged && !cl.resent && rng.Chance(kResend)) {
      cl.resent = true;
      world_.Schedule(rng.Range(Duration::Millis(50), Duration::Millis(600)),
                      [this, c] { Attempt(c); });
      return;
    }
    if (final || cl.attempt >= kAttemptsMax || world_.elapsed() >= kRetryEnd) {
      NextRequest(c, Duration::Millis(20 + static_cast<int64_t>(rng.Uniform(60))));
      return;
    }
    // Retry the same request under the same key.
    const int64_t base = reply.kind == ClientAnswerKind::kInProgress ? 150
                         : reply.kind == ClientAnswerKind::kRefused  ? 30
                                                                     : 50;
    world_.Schedule(Duration::Millis(base + static_cast<int64_t>(rng.Uniform(50))),
                    [this, c] { Attempt(c); });
  }

  void RecordAnswer(Client& cl, const ServerReply& reply) {
    const std::string head = "{\"key\":\"" + cl.request.key + "\",\"payment\":\"" +
                             cl.request.payment + "\",\"attempt\":" + std::to_string(cl.attempt);
    switch (reply.kind) {
      case ClientAnswerKind::kCharged:
        RecordOp(world_, cl.process, check::OpType::kOk, "charge",
                 head + ",\"response\":" + reply.body + "}");
        return;
      case ClientAnswerKind::kMismatch:
      case ClientAnswerKind::kInProgress:
      case ClientAnswerKind::kRefused:
        RecordOp(world_, cl.process, check::OpType::kFail, "charge",
                 head + ",\"error\":\"" + ClientAnswerKindName(reply.kind) + "\"}");
        return;
      case ClientAnswerKind::kError:
      case ClientAnswerKind::kTimeout:
        RecordOp(world_, cl.process, check::OpType::kInfo, "charge",
                 head + ",\"error\":\"" + ClientAnswerKindName(reply.kind) + "\"}");
        cl.process += kClients;  // an indeterminate op ends its process, as in Jepsen
        return;
    }
  }

  struct PendingPublish {
    BrokerMessage message;
    bool confirmed = false;  // the broker has it (its PubAck)
  };

  void PublishNext() {
    if (world_.elapsed() >= kWorkloadEnd) return;
    Rng& rng = world_.rng(sim::Stream::kWorkload);
    const std::string n = std::to_string(++messages_);
    SendPublish(std::make_shared<PendingPublish>(PendingPublish{
        BrokerMessage{"m" + n, "mp" + n, 100 + static_cast<int64_t>(rng.Uniform(900))}, false}));
    world_.Schedule(rng.Exponential(kPublishInterval), [this] { PublishNext(); });
  }

  // The publisher retries until the broker has the message; the broker deduplicates by id.
  void SendPublish(std::shared_ptr<PendingPublish> p) {
    if (p->confirmed) return;
    if (world_.state(NodeId(kBrokerNode)) != sim::ProcessState::kDown) {
      sim::World* w = &world_;
      world_.env(NodeId(kBrokerNode)).executor().Post([w, p] {
        if (w->node_as<BrokerNode>(NodeId(kBrokerNode))->Publish(p->message).ok()) {
          p->confirmed = true;
        }
      });
    }
    world_.Schedule(kPublishRetry, [this, p] { SendPublish(p); });
  }

  sim::World& world_;
  IdempotencyObservations* obs_;
  std::vector<Client> clients_;
  uint64_t requests_ = 0;
  uint64_t messages_ = 0;
};

struct AimedPause {
  Duration at;
  uint32_t server = 0;
  Duration length;
};

// Servers paused for longer than ack-wait, drawn per seed before the run.
std::vector<AimedPause> DrawPauses(Rng& rng) {
  std::vector<AimedPause> pauses;
  Duration at = kFaultStart;
  while (true) {
    at = at + rng.Range(Duration::Millis(400), Duration::Millis(1600));
    if (at >= kFaultStart + kFaultDuration) break;
    AimedPause p;
    p.at = at;
    p.server = static_cast<uint32_t>(rng.Uniform(kServers));
    p.length = kAckWait + rng.Range(Duration::Millis(50), Duration::Millis(700));
    pauses.push_back(p);
  }
  return pauses;
}

struct AimedCrash {
  Duration at;
  Duration length;
};

// The report's chart: charges the provider applied and the clients' failed answers per second,
// under every fault of the run.
void AddCharts(const IdempotencyObservations& obs, const std::vector<sim::FaultAction>& schedule,
               const std::vector<FaultSpan>& aimed, const std::vector<AimedCrash>& broker_crashes,
               int64_t end_ns, RunResult* result) {
  result->faults = FaultSpans(schedule, end_ns);
  for (const FaultSpan& f : aimed) result->faults.push_back(f);
  for (const AimedCrash& c : broker_crashes) {
    result->faults.push_back(FaultSpan{"broker crash", "broker", c.at.nanos(),
                                       std::min(end_ns, (c.at + c.length).nanos())});
  }
  std::vector<int64_t> charges, charged, failed;
  for (const ProviderCharge& c : obs.charges) charges.push_back(c.time_ns);
  for (const ClientAnswer& a : obs.answers) {
    (a.kind == ClientAnswerKind::kCharged ? charged : failed).push_back(a.time_ns);
  }
  result->series.push_back(
      RateSeries("charges applied by the provider", charges, kChartSlowWindowNs, end_ns));
  result->series.push_back(
      RateSeries("client answers: charged", charged, kChartSlowWindowNs, end_ns));
  result->series.push_back(RateSeries("client answers: error, timeout, refused, 409, 422", failed,
                                      kChartSlowWindowNs, end_ns));
}

// Broker crashes (it restarts from its log), drawn per seed before the run.
std::vector<AimedCrash> DrawBrokerCrashes(Rng& rng) {
  std::vector<AimedCrash> crashes;
  Duration at = kFaultStart;
  while (true) {
    at = at + rng.Range(Duration::Millis(1500), Duration::Millis(4000));
    if (at >= kFaultStart + kFaultDuration) break;
    crashes.push_back(AimedCrash{at, rng.Range(Duration::Millis(100), Duration::Millis(600))});
  }
  return crashes;
}

class Idempotency final : public Scenario {
 public:
  std::string_view id() const override { return "idempotency"; }
  std::string_view description() const override {
    return "card charges via retried HTTP requests and an at-least-once broker: check-then-act vs "
           "idempotency keys + inbox + provider keys";
  }
  std::vector<VariantSpec> variants() const override {
    return {
        {"naive", false, 0.8,
         "check 'processed?', charge with a fresh request id, mark processed in a later step"},
        {"hardened", true, 0.0,
         "IdempotencyKeys (atomic claim, fingerprint, fencing, recovery points), provider keys, "
         "Inbox in the ledger's transaction, ack after commit"},
    };
  }
  std::vector<std::string> probe_modules() const override { return {"idempotency", "disk"}; }
  std::vector<std::string> key_metrics() const override {
    return {"charges", "double_charges", "lost_charges", "replays", "mismatches", "takeovers",
            "redeliveries"};
  }

  RunResult Run(const RunContext& ctx) const override {
    FL_ASSERT(ctx.variant != nullptr);
    const std::string& v = ctx.variant->name;
    FL_ASSERT(v == "naive" || v == "hardened");
    const Design design = v == "naive" ? Design::kNaive : Design::kHardened;
    sim::WorldOptions options = sim::WorldOptions::Nodes(kNodes);
    // Unsynced writes may survive a crash, whole or torn: the database must tell them apart.
    options.disk.unsynced_survives = Ratio::Percent(30);
    sim::World world(ctx.seed, options);
    ObserveRun(world, ctx);

    IdempotencyObservations obs;
    Harness harness(world, &obs);
    IdempotencyObservations* o = &obs;
    CrashPoints* crash = &harness;
    sim::World* w = &world;
    for (uint32_t i = 0; i < kServers; ++i) {
      world.Boot(NodeId(i), [design, crash, o](Env& env) -> std::unique_ptr<Node> {
        return std::make_unique<ServerNode>(env, design, crash, o);
      });
    }
    world.Boot(NodeId(kDbNode), [o](Env& env) -> std::unique_ptr<Node> {
      return std::make_unique<DbNode>(env, o);
    });
    world.Boot(NodeId(kBrokerNode), [w, o](Env& env) -> std::unique_ptr<Node> {
      return std::make_unique<BrokerNode>(env, w, o,
                                          BrokerOptions{kAckWait, Ratio::Percent(3)});
    });
    world.Boot(NodeId(kProviderNode), [w, o](Env& env) -> std::unique_ptr<Node> {
      return std::make_unique<ProviderNode>(env, w, o);
    });

    // The generic schedule over the servers and the database. The broker gets crashes of its own
    // (below); the card network is an outside company, never crashed (its links still fail).
    sim::NemesisOptions nemesis;
    nemesis.start = kFaultStart;
    nemesis.duration = kFaultDuration;
    nemesis.interval_mean = Duration::Millis(1200);
    nemesis.clock_jump_max = Duration::Seconds(2);
    nemesis.down_max = 2;
    const std::vector<sim::FaultAction> schedule =
        sim::Nemesis::Draw(nemesis, kDbNode + 1, world.rng(sim::Stream::kNemesis));
    sim::Nemesis::Install(world, schedule, nemesis);
    const std::vector<AimedPause> pauses = DrawPauses(world.rng(sim::Stream::kNemesis));
    Harness* h = &harness;
    for (const AimedPause& p : pauses) {
      world.ScheduleAt(sim::SimTime::FromNanos(p.at.nanos()),
                       [h, p] { h->PauseServer(p.server, p.length); });
    }
    const std::vector<AimedCrash> broker_crashes =
        DrawBrokerCrashes(world.rng(sim::Stream::kNemesis));
    for (const AimedCrash& c : broker_crashes) {
      world.ScheduleAt(sim::SimTime::FromNanos(c.at.nanos()), [w, o, c] {
        ++o->counters.broker_crashes;
        w->Crash(NodeId(kBrokerNode));
        w->Schedule(c.length, [w] { w->Restart(NodeId(kBrokerNode)); });
      });
    }
    harness.Start();
    world.RunUntil(sim::SimTime::FromNanos(kRunEnd.nanos()));

    RunResult result;
    CheckIdempotency(obs, &result);
    AddCharts(obs, schedule, harness.aimed_faults, broker_crashes, world.now().nanos(), &result);
    result.metrics["faults"] =
        static_cast<double>(schedule.size() + pauses.size() + broker_crashes.size());
    FinishRun(world, ctx, &result);
    return result;
  }
};

}  // namespace

const Scenario* IdempotencyScenario() {
  static const Idempotency scenario;
  return &scenario;
}

}  // namespace faultline::lab
