#include "faultline/resilience/retry_budget.h"

#include <thread>

#include "faultline/core/options.h"

namespace faultline {

// ---- TokenRetryBudget ---------------------------------------------------------------------------

Status TokenRetryBudgetOptions::Validate() const {
  FL_CHECK_OPTION(tokens_max > 0 && tokens_max <= 1000, "tokens_max must be in (0, 1000]");
  FL_CHECK_OPTION(token_ratio_milli > 0 && token_ratio_milli <= uint64_t{tokens_max} * 1000,
                  "token_ratio_milli must be in (0, tokens_max * 1000]");
  return Status::Ok();
}

Result<std::unique_ptr<TokenRetryBudget>> TokenRetryBudget::Create(
    const TokenRetryBudgetOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<TokenRetryBudget>(new TokenRetryBudget(options));
}

TokenRetryBudget::TokenRetryBudget(const TokenRetryBudgetOptions& options)
    : options_(options),
      max_milli_(int64_t{options.tokens_max} * 1000),
      ratio_milli_(options.token_ratio_milli),
      threshold_milli_(int64_t{options.tokens_max} * 500),  // tokens_max / 2, exact in milli
      milli_tokens_(int64_t{options.tokens_max} * 1000) {   // A6: the bucket starts full
  FL_ASSERT(max_milli_ > threshold_milli_);
  FL_ASSERT(ratio_milli_ > 0 && ratio_milli_ <= max_milli_);
}

// ---- RatioRetryBudget ---------------------------------------------------------------------------

Status RatioRetryBudgetOptions::Validate() const {
  FL_CHECK_OPTION(buckets >= 1 && buckets <= 1000, "buckets must be in [1, 1000]");
  FL_CHECK_OPTION(ttl >= Duration::Micros(buckets), "ttl must be >= buckets microseconds");
  FL_CHECK_OPTION(min_retries_per_sec <= 1'000'000, "min_retries_per_sec must be <= 1000000");
  FL_CHECK_OPTION(retry_ratio.valid(), "retry_ratio must be in [0, 1] with a non-zero denominator");
  FL_CHECK_OPTION(retry_ratio.denominator <= (uint64_t{1} << 32),
                  "retry_ratio denominator must be <= 2^32");
  return Status::Ok();
}

Result<std::unique_ptr<RatioRetryBudget>> RatioRetryBudget::Create(
    Clock& clock, const RatioRetryBudgetOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<RatioRetryBudget>(new RatioRetryBudget(clock, options));
}

RatioRetryBudget::RatioRetryBudget(Clock& clock, const RatioRetryBudgetOptions& options)
    : clock_(clock),
      options_(options),
      origin_ns_(clock.Now().nanos()),
      width_ns_(options.ttl.nanos() / options.buckets),
      // min_retries_per_sec × ttl, rounded down; both factors are bounded, the product fits.
      reserve_retries_(static_cast<uint64_t>(
          static_cast<UInt128>(options.min_retries_per_sec) *
          static_cast<uint64_t>(options.ttl.nanos()) / 1'000'000'000)),
      ratio_num_(options.retry_ratio.numerator),
      ratio_den_(options.retry_ratio.denominator),
      ring_(new Snapshot[options.buckets + 1]),
      ring_capacity_(options.buckets + 1),
      head_end_ns_(time_internal::SatAdd(origin_ns_, width_ns_)) {
  FL_ASSERT(width_ns_ >= 1000);
  FL_ASSERT(ratio_den_ > 0 && ratio_num_ <= ratio_den_);
  ring_[0] = Snapshot{0, 0, 0};
  ring_size_ = 1;
}

RatioRetryBudget::~RatioRetryBudget() = default;

void RatioRetryBudget::Lock() {
  // Test-and-test-and-set; yields after a few spins so a preempted holder is not starved. The
  // critical sections are a few dozen instructions.
  for (int spins = 0;; ++spins) {
    if (!lock_.load(std::memory_order_relaxed) && !lock_.exchange(true, std::memory_order_acquire)) {
      return;
    }
    if (spins >= 64) std::this_thread::yield();
  }
}

void RatioRetryBudget::Advance(MonoTime now) {
  Lock();
  AdvanceLocked(now);
  Unlock();
}

uint64_t RatioRetryBudget::AdvanceLocked(MonoTime now) {
  const int64_t since = now.nanos() - origin_ns_;
  // A time read before a concurrent rotation (or, defensively, before creation) books into the
  // head bucket: the window never moves backwards.
  const uint64_t bucket = since > 0 ? static_cast<uint64_t>(since / width_ns_) : 0;
  if (bucket <= head_bucket_) return head_bucket_;
  // Drop snapshots older than the new window's first bucket, keeping at least the newest one.
  const uint64_t first = bucket + 1 >= options_.buckets ? bucket + 1 - options_.buckets : 0;
  while (ring_size_ > 0 && ring_[ring_first_].bucket < first) {
    ring_first_ = (ring_first_ + 1) % ring_capacity_;
    --ring_size_;
  }
  FL_ASSERT(ring_size_ < ring_capacity_);
  // Everything recorded so far happened before this bucket started.
  ring_[(ring_first_ + ring_size_) % ring_capacity_] =
      Snapshot{bucket, requests_.load(std::memory_order_relaxed), retries_net_};
  ++ring_size_;
  head_bucket_ = bucket;
  const int64_t end = time_internal::SatAdd(
      origin_ns_, time_internal::SatMul(static_cast<int64_t>(bucket) + 1, width_ns_));
  head_end_ns_.store(end, std::memory_order_release);
  return bucket;
}

const RatioRetryBudget::Snapshot& RatioRetryBudget::WindowStartLocked() {
  // The window ending at the head bucket covers buckets [first, head]; the totals at its start are
  // the snapshot of the first bucket >= first the head moved into.
  const uint64_t first =
      head_bucket_ + 1 >= options_.buckets ? head_bucket_ + 1 - options_.buckets : 0;
  while (ring_size_ > 1 && ring_[ring_first_].bucket < first) {
    ring_first_ = (ring_first_ + 1) % ring_capacity_;
    --ring_size_;
  }
  FL_ASSERT(ring_size_ >= 1);
  return ring_[ring_first_];
}

uint64_t RatioRetryBudget::AvailableLocked(const Snapshot& start) const {
  const uint64_t requests = requests_.load(std::memory_order_relaxed) - start.requests;
  const int64_t retries = retries_net_ - start.retries;
  const uint64_t earned = static_cast<uint64_t>(static_cast<UInt128>(requests) * ratio_num_ / ratio_den_);
  const uint64_t allowed = earned + reserve_retries_;  // both < 2^63
  if (retries <= 0) return allowed;
  const uint64_t used = static_cast<uint64_t>(retries);
  return allowed > used ? allowed - used : 0;
}

RetryPermit RatioRetryBudget::TryAcquireRetry(MonoTime now) {
  RetryPermit permit;
  Lock();
  AdvanceLocked(now);
  const Snapshot& start = WindowStartLocked();
  FL_ASSERT(start.bucket <= head_bucket_);
  if (AvailableLocked(start) >= 1) {
    ++retries_net_;
    permit.granted = true;
    permit.bucket = head_bucket_;
    FL_ASSERT(retries_net_ - start.retries >= 1);  // the grant is inside the window it checked
  }
  Unlock();
  (permit.granted ? granted_ : denied_).fetch_add(1, std::memory_order_relaxed);
  return permit;
}

void RatioRetryBudget::ReleaseRetry(RetryPermit permit, MonoTime now) {
  if (!permit.granted) return;
  bool released = false;
  Lock();
  AdvanceLocked(now);
  // Granted at or after the window's starting snapshot: the withdrawal still counts; undo it.
  // Otherwise it has already left the window and there is nothing to give back.
  if (permit.bucket >= WindowStartLocked().bucket) {
    // Remove the withdrawal as if it had never been made: from the running total and from every
    // snapshot taken after it, so that windows starting later do not count it negatively.
    --retries_net_;
    for (uint32_t i = 0; i < ring_size_; ++i) {
      Snapshot& s = ring_[(ring_first_ + i) % ring_capacity_];
      if (s.bucket > permit.bucket) --s.retries;
    }
    released = true;
  }
  Unlock();
  if (released) released_.fetch_add(1, std::memory_order_relaxed);
}

RatioRetryBudget::WindowStats RatioRetryBudget::Window(MonoTime now) {
  WindowStats stats;
  Lock();
  AdvanceLocked(now);
  const Snapshot& start = WindowStartLocked();
  stats.requests = requests_.load(std::memory_order_relaxed) - start.requests;
  stats.retries = retries_net_ - start.retries;
  stats.retries_available = AvailableLocked(start);
  Unlock();
  return stats;
}

}  // namespace faultline
