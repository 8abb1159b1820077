// Tests for faultline/resilience/circuit_breaker.h on a ManualClock: exact window math (>=,
// strictly-greater slow calls, min_calls, ignored outcomes), both window kinds against reference
// models, the open-duration backoff, and the anchors' known bugs: a half-open breaker whose probes
// never record (Resilience4j #903, Polly #1979), late results from an old epoch (R4j #1432
// family), a time window of one bucket (R4j #2334). Threaded tests (suite
// CircuitBreakerConcurrent) are what ./run sanitize runs under TSan.
#include "faultline/resilience/circuit_breaker.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "faultline/core/random.h"
#include "faultline/env/clock.h"

namespace faultline {
namespace {

constexpr Duration kFast = Duration::Millis(1);

CircuitBreakerOptions CountOptions(uint32_t window_calls, uint32_t min_calls) {
  CircuitBreakerOptions o;
  o.window_type = BreakerWindowType::kCountBased;
  o.window_calls = window_calls;
  o.min_calls = min_calls;
  o.open_duration_min = Duration::Seconds(5);
  o.open_duration_max = Duration::Seconds(60);
  o.open_duration_jitter = Ratio::Zero();
  o.half_open_permits = 3;
  o.half_open_dwell_max = Duration::Seconds(30);
  return o;
}

CircuitBreakerOptions TimeOptions(uint32_t buckets, Duration bucket, uint32_t min_calls) {
  CircuitBreakerOptions o = CountOptions(1, 1);
  o.window_type = BreakerWindowType::kTimeBased;
  o.window_buckets = buckets;
  o.bucket_duration = bucket;
  o.min_calls = min_calls;
  return o;
}

std::unique_ptr<CircuitBreaker> Make(Clock& clock, const CircuitBreakerOptions& options,
                                     BreakerListener listener = nullptr) {
  auto r = CircuitBreaker::Create(clock, options, std::move(listener));
  FL_ASSERT_MSG(r.ok(), "test options must be valid");
  return std::move(r).value();
}

// One admitted call with the given outcome; fails the test if the breaker refuses it.
void Call(CircuitBreaker& b, CallOutcome outcome, Duration latency = kFast) {
  const BreakerPermit p = b.TryAcquire();
  ASSERT_TRUE(p.admitted()) << BreakerStateName(b.state());
  b.Record(p, outcome, latency);
}

// Records transitions (the listener runs serialized, so a plain vector is fine).
struct Transitions {
  std::vector<BreakerTransition> all;
  BreakerListener Listener() {
    return [this](const BreakerTransition& t) { all.push_back(t); };
  }
};

// --- Options -----------------------------------------------------------------------------------

TEST(CircuitBreakerOptionsTest, InvalidOptionsAreRejectedNamingTheField) {
  // Invalid options must never build a breaker, and the error must say which field is wrong.
  ManualClock clock;
  struct Case {
    const char* field;
    void (*mutate)(CircuitBreakerOptions&);
  };
  const Case cases[] = {
      {"window_calls", [](CircuitBreakerOptions& o) { o.window_calls = 0; }},
      {"min_calls must be <= window_calls",
       [](CircuitBreakerOptions& o) { o.min_calls = o.window_calls + 1; }},
      {"min_calls", [](CircuitBreakerOptions& o) { o.min_calls = 0; }},
      {"window_buckets",
       [](CircuitBreakerOptions& o) {
         o.window_type = BreakerWindowType::kTimeBased;
         o.window_buckets = 0;
       }},
      {"bucket_duration",
       [](CircuitBreakerOptions& o) {
         o.window_type = BreakerWindowType::kTimeBased;
         o.bucket_duration = Duration::Zero();
       }},
      {"failure_rate_threshold",
       [](CircuitBreakerOptions& o) {
         o.failure_rate_threshold = {3, 2};
       }},
      {"failure_rate_threshold",
       [](CircuitBreakerOptions& o) {
         o.failure_rate_threshold = {0, 1};
       }},
      {"failure_rate_threshold",
       [](CircuitBreakerOptions& o) {
         o.failure_rate_threshold = {1, 0};
       }},
      {"slow_call_rate_threshold",
       [](CircuitBreakerOptions& o) {
         o.slow_call_rate_threshold = {101, 100};
       }},
      {"slow_call_threshold",
       [](CircuitBreakerOptions& o) { o.slow_call_threshold = Duration::Nanos(-1); }},
      {"half_open_permits", [](CircuitBreakerOptions& o) { o.half_open_permits = 0; }},
      {"half_open_permits", [](CircuitBreakerOptions& o) { o.half_open_permits = 256; }},
      {"half_open_dwell_max",
       [](CircuitBreakerOptions& o) { o.half_open_dwell_max = Duration::Infinite(); }},
      {"half_open_dwell_max",
       [](CircuitBreakerOptions& o) { o.half_open_dwell_max = Duration::Zero(); }},
      {"open_duration_min",
       [](CircuitBreakerOptions& o) { o.open_duration_min = Duration::Nanos(-5); }},
      {"open_duration_max",
       [](CircuitBreakerOptions& o) {
         o.open_duration_max = o.open_duration_min - Duration::Nanos(1);
       }},
      {"open_duration_multiplier",
       [](CircuitBreakerOptions& o) { o.open_duration_multiplier = 0; }},
      {"open_duration_jitter",
       [](CircuitBreakerOptions& o) {
         o.open_duration_jitter = {2, 1};
       }},
  };
  for (const Case& c : cases) {
    CircuitBreakerOptions o;
    c.mutate(o);
    auto r = CircuitBreaker::Create(clock, o);
    ASSERT_FALSE(r.ok()) << c.field;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(c.field), std::string::npos)
        << r.status().ToString();
  }
  EXPECT_TRUE(CircuitBreakerOptions().Validate().ok());
  EXPECT_TRUE(TimeOptions(1, Duration::Nanos(1), 1).Validate().ok());
}

// --- Window math -------------------------------------------------------------------------------

TEST(CircuitBreakerTest, TripsExactlyAtMinCallsAndNotBefore) {
  // Rates are only acted on once the window holds min_calls calls: 9 failures out of 9 must not
  // trip a breaker with min_calls 10; the 10th call (any outcome that keeps the rate >= 50%) must.
  ManualClock clock;
  auto b = Make(clock, CountOptions(20, 10));
  for (int i = 0; i < 9; ++i) Call(*b, CallOutcome::kFailure);
  EXPECT_EQ(b->state(), BreakerState::kClosed);
  EXPECT_EQ(b->window().calls, 9u);
  EXPECT_EQ(b->window().failures, 9u);
  Call(*b, CallOutcome::kSuccess);  // 9/10 = 90%: trips on the call that reaches min_calls
  EXPECT_EQ(b->state(), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, FailureRateIsComparedWithGreaterOrEqual) {
  // Exactly at the threshold trips (>=), one call below does not. 1/3 is checked with an exact
  // rational threshold: no rounding of rates.
  ManualClock clock;
  CircuitBreakerOptions o = CountOptions(3, 3);
  o.failure_rate_threshold = {1, 3};
  auto b = Make(clock, o);
  Call(*b, CallOutcome::kSuccess);
  Call(*b, CallOutcome::kSuccess);
  Call(*b, CallOutcome::kSuccess);
  EXPECT_EQ(b->state(), BreakerState::kClosed);  // 0/3
  Call(*b, CallOutcome::kFailure);               // window S S F: 1/3 >= 1/3
  EXPECT_EQ(b->state(), BreakerState::kOpen);

  auto c = Make(clock, CountOptions(10, 10));  // 50%
  for (int i = 0; i < 6; ++i) Call(*c, CallOutcome::kSuccess);
  for (int i = 0; i < 4; ++i) Call(*c, CallOutcome::kFailure);
  EXPECT_EQ(c->state(), BreakerState::kClosed);  // 4/10 < 50%
  Call(*c, CallOutcome::kFailure);               // slides out a success: 5/10 >= 50%
  EXPECT_EQ(c->state(), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, SlowMeansStrictlyGreaterThanTheThreshold) {
  // A call taking exactly slow_call_threshold is not slow; one nanosecond more is. Slow successes
  // trip on the slow-call rate with its own reason.
  ManualClock clock;
  CircuitBreakerOptions o = CountOptions(4, 4);
  o.slow_call_threshold = Duration::Millis(100);
  o.slow_call_rate_threshold = Ratio::Percent(50);
  auto b = Make(clock, o);
  for (int i = 0; i < 4; ++i) Call(*b, CallOutcome::kSuccess, Duration::Millis(100));
  EXPECT_EQ(b->window().slow_calls, 0u);
  EXPECT_EQ(b->state(), BreakerState::kClosed);

  Transitions seen;
  auto c = Make(clock, o, seen.Listener());
  Call(*c, CallOutcome::kSuccess, Duration::Millis(100) + Duration::Nanos(1));
  Call(*c, CallOutcome::kSuccess, Duration::Millis(100));
  Call(*c, CallOutcome::kSuccess, Duration::Millis(100));
  EXPECT_EQ(c->state(), BreakerState::kClosed);
  Call(*c, CallOutcome::kSuccess, Duration::Millis(100) + Duration::Nanos(1));  // 2/4 slow
  EXPECT_EQ(c->state(), BreakerState::kOpen);
  ASSERT_EQ(seen.all.size(), 1u);
  EXPECT_EQ(seen.all[0].reason, TransitionReason::kSlowCallRate);
  EXPECT_EQ(c->counters().slow_calls, 2u);
}

TEST(CircuitBreakerTest, IgnoredOutcomesCountInNeitherNumeratorNorDenominator) {
  // kIgnored (a cancelled call, a caller's own error) must neither dilute the failure rate nor
  // count toward min_calls: 1 failure among 100 ignored calls is still 1 call, 100% failing.
  ManualClock clock;
  auto b = Make(clock, CountOptions(10, 4));
  Call(*b, CallOutcome::kFailure);
  for (int i = 0; i < 100; ++i) Call(*b, CallOutcome::kIgnored);
  EXPECT_EQ(b->window().calls, 1u);
  Call(*b, CallOutcome::kSuccess);
  Call(*b, CallOutcome::kSuccess);
  EXPECT_EQ(b->state(), BreakerState::kClosed);  // 1/3, below min_calls anyway
  Call(*b, CallOutcome::kFailure);               // 2/4 = 50%
  EXPECT_EQ(b->state(), BreakerState::kOpen);
  EXPECT_EQ(b->counters().ignored, 100u);
}

TEST(CircuitBreakerTest, CountWindowForgetsCallsOlderThanTheLastN) {
  // Only the last window_calls outcomes count: three old failures slide out as successes arrive.
  ManualClock clock;
  CircuitBreakerOptions o = CountOptions(4, 4);
  o.failure_rate_threshold = Ratio::Percent(100);
  auto b = Make(clock, o);
  for (int i = 0; i < 3; ++i) Call(*b, CallOutcome::kFailure);
  Call(*b, CallOutcome::kSuccess);
  EXPECT_EQ(b->window().failures, 3u);
  for (int i = 0; i < 3; ++i) Call(*b, CallOutcome::kSuccess);
  EXPECT_EQ(b->window().failures, 0u);
  EXPECT_EQ(b->window().calls, 4u);
  for (int i = 0; i < 3; ++i) Call(*b, CallOutcome::kFailure);
  EXPECT_EQ(b->state(), BreakerState::kClosed);  // S F F F
  Call(*b, CallOutcome::kFailure);
  EXPECT_EQ(b->state(), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, TimeWindowEvictsBucketsThatFallOutAndEverythingAfterAWholeWindowGap) {
  // Buckets are keyed by monotonic tick: a tick that leaves the window takes its calls with it,
  // and a gap of at least the whole window empties it (not just the buckets it reuses).
  ManualClock clock;
  CircuitBreakerOptions o = TimeOptions(3, Duration::Seconds(1), 4);
  auto b = Make(clock, o);
  Call(*b, CallOutcome::kFailure);  // tick 0
  clock.Advance(Duration::Seconds(1));
  Call(*b, CallOutcome::kFailure);  // tick 1
  clock.Advance(Duration::Seconds(1));
  Call(*b, CallOutcome::kSuccess);  // tick 2
  EXPECT_EQ(b->window().calls, 3u);
  clock.Advance(Duration::Seconds(1));
  Call(*b, CallOutcome::kSuccess);  // tick 3 evicts tick 0
  EXPECT_EQ(b->window().calls, 3u);
  EXPECT_EQ(b->window().failures, 1u);
  EXPECT_EQ(b->state(), BreakerState::kClosed);

  clock.Advance(Duration::Seconds(3));  // tick 6: a whole window later
  Call(*b, CallOutcome::kFailure);
  EXPECT_EQ(b->window().calls, 1u);
  EXPECT_EQ(b->window().failures, 1u);
  Call(*b, CallOutcome::kFailure);
  Call(*b, CallOutcome::kSuccess);
  EXPECT_EQ(b->state(), BreakerState::kClosed);  // 3 calls < min_calls
  Call(*b, CallOutcome::kSuccess);               // 2/4 >= 50%
  EXPECT_EQ(b->state(), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, TimeWindowOfOneBucketIsLegal) {
  // Resilience4j #2334/#2379: a time window of size 1 threw a NullPointerException. Here it is a
  // window of exactly one bucket that empties every bucket_duration.
  ManualClock clock;
  auto b = Make(clock, TimeOptions(1, Duration::Millis(10), 2));
  Call(*b, CallOutcome::kFailure);
  clock.Advance(Duration::Millis(10));
  Call(*b, CallOutcome::kFailure);
  EXPECT_EQ(b->window().calls, 1u);
  EXPECT_EQ(b->state(), BreakerState::kClosed);
  clock.Advance(Duration::Millis(8));  // + 1 ms latency: still the same bucket
  Call(*b, CallOutcome::kFailure);
  EXPECT_EQ(b->state(), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, TimeWindowKeysAnOutcomeAtStartPlusLatency) {
  // Record() reads no clock: a time-window outcome lands in the bucket of start + latency.
  ManualClock clock;
  auto b = Make(clock, TimeOptions(2, Duration::Seconds(1), 100));
  const BreakerPermit p = b->TryAcquire();
  b->Record(p, CallOutcome::kFailure, Duration::Seconds(5));  // tick 5
  const BreakerPermit q = b->TryAcquire();
  b->Record(q, CallOutcome::kSuccess, Duration::Millis(1));  // tick 0: older than the window
  EXPECT_EQ(b->window().calls, 1u);
  EXPECT_EQ(b->counters().dropped_records, 1u);
}

// --- Open and half-open ------------------------------------------------------------------------

std::unique_ptr<CircuitBreaker> TrippedBreaker(ManualClock& clock, CircuitBreakerOptions o,
                                               BreakerListener listener = nullptr) {
  o.min_calls = 1;
  auto b = Make(clock, o, std::move(listener));
  Call(*b, CallOutcome::kFailure);
  FL_ASSERT(b->state() == BreakerState::kOpen);
  return b;
}

TEST(CircuitBreakerTest, OpenRejectsWithTheExactTimeLeftThenAdmitsAProbe) {
  // While open, every call is refused with retry_after = exactly the time left; at the deadline
  // (not a nanosecond before) the next call becomes the first half-open probe, in a new epoch.
  ManualClock clock;
  auto b = TrippedBreaker(clock, CountOptions(10, 1));
  const BreakerEpoch open_epoch = b->epoch();
  BreakerPermit p = b->TryAcquire();
  ASSERT_FALSE(p.admitted());
  EXPECT_EQ(p.state(), BreakerState::kOpen);
  EXPECT_EQ(p.retry_after(), Duration::Seconds(5));
  clock.Advance(Duration::Seconds(5) - Duration::Nanos(1));
  p = b->TryAcquire();
  ASSERT_FALSE(p.admitted());
  EXPECT_EQ(p.retry_after(), Duration::Nanos(1));
  clock.Advance(Duration::Nanos(1));
  p = b->TryAcquire();
  ASSERT_TRUE(p.admitted());
  EXPECT_EQ(p.state(), BreakerState::kHalfOpen);
  EXPECT_EQ(b->state(), BreakerState::kHalfOpen);
  EXPECT_EQ(p.epoch().value(), open_epoch.value() + 1);
  EXPECT_EQ(b->counters().rejected, 2u);
}

TEST(CircuitBreakerTest, HalfOpenHandsOutExactlyNPermitsAndDecidesOnlyAfterAllRecord) {
  // N probes and no more; the decision waits for the N-th result (R4j decides after all permitted
  // calls), and one failure in three stays below a 50% threshold, so the breaker closes.
  ManualClock clock;
  auto b = TrippedBreaker(clock, CountOptions(10, 1));
  clock.Advance(Duration::Seconds(5));
  BreakerPermit probes[3] = {b->TryAcquire(), b->TryAcquire(), b->TryAcquire()};
  for (const BreakerPermit& p : probes) ASSERT_TRUE(p.admitted());
  const BreakerPermit extra = b->TryAcquire();
  EXPECT_FALSE(extra.admitted());
  EXPECT_EQ(extra.retry_after(), Duration::Seconds(30));  // the dwell left: an upper bound
  EXPECT_EQ(b->half_open_issued(), 3u);
  b->Record(probes[0], CallOutcome::kFailure, kFast);
  b->Record(probes[1], CallOutcome::kSuccess, kFast);
  EXPECT_EQ(b->state(), BreakerState::kHalfOpen);
  EXPECT_EQ(b->half_open_recorded(), 2u);
  b->Record(probes[2], CallOutcome::kSuccess, kFast);
  EXPECT_EQ(b->state(), BreakerState::kClosed);
  EXPECT_EQ(b->window().calls, 0u);  // a fresh window
  EXPECT_EQ(b->consecutive_opens(), 0u);
}

TEST(CircuitBreakerTest, HalfOpenProbesAtTheFailureThresholdReopen) {
  // The probes are judged with the same >= thresholds: 2 of 3 failing (>= 50%) reopens, and the
  // reopening backs off (second consecutive opening: twice the open duration).
  ManualClock clock;
  auto b = TrippedBreaker(clock, CountOptions(10, 1));
  clock.Advance(Duration::Seconds(5));
  BreakerPermit probes[3] = {b->TryAcquire(), b->TryAcquire(), b->TryAcquire()};
  b->Record(probes[0], CallOutcome::kFailure, kFast);
  b->Record(probes[1], CallOutcome::kSuccess, kFast);
  b->Record(probes[2], CallOutcome::kFailure, kFast);
  EXPECT_EQ(b->state(), BreakerState::kOpen);
  EXPECT_EQ(b->TryAcquire().retry_after(), Duration::Seconds(10));
}

TEST(CircuitBreakerTest, HalfOpenWhoseProbesNeverRecordReturnsToOpenAfterTheDwell) {
  // Resilience4j #903/#935 and Polly #1979: probes that never report left the breaker half-open
  // (refusing everything) forever. After half_open_dwell_max the next call must find it Open again
  // (backed off), and a probe that finally reports later must not close it.
  ManualClock clock;
  Transitions seen;
  auto b = TrippedBreaker(clock, CountOptions(10, 1), seen.Listener());
  clock.Advance(Duration::Seconds(5));
  BreakerPermit probes[3] = {b->TryAcquire(), b->TryAcquire(), b->TryAcquire()};
  for (const BreakerPermit& p : probes) ASSERT_TRUE(p.admitted());
  clock.Advance(Duration::Seconds(30) - Duration::Nanos(1));
  EXPECT_FALSE(b->TryAcquire().admitted());
  EXPECT_EQ(b->state(), BreakerState::kHalfOpen);
  clock.Advance(Duration::Nanos(1));
  const BreakerPermit after = b->TryAcquire();
  EXPECT_FALSE(after.admitted());
  EXPECT_EQ(after.state(), BreakerState::kOpen);
  EXPECT_EQ(after.retry_after(), Duration::Seconds(10));
  EXPECT_EQ(b->counters().dwell_expirations, 1u);
  ASSERT_EQ(seen.all.size(), 3u);
  EXPECT_EQ(seen.all[2].reason, TransitionReason::kHalfOpenDwellExpired);
  for (const BreakerPermit& p : probes) b->Record(p, CallOutcome::kSuccess, kFast);
  EXPECT_EQ(b->state(), BreakerState::kOpen);
  EXPECT_EQ(b->counters().stale_results, 3u);
}

TEST(CircuitBreakerTest, LateResultsFromAnOldEpochNeverTripOrCloseTheNewState) {
  // Every permit carries its epoch. Closed-epoch failures arriving during HalfOpen must not count
  // as probes; old probes arriving in a newer HalfOpen must not close it; and old Closed-epoch
  // failures arriving in a new Closed period must neither enter its window nor trip it.
  ManualClock clock;
  auto b = Make(clock, CountOptions(10, 1));
  const BreakerPermit old_closed[2] = {b->TryAcquire(), b->TryAcquire()};
  Call(*b, CallOutcome::kFailure);  // trips
  clock.Advance(Duration::Seconds(5));
  const BreakerPermit probe = b->TryAcquire();
  ASSERT_EQ(probe.state(), BreakerState::kHalfOpen);
  b->Record(old_closed[0], CallOutcome::kFailure, kFast);
  EXPECT_EQ(b->half_open_recorded(), 0u);
  EXPECT_EQ(b->state(), BreakerState::kHalfOpen);

  // Let this probe set expire, reopen, and half-open again: `probe` is now two epochs old.
  BreakerPermit more[2] = {b->TryAcquire(), b->TryAcquire()};
  clock.Advance(Duration::Seconds(30));
  EXPECT_FALSE(b->TryAcquire().admitted());  // dwell expired: Open for 10 s
  clock.Advance(Duration::Seconds(10));
  BreakerPermit fresh[3] = {b->TryAcquire(), b->TryAcquire(), b->TryAcquire()};
  b->Record(probe, CallOutcome::kSuccess, kFast);
  for (const BreakerPermit& p : more) b->Record(p, CallOutcome::kSuccess, kFast);
  EXPECT_EQ(b->half_open_recorded(), 0u);
  EXPECT_EQ(b->state(), BreakerState::kHalfOpen);
  for (const BreakerPermit& p : fresh) b->Record(p, CallOutcome::kSuccess, kFast);
  EXPECT_EQ(b->state(), BreakerState::kClosed);

  b->Record(old_closed[1], CallOutcome::kFailure, kFast);  // min_calls is 1: would trip
  EXPECT_EQ(b->state(), BreakerState::kClosed);
  EXPECT_EQ(b->window().calls, 0u);
  EXPECT_EQ(b->counters().stale_results, 5u);
}

TEST(CircuitBreakerTest, IgnoredOrReleasedProbeGivesItsPermitBack) {
  // A cancelled or ignored probe must free its permit for another caller, or the breaker could
  // never collect N results.
  ManualClock clock;
  auto b = TrippedBreaker(clock, CountOptions(10, 1));
  clock.Advance(Duration::Seconds(5));
  BreakerPermit p[3] = {b->TryAcquire(), b->TryAcquire(), b->TryAcquire()};
  EXPECT_FALSE(b->TryAcquire().admitted());
  b->Release(p[0]);
  b->Record(p[1], CallOutcome::kIgnored, kFast);
  EXPECT_EQ(b->half_open_issued(), 1u);
  const BreakerPermit q1 = b->TryAcquire();
  const BreakerPermit q2 = b->TryAcquire();
  ASSERT_TRUE(q1.admitted());
  ASSERT_TRUE(q2.admitted());
  EXPECT_FALSE(b->TryAcquire().admitted());
  b->Record(p[2], CallOutcome::kSuccess, kFast);
  b->Record(q1, CallOutcome::kSuccess, kFast);
  b->Record(q2, CallOutcome::kSuccess, kFast);
  EXPECT_EQ(b->state(), BreakerState::kClosed);
}

TEST(CircuitBreakerTest, ScopedCallReleasesAnAbandonedProbe) {
  // An early return (or exception-free unwinding) that drops a probe must give its permit back.
  ManualClock clock;
  CircuitBreakerOptions o = CountOptions(10, 1);
  o.half_open_permits = 1;
  auto b = TrippedBreaker(clock, o);
  clock.Advance(Duration::Seconds(5));
  {
    ScopedBreakerCall call(*b);
    EXPECT_TRUE(call.admitted());
    EXPECT_EQ(b->half_open_issued(), 1u);
  }
  EXPECT_EQ(b->half_open_issued(), 0u);
  ScopedBreakerCall call(*b);
  ASSERT_TRUE(call.admitted());
  call.Record(CallOutcome::kSuccess, kFast);
  EXPECT_EQ(b->state(), BreakerState::kClosed);
}

TEST(CircuitBreakerTest, OpenDurationBacksOffExponentiallyToTheCapAndResetsOnClose) {
  // d_k = min(max, min · m^k) over consecutive openings, back to d_0 after a Closed period.
  ManualClock clock;
  CircuitBreakerOptions o = CountOptions(10, 1);
  o.open_duration_min = Duration::Seconds(1);
  o.open_duration_max = Duration::Seconds(5);
  o.half_open_permits = 1;
  Transitions seen;
  auto b = TrippedBreaker(clock, o, seen.Listener());
  std::vector<Duration> durations = {b->TryAcquire().retry_after()};
  for (int i = 0; i < 4; ++i) {
    clock.Advance(durations.back());
    Call(*b, CallOutcome::kFailure);  // the probe fails: reopen
    durations.push_back(b->TryAcquire().retry_after());
  }
  EXPECT_EQ(durations,
            (std::vector<Duration>{Duration::Seconds(1), Duration::Seconds(2), Duration::Seconds(4),
                                   Duration::Seconds(5), Duration::Seconds(5)}));
  EXPECT_EQ(b->consecutive_opens(), 5u);
  clock.Advance(Duration::Seconds(5));
  Call(*b, CallOutcome::kSuccess);  // closes
  EXPECT_EQ(b->state(), BreakerState::kClosed);
  Call(*b, CallOutcome::kFailure);
  EXPECT_EQ(b->TryAcquire().retry_after(), Duration::Seconds(1));
  EXPECT_EQ(seen.all.back().open_duration, Duration::Seconds(1));
}

TEST(CircuitBreakerTest, OpenDurationJitterIsAddedAfterTheCapAndStaysInBounds) {
  // Jitter spreads reopenings in [d, d·(1+j)] and does not vanish once d reaches the cap (the
  // Resilience4j exponential-random bug applies jitter before the cap).
  ManualClock clock;
  CircuitBreakerOptions o = CountOptions(10, 1);
  o.open_duration_min = Duration::Seconds(1);
  o.open_duration_max = Duration::Seconds(2);
  o.open_duration_jitter = Ratio::Percent(50);
  o.half_open_permits = 1;
  auto b = TrippedBreaker(clock, o);
  std::vector<int64_t> at_cap;
  Duration d = b->TryAcquire().retry_after();
  EXPECT_GE(d, Duration::Seconds(1));
  EXPECT_LE(d, Duration::Millis(1500));
  for (int i = 0; i < 20; ++i) {
    clock.Advance(d);
    Call(*b, CallOutcome::kFailure);
    d = b->TryAcquire().retry_after();
    EXPECT_GE(d, Duration::Seconds(2));
    EXPECT_LE(d, Duration::Seconds(3));
    at_cap.push_back(d.nanos());
  }
  std::sort(at_cap.begin(), at_cap.end());
  EXPECT_GT(std::unique(at_cap.begin(), at_cap.end()) - at_cap.begin(), 10);
}

TEST(CircuitBreakerTest, ForcedOpenRejectsAndDisabledAdmitsUntilReset) {
  // Manual states ignore the window entirely and stay put until Reset(), which closes with an
  // empty window; permits from before a manual transition are stale.
  ManualClock clock;
  auto b = Make(clock, CountOptions(10, 1));
  const BreakerPermit before = b->TryAcquire();
  b->ForceOpen();
  EXPECT_EQ(b->state(), BreakerState::kForcedOpen);
  const BreakerPermit refused = b->TryAcquire();
  EXPECT_FALSE(refused.admitted());
  EXPECT_TRUE(refused.retry_after().is_infinite());
  clock.Advance(Duration::Seconds(3600));
  EXPECT_FALSE(b->TryAcquire().admitted());
  b->Record(before, CallOutcome::kFailure, kFast);
  EXPECT_EQ(b->counters().stale_results, 1u);

  b->Disable();
  for (int i = 0; i < 50; ++i) Call(*b, CallOutcome::kFailure);
  EXPECT_EQ(b->state(), BreakerState::kDisabled);
  EXPECT_EQ(b->window().calls, 0u);

  b->Reset();
  EXPECT_EQ(b->state(), BreakerState::kClosed);
  Call(*b, CallOutcome::kFailure);
  EXPECT_EQ(b->state(), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, ListenerSeesEveryTransitionInOrderWithConsecutiveEpochs) {
  // Transition events are the breaker's audit trail: each from == the previous to, epochs +1.
  ManualClock clock;
  Transitions seen;
  CircuitBreakerOptions o = CountOptions(10, 1);
  o.half_open_permits = 1;
  auto b = TrippedBreaker(clock, o, seen.Listener());
  clock.Advance(Duration::Seconds(5));
  Call(*b, CallOutcome::kSuccess);
  b->ForceOpen();
  b->Reset();
  const std::vector<std::pair<BreakerState, TransitionReason>> expected = {
      {BreakerState::kOpen, TransitionReason::kFailureRate},
      {BreakerState::kHalfOpen, TransitionReason::kOpenDurationElapsed},
      {BreakerState::kClosed, TransitionReason::kProbesSucceeded},
      {BreakerState::kForcedOpen, TransitionReason::kManual},
      {BreakerState::kClosed, TransitionReason::kManual},
  };
  ASSERT_EQ(seen.all.size(), expected.size());
  BreakerState prev = BreakerState::kClosed;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(seen.all[i].from, prev) << i;
    EXPECT_EQ(seen.all[i].to, expected[i].first) << i;
    EXPECT_EQ(seen.all[i].reason, expected[i].second) << i;
    EXPECT_EQ(seen.all[i].epoch.value(), i + 1) << i;
    prev = seen.all[i].to;
  }
  EXPECT_EQ(seen.all[1].at, MonoTime::FromNanos(Duration::Seconds(5).nanos()));
  const BreakerCounters c = b->counters();
  EXPECT_EQ(c.opened, 1u);
  EXPECT_EQ(c.half_opened, 1u);
  EXPECT_EQ(c.closed, 2u);
}

TEST(CircuitBreakerTest, CallsDuringATransitionAreRefusedWithAZeroWait) {
  // The listener runs while its transition is still pending (that is what totally orders listener
  // calls). A call arriving in that window must be refused with retry_after 0 ("retry at once"),
  // and a manual transition must not be able to interleave with it.
  ManualClock clock;
  struct Probe {
    CircuitBreaker* breaker = nullptr;
    std::vector<BreakerPermit> seen;
  } probe;
  auto b = Make(clock, CountOptions(10, 1), [&probe](const BreakerTransition&) {
    probe.seen.push_back(probe.breaker->TryAcquire());
  });
  probe.breaker = b.get();
  Call(*b, CallOutcome::kFailure);  // Closed -> Open
  clock.Advance(Duration::Seconds(5));
  ASSERT_TRUE(b->TryAcquire().admitted());  // Open -> HalfOpen
  ASSERT_EQ(probe.seen.size(), 2u);
  for (const BreakerPermit& p : probe.seen) {
    EXPECT_FALSE(p.admitted());
    EXPECT_EQ(p.retry_after(), Duration::Zero());
  }
  EXPECT_EQ(probe.seen[0].state(), BreakerState::kOpen);
  EXPECT_EQ(probe.seen[1].state(), BreakerState::kHalfOpen);
}

// --- Properties against reference models -------------------------------------------------------

struct ModelCall {
  bool failure;
  bool slow;
  bool ignored;
};

RC_GTEST_PROP(CircuitBreakerProperty, CountWindowAgreesWithAReferenceModelAndTripsAtTheSameCall,
              ()) {
  // The lock-free count window must equal a plain deque of the last N outcomes at every step, and
  // the breaker must trip at exactly the first call where the model's rates reach a threshold.
  const uint32_t n = *rc::gen::inRange<uint32_t>(1, 40);
  const uint32_t min_calls = *rc::gen::inRange<uint32_t>(1, n + 1);
  const uint64_t f_den = *rc::gen::inRange<uint64_t>(1, 20);
  const uint64_t s_den = *rc::gen::inRange<uint64_t>(1, 20);
  CircuitBreakerOptions o = CountOptions(n, min_calls);
  o.failure_rate_threshold = {*rc::gen::inRange<uint64_t>(1, f_den + 1), f_den};
  o.slow_call_rate_threshold = {*rc::gen::inRange<uint64_t>(1, s_den + 1), s_den};
  o.slow_call_threshold = Duration::Millis(10);
  ManualClock clock;
  auto b = Make(clock, o);
  std::deque<ModelCall> model;
  const int calls = *rc::gen::inRange(1, 300);
  const int fail_pct = *rc::gen::inRange(0, 101);
  Rng rng(*rc::gen::arbitrary<uint64_t>());
  for (int i = 0; i < calls; ++i) {
    ModelCall c{rng.Uniform(100) < static_cast<uint64_t>(fail_pct), rng.Uniform(4) == 0,
                rng.Uniform(8) == 0};
    const BreakerPermit p = b->TryAcquire();
    RC_ASSERT(p.admitted());
    b->Record(p,
              c.ignored   ? CallOutcome::kIgnored
              : c.failure ? CallOutcome::kFailure
                          : CallOutcome::kSuccess,
              c.slow ? Duration::Millis(11) : Duration::Millis(10));
    if (!c.ignored) {
      model.push_back(c);
      if (model.size() > n) model.pop_front();
    }
    uint64_t fails = 0, slows = 0;
    for (const ModelCall& m : model) {
      fails += m.failure ? 1 : 0;
      slows += m.slow ? 1 : 0;
    }
    const uint64_t total = model.size();
    const bool trip = total >= min_calls && (fails * o.failure_rate_threshold.denominator >=
                                                 o.failure_rate_threshold.numerator * total ||
                                             slows * o.slow_call_rate_threshold.denominator >=
                                                 o.slow_call_rate_threshold.numerator * total);
    const BreakerWindowSnapshot w = b->window();
    if (trip) {
      RC_ASSERT(b->state() == BreakerState::kOpen);
      return;
    }
    RC_ASSERT(b->state() == BreakerState::kClosed);
    RC_ASSERT(w.calls == total);
    RC_ASSERT(w.failures == fails);
    RC_ASSERT(w.slow_calls == slows);
  }
}

RC_GTEST_PROP(CircuitBreakerProperty, TimeWindowAgreesWithAReferenceModel, ()) {
  // The bucketed window must hold exactly the outcomes whose tick lies within window_buckets of
  // the newest tick seen, whatever the gaps between calls (zero, sub-bucket, multi-window).
  const uint32_t buckets = *rc::gen::inRange<uint32_t>(1, 8);
  const Duration bucket = Duration::Millis(*rc::gen::inRange<int64_t>(1, 50));
  CircuitBreakerOptions o = TimeOptions(buckets, bucket, 1'000'000);
  o.slow_call_threshold = Duration::Millis(3);
  ManualClock clock(MonoTime::FromNanos(*rc::gen::inRange<int64_t>(0, 1'000'000'000)));
  const int64_t origin = clock.Now().nanos();
  auto b = Make(clock, o);
  struct Entry {
    int64_t tick;
    bool failure;
    bool slow;
  };
  std::vector<Entry> model;
  int64_t head = 0;
  Rng rng(*rc::gen::arbitrary<uint64_t>());
  const int calls = *rc::gen::inRange(1, 200);
  for (int i = 0; i < calls; ++i) {
    const uint64_t kind = rng.Uniform(10);
    if (kind < 3)
      clock.Advance(Duration::Nanos(
          static_cast<int64_t>(rng.Uniform(static_cast<uint64_t>(bucket.nanos())))));
    if (kind == 3) clock.Advance(bucket * static_cast<int64_t>(rng.Uniform(2 * buckets + 2)));
    const bool failure = rng.Uniform(2) == 0;
    const bool slow = rng.Uniform(4) == 0;
    const Duration latency = slow ? Duration::Millis(4) : Duration::Zero();
    const BreakerPermit p = b->TryAcquire();
    b->Record(p, failure ? CallOutcome::kFailure : CallOutcome::kSuccess, latency);
    const int64_t tick = (p.start().nanos() + latency.nanos() - origin) / bucket.nanos();
    if (tick > head) head = tick;
    if (tick > head - static_cast<int64_t>(buckets)) model.push_back({tick, failure, slow});
    uint64_t total = 0, fails = 0, slows = 0;
    for (const Entry& e : model) {
      if (e.tick <= head - static_cast<int64_t>(buckets)) continue;
      ++total;
      fails += e.failure ? 1 : 0;
      slows += e.slow ? 1 : 0;
    }
    const BreakerWindowSnapshot w = b->window();
    RC_ASSERT(w.calls == total);
    RC_ASSERT(w.failures == fails);
    RC_ASSERT(w.slow_calls == slows);
  }
}

// --- Concurrency (run under TSan by ./run sanitize) --------------------------------------------

TEST(CircuitBreakerConcurrent, TwoThreadsPermitsNeverNegative) {
  // Two threads race through every state, each advancing the clock. Per half-open epoch, the
  // permits handed out minus those given back never exceed half_open_permits; the issued count in
  // the state word never exceeds it (an underflow would wrap the 8-bit field to 255 and show here
  // too); and the listener sees a well-formed chain of transitions.
  ManualClock clock;
  CircuitBreakerOptions o = CountOptions(8, 4);
  o.half_open_permits = 4;
  o.open_duration_min = Duration::Micros(200);
  o.open_duration_max = Duration::Micros(800);
  o.half_open_dwell_max = Duration::Millis(2);
  std::vector<BreakerTransition> events;
  events.reserve(1 << 16);
  auto b = Make(clock, o, [&events](const BreakerTransition& t) {
    if (events.size() < events.capacity()) events.push_back(t);
  });
  constexpr uint32_t kEpochs = 1 << 20;  // indexed by epoch: no wrap within the test
  std::vector<std::atomic<int32_t>> net(kEpochs);
  std::atomic<int> violations{0};
  auto worker = [&](uint64_t seed) {
    Rng rng(seed);
    for (int i = 0; i < 40'000; ++i) {
      clock.Advance(Duration::Micros(5));
      const BreakerPermit p = b->TryAcquire();
      if (b->half_open_issued() > o.half_open_permits) violations.fetch_add(1);
      if (!p.admitted()) continue;
      std::atomic<int32_t>* slot = nullptr;
      if (p.state() == BreakerState::kHalfOpen) {
        slot = &net[p.epoch().value() % kEpochs];
        if (slot->fetch_add(1) + 1 > static_cast<int32_t>(o.half_open_permits))
          violations.fetch_add(1);
      }
      const uint64_t r = rng.Uniform(10);
      if (r < 2) {
        if (slot != nullptr) slot->fetch_sub(1);
        b->Release(p);
      } else {
        b->Record(p, r < 6 ? CallOutcome::kFailure : CallOutcome::kSuccess, kFast);
      }
    }
  };
  std::thread t1(worker, 1), t2(worker, 2);
  t1.join();
  t2.join();
  EXPECT_EQ(violations.load(), 0);
  ASSERT_LT(b->epoch().value(), kEpochs);
  ASSERT_FALSE(events.empty());
  BreakerState prev = BreakerState::kClosed;
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].from, prev) << i;
    ASSERT_EQ(events[i].epoch.value(), i + 1) << i;
    prev = events[i].to;
  }
  const BreakerCounters c = b->counters();
  EXPECT_GT(c.half_opened, 0u);
  EXPECT_EQ(c.admitted + c.rejected, 80'000u);
}

TEST(CircuitBreakerConcurrent, FourThreadsRecordingKeepCountWindowTotalsEqualToItsSlots) {
  // Racing records (including laps on the same slot) must leave the running totals equal to what
  // the slots hold: after the race, N successes overwrite every slot and the totals must read 0.
  ManualClock clock;
  CircuitBreakerOptions o = CountOptions(64, 64);
  o.failure_rate_threshold = Ratio::Percent(100);
  o.slow_call_rate_threshold = Ratio::Percent(100);
  o.slow_call_threshold = Duration::Millis(5);
  auto b = Make(clock, o);
  auto worker = [&](uint64_t seed) {
    Rng rng(seed);
    for (int i = 0; i < 50'000; ++i) {
      const BreakerPermit p = b->TryAcquire();
      b->Record(p, rng.Uniform(2) == 0 ? CallOutcome::kFailure : CallOutcome::kSuccess,
                rng.Uniform(2) == 0 ? Duration::Millis(6) : kFast);
    }
  };
  std::vector<std::thread> threads;
  for (uint64_t s = 1; s <= 4; ++s) threads.emplace_back(worker, s);
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(b->state(), BreakerState::kClosed);
  const BreakerWindowSnapshot mid = b->window();
  EXPECT_EQ(mid.calls, 64u);
  EXPECT_LE(mid.failures, 64u);
  EXPECT_LE(mid.slow_calls, 64u);
  for (int i = 0; i < 64; ++i) Call(*b, CallOutcome::kSuccess);
  EXPECT_EQ(b->window().failures, 0u);
  EXPECT_EQ(b->window().slow_calls, 0u);
  const BreakerCounters c = b->counters();
  EXPECT_EQ(c.successes + c.failures, 200'064u);
}

TEST(CircuitBreakerConcurrent, ThreadsRotatingTheTimeWindowKeepTotalsEqualToItsBuckets) {
  // Concurrent rotations (by CAS on the head tick) must keep totals == sum of buckets: after the
  // race, a whole-window gap must empty the window exactly.
  ManualClock clock;
  CircuitBreakerOptions o = TimeOptions(4, Duration::Micros(50), 1'000'000);
  o.slow_call_threshold = Duration::Micros(5);
  auto b = Make(clock, o);
  std::atomic<bool> stop{false};
  auto worker = [&](uint64_t seed) {
    Rng rng(seed);
    for (int i = 0; i < 40'000; ++i) {
      const BreakerPermit p = b->TryAcquire();
      b->Record(p, rng.Uniform(3) == 0 ? CallOutcome::kFailure : CallOutcome::kSuccess,
                Duration::Micros(static_cast<int64_t>(rng.Uniform(10))));
    }
  };
  std::thread ticker([&] {
    while (!stop.load()) {
      clock.Advance(Duration::Micros(7));
      std::this_thread::yield();
    }
  });
  std::thread t1(worker, 1), t2(worker, 2), t3(worker, 3);
  t1.join();
  t2.join();
  t3.join();
  stop.store(true);
  ticker.join();
  clock.Advance(Duration::Seconds(1));
  Call(*b, CallOutcome::kSuccess, Duration::Zero());
  const BreakerWindowSnapshot w = b->window();
  EXPECT_EQ(w.calls, 1u);
  EXPECT_EQ(w.failures, 0u);
  EXPECT_EQ(w.slow_calls, 0u);
}

TEST(CircuitBreakerConcurrent, FourThreadsFailingTogetherTripItExactlyOnce) {
  // Many records may see the threshold crossed at once; exactly one CAS wins the trip, the others
  // decide nothing (no double Open, no skipped epoch).
  ManualClock clock;
  std::atomic<int> opens{0};
  auto b = Make(clock, CountOptions(16, 16), [&opens](const BreakerTransition& t) {
    if (t.to == BreakerState::kOpen) opens.fetch_add(1);
  });
  std::atomic<int> ready{0};
  auto worker = [&] {
    ready.fetch_add(1);
    while (ready.load() < 4) {
    }
    for (int i = 0; i < 1000; ++i) {
      const BreakerPermit p = b->TryAcquire();
      if (p.admitted()) b->Record(p, CallOutcome::kFailure, kFast);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(opens.load(), 1);
  EXPECT_EQ(b->state(), BreakerState::kOpen);
  EXPECT_EQ(b->epoch().value(), 1u);
}

}  // namespace
}  // namespace faultline
