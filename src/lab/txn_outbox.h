// Internal: the transactional outbox and relay the distributed-txn scenario's nodes use, over a
// LocalStore, with the shape of the outbox module's API (Append inside the caller's transaction;
// a sans-IO relay: Poll(max) then MarkPublished(records) after the broker acknowledged them).
//
// Rows: "ob/" + 16 hex digits of a sequence taken from "ob#next" in the same transaction. Both the
// effect and its row commit together or not at all. In this store a transaction that takes a
// sequence and commits later conflicts on "ob#next" with any that committed in between, so the
// relay can never see seq 11 committed while 10 is still to come (research S4: the gap that a
// last-seq cursor skips on PostgreSQL does not arise under one writer of the counter).
//
// A crash after the broker acknowledged a batch and before MarkPublished committed republishes it;
// the broker's de-duplication by id and the consumers' inbox absorb the copy (research S3).
#pragma once

#include <string>
#include <vector>

#include "faultline/outbox/broker.h"
#include "faultline/store/local_store.h"

namespace faultline::lab {

struct TxnOutboxRecord {
  std::string row;  // the outbox row's key
  outbox::Message message;
};

class TxnOutbox {
 public:
  explicit TxnOutbox(LocalStore& store) : store_(store) {}
  // Inside the caller's transaction.
  Status Append(Transaction& txn, const outbox::Message& message);
  // Up to `max` unpublished records, oldest first.
  Result<std::vector<TxnOutboxRecord>> Poll(size_t max);
  // Deletes the rows once the broker acknowledged them.
  Status MarkPublished(const std::vector<TxnOutboxRecord>& records);

 private:
  LocalStore& store_;
};

}  // namespace faultline::lab
