// File: faultline/resilience/internal/breaker_windows.h
//
// Not part of the API: the sliding windows behind CircuitBreaker (faultline/resilience/
// circuit_breaker.h). They live in a header only because CircuitBreaker::Record, an inline hot
// path, adds to them; the out-of-line parts are in src/resilience/circuit_breaker.cc.
//
// Thread safety: Add and Snapshot are lock-free and may race; Reset is not atomic with respect to
// concurrent Add (see circuit_breaker.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "faultline/core/ids.h"
#include "faultline/core/time.h"

namespace faultline {
namespace breaker_internal {

struct Tally {
  int64_t calls = 0;
  int64_t failures = 0;
  int64_t slow = 0;
};

// Two counters in one atomic word: `high` in bits 32..63 and `low` in bits 0..31 stored with a
// bias of 2^31, so a transiently negative low field (a subtraction applied before the matching
// addition) never borrows from the high one. Sums are exact modulo 2^64 whatever the order.
inline constexpr uint64_t kLowBias = uint64_t{1} << 31;
constexpr uint64_t Pair(int64_t high, int64_t low) {
  return (static_cast<uint64_t>(high) << 32) + static_cast<uint64_t>(low);
}
constexpr int64_t PairLow(uint64_t w) {
  return static_cast<int64_t>(w & 0xffff'ffffULL) - static_cast<int64_t>(kLowBias);
}
constexpr int64_t PairHigh(uint64_t w) {
  return static_cast<int32_t>(static_cast<uint32_t>(w >> 32));
}

// The last N outcomes. Slots hold an outcome code; `counts_` = Pair(slow, failures) over slots.
class CountWindow {
 public:
  explicit CountWindow(uint32_t size);
  // Adds one outcome; returns the totals right after it.
  Tally Add(bool failure, bool slow) {
    const uint64_t ticket = seq_.fetch_add(1, std::memory_order_relaxed);
    const uint32_t slot = FastMod(static_cast<uint32_t>(ticket));
    const uint8_t code = static_cast<uint8_t>(kOk + (failure ? 1 : 0) + (slow ? 2 : 0));
    uint8_t old = slots_[slot].load(std::memory_order_relaxed);
    // Writing the value a slot already holds is a no-op: skip the locked swap (the common case
    // of a success replacing a success).
    if (old != code) {
      old = slots_[slot].exchange(code, std::memory_order_relaxed);
      const int64_t d_fail = Failures(code) - Failures(old);
      const int64_t d_slow = Slow(code) - Slow(old);
      if (d_fail != 0 || d_slow != 0) {
        counts_.fetch_add(Pair(d_slow, d_fail), std::memory_order_relaxed);
      }
    }
    const uint64_t w = counts_.load(std::memory_order_relaxed);
    Tally t;
    t.calls = static_cast<int64_t>(ticket + 1 < size_ ? ticket + 1 : size_);
    t.failures = Clamp(PairLow(w));
    t.slow = Clamp(PairHigh(w));
    return t;
  }
  Tally Snapshot() const;
  // Empties the window. Not atomic with respect to concurrent Add (see the header comment).
  void Reset();

 private:
  enum : uint8_t { kEmpty = 0, kOk = 1, kFail = 2, kSlowOk = 3, kSlowFail = 4 };
  static int64_t Failures(uint8_t code) { return (code == kFail || code == kSlowFail) ? 1 : 0; }
  static int64_t Slow(uint8_t code) { return code >= kSlowOk ? 1 : 0; }
  static int64_t Clamp(int64_t v) { return v < 0 ? 0 : v; }
  // Lemire's fastmod: a % size_ without a division.
  uint32_t FastMod(uint32_t a) const {
    const uint64_t low = magic_ * a;
    return static_cast<uint32_t>((static_cast<UInt128>(low) * size_) >> 64);
  }

  const uint32_t size_;
  const uint64_t magic_;
  alignas(64) std::atomic<uint64_t> seq_{0};
  std::atomic<uint64_t> counts_{kLowBias};
  std::unique_ptr<std::atomic<uint8_t>[]> slots_;
};

// Buckets of a fixed duration keyed by tick = (t - origin) / bucket. Each bucket and the totals
// hold Pair(calls, failures) plus a separate slow count.
class TimeWindow {
 public:
  TimeWindow(uint32_t buckets, Duration bucket, MonoTime origin);
  // Adds one outcome at instant `at`. False (nothing added) when `at` is a whole window older
  // than the newest bucket, or a rotation stayed in progress.
  bool Add(MonoTime at, bool failure, bool slow, Tally* out) {
    const int64_t tick = Tick(at);
    uint64_t head = head_.load(std::memory_order_acquire);
    if ((head & 1) != 0 || tick > static_cast<int64_t>(head >> 1)) {
      if (!Advance(tick, &head)) return false;
    }
    if (tick <= static_cast<int64_t>(head >> 1) - static_cast<int64_t>(size_)) return false;
    Bucket& b = buckets_[Slot(tick)];
    const uint64_t d = Pair(1, failure ? 1 : 0);
    b.pair.fetch_add(d, std::memory_order_relaxed);
    const uint64_t w = totals_.fetch_add(d, std::memory_order_relaxed) + d;
    int64_t slow_total = slow_.load(std::memory_order_relaxed);
    if (slow) {
      b.slow.fetch_add(1, std::memory_order_relaxed);
      slow_total = slow_.fetch_add(1, std::memory_order_relaxed) + 1;
    }
    out->calls = Clamp(PairHigh(w));
    out->failures = Clamp(PairLow(w));
    out->slow = Clamp(slow_total);
    return true;
  }
  Tally Snapshot() const;
  void Reset(MonoTime now);

 private:
  struct Bucket {
    std::atomic<uint64_t> pair{0};
    std::atomic<int64_t> slow{0};
  };
  static int64_t Clamp(int64_t v) { return v < 0 ? 0 : v; }
  // tick mod size_: Lemire's fastmod below 2^32 ticks, a division beyond (the same function).
  uint64_t Slot(int64_t tick) const {
    const uint64_t t = static_cast<uint64_t>(tick);
    if ((t >> 32) != 0) return t % size_;
    return static_cast<uint64_t>((static_cast<UInt128>(magic_ * t) * size_) >> 64);
  }
  int64_t Tick(MonoTime at) const {
    const int64_t since = at.nanos() - origin_ns_;
    if (since <= 0) return 0;
    // Fast path: `at` falls in the newest bucket (no division).
    const int64_t head_tick = static_cast<int64_t>(head_.load(std::memory_order_relaxed) >> 1);
    const int64_t into = since - head_tick * bucket_ns_;
    if (into >= 0 && into < bucket_ns_) return head_tick;
    return since / bucket_ns_;
  }
  // Moves the head to `tick` (evicting the buckets it reuses) or waits for a rotation in
  // progress. On success *head is the current head word and is not rotating.
  bool Advance(int64_t tick, uint64_t* head);

  const uint32_t size_;
  const uint64_t magic_;
  const int64_t bucket_ns_;
  int64_t origin_ns_;
  // (newest tick << 1) | rotating.
  alignas(64) std::atomic<uint64_t> head_{0};
  std::atomic<uint64_t> totals_{kLowBias};
  std::atomic<int64_t> slow_{0};
  std::unique_ptr<Bucket[]> buckets_;
};

}  // namespace breaker_internal

}  // namespace faultline
