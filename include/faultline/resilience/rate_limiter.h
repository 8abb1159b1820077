// File: faultline/resilience/rate_limiter.h
//
// Rate limiters that reject fast with an exact wait hint and never sleep (Resilience4j #1283:
// rejected callers slept the whole timeout before failing).
//
// TokenBucket: `capacity_tokens` tokens, refilled at refill_tokens per refill_period,
//   tokens(now) = min(capacity, tokens(then) + (now - then) · rate).
// Gcra (Generic Cell Rate Algorithm, as redis-cell): emission interval T, burst tolerance τ,
//   tat' = max(tat, now) + q·T;  admitted iff now >= tat' - τ  (then tat := tat').
//
// Both are exact in integer nanoseconds (no floating point, no truncation to seconds: redis-cell
// #12/#13 over-admitted ~30% by comparing whole seconds). A rate is realised as an integer
// emission interval T = ceil(period / tokens) ns, so the realised rate never exceeds the nominal
// one (it is lower by less than one nanosecond per token).
//
// Neither has a fixed window, so neither admits the 2x burst across a window boundary of
// Resilience4j's AtomicRateLimiter (#1356): in ANY interval of length t, at most
// capacity + t/T tokens (TokenBucket) or τ/T + t/T requests (Gcra) are admitted, concurrency
// included (tested as a property over random arrival sequences).
//
// Idle time never banks more than the capacity: the bucket is capped at every evaluation, which is
// what "always advance the refill timestamp" means (Envoy's TokenBucketImpl advanced it only when
// not full, granting an extra token after idle; kombu #2652 fixed the same bug).
//
// Rejections: kRejected carries retry_after, the exact time after which this same request would
// be admitted if nothing else is admitted meanwhile (admitted at now + retry_after, rejected at
// now + retry_after - 1ns). A request that can never be admitted (more tokens than the capacity;
// q·T > τ) is kNeverAdmittable, without a wait hint. Callers converting retry_after to a coarser
// unit (Retry-After seconds) must round up (redis-cell #56).
//
// The two are the same algorithm in two vocabularies (GCRA is the virtual-scheduling form of a
// token bucket with τ = capacity·T; a property test checks they agree decision for decision):
// TokenBucket speaks tokens (Available(), start_full), Gcra speaks schedule (τ, ResetAfter()) and
// its state is the one used by KeyedRateLimiter.
//
// Clock reads: TryAcquire(), Available() and ResetAfter() read the clock once; the overloads
// taking `now` read none (pass the reading a request already took). Create() reads it once. The
// limiters tolerate a cheap clock (adapters/coarse_clock.h): a clock that lags by up to e admits at
// most e/T extra requests in any interval.
//
// Thread safety: TokenBucket and Gcra are lock-free: the whole state is one 64-bit word (the
// instant the bucket was empty / the TAT) updated by CAS; a rejection reads and never writes it.
// KeyedRateLimiter takes a mutex per call. Nothing allocates after Create() or throws.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

#include "faultline/core/assert.h"
#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"
#include "faultline/resilience/internal/rate_limiter.h"

namespace faultline {

enum class RateDecision : uint8_t {
  kAdmitted,
  kRejected,         // retry_after says when this request would be admitted
  kNeverAdmittable,  // larger than the capacity/burst: waiting cannot help
  kKeysExhausted,    // KeyedRateLimiter: key table full and its LRU key still active
};
// "admitted", "rejected", "never-admittable", "keys-exhausted".
std::string_view RateDecisionName(RateDecision decision);

class RateLimitResult {
 public:
  static constexpr RateLimitResult Admitted() {
    return RateLimitResult(RateDecision::kAdmitted, 0);
  }
  static constexpr RateLimitResult Rejected(int64_t retry_after_ns) {
    return RateLimitResult(RateDecision::kRejected, retry_after_ns);
  }
  static constexpr RateLimitResult NeverAdmittable() {
    return RateLimitResult(RateDecision::kNeverAdmittable, 0);
  }
  static constexpr RateLimitResult KeysExhausted() {
    return RateLimitResult(RateDecision::kKeysExhausted, 0);
  }

  RateDecision decision() const { return decision_; }
  bool admitted() const { return decision_ == RateDecision::kAdmitted; }
  explicit operator bool() const { return admitted(); }
  // kRejected: > 0, exact. Zero for every other decision.
  Duration retry_after() const { return Duration::Nanos(retry_after_ns_); }

 private:
  constexpr RateLimitResult(RateDecision d, int64_t ns) : retry_after_ns_(ns), decision_(d) {}
  int64_t retry_after_ns_;
  RateDecision decision_;
};

struct RateLimiterCounters {
  uint64_t admitted = 0;
  uint64_t rejected = 0;
  uint64_t never_admittable = 0;
  uint64_t keys_exhausted = 0;  // KeyedRateLimiter only
  uint64_t keys_evicted = 0;    // KeyedRateLimiter only: idle keys forgotten to make room
};

struct TokenBucketOptions {
  // Most tokens the bucket holds: the largest burst, and the largest admissible request. >= 1.
  uint64_t capacity_tokens = 100;
  // Refill rate: refill_tokens per refill_period, realised as one token every
  // ceil(refill_period / refill_tokens) ns. refill_tokens >= 1, refill_period > 0 and finite,
  // at most one token per nanosecond, and capacity_tokens × that interval < 2^62 ns.
  uint64_t refill_tokens = 100;
  Duration refill_period = Duration::Seconds(1);
  // Full at Create() (true) or empty (false).
  bool start_full = true;

  Status Validate() const;
  // The realised emission interval T: ceil(refill_period / refill_tokens).
  Duration emission_interval() const;
};

class TokenBucket {
 public:
  // Fails with kInvalidArgument naming the offending option. `clock` must outlive the bucket.
  static Result<std::unique_ptr<TokenBucket>> Create(Clock& clock,
                                                     const TokenBucketOptions& options);
  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  RateLimitResult TryAcquire(uint64_t tokens = 1) { return TryAcquire(clock_.Now(), tokens); }
  // With a `now` the caller already read from this bucket's clock.
  RateLimitResult TryAcquire(MonoTime now, uint64_t tokens = 1) {
    if (tokens > capacity_) {
      counters_.Bump(limiter_internal::StripedCounters::kNever);
      return RateLimitResult::NeverAdmittable();
    }
    const int64_t need = static_cast<int64_t>(tokens) * interval_ns_;  // <= full_ns_ < 2^62
    // The bucket holds (now - empty_at) / T tokens, at most capacity: an empty_at older than
    // `full` is worth exactly `full` (credit beyond the capacity is discarded, never banked).
    const int64_t full = time_internal::SatSub(now.nanos(), full_ns_);
    int64_t empty_at = empty_at_ns_.load(std::memory_order_relaxed);
    for (;;) {
      const int64_t base = empty_at > full ? empty_at : full;
      const int64_t next = base + need;
      if (next > now.nanos()) {
        counters_.Bump(limiter_internal::StripedCounters::kRejected);
        observer_.Emit(EventKind::kLimiterRejected, now, 0, 0, Duration::Nanos(next - now.nanos()));
        return RateLimitResult::Rejected(next - now.nanos());
      }
      if (empty_at_ns_.compare_exchange_weak(empty_at, next, std::memory_order_relaxed,
                                             std::memory_order_relaxed)) {
        counters_.Bump(limiter_internal::StripedCounters::kAdmitted);
        return RateLimitResult::Admitted();
      }
    }
  }

  // Whole tokens available now (0 ..= capacity).
  uint64_t Available() { return Available(clock_.Now()); }
  uint64_t Available(MonoTime now) const;
  Duration emission_interval() const { return Duration::Nanos(interval_ns_); }
  uint64_t capacity() const { return capacity_; }
  RateLimiterCounters counters() const;
  // Rejections are reported as kLimiterRejected (d = the wait). Attach before sharing.
  ObserverSlot& observe() { return observer_; }

 private:
  TokenBucket(Clock& clock, const TokenBucketOptions& options);

  Clock& clock_;
  const uint64_t capacity_;
  const int64_t interval_ns_;
  const int64_t full_ns_;  // capacity × interval
  // The instant at which the bucket was (or will be) empty under continuous refill.
  alignas(64) std::atomic<int64_t> empty_at_ns_;
  limiter_internal::StripedCounters counters_;
  ObserverSlot observer_;
};

struct GcraOptions {
  // T: the sustained rate is one request per emission_interval. > 0.
  Duration emission_interval = Duration::Millis(10);
  // τ: how far ahead of the sustained schedule a caller may be; floor(τ / T) requests pass at
  // once from idle. >= emission_interval (else nothing is ever admitted), < 2^62 ns.
  Duration burst_tolerance = Duration::Millis(1000);

  Status Validate() const;
  // `requests` per `period` with bursts of up to `burst` requests at once:
  // T = ceil(period / requests), τ = burst · T.
  static GcraOptions PerPeriod(uint64_t requests, Duration period, uint64_t burst);
};

class Gcra {
 public:
  static Result<std::unique_ptr<Gcra>> Create(Clock& clock, const GcraOptions& options);
  Gcra(const Gcra&) = delete;
  Gcra& operator=(const Gcra&) = delete;

  RateLimitResult TryAcquire(uint64_t quantity = 1) { return TryAcquire(clock_.Now(), quantity); }
  RateLimitResult TryAcquire(MonoTime now, uint64_t quantity = 1) {
    if (quantity > quantity_max_) {
      counters_.Bump(limiter_internal::StripedCounters::kNever);
      return RateLimitResult::NeverAdmittable();
    }
    const int64_t inc = static_cast<int64_t>(quantity) * interval_ns_;  // <= tau_ns_
    int64_t tat = tat_ns_.load(std::memory_order_relaxed);
    for (;;) {
      int64_t next = tat;
      const int64_t wait = limiter_internal::GcraDecide(&next, now.nanos(), inc, tau_ns_);
      if (wait > 0) {
        counters_.Bump(limiter_internal::StripedCounters::kRejected);
        observer_.Emit(EventKind::kLimiterRejected, now, 0, 0, Duration::Nanos(wait));
        return RateLimitResult::Rejected(wait);
      }
      if (tat_ns_.compare_exchange_weak(tat, next, std::memory_order_relaxed,
                                        std::memory_order_relaxed)) {
        counters_.Bump(limiter_internal::StripedCounters::kAdmitted);
        return RateLimitResult::Admitted();
      }
    }
  }

  // How long until the limiter is fully idle again (redis-cell reset_after); zero when idle.
  Duration ResetAfter() { return ResetAfter(clock_.Now()); }
  Duration ResetAfter(MonoTime now) const;
  // The largest admissible quantity: floor(τ / T).
  uint64_t quantity_max() const { return quantity_max_; }
  Duration emission_interval() const { return Duration::Nanos(interval_ns_); }
  Duration burst_tolerance() const { return Duration::Nanos(tau_ns_); }
  RateLimiterCounters counters() const;
  // Rejections are reported as kLimiterRejected (d = the wait). Attach before sharing.
  ObserverSlot& observe() { return observer_; }

 private:
  Gcra(Clock& clock, const GcraOptions& options);

  Clock& clock_;
  const int64_t interval_ns_;
  const int64_t tau_ns_;
  const uint64_t quantity_max_;
  // Theoretical arrival time of the next request at the sustained rate.
  alignas(64) std::atomic<int64_t> tat_ns_;
  limiter_internal::StripedCounters counters_;
  ObserverSlot observer_;
};

struct KeyedRateLimiterOptions {
  // The limit every key gets.
  GcraOptions limit;
  // Most keys tracked at once. 1 ..= 2^24; memory is ~32 bytes per key, allocated at Create().
  uint32_t keys_max = 10'000;

  Status Validate() const;
};

// A GCRA per key (a tenant, a client address hash, ...) with a bounded key set. A key not seen
// before starts idle (full burst). When the table is full, the least-recently-used key is
// forgotten if it is idle (its TAT <= now: forgetting it is unobservable, since it would restart
// exactly as a new key does); otherwise the new key is answered kKeysExhausted. We fail closed
// rather than evict an active key, because evicting resets that key's limit, and a client cycling
// through keys could then launder bursts (the fixed-window 2x problem again). Size keys_max for the
// active keys of one burst tolerance.
//
// Thread-safe; each call takes a mutex (the lookup, not the limiter math, dominates). Keys are
// 64-bit: hash strings yourself (a collision makes two keys share one limit).
class KeyedRateLimiter {
 public:
  static Result<std::unique_ptr<KeyedRateLimiter>> Create(Clock& clock,
                                                          const KeyedRateLimiterOptions& options);
  KeyedRateLimiter(const KeyedRateLimiter&) = delete;
  KeyedRateLimiter& operator=(const KeyedRateLimiter&) = delete;
  ~KeyedRateLimiter();

  RateLimitResult TryAcquire(uint64_t key, uint64_t quantity = 1) {
    return TryAcquire(key, clock_.Now(), quantity);
  }
  RateLimitResult TryAcquire(uint64_t key, MonoTime now, uint64_t quantity = 1);

  // Keys currently tracked.
  uint32_t keys() const;
  bool Contains(uint64_t key) const;
  RateLimiterCounters counters() const;

  // Reports kLimiterRejected for every refusal, timed at the call's `now`: a = 0 and d = the
  // wait for a rate refusal, a = 1 (d = 0) when the key table is full (kKeysExhausted). Attach
  // before the limiter is shared between threads.
  ObserverSlot& observe() { return observer_; }

 private:
  struct Slot {
    uint64_t key = 0;
    int64_t tat_ns = 0;
    uint32_t prev = 0;  // LRU list: towards most recent
    uint32_t next = 0;  // towards least recent
  };
  static constexpr uint32_t kNil = UINT32_MAX;

  KeyedRateLimiter(Clock& clock, const KeyedRateLimiterOptions& options);
  RateLimitResult Decide(uint64_t key, MonoTime now, uint64_t quantity);
  // Index into table_ holding `key`, or of the empty entry where it would go.
  uint32_t Probe(uint64_t key) const;
  uint32_t Home(uint64_t key) const;
  void EraseAt(uint32_t pos);
  void Unlink(uint32_t slot);
  void PushFront(uint32_t slot);

  Clock& clock_;
  const int64_t interval_ns_;
  const int64_t tau_ns_;
  const uint64_t quantity_max_;
  const uint32_t keys_max_;
  const uint32_t table_mask_;
  mutable std::mutex mu_;
  // Open addressing, linear probing, backward-shift deletion: slot index + 1, 0 = empty.
  std::unique_ptr<uint32_t[]> table_;
  std::unique_ptr<Slot[]> slots_;
  uint32_t used_ = 0;
  uint32_t lru_head_ = kNil;  // most recently used
  uint32_t lru_tail_ = kNil;  // least recently used
  RateLimiterCounters counters_;
  ObserverSlot observer_;
};

}  // namespace faultline
