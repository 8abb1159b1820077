// File: faultline/outbox/sqlite_queue.h
//
// SqliteQueue: the embedded Broker (broker.h) in one SQLite file, the default when nothing else
// is installed. Every publisher and consumer opens its own connection to the file, so processes
// share a queue the way they share a database (WAL mode, one writer at a time).
//
// Schema (created when missing):
//   fl_stream   (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, subject, key, payload)
//   fl_consumer (name PRIMARY KEY, subject_prefix, next_seq)      next stream seq to deliver first
//   fl_pending  (consumer, seq, deliveries, due_ns)               delivered, not yet acked
//
// Publish inserts the batch in one transaction with INSERT ... ON CONFLICT(id) DO NOTHING: a
// message whose id the stream holds is acknowledged and stores nothing (the duplicate window is
// unbounded: the stream keeps every message). Fetch, in one write transaction, first takes pending
// messages whose ack-wait ran out or that were Nak'ed (due_ns <= now), then new messages after
// next_seq whose subject starts with the consumer's prefix; each gets due_ns = now + ack_wait and
// its delivery count. Ack deletes the pending row (a late ack still settles the message, as in
// the contract); Nak makes it due at once. A consumer opened again with the same durable name
// resumes: unacked messages come back once due.
//
// Durability: `synchronous` kFull fsyncs every commit (a published or acked message survives a
// power cut); kNormal fsyncs at checkpoints (survives a crash of any process, not of the kernel).
//
// Time: ack-wait deadlines and Fetch's wait use the steady clock of this machine (this is an
// adapter; due_ns is CLOCK_MONOTONIC, so a queue file is not meant to outlive a reboot with
// messages in flight: after a reboot pending messages become due at once or late by the old
// uptime, never lost).
//
// Errors: kInvalidArgument for invalid options and for a batch with a message failing
// ValidateMessage(payload_bytes_max) (nothing of the batch stored); kUnavailable when the file
// cannot be opened or written; kAborted when the write lock was not had within busy_timeout_ms;
// kDataLoss for a corrupt file; kFailedPrecondition for a consumer reopened with another subject
// prefix.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "faultline/adapters/sqlite_store.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/outbox/broker.h"

namespace faultline::outbox {

struct SqliteQueueOptions {
  std::string path;  // database file; created when missing
  SqliteSynchronous synchronous = SqliteSynchronous::kFull;
  Duration ack_wait = Duration::Seconds(30);  // > 0
  size_t payload_bytes_max = 1 << 20;
  uint32_t busy_timeout_ms = 5000;
  size_t fetch_max = 10000;  // largest Fetch `max`

  Status Validate() const;
};

class SqliteQueue final : public Broker {
 public:
  // Opens (creating) the file and the tables. kInvalidArgument, kUnavailable, kDataLoss.
  static Result<std::unique_ptr<SqliteQueue>> Open(SqliteQueueOptions options);

  Result<std::unique_ptr<Publisher>> NewPublisher() override;
  // `durable`: 1..255 bytes. The first open fixes the subject prefix.
  Result<std::unique_ptr<Consumer>> NewConsumer(std::string_view durable,
                                                std::string_view subject_prefix) override;

  // Messages in the stream (for tests and the bench).
  Result<uint64_t> StoredCount();
  const SqliteQueueOptions& options() const { return options_; }

 private:
  explicit SqliteQueue(SqliteQueueOptions options) : options_(std::move(options)) {}
  const SqliteQueueOptions options_;
};

}  // namespace faultline::outbox
