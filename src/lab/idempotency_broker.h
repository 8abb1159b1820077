// Internal: a simulated at-least-once message broker with NATS JetStream's pull-consumer semantics,
// for the `idempotency` scenario. It lives in src/lab/ rather than sim/ because only this scenario
// uses it so far; its wire protocol is the scenario's, not a public one.
//
// One stream, one consumer group. Consumers Fetch over Rpc; a fetched message is in flight with a
// deadline of ack-wait on the broker's monotonic clock. Then:
//   - an Ack of the message (any delivery of it) settles it for good. As in JetStream, acks name
//     the message (the stream sequence), not the delivery: an ack arriving after ack-wait is still
//     accepted, and consumer A's late ack settles the redelivery consumer B is working on
//     (nats-server #4786). The broker cannot fence; consumers must.
//   - a Nak makes it available again at once;
//   - no ack within ack-wait: the next Fetch, from any consumer, redelivers it (a redelivery while
//     the first consumer may still be working);
//   - with probability `duplicate`, a Fetch delivers a message that is in flight to ANOTHER
//     consumer and still within its ack-wait (a duplicate delivery, as after a broker failover).
// Deliveries are numbered 1, 2, ... per message; there is no max-deliver.
//
// Durability: the stream lives in a LogStore on the broker's disk — each publish, each delivery
// count and each ack is committed (synced) before the broker answers — so a crash loses no
// acknowledged publish or ack. A restart reloads the stream; every message in flight at the crash
// becomes available at once (a redelivery to whoever fetches next). Publishes are deduplicated by
// message id (JetStream's Nats-Msg-Id, with a duplicate window as long as the stream).
// Network faults on its links apply too: a lost fetch reply or a lost ack becomes a redelivery.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/random.h"
#include "faultline/core/time.h"
#include "faultline/env/rpc.h"
#include "faultline/env/node.h"
#include "faultline/store/log_store.h"
#include "src/lab/idempotency_observations.h"

namespace faultline::lab {

// Rpc methods served by the broker.
inline constexpr uint16_t kBrokerFetch = 40;  // request: empty; reply: u8 has, then a delivery
inline constexpr uint16_t kBrokerAck = 41;    // request: u64 seq, u32 delivery; reply: empty
inline constexpr uint16_t kBrokerNak = 42;    // request: u64 seq, u32 delivery; reply: empty

struct BrokerMessage {
  std::string id;
  std::string payment;
  int64_t amount = 0;
};

struct BrokerDelivery {
  uint64_t seq = 0;
  uint32_t delivery = 0;
  BrokerMessage message;
};

Bytes EncodeDelivery(const BrokerDelivery& d);
// kDataLoss for a malformed reply.
Result<BrokerDelivery> DecodeDelivery(std::span<const uint8_t> bytes);

struct BrokerOptions {
  Duration ack_wait = Duration::Seconds(30);
  Ratio duplicate = Ratio::Zero();
};

class BrokerNode final : public Node {
 public:
  // `world` and `obs` must outlive the node; accepted acks go to obs->acks, delivery counts to
  // obs->counters.
  BrokerNode(Env& env, const TrueTime* true_time, IdempotencyObservations* obs, BrokerOptions options);

  void Start() override;

  // Appends a message to the stream (called on the broker's executor). Ok when the message is in
  // the stream, now or already (a duplicate publish); the store's error otherwise.
  Status Publish(BrokerMessage message);

 private:
  enum class State : uint8_t { kReady, kInFlight, kAcked };
  struct Entry {
    BrokerMessage message;
    State state = State::kReady;
    MonoTime deadline;
    uint32_t deliveries = 0;
    uint32_t consumer = 0;
  };

  Result<Bytes> Fetch(NodeId from);
  Result<Bytes> Settle(NodeId from, std::span<const uint8_t> request, bool ack);
  // The first message to deliver to `from` now, or entries_.size() when none.
  size_t Pick(NodeId from, MonoTime now);
  // Commits entries_[i]'s durable part (message, deliveries, acked).
  Status Persist(size_t i);

  Env& env_;
  Rpc rpc_;
  const TrueTime* true_time_;
  IdempotencyObservations* obs_;
  BrokerOptions options_;
  std::unique_ptr<LogStore> store_;
  std::vector<Entry> entries_;  // index = seq - 1
  std::map<std::string, size_t> by_id_;  // message id -> index, for publish deduplication
  size_t first_open_ = 0;       // every entry before it is acked
};

}  // namespace faultline::lab
