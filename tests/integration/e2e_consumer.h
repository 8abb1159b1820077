// The consuming service of the outbox end-to-end tests (outbox_nats_e2e_test.cc): fetches from a
// durable NatsBroker consumer and applies each event through the inbox (idempotency/inbox.h) on a
// LocalStore, recording what it saw so that the test can judge delivery, duplication and order.
//
// An event's payload carries its key's sequence number n (1, 2, ... in commit order). Applying
// event n of key k, in one transaction: the inbox record of its id; "applied/<k>" = n;
// "log/<id>" = its stream sequence (InsertIfAbsent: a second insert is a double application). A
// delivery whose n is ahead of its key's next one is rolled back and left unacked (it comes back
// after ack_wait, by then behind the one it waited for): per-key order across redeliveries is the
// consumer's to keep (outbox/broker.h).
#pragma once

#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/adapters/nats_broker.h"
#include "faultline/core/status.h"
#include "faultline/idempotency/inbox.h"
#include "faultline/store/local_store.h"

namespace faultline {

std::string EncodeE2ePayload(int n);

struct E2eReport {
  size_t deliveries = 0;
  size_t redeliveries = 0;  // deliveries with a delivery count > 1
  size_t duplicates = 0;    // deliveries the inbox recognised as already applied
  size_t held_back = 0;     // deliveries ahead of their key's order, left for redelivery
  std::set<std::string> applied_ids;
  std::set<std::string> seen_ids;       // every id ever delivered
  std::vector<std::string> violations;  // each a sentence; empty when every check held
};

struct E2eStoredState {
  size_t applied_rows = 0;             // "log/" rows
  std::map<std::string, int> per_key;  // "applied/<key>" values
};

class E2eConsumer {
 public:
  E2eConsumer(NatsBrokerOptions options, LocalStore& store) : options_(options), store_(store) {}
  Status Init();
  // Fetches and applies until Stop; never gives up on a broker or store that is away.
  void Run();
  void Stop() { stop_.store(true); }
  size_t applied() const { return applied_count_.load(); }
  // After Run returned: the observations, with the per-key stream-order check done.
  E2eReport Report() const;
  Result<E2eStoredState> StoredState();

 private:
  enum class Outcome { kApplied, kDuplicate, kHeldBack, kFailed };
  Outcome Apply(const outbox::Delivery& delivery);
  void Observe(const outbox::Delivery& delivery);

  NatsBrokerOptions options_;
  LocalStore& store_;
  std::unique_ptr<NatsBroker> broker_;
  std::unique_ptr<idempotency::Inbox> inbox_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> applied_count_{0};
  E2eReport report_;
  std::map<std::string, uint64_t> stream_seq_of_;                 // id -> stream sequence
  std::map<std::string, std::map<int, uint64_t>> applied_order_;  // key -> n -> stream sequence
};

}  // namespace faultline
