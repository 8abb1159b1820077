// File: faultline/idempotency/inbox.h
//
// The idempotent consumer (inbox): a message broker delivers at least once (redelivery after
// ack-wait, after a consumer crash, duplicates), so the consumer records (consumer, message_id) in
// the same local transaction as the handler's effects. A redelivered message finds its record and
// commits nothing; the consumer then acks it. Eventuate's received_messages and MassTransit's
// InboxState are the models; the lesson of eventuate-tram-core PR #145 is the rule here: the record
// and the effects commit in ONE transaction, never two.
//
// Retention must be at least the broker's redelivery horizon (ack-wait × max-deliver, plus the
// longest a publisher may retry): a duplicate arriving after its record expired is applied again.
// Expire() deletes records older than the retention.
//
// Keys: the record is prefix + consumer + '\0' + message_id, value u8 version (1) + i64 expires_at
// ns; the expiry index is prefix + "\x7f" + consumer + '\0' + big-endian(expires_at XOR 2^63) +
// message_id, written in the same transaction. A record still present is a duplicate, even past its
// expires_at (Expire has not run yet): the safe side.
//
// Errors: kInvalidArgument for an empty consumer or message id, or one over its limit (255 bytes),
// or a consumer with bytes outside printable ASCII 0x20..0x7E (it delimits keys); kDataLoss for an
// index entry that does not decode; the store's errors otherwise. Thread safety: immutable after
// Create.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"
#include "faultline/store/local_store.h"

namespace faultline::idempotency {

struct InboxOptions {
  // LocalStore keys used: prefix + consumer + '\0' + message_id.
  std::string prefix = "inbox/";
  size_t consumer_bytes_max = 255;
  size_t message_id_bytes_max = 255;
  Duration retention = Duration::Seconds(24 * 3600);
  size_t expire_batch_max = 1000;
  // Attempts (first included) of Process and Expire when Commit conflicts; 1..1000.
  uint32_t commit_attempts_max = 32;

  Status Validate() const;
};

class Inbox {
 public:
  static Result<std::unique_ptr<Inbox>> Create(LocalStore& store, Clock& clock,
                                               std::string consumer, InboxOptions options = {});

  // Inside the handler's transaction: true when this is the first delivery of `message_id` (apply
  // the effects in the same transaction, then commit), false when it was already processed (write
  // nothing else; commit or roll back, then ack).
  Result<bool> Record(Transaction& txn, std::string_view message_id);

  // Runs `effects` and the record in one transaction (RunInTransaction). True when applied now,
  // false when it was a duplicate (effects not run). An error from `effects` rolls back both.
  Result<bool> Process(std::string_view message_id,
                       const std::function<Status(Transaction&)>& effects);

  // Deletes up to expire_batch_max records older than the retention. Returns how many.
  Result<size_t> Expire();

  // Process reports its decision once its transaction committed: kIdempotencyClaimed for a first
  // delivery (effects applied), kIdempotencyReplayed for a duplicate (nothing applied); no
  // timestamp (at = MonoTime()). Record reports nothing: the caller's transaction may still roll
  // back. Attach before the inbox is shared between threads.
  ObserverSlot& observe() { return observer_; }

 private:
  Inbox(LocalStore& store, Clock& clock, std::string consumer, InboxOptions options)
      : store_(store),
        clock_(clock),
        consumer_(std::move(consumer)),
        options_(std::move(options)) {}
  LocalStore& store_;
  Clock& clock_;
  std::string consumer_;
  InboxOptions options_;
  ObserverSlot observer_;
};

}  // namespace faultline::idempotency
