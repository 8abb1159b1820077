// The circuit breaker's slow paths: transitions, half-open probes, window maintenance. The hot
// paths are inline in the header.
#include "faultline/resilience/circuit_breaker.h"

#include <thread>
#include <utility>

#include "faultline/core/buggify.h"
#include "faultline/core/options.h"

namespace faultline {

std::string_view BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half-open";
    case BreakerState::kForcedOpen:
      return "forced-open";
    case BreakerState::kDisabled:
      return "disabled";
  }
  return "unknown";
}

std::string_view TransitionReasonName(TransitionReason reason) {
  switch (reason) {
    case TransitionReason::kFailureRate:
      return "failure-rate";
    case TransitionReason::kSlowCallRate:
      return "slow-call-rate";
    case TransitionReason::kOpenDurationElapsed:
      return "open-duration-elapsed";
    case TransitionReason::kProbesFailed:
      return "probes-failed";
    case TransitionReason::kProbesSucceeded:
      return "probes-succeeded";
    case TransitionReason::kHalfOpenDwellExpired:
      return "half-open-dwell-expired";
    case TransitionReason::kManual:
      return "manual";
  }
  return "unknown";
}

namespace {
bool IsThreshold(Ratio r) {
  return r.denominator > 0 && r.numerator > 0 && r.numerator <= r.denominator;
}
}  // namespace

Status CircuitBreakerOptions::Validate() const {
  FL_CHECK_OPTION(
      window_type == BreakerWindowType::kCountBased || window_type == BreakerWindowType::kTimeBased,
      "window_type must be kCountBased or kTimeBased");
  if (window_type == BreakerWindowType::kCountBased) {
    FL_CHECK_OPTION(window_calls >= 1 && window_calls <= (1u << 20),
                    "window_calls must be in [1, 2^20]");
    FL_CHECK_OPTION(min_calls <= window_calls,
                    "min_calls must be <= window_calls for a count-based window");
  } else {
    FL_CHECK_OPTION(window_buckets >= 1 && window_buckets <= (1u << 16),
                    "window_buckets must be in [1, 2^16]");
    FL_CHECK_OPTION(bucket_duration > Duration::Zero() && !bucket_duration.is_infinite(),
                    "bucket_duration must be > 0 and finite");
  }
  FL_CHECK_OPTION(min_calls >= 1, "min_calls must be >= 1");
  FL_CHECK_OPTION(IsThreshold(failure_rate_threshold), "failure_rate_threshold must be in (0, 1]");
  FL_CHECK_OPTION(IsThreshold(slow_call_rate_threshold),
                  "slow_call_rate_threshold must be in (0, 1]");
  FL_CHECK_OPTION(slow_call_threshold >= Duration::Zero(), "slow_call_threshold must be >= 0");
  FL_CHECK_OPTION(half_open_permits >= 1 && half_open_permits <= 255,
                  "half_open_permits must be in [1, 255]");
  FL_CHECK_OPTION(half_open_dwell_max > Duration::Zero() && !half_open_dwell_max.is_infinite(),
                  "half_open_dwell_max must be > 0 and finite (an infinite dwell is the "
                  "stuck-half-open bug)");
  FL_CHECK_OPTION(open_duration_min > Duration::Zero(), "open_duration_min must be > 0");
  FL_CHECK_OPTION(open_duration_max >= open_duration_min && !open_duration_max.is_infinite(),
                  "open_duration_max must be >= open_duration_min and finite");
  FL_CHECK_OPTION(open_duration_multiplier >= 1, "open_duration_multiplier must be >= 1");
  FL_CHECK_OPTION(open_duration_jitter.valid(), "open_duration_jitter must be in [0, 1]");
  return Status::Ok();
}

namespace breaker_internal {

namespace {
uint64_t FastModMagic(uint32_t d) { return UINT64_MAX / d + 1; }
}  // namespace

CountWindow::CountWindow(uint32_t size)
    : size_(size), magic_(FastModMagic(size)), slots_(new std::atomic<uint8_t>[size]) {
  FL_ASSERT(size >= 1);
  for (uint32_t i = 0; i < size_; ++i) slots_[i].store(kEmpty, std::memory_order_relaxed);
}

Tally CountWindow::Snapshot() const {
  const uint64_t seq = seq_.load(std::memory_order_relaxed);
  const uint64_t w = counts_.load(std::memory_order_relaxed);
  Tally t;
  t.calls = static_cast<int64_t>(seq < size_ ? seq : size_);
  t.failures = Clamp(PairLow(w));
  t.slow = Clamp(PairHigh(w));
  return t;
}

void CountWindow::Reset() {
  for (uint32_t i = 0; i < size_; ++i) slots_[i].store(kEmpty, std::memory_order_relaxed);
  counts_.store(kLowBias, std::memory_order_relaxed);
  seq_.store(0, std::memory_order_relaxed);
}

TimeWindow::TimeWindow(uint32_t buckets, Duration bucket, MonoTime origin)
    : size_(buckets),
      magic_(FastModMagic(buckets)),
      bucket_ns_(bucket.nanos()),
      origin_ns_(origin.nanos()),
      buckets_(new Bucket[buckets]) {
  FL_ASSERT(buckets >= 1 && bucket_ns_ > 0);
}

bool TimeWindow::Advance(int64_t tick, uint64_t* head) {
  // A rotation evicts at most size_ buckets: a few tens of nanoseconds. Spin that long; a
  // rotating thread that was descheduled costs the records meanwhile, never blocks them.
  constexpr int kSpinsMax = 256;
  for (int spins = 0;; ++spins) {
    if ((*head & 1) != 0) {
      if (spins >= kSpinsMax) return false;
      *head = head_.load(std::memory_order_acquire);
      continue;
    }
    const int64_t old_tick = static_cast<int64_t>(*head >> 1);
    if (tick <= old_tick) return true;
    const uint64_t rotating = (static_cast<uint64_t>(tick) << 1) | 1;
    if (!head_.compare_exchange_weak(*head, rotating, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      continue;
    }
    // Evict the buckets the ticks (old_tick, tick] reuse: all of them for a gap >= the window.
    const int64_t gap = tick - old_tick;
    const int64_t first = gap >= static_cast<int64_t>(size_) ? tick - size_ + 1 : old_tick + 1;
    for (int64_t t = first; t <= tick; ++t) {
      Bucket& b = buckets_[Slot(t)];
      const uint64_t pair = b.pair.exchange(0, std::memory_order_relaxed);
      const int64_t slow = b.slow.exchange(0, std::memory_order_relaxed);
      if (pair != 0) totals_.fetch_sub(pair, std::memory_order_relaxed);
      if (slow != 0) slow_.fetch_sub(slow, std::memory_order_relaxed);
    }
    *head = static_cast<uint64_t>(tick) << 1;
    head_.store(*head, std::memory_order_release);
    return true;
  }
}

Tally TimeWindow::Snapshot() const {
  const uint64_t w = totals_.load(std::memory_order_relaxed);
  Tally t;
  t.calls = Clamp(PairHigh(w));
  t.failures = Clamp(PairLow(w));
  t.slow = Clamp(slow_.load(std::memory_order_relaxed));
  return t;
}

void TimeWindow::Reset(MonoTime now) {
  for (uint32_t i = 0; i < size_; ++i) {
    buckets_[i].pair.store(0, std::memory_order_relaxed);
    buckets_[i].slow.store(0, std::memory_order_relaxed);
  }
  totals_.store(kLowBias, std::memory_order_relaxed);
  slow_.store(0, std::memory_order_relaxed);
  const int64_t since = now.nanos() - origin_ns_;
  const int64_t tick = since <= 0 ? 0 : since / bucket_ns_;
  // Never move the head backwards: a record keyed before `now` lands in an older bucket.
  const int64_t old_tick = static_cast<int64_t>(head_.load(std::memory_order_relaxed) >> 1);
  head_.store(static_cast<uint64_t>(tick > old_tick ? tick : old_tick) << 1,
              std::memory_order_release);
}

}  // namespace breaker_internal

Result<std::unique_ptr<CircuitBreaker>> CircuitBreaker::Create(Clock& clock,
                                                               const CircuitBreakerOptions& options,
                                                               BreakerListener listener) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<CircuitBreaker>(new CircuitBreaker(clock, options, std::move(listener)));
}

CircuitBreaker::CircuitBreaker(Clock& clock, const CircuitBreakerOptions& options,
                               BreakerListener listener)
    : clock_(clock),
      options_(options),
      rng_(options.jitter_seed, /*stream=*/0xb7ea),
      listener_(std::move(listener)),
      stripes_(std::make_unique<resilience_internal::StripedCounters<kCounterCount>>()) {
  if (options_.window_type == BreakerWindowType::kCountBased) {
    count_window_ = std::make_unique<breaker_internal::CountWindow>(options_.window_calls);
  } else {
    time_window_ = std::make_unique<breaker_internal::TimeWindow>(
        options_.window_buckets, options_.bucket_duration, clock_.Now());
  }
}

CircuitBreaker::~CircuitBreaker() = default;

BreakerCounters CircuitBreaker::counters() const {
  BreakerCounters c;
  c.admitted = Sum(kAdmittedCounter);
  c.rejected = Sum(kRejectedCounter);
  c.successes = Sum(kSuccessesCounter);
  c.failures = Sum(kFailuresCounter);
  c.slow_calls = Sum(kSlowCounter);
  c.ignored = Sum(kIgnoredCounter);
  c.stale_results = Sum(kStaleCounter);
  c.dropped_records = Sum(kDroppedCounter);
  c.opened = opened_.load(std::memory_order_relaxed);
  c.half_opened = half_opened_.load(std::memory_order_relaxed);
  c.closed = closed_.load(std::memory_order_relaxed);
  c.dwell_expirations = dwell_expirations_.load(std::memory_order_relaxed);
  return c;
}

BreakerWindowSnapshot CircuitBreaker::window() const {
  const breaker_internal::Tally t =
      count_window_ != nullptr ? count_window_->Snapshot() : time_window_->Snapshot();
  BreakerWindowSnapshot s;
  s.calls = static_cast<uint64_t>(t.calls);
  s.failures = static_cast<uint64_t>(t.failures);
  s.slow_calls = static_cast<uint64_t>(t.slow);
  return s;
}

BreakerPermit CircuitBreaker::AcquireSlow(MonoTime now) {
  // Each retry follows a CAS lost to another thread's progress; a handful is plenty, after which
  // answering "not now" is correct too.
  constexpr int kAttemptsMax = 8;
  uint64_t w = state_.load(std::memory_order_acquire);
  for (int attempt = 0; attempt < kAttemptsMax; ++attempt) {
    const uint32_t epoch = WordEpoch(w);
    const BreakerState s = WordState(w);
    if (WordPending(w)) break;
    switch (s) {
      case BreakerState::kClosed:
      case BreakerState::kDisabled:
        Bump(kAdmittedCounter);
        return BreakerPermit::Admit(now, epoch, s);
      case BreakerState::kForcedOpen:
        Bump(kRejectedCounter);
        observer_.Emit(EventKind::kBreakerRejected, now);
        return BreakerPermit::Reject(Duration::Infinite(), epoch, s);
      case BreakerState::kOpen: {
        const int64_t until = open_until_ns_.load(std::memory_order_relaxed);
        if (now.nanos() < until) {
          Bump(kRejectedCounter);
          observer_.Emit(EventKind::kBreakerRejected, now);
          return BreakerPermit::Reject(Duration::Nanos(until - now.nanos()), epoch, s);
        }
        if (Transition(w, BreakerState::kHalfOpen, TransitionReason::kOpenDurationElapsed, now,
                       /*issued=*/1)) {
          Bump(kAdmittedCounter);
          return BreakerPermit::Admit(now, (epoch + 1) & kEpochMask, BreakerState::kHalfOpen);
        }
        break;
      }
      case BreakerState::kHalfOpen: {
        const int64_t deadline = half_open_deadline_ns_.load(std::memory_order_relaxed);
        if (now.nanos() >= deadline) {
          // The probes did not all come back within the dwell: back to Open (whoever wins).
          FL_PROBE("breaker.half_open_dwell_expired");
          Transition(w, BreakerState::kOpen, TransitionReason::kHalfOpenDwellExpired, now, 0);
          break;
        }
        if (WordIssued(w) < options_.half_open_permits) {
          if (state_.compare_exchange_weak(w, w + (uint64_t{1} << kIssuedShift),
                                           std::memory_order_acq_rel, std::memory_order_acquire)) {
            Bump(kAdmittedCounter);
            return BreakerPermit::Admit(now, epoch, s);
          }
          continue;  // w was reloaded by the failed CAS
        }
        Bump(kRejectedCounter);
        observer_.Emit(EventKind::kBreakerRejected, now);
        return BreakerPermit::Reject(Duration::Nanos(deadline - now.nanos()), epoch, s);
      }
    }
    w = state_.load(std::memory_order_acquire);
  }
  Bump(kRejectedCounter);
  observer_.Emit(EventKind::kBreakerRejected, now);
  return BreakerPermit::Reject(Duration::Zero(), WordEpoch(w), WordState(w));
}

void CircuitBreaker::RecordSlow(const BreakerPermit& permit, CallOutcome outcome,
                                Duration latency, int64_t at_ns) {
  if (permit.state() == BreakerState::kDisabled) return;  // Disabled records nothing
  FL_ASSERT_MSG(permit.state() == BreakerState::kHalfOpen, "permit from an unknown state");
  const uint32_t n = options_.half_open_permits;
  const bool failure = outcome == CallOutcome::kFailure;
  const bool slow = outcome != CallOutcome::kIgnored && latency > options_.slow_call_threshold;
  uint64_t w = state_.load(std::memory_order_acquire);
  for (;;) {
    // Only the very probe set this permit belongs to may count it.
    if (WordState(w) != BreakerState::kHalfOpen || WordPending(w) ||
        WordEpoch(w) != permit.epoch_ || WordIssued(w) <= WordRecorded(w)) {
      Bump(kStaleCounter);
      return;
    }
    if (outcome == CallOutcome::kIgnored) {
      // Give the permit back: another caller may probe in its place.
      if (state_.compare_exchange_weak(w, w - (uint64_t{1} << kIssuedShift),
                                       std::memory_order_acq_rel, std::memory_order_acquire)) {
        Bump(kIgnoredCounter);
        return;
      }
      continue;
    }
    const uint32_t recorded = WordRecorded(w) + 1;
    const uint32_t failed = WordFailed(w) + (failure ? 1 : 0);
    const uint32_t slow_calls = WordSlow(w) + (slow ? 1 : 0);
    bool done = false;
    if (recorded < n) {
      const uint64_t next = w + (uint64_t{1} << kRecordedShift) +
                            (failure ? uint64_t{1} << kFailedShift : 0) +
                            (slow ? uint64_t{1} << kSlowShift : 0);
      done = state_.compare_exchange_weak(w, next, std::memory_order_acq_rel,
                                          std::memory_order_acquire);
    } else {
      // The last probe decides, in the same CAS that counts it (timed once, even if it retries).
      if (at_ns == kReadClockAtTransition) at_ns = clock_.Now().nanos();
      const bool reopen = AtLeast(failed, n, options_.failure_rate_threshold) ||
                          AtLeast(slow_calls, n, options_.slow_call_rate_threshold);
      if (reopen) FL_PROBE("breaker.half_open_probes_failed");
      done =
          Transition(w, reopen ? BreakerState::kOpen : BreakerState::kClosed,
                     reopen ? TransitionReason::kProbesFailed : TransitionReason::kProbesSucceeded,
                     TransitionTime(at_ns), 0);
      if (!done) w = state_.load(std::memory_order_acquire);
    }
    if (done) {
      Bump(failure ? kFailuresCounter : kSuccessesCounter);
      if (slow) Bump(kSlowCounter);
      return;
    }
  }
}

void CircuitBreaker::Trip(uint64_t closed_word, const breaker_internal::Tally& t, int64_t at_ns) {
  const bool by_failures = AtLeast(t.failures, t.calls, options_.failure_rate_threshold);
  // A CAS from the exact word the record validated against: if anything moved since (another
  // trip, a manual transition), this record decides nothing.
  Transition(closed_word, BreakerState::kOpen,
             by_failures ? TransitionReason::kFailureRate : TransitionReason::kSlowCallRate,
             TransitionTime(at_ns), 0);
}

Duration CircuitBreaker::NextOpenDuration() {
  const uint32_t k = reopen_count_.load(std::memory_order_relaxed);
  const int64_t max_ns = options_.open_duration_max.nanos();
  int64_t d = options_.open_duration_min.nanos();
  // Stop multiplying at the cap: at most 63 rounds for a multiplier >= 2, none for 1.
  for (uint32_t i = 0; i < k && d < max_ns && options_.open_duration_multiplier > 1; ++i) {
    d = time_internal::SatMul(d, options_.open_duration_multiplier);
  }
  if (d > max_ns) d = max_ns;
  // Jitter after the cap, so it does not vanish once the cap is reached.
  const Ratio j = options_.open_duration_jitter;
  const uint64_t span = static_cast<uint64_t>(static_cast<UInt128>(static_cast<uint64_t>(d)) *
                                              j.numerator / j.denominator);
  const uint64_t extra = span == 0 ? 0 : rng_.Uniform(span + 1);
  if (k < UINT32_MAX) reopen_count_.store(k + 1, std::memory_order_relaxed);
  return Duration::Nanos(d) + Duration::Nanos(static_cast<int64_t>(extra));
}

bool CircuitBreaker::Transition(uint64_t from, BreakerState to, TransitionReason reason,
                                MonoTime now, uint32_t issued) {
  if (WordPending(from)) return false;
  const uint32_t epoch = (WordEpoch(from) + 1) & kEpochMask;
  uint64_t expected = from;
  if (!state_.compare_exchange_strong(expected, MakeWord(to, epoch, /*pending=*/true),
                                      std::memory_order_acq_rel, std::memory_order_acquire)) {
    return false;
  }
  // Until the store below, this thread alone owns the transition data.
  BreakerTransition event;
  event.from = WordState(from);
  event.to = to;
  event.reason = reason;
  event.epoch = BreakerEpoch(epoch);
  event.at = now;
  switch (to) {
    case BreakerState::kOpen: {
      const Duration d = NextOpenDuration();
      open_until_ns_.store((now + d).nanos(), std::memory_order_relaxed);
      event.open_duration = d;
      opened_.fetch_add(1, std::memory_order_relaxed);
      if (reason == TransitionReason::kHalfOpenDwellExpired) {
        dwell_expirations_.fetch_add(1, std::memory_order_relaxed);
      }
      break;
    }
    case BreakerState::kHalfOpen:
      half_open_deadline_ns_.store((now + options_.half_open_dwell_max).nanos(),
                                   std::memory_order_relaxed);
      half_opened_.fetch_add(1, std::memory_order_relaxed);
      break;
    case BreakerState::kClosed:
      if (count_window_ != nullptr) {
        count_window_->Reset();
      } else {
        time_window_->Reset(now);
      }
      reopen_count_.store(0, std::memory_order_relaxed);
      closed_.fetch_add(1, std::memory_order_relaxed);
      break;
    case BreakerState::kForcedOpen:
    case BreakerState::kDisabled:
      break;
  }
  if (listener_) listener_(event);
  observer_.Emit(EventKind::kBreakerTransition, now, static_cast<int64_t>(event.from),
                 static_cast<int64_t>(to));
  state_.store(MakeWord(to, epoch, /*pending=*/false) | (uint64_t{issued} << kIssuedShift),
               std::memory_order_release);
  return true;
}

void CircuitBreaker::ManualTransition(BreakerState to) {
  for (uint32_t spins = 0;; ++spins) {
    const uint64_t w = state_.load(std::memory_order_acquire);
    if (WordPending(w)) {
      if (spins > 64) std::this_thread::yield();
      continue;
    }
    // Forcing the state it is already in changes nothing; Reset always starts a fresh window.
    if (WordState(w) == to && to != BreakerState::kClosed) return;
    if (Transition(w, to, TransitionReason::kManual, clock_.Now(), 0)) return;
  }
}

void CircuitBreaker::ForceOpen() { ManualTransition(BreakerState::kForcedOpen); }
void CircuitBreaker::Disable() { ManualTransition(BreakerState::kDisabled); }
void CircuitBreaker::Reset() { ManualTransition(BreakerState::kClosed); }

}  // namespace faultline
