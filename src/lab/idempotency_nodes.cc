// The idempotency scenario's payments database and card network: see idempotency_nodes.h.
#include "src/lab/idempotency_nodes.h"

#include <optional>
#include <utility>

#include "faultline/env/task.h"
#include "faultline/idempotency/idempotency_keys.h"
#include "faultline/idempotency/inbox.h"

namespace faultline::lab {
namespace {

constexpr std::string_view kInboxConsumer = "charges";  // the consumer group

Bytes Empty() { return Bytes{}; }

std::string LedgerKey(std::string_view payment) { return "ledger/" + std::string(payment); }

}  // namespace

// ---- the payments database ----

DbNode::DbNode(Env& env, IdempotencyObservations* obs) : env_(env), rpc_(env), obs_(obs) {
  rpc_.Handle(kDbNaiveLookup,
              [this](NodeId, std::span<const uint8_t> r) { return NaiveLookup(r); });
  rpc_.Handle(kDbNaiveMark, [this](NodeId, std::span<const uint8_t> r) { return NaiveMark(r); });
  rpc_.Handle(kDbClaim, [this](NodeId, std::span<const uint8_t> r) { return Claim(r); });
  rpc_.Handle(kDbCreate, [this](NodeId, std::span<const uint8_t> r) { return Create(r); });
  rpc_.Handle(kDbComplete, [this](NodeId, std::span<const uint8_t> r) { return Complete(r); });
  rpc_.Handle(kDbInbox, [this](NodeId, std::span<const uint8_t> r) { return InboxCommit(r); });
}

DbNode::~DbNode() = default;

void DbNode::Start() {
  auto store = LogStore::Open(env_.disk(), LogStoreOptions{});
  FL_ASSERT_MSG(store.ok(), store.status().ToString().c_str());
  store_ = std::move(store).value();
  auto keys = idempotency::IdempotencyKeys::Create(*store_, env_.clock());
  FL_ASSERT_MSG(keys.ok(), keys.status().ToString().c_str());
  keys_ = std::move(keys).value();
  auto inbox = idempotency::Inbox::Create(*store_, env_.clock(), std::string(kInboxConsumer));
  FL_ASSERT_MSG(inbox.ok(), inbox.status().ToString().c_str());
  inbox_ = std::move(inbox).value();
}

Result<Bytes> DbNode::NaiveLookup(std::span<const uint8_t> request) {
  ByteReader r(request);
  std::string key;
  FL_RETURN_IF_ERROR(ReadField(r, &key));
  std::optional<std::string> stored;
  const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
    FL_ASSIGN_OR_RETURN(stored, txn.Get("naive/" + key));
    return Status::Ok();
  });
  FL_RETURN_IF_ERROR(s);
  Bytes out;
  ByteWriter w(&out);
  w.U8(stored.has_value() ? 1 : 0);
  w.Bytes(stored.value_or(""));
  return out;
}

Result<Bytes> DbNode::NaiveMark(std::span<const uint8_t> request) {
  ByteReader r(request);
  std::string key, payment, charge, response;
  FL_RETURN_IF_ERROR(ReadField(r, &key));
  FL_RETURN_IF_ERROR(ReadField(r, &payment));
  FL_RETURN_IF_ERROR(ReadField(r, &charge));
  FL_RETURN_IF_ERROR(ReadField(r, &response));
  const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
    FL_RETURN_IF_ERROR(txn.Put("naive/" + key, response));
    return txn.Put(LedgerKey(payment), charge);
  });
  FL_RETURN_IF_ERROR(s);
  return Empty();
}

Result<Bytes> DbNode::Claim(std::span<const uint8_t> request) {
  ByteReader r(request);
  std::string scope, key, canonical;
  FL_RETURN_IF_ERROR(ReadField(r, &scope));
  FL_RETURN_IF_ERROR(ReadField(r, &key));
  FL_RETURN_IF_ERROR(ReadField(r, &canonical));
  FL_ASSIGN_OR_RETURN(idempotency::Claim claim,
                      keys_->Acquire(scope, key, idempotency::FingerprintOf(canonical),
                                     kClaimLease));
  if (claim.state == idempotency::ClaimState::kClaimed && claim.attempt > 1) {
    ++obs_->counters.takeovers;
  }
  Bytes out;
  ByteWriter w(&out);
  w.U8(static_cast<uint8_t>(claim.state));
  w.U64(claim.attempt);
  w.Bytes(claim.recovery_point);
  w.Bytes(claim.response);
  return out;
}

Result<Bytes> DbNode::Create(std::span<const uint8_t> request) {
  ByteReader r(request);
  std::string scope, key, payment;
  uint64_t attempt = 0;
  int64_t amount = 0;
  FL_RETURN_IF_ERROR(ReadField(r, &scope));
  FL_RETURN_IF_ERROR(ReadField(r, &key));
  FL_RETURN_IF_ERROR(r.U64(&attempt));
  FL_RETURN_IF_ERROR(ReadField(r, &payment));
  FL_RETURN_IF_ERROR(r.I64(&amount));
  const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
    FL_RETURN_IF_ERROR(txn.Put("payment/" + payment, std::to_string(amount)));
    return keys_->Checkpoint(txn, scope, key, attempt, "created", kClaimLease);
  });
  if (s.code() == StatusCode::kFencedOut) ++obs_->counters.fenced;
  FL_RETURN_IF_ERROR(s);
  return Empty();
}

Result<Bytes> DbNode::Complete(std::span<const uint8_t> request) {
  ByteReader r(request);
  std::string scope, key, payment, charge, response;
  uint64_t attempt = 0;
  FL_RETURN_IF_ERROR(ReadField(r, &scope));
  FL_RETURN_IF_ERROR(ReadField(r, &key));
  FL_RETURN_IF_ERROR(r.U64(&attempt));
  FL_RETURN_IF_ERROR(ReadField(r, &payment));
  FL_RETURN_IF_ERROR(ReadField(r, &charge));
  FL_RETURN_IF_ERROR(ReadField(r, &response));
  // The ledger entry and the stored response commit together, or neither does.
  const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
    FL_RETURN_IF_ERROR(txn.Put(LedgerKey(payment), charge));
    return keys_->Complete(txn, scope, key, attempt, response);
  });
  if (s.code() == StatusCode::kFencedOut) ++obs_->counters.fenced;
  FL_RETURN_IF_ERROR(s);
  return Empty();
}

Result<Bytes> DbNode::InboxCommit(std::span<const uint8_t> request) {
  ByteReader r(request);
  std::string message_id, payment, charge;
  FL_RETURN_IF_ERROR(ReadField(r, &message_id));
  FL_RETURN_IF_ERROR(ReadField(r, &payment));
  FL_RETURN_IF_ERROR(ReadField(r, &charge));
  bool applied = false;
  const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
    FL_ASSIGN_OR_RETURN(applied, inbox_->Record(txn, message_id));
    if (!applied) return Status::Ok();  // a redelivery: the first delivery's commit stands
    return txn.Put(LedgerKey(payment), charge);
  });
  FL_RETURN_IF_ERROR(s);
  Bytes out;
  ByteWriter(&out).U8(applied ? 1 : 0);
  return out;
}

// ---- the card network ----

ProviderNode::ProviderNode(Env& env, const TrueTime* true_time, IdempotencyObservations* obs)
    : env_(env), rpc_(env), true_time_(true_time), obs_(obs) {
  rpc_.HandleAsync(kProviderCharge, [this](NodeId from, Bytes request, MonoTime) {
    return Charge(from, std::move(request));
  });
}

Duration ProviderNode::Latency() {
  Rng& rng = env_.random();
  // Mostly quick; one charge in five is slow: longer than ack-wait and the clients' timeout.
  if (rng.Chance(Ratio::Percent(20))) {
    return rng.Range(Duration::Millis(250), Duration::Millis(900));
  }
  return rng.Exponential(Duration::Millis(15));
}

Task<Result<Bytes>> ProviderNode::Charge(NodeId from, Bytes request) {
  ByteReader r(request);
  std::string payment, key;
  int64_t amount = 0;
  if (!ReadField(r, &payment).ok() || !r.I64(&amount).ok() || !ReadField(r, &key).ok() ||
      !r.empty()) {
    co_return InvalidArgumentError("malformed charge");
  }
  const std::string fingerprint = payment + "/" + std::to_string(amount);
  std::string charge_id;
  auto it = key.empty() ? keyed_.end() : keyed_.find(key);
  if (it != keyed_.end()) {
    // Stripe's rule: the same key replays the first result; another request under it is an error.
    if (it->second.request != fingerprint) {
      co_return InvalidArgumentError("idempotency key reused with a different request");
    }
    charge_id = it->second.charge_id;
  } else {
    charge_id = "ch" + std::to_string(++next_charge_);
    obs_->charges.push_back(
        ProviderCharge{payment, charge_id, amount, true_time_->NowNs(), from.value(), key});
    if (!key.empty()) keyed_[key] = Keyed{fingerprint, charge_id};
  }
  const Status slept = co_await Sleep(env_.executor(), Latency());
  if (!slept.ok()) co_return slept;
  Bytes out;
  ByteWriter(&out).Bytes(charge_id);
  co_return out;
}

}  // namespace faultline::lab
