// File: faultline/resilience/retry_budget.h
//
// Retry budgets: a cap on retries across ALL calls of a client, so that a failing dependency sees
// at most a bounded multiple of its normal load instead of attempts_max times it (retry
// amplification). Two classic designs behind one interface:
//
//  TokenRetryBudget — gRPC A6 retry throttling, exactly. tokens in [0, tokens_max], starting full;
//    every retryable failure (and every pushback) takes 1 token, every success adds token_ratio;
//    a retry or hedge is allowed iff tokens > tokens_max / 2. Fixed point: milli-tokens in one
//    atomic int64 (A6 token ratios have at most 3 decimals, so the arithmetic is exact).
//    Lock-free: Record* is one compare-and-swap loop (no write at all when the bucket is already
//    full or empty), TryAcquireRetry one load. Like gRPC, the check follows the failure's own
//    decrement: call RecordFailure() first, then TryAcquireRetry().
//
//  RatioRetryBudget — Finagle's RetryBudget: over a sliding window of `ttl` (on the monotonic
//    clock, in `buckets` slices) retries may be at most retry_ratio × requests + a reserve of
//    min_retries_per_sec × ttl. Exact integer arithmetic: a retry is granted iff
//        (retries_in_window + 1) ≤ retry_ratio × requests_in_window + reserve.
//    RecordRequest() is lock-free (one clock read, one atomic load, one atomic add; a short
//    spinlock once per bucket rotation). TryAcquireRetry()/ReleaseRetry() run once per FAILURE,
//    not per request, and take a spinlock, which makes the cap exact under concurrency (no
//    check-then-act overshoot). The window is bucketed: a request stops counting between
//    (buckets-1)/buckets·ttl and ttl after it was made; the cap holds for the window ending at
//    every grant.
//
// Retries waiting in backoff count against the budget (Envoy #30205 is the bug where they do not):
// the retry decision acquires its permit BEFORE the backoff sleep, not when the retry is sent, so a
// burst of failures cannot all pass the check while their predecessors are still asleep. A retry
// abandoned before it is sent (deadline, cancellation, shutdown) hands its permit back with
// ReleaseRetry(): the ratio budget then removes the withdrawal (if it is still inside the window);
// the A6 budget does nothing, because A6 charges the failure that caused the retry (already
// happened), not the retry itself.
//
// Use: RecordRequest() once per logical call (not per retry), RecordSuccess() for every successful
// attempt, RecordFailure() for every retryable / overloaded / pushback failure (non-retryable
// errors are neither), TryAcquireRetry() before every retry or hedge. RetryState (retry.h) and
// Hedge (hedging.h) do all of this.
//
// Clock reads: TokenRetryBudget reads no clock. RatioRetryBudget reads it once per
// RecordRequest / TryAcquireRetry / ReleaseRetry, none in the overloads taking `now`.
//
// Thread safety: both budgets are thread-safe; see above for which calls are lock-free. None of
// the calls allocates or throws.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "faultline/core/random.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"

namespace faultline {

// The right to send one retry (or hedge). Falsy when the budget refused it.
struct RetryPermit {
  bool granted = false;
  // Opaque: where the ratio budget booked the withdrawal (for ReleaseRetry).
  uint64_t bucket = 0;
  explicit operator bool() const { return granted; }
};

class RetryBudget {
 public:
  virtual ~RetryBudget() = default;
  // A logical call was started (its first attempt; not its retries).
  virtual void RecordRequest() = 0;
  // An attempt succeeded.
  virtual void RecordSuccess() = 0;
  // An attempt failed with a retryable / overloaded status or pushback.
  virtual void RecordFailure() = 0;
  // May one more retry be sent? Call at decision time, before the backoff sleep.
  virtual RetryPermit TryAcquireRetry() = 0;
  // A granted retry was abandoned before being sent.
  virtual void ReleaseRetry(RetryPermit permit) = 0;
};

// ---- gRPC A6 ------------------------------------------------------------------------------------

struct TokenRetryBudgetOptions {
  // A6 maxTokens: (0, 1000].
  uint32_t tokens_max = 100;
  // A6 tokenRatio in thousandths of a token (0.1 token = 100): (0, tokens_max * 1000].
  uint32_t token_ratio_milli = 100;
  Status Validate() const;
};

class TokenRetryBudget final : public RetryBudget {
 public:
  static Result<std::unique_ptr<TokenRetryBudget>> Create(const TokenRetryBudgetOptions& options);

  void RecordRequest() override {}
  void RecordSuccess() override {
    int64_t t = milli_tokens_.load(std::memory_order_relaxed);
    while (t < max_milli_) {
      const int64_t next = t + ratio_milli_ < max_milli_ ? t + ratio_milli_ : max_milli_;
      if (milli_tokens_.compare_exchange_weak(t, next, std::memory_order_relaxed)) return;
    }
  }
  void RecordFailure() override {
    int64_t t = milli_tokens_.load(std::memory_order_relaxed);
    while (t > 0) {
      const int64_t next = t > 1000 ? t - 1000 : 0;
      if (milli_tokens_.compare_exchange_weak(t, next, std::memory_order_relaxed)) return;
    }
  }
  RetryPermit TryAcquireRetry() override {
    RetryPermit permit;
    permit.granted = milli_tokens_.load(std::memory_order_relaxed) > threshold_milli_;
    (permit.granted ? granted_ : denied_).fetch_add(1, std::memory_order_relaxed);
    return permit;
  }
  void ReleaseRetry(RetryPermit permit) override {
    if (permit.granted) released_.fetch_add(1, std::memory_order_relaxed);
  }

  // State: current tokens in thousandths, always in [0, tokens_max * 1000].
  int64_t milli_tokens() const { return milli_tokens_.load(std::memory_order_relaxed); }
  // True when retries are currently throttled (tokens <= tokens_max / 2).
  bool throttled() const { return milli_tokens() <= threshold_milli_; }
  // Counters since creation.
  uint64_t retries_granted() const { return granted_.load(std::memory_order_relaxed); }
  uint64_t retries_denied() const { return denied_.load(std::memory_order_relaxed); }
  uint64_t retries_released() const { return released_.load(std::memory_order_relaxed); }
  const TokenRetryBudgetOptions& options() const { return options_; }

 private:
  explicit TokenRetryBudget(const TokenRetryBudgetOptions& options);

  TokenRetryBudgetOptions options_;
  int64_t max_milli_;
  int64_t ratio_milli_;
  int64_t threshold_milli_;
  alignas(64) std::atomic<int64_t> milli_tokens_;
  alignas(64) std::atomic<uint64_t> granted_{0};
  std::atomic<uint64_t> denied_{0};
  std::atomic<uint64_t> released_{0};
};

// ---- Finagle ratio budget -----------------------------------------------------------------------

struct RatioRetryBudgetOptions {
  // Window length (Finagle ttl). Must be > 0 and at least `buckets` microseconds.
  Duration ttl = Duration::Seconds(10);
  // Window resolution: the window slides in steps of ttl / buckets. [1, 1000].
  uint32_t buckets = 10;
  // Reserve: retries allowed per second even with no requests (Finagle minRetriesPerSec).
  // [0, 1'000'000]. The reserve is min_retries_per_sec × ttl retries per window.
  uint32_t min_retries_per_sec = 10;
  // Retries allowed per request (Finagle percentCanRetry): a valid ratio in [0, 1] with
  // denominator <= 2^32.
  Ratio retry_ratio = Ratio::Percent(20);
  Status Validate() const;
};

class RatioRetryBudget final : public RetryBudget {
 public:
  // `clock` must outlive the budget; only its monotonic Now() is read.
  static Result<std::unique_ptr<RatioRetryBudget>> Create(Clock& clock,
                                                          const RatioRetryBudgetOptions& options);
  ~RatioRetryBudget() override;

  void RecordRequest() override { RecordRequest(clock_.Now()); }
  void RecordSuccess() override {}
  void RecordFailure() override {}
  RetryPermit TryAcquireRetry() override { return TryAcquireRetry(clock_.Now()); }
  void ReleaseRetry(RetryPermit permit) override { ReleaseRetry(permit, clock_.Now()); }

  // The same with a time the caller has already read from the same clock (one clock read per
  // call on the caller's side). `now` must come from `clock`.
  void RecordRequest(MonoTime now) {
    if (now.nanos() >= head_end_ns_.load(std::memory_order_acquire)) Advance(now);
    requests_.fetch_add(1, std::memory_order_relaxed);
  }
  RetryPermit TryAcquireRetry(MonoTime now);
  void ReleaseRetry(RetryPermit permit, MonoTime now);

  // State of the window ending now (takes the lock; for metrics and tests, not hot paths).
  struct WindowStats {
    uint64_t requests = 0;          // requests recorded in the window
    int64_t retries = 0;            // retries granted in the window, minus those released
    uint64_t retries_available = 0; // how many more retries would be granted now
  };
  WindowStats Window(MonoTime now);
  // The reserve in retries per window: min_retries_per_sec × ttl.
  uint64_t reserve_retries() const { return reserve_retries_; }
  // Counters since creation.
  uint64_t requests_total() const { return requests_.load(std::memory_order_relaxed); }
  uint64_t retries_granted() const { return granted_.load(std::memory_order_relaxed); }
  uint64_t retries_denied() const { return denied_.load(std::memory_order_relaxed); }
  uint64_t retries_released() const { return released_.load(std::memory_order_relaxed); }
  const RatioRetryBudgetOptions& options() const { return options_; }

 private:
  // Totals when the window first reached `bucket`: everything before that bucket's start.
  struct Snapshot {
    uint64_t bucket;
    uint64_t requests;
    int64_t retries;
  };
  RatioRetryBudget(Clock& clock, const RatioRetryBudgetOptions& options);
  void Lock();
  void Unlock() { lock_.store(false, std::memory_order_release); }
  void Advance(MonoTime now);
  // Under the lock: moves the head to `now`'s bucket if later; returns the head bucket.
  uint64_t AdvanceLocked(MonoTime now);
  // Under the lock: the snapshot at the start of the window ending at the head bucket.
  const Snapshot& WindowStartLocked();
  uint64_t AvailableLocked(const Snapshot& start) const;

  Clock& clock_;
  RatioRetryBudgetOptions options_;
  int64_t origin_ns_;
  int64_t width_ns_;
  uint64_t reserve_retries_;
  uint64_t ratio_num_;
  uint64_t ratio_den_;
  // FIFO ring of snapshots, one per bucket the head moved into, oldest first; guarded by lock_.
  std::unique_ptr<Snapshot[]> ring_;
  uint32_t ring_capacity_;
  uint32_t ring_first_ = 0;
  uint32_t ring_size_ = 0;
  uint64_t head_bucket_ = 0;   // guarded by lock_
  int64_t retries_net_ = 0;    // guarded by lock_: granted minus released, cumulative

  alignas(64) std::atomic<int64_t> head_end_ns_;  // end of the head bucket (absolute mono ns)
  alignas(64) std::atomic<uint64_t> requests_{0};
  alignas(64) std::atomic<bool> lock_{false};
  std::atomic<uint64_t> granted_{0};
  std::atomic<uint64_t> denied_{0};
  std::atomic<uint64_t> released_{0};
};

}  // namespace faultline
