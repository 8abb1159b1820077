// The distributed-txn scenario's shared node base, shards and ledger: see txn_nodes.h.
#include "src/lab/txn_nodes.h"

#include <cstdlib>
#include <utility>

#include "faultline/idempotency/inbox.h"
#include "src/lab/txn_broker.h"

namespace faultline::lab {
namespace {

constexpr size_t kRelayBatch = 32;
constexpr Duration kRelayIdle = Duration::Millis(10);
constexpr Duration kFetchIdle = Duration::Millis(10);
constexpr Duration kBrokerTimeout = Duration::Millis(100);

std::string BalanceKey(const std::string& account) { return "bal/" + account; }
std::string PreparedKey(const std::string& transfer) { return "prep/" + transfer; }
std::string LockKey(const std::string& account) { return "lock/" + account; }

std::span<const uint8_t> AsSpan(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::unique_ptr<idempotency::Inbox> MakeInbox(LocalStore& store, Clock& clock,
                                              const std::string& consumer) {
  auto inbox = idempotency::Inbox::Create(store, clock, consumer);
  FL_ASSERT_MSG(inbox.ok(), inbox.status().ToString().c_str());
  return std::move(inbox).value();
}

}  // namespace

void EncodeLeg(ByteWriter& w, const TxnLeg& leg) {
  w.Bytes(leg.kind);
  w.Bytes(leg.transfer);
  w.Bytes(leg.account);
  w.I64(leg.amount);
  w.Bytes(leg.forward_key);
}

Status DecodeLeg(ByteReader& r, TxnLeg* leg) {
  FL_RETURN_IF_ERROR(r.Bytes(&leg->kind, 16));
  FL_RETURN_IF_ERROR(r.Bytes(&leg->transfer, 64));
  FL_RETURN_IF_ERROR(r.Bytes(&leg->account, 64));
  FL_RETURN_IF_ERROR(r.I64(&leg->amount));
  return r.Bytes(&leg->forward_key, 255);
}

uint32_t ShardOf(const std::string& account) {
  FL_ASSERT(account.size() > 1 && account[0] == 's');
  return static_cast<uint32_t>(account[1] - '0');
}

// ---- the base ----

void TxnNodeBase::OpenStore() {
  auto store = LogStore::Open(env_.disk(), LogStoreOptions{});
  FL_ASSERT_MSG(store.ok(), store.status().ToString().c_str());
  store_ = std::move(store).value();
  auto ob = outbox::Outbox::Create(*store_);
  FL_ASSERT_MSG(ob.ok(), ob.status().ToString().c_str());
  outbox_ = std::move(ob).value();
  // One relay per node, unfenced: the node is its only process, so it is a singleton by
  // construction (a deployment with standby relays would pass the lease/ module's token).
  auto relay = outbox::Relay::Create(*store_);
  FL_ASSERT_MSG(relay.ok(), relay.status().ToString().c_str());
  relay_ = std::move(relay).value();
}

Task<bool> TxnNodeBase::Crashing(TxnCrashPoints::Point point) {
  if (!ctx_.crash->CrashHere(env_.self(), point)) co_return false;
  (void)co_await Sleep(env_.executor(), Duration::Millis(1));
  co_return true;
}

Task<void> TxnNodeBase::RelayLoop() {
  while (true) {
    Result<std::vector<outbox::OutboxRecord>> batch = relay_->Poll(kRelayBatch);
    if (!batch.ok() || batch->empty()) {
      const Status slept = co_await Sleep(env_.executor(), kRelayIdle);
      if (!slept.ok()) co_return;
      continue;
    }
    std::vector<outbox::Message> messages;
    for (const outbox::OutboxRecord& rec : *batch) messages.push_back(rec.message);
    Result<Bytes> published = co_await rpc_.Call(NodeId(kTxnBroker), kTxnPublish,
                                                  EncodeBatch(messages), kBrokerTimeout);
    if (!published.ok()) {
      ctx_.obs->counters.relay_republished += static_cast<int64_t>(messages.size());
      const Status slept = co_await Sleep(env_.executor(), kRelayIdle);
      if (!slept.ok()) co_return;
      continue;  // republish the same batch: the broker de-duplicates by id
    }
    // The relay's crash point: published, not yet marked.
    if (co_await Crashing()) co_return;
    (void)relay_->MarkPublished(*batch);
  }
}

Task<void> TxnNodeBase::ConsumeLoop(std::string name,
                                    std::function<Task<bool>(const outbox::Delivery&)> handle) {
  Bytes fetch;
  ByteWriter(&fetch).Bytes(name);
  while (true) {
    Result<Bytes> reply = co_await rpc_.Call(NodeId(kTxnBroker), kTxnFetch, fetch, kBrokerTimeout);
    Result<std::vector<outbox::Delivery>> got =
        reply.ok() ? DecodeFetch(*reply) : Result<std::vector<outbox::Delivery>>(reply.status());
    if (!got.ok() || got->empty()) {
      const Status slept = co_await Sleep(env_.executor(), kFetchIdle);
      if (!slept.ok()) co_return;
      continue;
    }
    const outbox::Delivery d = (*got)[0];
    if (!co_await handle(d)) continue;  // not settled: the broker redelivers after ack-wait
    Bytes ack;
    ByteWriter w(&ack);
    w.Bytes(name);
    w.U64(d.stream_seq);
    (void)co_await rpc_.Call(NodeId(kTxnBroker), kTxnAck, ack, kBrokerTimeout);
  }
}

// ---- a shard ----

TxnShardNode::TxnShardNode(Env& env, TxnNodeContext ctx, uint32_t shard)
    : TxnNodeBase(env, ctx), shard_(shard) {
  rpc_.HandleAsync(kNaiveLeg, [this](NodeId, Bytes request, MonoTime) {
    return NaiveLeg(std::move(request));
  });
  rpc_.Handle(kPrepare, [this](NodeId, std::span<const uint8_t> r) { return Prepare(r); });
  rpc_.Handle(kDecide, [this](NodeId, std::span<const uint8_t> r) { return Decide(r); });
}

TxnShardNode::~TxnShardNode() = default;

void TxnShardNode::Start() {
  OpenStore();
  const std::string prefix = "s" + std::to_string(shard_) + "/";
  const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
    for (uint32_t a = 0; a < kTxnAccounts; ++a) {
      FL_RETURN_IF_ERROR(
          txn.InsertIfAbsent(BalanceKey(prefix + "a" + std::to_string(a)),
                             std::to_string(kTxnOpening)).status());
    }
    return txn.InsertIfAbsent(BalanceKey(prefix + "frozen"), "0").status();
  });
  FL_ASSERT_MSG(s.ok(), s.ToString().c_str());
  if (ctx_.design == TxnDesign::kNaive) return;
  env_.Spawn(RelayLoop());
  if (ctx_.design == TxnDesign::kHardened) {
    inbox_ = MakeInbox(*store_, env_.clock(), "shard" + std::to_string(shard_));
    env_.Spawn(ConsumeLoop("s" + std::to_string(shard_),
                           [this](const outbox::Delivery& d) { return HandleCommand(d); }));
  }
}

Result<int64_t> TxnShardNode::Total() {
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, store_->Begin());
  FL_ASSIGN_OR_RETURN(std::vector<KeyValue> rows, txn->Scan("bal/", "bal0", 100));
  txn->Rollback();
  int64_t total = 0;
  for (const KeyValue& row : rows) total += std::strtoll(row.value.c_str(), nullptr, 10);
  return total;
}

Result<bool> TxnShardNode::CanApply(Transaction& txn, const TxnLeg& leg) {
  FL_ASSIGN_OR_RETURN(std::optional<std::string> bal, txn.Get(BalanceKey(leg.account)));
  if (!bal.has_value()) return NotFoundError("no such account");
  const int64_t balance = std::strtoll(bal->c_str(), nullptr, 10);
  if (leg.kind == "debit") return balance >= leg.amount;
  if (leg.kind == "credit") return !leg.account.ends_with("/frozen");
  return true;
}

Result<bool> TxnShardNode::ApplyLeg(Transaction& txn, const TxnLeg& leg, int64_t* delta) {
  *delta = 0;
  FL_ASSIGN_OR_RETURN(bool can, CanApply(txn, leg));
  if (!can) return false;
  FL_ASSIGN_OR_RETURN(std::optional<std::string> bal, txn.Get(BalanceKey(leg.account)));
  const int64_t balance = std::strtoll(bal->c_str(), nullptr, 10);
  *delta = leg.kind == "debit" || leg.kind == "uncredit" ? -leg.amount : leg.amount;
  FL_RETURN_IF_ERROR(txn.Put(BalanceKey(leg.account), std::to_string(balance + *delta)));
  return true;
}

void TxnShardNode::RecordEffect(const TxnLeg& leg, bool applied, int64_t delta) {
  ctx_.obs->effects.push_back(
      TxnEffect{leg.id(), leg.transfer, leg.account, delta, applied, shard_, Now()});
}

// naive: the leg and its event are two separate writes. The event is published while the local
// transaction is open, then the transaction commits: a publish that fails is logged and dropped
// (the effect commits without its event: lost), and a crash or a serialization abort after the
// publish rolls back an effect whose event is out (phantom).
Task<Result<Bytes>> TxnShardNode::NaiveLeg(Bytes request) {
  ByteReader r(request);
  TxnLeg leg;
  if (!DecodeLeg(r, &leg).ok()) co_return InvalidArgumentError("malformed leg");
  Result<std::unique_ptr<Transaction>> txn = store_->Begin();
  if (!txn.ok()) co_return txn.status();
  int64_t delta = 0;
  Result<bool> applied = ApplyLeg(**txn, leg, &delta);
  if (!applied.ok()) co_return applied.status();
  std::vector<outbox::Message> event(1);
  event[0].id = leg.id();
  event[0].subject = "evt.leg";
  event[0].key = leg.transfer;
  event[0].payload = *applied ? "ok" : "refused";
  const Bytes batch = EncodeBatch(event);
  (void)co_await rpc_.Call(NodeId(kTxnBroker), kTxnPublish, batch, Duration::Millis(100));
  if (co_await Crashing()) co_return UnavailableError("crashing");
  const Status committed = (*txn)->Commit();
  if (!committed.ok()) co_return committed;
  RecordEffect(leg, *applied, delta);
  Bytes out;
  ByteWriter(&out).U8(*applied ? 1 : 0);
  co_return out;
}

// 2PC PREPARE: lock the account and check the leg can apply, durably, then vote. Once it voted
// YES the shard may neither commit nor abort on its own: only the coordinator's decision releases
// the lock, however long that takes.
Result<Bytes> TxnShardNode::Prepare(std::span<const uint8_t> request) {
  ByteReader r(request);
  TxnLeg leg;
  FL_RETURN_IF_ERROR(DecodeLeg(r, &leg));
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, store_->Begin());
  FL_ASSIGN_OR_RETURN(std::optional<std::string> prepared, txn->Get(PreparedKey(leg.transfer)));
  bool yes = prepared.has_value();  // a repeated PREPARE gets the same vote
  if (!yes) {
    FL_ASSIGN_OR_RETURN(std::optional<std::string> lock, txn->Get(LockKey(leg.account)));
    if (!lock.has_value()) {
      FL_ASSIGN_OR_RETURN(yes, CanApply(*txn, leg));
    }
    if (yes) {
      FL_RETURN_IF_ERROR(txn->Put(PreparedKey(leg.transfer),
                                  std::string(request.begin(), request.end())));
      FL_RETURN_IF_ERROR(txn->Put(LockKey(leg.account), leg.transfer));
      FL_RETURN_IF_ERROR(txn->Commit());
      ctx_.obs->locks.push_back(TxnLock{leg.transfer, leg.account, shard_, Now(), kTxnNever});
    } else {
      ++ctx_.obs->counters.votes_no;
    }
  }
  Bytes out;
  ByteWriter(&out).U8(yes ? 1 : 0);
  return out;
}

// 2PC decision: apply (commit) or drop (abort) the prepared leg, release the lock, and emit the
// leg's event through the outbox, all in one local transaction. A repeated decision is a no-op.
Result<Bytes> TxnShardNode::Decide(std::span<const uint8_t> request) {
  ByteReader r(request);
  std::string transfer;
  uint8_t commit = 0;
  FL_RETURN_IF_ERROR(r.Bytes(&transfer, 64));
  FL_RETURN_IF_ERROR(r.U8(&commit));
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, store_->Begin());
  FL_ASSIGN_OR_RETURN(std::optional<std::string> prepared, txn->Get(PreparedKey(transfer)));
  if (!prepared.has_value()) return Bytes{};
  TxnLeg leg;
  ByteReader lr(AsSpan(*prepared));
  FL_RETURN_IF_ERROR(DecodeLeg(lr, &leg));
  int64_t delta = 0;
  bool applied = false;
  if (commit != 0) {
    FL_ASSIGN_OR_RETURN(applied, ApplyLeg(*txn, leg, &delta));
    FL_ASSERT_MSG(applied, "a prepared leg must apply: its account was locked");
    FL_RETURN_IF_ERROR(
        outbox_->Append(*txn, outbox::Message{leg.id(), "evt.leg", leg.transfer, "ok"})
            .status());
  }
  FL_RETURN_IF_ERROR(txn->Delete(PreparedKey(transfer)).status());
  FL_RETURN_IF_ERROR(txn->Delete(LockKey(leg.account)).status());
  FL_RETURN_IF_ERROR(txn->Commit());
  if (applied) RecordEffect(leg, true, delta);
  for (TxnLock& l : ctx_.obs->locks) {
    if (l.transfer == transfer && l.shard == shard_ && l.released_ns == kTxnNever) {
      l.released_ns = Now();
    }
  }
  return Bytes{};
}

// hardened: a command from the saga. The inbox record, the participant guard's record, the leg
// and the leg's event (the reply to the orchestrator) commit in one local transaction; the ack
// follows the commit, so a crash anywhere redelivers the command and the inbox absorbs the copy.
// The guard (saga/participant.h) applies each forward at most once, each compensation at most once,
// and refuses a forward that arrives after its compensation (the tombstone rule): a step the saga
// gave up and compensated never applies late.
Status TxnShardNode::CommandTxn(Transaction& txn, const std::string& message_id, const TxnLeg& leg,
                                bool* fresh, bool* applied, int64_t* delta) {
  *applied = false;
  *delta = 0;
  FL_ASSIGN_OR_RETURN(*fresh, inbox_->Record(txn, message_id));
  if (!*fresh) return Status::Ok();
  const bool compensation = leg.kind == "refund" || leg.kind == "uncredit";
  bool ok = true;
  if (compensation) {
    FL_ASSIGN_OR_RETURN(saga::GuardVerdict v, guard_.ApplyCompensation(txn, leg.forward_key));
    if (v == saga::GuardVerdict::kApply) {
      FL_ASSIGN_OR_RETURN(*applied, ApplyLeg(txn, leg, delta));
    }
  } else {
    FL_ASSIGN_OR_RETURN(saga::GuardVerdict v, guard_.ApplyForward(txn, leg.forward_key));
    ok = v != saga::GuardVerdict::kRefused;
    if (v == saga::GuardVerdict::kApply) {
      FL_ASSIGN_OR_RETURN(*applied, ApplyLeg(txn, leg, delta));
      // Refused by the business rule: roll back, so that no guard record says "applied".
      if (!*applied) return FailedPreconditionError("leg refused");
    }
  }
  return outbox_->Append(txn, outbox::Message{leg.id(), "evt.leg", leg.transfer,
                                              ok ? "ok" : "refused"})
      .status();
}

Task<bool> TxnShardNode::HandleCommand(const outbox::Delivery& d) {
  TxnLeg leg;
  ByteReader r(AsSpan(d.message.payload));
  if (!DecodeLeg(r, &leg).ok() || "cmd/" + leg.forward_key + "/" + leg.kind != d.message.id) {
    co_return true;  // poison: drop
  }
  bool fresh = false, applied = false;
  int64_t delta = 0;
  Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
    return CommandTxn(txn, d.message.id, leg, &fresh, &applied, &delta);
  });
  if (s.code() == StatusCode::kFailedPrecondition) {
    // The refusal: the inbox record and the "refused" reply, nothing else.
    s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
      FL_ASSIGN_OR_RETURN(fresh, inbox_->Record(txn, d.message.id));
      if (!fresh) return Status::Ok();
      return outbox_->Append(txn, outbox::Message{leg.id(), "evt.leg", leg.transfer, "refused"})
          .status();
    });
    applied = false;
    delta = 0;
  }
  if (!s.ok()) co_return false;
  if (fresh) RecordEffect(leg, applied, delta);
  if (!fresh) ++ctx_.obs->counters.inbox_duplicates;
  if (co_await Crashing()) co_return false;
  co_return true;
}

// ---- the ledger ----

TxnLedgerNode::TxnLedgerNode(Env& env, TxnNodeContext ctx) : TxnNodeBase(env, ctx) {}

TxnLedgerNode::~TxnLedgerNode() = default;

void TxnLedgerNode::Start() {
  OpenStore();
  if (ctx_.design != TxnDesign::kNaive) inbox_ = MakeInbox(*store_, env_.clock(), "ledger");
  env_.Spawn(
      ConsumeLoop("ledger", [this](const outbox::Delivery& d) { return HandleEvent(d); }));
}

// The ledger books every leg event. With an inbox the booking and the record commit together;
// without one (naive) every delivery is booked.
Task<bool> TxnLedgerNode::HandleEvent(const outbox::Delivery& d) {
  bool applied = true;
  const std::string key = "book/" + d.message.id;
  if (inbox_ != nullptr) {
    Result<bool> r = inbox_->Process(d.message.id, [&](Transaction& txn) -> Status {
      return txn.Put(key, d.message.payload);
    });
    if (!r.ok()) co_return false;
    applied = *r;
    if (!applied) ++ctx_.obs->counters.inbox_duplicates;
  } else {
    const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
      return txn.Put(key, d.message.payload);
    });
    if (!s.ok()) co_return false;
  }
  ctx_.obs->consumed.push_back(TxnConsumed{d.message.id, applied, Now()});
  if (co_await Crashing()) co_return false;
  co_return true;
}

}  // namespace faultline::lab
