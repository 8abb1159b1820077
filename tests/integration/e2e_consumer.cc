#include "tests/integration/e2e_consumer.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#include "faultline/adapters/system_clock.h"

namespace faultline {
namespace {

Result<int> DecodePayload(std::string_view payload) {
  if (payload.substr(0, 2) != "n=") return DataLossError("payload is not n=<int>");
  return std::atoi(std::string(payload.substr(2)).c_str());
}

}  // namespace

std::string EncodeE2ePayload(int n) { return "n=" + std::to_string(n); }

Status E2eConsumer::Init() {
  FL_ASSIGN_OR_RETURN(broker_, NatsBroker::Create(options_));
  FL_ASSIGN_OR_RETURN(inbox_, idempotency::Inbox::Create(store_, SystemClock::Default(), "e2e"));
  return Status::Ok();
}

void E2eConsumer::Run() {
  std::unique_ptr<outbox::Consumer> consumer;
  while (!stop_.load()) {
    if (consumer == nullptr) {
      auto made = broker_->NewConsumer("e2e", "acct.");
      if (!made.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      consumer = std::move(made).value();
    }
    auto batch = consumer->Fetch(64, Duration::Millis(200));
    if (!batch.ok()) {  // the broker is away: the same consumer reconnects on the next call
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    for (const outbox::Delivery& delivery : batch.value()) {
      Observe(delivery);
      const Outcome outcome = Apply(delivery);
      if (outcome == Outcome::kApplied || outcome == Outcome::kDuplicate) {
        // A failed ack only means a redelivery, which the inbox absorbs.
        consumer->Ack(delivery).IgnoreError();
      }
    }
  }
}

void E2eConsumer::Observe(const outbox::Delivery& delivery) {
  const outbox::Message& m = delivery.message;
  ++report_.deliveries;
  if (delivery.delivery > 1) ++report_.redeliveries;
  report_.seen_ids.insert(m.id);
  if (m.id.substr(0, 3) == "rb-") {
    report_.violations.push_back("delivered an event of a rolled-back transaction: " + m.id);
  }
  auto [it, inserted] = stream_seq_of_.try_emplace(m.id, delivery.stream_seq);
  if (!inserted && it->second != delivery.stream_seq) {
    report_.violations.push_back("event " + m.id + " stored twice, at stream sequences " +
                                 std::to_string(it->second) + " and " +
                                 std::to_string(delivery.stream_seq));
  }
}

E2eConsumer::Outcome E2eConsumer::Apply(const outbox::Delivery& delivery) {
  const outbox::Message& m = delivery.message;
  Result<int> n = DecodePayload(m.payload);
  if (!n.ok()) {
    report_.violations.push_back("undecodable payload of " + m.id);
    return Outcome::kDuplicate;  // settle it: it can never apply
  }
  Outcome outcome = Outcome::kFailed;
  const std::string applied_key = "applied/" + m.key;
  std::vector<std::string> found;  // violations of the attempt that committed
  Status status = RunInTransaction(
      store_,
      [&](Transaction& txn) -> Status {
        found.clear();
        FL_ASSIGN_OR_RETURN(std::optional<std::string> last_text, txn.Get(applied_key));
        const int last = last_text ? std::atoi(last_text->c_str()) : 0;
        if (n.value() > last + 1) {
          outcome = Outcome::kHeldBack;
          return FailedPreconditionError("ahead of its key's order");
        }
        FL_ASSIGN_OR_RETURN(const bool fresh, inbox_->Record(txn, m.id));
        if (!fresh) {
          outcome = Outcome::kDuplicate;
          return Status::Ok();
        }
        if (n.value() <= last) {
          found.push_back("new event " + m.id + " of key " + m.key + " carries n=" +
                          std::to_string(n.value()) + " after n=" + std::to_string(last));
        }
        FL_RETURN_IF_ERROR(txn.Put(applied_key, std::to_string(n.value())));
        FL_ASSIGN_OR_RETURN(const bool inserted,
                            txn.InsertIfAbsent("log/" + m.id, std::to_string(delivery.stream_seq)));
        if (!inserted) found.push_back("event " + m.id + " applied twice");
        outcome = Outcome::kApplied;
        return Status::Ok();
      },
      64);
  if (outcome == Outcome::kHeldBack) {
    ++report_.held_back;
    return outcome;
  }
  if (!status.ok()) return Outcome::kFailed;  // not acked: redelivered
  report_.violations.insert(report_.violations.end(), found.begin(), found.end());
  if (outcome == Outcome::kDuplicate) ++report_.duplicates;
  if (outcome == Outcome::kApplied) {
    report_.applied_ids.insert(m.id);
    applied_order_[m.key][n.value()] = delivery.stream_seq;
    applied_count_.fetch_add(1);
  }
  return outcome;
}

E2eReport E2eConsumer::Report() const {
  E2eReport report = report_;
  for (const auto& [key, by_n] : applied_order_) {
    uint64_t previous = 0;
    for (const auto& [n, seq] : by_n) {
      if (seq <= previous) {
        report.violations.push_back("key " + key + ": event n=" + std::to_string(n) +
                                    " stored at sequence " + std::to_string(seq) +
                                    ", before its predecessor at " + std::to_string(previous));
      }
      previous = seq;
    }
  }
  return report;
}

Result<E2eStoredState> E2eConsumer::StoredState() {
  E2eStoredState state;
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, store_.Begin());
  FL_ASSIGN_OR_RETURN(std::vector<KeyValue> logs, txn->Scan("log/", "log0", 100000));
  state.applied_rows = logs.size();
  FL_ASSIGN_OR_RETURN(std::vector<KeyValue> keys, txn->Scan("applied/", "applied0", 100000));
  for (const KeyValue& kv : keys) {
    state.per_key[kv.key.substr(8)] = std::atoi(kv.value.c_str());
  }
  txn->Rollback();
  return state;
}

}  // namespace faultline
