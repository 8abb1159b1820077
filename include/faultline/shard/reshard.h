// File: faultline/shard/reshard.h
//
// Reshard: a live move of one key range from its shard to another (or of the part of a range above
// a split key: a split), while clients keep writing. The protocol is Vitess's Reshard /
// SwitchTraffic on top of ShardStore's fenced writes and change log:
//
//   kCopy          copy the range's rows from the source in key order, `copy_batch_rows` per step;
//                  the copy cursor commits with the copied rows in the target's transaction
//                  (Vitess copy_state), so a restarted mover continues after the last batch.
//   kCatchUp       replay the source's change log from the head recorded before the copy began,
//                  `log_batch` entries per step (row images: replaying is idempotent, the last
//                  entry of a key wins), until the target is within catch_up_lag_max entries.
//   kVerify        diff source vs target over the range, a batch per step: the source batch and
//                  the source log head are read in one transaction, the target is caught up to
//                  that head, then the target's rows over the same keys must be equal (kDataLoss
//                  naming the first difference otherwise; the workflow stays in kVerify).
//   kFence         the source range goes kFenced: from this commit on the source refuses every
//                  client write to it (retryable RangeFenced); the log head read in the same
//                  transaction bounds every write the source ever accepted there (shard_store.h).
//   kFinalCatchUp  replay the log up to that head.
//   kSwitch        the directory map moves the range to the target (split first if asked), by
//                  compare-and-set; then the target range opens (kServing at the new epoch) and
//                  the source range becomes kMovedOut (stale clients get kFencedOut + epoch).
//   kSwitched      done, still reversible: each Step replicates the target's new writes back to
//                  the source (reverse replication), so Reverse() loses nothing.
// Complete() (kCompleting -> kComplete) drops the moved rows from the source. Reverse() before the
// fence cancels (the target's copy is dropped: kCleanup -> kReversed); after the fence and before
// the switch it unfences the source; after the switch it runs the same fenced cutover backwards
// (kReverseFence, kReverseCatchUp, kReverseSwitch: the range returns to the source at a new epoch,
// the target is fenced before the source opens), then kCleanup.
//
// Fence before open: the source stops accepting writes before the directory names the target, and
// the target accepts none before the directory names it, so at no instant can two shards accept a
// write for the same key, whichever client holds whichever map. Writers at the fence wait (see
// ShardClient): the pause is the final catch-up plus one directory CAS.
//
// Persistence and crash resumption. The workflow record (spec, phase, log positions) lives in the
// directory's store under options.state_prefix + name; the stream progress (copy cursor, applied
// log position) lives in the receiving store, committed with the rows it describes. Every phase
// action is idempotent against a crash at any point: fencing and opening re-set the same fence
// record, the directory CAS is recognised as done when the map already names the target, the
// target records the head at which it opened with the opening itself. Resume(name) continues.
//
// Scope: KeyMode::kRange maps (routing key = key). Options have limits; bad input is refused with a
// Status before anything is written: a split key outside the range or at its begin
// (kInvalidArgument), an unknown range or target shard (kNotFound), a target that is the source,
// a source that does not serve the whole range or a target that already holds part of it
// (kFailedPrecondition), a hash-mode map (kInvalidArgument), an unreachable directory or shard
// store (its error, kUnavailable).
//
// Thread safety: one Reshard object is driven by one thread at a time; two movers of the same
// workflow are not supported (run one mover process; a new one after the old one is dead).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"
#include "faultline/shard/directory.h"
#include "faultline/shard/router.h"
#include "faultline/shard/shard_store.h"

namespace faultline::shard {

enum class ReshardPhase : uint8_t {
  kCopy = 1,
  kCatchUp,
  kVerify,
  kFence,
  kFinalCatchUp,
  kSwitch,
  kSwitched,
  kCompleting,
  kComplete,
  kReverseFence,
  kReverseCatchUp,
  kReverseSwitch,
  kCleanup,
  kReversed,
};
std::string_view ReshardPhaseName(ReshardPhase phase);

// The shard store of a shard id; kNotFound for an unknown shard, or the store's error.
using ShardResolver = std::function<Result<ShardStore*>(ShardId)>;

struct ReshardSpec {
  std::string name;                     // [A-Za-z0-9_.-]{1,64}
  RangeId range;                        // the map range to move
  std::optional<std::string> split_at;  // move only [split_at, range end)
  ShardId to;
};

struct ReshardOptions {
  std::string state_prefix = "faultline/shard/reshard/";
  uint32_t copy_batch_rows = 20000;  // rows per copy step, 1..100'000
  uint32_t log_batch = 5000;         // change-log entries per catch-up step, 1..100'000
  uint32_t verify_batch = 5000;      // rows compared per verify step, 1..100'000
  // Rows deleted per Complete / cleanup step, 1..100'000. Small: each batch holds the store's write
  // lock (SQLite) while clients write to the range's neighbours.
  uint32_t drop_batch_rows = 2000;
  uint32_t catch_up_lag_max = 200;  // entries behind at which kCatchUp hands over to kVerify
  uint32_t attempts_max = 64;       // RunInTransaction attempts per transaction
  Directory::Options directory;
  Status Validate() const;
};

// Everything the workflow record holds (see the header).
struct ReshardState {
  ReshardSpec spec;
  ReshardPhase phase = ReshardPhase::kCopy;
  ShardId from;
  std::string begin, end;          // the moved keys
  Epoch original_epoch;            // the source range's epoch when the move started
  uint64_t start_seq = 0;          // source log head before the copy began
  uint64_t fence_seq = 0;          // source log head at the fence (0: not fenced)
  Epoch new_epoch;                 // the moved range's epoch after the switch
  uint64_t moved_range = 0;        // the moved range's id in the switched map
  uint64_t target_open_seq = 0;    // target log head when it opened
  uint64_t reverse_fence_seq = 0;  // target log head at the reverse fence
};

struct ReshardProgress;  // internal: a stream's progress in its receiving store

class Reshard {
 public:
  // Validates `spec` against the directory and the stores, then persists a new workflow in kCopy.
  // kAlreadyExists when a workflow of that name exists (use Resume).
  static Result<std::unique_ptr<Reshard>> Start(LocalStore& directory_store, ShardResolver resolver,
                                                ReshardSpec spec, ReshardOptions options = {});
  // Loads the workflow `name` (kNotFound when there is none) to continue it.
  static Result<std::unique_ptr<Reshard>> Resume(LocalStore& directory_store,
                                                 ShardResolver resolver, std::string_view name,
                                                 ReshardOptions options = {});

  // One bounded unit of work of the current phase, progress persisted; returns the phase after
  // it. In kSwitched: one batch of reverse replication. In kComplete / kReversed: nothing.
  // kAborted: one of the step's transactions lost to concurrent writers past the store's own
  // retries; what it committed before is consistent (a step resumes from any point, as after a
  // crash), so call Step again.
  Result<ReshardPhase> Step();
  // Steps until kSwitched (or kComplete / kReversed), returning the first error.
  Status Run();
  // From kSwitched: drop the moved rows from the source, then kComplete. Idempotent.
  Status Complete();
  // Undo the move (see the header), ending in kReversed. kFailedPrecondition once completing.
  Status Reverse();

  const ReshardState& state() const { return state_; }
  ReshardPhase phase() const { return state_.phase; }
  // Step reports kReshardProgress after every successful step: a = the phase after it
  // (ReshardPhase), b = the rows this step copied to the target (kCopy steps; 0 for the others).
  ObserverSlot& observe() { return observer_; }

 private:
  Reshard(LocalStore& directory_store, ShardResolver resolver, ReshardOptions options)
      : directory_store_(&directory_store),
        directory_(directory_store, options.directory),
        resolver_(std::move(resolver)),
        options_(std::move(options)) {}

  Status Bind();  // resolves the source and target stores
  Status SaveState(ReshardPhase next);
  std::string StateKey() const;
  std::string ProgressKey(bool reverse) const;
  Result<ReshardProgress> LoadProgress(Transaction& txn, bool reverse);
  // Replays `sender`'s log from the receiver's progress up to `to` (0: the sender's head), one
  // batch; returns the entries still behind.
  Result<uint64_t> CatchUpBatch(bool reverse, uint64_t to);
  Result<std::optional<ShardMap>> SwitchedMap(const ShardMap& current, ShardId to,
                                              bool reverse) const;

  Status StepCopy();
  Status StepCatchUp();
  Status StepVerify();
  Status StepFence(bool reverse);
  Status StepFinalCatchUp(bool reverse);
  Status StepSwitch();
  Status StepReverseSwitch();
  Status StepDrop(bool source);

  LocalStore* directory_store_;
  Directory directory_;
  ShardResolver resolver_;
  ReshardOptions options_;
  ReshardState state_;
  ObserverSlot observer_;
  size_t step_rows_copied_ = 0;  // rows the current Step's copy committed (for the event)
  ShardStore* source_ = nullptr;
  ShardStore* target_ = nullptr;
};

// A client's writes and reads through a Router, buffered across moves: a write refused with a
// move's retryable status (IsMoveRetryable) refreshes the map from the directory and is retried,
// pausing retry_pause between attempts when the map did not change, until buffer_window has
// passed since the first attempt (Vitess vtgate buffering, buffer_window). A transaction conflict
// (kAborted after the store's own retries: another process wrote the shard's log head first; the
// call took no effect) is retried within the same window after a jittered, doubling pause
// (retry_pause up to 64 ms; the jitter is drawn from `jitter_seed`, so a simulation stays
// deterministic). Other errors return at once. Time and pauses come from the Clock and the `sleep`
// function given (a real clock and std::this_thread::sleep_for in a process; the simulator's in a
// simulation).
//
// Thread safety: none; one ShardClient per thread.
class ShardClient {
 public:
  struct Options {
    Duration buffer_window = Duration::Seconds(10);
    Duration retry_pause = Duration::Millis(1);
    uint64_t jitter_seed = 1;
  };
  ShardClient(Directory& directory, ShardResolver resolver, Clock& clock,
              std::function<void(Duration)> sleep, Options options);
  // Loads the map (the directory's error otherwise).
  Status Init();

  Status Write(std::string_view key, std::optional<std::string_view> value);
  Result<std::optional<std::string>> Read(std::string_view key);

  // How long the last call waited at a fence (zero when no attempt of it was refused by a move).
  Duration last_wait() const { return last_wait_; }
  const Router& router() const { return *router_; }
  // The shard and epoch the last successful call used.
  Route last_route() const { return last_route_; }

 private:
  Status Attempt(std::string_view key, const std::function<Status(ShardStore&, const Route&)>& op);
  // The pause before retry number `conflicts` (0-based) of a conflicted call.
  Duration ConflictPause(uint32_t conflicts);

  Directory* directory_;
  ShardResolver resolver_;
  Clock* clock_;
  std::function<void(Duration)> sleep_;
  Options options_;
  std::unique_ptr<Router> router_;
  Duration last_wait_ = Duration::Zero();
  Route last_route_;
  uint64_t jitter_state_;
};

}  // namespace faultline::shard
