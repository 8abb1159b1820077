// Reshard's phase actions (see reshard.h for the protocol). Each runs a bounded amount of work in
// store transactions, one open at a time, and is idempotent against a crash at any point.
#include <algorithm>
#include <vector>

#include "faultline/shard/reshard.h"
#include "src/shard/reshard_internal.h"

namespace faultline::shard {

using reshard_internal::DecodeProgress;
using reshard_internal::EncodeProgress;

Result<ReshardProgress> Reshard::LoadProgress(Transaction& txn, bool reverse) {
  FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(ProgressKey(reverse)));
  if (!value.has_value()) return ReshardProgress{};
  return DecodeProgress(*value);
}

Result<uint64_t> Reshard::CatchUpBatch(bool reverse, uint64_t to) {
  ShardStore& sender = reverse ? *target_ : *source_;
  ShardStore& receiver = reverse ? *source_ : *target_;
  uint64_t from = 0;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      receiver.store(),
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(ReshardProgress p, LoadProgress(txn, reverse));
        from = p.initialized ? p.applied : (reverse ? state_.target_open_seq : state_.start_seq);
        return Status::Ok();
      },
      options_.attempts_max));
  uint64_t limit = 0;
  std::vector<LogEntry> entries;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      sender.store(),
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(const uint64_t head, sender.LogHead(txn));
        limit = to == 0 ? head : std::min(to, head);
        FL_ASSIGN_OR_RETURN(entries, sender.ReadLog(txn, from, limit, options_.log_batch));
        return Status::Ok();
      },
      options_.attempts_max));
  const uint64_t applied =
      entries.size() == options_.log_batch ? entries.back().seq + 1 : std::max(from, limit);
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      receiver.store(),
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(ReshardProgress p, LoadProgress(txn, reverse));
        const uint64_t now = p.initialized ? p.applied : from;
        if (now != from) return AbortedError("reshard: another mover advanced the stream");
        for (const LogEntry& e : entries) {
          if (!RangeContains(state_.begin, state_.end, e.key)) continue;
          FL_RETURN_IF_ERROR(receiver.ApplyRow(txn, e.key, e.value));
        }
        p.initialized = true;
        p.applied = applied;
        return txn.Put(ProgressKey(reverse), EncodeProgress(p));
      },
      options_.attempts_max));
  return limit > applied ? limit - applied : 0;
}

Status Reshard::StepCopy() {
  ReshardProgress progress;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      target_->store(),
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(progress, LoadProgress(txn, false));
        if (progress.initialized) return Status::Ok();
        // First step: the target takes the range as kIncoming (refusing clients) before any row.
        OwnedRange incoming{state_.begin, state_.end, state_.original_epoch, RangeState::kIncoming};
        FL_RETURN_IF_ERROR(target_->SetRange(txn, incoming).status());
        progress = ReshardProgress{};
        progress.initialized = true;
        progress.copy_cursor = state_.begin;
        progress.verify_cursor = state_.begin;
        progress.applied = state_.start_seq;
        return txn.Put(ProgressKey(false), EncodeProgress(progress));
      },
      options_.attempts_max));
  if (progress.copy_done) return SaveState(ReshardPhase::kCatchUp);
  std::vector<KeyValue> rows;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      source_->store(),
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(rows, source_->ScanRows(txn, progress.copy_cursor, state_.end,
                                                    options_.copy_batch_rows));
        return Status::Ok();
      },
      options_.attempts_max));
  const std::string cursor = progress.copy_cursor;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      target_->store(),
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(ReshardProgress p, LoadProgress(txn, false));
        if (p.copy_cursor != cursor) return AbortedError("reshard: another mover copied");
        for (const KeyValue& kv : rows)
          FL_RETURN_IF_ERROR(target_->ApplyRow(txn, kv.key, kv.value));
        if (!rows.empty()) p.copy_cursor = rows.back().key + std::string(1, '\0');
        p.copy_done = rows.size() < options_.copy_batch_rows;
        progress = p;
        return txn.Put(ProgressKey(false), EncodeProgress(p));
      },
      options_.attempts_max));
  step_rows_copied_ = rows.size();  // committed with the cursor
  if (progress.copy_done) return SaveState(ReshardPhase::kCatchUp);
  return Status::Ok();
}

Status Reshard::StepCatchUp() {
  FL_ASSIGN_OR_RETURN(const uint64_t behind, CatchUpBatch(false, 0));
  if (behind <= options_.catch_up_lag_max) return SaveState(ReshardPhase::kVerify);
  return Status::Ok();
}

namespace {

Status Diff(const std::vector<KeyValue>& want, const std::vector<KeyValue>& have) {
  for (size_t i = 0; i < std::max(want.size(), have.size()); ++i) {
    if (i < want.size() && i < have.size() && want[i] == have[i]) continue;
    const std::string key = i >= want.size()   ? have[i].key
                            : i >= have.size() ? want[i].key
                                               : std::min(want[i].key, have[i].key);
    return DataLossError("reshard: verify found source and target differ at key \"" + key + "\"");
  }
  return Status::Ok();
}

}  // namespace

Status Reshard::StepVerify() {
  std::string cursor;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      target_->store(),
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(ReshardProgress p, LoadProgress(txn, false));
        cursor = p.verify_cursor;
        return Status::Ok();
      },
      options_.attempts_max));
  // The source batch and the head it is consistent with, in one transaction.
  std::vector<KeyValue> want;
  uint64_t head = 0;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      source_->store(),
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(want,
                            source_->ScanRows(txn, cursor, state_.end, options_.verify_batch));
        FL_ASSIGN_OR_RETURN(head, source_->LogHead(txn));
        return Status::Ok();
      },
      options_.attempts_max));
  for (;;) {  // bring the target to exactly `head`: a bounded number of batches
    FL_ASSIGN_OR_RETURN(const uint64_t behind, CatchUpBatch(false, head));
    if (behind == 0) break;
  }
  const bool last = want.size() < options_.verify_batch;
  const std::string upper = last ? state_.end : want.back().key + std::string(1, '\0');
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      target_->store(),
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(std::vector<KeyValue> have,
                            target_->ScanRows(txn, cursor, upper, options_.verify_batch + 1));
        FL_RETURN_IF_ERROR(Diff(want, have));
        FL_ASSIGN_OR_RETURN(ReshardProgress p, LoadProgress(txn, false));
        p.verify_cursor = upper;
        p.verify_done = last;
        return txn.Put(ProgressKey(false), EncodeProgress(p));
      },
      options_.attempts_max));
  if (last) return SaveState(ReshardPhase::kFence);
  return Status::Ok();
}

Result<std::optional<ShardMap>> Reshard::SwitchedMap(const ShardMap& current, ShardId to,
                                                     bool reverse) const {
  const ShardId from = reverse ? state_.spec.to : state_.from;
  const ShardRange& r = current.ranges()[current.RangeIndexOf(state_.begin)];
  if (r.shard == to && r.begin == state_.begin && r.end == state_.end) {
    return std::optional<ShardMap>();  // switched already
  }
  if (r.shard != from || r.end != state_.end || r.begin > state_.begin ||
      (r.begin < state_.begin && reverse)) {
    return FailedPreconditionError("reshard: the directory map changed under the move");
  }
  if (r.begin == state_.begin) {
    FL_ASSIGN_OR_RETURN(ShardMap next, current.Move(r.id, to));
    return std::optional<ShardMap>(std::move(next));
  }
  FL_ASSIGN_OR_RETURN(ShardMap split, current.Split(r.id, state_.begin));
  const ShardRange& right = split.ranges()[split.RangeIndexOf(state_.begin)];
  FL_ASSIGN_OR_RETURN(ShardMap next, split.Move(right.id, to));
  return std::optional<ShardMap>(std::move(next));
}

Status Reshard::StepFence(bool reverse) {
  FL_ASSIGN_OR_RETURN(ShardMap map, directory_.Load());
  FL_ASSIGN_OR_RETURN(std::optional<ShardMap> next,
                      SwitchedMap(map, reverse ? state_.from : state_.spec.to, reverse));
  const ShardMap& planned = next.has_value() ? *next : map;
  const Epoch epoch = planned.ranges()[planned.RangeIndexOf(state_.begin)].epoch;
  // From this commit on the sender refuses client writes to the range; the head it returns bounds
  // every write it accepted there.
  ShardStore& sender = reverse ? *target_ : *source_;
  FL_ASSIGN_OR_RETURN(const uint64_t head,
                      sender.SetRange({state_.begin, state_.end, epoch, RangeState::kFenced}));
  if (reverse) {
    state_.reverse_fence_seq = head;
    return SaveState(ReshardPhase::kReverseCatchUp);
  }
  state_.fence_seq = head;
  return SaveState(ReshardPhase::kFinalCatchUp);
}

Status Reshard::StepFinalCatchUp(bool reverse) {
  const uint64_t to = reverse ? state_.reverse_fence_seq : state_.fence_seq;
  FL_ASSIGN_OR_RETURN(const uint64_t behind, CatchUpBatch(reverse, to));
  if (behind > 0) return Status::Ok();
  return SaveState(reverse ? ReshardPhase::kReverseSwitch : ReshardPhase::kSwitch);
}

namespace {

// The map CAS (nothing when `next` is empty: switched already). A lost race is kAborted: the next
// Step recomputes from the new map.
Status SwitchDirectory(Directory& directory, const ShardMap& map,
                       const std::optional<ShardMap>& next) {
  if (!next.has_value()) return Status::Ok();
  const Status s = directory.CompareAndSwap(map.version(), *next);
  if (s.code() == StatusCode::kFailedPrecondition) return AbortedError(s.message());
  return s;
}

}  // namespace

Status Reshard::StepSwitch() {
  FL_ASSIGN_OR_RETURN(ShardMap map, directory_.Load());
  FL_ASSIGN_OR_RETURN(std::optional<ShardMap> next, SwitchedMap(map, state_.spec.to, false));
  FL_RETURN_IF_ERROR(SwitchDirectory(directory_, map, next));
  const ShardMap& now = next.has_value() ? *next : map;
  const ShardRange& moved = now.ranges()[now.RangeIndexOf(state_.begin)];
  // The target opens, recording its log head with the opening (reverse replication starts there).
  uint64_t open_seq = 0;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      target_->store(),
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(ReshardProgress p, LoadProgress(txn, false));
        if (p.open_seq == 0) {
          FL_ASSIGN_OR_RETURN(
              p.open_seq, target_->SetRange(
                              txn, {state_.begin, state_.end, moved.epoch, RangeState::kServing}));
          FL_RETURN_IF_ERROR(txn.Put(ProgressKey(false), EncodeProgress(p)));
        }
        open_seq = p.open_seq;
        return Status::Ok();
      },
      options_.attempts_max));
  FL_RETURN_IF_ERROR(
      source_->SetRange({state_.begin, state_.end, moved.epoch, RangeState::kMovedOut}).status());
  state_.new_epoch = moved.epoch;
  state_.moved_range = moved.id.value();
  state_.target_open_seq = open_seq;
  return SaveState(ReshardPhase::kSwitched);
}

Status Reshard::StepReverseSwitch() {
  FL_ASSIGN_OR_RETURN(ShardMap map, directory_.Load());
  FL_ASSIGN_OR_RETURN(std::optional<ShardMap> next, SwitchedMap(map, state_.from, true));
  FL_RETURN_IF_ERROR(SwitchDirectory(directory_, map, next));
  const ShardMap& now = next.has_value() ? *next : map;
  const Epoch epoch = now.ranges()[now.RangeIndexOf(state_.begin)].epoch;
  // Target fenced already; the source opens at the new epoch, then the target says "moved".
  FL_RETURN_IF_ERROR(
      source_->SetRange({state_.begin, state_.end, epoch, RangeState::kServing}).status());
  FL_RETURN_IF_ERROR(
      target_->SetRange({state_.begin, state_.end, epoch, RangeState::kMovedOut}).status());
  state_.new_epoch = epoch;
  return SaveState(ReshardPhase::kCleanup);
}

// Deletes a batch of the moved rows from the source (Complete) or the target (cleanup after
// Reverse); the last batch also removes the workflow's leftovers there.
Status Reshard::StepDrop(bool source) {
  ShardStore& store = source ? *source_ : *target_;
  size_t deleted = 0;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      store.store(),
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(
            deleted, store.DeleteRows(txn, state_.begin, state_.end, options_.drop_batch_rows));
        if (deleted == options_.drop_batch_rows) return Status::Ok();
        if (source) return txn.Delete(ProgressKey(true)).status();
        // A target that never opened forgets the range; one that did keeps its kMovedOut record
        // so that clients still holding the switched map are told to refresh.
        if (state_.target_open_seq == 0) {
          FL_RETURN_IF_ERROR(store.DropRange(txn, state_.begin, state_.end));
        }
        return txn.Delete(ProgressKey(false)).status();
      },
      options_.attempts_max));
  if (deleted == options_.drop_batch_rows) return Status::Ok();
  return SaveState(source ? ReshardPhase::kComplete : ReshardPhase::kReversed);
}

}  // namespace faultline::shard
