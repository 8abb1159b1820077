// File: faultline/resilience/bulkhead.h
//
// Bulkhead: at most `concurrency_max` calls in flight, plus a bounded, time-limited FIFO wait
// queue for coroutines. The permit is RAII: destroying it releases the slot.
//
//   if (BulkheadPermit p = bulkhead->TryAcquire()) { ...call... }        // any thread
//
//   Result<BulkheadPermit> p = co_await bulkhead->Acquire(env.executor());  // a node's coroutine
//   if (!p.ok()) co_return p.status();  // kResourceExhausted: queue full, shed now
//                                        // kDeadlineExceeded: waited queue_wait_max
//                                        // kCancelled: the token was cancelled while waiting
//
// TryAcquire() never waits: it takes a slot by CAS on one atomic counter (a refusal only reads it)
// and is lock-free, allocation-free and thread-safe; so is releasing a permit while nobody waits.
// Neither reads a clock.
//
// Acquire() is the async path. It takes a free slot at once if no one is queued (FIFO: it never
// overtakes a waiter); otherwise it fails at once with kResourceExhausted when queue_depth_max
// callers already wait, else it parks the coroutine in the queue. A released slot is handed
// directly to the oldest waiter (the in-flight count does not drop, so TryAcquire cannot steal it),
// which resumes on a later turn of its executor, never inside the releaser's stack. A waiter still
// queued after queue_wait_max resumes with kDeadlineExceeded, measured by its executor's timer on
// node-monotonic time. Waiting allocates nothing: the waiter is the awaiter object in the
// coroutine's frame, linked into an intrusive list. Destroying a waiting coroutine (a crash)
// unlinks it; one whose slot was granted but which never resumed gives the slot back.
//
// The async path is single-executor: all Acquire() calls, and every release of a permit while
// coroutines may be queued, must happen on the one executor (node) thread those coroutines run
// on. (Under the simulator that is always so.) TryAcquire-only use has no such restriction.
//
// The bulkhead must outlive its permits and waiters (destroying it with either fails an
// FL_ASSERT).
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <utility>

#include "faultline/core/assert.h"
#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/cancel.h"
#include "faultline/env/executor.h"
#include "faultline/resilience/internal/striped_counters.h"

namespace faultline {

struct BulkheadOptions {
  // Calls in flight at once. 1 ..= 2^30.
  uint32_t concurrency_max = 16;
  // Coroutines that may wait in Acquire() at once; 0 means Acquire() never waits. <= 2^20.
  uint32_t queue_depth_max = 64;
  // The longest a coroutine waits in the queue. >= 0 and finite (0: never wait).
  Duration queue_wait_max = Duration::Millis(50);

  Status Validate() const;
};

struct BulkheadCounters {
  uint64_t acquired = 0;    // slots taken without waiting (TryAcquire or Acquire)
  uint64_t rejected = 0;    // TryAcquire found no free slot
  uint64_t queued = 0;      // Acquire() calls that waited
  uint64_t handed_off = 0;  // waiters granted a released slot
  uint64_t queue_full = 0;  // Acquire() refused with kResourceExhausted
  uint64_t timed_out = 0;   // waiters that gave up after queue_wait_max
  uint64_t cancelled = 0;   // waiters (or callers) whose token was cancelled
};

class Bulkhead;

// One slot of a Bulkhead; empty when default-constructed, moved-from or released.
class BulkheadPermit {
 public:
  BulkheadPermit() = default;
  BulkheadPermit(BulkheadPermit&& other) noexcept
      : bulkhead_(std::exchange(other.bulkhead_, nullptr)) {}
  BulkheadPermit& operator=(BulkheadPermit&& other) noexcept {
    if (this != &other) {
      Release();
      bulkhead_ = std::exchange(other.bulkhead_, nullptr);
    }
    return *this;
  }
  BulkheadPermit(const BulkheadPermit&) = delete;
  BulkheadPermit& operator=(const BulkheadPermit&) = delete;
  ~BulkheadPermit() { Release(); }

  bool held() const { return bulkhead_ != nullptr; }
  explicit operator bool() const { return held(); }
  // Gives the slot back now (idempotent).
  inline void Release();

 private:
  friend class Bulkhead;
  explicit BulkheadPermit(Bulkhead* bulkhead) : bulkhead_(bulkhead) {}
  Bulkhead* bulkhead_ = nullptr;
};

class Bulkhead {
 public:
  class AcquireAwaiter;

  // Fails with kInvalidArgument naming the offending option.
  static Result<std::unique_ptr<Bulkhead>> Create(const BulkheadOptions& options);
  Bulkhead(const Bulkhead&) = delete;
  Bulkhead& operator=(const Bulkhead&) = delete;
  ~Bulkhead();

  // A slot now, or an empty permit. Never waits.
  BulkheadPermit TryAcquire() {
    uint32_t n = in_use_.load(std::memory_order_relaxed);
    do {
      if (n >= concurrency_max_) {
        Bump(kRejectedCounter);
        observer_.Emit(EventKind::kBulkheadRejected, MonoTime(), n);
        return BulkheadPermit();
      }
    } while (!in_use_.compare_exchange_weak(n, n + 1, std::memory_order_acquire,
                                            std::memory_order_relaxed));
    Bump(kAcquiredCounter);
    return BulkheadPermit(this);
  }

  // co_await Acquire(executor[, token]) -> Result<BulkheadPermit>. See the header comment.
  inline AcquireAwaiter Acquire(Executor& executor, CancelToken token = {});

  uint32_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  uint32_t queued() const { return waiters_.load(std::memory_order_relaxed); }
  BulkheadCounters counters() const;
  const BulkheadOptions& options() const { return options_; }
  // Refusals (TryAcquire with no free slot, Acquire with the queue full) are reported as
  // kBulkheadRejected (a = in flight; no clock: `at` is MonoTime()). Attach before sharing.
  ObserverSlot& observe() { return observer_; }

 private:
  friend class BulkheadPermit;

  explicit Bulkhead(const BulkheadOptions& options);

  void ReleaseSlot() {
    if (waiters_.load(std::memory_order_acquire) == 0) {
      in_use_.fetch_sub(1, std::memory_order_release);
      return;
    }
    HandOff();
  }
  // Gives the releasing permit's slot to the oldest waiter.
  void HandOff();
  void Enqueue(AcquireAwaiter* waiter);
  void Unlink(AcquireAwaiter* waiter);

  enum Counter : uint32_t { kAcquiredCounter, kRejectedCounter, kCounterCount };
  void Bump(Counter c) { stripes_.Bump(c); }

  const BulkheadOptions options_;
  const uint32_t concurrency_max_;
  alignas(64) std::atomic<uint32_t> in_use_{0};
  std::atomic<uint32_t> waiters_{0};
  // The wait queue (executor thread only): oldest first.
  alignas(64) AcquireAwaiter* head_ = nullptr;
  AcquireAwaiter* tail_ = nullptr;
  std::atomic<uint64_t> queued_{0};
  std::atomic<uint64_t> handed_off_{0};
  std::atomic<uint64_t> queue_full_{0};
  std::atomic<uint64_t> timed_out_{0};
  std::atomic<uint64_t> cancelled_{0};
  resilience_internal::StripedCounters<kCounterCount> stripes_;
  ObserverSlot observer_;
};

// The awaitable of Bulkhead::Acquire. Neither copyable nor movable: once suspended, the bulkhead
// and the executor hold its address.
class [[nodiscard]] Bulkhead::AcquireAwaiter {
 public:
  AcquireAwaiter(Bulkhead& bulkhead, Executor& executor, CancelToken token)
      : bulkhead_(bulkhead), executor_(executor), token_(std::move(token)) {}
  AcquireAwaiter(const AcquireAwaiter&) = delete;
  AcquireAwaiter& operator=(const AcquireAwaiter&) = delete;
  ~AcquireAwaiter();

  bool await_ready();
  void await_suspend(std::coroutine_handle<> handle);
  Result<BulkheadPermit> await_resume();

 private:
  friend class Bulkhead;
  enum class Phase : uint8_t { kIdle, kQueued, kResuming, kDone };
  // Called by the bulkhead (already unlinked): the slot is now ours.
  void Grant();
  void OnTimeout();
  void OnCancel();
  void ResumeLater();

  Bulkhead& bulkhead_;
  Executor& executor_;
  CancelToken token_;
  AcquireAwaiter* prev_ = nullptr;
  AcquireAwaiter* next_ = nullptr;
  TimerId timer_;
  uint64_t registration_ = 0;
  std::coroutine_handle<> handle_;
  BulkheadPermit permit_;
  StatusCode failure_ = StatusCode::kOk;
  Phase phase_ = Phase::kIdle;
};

inline void BulkheadPermit::Release() {
  if (bulkhead_ != nullptr) std::exchange(bulkhead_, nullptr)->ReleaseSlot();
}

inline Bulkhead::AcquireAwaiter Bulkhead::Acquire(Executor& executor, CancelToken token) {
  return AcquireAwaiter(*this, executor, std::move(token));
}

}  // namespace faultline
