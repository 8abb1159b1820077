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
#include <algorithm>
#include <map>
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

// A saga command's id: the same for every attempt of one step's forward or compensation.
std::string CommandId(const std::string& forward_key, const std::string& kind) {
  return "cmd/" + forward_key + "/" + kind;
}
// Written with the command's outbox row: the command is durably on its way.
std::string SentKey(const std::string& command_id) { return "sent/" + command_id; }

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
  return TxnLeg{kind, r.transfer, kind == "credit" || kind == "uncredit" ? r.to : r.from, r.amount,
                ""};
}

// The saga's command for one leg: to the leg's shard, with the id "cmd/" + forward key + "/" +
// kind, the same for every attempt of the step (the shard's event for the leg carries the effect
// id "T7/debit" itself).
outbox::Message Command(const TxnLeg& leg) {
  Bytes b;
  ByteWriter w(&b);
  EncodeLeg(w, leg);
  return outbox::Message{CommandId(leg.forward_key, leg.kind), "cmd.s" + std::to_string(ShardOf(leg.account)), leg.transfer,
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
    case TxnDesign::kHardened: {
      auto sagas = saga::SagaLog::Create(*store_, env_.clock());
      FL_ASSERT_MSG(sagas.ok(), sagas.status().ToString().c_str());
      sagas_ = std::move(sagas).value();
      env_.Spawn(RecoverSagas());
      env_.Spawn(RelayLoop());
      env_.Spawn(
          ConsumeLoop("orch", [this](const outbox::Delivery& d) { return HandleReply(d); }));
      return;
    }
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
        env_.Spawn(Drive(request.transfer));
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
    const Status slept = co_await Sleep(env_.executor(), kDecisionRetry);
    if (!slept.ok()) co_return;
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
// A transfer is a saga (saga/saga_log.h) of two steps: 0 debits the payer (compensation: refund),
// 1 credits the payee (compensation: uncredit, which only ever runs when a credit that timed out
// may have applied). SagaLog::Next arms a step (persists "started", the compensation armed before
// the forward goes out) and the driver appends the step's command to the outbox; a relay publishes
// it; the shard applies it through its inbox and participant guard and emits the reply event from
// its own outbox in the same transaction; the reply comes back here and RecordForward /
// RecordCompensation moves the saga on. A refused step (no funds, a frozen payee) is a definite
// failure: the log compensates from that step down, in reverse.
//
// Replies need no inbox here: a duplicate reply finds the saga past that step and
// RecordForward/RecordCompensation refuses it with kFailedPrecondition, changing nothing.
// Commands do not time out: the broker delivers each at least once and the shard's inbox applies
// it once, so every armed step is answered. A crash between Next and the append is covered by
// recovery: after a restart every unfinished saga is driven again, Next re-arms the started step
// (a crash counts as an attempt) and the command goes out again under the same id; after
// forward_attempts_max attempts the log gives the step up and compensates it, and the guard makes
// that safe whether or not the forward had applied.

namespace {

constexpr std::string_view kSagaType = "transfer";
constexpr uint32_t kSagaSteps = 2;

const char* LegKind(uint32_t step, bool compensation) {
  if (step == 0) return compensation ? "refund" : "debit";
  return compensation ? "uncredit" : "credit";
}

}  // namespace

Status TxnFrontNode::StartSaga(const TxnRequest& request, bool* started) {
  *started = false;
  Result<saga::SagaState> existing = sagas_->Get(request.transfer);
  if (existing.ok()) return Status::Ok();  // a client's retry of a started transfer
  if (existing.status().code() != StatusCode::kNotFound) return existing.status();
  FL_RETURN_IF_ERROR(
      sagas_->Start(kSagaType, request.transfer, kSagaSteps, EncodeRequest(request, "")));
  *started = true;
  return Status::Ok();
}

Task<void> TxnFrontNode::Drive(std::string transfer) {
  Result<saga::Action> action = sagas_->Next(transfer);
  if (!action.ok()) co_return;  // a store error: the next restart's recovery drives it again
  switch (action->kind) {
    case saga::Action::kForward:
    case saga::Action::kCompensate: {
      Result<saga::SagaState> state = sagas_->Get(transfer);
      TxnRequest request;
      std::string unused;
      if (!state.ok() || !DecodeRequest(state->data, &request, &unused).ok()) {
        (void)sagas_->Park(transfer, "saga data does not decode");
        co_return;
      }
      // Armed, not yet sent: a crash here is recovered by re-arming after the restart.
      if (co_await Crashing()) co_return;
      TxnLeg leg =
          Leg(request, LegKind(action->step, action->kind == saga::Action::kCompensate));
      leg.forward_key = action->forward_key;
      const outbox::Message command = Command(leg);
      (void)RunInTransaction(*store_, [&](Transaction& txn) -> Status {
        FL_RETURN_IF_ERROR(outbox_->Append(txn, command).status());
        return txn.Put(SentKey(command.id), "1");
      });
      co_return;
    }
    case saga::Action::kWait: {
      const Duration wait = action->not_before - env_.clock().WallNow();
      (void)co_await Sleep(env_.executor(), std::max(wait, Duration::Millis(1)));
      env_.Spawn(Drive(transfer));
      co_return;
    }
    case saga::Action::kDone:
    case saga::Action::kCompensated:
      ctx_.obs->ends.push_back(TxnEnd{transfer, Now()});
      co_return;
    case saga::Action::kParked:
      co_return;  // reported by the checker as stuck
  }
}

// After a restart: drive every unfinished saga whose armed step's command was not sent yet (or
// that has no armed step). A step whose command committed to the outbox is left alone: the command
// is durably on its way and its reply will come; re-arming it would count an attempt for a call
// that was not lost, and a node that restarts often (each restart re-arming every saga in flight)
// would give up healthy steps.
Task<void> TxnFrontNode::RecoverSagas() {
  Result<std::vector<std::string>> unfinished = sagas_->Unfinished();
  if (!unfinished.ok()) co_return;
  for (const std::string& id : *unfinished) {
    Result<saga::SagaState> state = sagas_->Get(id);
    if (state.ok() && state->started) {
      const bool compensating = state->phase == saga::Phase::kCompensating;
      const std::string command = CommandId(saga::ForwardKey(id, state->cursor),
                                            LegKind(state->cursor, compensating));
      Result<std::unique_ptr<Transaction>> txn = store_->Begin();
      if (!txn.ok()) co_return;
      Result<std::optional<std::string>> sent = (*txn)->Get(SentKey(command));
      (*txn)->Rollback();
      if (sent.ok() && sent->has_value()) continue;
    }
    env_.Spawn(Drive(id));
  }
}

Task<bool> TxnFrontNode::HandleReply(const outbox::Delivery& d) {
  const std::string& id = d.message.id;
  const size_t slash = id.find('/');
  if (slash == std::string::npos) co_return true;  // poison: drop
  const std::string transfer = id.substr(0, slash), kind = id.substr(slash + 1);
  const bool compensation = kind == "refund" || kind == "uncredit";
  const uint32_t step = kind == "debit" || kind == "refund" ? 0 : 1;
  const Status outcome =
      d.message.payload == "ok" ? Status::Ok() : FailedPreconditionError("leg refused");
  const Status recorded = compensation ? sagas_->RecordCompensation(transfer, step, outcome)
                                       : sagas_->RecordForward(transfer, step, outcome);
  if (recorded.code() == StatusCode::kFailedPrecondition) {
    ++ctx_.obs->counters.inbox_duplicates;  // stale or duplicate: nothing changed
  } else if (!recorded.ok()) {
    co_return false;  // redelivered after ack-wait
  } else {
    env_.Spawn(Drive(transfer));
  }
  if (co_await Crashing()) co_return false;
  co_return true;
}

}  // namespace faultline::lab
