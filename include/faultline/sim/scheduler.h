// File: faultline/sim/scheduler.h
//
// The simulator's event queue: single-threaded, ordered by (time, tiebreak, seq), jumping straight
// to the next event. The tiebreak is a random draw per event (from the scheduler's own stream) so
// that events due at the same instant run in a seed-dependent order — one seed explores one
// interleaving, and every seed explores another — while `seq` keeps the order total.
//
// Storage is a 4-ary min-heap of 32-byte entries plus a slot table holding each event's callback
// inline; both are reused, so steady-state scheduling performs no heap allocation. Cancel() is O(1):
// it frees the slot and the stale heap entry is skipped when it surfaces.
#pragma once

// Node code (files compiled with FAULTLINE_NODE_CODE) runs on the real runtime too: it may not see
// the simulator.
#ifdef FAULTLINE_NODE_CODE
#error "node code must not include faultline/sim/ headers"
#endif

#include <cstdint>
#include <vector>

#include "faultline/core/inline_function.h"
#include "faultline/core/random.h"
#include "faultline/core/time.h"

namespace faultline::sim {

struct SimTag {};
// True time in the simulation: the one timeline every node's clock is a function of.
using SimTime = Instant<SimTag>;

// Identifies a scheduled event: slot index in the low 32 bits, slot generation in the high 32.
struct EventId {
  uint64_t value = 0;
  explicit operator bool() const { return value != 0; }
};

// Who an event belongs to. Events of a node are parked while it is paused and dropped once the
// incarnation they were scheduled in has crashed.
struct EventOwner {
  static constexpr uint32_t kWorld = UINT32_MAX;
  static constexpr uint32_t kAnyIncarnation = UINT32_MAX;
  uint32_t node = kWorld;
  uint32_t incarnation = kAnyIncarnation;
};

using EventCallback = InlineFunction<void(), 48>;

class Scheduler {
 public:
  // `rng` draws tiebreaks; `hash` (may be null) accumulates the determinism hash.
  Scheduler(Rng* rng, uint64_t* hash);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  SimTime now() const { return now_; }

  // Schedules `callback` at max(at, now).
  EventId At(SimTime at, EventOwner owner, EventCallback callback);
  // As At(), and remembers `mono_deadline_ns`: the owner node's monotonic time before which the
  // event must not run (a node timer). The World re-arms such an event when it comes due early
  // because the node's clock rate changed after it was armed.
  EventId AtNodeDeadline(SimTime at, EventOwner owner, int64_t mono_deadline_ns,
                         EventCallback callback);
  // The deadline given to AtNodeDeadline, or INT64_MIN.
  int64_t mono_deadline_ns(EventId id) const;
  // Frees the event's slot. False when it already ran or was cancelled.
  bool Cancel(EventId id);
  bool IsPending(EventId id) const;

  // Pops the next live event, advances now() to its time and returns its id; returns an empty id
  // when the queue is empty or the next event is later than `limit`. The callback stays in its
  // slot until Run() or Park()/Drop().
  EventId PopNext(SimTime limit);
  EventOwner owner(EventId id) const;
  // Runs the popped event's callback and frees its slot.
  void Run(EventId id);
  // Frees the popped event's slot without running it.
  void Drop(EventId id) { Cancel(id); }
  // Requeues a popped (parked) event at `at`, keeping its id valid.
  void Requeue(EventId id, SimTime at);

  size_t pending() const { return live_; }
  uint64_t executed() const { return executed_; }
  // Jumps time forward with no event (e.g. RunUntil a quiet instant).
  void AdvanceTo(SimTime t) {
    if (t > now_) now_ = t;
  }

 private:
  struct HeapEntry {
    int64_t time_ns;
    uint64_t tiebreak;
    uint64_t seq;
    uint32_t slot;
    uint32_t generation;
  };
  struct Slot {
    EventCallback callback;
    uint32_t generation = 1;
    EventOwner owner;
    int64_t mono_deadline_ns = INT64_MIN;
    bool live = false;
  };
  static bool Less(const HeapEntry& a, const HeapEntry& b) {
    if (a.time_ns != b.time_ns) return a.time_ns < b.time_ns;
    if (a.tiebreak != b.tiebreak) return a.tiebreak < b.tiebreak;
    return a.seq < b.seq;
  }
  void Push(const HeapEntry& e);
  HeapEntry PopTop();
  uint32_t AllocSlot();

  Rng* rng_;
  uint64_t* hash_;
  SimTime now_;
  uint64_t seq_ = 0;
  uint64_t executed_ = 0;
  size_t live_ = 0;
  std::vector<HeapEntry> heap_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
};

}  // namespace faultline::sim
