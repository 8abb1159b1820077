// File: faultline/outbox/relay.h
//
// The relay: reads committed outbox events in seq order, publishes them to a Broker in batches,
// then deletes them. Where it reads from is an OutboxSource: the LocalStore outbox (outbox.h,
// LocalStoreSource below), or a native table in the caller's SQLite or PostgreSQL database
// (outbox/sql_outbox.h). Every source guarantees the same two things, each with its own proof:
//   - Gap safety: when one transaction appended an event of key k and committed before another
//     appended its own event of k (the application serialized them, e.g. by locking the aggregate),
//     Poll never returns the second event before the first. LocalStore and SQLite: writers are
//     serialized, so Poll returns a prefix of a dense committed sequence (outbox.h, sql_outbox.h).
//     PostgreSQL: Poll returns only the rows before the first one whose inserting transaction is
//     not older than every running transaction (pg_snapshot_xmin; the proof is in sql_outbox.h).
//   - Nothing is skipped: an event is deleted only by MarkPublished, after a successful publish.
//     No source keeps a cursor that a late committer could fall behind.
//
// Delivery is at least once. A relay that crashes after Publish and before MarkPublished publishes
// the same events again when it restarts: the broker drops them by Message::id (its duplicate
// window) and the consumer's inbox (idempotency/inbox.h) drops whatever gets through. A broker that
// refuses or is unreachable fails RunOnce with its status and the events stay where they are.
//
// Parallel relays keep per-key order by partitioning keys, never by SKIP LOCKED (which lets two
// relays publish one key's events out of order, kafkaflow-contrib #24): relay `partition` of
// `partitions` takes only the events whose internal::KeyHash(key) % partitions == partition. One
// key has one relay, which publishes its events in seq order, each batch only after the previous
// one was acknowledged.
//
// Singleton under a fenced leader. Give the relay a TokenSource (typically
// `[&] { return elector.CanAct() ? std::optional(elector.token()) : std::nullopt; }`): RunOnce and
// MarkPublished refuse with kFencedOut when it returns nullopt, and every marking transaction
// checks-and-raises the token against the high-water mark of options.fence_resource in the same
// transaction as the deletes (lease/fence.h), so a deposed relay's marks are refused by the store.
// A deposed relay that is still publishing only duplicates events the new leader also publishes:
// absorbed by the broker's window and the inbox.
//
// Synchronous and sans-IO friendly: nothing here sleeps, spawns or reads a clock. RunOnce is the
// loop body for a thread; callers that publish asynchronously (the simulator) use Poll and
// MarkPublished around their own publish. Not thread-safe: one thread (or task) per Relay.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "faultline/core/ids.h"
#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/outbox/broker.h"
#include "faultline/outbox/outbox.h"
#include "faultline/store/local_store.h"

namespace faultline::outbox {

// Where a relay reads committed events from.
class OutboxSource {
 public:
  virtual ~OutboxSource() = default;
  // Up to `max` unpublished events of partition `partition` of `partitions`, in seq order, obeying
  // the gap-safety rule in the file comment. The first one is the lowest unpublished seq of the
  // partition that may be published now.
  virtual Result<std::vector<OutboxRecord>> Poll(size_t max, uint32_t partition,
                                                 uint32_t partitions) = 0;
  // Deletes `records` (a prefix of the last Poll's result, published; only their seqs are read).
  // With `token`, checks and raises it against the fence of `fence_resource` in the same
  // transaction: kFencedOut (nothing deleted) when it is below the mark. Deleting an event already
  // gone is not an error (another relay's republish was marked first).
  virtual Status MarkPublished(std::span<const OutboxRecord> records,
                               std::optional<FencingToken> token,
                               const std::string& fence_resource) = 0;
};

// The source over a LocalStore outbox (keys in outbox.h). Poll reads in a transaction that it
// commits, so what it returns is validated (serializable) data.
std::unique_ptr<OutboxSource> NewLocalStoreSource(LocalStore& store, OutboxOptions options = {});

struct RelayOptions {
  // Events per Poll / Publish batch; 1..100000.
  size_t batch_max = 512;
  // This relay takes the keys with KeyHash(key) % partitions == partition.
  uint32_t partition = 0;
  uint32_t partitions = 1;  // 1..65536
  // Fence resource of the marks (lease/fence.h key "\x01fence/" + resource); non-empty.
  std::string fence_resource = "outbox-relay";

  Status Validate() const;
};

// The current fencing token, or nullopt when this relay may not act now.
using TokenSource = std::function<std::optional<FencingToken>()>;

struct RelayStats {
  uint64_t polls = 0;
  uint64_t published = 0;       // events acknowledged by the broker (republishes included)
  uint64_t marked = 0;          // events deleted after publishing
  uint64_t publish_errors = 0;  // RunOnce calls whose Publish failed (events kept)
  uint64_t fenced = 0;          // calls refused with kFencedOut
};

class Relay {
 public:
  // `token` empty: unfenced (a single relay by construction). kInvalidArgument for bad options.
  static Result<std::unique_ptr<Relay>> Create(std::unique_ptr<OutboxSource> source,
                                               RelayOptions options = {}, TokenSource token = {});
  // The relay of a LocalStore outbox (NewLocalStoreSource). `store` must outlive it.
  static Result<std::unique_ptr<Relay>> Create(LocalStore& store, OutboxOptions outbox_options = {},
                                               RelayOptions options = {}, TokenSource token = {});

  // The next unpublished events of this relay's partition, up to `max` (1..batch_max), gap-safe,
  // in seq order. Polling again before marking returns the same events first.
  Result<std::vector<OutboxRecord>> Poll(size_t max);
  // Deletes events returned by the last Poll once they are published; `published` must be a
  // prefix of that result (anything else is kInvalidArgument, nothing deleted). kFencedOut when the
  // TokenSource says not leader, or the store's fence refuses the token (nothing deleted).
  Status MarkPublished(std::span<const OutboxRecord> published);
  // Poll(batch_max) + publisher.Publish + MarkPublished: how many events were published and
  // marked (0: nothing to do). On a Publish error, that error (events kept, retried next time);
  // kFencedOut when not the leader (checked before polling and again by the marks).
  Result<size_t> RunOnce(Publisher& publisher);

  const RelayOptions& options() const { return options_; }
  const RelayStats& stats() const { return stats_; }
  // RunOnce reports kOutboxLag after each poll: a = events found pending (at most batch_max, so a
  // full batch means "at least"), d = 0 (records carry no timestamp and the relay no clock).
  ObserverSlot& observe() { return observer_; }

 private:
  Relay(std::unique_ptr<OutboxSource> source, RelayOptions options, TokenSource token)
      : source_(std::move(source)), options_(std::move(options)), token_(std::move(token)) {}
  // nullopt with ok: unfenced; kFencedOut: not the leader.
  Result<std::optional<FencingToken>> CurrentToken();

  std::unique_ptr<OutboxSource> source_;
  RelayOptions options_;
  TokenSource token_;
  std::vector<uint64_t> last_poll_;  // seqs of the last Poll, for MarkPublished's prefix check
  RelayStats stats_;
  ObserverSlot observer_;
};

}  // namespace faultline::outbox
