#include "faultline/sim/scheduler.h"

#include "faultline/core/assert.h"

namespace faultline::sim {

Scheduler::Scheduler(Rng* rng, uint64_t* hash) : rng_(rng), hash_(hash) {
  FL_ASSERT(rng != nullptr);
  heap_.reserve(1024);
  slots_.reserve(1024);
}

uint32_t Scheduler::AllocSlot() {
  if (!free_slots_.empty()) {
    const uint32_t s = free_slots_.back();
    free_slots_.pop_back();
    return s;
  }
  FL_ASSERT(slots_.size() < UINT32_MAX);
  slots_.emplace_back();
  return static_cast<uint32_t>(slots_.size() - 1);
}

EventId Scheduler::AtNodeDeadline(SimTime at, EventOwner owner, int64_t mono_deadline_ns,
                                  EventCallback callback) {
  const EventId id = At(at, owner, std::move(callback));
  slots_[static_cast<uint32_t>(id.value)].mono_deadline_ns = mono_deadline_ns;
  return id;
}

int64_t Scheduler::mono_deadline_ns(EventId id) const {
  FL_ASSERT(IsPending(id));
  return slots_[static_cast<uint32_t>(id.value)].mono_deadline_ns;
}

EventId Scheduler::At(SimTime at, EventOwner owner, EventCallback callback) {
  FL_ASSERT(static_cast<bool>(callback));
  if (at < now_) at = now_;
  const uint32_t s = AllocSlot();
  Slot& slot = slots_[s];
  FL_ASSERT(!slot.live);
  slot.callback = std::move(callback);
  slot.owner = owner;
  slot.mono_deadline_ns = INT64_MIN;
  slot.live = true;
  ++live_;
  Push(HeapEntry{at.nanos(), rng_->Next(), seq_++, s, slot.generation});
  return EventId{(static_cast<uint64_t>(slot.generation) << 32) | s};
}

bool Scheduler::IsPending(EventId id) const {
  const uint32_t s = static_cast<uint32_t>(id.value);
  const uint32_t gen = static_cast<uint32_t>(id.value >> 32);
  return id && s < slots_.size() && slots_[s].live && slots_[s].generation == gen;
}

bool Scheduler::Cancel(EventId id) {
  if (!IsPending(id)) return false;
  const uint32_t s = static_cast<uint32_t>(id.value);
  Slot& slot = slots_[s];
  slot.callback.Reset();
  slot.live = false;
  ++slot.generation;
  if (slot.generation == 0) slot.generation = 1;  // zero would make EventId{0} valid
  --live_;
  free_slots_.push_back(s);
  return true;
}

EventId Scheduler::PopNext(SimTime limit) {
  while (!heap_.empty()) {
    const HeapEntry& top = heap_[0];
    const Slot& slot = slots_[top.slot];
    if (!slot.live || slot.generation != top.generation) {
      PopTop();  // cancelled: skip the stale entry
      continue;
    }
    if (top.time_ns > limit.nanos()) return EventId{};
    const HeapEntry e = PopTop();
    FL_ASSERT(e.time_ns >= now_.nanos());
    now_ = SimTime::FromNanos(e.time_ns);
    if (hash_ != nullptr) *hash_ = HashMix(*hash_, static_cast<uint64_t>(e.time_ns) ^ (e.seq << 20));
    return EventId{(static_cast<uint64_t>(e.generation) << 32) | e.slot};
  }
  return EventId{};
}

EventOwner Scheduler::owner(EventId id) const {
  FL_ASSERT(IsPending(id));
  return slots_[static_cast<uint32_t>(id.value)].owner;
}

void Scheduler::Run(EventId id) {
  FL_ASSERT(IsPending(id));
  const uint32_t s = static_cast<uint32_t>(id.value);
  // Move the callback out first: it may schedule events that reallocate slots_.
  EventCallback cb = std::move(slots_[s].callback);
  Cancel(id);
  ++executed_;
  cb();
}

void Scheduler::Requeue(EventId id, SimTime at) {
  FL_ASSERT(IsPending(id));
  if (at < now_) at = now_;
  const uint32_t s = static_cast<uint32_t>(id.value);
  Push(HeapEntry{at.nanos(), rng_->Next(), seq_++, s, slots_[s].generation});
}

void Scheduler::Push(const HeapEntry& e) {
  heap_.push_back(e);
  size_t i = heap_.size() - 1;
  while (i > 0) {
    const size_t parent = (i - 1) / 4;
    if (!Less(e, heap_[parent])) break;
    heap_[i] = heap_[parent];
    i = parent;
  }
  heap_[i] = e;
}

Scheduler::HeapEntry Scheduler::PopTop() {
  FL_ASSERT(!heap_.empty());
  const HeapEntry top = heap_[0];
  const HeapEntry last = heap_.back();
  heap_.pop_back();
  const size_t n = heap_.size();
  if (n == 0) return top;
  size_t i = 0;
  while (true) {
    const size_t first = 4 * i + 1;
    if (first >= n) break;
    size_t best = first;
    const size_t end = first + 4 < n ? first + 4 : n;
    for (size_t c = first + 1; c < end; ++c) {
      if (Less(heap_[c], heap_[best])) best = c;
    }
    if (!Less(heap_[best], last)) break;
    heap_[i] = heap_[best];
    i = best;
  }
  heap_[i] = last;
  return top;
}

}  // namespace faultline::sim
