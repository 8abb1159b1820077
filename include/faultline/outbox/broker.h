// File: faultline/outbox/broker.h
//
// The broker seam: what the outbox relay publishes to and what a consumer (inbox) fetches from.
// Implementations: the embedded SQLite-backed queue (outbox/sqlite_queue.h, the default: nothing
// to install), NATS JetStream through libnats (adapters/nats_broker.h), and the simulator's
// at-least-once broker (the lab's distributed-txn scenario, over Rpc).
//
// Contract, shared by every implementation (the broker conformance suite checks it):
//   - At least once. A message whose Publish returned ok is delivered to every durable consumer
//     at least once, across crashes and restarts of the broker and of the consumer. Duplicates
//     happen (a redelivery after ack-wait, a republish after a relay crash); the consumer absorbs
//     them with an inbox keyed by Message::id.
//   - De-duplication on publish. Publishing a message whose id the broker already holds (within
//     its duplicate window; JetStream's Nats-Msg-Id) succeeds and stores nothing new. The window is
//     finite on JetStream (duplicate_window, default 2 min): the inbox, not the broker, is the last
//     line of defence.
//   - Order. Messages published by one Publisher are stored in publish order; a Fetch returns
//     first deliveries in stored order. A redelivery (after Nak or ack-wait) comes later than
//     messages stored after it, so per-key order across redeliveries is the consumer's to keep
//     (the inbox plus a per-key sequence, or processing one key at a time).
//   - Acks name the message, not the delivery: a late ack from a consumer whose ack-wait ran out
//     still settles the message (nats-server #4786). Consumers needing more must fence.
//
// Thread safety: a Publisher and a Consumer are each used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/core/time.h"

namespace faultline::outbox {

// One event. `id` is the outbox id, the broker's message id (de-duplication) and the inbox key
// downstream, all the same bytes.
struct Message {
  std::string id;       // non-empty, at most 255 bytes
  std::string subject;  // where it is routed (a JetStream subject; a queue name); non-empty
  std::string key;      // ordering key (the aggregate id): order is kept per key
  std::string payload;  // opaque; size limits are the implementation's (kInvalidArgument over it)
  friend bool operator==(const Message&, const Message&) = default;
};

// A delivered message. `stream_seq` is the broker's sequence of the stored message (the same for
// every delivery of it); `delivery` counts deliveries of it, 1 for the first.
struct Delivery {
  Message message;
  uint64_t stream_seq = 0;
  uint32_t delivery = 0;
};

class Publisher {
 public:
  virtual ~Publisher() = default;
  // Publishes `batch` in order and returns ok only once the broker has durably accepted every
  // message of it (an ack from the broker, a duplicate ack included). On an error some prefix may
  // have been accepted: the caller republishes the whole batch (duplicates are absorbed).
  // Errors: kInvalidArgument for a malformed message (nothing of the batch is sent),
  // kUnavailable when the broker cannot be reached or refused, kDeadlineExceeded when acks did not
  // arrive in time.
  virtual Status Publish(std::span<const Message> batch) = 0;
};

class Consumer {
 public:
  virtual ~Consumer() = default;
  // Up to `max` deliveries, waiting at most `wait` for the first one; an empty vector when none
  // arrived. kUnavailable when the broker cannot be reached.
  virtual Result<std::vector<Delivery>> Fetch(size_t max, Duration wait) = 0;
  // Settles the message for good (after its effects committed).
  virtual Status Ack(const Delivery& delivery) = 0;
  // Makes it available for redelivery at once (the handler failed and did not commit).
  virtual Status Nak(const Delivery& delivery) = 0;
};

class Broker {
 public:
  virtual ~Broker() = default;
  virtual Result<std::unique_ptr<Publisher>> NewPublisher() = 0;
  // A durable consumer named `durable` over messages whose subject starts with `subject_prefix`
  // (empty: all). Created on first use; a consumer opened again with the same name resumes where
  // the last one left off (unacked messages are redelivered).
  virtual Result<std::unique_ptr<Consumer>> NewConsumer(std::string_view durable,
                                                        std::string_view subject_prefix) = 0;
};

// Checks a message against the contract's limits (id 1..255 bytes, non-empty subject, payload at
// most `payload_bytes_max`). kInvalidArgument with the offending field named.
Status ValidateMessage(const Message& message, size_t payload_bytes_max);

}  // namespace faultline::outbox
