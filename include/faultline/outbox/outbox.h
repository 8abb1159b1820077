// File: faultline/outbox/outbox.h
//
// The transactional outbox over a LocalStore: an event is appended inside the caller's own
// transaction, next to the state change it announces, so the two commit or vanish together (no
// dual write: no event lost after a commit, no phantom event after a rollback). A Relay
// (outbox/relay.h) later publishes the committed events to a Broker and deletes them.
//
// Keys (all under options.prefix):
//   prefix + "c"                    the sequence counter: the next seq, 8 bytes big-endian
//   prefix + "m" + be64(seq)        one event: u8 version (1), then varint-length-prefixed
//                                   id, subject, key, payload
// The relay scans prefix + "m" in key order, which is seq order.
//
// Why seq order is commit order here (the gap-safety proof for LocalStore). Append reads the
// counter, writes counter + 1 and the event at the value it read, in the caller's transaction.
// LocalStore transactions are serializable, and every two appending transactions read and write the
// same counter key, so they conflict: one of them is serialized after the other and read the
// counter the other wrote, which it can only have read after the other committed (a transaction
// never reads uncommitted writes). Hence: if an event with seq s is visible (committed), every
// seq below s was taken by a transaction that had already committed when s was taken. A rolled-back
// transaction rolls back its counter write too, so it consumes no seq. Committed seqs are therefore
// dense and appear in seq order: a reader that sees seq s sees every committed seq below it, and a
// relay reading in seq order can never skip a seq that commits later (the S4 gap: txn A takes 10,
// B takes 11 and commits first, is impossible; B would have read A's counter, so A committed
// first). The price: appenders are serialized on the counter (on PostgreSQL, concurrent appenders
// abort with kAborted and retry; native tables, outbox/sql_outbox.h, avoid that with a sequence).
//
// Bad input: a message failing ValidateMessage (broker.h) against payload_bytes_max is
// kInvalidArgument from Append, and nothing is written (the caller's transaction is untouched).
//
// Thread safety: immutable after Create; Append is as thread-safe as the transaction it is given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/outbox/broker.h"
#include "faultline/store/local_store.h"

namespace faultline::outbox {

struct OutboxOptions {
  // Every key the outbox writes starts with it; non-empty.
  std::string prefix = "outbox/";
  // Largest payload Append accepts (kInvalidArgument above it). Must also fit the store's
  // value_bytes_max together with id, subject and key.
  size_t payload_bytes_max = 256 * 1024;

  Status Validate() const;
};

// An event read back from an outbox, with its sequence number (the order it committed in).
struct OutboxRecord {
  uint64_t seq = 0;
  Message message;
  friend bool operator==(const OutboxRecord&, const OutboxRecord&) = default;
};

class Outbox {
 public:
  // `store` must outlive the outbox. kInvalidArgument for invalid options.
  static Result<std::unique_ptr<Outbox>> Create(LocalStore& store, OutboxOptions options = {});

  // Appends `message` inside `txn` (the caller commits it, or rolls back and nothing was
  // appended). Returns the seq taken. kInvalidArgument for a message over the limits (nothing
  // written); kDataLoss for a counter that does not decode; the store's errors otherwise (kAborted:
  // retry the whole transaction, RunInTransaction does).
  Result<uint64_t> Append(Transaction& txn, const Message& message);

  // Appends in a transaction of its own (RunInTransaction). For producers with nothing else to
  // commit (benchmarks, tests).
  Result<uint64_t> AppendOne(const Message& message);

  LocalStore& store() const { return store_; }
  const OutboxOptions& options() const { return options_; }

 private:
  Outbox(LocalStore& store, OutboxOptions options) : store_(store), options_(std::move(options)) {}
  LocalStore& store_;
  OutboxOptions options_;
};

namespace internal {
// The key codec, shared by Outbox and the relay's LocalStore source.
std::string CounterKey(std::string_view prefix);
std::string RecordKey(std::string_view prefix, uint64_t seq);
std::string EncodeRecord(const Message& message);
// kDataLoss when the key or the value does not decode.
Result<OutboxRecord> DecodeRecord(std::string_view prefix, std::string_view key,
                                  std::string_view value);
// The ordering key's partition hash: FNV-1a 64 with the top bit cleared (so that an SQL bigint
// holds it), stable across processes and versions. Relay i of n takes the keys with
// KeyHash(key) % n == i.
uint64_t KeyHash(std::string_view key);
}  // namespace internal

}  // namespace faultline::outbox
