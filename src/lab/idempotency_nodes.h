// Internal: the `idempotency` scenario's payments database and card network (idempotency_nodes.cc).
//
// The payments database is a node of its own whose LogStore lives on that node's simulated disk,
// so a crash of the database applies the simulator's power-loss semantics to it and a restart
// reopens the store from what survived. Application servers reach it over the network, the way an
// application reaches PostgreSQL: each request names one procedure, which the database runs as ONE
// serializable transaction and commits (durably) before it replies. A reply lost in the network
// therefore leaves the caller not knowing whether the transaction committed — the classic
// ambiguity the hardened design must survive. The procedures are the atomic phases of each design:
//
//   naive     kDbNaiveLookup  read "has this key/message been processed?" and its stored response
//             kDbNaiveMark    store the response and the ledger entry (a separate, later step)
//   hardened  kDbClaim        IdempotencyKeys::Acquire (fingerprint, lease, attempt)
//             kDbCreate       the payment row + Checkpoint("created"), fenced by the attempt
//             kDbComplete     the ledger entry + Complete(response), one transaction, fenced
//             kDbInbox        Inbox::Record + the ledger entry, one transaction
//
// The card network (the payment provider) is the external, non-transactional side effect: it
// applies every charge it is sent, records it in the observations, and answers after a latency
// that is sometimes longer than the broker's ack-wait and the clients' timeout. Like Stripe, it
// honours a provider-side idempotency key when one is sent: a second request with the key gets the
// first charge back (and a different request under the key is refused). It stands for an outside
// company: the scenario never crashes it, but the network to it fails like any other.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/env/node.h"
#include "faultline/store/log_store.h"
#include "src/lab/idempotency_observations.h"

namespace faultline::idempotency {
class IdempotencyKeys;
class Inbox;
}  // namespace faultline::idempotency

namespace faultline::lab {

inline constexpr uint16_t kDbNaiveLookup = 50;  // key -> u8 found, bytes response
inline constexpr uint16_t kDbNaiveMark = 51;    // key, payment, charge, response -> empty
inline constexpr uint16_t kDbClaim = 52;     // scope, key, request -> u8 state, u64 attempt,
                                             // bytes recovery, bytes response
inline constexpr uint16_t kDbCreate = 53;    // scope, key, u64 attempt, payment, i64 amount
inline constexpr uint16_t kDbComplete = 54;  // scope, key, u64 attempt, payment, charge, response
inline constexpr uint16_t kDbInbox = 55;     // message id, payment, charge -> u8 applied
inline constexpr uint16_t kProviderCharge = 60;  // payment, i64 amount, key -> charge id

// The lease of a hardened claim: how long before another server may take an attempt over.
inline constexpr Duration kClaimLease = Duration::Millis(600);

// Reads a length-prefixed string field of at most 1 KiB.
inline Status ReadField(ByteReader& r, std::string* out) { return r.Bytes(out, 1024); }

class DbNode final : public Node {
 public:
  DbNode(Env& env, IdempotencyObservations* obs);
  ~DbNode() override;
  void Start() override;

 private:
  Result<Bytes> NaiveLookup(std::span<const uint8_t> request);
  Result<Bytes> NaiveMark(std::span<const uint8_t> request);
  Result<Bytes> Claim(std::span<const uint8_t> request);
  Result<Bytes> Create(std::span<const uint8_t> request);
  Result<Bytes> Complete(std::span<const uint8_t> request);
  Result<Bytes> InboxCommit(std::span<const uint8_t> request);

  Env& env_;
  Rpc rpc_;
  IdempotencyObservations* obs_;
  std::unique_ptr<LogStore> store_;
  std::unique_ptr<idempotency::IdempotencyKeys> keys_;
  std::unique_ptr<idempotency::Inbox> inbox_;
};

class ProviderNode final : public Node {
 public:
  ProviderNode(Env& env, const TrueTime* true_time, IdempotencyObservations* obs);

 private:
  struct Keyed {
    std::string request;  // payment + amount the key was first used with
    std::string charge_id;
  };
  Task<Result<Bytes>> Charge(NodeId from, Bytes request);
  Duration Latency();

  Env& env_;
  Rpc rpc_;
  const TrueTime* true_time_;
  IdempotencyObservations* obs_;
  std::map<std::string, Keyed> keyed_;  // provider-side idempotency keys
  uint64_t next_charge_ = 0;
};

}  // namespace faultline::lab
