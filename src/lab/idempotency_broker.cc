// The idempotency scenario's at-least-once broker: see idempotency_broker.h.
#include "src/lab/idempotency_broker.h"

#include <cstdio>
#include <string_view>
#include <utility>

#include "faultline/core/bytes.h"

namespace faultline::lab {

Bytes EncodeDelivery(const BrokerDelivery& d) {
  Bytes out;
  ByteWriter w(&out);
  w.U64(d.seq);
  w.U32(d.delivery);
  w.Bytes(d.message.id);
  w.Bytes(d.message.payment);
  w.I64(d.message.amount);
  return out;
}

Result<BrokerDelivery> DecodeDelivery(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  BrokerDelivery d;
  FL_RETURN_IF_ERROR(r.U64(&d.seq));
  FL_RETURN_IF_ERROR(r.U32(&d.delivery));
  FL_RETURN_IF_ERROR(r.Bytes(&d.message.id, 255));
  FL_RETURN_IF_ERROR(r.Bytes(&d.message.payment, 255));
  FL_RETURN_IF_ERROR(r.I64(&d.message.amount));
  if (!r.empty()) return DataLossError("trailing bytes after a delivery");
  return d;
}

BrokerNode::BrokerNode(Env& env, const TrueTime* true_time, IdempotencyObservations* obs,
                       BrokerOptions options)
    : env_(env), rpc_(env), true_time_(true_time), obs_(obs), options_(options) {
  rpc_.Handle(kBrokerFetch, [this](NodeId from, std::span<const uint8_t>) { return Fetch(from); });
  rpc_.Handle(kBrokerAck, [this](NodeId from, std::span<const uint8_t> req) {
    return Settle(from, req, /*ack=*/true);
  });
  rpc_.Handle(kBrokerNak, [this](NodeId from, std::span<const uint8_t> req) {
    return Settle(from, req, /*ack=*/false);
  });
}

namespace {

constexpr std::string_view kEntryPrefix = "m/";

std::string EntryKey(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "m/%016zx", i);
  return buf;
}

}  // namespace

void BrokerNode::Start() {
  auto store = LogStore::Open(env_.disk(), LogStoreOptions{});
  FL_ASSERT_MSG(store.ok(), store.status().ToString().c_str());
  store_ = std::move(store).value();
  auto txn = store_->Begin();
  FL_ASSERT(txn.ok());
  auto rows = (*txn)->Scan(kEntryPrefix, "m0", 100000);
  FL_ASSERT_MSG(rows.ok(), rows.status().ToString().c_str());
  (*txn)->Rollback();
  for (const KeyValue& row : *rows) {
    ByteReader r(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(row.value.data()),
                                          row.value.size()));
    Entry e;
    uint8_t acked = 0;
    const bool decoded =
        r.U8(&acked).ok() && r.U32(&e.deliveries).ok() && r.Bytes(&e.message.id, 255).ok() &&
        r.Bytes(&e.message.payment, 255).ok() && r.I64(&e.message.amount).ok() && r.empty();
    FL_ASSERT_MSG(decoded, "broker entry does not decode");
    FL_ASSERT(row.key == EntryKey(entries_.size()));
    // A message in flight at the crash is available again at once.
    e.state = acked != 0 ? State::kAcked : State::kReady;
    by_id_[e.message.id] = entries_.size();
    entries_.push_back(std::move(e));
  }
  while (first_open_ < entries_.size() && entries_[first_open_].state == State::kAcked) {
    ++first_open_;
  }
}

Status BrokerNode::Persist(size_t i) {
  const Entry& e = entries_[i];
  Bytes value;
  ByteWriter w(&value);
  w.U8(e.state == State::kAcked ? 1 : 0);
  w.U32(e.deliveries);
  w.Bytes(e.message.id);
  w.Bytes(e.message.payment);
  w.I64(e.message.amount);
  const std::string v(value.begin(), value.end());
  return RunInTransaction(*store_, [&](Transaction& txn) { return txn.Put(EntryKey(i), v); });
}

Status BrokerNode::Publish(BrokerMessage message) {
  if (by_id_.count(message.id) != 0) return Status::Ok();  // a duplicate publish
  Entry e;
  e.message = std::move(message);
  entries_.push_back(std::move(e));
  const Status s = Persist(entries_.size() - 1);
  if (!s.ok()) {
    entries_.pop_back();
    return s;
  }
  by_id_[entries_.back().message.id] = entries_.size() - 1;
  ++obs_->counters.messages_published;
  return s;
}

size_t BrokerNode::Pick(NodeId from, MonoTime now) {
  // A duplicate delivery: a message in flight to another consumer, still within its ack-wait.
  if (env_.random().Chance(options_.duplicate)) {
    for (size_t i = first_open_; i < entries_.size(); ++i) {
      const Entry& e = entries_[i];
      if (e.state == State::kInFlight && e.consumer != from.value() && now < e.deadline) {
        ++obs_->counters.duplicate_deliveries;
        return i;
      }
    }
  }
  for (size_t i = first_open_; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    if (e.state == State::kReady || (e.state == State::kInFlight && e.deadline <= now)) return i;
  }
  return entries_.size();
}

Result<Bytes> BrokerNode::Fetch(NodeId from) {
  const MonoTime now = env_.clock().Now();
  const size_t i = Pick(from, now);
  Bytes out;
  if (i == entries_.size()) {
    ByteWriter(&out).U8(0);
    return out;
  }
  Entry& e = entries_[i];
  const Entry before = e;
  e.state = State::kInFlight;
  e.deadline = now + options_.ack_wait;
  e.consumer = from.value();
  ++e.deliveries;
  const Status persisted = Persist(i);
  if (!persisted.ok()) {
    e = before;
    return persisted;
  }
  if (e.deliveries > 1) ++obs_->counters.redeliveries;
  ByteWriter(&out).U8(1);
  const Bytes d = EncodeDelivery(BrokerDelivery{i + 1, e.deliveries, e.message});
  out.insert(out.end(), d.begin(), d.end());
  return out;
}

Result<Bytes> BrokerNode::Settle(NodeId from, std::span<const uint8_t> request, bool ack) {
  ByteReader r(request);
  uint64_t seq = 0;
  uint32_t delivery = 0;
  if (!r.U64(&seq).ok() || !r.U32(&delivery).ok() || !r.empty() || seq == 0 ||
      seq > entries_.size()) {
    return InvalidArgumentError("malformed ack");
  }
  Entry& e = entries_[seq - 1];
  if (e.state == State::kAcked) return Bytes{};  // settled already: acks are idempotent
  if (!ack) {
    // A nak from a superseded delivery must not pull the message from its current consumer.
    if (delivery == e.deliveries) e.state = State::kReady;
    return Bytes{};
  }
  // JetStream accepts the ack whichever delivery it names (nats-server #4786).
  const State before = e.state;
  e.state = State::kAcked;
  const Status persisted = Persist(seq - 1);
  if (!persisted.ok()) {
    e.state = before;
    return persisted;
  }
  if (delivery != e.deliveries) ++obs_->counters.late_acks;
  obs_->acks.push_back(BrokerAck{e.message.id, e.message.payment, from.value(), delivery,
                                 e.deliveries, true_time_->NowNs()});
  while (first_open_ < entries_.size() && entries_[first_open_].state == State::kAcked) {
    ++first_open_;
  }
  return Bytes{};
}

}  // namespace faultline::lab
