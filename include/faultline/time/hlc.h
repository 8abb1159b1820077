// File: faultline/time/hlc.h
//
// Hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks", 2014), lock-free.
//
// An HLC timestamp (l, c) pairs l, the largest physical time this node has heard of, with c, a
// logical counter that orders events sharing one l. It stays within max_offset of physical time
// (so it can answer "what happened before wall time T") while, like a Lamport clock, it respects
// causality: if event e happened before f (same node earlier, or e sent a message received
// before f), then ts(e) < ts(f). Ties between concurrent events of different nodes are broken by
// node id (HlcStamp), which gives a total order.
//
// Rules, exactly as in the paper (pt = this node's physical clock, read at the event):
//   send / local event:  l' = l;  l = max(l', pt);          c = (l == l') ? c + 1 : 0
//   receive of (l_m, c_m): l' = l; l = max(l', l_m, pt);
//                         c = (l == l' == l_m) ? max(c, c_m) + 1
//                           : (l == l')        ? c + 1
//                           : (l == l_m)       ? c_m + 1 : 0
// l only ever takes a value some node read from its physical clock, never "l + 1" on its own (the
// naive variant lets l run away from physical time; the paper's TLA+ model shows it).
//
// Invariants (property-tested in src/time/hlc_test.cc): every timestamp a clock issues is larger
// than the one before (also across threads); l >= pt of the reading used; e -> f implies
// ts(e) < ts(f); and while every node's wall clock is within max_offset of every other's (so
// Update never rejects), l - pt <= max_offset. Slack on that last bound: +1 µs per logical
// overflow (below), the size of a wall clock's own backward step until real time catches up,
// and, right after Recover(), up to the reservation window.
//
// Packing (YugabyteDB's HybridTime layout): one uint64 = physical_us << 12 | logical.
//   bits 63..12  physical part: microseconds since the Unix epoch (52 bits; lasts to July 2112)
//   bits 11..0   logical counter c, 0..4095
// Comparing the packed integers is comparing (l, c) lexicographically, and "c + 1" is "raw + 1".
// When c would pass 4095 the increment carries into the physical part (+1 µs, c = 0) — the result
// is still larger than every earlier timestamp, and the carry is counted (logical_overflows()).
//
// Thread safety: Hlc is lock-free and thread-safe. Its whole state is one std::atomic<uint64_t>
// updated by a compare-and-swap loop; Now(), Update(), Observe() and current() may be called from
// any thread. ReserveUpTo() touches a Disk, which belongs to one thread (see env/disk.h): call it
// from the disk's owner. Now(), Update() and Observe() never allocate.
//
// Clock-jump detection: every physical reading also reads the monotonic clock (Clock::Now()) and
// compares wall - mono with the value remembered from earlier readings. A change is a step of the
// wall clock that the monotonic clock did not see (NTP step, operator, VM migration); NTP slewing
// moves both clocks alike and is not a step. Changes below max_offset / 20 are read jitter and
// leave the remembered value alone (so small steps add up until they pass it); a larger one is
// confirmed by a second reading whose wall read sits between two monotonic reads, so that a
// thread descheduled between its reads is not taken for a step. Then:
//   - forward step >= max_offset / 2: forward_jump_alarms() += 1 and on_alarm(kForwardJump).
//     CockroachDB treats this as fatal (opt-in); the callback may self-fence the node.
//   - backward step > max_offset / 10: backward_jumps() += 1 and on_alarm(kBackwardJump). The HLC
//     stays monotone regardless: l keeps its value and c ticks until pt catches up.
//
// Restart monotonicity: the state lives in memory, so after a crash a node whose wall clock reads
// less than its last issued timestamp would go backwards. Two remedies (CockroachDB offers both):
//   (a) Persisted upper bound, implemented here. ReserveUpTo(persistence, window) durably records a
//       physical bound B = pt + window (Write + Sync through HlcPersistence) before the clock may
//       issue timestamps up to B; Recover() loads B after a restart and starts the clock above it,
//       so Now() after a restart is > every timestamp issued before the crash. The owner calls
//       ReserveUpTo periodically (every window / 2 or so). Issuing past the reserved bound is not
//       blocked (monotonicity comes first) but counted in upper_bound_exceeded() and reported as
//       kUpperBoundExceeded: a crash in that state could break restart monotonicity.
//   (b) Wait out max_offset on start (CockroachDB's default): sleep max_offset (or until the wall
//       clock passes the persisted bound) before serving, so no peer can still hold a timestamp
//       above this node's new readings. Not implemented here; a caller whose bound file is lost
//       (Recover() returned kDataLoss) can fall back to it.
#pragma once

#include <atomic>
#include <compare>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "faultline/core/ids.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"
#include "faultline/env/disk.h"

namespace faultline {

// A packed HLC timestamp: physical microseconds since the Unix epoch in the high 52 bits, the
// logical counter in the low 12 bits. The default value is Min() (0), which no clock reading a
// real wall clock ever issues.
class HlcTimestamp {
 public:
  static constexpr int kLogicalBits = 12;
  static constexpr uint64_t kLogicalMax = (uint64_t{1} << kLogicalBits) - 1;  // 4095
  static constexpr uint64_t kPhysicalMaxUs = (uint64_t{1} << (64 - kLogicalBits)) - 1;

  constexpr HlcTimestamp() = default;
  static constexpr HlcTimestamp FromRaw(uint64_t raw) { return HlcTimestamp(raw); }
  // physical_us <= kPhysicalMaxUs and logical <= kLogicalMax, else a programmer error.
  static constexpr HlcTimestamp FromParts(uint64_t physical_us, uint64_t logical) {
    FL_ASSERT(physical_us <= kPhysicalMaxUs);
    FL_ASSERT(logical <= kLogicalMax);
    return HlcTimestamp(physical_us << kLogicalBits | logical);
  }
  // (floor(t / 1 µs), 0), saturated to [0, kPhysicalMaxUs]: a wall clock before 1970 reads as 0.
  static constexpr HlcTimestamp FromWallTime(WallTime t) {
    const int64_t ns = t.nanos();
    if (ns <= 0) return HlcTimestamp();
    const uint64_t us = static_cast<uint64_t>(ns / 1000);
    return FromParts(us > kPhysicalMaxUs ? kPhysicalMaxUs : us, 0);
  }
  static constexpr HlcTimestamp Min() { return HlcTimestamp(0); }
  static constexpr HlcTimestamp Max() { return HlcTimestamp(UINT64_MAX); }

  constexpr uint64_t raw() const { return raw_; }
  constexpr uint64_t physical_us() const { return raw_ >> kLogicalBits; }
  constexpr uint64_t logical() const { return raw_ & kLogicalMax; }
  // The physical part as a wall-clock instant (the logical part is dropped).
  constexpr WallTime ToWallTime() const {
    return WallTime::FromNanos(static_cast<int64_t>(physical_us()) * 1000);
  }
  constexpr auto operator<=>(const HlcTimestamp&) const = default;

  // "physical_us.logical", e.g. "1700000000000000.3".
  std::string ToString() const;

 private:
  constexpr explicit HlcTimestamp(uint64_t raw) : raw_(raw) {}
  uint64_t raw_ = 0;
};

// A timestamp with the node that issued it: the total order (ts, then node id) over all events of
// a cluster. Two nodes may issue the same HlcTimestamp; one node never issues it twice.
struct HlcStamp {
  HlcTimestamp ts;
  NodeId node;
  constexpr auto operator<=>(const HlcStamp&) const = default;
};

enum class HlcAlarmKind : uint8_t {
  kForwardJump,         // wall clock stepped forward >= max_offset / 2 between readings
  kBackwardJump,        // wall clock stepped backward > max_offset / 10 between readings
  kLogicalOverflow,     // c passed 4095 and carried into the physical part
  kUpperBoundExceeded,  // a timestamp above the durably reserved bound was issued
};
std::string_view HlcAlarmKindName(HlcAlarmKind kind);

struct HlcAlarm {
  HlcAlarmKind kind = HlcAlarmKind::kForwardJump;
  // For jumps: the step of (wall - mono) between two readings (positive = forward).
  Duration jump;
  // For overflow and bound alarms: the timestamp issued.
  HlcTimestamp ts;
};

struct HlcOptions {
  // The largest tolerated offset between any two nodes' wall clocks. Update() rejects a remote
  // timestamp more than this ahead of the local physical clock. Whole microseconds, in
  // [1 µs, kMaxOffsetMax].
  Duration max_offset = Duration::Millis(500);
  // Read the monotonic clock beside the wall clock to detect steps (see the file comment). Off
  // saves one Clock call per event (three on the rare reading that suspects a step).
  bool detect_clock_jumps = true;
  // Called on every alarm, on the thread whose call detected it, after the counter moved. Must be
  // thread-safe and must not call back into this Hlc. Empty: counters only.
  std::function<void(const HlcAlarm&)> on_alarm;

  static constexpr Duration kMaxOffsetMax = Duration::Seconds(5);
  Status Validate() const;
};

class HlcPersistence;

// Counters since creation. Each is exact (atomic), read individually (not one snapshot).
struct HlcStats {
  uint64_t forward_jump_alarms = 0;
  uint64_t backward_jumps = 0;
  uint64_t logical_overflows = 0;
  uint64_t remote_rejections = 0;
  uint64_t upper_bound_exceeded = 0;
};

class Hlc {
 public:
  // Reads physical time from `clock` (which must outlive the Hlc). kInvalidArgument for invalid
  // options.
  static Result<std::unique_ptr<Hlc>> Create(Clock& clock, HlcOptions options);

  // Restart path of remedy (a): loads the bound from `persistence`, creates the clock above it
  // (Restore), then reserves a fresh bound (ReserveUpTo(persistence, window)). A node with no
  // bound file yet (first boot) starts fresh. kDataLoss when the file is torn or corrupt (the
  // caller may fall back to waiting out max_offset, remedy (b)); the disk's error if I/O fails.
  static Result<std::unique_ptr<Hlc>> Recover(Clock& clock, HlcOptions options,
                                              HlcPersistence& persistence, Duration window);

  Hlc(const Hlc&) = delete;
  Hlc& operator=(const Hlc&) = delete;

  // A send or local event: returns a timestamp strictly greater than every timestamp this clock
  // returned or observed before, with physical part >= the physical clock reading.
  HlcTimestamp Now();

  // A receive event for a message stamped `remote`: returns its timestamp, strictly greater than
  // `remote` and than everything this clock returned before. kFailedPrecondition — and the clock
  // is left untouched — when remote.physical_us() is more than max_offset ahead of the local
  // physical clock (CockroachDB's UpdateAndCheckMaxOffset): either the sender's clock or ours is
  // broken, and accepting would drag this clock (and everyone it talks to) away from real time. A
  // remote at most max_offset ahead is accepted. A stale remote (<= current()) takes the same path
  // as Now(): one CAS, nothing to merge.
  Result<HlcTimestamp> Update(HlcTimestamp remote);

  // CockroachDB's Update: ratchets the clock to at least `remote` without issuing a timestamp (the
  // next Now() then returns > remote; Observe followed by Now() is exactly the paper's receive
  // rule). Same clock read, max_offset check and error as Update(). Fast path (CockroachDB PR
  // #56708): a remote <= current() then costs one atomic load and no CAS — no write to the shared
  // state, so it scales across threads.
  Status Observe(HlcTimestamp remote);

  // The last timestamp issued or observed (Min() before the first event). Not an event.
  HlcTimestamp current() const {
    return HlcTimestamp::FromRaw(state_.load(std::memory_order_acquire));
  }
  // The physical clock as a timestamp (pt, 0), with jump detection. Not an event.
  HlcTimestamp PhysicalNow();

  // Raises the clock to at least (floor.physical_us, 4095): every later timestamp has a physical
  // part > floor.physical_us(). Used after a restart with a persisted bound; no max_offset check.
  void Restore(HlcTimestamp floor);

  // Durably reserves the physical bound B = max(current, pt).physical + window (never lower than
  // an earlier reservation) through `persistence` (Write + Sync), and only after that succeeds
  // lets the clock issue timestamps up to B without an alarm. window in [1 µs, 1 h], else
  // kInvalidArgument; the disk's error on I/O failure (the previous bound stays in force).
  Status ReserveUpTo(HlcPersistence& persistence, Duration window);
  // The physical bound of the last successful reservation; kPhysicalMaxUs when none was made (no
  // persistence in use: nothing is counted as exceeding).
  uint64_t reserved_physical_us() const { return reserved_us_.load(std::memory_order_acquire); }

  Duration max_offset() const { return options_.max_offset; }
  uint64_t forward_jump_alarms() const { return forward_jumps_.load(std::memory_order_relaxed); }
  uint64_t backward_jumps() const { return backward_jumps_.load(std::memory_order_relaxed); }
  uint64_t logical_overflows() const { return overflows_.load(std::memory_order_relaxed); }
  uint64_t remote_rejections() const { return rejections_.load(std::memory_order_relaxed); }
  uint64_t upper_bound_exceeded() const { return bound_exceeded_.load(std::memory_order_relaxed); }
  HlcStats stats() const;

 private:
  Hlc(Clock& clock, HlcOptions options);
  // Reads the wall clock as physical µs; with detect_clock_jumps, also checks for a step.
  uint64_t ReadPhysicalUs();
  void CheckJump(int64_t wall_minus_mono_ns);
  // One event at physical reading pt_us, merging `remote_raw` (0 for a send or local event):
  // computes the paper's rule from max(state, remote) by CAS and returns the new state.
  uint64_t Advance(uint64_t remote_raw, uint64_t pt_us);
  Status CheckRemote(HlcTimestamp remote, uint64_t pt_us);
  void Alarm(HlcAlarmKind kind, Duration jump, HlcTimestamp ts);

  Clock& clock_;
  const HlcOptions options_;
  const uint64_t max_offset_us_;
  const int64_t forward_jump_ns_;    // max_offset / 2
  const int64_t backward_jump_ns_;   // max_offset / 10
  const int64_t step_dead_band_ns_;  // max_offset / 20: smaller changes of wall - mono are noise
  // Only ReserveUpTo (one thread, the disk's owner) touches this: the highest bound stored.
  uint64_t last_reserved_us_ = 0;

  // Each hot field on its own cache line: state_ is CAS-ed on every event, wall_offset_ns_ is
  // read on every event and written only when the wall clock steps.
  alignas(64) std::atomic<uint64_t> state_{0};
  alignas(64) std::atomic<int64_t> wall_offset_ns_{0};
  std::atomic<uint64_t> reserved_us_{HlcTimestamp::kPhysicalMaxUs};
  alignas(64) std::atomic<uint64_t> forward_jumps_{0};
  std::atomic<uint64_t> backward_jumps_{0};
  std::atomic<uint64_t> overflows_{0};
  std::atomic<uint64_t> rejections_{0};
  std::atomic<uint64_t> bound_exceeded_{0};
};

// Stores the HLC's reserved physical bound in a file on a Disk, durably (Write + Sync), for
// restart monotonicity (remedy (a) above). The file holds two 32-byte slots written alternately,
// each [u32 magic "FLHB"][u8 version 1][u64 sequence][u64 bound_us][u32 crc32c of the preceding
// 21 bytes], padded with zeros. A crash during a write can tear only the slot being written; the
// other still holds the previous bound, which was in force until the new write was synced. Load()
// picks the valid slot with the highest sequence.
//
// Single-threaded, like the Disk it uses. The Disk must outlive it.
class HlcPersistence {
 public:
  static constexpr size_t kSlotBytes = 32;

  HlcPersistence(Disk* disk, std::string file_name);

  // The last stored bound (physical µs). Syncs the file first, so that what it reads is durable.
  // kNotFound when the file does not exist (first boot); kDataLoss when it exists but no slot is
  // valid (torn, corrupt, wrong magic or version); the disk's error when the sync or read fails.
  Result<uint64_t> Load();
  // Durably stores `bound_us` (> 0) in the slot not holding the newest durable bound (loading the
  // file first if this object has not). The disk's error when the write or sync fails; a retry
  // rewrites the same slot, so the other one keeps the last durable bound.
  Status Store(uint64_t bound_us);

  const std::string& file_name() const { return file_; }

 private:
  Disk* disk_;
  std::string file_;
  // Sequence of the newest valid slot seen or written (0: none). Store writes sequence_ + 1 into
  // next_slot_, never over the slot holding the newest valid bound.
  uint64_t sequence_ = 0;
  uint32_t next_slot_ = 0;
  bool loaded_ = false;
};

}  // namespace faultline
