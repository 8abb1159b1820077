#include "faultline/time/interval_clock.h"

#include <utility>

namespace faultline {

namespace {

constexpr int64_t kPpm = 1'000'000;

int64_t SaturateToInt64(Int128 v) {
  if (v > static_cast<Int128>(INT64_MAX)) return INT64_MAX;
  if (v < static_cast<Int128>(INT64_MIN)) return INT64_MIN;
  return static_cast<int64_t>(v);
}

// ceil(elapsed · ρ / (1e6 − ρ)): the most the true elapsed time can differ from `elapsed` of
// monotonic time when the oscillator's rate error is within ρ ppm.
int64_t DriftNanos(int64_t elapsed_ns, int64_t ppm) {
  FL_ASSERT(elapsed_ns >= 0);
  FL_ASSERT(ppm >= 0 && ppm < kPpm / 2);
  const Int128 num = static_cast<Int128>(elapsed_ns) * ppm;
  const Int128 den = kPpm - ppm;
  return SaturateToInt64((num + den - 1) / den);
}

}  // namespace

Status IntervalClockOptions::Validate() const {
  FL_CHECK_OPTION(error_at_sync >= Duration::Zero(), "error_at_sync must be >= 0");
  FL_CHECK_OPTION(drift_ppm_bound >= 0 && drift_ppm_bound <= 100'000,
                  "drift_ppm_bound must be in [0, 100000]");
  FL_CHECK_OPTION(error_max > Duration::Zero() && !error_max.is_infinite(),
                  "error_max must be > 0 and finite");
  FL_CHECK_OPTION(error_at_sync <= error_max, "error_at_sync must be <= error_max");
  FL_CHECK_OPTION(commit_wait_rounds_max >= 1, "commit_wait_rounds_max must be >= 1");
  return Status::Ok();
}

Result<std::unique_ptr<IntervalClock>> IntervalClock::Create(Clock& clock,
                                                             IntervalClockOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<IntervalClock>(new IntervalClock(clock, options));
}

Duration IntervalClock::HalfWidth(Duration error, Duration elapsed) const {
  FL_ASSERT(error >= Duration::Zero());
  const int64_t drift = DriftNanos(elapsed.nanos(), options_.drift_ppm_bound);
  return error + Duration::Nanos(drift);
}

Result<TimeInterval> IntervalClock::IntervalAt(const SyncPoint& sync, MonoTime now) const {
  if (!sync.valid) return UnavailableError("interval clock never synchronised");
  // Monotonic time never goes back; a reading taken after the snapshot is never earlier.
  FL_ASSERT(now >= sync.mono);
  const Duration elapsed = now - sync.mono;
  const Duration half = HalfWidth(sync.error, elapsed);
  if (half > options_.error_max) {
    return UnavailableError("clock uncertainty exceeds error_max since the last sync");
  }
  const WallTime mid = sync.reference + elapsed;
  TimeInterval interval{mid - half, mid + half};
  FL_ASSERT(interval.earliest <= interval.latest);
  return interval;
}

IntervalClock::SyncPoint IntervalClock::Snapshot() {
  std::lock_guard<std::mutex> lock(mu_);
  return sync_;
}

Status IntervalClock::Sync(WallTime reference, Duration reference_error) {
  if (reference_error < Duration::Zero()) return InvalidArgumentError("reference_error < 0");
  const Duration error = reference_error + options_.error_at_sync;
  if (error > options_.error_max) {
    return OutOfRangeError("sync error exceeds error_max: the reference is too uncertain");
  }
  std::lock_guard<std::mutex> lock(mu_);
  // Read the clock under the lock so that sync points are ordered like their monotonic times.
  const MonoTime now = clock_.Now();
  if (sync_.valid) {
    Result<TimeInterval> current = IntervalAt(sync_, now);
    if (current.ok() &&
        (reference + error < current->earliest || reference - error > current->latest)) {
      return FailedPreconditionError(
          "sync reference is disjoint from the current interval (falseticker?)");
    }
  }
  sync_ = SyncPoint{true, reference, error, now};
  return Status::Ok();
}

Result<TimeInterval> IntervalClock::Now() {
  const SyncPoint sync = Snapshot();
  return IntervalAt(sync, clock_.Now());
}

bool IntervalClock::After(WallTime t) {
  Result<TimeInterval> now = Now();
  return now.ok() && t < now->earliest;
}

bool IntervalClock::Before(WallTime t) {
  Result<TimeInterval> now = Now();
  return now.ok() && t > now->latest;
}

Result<Duration> IntervalClock::CommitWaitDuration(WallTime t) {
  const SyncPoint sync = Snapshot();
  const MonoTime now = clock_.Now();
  FL_ASSIGN_OR_RETURN(const TimeInterval interval, IntervalAt(sync, now));
  if (t < interval.earliest) return Duration::Zero();

  // earliest(e) = reference − error + e − drift(e), for e of monotonic time since the sync.
  // f(e) = e − drift(e) is non-decreasing (drift grows by at most 1 ns per ns); find the least e
  // with f(e) >= target.
  const int64_t ppm = options_.drift_ppm_bound;
  const Int128 target =
      static_cast<Int128>(t.nanos()) - sync.reference.nanos() + sync.error.nanos() + 1;
  auto f = [ppm](int64_t e) { return static_cast<Int128>(e) - DriftNanos(e, ppm); };
  // f(e) >= e·(1e6 − 2ρ)/(1e6 − ρ) − 1: start from the exact real-valued solution.
  const Int128 den = kPpm - 2 * ppm;
  const Int128 estimate = (target * (kPpm - ppm) + den - 1) / den;
  if (estimate > static_cast<Int128>(INT64_MAX / 2)) {
    return UnavailableError("commit wait would outlast error_max");
  }
  int64_t e = static_cast<int64_t>(estimate < 0 ? 0 : estimate);
  for (int step = 0; step < 8 && f(e) < target; ++step) ++e;
  for (int step = 0; step < 8 && e > 0 && f(e - 1) >= target; ++step) --e;
  FL_ASSERT(f(e) >= target);
  const int64_t elapsed_now = (now - sync.mono).nanos();
  FL_ASSERT(e > elapsed_now);  // earliest <= t now, so the answer lies ahead
  if (HalfWidth(sync.error, Duration::Nanos(e)) > options_.error_max) {
    return UnavailableError("commit wait would outlast error_max");
  }
  return Duration::Nanos(e - elapsed_now);
}

Task<Status> IntervalClock::CommitWait(Executor& executor, WallTime t, CancelToken token) {
  for (uint32_t round = 0; round < options_.commit_wait_rounds_max; ++round) {
    Result<Duration> wait = CommitWaitDuration(t);
    if (!wait.ok()) co_return std::move(wait).TakeStatus();
    if (*wait == Duration::Zero()) co_return Status::Ok();  // earliest > t was just observed
    Status slept = co_await Sleep(executor, *wait, token);
    if (!slept.ok()) co_return slept;
    // Re-check: the sleep was monotonic, and a Sync may have moved the interval meanwhile.
  }
  co_return UnavailableError("commit wait did not finish within commit_wait_rounds_max rounds");
}

UncertaintyInterval UncertaintyInterval::ForRead(WallTime read_ts, Duration max_offset) {
  FL_ASSERT(max_offset >= Duration::Zero());
  return UncertaintyInterval{read_ts, read_ts + max_offset};
}

UncertaintyInterval::Classification UncertaintyInterval::Classify(WallTime value_ts) const {
  if (value_ts <= read_ts) return {Visibility::kVisible, read_ts};
  if (value_ts <= limit) return {Visibility::kUncertain, value_ts + Duration::Nanos(1)};
  return {Visibility::kFuture, read_ts};
}

UncertaintyInterval UncertaintyInterval::RestartAbove(WallTime value_ts) const {
  FL_ASSERT_MSG(Classify(value_ts).visibility == Visibility::kUncertain,
                "RestartAbove needs a value inside the uncertainty interval");
  const UncertaintyInterval next{value_ts + Duration::Nanos(1), limit};
  FL_ASSERT(next.read_ts > read_ts && next.limit == limit);
  return next;
}

}  // namespace faultline
