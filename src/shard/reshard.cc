// Reshard: the workflow record, validation, the step loop, Complete/Reverse, and ShardClient. The
// phase actions are in reshard_steps.cc.
#include "faultline/shard/reshard.h"

#include <algorithm>
#include <span>
#include <vector>

#include "faultline/core/buggify.h"
#include "faultline/core/bytes.h"
#include "src/shard/reshard_internal.h"

namespace faultline::shard {
namespace reshard_internal {
namespace {

constexpr size_t kBytesMax = 1 << 16;

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string AsString(const std::vector<uint8_t>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

}  // namespace

std::string EncodeState(const ReshardState& s) {
  std::vector<uint8_t> out;
  ByteWriter w(&out);
  w.U8(1);
  w.Bytes(s.spec.name);
  w.U64(s.spec.range.value());
  w.U8(s.spec.split_at.has_value() ? 1 : 0);
  w.Bytes(s.spec.split_at.value_or(""));
  w.U32(s.spec.to.value());
  w.U8(static_cast<uint8_t>(s.phase));
  w.U32(s.from.value());
  w.Bytes(s.begin);
  w.Bytes(s.end);
  for (uint64_t v : {s.original_epoch.value(), s.start_seq, s.fence_seq, s.new_epoch.value(),
                     s.moved_range, s.target_open_seq, s.reverse_fence_seq}) {
    w.U64(v);
  }
  return AsString(out);
}

Result<ReshardState> DecodeState(std::string_view bytes) {
  ByteReader r(AsBytes(bytes));
  ReshardState s;
  uint8_t format = 0, has_split = 0, phase = 0;
  uint64_t range = 0, u[7] = {};
  uint32_t to = 0, from = 0;
  std::string split;
  FL_RETURN_IF_ERROR(r.U8(&format));
  FL_RETURN_IF_ERROR(r.Bytes(&s.spec.name, kBytesMax));
  FL_RETURN_IF_ERROR(r.U64(&range));
  FL_RETURN_IF_ERROR(r.U8(&has_split));
  FL_RETURN_IF_ERROR(r.Bytes(&split, kBytesMax));
  FL_RETURN_IF_ERROR(r.U32(&to));
  FL_RETURN_IF_ERROR(r.U8(&phase));
  FL_RETURN_IF_ERROR(r.U32(&from));
  FL_RETURN_IF_ERROR(r.Bytes(&s.begin, kBytesMax));
  FL_RETURN_IF_ERROR(r.Bytes(&s.end, kBytesMax));
  for (uint64_t& v : u) FL_RETURN_IF_ERROR(r.U64(&v));
  if (format != 1 || phase < 1 || phase > static_cast<uint8_t>(ReshardPhase::kReversed) ||
      !r.empty()) {
    return DataLossError("reshard: bad workflow record");
  }
  s.spec.range = RangeId(range);
  if (has_split != 0) s.spec.split_at = split;
  s.spec.to = ShardId(to);
  s.phase = static_cast<ReshardPhase>(phase);
  s.from = ShardId(from);
  s.original_epoch = Epoch(u[0]);
  s.start_seq = u[1];
  s.fence_seq = u[2];
  s.new_epoch = Epoch(u[3]);
  s.moved_range = u[4];
  s.target_open_seq = u[5];
  s.reverse_fence_seq = u[6];
  return s;
}

std::string EncodeProgress(const ReshardProgress& p) {
  std::vector<uint8_t> out;
  ByteWriter w(&out);
  w.U8(1);
  w.Bytes(p.copy_cursor);
  w.U8(p.copy_done ? 1 : 0);
  w.U64(p.applied);
  w.Bytes(p.verify_cursor);
  w.U8(p.verify_done ? 1 : 0);
  w.U64(p.open_seq);
  return AsString(out);
}

Result<ReshardProgress> DecodeProgress(std::string_view bytes) {
  ByteReader r(AsBytes(bytes));
  ReshardProgress p;
  uint8_t format = 0, copy_done = 0, verify_done = 0;
  FL_RETURN_IF_ERROR(r.U8(&format));
  FL_RETURN_IF_ERROR(r.Bytes(&p.copy_cursor, kBytesMax));
  FL_RETURN_IF_ERROR(r.U8(&copy_done));
  FL_RETURN_IF_ERROR(r.U64(&p.applied));
  FL_RETURN_IF_ERROR(r.Bytes(&p.verify_cursor, kBytesMax));
  FL_RETURN_IF_ERROR(r.U8(&verify_done));
  FL_RETURN_IF_ERROR(r.U64(&p.open_seq));
  if (format != 1 || !r.empty()) return DataLossError("reshard: bad progress record");
  p.initialized = true;
  p.copy_done = copy_done != 0;
  p.verify_done = verify_done != 0;
  return p;
}

}  // namespace reshard_internal

using reshard_internal::DecodeState;
using reshard_internal::EncodeState;

std::string_view ReshardPhaseName(ReshardPhase phase) {
  switch (phase) {
    case ReshardPhase::kCopy:
      return "copy";
    case ReshardPhase::kCatchUp:
      return "catch-up";
    case ReshardPhase::kVerify:
      return "verify";
    case ReshardPhase::kFence:
      return "fence";
    case ReshardPhase::kFinalCatchUp:
      return "final-catch-up";
    case ReshardPhase::kSwitch:
      return "switch";
    case ReshardPhase::kSwitched:
      return "switched";
    case ReshardPhase::kCompleting:
      return "completing";
    case ReshardPhase::kComplete:
      return "complete";
    case ReshardPhase::kReverseFence:
      return "reverse-fence";
    case ReshardPhase::kReverseCatchUp:
      return "reverse-catch-up";
    case ReshardPhase::kReverseSwitch:
      return "reverse-switch";
    case ReshardPhase::kCleanup:
      return "cleanup";
    case ReshardPhase::kReversed:
      return "reversed";
  }
  return "?";
}

Status ReshardOptions::Validate() const {
  auto in = [](uint32_t v) { return v >= 1 && v <= 100'000; };
  if (state_prefix.empty()) return InvalidArgumentError("reshard: empty state_prefix");
  if (!in(copy_batch_rows) || !in(log_batch) || !in(verify_batch) || !in(drop_batch_rows)) {
    return InvalidArgumentError(
        "reshard: batch sizes must be in [1, 100000] (stores cap a scan there)");
  }
  if (attempts_max < 1) return InvalidArgumentError("reshard: attempts_max must be >= 1");
  return Status::Ok();
}

namespace {

Status ValidateName(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return InvalidArgumentError("reshard: workflow name must be 1..64 characters");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return InvalidArgumentError("reshard: workflow name may use [A-Za-z0-9_.-] only");
  }
  return Status::Ok();
}

// The moved keys of `spec` in `map`, with the source shard and epoch, or why the spec is invalid.
Status ResolveSpec(const ShardMap& map, const ReshardSpec& spec, ReshardState& state) {
  if (map.mode() != KeyMode::kRange) {
    return InvalidArgumentError("reshard: only KeyMode::kRange maps can be moved live");
  }
  const ShardRange* range = map.FindRange(spec.range);
  if (range == nullptr) {
    return NotFoundError("reshard: no range " + std::to_string(spec.range.value()) + " in the map");
  }
  bool known = false;
  for (ShardId s : map.shards()) known = known || s == spec.to;
  if (!known) {
    return NotFoundError("reshard: unknown shard " + std::to_string(spec.to.value()));
  }
  if (range->shard == spec.to) {
    return FailedPreconditionError("reshard: the range is already on shard " +
                                   std::to_string(spec.to.value()));
  }
  if (spec.split_at.has_value()) {
    const std::string& at = *spec.split_at;
    if (at <= range->begin || (!range->end.empty() && at >= range->end)) {
      return InvalidArgumentError("reshard: split key \"" + at + "\" outside the range (\"" +
                                  range->begin + "\", \"" + range->end + "\")");
    }
  }
  state.spec = spec;
  state.from = range->shard;
  state.begin = spec.split_at.value_or(range->begin);
  state.end = range->end;
  state.original_epoch = range->epoch;
  return Status::Ok();
}

// The source must serve all of [begin, end) with one record.
Status CheckSource(Transaction& txn, ShardStore& source, const ReshardState& st) {
  FL_ASSIGN_OR_RETURN(std::vector<OwnedRange> have, source.Ranges(txn));
  for (const OwnedRange& r : have) {
    if (r.state == RangeState::kServing && RangeContains(r.begin, r.end, st.begin) &&
        (r.end.empty() || (!st.end.empty() && st.end <= r.end))) {
      return Status::Ok();
    }
  }
  return FailedPreconditionError("reshard: the source shard does not serve [\"" + st.begin +
                                 "\", \"" + st.end + "\")");
}

// The target must hold no part of [begin, end).
Status CheckTarget(Transaction& txn, ShardStore& target, const ReshardState& st) {
  FL_ASSIGN_OR_RETURN(std::vector<OwnedRange> there, target.Ranges(txn));
  for (const OwnedRange& r : there) {
    const bool before = !r.end.empty() && r.end <= st.begin;
    const bool after = !st.end.empty() && r.begin >= st.end;
    if (!before && !after) {
      return FailedPreconditionError("reshard: the target shard already holds part of the range");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Reshard>> Reshard::Start(LocalStore& directory_store, ShardResolver resolver,
                                                ReshardSpec spec, ReshardOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  FL_RETURN_IF_ERROR(ValidateName(spec.name));
  std::unique_ptr<Reshard> r(new Reshard(directory_store, std::move(resolver), std::move(options)));
  FL_ASSIGN_OR_RETURN(ShardMap map, r->directory_.Load());
  FL_RETURN_IF_ERROR(ResolveSpec(map, spec, r->state_));
  FL_RETURN_IF_ERROR(r->Bind());
  // The source's log head before the copy: catch-up replays from here. One store transaction at
  // a time (source and target may share one SQLite file).
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      r->source_->store(),
      [&](Transaction& txn) -> Status {
        FL_RETURN_IF_ERROR(CheckSource(txn, *r->source_, r->state_));
        FL_ASSIGN_OR_RETURN(r->state_.start_seq, r->source_->LogHead(txn));
        return Status::Ok();
      },
      r->options_.attempts_max));
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      r->target_->store(),
      [&](Transaction& txn) { return CheckTarget(txn, *r->target_, r->state_); },
      r->options_.attempts_max));
  r->state_.phase = ReshardPhase::kCopy;
  bool inserted = false;
  const std::string record = EncodeState(r->state_);
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      directory_store,
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(inserted, txn.InsertIfAbsent(r->StateKey(), record));
        return Status::Ok();
      },
      r->options_.attempts_max));
  if (!inserted) return AlreadyExistsError("reshard: workflow \"" + spec.name + "\" exists");
  return r;
}

Result<std::unique_ptr<Reshard>> Reshard::Resume(LocalStore& directory_store,
                                                 ShardResolver resolver, std::string_view name,
                                                 ReshardOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  FL_RETURN_IF_ERROR(ValidateName(name));
  std::unique_ptr<Reshard> r(new Reshard(directory_store, std::move(resolver), std::move(options)));
  r->state_.spec.name = std::string(name);
  std::optional<std::string> value;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      directory_store,
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(value, txn.Get(r->StateKey()));
        return Status::Ok();
      },
      r->options_.attempts_max));
  if (!value.has_value())
    return NotFoundError("reshard: no workflow \"" + std::string(name) + "\"");
  FL_ASSIGN_OR_RETURN(r->state_, DecodeState(*value));
  if (r->state_.spec.name != name) return DataLossError("reshard: workflow record names another");
  FL_RETURN_IF_ERROR(r->Bind());
  return r;
}

Status Reshard::Bind() {
  FL_ASSIGN_OR_RETURN(source_, resolver_(state_.from));
  FL_ASSIGN_OR_RETURN(target_, resolver_(state_.spec.to));
  if (source_ == nullptr || target_ == nullptr) return NotFoundError("reshard: unresolved shard");
  return Status::Ok();
}

std::string Reshard::StateKey() const { return options_.state_prefix + state_.spec.name; }
std::string Reshard::ProgressKey(bool reverse) const {
  return options_.state_prefix + state_.spec.name + (reverse ? "/rev" : "/fwd");
}

Status Reshard::SaveState(ReshardPhase next) {
  ReshardState copy = state_;
  copy.phase = next;
  const std::string record = EncodeState(copy);
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      *directory_store_, [&](Transaction& txn) { return txn.Put(StateKey(), record); },
      options_.attempts_max));
  state_ = std::move(copy);
  return Status::Ok();
}

Result<ReshardPhase> Reshard::Step() {
  using P = ReshardPhase;
  step_rows_copied_ = 0;
  switch (state_.phase) {
    case P::kCopy:
      FL_RETURN_IF_ERROR(StepCopy());
      break;
    case P::kCatchUp:
      FL_RETURN_IF_ERROR(StepCatchUp());
      break;
    case P::kVerify:
      FL_RETURN_IF_ERROR(StepVerify());
      break;
    case P::kFence:
      FL_RETURN_IF_ERROR(StepFence(false));
      break;
    case P::kFinalCatchUp:
      FL_RETURN_IF_ERROR(StepFinalCatchUp(false));
      break;
    case P::kSwitch:
      FL_RETURN_IF_ERROR(StepSwitch());
      break;
    case P::kSwitched:
      FL_RETURN_IF_ERROR(CatchUpBatch(true, 0).status());
      break;
    case P::kCompleting:
      FL_RETURN_IF_ERROR(StepDrop(true));
      break;
    case P::kReverseFence:
      FL_RETURN_IF_ERROR(StepFence(true));
      break;
    case P::kReverseCatchUp:
      FL_RETURN_IF_ERROR(StepFinalCatchUp(true));
      break;
    case P::kReverseSwitch:
      FL_RETURN_IF_ERROR(StepReverseSwitch());
      break;
    case P::kCleanup:
      FL_RETURN_IF_ERROR(StepDrop(false));
      break;
    case P::kComplete:
    case P::kReversed:
      break;
  }
  observer_.Emit(EventKind::kReshardProgress, MonoTime(), static_cast<int64_t>(state_.phase),
                 static_cast<int64_t>(step_rows_copied_));
  return state_.phase;
}

Status Reshard::Run() {
  for (;;) {
    const ReshardPhase p = state_.phase;
    if (p == ReshardPhase::kSwitched || p == ReshardPhase::kComplete ||
        p == ReshardPhase::kReversed) {
      return Status::Ok();
    }
    FL_RETURN_IF_ERROR(Step().status());
  }
}

Status Reshard::Complete() {
  if (state_.phase == ReshardPhase::kSwitched)
    FL_RETURN_IF_ERROR(SaveState(ReshardPhase::kCompleting));
  if (state_.phase != ReshardPhase::kCompleting && state_.phase != ReshardPhase::kComplete) {
    return FailedPreconditionError("reshard: Complete needs a switched workflow, this one is " +
                                   std::string(ReshardPhaseName(state_.phase)));
  }
  while (state_.phase != ReshardPhase::kComplete) FL_RETURN_IF_ERROR(Step().status());
  return Status::Ok();
}

Status Reshard::Reverse() {
  using P = ReshardPhase;
  if (state_.phase == P::kCompleting || state_.phase == P::kComplete) {
    return FailedPreconditionError("reshard: cannot reverse a completed move");
  }
  if (state_.phase == P::kSwitch) {
    // Switched already (a crash after the CAS)? Then finish the switch and reverse from there.
    FL_ASSIGN_OR_RETURN(ShardMap map, directory_.Load());
    FL_ASSIGN_OR_RETURN(std::optional<ShardMap> next, SwitchedMap(map, state_.spec.to, false));
    if (!next.has_value()) FL_RETURN_IF_ERROR(StepSwitch());
  }
  if (state_.phase <= P::kSwitch) {
    // Not switched: the source never stopped owning the range; lift the fence if there was one.
    OwnedRange serving{state_.begin, state_.end, state_.original_epoch, RangeState::kServing};
    FL_RETURN_IF_ERROR(source_->SetRange(serving).status());
    FL_RETURN_IF_ERROR(SaveState(P::kCleanup));
  } else if (state_.phase == P::kSwitched) {
    FL_RETURN_IF_ERROR(SaveState(P::kReverseFence));
  }
  while (state_.phase != P::kReversed) FL_RETURN_IF_ERROR(Step().status());
  return Status::Ok();
}

// --- ShardClient

ShardClient::ShardClient(Directory& directory, ShardResolver resolver, Clock& clock,
                         std::function<void(Duration)> sleep, Options options)
    : directory_(&directory),
      resolver_(std::move(resolver)),
      clock_(&clock),
      sleep_(std::move(sleep)),
      options_(options),
      jitter_state_(options.jitter_seed == 0 ? 0x9e3779b97f4a7c15ULL : options.jitter_seed) {}

Status ShardClient::Init() {
  FL_ASSIGN_OR_RETURN(ShardMap map, directory_->Load());
  router_ = std::make_unique<Router>(std::make_shared<const ShardMap>(std::move(map)));
  return Status::Ok();
}

Status ShardClient::Attempt(std::string_view key,
                            const std::function<Status(ShardStore&, const Route&)>& op) {
  FL_ASSERT_MSG(router_ != nullptr, "ShardClient::Init first");
  const MonoTime start = clock_->Now();
  last_wait_ = Duration::Zero();
  bool refused_by_move = false;
  uint32_t conflicts = 0;
  while (true) {
    const Route route = router_->RouteKey(key);
    FL_ASSIGN_OR_RETURN(ShardStore * store, resolver_(route.shard));
    const Status s = op(*store, route);
    const MonoTime now = clock_->Now();
    if (refused_by_move) last_wait_ = now - start;
    if (s.ok()) {
      last_route_ = route;
      return s;
    }
    if (now - start >= options_.buffer_window) return s;
    if (s.code() == StatusCode::kAborted) {  // a conflict: the call took no effect
      FL_PROBE("shard.client_conflict");
      sleep_(ConflictPause(conflicts++));
      continue;
    }
    if (!IsMoveRetryable(s)) return s;
    refused_by_move = true;
    const uint64_t before = router_->version();
    const Status refreshed = router_->Refresh(*directory_);
    if (!refreshed.ok() && refreshed.code() != StatusCode::kAborted &&
        refreshed.code() != StatusCode::kUnavailable) {
      return refreshed;
    }
    if (router_->version() == before) sleep_(options_.retry_pause);
  }
}

Duration ShardClient::ConflictPause(uint32_t conflicts) {
  const int64_t cap_ns = std::min<int64_t>(options_.retry_pause.nanos() << std::min(conflicts, 6u),
                                           Duration::Millis(64).nanos());
  // xorshift64: cheap, deterministic per client.
  jitter_state_ ^= jitter_state_ << 13;
  jitter_state_ ^= jitter_state_ >> 7;
  jitter_state_ ^= jitter_state_ << 17;
  const int64_t half = std::max<int64_t>(cap_ns / 2, 1);
  return Duration::Nanos(half + static_cast<int64_t>(jitter_state_ % static_cast<uint64_t>(half)));
}

Status ShardClient::Write(std::string_view key, std::optional<std::string_view> value) {
  return Attempt(key, [&](ShardStore& store, const Route& route) {
    return store.Write(key, value, route.epoch);
  });
}

Result<std::optional<std::string>> ShardClient::Read(std::string_view key) {
  std::optional<std::string> out;
  FL_RETURN_IF_ERROR(Attempt(key, [&](ShardStore& store, const Route& route) -> Status {
    FL_ASSIGN_OR_RETURN(out, store.Read(key, route.epoch));
    return Status::Ok();
  }));
  return out;
}

}  // namespace faultline::shard
