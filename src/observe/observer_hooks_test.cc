// The observer seam in the primitives: each decision point reports the event its header promises,
// with the documented fields, and attaching an observer changes neither the decisions nor the
// pipeline's clock reads.
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "faultline/core/observer.h"
#include "faultline/lease/fence.h"
#include "faultline/resilience/adaptive_concurrency.h"
#include "faultline/resilience/pipeline.h"
#include "faultline/resilience/rate_limiter.h"
#include "faultline/time/offset_monitor.h"
#include "src/core/observer_test_util.h"

namespace faultline {
namespace {

using testing::Recorder;
using testing::Seen;

class CountingClock final : public Clock {
 public:
  MonoTime Now() override {
    ++reads;
    return inner.Now();
  }
  WallTime WallNow() override { return inner.WallNow(); }
  ManualClock inner;
  int reads = 0;
};

auto NoSleep = [](Duration) {};

TEST(ObserverHooks, EventKindNamesAreDistinctSnakeCase) {
  EXPECT_EQ(EventKindName(EventKind::kRetryBudgetDenied), "retry_budget_denied");
  EXPECT_EQ(EventKindName(EventKind::kLeaseLost), "lease_lost");
}

TEST(ObserverHooks, BreakerReportsTripAndRejections) {
  ManualClock clock;
  CircuitBreakerOptions o;
  o.window_calls = 4;
  o.min_calls = 4;
  auto breaker = std::move(CircuitBreaker::Create(clock, o)).value();
  Recorder rec;
  breaker->observe().Attach(&rec, "payments");
  for (int i = 0; i < 4; ++i) {
    const BreakerPermit p = breaker->TryAcquire();
    ASSERT_TRUE(p.admitted());
    breaker->Record(p, CallOutcome::kFailure, Duration::Millis(1));
  }
  EXPECT_FALSE(breaker->TryAcquire().admitted());
  ASSERT_EQ(rec.Count(EventKind::kBreakerTransition), 1);
  const Seen* t = rec.First(EventKind::kBreakerTransition);
  EXPECT_EQ(t->a, static_cast<int64_t>(BreakerState::kClosed));
  EXPECT_EQ(t->b, static_cast<int64_t>(BreakerState::kOpen));
  EXPECT_EQ(t->source, "payments");
  EXPECT_EQ(rec.Count(EventKind::kBreakerRejected), 1);
  EXPECT_EQ(breaker->counters().rejected, 1u);
}

// A failing backend behind retry + budget: retries scheduled with their delays, then the budget
// refuses; every call reports kCallCompleted with its code and a measured latency.
TEST(ObserverHooks, PipelineReportsRetriesBudgetAndCompletion) {
  CountingClock clock;
  RetryOptions ro;
  ro.attempts_max = 3;
  const RetryPolicy retry = std::move(RetryPolicy::Create(ro)).value();
  TokenRetryBudgetOptions bo;
  bo.tokens_max = 10;
  auto budget = std::move(TokenRetryBudget::Create(bo)).value();
  PipelineStages s;
  s.retry = &retry;
  s.budget = budget.get();
  Pipeline p(clock, s);
  Recorder rec;
  p.observe().Attach(&rec, "backend");
  int calls = 0;
  for (int i = 0; i < 10; ++i) {
    const Status st = p.Execute(
        Deadline::Infinite(),
        [&](Duration) {
          ++calls;
          clock.inner.Advance(Duration::Millis(2));
          return UnavailableError("down");
        },
        [&](Duration d) { clock.inner.Advance(d); });
    EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  }
  EXPECT_EQ(rec.Count(EventKind::kCallCompleted), 10);
  EXPECT_GT(rec.Count(EventKind::kRetryBudgetDenied), 0);
  // Every attempt after the first was scheduled, and reported, exactly once.
  EXPECT_EQ(rec.Count(EventKind::kRetryScheduled), calls - 10);
  const Seen* r = rec.First(EventKind::kRetryScheduled);
  EXPECT_EQ(r->a, 2);
  EXPECT_GT(r->d, Duration::Zero());
  const Seen* c = rec.First(EventKind::kCallCompleted);
  EXPECT_EQ(c->a, static_cast<int64_t>(StatusCode::kUnavailable));
  EXPECT_EQ(c->b, 1);  // a failure's completion reading measures the call
  EXPECT_GE(c->d, Duration::Millis(6));  // three attempts of 2 ms plus two backoffs
  EXPECT_EQ(rec.Count(EventKind::kRetryExhausted) + rec.Count(EventKind::kRetryBudgetDenied), 10);
}

// Attaching an observer adds no clock read: a success without a breaker has no completion reading
// and reports b = 0; with a breaker its reading measures the latency.
TEST(ObserverHooks, PipelineSuccessAddsNoClockRead) {
  for (const bool with_breaker : {false, true}) {
    CountingClock clock;
    const RetryPolicy retry = std::move(RetryPolicy::Create(RetryOptions())).value();
    auto breaker = std::move(CircuitBreaker::Create(clock, CircuitBreakerOptions())).value();
    PipelineStages s;
    s.retry = &retry;
    s.breaker = with_breaker ? breaker.get() : nullptr;
    Pipeline p(clock, s);
    Recorder rec;
    p.observe().Attach(&rec, "x");
    clock.reads = 0;
    auto ok = [&](Duration) {
      clock.inner.Advance(Duration::Millis(3));
      return Status::Ok();
    };
    ASSERT_TRUE(p.Execute(Deadline::Infinite(), ok, NoSleep).ok());
    EXPECT_EQ(clock.reads, with_breaker ? 2 : 1);
    ASSERT_EQ(rec.Count(EventKind::kCallCompleted), 1);
    const Seen* c = rec.First(EventKind::kCallCompleted);
    EXPECT_EQ(c->a, 0);
    EXPECT_EQ(c->b, with_breaker ? 1 : 0);
    EXPECT_EQ(c->d, with_breaker ? Duration::Millis(3) : Duration::Zero());
  }
}

TEST(ObserverHooks, LimiterBulkheadAndAdaptiveReportRejections) {
  ManualClock clock;
  GcraOptions go;
  go.emission_interval = Duration::Millis(10);
  go.burst_tolerance = Duration::Millis(10);
  auto gcra = std::move(Gcra::Create(clock, go)).value();
  Recorder rec;
  gcra->observe().Attach(&rec, "rl");
  EXPECT_TRUE(gcra->TryAcquire().admitted());
  EXPECT_FALSE(gcra->TryAcquire().admitted());
  ASSERT_EQ(rec.Count(EventKind::kLimiterRejected), 1);
  EXPECT_GT(rec.First(EventKind::kLimiterRejected)->d, Duration::Zero());

  BulkheadOptions bo;
  bo.concurrency_max = 1;
  auto bulkhead = std::move(Bulkhead::Create(bo)).value();
  bulkhead->observe().Attach(&rec, "bh");
  BulkheadPermit held = bulkhead->TryAcquire();
  ASSERT_TRUE(held);
  EXPECT_FALSE(bulkhead->TryAcquire());
  ASSERT_EQ(rec.Count(EventKind::kBulkheadRejected), 1);
  EXPECT_EQ(rec.First(EventKind::kBulkheadRejected)->a, 1);

  AdaptiveConcurrencyOptions ao;
  ao.limit_initial = 1;
  ao.limit_min = 1;
  auto adaptive = std::move(AdaptiveConcurrencyLimiter::Create(clock, ao)).value();
  adaptive->observe().Attach(&rec, "ac");
  const AdaptiveConcurrencyLimiter::Token t = adaptive->TryAcquire();
  ASSERT_TRUE(t.admitted());
  EXPECT_FALSE(adaptive->TryAcquire().admitted());
  ASSERT_EQ(rec.Count(EventKind::kAdaptiveRejected), 1);
  EXPECT_EQ(rec.First(EventKind::kAdaptiveRejected)->b, 1);
  adaptive->OnSuccess(t, Duration::Millis(1));  // the algorithm may raise the limit
  for (const Seen& s : rec.events) {
    if (s.kind == EventKind::kAdaptiveLimit) {
      EXPECT_EQ(s.a, adaptive->limit());
    }
  }
}

TEST(ObserverHooks, KeyedLimiterReportsRateAndKeyTableRefusals) {
  ManualClock clock;
  clock.Advance(Duration::Seconds(1));
  KeyedRateLimiterOptions o;
  o.limit.emission_interval = Duration::Millis(10);
  o.limit.burst_tolerance = Duration::Millis(10);  // one request at once per key
  o.keys_max = 1;
  auto limiter = std::move(KeyedRateLimiter::Create(clock, o)).value();
  Recorder rec;
  limiter->observe().Attach(&rec, "tenants");
  EXPECT_TRUE(limiter->TryAcquire(7).admitted());
  EXPECT_TRUE(rec.events.empty());  // admissions report nothing
  const RateLimitResult refused = limiter->TryAcquire(7);
  ASSERT_EQ(refused.decision(), RateDecision::kRejected);
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(rec.events[0].kind, EventKind::kLimiterRejected);
  EXPECT_EQ(rec.events[0].source, "tenants");
  EXPECT_EQ(rec.events[0].a, 0);
  EXPECT_EQ(rec.events[0].d, refused.retry_after());
  EXPECT_EQ(rec.events[0].at, clock.Now());
  // Key 7 is still active and the table holds one key: key 8 is refused for want of a slot.
  ASSERT_EQ(limiter->TryAcquire(8).decision(), RateDecision::kKeysExhausted);
  ASSERT_EQ(rec.events.size(), 2u);
  EXPECT_EQ(rec.events[1].kind, EventKind::kLimiterRejected);
  EXPECT_EQ(rec.events[1].a, 1);
  EXPECT_EQ(rec.events[1].d, Duration::Zero());
}

TEST(ObserverHooks, FencingRejectionsCarryTokenAndMark) {
  lease::FenceGuard guard;
  Recorder rec;
  guard.observe().Attach(&rec, "fence");
  EXPECT_TRUE(guard.Admit(FencingToken(5)).ok());
  EXPECT_FALSE(guard.Admit(FencingToken(3)).ok());
  EXPECT_FALSE(guard.TryAdmit(FencingToken(4)));
  ASSERT_EQ(rec.Count(EventKind::kFencingRejected), 2);
  EXPECT_EQ(rec.First(EventKind::kFencingRejected)->a, 3);
  EXPECT_EQ(rec.First(EventKind::kFencingRejected)->b, 5);
}

TEST(ObserverHooks, OffsetMonitorAlarmsOnlyBeyondTolerance) {
  ManualClock clock;
  clock.Advance(Duration::Seconds(1));
  auto monitor = std::move(OffsetMonitor::Create(clock)).value();
  Recorder rec;
  monitor->observe().Attach(&rec, "hlc");
  ASSERT_TRUE(monitor->Record(NodeId(1), {Duration::Millis(10), Duration::Zero(), clock.Now()}).ok());
  ASSERT_TRUE(monitor->Record(NodeId(2), {Duration::Millis(900), Duration::Zero(), clock.Now()}).ok());
  ASSERT_EQ(rec.Count(EventKind::kHlcOffsetAlarm), 1);
  EXPECT_EQ(rec.First(EventKind::kHlcOffsetAlarm)->a, 2);
  EXPECT_EQ(rec.First(EventKind::kHlcOffsetAlarm)->d, Duration::Millis(900));
}

TEST(ObserverHooks, DetachedSlotEmitsNothing) {
  ObserverSlot slot;
  EXPECT_FALSE(slot.attached());
  slot.Emit(EventKind::kRetryScheduled, MonoTime());  // no observer: a no-op
  Recorder rec;
  slot.Attach(&rec, std::string(100, 'n'));
  EXPECT_EQ(slot.name().size(), ObserverSlot::kNameMax);
  slot.Attach(nullptr);
  slot.Emit(EventKind::kRetryScheduled, MonoTime());
  EXPECT_TRUE(rec.events.empty());
}

}  // namespace
}  // namespace faultline
