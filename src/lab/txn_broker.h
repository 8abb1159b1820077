// Internal: the simulated at-least-once broker of the `distributed-txn` scenario, generalised from
// the idempotency scenario's (idempotency_broker.h) to outbox::Message and several durable
// consumers, each over a subject prefix — the contract of faultline/outbox/broker.h over Rpc.
//
//   - Publish (a batch) stores each message once per id (JetStream's Nats-Msg-Id: here the window
//     is the whole stream) and answers only after the store committed, so an ok is durable.
//   - Every durable consumer sees every message whose subject starts with its prefix, at least
//     once: a fetched message is in flight for ack-wait; without an ack by then the next fetch
//     redelivers it; with probability `duplicate` a fetch delivers a message still within its
//     delivery's ack-wait (to whichever consumer fetches: a duplicate, as after a failover). Acks name the message, not the delivery (nats-server #4786).
//   - A crash loses nothing acknowledged: messages and acks live in a LogStore on the broker's
//     disk; after a restart whatever was in flight is delivered again.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/core/random.h"
#include "faultline/env/rpc.h"
#include "faultline/outbox/broker.h"
#include "faultline/env/node.h"
#include "faultline/store/log_store.h"
#include "src/lab/txn_observations.h"

namespace faultline::lab {

inline constexpr uint16_t kTxnPublish = 70;  // u32 n, n messages -> empty
inline constexpr uint16_t kTxnFetch = 71;    // consumer -> u8 has, then a delivery
inline constexpr uint16_t kTxnAck = 72;      // consumer, u64 seq -> empty

void EncodeMessage(ByteWriter& w, const outbox::Message& m);
Status DecodeMessage(ByteReader& r, outbox::Message* m);
Bytes EncodeBatch(const std::vector<outbox::Message>& batch);
Result<std::vector<outbox::Message>> DecodeBatch(std::span<const uint8_t> bytes);
// The reply of kTxnFetch: nullopt-like (has = false) when nothing is ready.
Result<std::vector<outbox::Delivery>> DecodeFetch(std::span<const uint8_t> bytes);

struct TxnConsumerSpec {
  std::string name;
  std::string subject_prefix;
};

struct TxnBrokerOptions {
  Duration ack_wait = Duration::Millis(300);
  Ratio duplicate = Ratio::Percent(3);
  std::vector<TxnConsumerSpec> consumers;
};

class TxnBrokerNode final : public Node {
 public:
  TxnBrokerNode(Env& env, TxnObservations* obs, TxnBrokerOptions options);
  void Start() override;

 private:
  enum class State : uint8_t { kReady, kInFlight, kAcked };
  struct Slot {
    size_t index = 0;  // into messages_
    State state = State::kReady;
    MonoTime deadline;
    uint32_t deliveries = 0;
    uint32_t node = 0;
  };
  struct Durable {
    TxnConsumerSpec spec;
    std::vector<Slot> slots;
    size_t first_open = 0;
  };

  Result<Bytes> Publish(std::span<const uint8_t> request);
  Result<Bytes> Fetch(NodeId from, std::span<const uint8_t> request);
  Result<Bytes> Ack(std::span<const uint8_t> request);
  Durable* Find(const std::string& name);
  void Route(size_t index);  // adds messages_[index] to every matching durable
  size_t Pick(Durable& d, MonoTime now);

  Env& env_;
  Rpc rpc_;
  TxnObservations* obs_;
  TxnBrokerOptions options_;
  std::unique_ptr<LogStore> store_;
  std::vector<outbox::Message> messages_;
  std::map<std::string, size_t> by_id_;
  std::vector<Durable> durables_;
};

}  // namespace faultline::lab
