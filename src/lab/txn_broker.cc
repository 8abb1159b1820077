// The distributed-txn scenario's at-least-once broker: see txn_broker.h.
#include "src/lab/txn_broker.h"

#include <cstdio>
#include <set>
#include <utility>

namespace faultline::lab {
namespace {

constexpr size_t kField = 1024;

std::string MessageKey(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "m/%016zx", i);
  return buf;
}

std::string AckKey(const std::string& consumer, size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "/%016zx", i);
  return "a/" + consumer + buf;
}

std::span<const uint8_t> AsSpan(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

void EncodeMessage(ByteWriter& w, const outbox::Message& m) {
  w.Bytes(m.id);
  w.Bytes(m.subject);
  w.Bytes(m.key);
  w.Bytes(m.payload);
}

Status DecodeMessage(ByteReader& r, outbox::Message* m) {
  FL_RETURN_IF_ERROR(r.Bytes(&m->id, 255));
  FL_RETURN_IF_ERROR(r.Bytes(&m->subject, kField));
  FL_RETURN_IF_ERROR(r.Bytes(&m->key, kField));
  return r.Bytes(&m->payload, kField);
}

Bytes EncodeBatch(const std::vector<outbox::Message>& batch) {
  Bytes out;
  ByteWriter w(&out);
  w.U32(static_cast<uint32_t>(batch.size()));
  for (const outbox::Message& m : batch) EncodeMessage(w, m);
  return out;
}

Result<std::vector<outbox::Message>> DecodeBatch(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  uint32_t n = 0;
  FL_RETURN_IF_ERROR(r.U32(&n));
  if (n > 1024) return InvalidArgumentError("batch too large");
  std::vector<outbox::Message> batch(n);
  for (outbox::Message& m : batch) FL_RETURN_IF_ERROR(DecodeMessage(r, &m));
  if (!r.empty()) return DataLossError("trailing bytes after a batch");
  return batch;
}

Result<std::vector<outbox::Delivery>> DecodeFetch(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  uint8_t has = 0;
  FL_RETURN_IF_ERROR(r.U8(&has));
  std::vector<outbox::Delivery> out;
  if (has == 0) return out;
  outbox::Delivery d;
  FL_RETURN_IF_ERROR(r.U64(&d.stream_seq));
  FL_RETURN_IF_ERROR(r.U32(&d.delivery));
  FL_RETURN_IF_ERROR(DecodeMessage(r, &d.message));
  if (!r.empty()) return DataLossError("trailing bytes after a delivery");
  out.push_back(std::move(d));
  return out;
}

TxnBrokerNode::TxnBrokerNode(Env& env, TxnObservations* obs, TxnBrokerOptions options)
    : env_(env), rpc_(env), obs_(obs), options_(std::move(options)) {
  for (const TxnConsumerSpec& spec : options_.consumers) durables_.push_back(Durable{spec, {}, 0});
  rpc_.Handle(kTxnPublish, [this](NodeId, std::span<const uint8_t> r) { return Publish(r); });
  rpc_.Handle(kTxnFetch,
              [this](NodeId from, std::span<const uint8_t> r) { return Fetch(from, r); });
  rpc_.Handle(kTxnAck, [this](NodeId, std::span<const uint8_t> r) { return Ack(r); });
}

void TxnBrokerNode::Route(size_t index) {
  for (Durable& d : durables_) {
    if (messages_[index].subject.starts_with(d.spec.subject_prefix)) {
      d.slots.push_back(Slot{index, State::kReady, MonoTime(), 0, 0});
    }
  }
}

TxnBrokerNode::Durable* TxnBrokerNode::Find(const std::string& name) {
  for (Durable& d : durables_) {
    if (d.spec.name == name) return &d;
  }
  return nullptr;
}

void TxnBrokerNode::Start() {
  ++obs_->counters.broker_starts;
  auto store = LogStore::Open(env_.disk(), LogStoreOptions{});
  FL_ASSERT_MSG(store.ok(), store.status().ToString().c_str());
  store_ = std::move(store).value();
  auto txn = store_->Begin();
  FL_ASSERT(txn.ok());
  auto rows = (*txn)->Scan("m/", "m0", 100000);
  auto acks = (*txn)->Scan("a/", "a0", 100000);
  FL_ASSERT(rows.ok() && acks.ok());
  (*txn)->Rollback();
  for (const KeyValue& row : *rows) {
    ByteReader r(AsSpan(row.value));
    outbox::Message m;
    FL_ASSERT_MSG(DecodeMessage(r, &m).ok(), "broker message does not decode");
    FL_ASSERT(row.key == MessageKey(messages_.size()));
    by_id_[m.id] = messages_.size();
    messages_.push_back(std::move(m));
    Route(messages_.size() - 1);
  }
  std::set<std::string> acked;
  for (const KeyValue& a : *acks) acked.insert(a.key);
  for (Durable& d : durables_) {
    // A message in flight at the crash is delivered again at once.
    for (Slot& s : d.slots) {
      if (acked.count(AckKey(d.spec.name, s.index)) != 0) s.state = State::kAcked;
    }
    while (d.first_open < d.slots.size() && d.slots[d.first_open].state == State::kAcked) {
      ++d.first_open;
    }
  }
}

Result<Bytes> TxnBrokerNode::Publish(std::span<const uint8_t> request) {
  FL_ASSIGN_OR_RETURN(std::vector<outbox::Message> batch, DecodeBatch(request));
  std::vector<outbox::Message> fresh;
  for (outbox::Message& m : batch) {
    bool dup = by_id_.count(m.id) != 0;
    for (const outbox::Message& f : fresh) dup = dup || f.id == m.id;
    if (dup) {
      ++obs_->counters.publish_duplicates;
      continue;
    }
    fresh.push_back(std::move(m));
  }
  if (fresh.empty()) return Bytes{};
  const Status s = RunInTransaction(*store_, [&](Transaction& txn) -> Status {
    for (size_t i = 0; i < fresh.size(); ++i) {
      Bytes v;
      ByteWriter w(&v);
      EncodeMessage(w, fresh[i]);
      FL_RETURN_IF_ERROR(txn.Put(MessageKey(messages_.size() + i), std::string(v.begin(), v.end())));
    }
    return Status::Ok();
  });
  FL_RETURN_IF_ERROR(s);
  for (outbox::Message& m : fresh) {
    by_id_[m.id] = messages_.size();
    messages_.push_back(std::move(m));
    Route(messages_.size() - 1);
    ++obs_->counters.published;
  }
  return Bytes{};
}

size_t TxnBrokerNode::Pick(Durable& d, MonoTime now) {
  if (env_.random().Chance(options_.duplicate)) {
    for (size_t i = d.first_open; i < d.slots.size(); ++i) {
      const Slot& s = d.slots[i];
      if (s.state == State::kInFlight && now < s.deadline) {
        ++obs_->counters.duplicate_deliveries;
        return i;
      }
    }
  }
  for (size_t i = d.first_open; i < d.slots.size(); ++i) {
    const Slot& s = d.slots[i];
    if (s.state == State::kReady || (s.state == State::kInFlight && s.deadline <= now)) return i;
  }
  return d.slots.size();
}

Result<Bytes> TxnBrokerNode::Fetch(NodeId from, std::span<const uint8_t> request) {
  ByteReader r(request);
  std::string name;
  FL_RETURN_IF_ERROR(r.Bytes(&name, 255));
  Durable* d = Find(name);
  if (d == nullptr) return NotFoundError("unknown durable consumer");
  const MonoTime now = env_.clock().Now();
  const size_t i = Pick(*d, now);
  Bytes out;
  ByteWriter w(&out);
  if (i == d->slots.size()) {
    w.U8(0);
    return out;
  }
  Slot& s = d->slots[i];
  s.state = State::kInFlight;
  s.deadline = now + options_.ack_wait;
  s.node = from.value();
  ++s.deliveries;
  if (s.deliveries > 1) ++obs_->counters.redeliveries;
  w.U8(1);
  w.U64(s.index + 1);
  w.U32(s.deliveries);
  EncodeMessage(w, messages_[s.index]);
  return out;
}

Result<Bytes> TxnBrokerNode::Ack(std::span<const uint8_t> request) {
  ByteReader r(request);
  std::string name;
  uint64_t seq = 0;
  FL_RETURN_IF_ERROR(r.Bytes(&name, 255));
  FL_RETURN_IF_ERROR(r.U64(&seq));
  Durable* d = Find(name);
  if (d == nullptr || seq == 0 || seq > messages_.size()) {
    return InvalidArgumentError("malformed ack");
  }
  for (size_t i = d->first_open; i < d->slots.size(); ++i) {
    Slot& s = d->slots[i];
    if (s.index != seq - 1 || s.state == State::kAcked) continue;
    FL_RETURN_IF_ERROR(RunInTransaction(
        *store_, [&](Transaction& txn) { return txn.Put(AckKey(name, s.index), "1"); }));
    s.state = State::kAcked;
    break;
  }
  while (d->first_open < d->slots.size() && d->slots[d->first_open].state == State::kAcked) {
    ++d->first_open;
  }
  return Bytes{};
}

}  // namespace faultline::lab
