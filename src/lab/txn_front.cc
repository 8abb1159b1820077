// The distributed-txn scenario's front node: the naive application server, the 2PC coordinator and
// the saga orchestrator (see txn_nodes.h).
//
// 2PC and what Paxos Commit would change. The coordinator here is the textbook one: it logs the
// transfer ("txn/T"), sends PREPARE to both shards, logs its decision ("dec/T") and sends it until
// both acknowledged. A shard that voted YES has a durable PREPARED record and holds its lock; it
// can neither commit (the outcome may be abort) nor abort (the other shard may have committed), so
// when the coordinator crashes after the votes every prepared shard waits, locks held, until the
// coordinator is back and resends (or presumes abort for a transfer it logged no decision for).
// That wait is what the scenario measures (blocked-in-doubt). Cooperative termination would not
// help: both shards are in doubt, neither knows the outcome. 3PC only removes the block under
// fail-stop crashes and accurate timeouts, not partitions.
//
// Paxos Commit (Gray and Lamport, 2006) replaces the single coordinator's decision log by one
// Paxos consensus instance per participant's vote, run by 2F+1 acceptors: each participant sends
// its Prepared/Aborted vote to the acceptors, the transfer commits iff every instance chose
// Prepared, and any of the acceptors (or a new leader) can learn and announce the outcome. With
// F+1 acceptors alive it progresses through F failures, so the crash of one coordinator no longer
// blocks prepared participants; it costs the same stable-storage writes as 2PC and one more
// message delay (or none, with more messages). 2PC is the case F = 0. It is documented, not built:
// the lease/ module's fenced leader plus a replicated decision log would be the ingredients.
#include <utility>

#include "faultline/idempotency/inbox.h"
#include "src/lab/txn_broker.h"
#include "src/lab/txn_nodes.h"

namespace faultline::lab {
namespace {

constexpr uint32_t kNaiveAttempts = 3;  // the naive server retries a timed-out leg, unkeyed
constexpr Duration kDecisionRetry = Duration::Millis(100);

std::string TxnKey(const std::string& t) { return "txn/" + t; }
std::string DecisionKey(const std::string& t) { return "dec/" + t; }
std::string SagaKey(const std::string& t) { return "saga/" + t; }

std::span<const uint8_t> AsSpan(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string EncodeRequest(const TxnRequest& r, const std::string& state) {
  Bytes b;
  ByteWriter w(&b);
  w.Bytes(state);
  w.Bytes(r.transfer);
  w.Bytes(r.from);
  w.Bytes(r.to);
  w.I64(r.amount);
  return std::string(b.begin(), b.end());
}

Status DecodeRequest(const std::string& bytes, TxnRequest* r, std::string* state) {
  ByteReader rd(AsSpan(bytes));
  FL_RETURN_IF_ERROR(rd.Bytes(state, 16));
  FL_RETURN_IF_ERROR(rd.Bytes(&r->transfer, 64));
  FL_RETURN_IF_ERROR(rd.Bytes(&r->from, 64));
  FL_RETURN_IF_ERROR(rd.Bytes(&r->to, 64));
  return rd.I64(&r->amount);
}

TxnLeg Leg(const TxnRequest& r, const std::string& kind) {
  return TxnLeg{kind, r.transfer, kind == "credit" ? r.to : r.from, r.amount};
}

// The saga's command for one leg: to the leg's shard, with the id "cmd/" + the effect id (the
// shard's event for the leg carries the effect id itself).
outbox::Message Command(const TxnLeg& leg) {
  Bytes b;
  ByteWriter w(&b);
  EncodeLeg(w, leg);
  return outbox::Message{"cmd/" + leg.id(), "cmd.s" + std::to_string(ShardOf(leg.account)), leg.transfer,
                         std::string(b.begin(), b.end())};
}

}  // namespace

TxnFrontNode::TxnFrontNode(Env& env, TxnNodeContext ctx) : TxnNodeBase(env, ctx) {}

TxnFrontNode::~TxnFrontNode() = default;

void TxnFrontNode::Start() {
  OpenStore();
  switch (ctx_.design) {
    case TxnDesign::kNaive:
      return;
    case TxnDesign::kTwoPhase:
      env_.Spawn(Recover2pc());
      return;
    case TxnDesign::kHardened:
      inbox_ = idempotency::Inbox::Create(*store_, env_.clock(), "orchestrator").value();
      env_.Spawn(RelayLoop());
      env_.Spawn(
          ConsumeLoop("orch", [this](const outbox::Delivery& d) { return HandleReply(d); }));
      return;
  }
}

void TxnFrontNode::Submit(TxnRequest request, std::function<void()> accepted) {
  switch (ctx_.design) {
    case TxnDesign::kNaive:
      ctx_.obs->starts.push_back(
          TxnStart{request.transfer, request.from, request.to, request.amount, Now()});
      accepted();
      env_.Spawn(RunNaive(std::move(request)));
      return;
    case TxnDesign::kTwoPhase: {
      const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
        return txn.Put(TxnKey(request.transfer), EncodeRequest(request, "begun"));
      });
      if (!s.ok()) return;
      ctx_.obs->starts.push_back(
          TxnStart{request.transfer, request.from, request.to, request.amount, Now()});
      accepted();
      env_.Spawn(RunTwoPhase(std::move(request)));
      return;
    }
    case TxnDesign::kHardened: {
      bool started = false;
      if (!StartSaga(request, &started).ok()) return;
      if (started) {
        ctx_.obs->starts.push_back(
            TxnStart{request.transfer, request.from, request.to, request.amount, Now()});
      }
      accepted();
      return;
    }
  }
}

// One leg over Rpc: true applied, false refused; an error when every attempt failed.
Task<Result<bool>> TxnFrontNode::CallLeg(uint16_t method, const TxnLeg& leg, uint32_t attempts) {
  Bytes req;
  ByteWriter w(&req);
  EncodeLeg(w, leg);
  Status last = UnavailableError("no attempt");
  for (uint32_t i = 0; i < attempts; ++i) {
    if (i > 0) ++ctx_.obs->counters.retries;
    Result<Bytes> reply =
        co_await rpc_.Call(NodeId(ShardOf(leg.account)), method, req, kTxnRpcTimeout);
    if (reply.ok() && reply->size() == 1) co_return (*reply)[0] != 0;
    last = reply.ok() ? DataLossError("malformed vote") : reply.status();
  }
  co_return last;
}

// naive: debit, credit, and on a refused credit a refund, each a call the server retries when it
// times out (without a key: a retry of a leg that did apply applies it again). Nothing is durable
// here: a crash of the server abandons the transfer wherever it was.
Task<void> TxnFrontNode::RunNaive(TxnRequest request) {
  Result<bool> debit = co_await CallLeg(kNaiveLeg, Leg(request, "debit"), kNaiveAttempts);
  if (!debit.ok()) co_return;
  if (*debit) {
    if (co_await Crashing()) co_return;
    Result<bool> credit = co_await CallLeg(kNaiveLeg, Leg(request, "credit"), kNaiveAttempts);
    if (!credit.ok()) co_return;
    if (!*credit) {
      Result<bool> refund = co_await CallLeg(kNaiveLeg, Leg(request, "refund"), kNaiveAttempts);
      if (!refund.ok()) co_return;
    }
  }
  ctx_.obs->ends.push_back(TxnEnd{request.transfer, Now()});
}

// 2PC: PREPARE both legs (a failed call counts as NO), log the decision, send it until acked.
Task<void> TxnFrontNode::RunTwoPhase(TxnRequest request) {
  Result<bool> a = co_await CallLeg(kPrepare, Leg(request, "debit"), 1);
  Result<bool> b = co_await CallLeg(kPrepare, Leg(request, "credit"), 1);
  const bool commit = a.ok() && *a && b.ok() && *b;
  if (commit && co_await Crashing(TxnCrashPoints::Point::kCoordinatorAfterPrepare)) co_return;
  const Status logged = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
    return txn.Put(DecisionKey(request.transfer), commit ? "commit" : "abort");
  });
  if (!logged.ok()) co_return;  // recovery presumes abort
  if (co_await Crashing()) co_return;
  co_await SendDecision(request.transfer, commit);
}

Task<void> TxnFrontNode::SendDecision(std::string transfer, bool commit) {
  Bytes req;
  ByteWriter w(&req);
  w.Bytes(transfer);
  w.U8(commit ? 1 : 0);
  bool acked[kTxnShards] = {false, false};
  while (!acked[0] || !acked[1]) {
    for (uint32_t s = 0; s < kTxnShards; ++s) {
      if (acked[s]) continue;
      Result<Bytes> reply = co_await rpc_.Call(NodeId(s), kDecide, req, kTxnRpcTimeout);
      acked[s] = reply.ok();
    }
    if (acked[0] && acked[1]) break;
    ++ctx_.obs->counters.retries;
    if (!(co_await Sleep(env_.executor(), kDecisionRetry)).ok()) co_return;
  }
  const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
    FL_RETURN_IF_ERROR(txn.Delete(TxnKey(transfer)).status());
    return txn.Delete(DecisionKey(transfer)).status();
  });
  if (s.ok()) ctx_.obs->ends.push_back(TxnEnd{transfer, Now()});
}

// After a restart: every logged transfer gets its decision again; one without a logged decision
// is aborted (presumed abort: nobody can have been told to commit it).
Task<void> TxnFrontNode::Recover2pc() {
  Result<std::unique_ptr<Transaction>> txn = store_->Begin();
  FL_ASSERT(txn.ok());
  Result<std::vector<KeyValue>> begun = (*txn)->Scan("txn/", "txn0", 100000);
  Result<std::vector<KeyValue>> decided = (*txn)->Scan("dec/", "dec0", 100000);
  FL_ASSERT(begun.ok() && decided.ok());
  (*txn)->Rollback();
  std::map<std::string, bool> decisions;
  for (const KeyValue& d : *decided) decisions[d.key.substr(4)] = d.value == "commit";
  for (const KeyValue& b : *begun) {
    const std::string transfer = b.key.substr(4);
    auto it = decisions.find(transfer);
    const bool commit = it != decisions.end() && it->second;
    if (it == decisions.end()) {
      const Status s = RunInTransaction(*store_, [&](Transaction& t) -> Status {
        return t.Put(DecisionKey(transfer), "abort");
      });
      if (!s.ok()) continue;
    }
    env_.Spawn(SendDecision(transfer, commit));
  }
  co_return;
}

// ---- the saga orchestrator ----
//
// A transfer is a saga of two steps: debit the payer's shard (compensation: refund), then credit
// the payee's shard (no compensation: it is the last step). The saga state and the next command
// commit in one local transaction with the outbox row (Append), and every reply is consumed
// through an inbox in one transaction with the state change and the next command, so no step is
// lost or taken twice across crashes of the orchestrator, the relays, the shards or the broker.
// Commands never time out here: the broker delivers every command at least once and the shard's
// inbox makes the leg apply once, so a step that was sent will be answered; the refund is
// registered (as the saga state "debit") before the debit command is sent, and runs only after a
// refused credit.

Status TxnFrontNode::StartSaga(const TxnRequest& request, bool* started) {
  return RunInTransaction(*store_, [&](Transaction& txn) -> Status {
    FL_ASSIGN_OR_RETURN(*started,
                        txn.InsertIfAbsent(SagaKey(request.transfer),
                                           EncodeRequest(request, "debit")));
    if (!*started) return Status::Ok();  // a client's retry of a started transfer
    return outbox_->Append(txn, Command(Leg(request, "debit")));
  });
}

Status TxnFrontNode::AdvanceSaga(Transaction& txn, const std::string& transfer,
                                 const std::string& kind, bool ok, bool* ended) {
  *ended = false;
  FL_ASSIGN_OR_RETURN(std::optional<std::string> row, txn.Get(SagaKey(transfer)));
  if (!row.has_value()) return DataLossError("reply for an unknown saga");
  TxnRequest request;
  std::string state;
  FL_RETURN_IF_ERROR(DecodeRequest(*row, &request, &state));
  if (state != kind) return Status::Ok();  // a reply the saga has moved past
  std::string next;
  if (kind == "debit") {
    next = ok ? "credit" : "refused";
  } else if (kind == "credit") {
    next = ok ? "completed" : "refund";
  } else {
    FL_ASSERT(kind == "refund");
    next = "compensated";
  }
  FL_RETURN_IF_ERROR(txn.Put(SagaKey(transfer), EncodeRequest(request, next)));
  if (next == "credit" || next == "refund") {
    return outbox_->Append(txn, Command(Leg(request, next)));
  }
  *ended = true;
  return Status::Ok();
}

Task<bool> TxnFrontNode::HandleReply(const outbox::Delivery& d) {
  const std::string& id = d.message.id;
  const size_t slash = id.find('/');
  if (slash == std::string::npos) co_return true;  // poison: drop
  const std::string transfer = id.substr(0, slash), kind = id.substr(slash + 1);
  bool ended = false;
  Result<bool> fresh = inbox_->Process(id, [&](Transaction& txn) -> Status {
    return AdvanceSaga(txn, transfer, kind, d.message.payload == "ok", &ended);
  });
  if (!fresh.ok()) co_return false;
  if (!*fresh) ++ctx_.obs->counters.inbox_duplicates;
  if (*fresh && ended) ctx_.obs->ends.push_back(TxnEnd{transfer, Now()});
  if (co_await Crashing()) co_return false;
  co_return true;
}

}  // namespace faultline::lab
