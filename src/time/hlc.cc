#include "faultline/time/hlc.h"

#include <array>
#include <utility>

#include "faultline/core/buggify.h"
#include "faultline/core/bytes.h"
#include "faultline/core/crc32c.h"
#include "faultline/core/options.h"

namespace faultline {
namespace {

constexpr int kShift = HlcTimestamp::kLogicalBits;
constexpr uint64_t kPersistMagic = 0x42484c46;  // "FLHB" little-endian
constexpr uint8_t kPersistVersion = 1;
constexpr size_t kSlotPayloadBytes = 4 + 1 + 8 + 8;  // covered by the CRC
constexpr Duration kReserveWindowMax = Duration::Seconds(3600);

}  // namespace

std::string HlcTimestamp::ToString() const {
  return std::to_string(physical_us()) + "." + std::to_string(logical());
}

std::string_view HlcAlarmKindName(HlcAlarmKind kind) {
  switch (kind) {
    case HlcAlarmKind::kForwardJump:
      return "forward_jump";
    case HlcAlarmKind::kBackwardJump:
      return "backward_jump";
    case HlcAlarmKind::kLogicalOverflow:
      return "logical_overflow";
    case HlcAlarmKind::kUpperBoundExceeded:
      return "upper_bound_exceeded";
  }
  return "unknown";
}

Status HlcOptions::Validate() const {
  FL_CHECK_OPTION(max_offset >= Duration::Micros(1), "max_offset must be >= 1us");
  FL_CHECK_OPTION(max_offset <= kMaxOffsetMax, "max_offset must be <= 5s");
  FL_CHECK_OPTION(max_offset.nanos() % 1000 == 0, "max_offset must be whole microseconds");
  return Status::Ok();
}

Result<std::unique_ptr<Hlc>> Hlc::Create(Clock& clock, HlcOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<Hlc>(new Hlc(clock, std::move(options)));
}

Result<std::unique_ptr<Hlc>> Hlc::Recover(Clock& clock, HlcOptions options,
                                          HlcPersistence& persistence, Duration window) {
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Hlc> hlc, Create(clock, std::move(options)));
  Result<uint64_t> bound_us = persistence.Load();
  if (bound_us.ok()) {
    // Every timestamp issued before the crash had physical part <= the bound.
    hlc->Restore(HlcTimestamp::FromParts(*bound_us, 0));
  } else if (bound_us.status().code() != StatusCode::kNotFound) {
    return bound_us.status();  // a torn or unreadable bound: do not guess
  }
  FL_RETURN_IF_ERROR(hlc->ReserveUpTo(persistence, window));
  return hlc;
}

Hlc::Hlc(Clock& clock, HlcOptions options)
    : clock_(clock),
      options_(std::move(options)),
      max_offset_us_(static_cast<uint64_t>(options_.max_offset.micros())),
      forward_jump_ns_((options_.max_offset / 2).nanos()),
      backward_jump_ns_((options_.max_offset / 10).nanos()),
      step_dead_band_ns_((options_.max_offset / 20).nanos()) {
  FL_ASSERT(options_.Validate().ok());
  // The baseline for jump detection; mono first, then wall, like every later reading.
  const MonoTime mono = clock_.Now();
  const WallTime wall = clock_.WallNow();
  wall_offset_ns_.store(time_internal::SatSub(wall.nanos(), mono.nanos()),
                        std::memory_order_relaxed);
  FL_ASSERT(max_offset_us_ >= 1 && forward_jump_ns_ > backward_jump_ns_);
  FL_ASSERT(backward_jump_ns_ > step_dead_band_ns_ && step_dead_band_ns_ > 0);
}

uint64_t Hlc::ReadPhysicalUs() {
  if (!options_.detect_clock_jumps)
    return HlcTimestamp::FromWallTime(clock_.WallNow()).physical_us();
  const MonoTime mono = clock_.Now();
  const WallTime wall = clock_.WallNow();
  const int64_t offset_ns = time_internal::SatSub(wall.nanos(), mono.nanos());
  const int64_t baseline_ns = wall_offset_ns_.load(std::memory_order_relaxed);
  // Steady state: wall - mono within the dead band of the baseline (read jitter, or no step at
  // all). Nothing is written, so threads do not contend on this line.
  const int64_t drift_ns = time_internal::SatSub(offset_ns, baseline_ns);
  if (drift_ns < step_dead_band_ns_ && drift_ns > -step_dead_band_ns_) {
    return HlcTimestamp::FromWallTime(wall).physical_us();
  }
  // A suspected step. If this thread was descheduled between the two reads above, wall - mono is
  // off by the pause, which would fake a forward step; confirm with a fresh reading whose wall
  // read is sandwiched between two monotonic reads, and trust it only if the sandwich is tight.
  const MonoTime before = clock_.Now();
  const WallTime confirmed = clock_.WallNow();
  const MonoTime after = clock_.Now();
  FL_ASSERT(after >= before);  // the Clock contract: monotonic time never decreases
  if ((after - before).nanos() < step_dead_band_ns_) {
    CheckJump(time_internal::SatSub(confirmed.nanos(), before.nanos()));
  }
  return HlcTimestamp::FromWallTime(confirmed).physical_us();
}

void Hlc::CheckJump(int64_t wall_minus_mono_ns) {
  // exchange, not store: concurrent readers that race on one step see telescoping deltas, so a
  // step is reported by the reader that swapped it in, once.
  const int64_t previous = wall_offset_ns_.exchange(wall_minus_mono_ns, std::memory_order_relaxed);
  const int64_t step_ns = time_internal::SatSub(wall_minus_mono_ns, previous);
  if (step_ns >= forward_jump_ns_) {
    forward_jumps_.fetch_add(1, std::memory_order_relaxed);
    Alarm(HlcAlarmKind::kForwardJump, Duration::Nanos(step_ns), HlcTimestamp());
  } else if (step_ns < -backward_jump_ns_) {
    backward_jumps_.fetch_add(1, std::memory_order_relaxed);
    Alarm(HlcAlarmKind::kBackwardJump, Duration::Nanos(step_ns), HlcTimestamp());
  }
}

uint64_t Hlc::Advance(uint64_t remote_raw, uint64_t pt_us) {
  FL_ASSERT(pt_us <= HlcTimestamp::kPhysicalMaxUs);
  uint64_t current = state_.load(std::memory_order_acquire);
  uint64_t next = 0;
  bool carried = false;
  for (;;) {
    // base = max((l', c'), (l_m, c_m)) in lexicographic order, which is the packed order.
    const uint64_t base = current > remote_raw ? current : remote_raw;
    if (pt_us > (base >> kShift)) {
      next = pt_us << kShift;  // l = pt, c = 0
      carried = false;
    } else {
      // l = max(l', l_m) (>= pt); c = c of whichever is larger, + 1 — the paper's three cases
      // collapse into "base + 1". c == 4095 carries into the physical part.
      FL_ASSERT_MSG(base != UINT64_MAX, "HLC exhausted: physical part at its 52-bit maximum");
      next = base + 1;
      carried = (next & HlcTimestamp::kLogicalMax) == 0;
    }
    if (state_.compare_exchange_weak(current, next, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      break;
    }
  }
  FL_ASSERT(next > remote_raw && (next >> kShift) >= pt_us);
  if (__builtin_expect(carried, 0)) {
    overflows_.fetch_add(1, std::memory_order_relaxed);
    Alarm(HlcAlarmKind::kLogicalOverflow, Duration::Zero(), HlcTimestamp::FromRaw(next));
  }
  if (__builtin_expect((next >> kShift) > reserved_us_.load(std::memory_order_relaxed), 0)) {
    bound_exceeded_.fetch_add(1, std::memory_order_relaxed);
    Alarm(HlcAlarmKind::kUpperBoundExceeded, Duration::Zero(), HlcTimestamp::FromRaw(next));
  }
  return next;
}

Status Hlc::CheckRemote(HlcTimestamp remote, uint64_t pt_us) {
  const uint64_t remote_us = remote.physical_us();
  if (remote_us <= pt_us || remote_us - pt_us <= max_offset_us_) return Status::Ok();
  rejections_.fetch_add(1, std::memory_order_relaxed);
  FL_PROBE("hlc.remote_too_far_ahead");
  return FailedPreconditionError("remote HLC timestamp " + remote.ToString() + " is " +
                                 std::to_string(remote_us - pt_us) +
                                 "us ahead of the local physical clock, more than max_offset " +
                                 std::to_string(max_offset_us_) + "us");
}

HlcTimestamp Hlc::Now() {
  const uint64_t pt_us = ReadPhysicalUs();
  return HlcTimestamp::FromRaw(Advance(0, pt_us));
}

Result<HlcTimestamp> Hlc::Update(HlcTimestamp remote) {
  const uint64_t pt_us = ReadPhysicalUs();
  FL_RETURN_IF_ERROR(CheckRemote(remote, pt_us));
  return HlcTimestamp::FromRaw(Advance(remote.raw(), pt_us));
}

Status Hlc::Observe(HlcTimestamp remote) {
  const uint64_t pt_us = ReadPhysicalUs();
  FL_RETURN_IF_ERROR(CheckRemote(remote, pt_us));
  uint64_t current = state_.load(std::memory_order_acquire);
  // Stale remote: nothing to do, no CAS (the common case between nodes that talk often).
  while (remote.raw() > current) {
    if (state_.compare_exchange_weak(current, remote.raw(), std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      break;
    }
  }
  FL_ASSERT(state_.load(std::memory_order_relaxed) >= remote.raw());
  return Status::Ok();
}

HlcTimestamp Hlc::PhysicalNow() { return HlcTimestamp::FromParts(ReadPhysicalUs(), 0); }

void Hlc::Restore(HlcTimestamp floor) {
  // (P, 4095): the next event is at least (P + 1, 0), above any (P, c) issued before the crash.
  const uint64_t target = floor.raw() | HlcTimestamp::kLogicalMax;
  uint64_t current = state_.load(std::memory_order_acquire);
  while (target > current) {
    if (state_.compare_exchange_weak(current, target, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      break;
    }
  }
  FL_ASSERT(state_.load(std::memory_order_acquire) >= target);
}

Status Hlc::ReserveUpTo(HlcPersistence& persistence, Duration window) {
  if (window < Duration::Micros(1) || window > kReserveWindowMax) {
    return InvalidArgumentError("reserve window must be in [1us, 1h]");
  }
  const uint64_t pt_us = ReadPhysicalUs();
  const uint64_t current_us = current().physical_us();
  const uint64_t base_us = current_us > pt_us ? current_us : pt_us;
  uint64_t bound_us = base_us + static_cast<uint64_t>(window.micros());
  if (bound_us > HlcTimestamp::kPhysicalMaxUs) bound_us = HlcTimestamp::kPhysicalMaxUs;
  // Never lower: timestamps up to the previous bound may already have been issued.
  if (bound_us < last_reserved_us_) bound_us = last_reserved_us_;
  FL_RETURN_IF_ERROR(persistence.Store(bound_us));
  // Published only once durable: until now the previous bound stays in force.
  last_reserved_us_ = bound_us;
  reserved_us_.store(bound_us, std::memory_order_release);
  FL_ASSERT(reserved_physical_us() >= base_us);
  return Status::Ok();
}

HlcStats Hlc::stats() const {
  HlcStats s;
  s.forward_jump_alarms = forward_jump_alarms();
  s.backward_jumps = backward_jumps();
  s.logical_overflows = logical_overflows();
  s.remote_rejections = remote_rejections();
  s.upper_bound_exceeded = upper_bound_exceeded();
  return s;
}

void Hlc::Alarm(HlcAlarmKind kind, Duration jump, HlcTimestamp ts) {
  if (!options_.on_alarm) return;
  HlcAlarm alarm;
  alarm.kind = kind;
  alarm.jump = jump;
  alarm.ts = ts;
  options_.on_alarm(alarm);
}

// ---- HlcPersistence ----

HlcPersistence::HlcPersistence(Disk* disk, std::string file_name)
    : disk_(disk), file_(std::move(file_name)) {
  FL_ASSERT(disk != nullptr);
  FL_ASSERT(!file_.empty());
}

Result<uint64_t> HlcPersistence::Load() {
  // Sync first, so that what is read is durable: after a failed Store the file may hold an
  // unsynced slot that is visible but could still vanish or tear, and adopting it as the newest
  // would make the next Store overwrite the slot that is actually durable.
  FL_RETURN_IF_ERROR(disk_->Sync(file_));
  FL_ASSIGN_OR_RETURN(std::vector<uint8_t> data, disk_->ReadAll(file_));
  loaded_ = true;
  uint64_t best_sequence = 0;
  uint64_t best_bound_us = 0;
  uint32_t best_slot = 1;  // so that with no valid slot the next write goes to slot 0
  for (uint32_t slot = 0; slot < 2; ++slot) {
    const size_t offset = slot * kSlotBytes;
    if (data.size() < offset + kSlotPayloadBytes + 4) continue;  // absent or cut short
    const std::span<const uint8_t> bytes(data.data() + offset, kSlotPayloadBytes + 4);
    ByteReader r(bytes);
    uint32_t magic = 0;
    uint8_t version = 0;
    uint64_t sequence = 0;
    uint64_t bound_us = 0;
    uint32_t crc = 0;
    Status parsed = r.U32(&magic);
    if (parsed.ok()) parsed = r.U8(&version);
    if (parsed.ok()) parsed = r.U64(&sequence);
    if (parsed.ok()) parsed = r.U64(&bound_us);
    if (parsed.ok()) parsed = r.U32(&crc);
    // The length was checked above, so no read can fail.
    FL_ASSERT(parsed.ok() && r.empty());
    if (crc != Crc32c(bytes.first(kSlotPayloadBytes))) continue;  // torn or corrupt
    if (magic != kPersistMagic || version != kPersistVersion) continue;
    if (sequence == 0 || bound_us == 0 || bound_us > HlcTimestamp::kPhysicalMaxUs) continue;
    if (sequence > best_sequence) {
      best_sequence = sequence;
      best_bound_us = bound_us;
      best_slot = slot;
    }
  }
  next_slot_ = 1 - best_slot;
  sequence_ = best_sequence;
  if (best_sequence == 0) {
    return DataLossError("HLC bound file " + file_ + " has no valid slot (torn or corrupt)");
  }
  FL_ASSERT(best_bound_us > 0 && next_slot_ < 2);
  return best_bound_us;
}

Status HlcPersistence::Store(uint64_t bound_us) {
  FL_ASSERT(bound_us > 0 && bound_us <= HlcTimestamp::kPhysicalMaxUs);
  if (!loaded_) {
    // Learn which slot holds the newest bound so this write does not overwrite it. A missing or
    // wholly corrupt file has nothing worth keeping.
    Result<uint64_t> existing = Load();
    const StatusCode code = existing.status().code();
    if (code != StatusCode::kOk && code != StatusCode::kNotFound && code != StatusCode::kDataLoss) {
      return existing.status();
    }
    loaded_ = true;
  }
  const uint64_t sequence = sequence_ + 1;
  std::vector<uint8_t> slot;
  slot.reserve(kSlotBytes);
  ByteWriter w(&slot);
  w.U32(static_cast<uint32_t>(kPersistMagic));
  w.U8(kPersistVersion);
  w.U64(sequence);
  w.U64(bound_us);
  w.U32(Crc32c(slot));
  slot.resize(kSlotBytes, 0);
  FL_RETURN_IF_ERROR(disk_->Write(file_, next_slot_ * kSlotBytes, slot));
  FL_RETURN_IF_ERROR(disk_->Sync(file_));
  sequence_ = sequence;
  next_slot_ = 1 - next_slot_;
  FL_ASSERT(next_slot_ < 2);
  return Status::Ok();
}

}  // namespace faultline
