// Internal: the typed observations of the `idempotency` scenario and its checker.
//
// The scenario's nodes and clients append to one IdempotencyObservations while the run goes on; the
// checker (idempotency_checker.cc) reads the structs directly. Nothing here knows which variant
// produced it.
//
//   charges   every charge the card network applied (the external, non-transactional effect), in
//             the order applied: a payment that appears twice was charged twice.
//   answers   every answer a client got to one attempt of a charge request, in the order received.
//             A client retries one logical request under one Idempotency-Key; a key may later be
//             reused with a different request (it must be refused as a mismatch).
//   acks      every ack the broker accepted: the message is never redelivered after it.
//   counters  what the servers and the broker counted (replays, takeovers, redeliveries, ...):
//             reported as metrics, never judged.
#pragma once

#include <cstdint>
#include <string>
#include <vector>


namespace faultline::lab {
struct RunResult;  // faultline/lab/scenario.h: what a checker fills
}  // namespace faultline::lab

namespace faultline::lab {

struct ProviderCharge {
  std::string payment;     // the payment the charge request named (order id)
  std::string charge_id;   // the provider's id for the applied charge
  int64_t amount = 0;
  int64_t time_ns = 0;     // simulated time at which the provider applied it
  uint32_t node = 0;       // the node that sent the charge request
  std::string provider_key;  // the provider-side idempotency key sent ("" = none)
};

enum class ClientAnswerKind : uint8_t {
  kCharged,     // 200: the body names the charge
  kMismatch,    // 422: the key was used with a different request
  kInProgress,  // 409: another attempt holds the key; retry later
  kError,       // 500: the server failed; the charge may or may not have happened
  kTimeout,     // no answer within the client's timeout
  kRefused,     // the server was down (connection refused)
};
const char* ClientAnswerKindName(ClientAnswerKind kind);

struct ClientAnswer {
  uint32_t client = 0;
  std::string key;          // the Idempotency-Key
  std::string request;      // the canonical request (method, path, body): its fingerprint source
  std::string payment;      // the payment the request asks to charge
  int64_t first_invoke_ns = 0;  // when the client first sent this request (all attempts share it)
  int64_t time_ns = 0;          // when this answer arrived
  uint32_t attempt = 0;         // 1, 2, ...: the client's attempt number for this request
  uint32_t server = 0;
  ClientAnswerKind kind = ClientAnswerKind::kError;
  std::string body;  // kCharged: the response body, compared byte for byte across retries
};

struct BrokerAck {
  std::string message_id;
  std::string payment;
  uint32_t consumer = 0;       // the node whose ack the broker accepted
  uint32_t ack_delivery = 0;   // the delivery the ack named
  uint32_t deliveries = 0;     // deliveries of the message when the ack arrived
  int64_t time_ns = 0;
};

struct IdempotencyCounters {
  int64_t replays = 0;               // server answers replayed from a stored response
  int64_t takeovers = 0;             // claims that took over an expired attempt
  int64_t fenced = 0;                // server phases refused because a successor took over
  int64_t redeliveries = 0;          // broker deliveries after the first of a message
  int64_t duplicate_deliveries = 0;  // of those, deliveries while another was within ack-wait
  int64_t late_acks = 0;             // acks naming a delivery that had been superseded
  int64_t crashes_aimed = 0;         // crashes injected between the phases of a charge
  int64_t pauses_aimed = 0;          // consumer pauses longer than ack-wait
  int64_t broker_crashes = 0;
  int64_t messages_published = 0;
};

struct IdempotencyObservations {
  std::vector<ProviderCharge> charges;
  std::vector<ClientAnswer> answers;
  std::vector<BrokerAck> acks;
  IdempotencyCounters counters;
};

// Judges the observations. Violations:
//   double-charge          a payment charged more than once at the provider (count: extra charges)
//   lost-charge            a payment acknowledged to a client (200 to its first request under the
//                          key) or whose message the broker saw acked, with no charge at the
//                          provider
//   response-differs       two 200 answers to retries of one request under one key whose bodies
//                          differ (count: answers differing from the first)
//   key-reuse-not-reported a request that reused a key first used with a different request got a
//                          200 instead of a 422 mismatch, after the first request was known to be
//                          recorded (it got a 200 or a 409, or its payment was charged)
//   false-mismatch         the first request under a key refused as a mismatch
// Metrics: charges, double_charges, lost_charges, replays, mismatches, takeovers, redeliveries and
// the other counters.
void CheckIdempotency(const IdempotencyObservations& obs, RunResult* result);

}  // namespace faultline::lab
