// File: faultline/adapters/nats_broker.h
//
// NatsBroker: the outbox broker seam (outbox/broker.h) on NATS JetStream through libnats. Link
// faultline::nats_broker (the only module that links libnats).
//
// Mapping. One JetStream stream (options.stream, created when absent: file storage, limits
// retention, duplicate_window as its Duplicates window) captures options.subject_namespace + ">".
// A Message is published to subject_namespace + Message::subject with the headers
//   Nats-Msg-Id:   Message::id      (JetStream's de-duplication key)
//   Faultline-Key: Message::key
// both percent-encoded (bytes outside 0x21..0x7E and '%' become %XX, so any bytes survive a
// header line; the encoding is injective, so de-duplication is by id), and the payload as the
// message data. A delivery carries them back decoded, JetStream's stream sequence and its
// delivery count (NumDelivered from the message's metadata). A stored message without a
// Nats-Msg-Id (published by something else) is delivered with the id "js:" + stream sequence.
// A stream that exists with other subjects or another duplicate window is kFailedPrecondition:
// NatsBroker does not silently reconfigure what someone else created.
//
// Publisher. js_PublishMsgAsync for each message of the batch, at most publish_pending_max acks
// outstanding (jsOptions.PublishAsync.MaxPending; a full window stalls the publisher up to
// publish_ack_timeout), then waits for every ack (js_PublishAsyncComplete). Publish returns ok
// only when every message of the batch was acked by the stream, a duplicate ack included.
// Otherwise: kInvalidArgument (nothing sent) for a malformed message; kUnavailable when the server
// is unreachable, went away, or refused a message (the first refusal's text in the message);
// kDeadlineExceeded when some ack did not arrive within publish_ack_timeout. After an error the
// acks still outstanding are abandoned; republishing the batch is safe (de-duplication within
// duplicate_window, then the inbox).
//
// Order. One connection per Publisher and no automatic reconnect: messages of one Publisher reach
// the server in publish order, and a connection that breaks loses a suffix, never a message in the
// middle. The one way a batch can be stored out of order is the server refusing message k of a
// batch and storing k+1 (a per-message refusal, e.g. a store limit hit and freed in between);
// Publish then fails and the republished k lands after k+1. The inbox plus a per-key sequence
// (or a consumer that checks it) is what keeps per-key order downstream across such a case and
// across redeliveries.
//
// Consumer. A durable pull consumer (explicit acks, ack_wait, consumer_ack_pending_max) on the
// stream, filtered to subject_namespace + the token-aligned part of the subject prefix (the prefix
// up to and including its last '.'); a delivery whose subject does not start with the full prefix
// is acked and skipped here (a durable consumer's acks are its own: other consumers still see
// it). Fetch is natsSubscription_Fetch; Ack is natsMsg_AckSync (waits for the server's
// confirmation); Nak is natsMsg_Nak. The consumer is never unsubscribed (that deletes a durable):
// on close or error its subscription is destroyed and the connection closed, and the server keeps
// the consumer, so the next NewConsumer with the same name resumes where it left off. Ack and Nak
// need the delivery from this Consumer's current connection: after a reconnect (or when more than
// consumer_held_max deliveries are unsettled) they return kFailedPrecondition, and the message is
// redelivered after ack_wait.
//
// Broker gone. Neither side reconnects behind the caller's back: the call that meets a broken or
// refused connection returns kUnavailable (kDeadlineExceeded on timeouts) and drops it; the next
// call connects afresh. Nothing crashes and nothing is reported ok that was not acked.
//
// Durability is the server's. nats-server 2.9 acks a message once it is written to its store
// files, and fsyncs them on a timer, not per message: a killed server (kill -9) loses nothing it
// acked; a power cut or kernel crash can lose acked messages of the last sync interval. See the
// README ("Outbox and sagas in your own service") for what the outbox does about it.
//
// Thread safety: NatsBroker is thread-safe; each Publisher and Consumer owns its own connection
// and is used by one thread at a time. libnats runs its own threads for socket I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/outbox/broker.h"

namespace faultline {

struct NatsBrokerOptions {
  std::string url = "nats://127.0.0.1:4222";  // nats://HOST:PORT (comma-separated list allowed)
  std::string stream = "FAULTLINE_OUTBOX";    // [A-Za-z0-9_-], 1..64 bytes
  // Every Message::subject is published under this prefix; the stream captures prefix + ">".
  // Non-empty NATS tokens ending in '.', e.g. "outbox.".
  std::string subject_namespace = "outbox.";
  Duration duplicate_window = Duration::Seconds(120);  // JetStream's Duplicates; 1 s .. 1 day
  Duration ack_wait = Duration::Seconds(30);           // redelivery of an unacked delivery
  // JetStream MaxAckPending: deliveries a consumer may hold unacked before the server stops
  // delivering to it (a reader that never acks stalls at this many).
  uint32_t consumer_ack_pending_max = 1000000;
  uint32_t publish_pending_max = 4096;  // async publish acks in flight
  Duration publish_ack_timeout = Duration::Seconds(5);
  Duration connect_timeout = Duration::Seconds(2);
  Duration request_timeout = Duration::Seconds(5);  // JetStream API calls, AckSync
  size_t id_bytes_max = 255;
  size_t key_bytes_max = 255;
  size_t subject_bytes_max = 200;
  size_t payload_bytes_max = 512 * 1024;  // below the server's max_payload (1 MB) with headers
  size_t fetch_max = 4096;                // Fetch's `max` is capped here
  size_t consumer_held_max = 65536;       // unsettled deliveries a Consumer keeps for Ack/Nak

  Status Validate() const;
};

class NatsBroker : public outbox::Broker {
 public:
  // Checks the options and reaches the server once: creates the stream when absent, or checks
  // that the existing one has the subjects and duplicate window asked for. kUnavailable when the
  // server cannot be reached (nothing is kept: retry Create).
  static Result<std::unique_ptr<NatsBroker>> Create(NatsBrokerOptions options);

  Result<std::unique_ptr<outbox::Publisher>> NewPublisher() override;
  // `durable`: [A-Za-z0-9_-], 1..64 bytes. `subject_prefix`: printable ASCII, no spaces and no
  // NATS wildcards ('*', '>'), at most subject_bytes_max bytes.
  Result<std::unique_ptr<outbox::Consumer>> NewConsumer(std::string_view durable,
                                                        std::string_view subject_prefix) override;

  const NatsBrokerOptions& options() const { return options_; }

 private:
  explicit NatsBroker(NatsBrokerOptions options) : options_(std::move(options)) {}
  NatsBrokerOptions options_;
};

// Parses "nats://HOST:PORT[?stream=NAME&namespace=PREFIX.]" into options (the rest default).
// kInvalidArgument naming what is wrong.
Result<NatsBrokerOptions> ParseNatsUri(std::string_view uri);

// ParseNatsUri + NatsBroker::Create: the factory for outbox::RegisterBrokerScheme("nats://", ...)
// (outbox/open_broker.h), so that OpenBroker and `faultline bench outbox --broker nats://...`
// reach JetStream.
Result<std::unique_ptr<outbox::Broker>> OpenNatsBroker(std::string_view uri);

}  // namespace faultline
