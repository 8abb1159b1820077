// Rate limiters: construction, validation, the keyed table. The lock-free hot paths are inline in
// the header.
#include "faultline/resilience/rate_limiter.h"

#include <utility>

#include "faultline/core/options.h"
#include "faultline/core/random.h"

namespace faultline {

namespace {
// Every product of a count and an interval must stay below this, so sums with a monotonic
// instant cannot overflow for centuries.
constexpr int64_t kSpanMaxNs = int64_t{1} << 62;

int64_t CeilDiv(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
}  // namespace

std::string_view RateDecisionName(RateDecision decision) {
  switch (decision) {
    case RateDecision::kAdmitted:
      return "admitted";
    case RateDecision::kRejected:
      return "rejected";
    case RateDecision::kNeverAdmittable:
      return "never-admittable";
    case RateDecision::kKeysExhausted:
      return "keys-exhausted";
  }
  return "unknown";
}

// ---- TokenBucket ------------------------------------------------------------------------------

Status TokenBucketOptions::Validate() const {
  FL_CHECK_OPTION(capacity_tokens >= 1, "capacity_tokens must be >= 1");
  FL_CHECK_OPTION(refill_tokens >= 1, "refill_tokens must be >= 1");
  FL_CHECK_OPTION(refill_period > Duration::Zero() && !refill_period.is_infinite(),
                  "refill_period must be > 0 and finite");
  FL_CHECK_OPTION(refill_tokens <= static_cast<uint64_t>(refill_period.nanos()),
                  "refill_tokens per refill_period must be at most one token per nanosecond");
  const int64_t interval = emission_interval().nanos();
  FL_CHECK_OPTION(capacity_tokens < static_cast<uint64_t>(kSpanMaxNs / interval),
                  "capacity_tokens x (refill_period / refill_tokens) must be < 2^62 ns");
  return Status::Ok();
}

Duration TokenBucketOptions::emission_interval() const {
  if (refill_tokens == 0 || refill_period <= Duration::Zero()) return Duration::Zero();
  if (refill_tokens > static_cast<uint64_t>(refill_period.nanos())) return Duration::Nanos(1);
  return Duration::Nanos(CeilDiv(refill_period.nanos(), static_cast<int64_t>(refill_tokens)));
}

Result<std::unique_ptr<TokenBucket>> TokenBucket::Create(Clock& clock,
                                                         const TokenBucketOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<TokenBucket>(new TokenBucket(clock, options));
}

TokenBucket::TokenBucket(Clock& clock, const TokenBucketOptions& options)
    : clock_(clock),
      capacity_(options.capacity_tokens),
      interval_ns_(options.emission_interval().nanos()),
      full_ns_(static_cast<int64_t>(options.capacity_tokens) * interval_ns_) {
  const int64_t now = clock_.Now().nanos();
  empty_at_ns_.store(options.start_full ? time_internal::SatSub(now, full_ns_) : now,
                     std::memory_order_relaxed);
}

uint64_t TokenBucket::Available(MonoTime now) const {
  const int64_t empty_at = empty_at_ns_.load(std::memory_order_relaxed);
  const int64_t credit = time_internal::SatSub(now.nanos(), empty_at);
  if (credit <= 0) return 0;
  if (credit >= full_ns_) return capacity_;
  return static_cast<uint64_t>(credit / interval_ns_);
}

RateLimiterCounters TokenBucket::counters() const {
  RateLimiterCounters c;
  c.admitted = counters_.Sum(limiter_internal::StripedCounters::kAdmitted);
  c.rejected = counters_.Sum(limiter_internal::StripedCounters::kRejected);
  c.never_admittable = counters_.Sum(limiter_internal::StripedCounters::kNever);
  return c;
}

// ---- Gcra -------------------------------------------------------------------------------------

Status GcraOptions::Validate() const {
  FL_CHECK_OPTION(emission_interval > Duration::Zero(), "emission_interval must be > 0");
  FL_CHECK_OPTION(burst_tolerance >= emission_interval,
                  "burst_tolerance must be >= emission_interval (else nothing is ever admitted)");
  FL_CHECK_OPTION(burst_tolerance.nanos() < kSpanMaxNs, "burst_tolerance must be < 2^62 ns");
  return Status::Ok();
}

GcraOptions GcraOptions::PerPeriod(uint64_t requests, Duration period, uint64_t burst) {
  GcraOptions o;
  if (requests == 0 || period <= Duration::Zero()) {
    o.emission_interval = Duration::Zero();  // rejected by Validate()
    return o;
  }
  const int64_t interval = requests > static_cast<uint64_t>(period.nanos())
                               ? 1
                               : CeilDiv(period.nanos(), static_cast<int64_t>(requests));
  o.emission_interval = Duration::Nanos(interval);
  o.burst_tolerance = Duration::Nanos(interval) * static_cast<int64_t>(burst);  // saturating
  return o;
}

Result<std::unique_ptr<Gcra>> Gcra::Create(Clock& clock, const GcraOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<Gcra>(new Gcra(clock, options));
}

Gcra::Gcra(Clock& clock, const GcraOptions& options)
    : clock_(clock),
      interval_ns_(options.emission_interval.nanos()),
      tau_ns_(options.burst_tolerance.nanos()),
      quantity_max_(static_cast<uint64_t>(tau_ns_ / interval_ns_)),
      tat_ns_(clock_.Now().nanos()) {}

Duration Gcra::ResetAfter(MonoTime now) const {
  const int64_t tat = tat_ns_.load(std::memory_order_relaxed);
  return tat > now.nanos() ? Duration::Nanos(tat - now.nanos()) : Duration::Zero();
}

RateLimiterCounters Gcra::counters() const {
  RateLimiterCounters c;
  c.admitted = counters_.Sum(limiter_internal::StripedCounters::kAdmitted);
  c.rejected = counters_.Sum(limiter_internal::StripedCounters::kRejected);
  c.never_admittable = counters_.Sum(limiter_internal::StripedCounters::kNever);
  return c;
}

// ---- KeyedRateLimiter -------------------------------------------------------------------------

Status KeyedRateLimiterOptions::Validate() const {
  FL_RETURN_IF_ERROR(limit.Validate());
  FL_CHECK_OPTION(keys_max >= 1 && keys_max <= (1u << 24), "keys_max must be in [1, 2^24]");
  return Status::Ok();
}

Result<std::unique_ptr<KeyedRateLimiter>> KeyedRateLimiter::Create(
    Clock& clock, const KeyedRateLimiterOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<KeyedRateLimiter>(new KeyedRateLimiter(clock, options));
}

namespace {
// Table size: a power of two >= 2 × keys_max (load factor <= 1/2 keeps probes short).
uint32_t TableSize(uint32_t keys_max) {
  uint32_t size = 2;
  while (size < 2 * keys_max) size *= 2;
  return size;
}
}  // namespace

KeyedRateLimiter::KeyedRateLimiter(Clock& clock, const KeyedRateLimiterOptions& options)
    : clock_(clock),
      interval_ns_(options.limit.emission_interval.nanos()),
      tau_ns_(options.limit.burst_tolerance.nanos()),
      quantity_max_(static_cast<uint64_t>(tau_ns_ / interval_ns_)),
      keys_max_(options.keys_max),
      table_mask_(TableSize(options.keys_max) - 1),
      table_(new uint32_t[TableSize(options.keys_max)]()),
      slots_(new Slot[options.keys_max]) {}

KeyedRateLimiter::~KeyedRateLimiter() = default;

uint32_t KeyedRateLimiter::Home(uint64_t key) const {
  uint64_t state = key;
  return static_cast<uint32_t>(SplitMix64(state)) & table_mask_;
}

uint32_t KeyedRateLimiter::Probe(uint64_t key) const {
  uint32_t pos = Home(key);
  // The table is at most half full, so an empty entry is always reached.
  while (table_[pos] != 0 && slots_[table_[pos] - 1].key != key) pos = (pos + 1) & table_mask_;
  return pos;
}

void KeyedRateLimiter::EraseAt(uint32_t pos) {
  // Backward-shift deletion (Knuth 6.4 Algorithm R): no tombstones, probes stay short.
  table_[pos] = 0;
  uint32_t hole = pos;
  uint32_t j = pos;
  for (;;) {
    j = (j + 1) & table_mask_;
    if (table_[j] == 0) return;
    const uint32_t home = Home(slots_[table_[j] - 1].key);
    // The entry at j may stay iff its home lies cyclically in (hole, j].
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    table_[hole] = table_[j];
    table_[j] = 0;
    hole = j;
  }
}

void KeyedRateLimiter::Unlink(uint32_t slot) {
  Slot& s = slots_[slot];
  if (s.prev != kNil)
    slots_[s.prev].next = s.next;
  else
    lru_head_ = s.next;
  if (s.next != kNil)
    slots_[s.next].prev = s.prev;
  else
    lru_tail_ = s.prev;
  s.prev = s.next = kNil;
}

void KeyedRateLimiter::PushFront(uint32_t slot) {
  Slot& s = slots_[slot];
  s.prev = kNil;
  s.next = lru_head_;
  if (lru_head_ != kNil) slots_[lru_head_].prev = slot;
  lru_head_ = slot;
  if (lru_tail_ == kNil) lru_tail_ = slot;
}

RateLimitResult KeyedRateLimiter::TryAcquire(uint64_t key, MonoTime now, uint64_t quantity) {
  const RateLimitResult result = Decide(key, now, quantity);
  // Reported outside the mutex: an observer never runs under the limiter's lock.
  if (result.decision() == RateDecision::kRejected) {
    observer_.Emit(EventKind::kLimiterRejected, now, 0, 0, result.retry_after());
  } else if (result.decision() == RateDecision::kKeysExhausted) {
    observer_.Emit(EventKind::kLimiterRejected, now, 1);
  }
  return result;
}

RateLimitResult KeyedRateLimiter::Decide(uint64_t key, MonoTime now, uint64_t quantity) {
  std::lock_guard<std::mutex> lock(mu_);
  if (quantity > quantity_max_) {
    ++counters_.never_admittable;
    return RateLimitResult::NeverAdmittable();
  }
  uint32_t pos = Probe(key);
  uint32_t slot;
  if (table_[pos] != 0) {
    slot = table_[pos] - 1;
    Unlink(slot);
  } else {
    if (used_ < keys_max_) {
      slot = used_++;
    } else {
      // Full: forget the least-recently-used key only if it is idle.
      slot = lru_tail_;
      FL_ASSERT(slot != kNil);
      if (slots_[slot].tat_ns > now.nanos()) {
        ++counters_.keys_exhausted;
        return RateLimitResult::KeysExhausted();
      }
      Unlink(slot);
      EraseAt(Probe(slots_[slot].key));
      ++counters_.keys_evicted;
      pos = Probe(key);  // the shift may have moved entries into the old position
    }
    slots_[slot].key = key;
    slots_[slot].tat_ns = now.nanos();  // a new key starts idle
    table_[pos] = slot + 1;
  }
  PushFront(slot);
  const int64_t inc = static_cast<int64_t>(quantity) * interval_ns_;
  const int64_t wait =
      limiter_internal::GcraDecide(&slots_[slot].tat_ns, now.nanos(), inc, tau_ns_);
  if (wait > 0) {
    ++counters_.rejected;
    return RateLimitResult::Rejected(wait);
  }
  ++counters_.admitted;
  return RateLimitResult::Admitted();
}

uint32_t KeyedRateLimiter::keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

bool KeyedRateLimiter::Contains(uint64_t key) const {
  std::lock_guard<std::mutex> lock(mu_);
  return table_[Probe(key)] != 0;
}

RateLimiterCounters KeyedRateLimiter::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

}  // namespace faultline
