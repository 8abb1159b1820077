// Tests for faultline/resilience/retry_budget.h: exact gRPC A6 token semantics, the Finagle ratio
// budget with its reserve and sliding window (checked against a brute-force model), permits for
// retries sleeping in backoff (Envoy #30205: "retry budget ignoring retries sleeping in
// backoff"), and TSan stress of both budgets.
#include "faultline/resilience/retry_budget.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "faultline/resilience/retry.h"

namespace faultline {
namespace {

std::unique_ptr<TokenRetryBudget> MakeTokens(uint32_t max, uint32_t ratio_milli) {
  TokenRetryBudgetOptions o;
  o.tokens_max = max;
  o.token_ratio_milli = ratio_milli;
  auto b = TokenRetryBudget::Create(o);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return std::move(b).value();
}

std::unique_ptr<RatioRetryBudget> MakeRatio(Clock& clock, Duration ttl, uint32_t buckets,
                                            uint32_t min_per_sec, Ratio ratio) {
  RatioRetryBudgetOptions o;
  o.ttl = ttl;
  o.buckets = buckets;
  o.min_retries_per_sec = min_per_sec;
  o.retry_ratio = ratio;
  auto b = RatioRetryBudget::Create(clock, o);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return std::move(b).value();
}

// ---- A6 -----------------------------------------------------------------------------------------

TEST(TokenRetryBudgetTest, InvalidOptionsAreRejectedNamingTheField) {
  // Zero capacity, a zero ratio, or values outside A6's ranges must not build a budget.
  TokenRetryBudgetOptions o;
  o.tokens_max = 0;
  EXPECT_NE(TokenRetryBudget::Create(o).status().message().find("tokens_max"), std::string::npos);
  o.tokens_max = 1001;
  EXPECT_NE(TokenRetryBudget::Create(o).status().message().find("tokens_max"), std::string::npos);
  o = TokenRetryBudgetOptions();
  o.token_ratio_milli = 0;
  EXPECT_NE(TokenRetryBudget::Create(o).status().message().find("token_ratio_milli"),
            std::string::npos);
  o.tokens_max = 2;
  o.token_ratio_milli = 2001;
  EXPECT_NE(TokenRetryBudget::Create(o).status().message().find("token_ratio_milli"),
            std::string::npos);
  EXPECT_TRUE(TokenRetryBudgetOptions().Validate().ok());
}

TEST(TokenRetryBudgetTest, ThrottlesExactlyWhenTokensReachHalf) {
  // A6: tokens start at max, each failure -1, retry allowed iff tokens > max/2 (strictly).
  // maxTokens 10: after 4 failures 6 > 5 allows; after the 5th, 5 > 5 does not.
  auto b = MakeTokens(10, 100);
  EXPECT_EQ(b->milli_tokens(), 10'000);
  for (int i = 0; i < 4; ++i) b->RecordFailure();
  EXPECT_TRUE(b->TryAcquireRetry().granted);
  b->RecordFailure();
  EXPECT_EQ(b->milli_tokens(), 5'000);
  EXPECT_TRUE(b->throttled());
  EXPECT_FALSE(b->TryAcquireRetry().granted);
  // Success adds token_ratio (0.1): 5.1 > 5 allows again.
  b->RecordSuccess();
  EXPECT_EQ(b->milli_tokens(), 5'100);
  EXPECT_TRUE(b->TryAcquireRetry().granted);
  EXPECT_EQ(b->retries_granted(), 2u);
  EXPECT_EQ(b->retries_denied(), 1u);
}

TEST(TokenRetryBudgetTest, TokensClampAtZeroAndAtMax) {
  // Failures below 0 and successes above max are absorbed, so a long outage does not dig a hole
  // that takes forever to refill, and a long healthy run does not bank unlimited retries.
  auto b = MakeTokens(3, 1500);
  for (int i = 0; i < 10; ++i) b->RecordFailure();
  EXPECT_EQ(b->milli_tokens(), 0);
  b->RecordSuccess();
  EXPECT_EQ(b->milli_tokens(), 1500);
  for (int i = 0; i < 10; ++i) b->RecordSuccess();
  EXPECT_EQ(b->milli_tokens(), 3000);
  // 0.5 tokens of ratio with max 1: fractional tokens are exact in milli-tokens.
  auto c = MakeTokens(1, 1);
  c->RecordFailure();
  EXPECT_EQ(c->milli_tokens(), 0);
  for (int i = 0; i < 500; ++i) c->RecordSuccess();
  EXPECT_EQ(c->milli_tokens(), 500);
  EXPECT_FALSE(c->TryAcquireRetry().granted);  // 0.5 > 0.5 is false
  c->RecordSuccess();
  EXPECT_TRUE(c->TryAcquireRetry().granted);
}

RC_GTEST_PROP(TokenRetryBudgetProperty, TokensStayInRangeAndMatchTheModel,
              (const std::vector<uint8_t>& ops)) {
  // Any interleaving of successes, failures and acquisitions keeps tokens in [0, max] and equal
  // to the A6 reference arithmetic; acquisition is granted iff tokens > max/2.
  const uint32_t max = *rc::gen::inRange<uint32_t>(1, 1001);
  const uint32_t ratio = *rc::gen::inRange<uint32_t>(1, max * 1000 + 1);
  auto b = MakeTokens(max, ratio);
  int64_t model = int64_t{max} * 1000;
  for (uint8_t op : ops) {
    switch (op % 3) {
      case 0:
        b->RecordSuccess();
        model = std::min<int64_t>(model + ratio, int64_t{max} * 1000);
        break;
      case 1:
        b->RecordFailure();
        model = std::max<int64_t>(model - 1000, 0);
        break;
      case 2:
        RC_ASSERT(b->TryAcquireRetry().granted == (model * 2 > int64_t{max} * 1000));
        break;
    }
    RC_ASSERT(b->milli_tokens() == model);
    RC_ASSERT(b->milli_tokens() >= 0);
    RC_ASSERT(b->milli_tokens() <= int64_t{max} * 1000);
  }
}

// ---- Ratio budget -------------------------------------------------------------------------------

TEST(RatioRetryBudgetTest, InvalidOptionsAreRejectedNamingTheField) {
  // A ratio outside [0, 1], zero buckets, a window shorter than its buckets: rejected.
  ManualClock clock;
  RatioRetryBudgetOptions o;
  o.retry_ratio = Ratio{3, 2};
  EXPECT_NE(RatioRetryBudget::Create(clock, o).status().message().find("retry_ratio"),
            std::string::npos);
  o.retry_ratio = Ratio{0, 0};
  EXPECT_NE(RatioRetryBudget::Create(clock, o).status().message().find("retry_ratio"),
            std::string::npos);
  o = RatioRetryBudgetOptions();
  o.buckets = 0;
  EXPECT_NE(RatioRetryBudget::Create(clock, o).status().message().find("buckets"),
            std::string::npos);
  o = RatioRetryBudgetOptions();
  o.ttl = Duration::Seconds(-1);
  EXPECT_NE(RatioRetryBudget::Create(clock, o).status().message().find("ttl"), std::string::npos);
  o.ttl = Duration::Micros(5);
  EXPECT_NE(RatioRetryBudget::Create(clock, o).status().message().find("ttl"), std::string::npos);
  o = RatioRetryBudgetOptions();
  o.min_retries_per_sec = 2'000'000;
  EXPECT_NE(RatioRetryBudget::Create(clock, o).status().message().find("min_retries_per_sec"),
            std::string::npos);
}

TEST(RatioRetryBudgetTest, ReservePlusRatioExactly) {
  // Finagle: retries <= ratio × requests + min_retries_per_sec × ttl within the window. With
  // 20 %, 1/s and ttl 10 s: the reserve alone grants 10, each 5 requests one more.
  ManualClock clock;
  auto b = MakeRatio(clock, Duration::Seconds(10), 10, 1, Ratio::Percent(20));
  EXPECT_EQ(b->reserve_retries(), 10u);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(b->TryAcquireRetry().granted) << i;
  EXPECT_FALSE(b->TryAcquireRetry().granted);
  for (int i = 0; i < 4; ++i) b->RecordRequest();
  EXPECT_FALSE(b->TryAcquireRetry().granted);  // 4 × 0.2 = 0.8 retries: not yet one
  b->RecordRequest();
  EXPECT_TRUE(b->TryAcquireRetry().granted);
  EXPECT_FALSE(b->TryAcquireRetry().granted);
  const auto w = b->Window(clock.Now());
  EXPECT_EQ(w.requests, 5u);
  EXPECT_EQ(w.retries, 11);
  EXPECT_EQ(w.retries_available, 0u);
  EXPECT_EQ(b->retries_granted(), 11u);
  EXPECT_EQ(b->retries_denied(), 3u);
  EXPECT_EQ(b->requests_total(), 5u);
}

TEST(RatioRetryBudgetTest, WindowSlidesByBuckets) {
  // ttl 10 s in 10 buckets of 1 s: a request made at t=0.5 s funds retries until the window no
  // longer contains bucket 0, i.e. from t=10 s on. Retries granted leave the window the same way.
  ManualClock clock;
  auto b = MakeRatio(clock, Duration::Seconds(10), 10, 0, Ratio{1, 1});
  EXPECT_FALSE(b->TryAcquireRetry().granted);  // no reserve, no requests
  clock.Advance(Duration::Millis(500));
  b->RecordRequest();
  b->RecordRequest();
  clock.Advance(Duration::Millis(9000));  // t = 9.5 s: still bucket 9, window [0, 9]
  EXPECT_TRUE(b->TryAcquireRetry().granted);
  EXPECT_EQ(b->Window(clock.Now()).retries_available, 1u);
  clock.Advance(Duration::Millis(500));  // t = 10 s: window [1, 10], the requests are gone
  EXPECT_EQ(b->Window(clock.Now()).requests, 0u);
  EXPECT_FALSE(b->TryAcquireRetry().granted);
  b->RecordRequest();
  // The retry granted in bucket 9 still counts against the request made in bucket 10.
  EXPECT_FALSE(b->TryAcquireRetry().granted);
  clock.Advance(Duration::Seconds(9));  // t = 19 s: window [10, 19], bucket 9 left
  EXPECT_TRUE(b->TryAcquireRetry().granted);
  // A long idle gap empties the whole window.
  clock.Advance(Duration::Seconds(3600));
  const auto w = b->Window(clock.Now());
  EXPECT_EQ(w.requests, 0u);
  EXPECT_EQ(w.retries, 0);
}

TEST(RatioRetryBudgetTest, ReleasedPermitsReturnOnlyWhileInTheWindow) {
  // An abandoned retry gives its withdrawal back if the withdrawal still counts; once it has left
  // the window, releasing must not mint extra budget.
  ManualClock clock;
  auto b = MakeRatio(clock, Duration::Seconds(10), 10, 0, Ratio{1, 1});
  b->RecordRequest();
  RetryPermit p = b->TryAcquireRetry();
  ASSERT_TRUE(p.granted);
  EXPECT_FALSE(b->TryAcquireRetry().granted);
  b->ReleaseRetry(p);
  EXPECT_EQ(b->retries_released(), 1u);
  RetryPermit q = b->TryAcquireRetry();
  EXPECT_TRUE(q.granted);
  clock.Advance(Duration::Seconds(10));  // q's bucket left the window
  b->ReleaseRetry(q);
  EXPECT_EQ(b->retries_released(), 1u);
  EXPECT_EQ(b->Window(clock.Now()).retries, 0);
  EXPECT_FALSE(b->TryAcquireRetry().granted);
  b->ReleaseRetry(RetryPermit{});  // a refused permit releases nothing
  EXPECT_EQ(b->retries_released(), 1u);
}

// Brute-force reference: every event kept with its bucket; the window is recomputed from scratch.
struct RatioModel {
  struct Event {
    uint64_t bucket;
    bool request;
    bool released = false;
  };
  uint64_t buckets, reserve, num, den;
  std::vector<Event> events;
  uint64_t First(uint64_t head) const { return head + 1 >= buckets ? head + 1 - buckets : 0; }
  uint64_t Requests(uint64_t head) const {
    uint64_t n = 0;
    for (const Event& e : events) n += (e.request && e.bucket >= First(head)) ? 1 : 0;
    return n;
  }
  uint64_t Retries(uint64_t head) const {
    uint64_t n = 0;
    for (const Event& e : events) n += (!e.request && !e.released && e.bucket >= First(head)) ? 1 : 0;
    return n;
  }
  bool Allows(uint64_t head) const {
    return Retries(head) + 1 <= Requests(head) * num / den + reserve;
  }
};

RC_GTEST_PROP(RatioRetryBudgetProperty, RetriesNeverExceedRatioPlusReserveInAnyWindow,
              (const std::vector<uint16_t>& ops)) {
  // Random requests, retries, releases and clock steps. Every decision must equal the
  // brute-force model's, and after every grant the window ending there holds at most
  // floor(ratio × requests) + reserve retries.
  ManualClock clock;
  const uint32_t buckets = *rc::gen::inRange<uint32_t>(1, 8);
  const uint32_t per_sec = *rc::gen::inRange<uint32_t>(0, 3);
  const Ratio ratio{*rc::gen::inRange<uint64_t>(0, 4), 4};
  const Duration ttl = Duration::Seconds(buckets);  // 1 s buckets
  auto b = MakeRatio(clock, ttl, buckets, per_sec, ratio);
  RatioModel model{buckets, uint64_t{per_sec} * buckets, ratio.numerator, ratio.denominator, {}};
  std::vector<std::pair<RetryPermit, size_t>> permits;
  for (uint16_t op : ops) {
    const uint64_t head = static_cast<uint64_t>(clock.Now().nanos() / 1'000'000'000);
    switch (op % 4) {
      case 0:
        b->RecordRequest();
        model.events.push_back({head, true});
        break;
      case 1: {
        const bool expect = model.Allows(head);
        const RetryPermit p = b->TryAcquireRetry();
        RC_ASSERT(p.granted == expect);
        if (p.granted) {
          model.events.push_back({head, false});
          permits.emplace_back(p, model.events.size() - 1);
          RC_ASSERT(model.Retries(head) <= model.Requests(head) * model.num / model.den +
                                               model.reserve);
        }
        break;
      }
      case 2:
        if (!permits.empty()) {
          const size_t i = (op / 4) % permits.size();
          b->ReleaseRetry(permits[i].first);
          RatioModel::Event& e = model.events[permits[i].second];
          if (e.bucket >= model.First(head)) e.released = true;
          permits.erase(permits.begin() + static_cast<std::ptrdiff_t>(i));
        }
        break;
      case 3:
        clock.Advance(Duration::Millis((op / 4) % 2500));
        break;
    }
    const uint64_t now_bucket = static_cast<uint64_t>(clock.Now().nanos() / 1'000'000'000);
    const auto w = b->Window(clock.Now());
    RC_ASSERT(w.requests == model.Requests(now_bucket));
    RC_ASSERT(w.retries == static_cast<int64_t>(model.Retries(now_bucket)));
  }
}

// ---- Retries sleeping in backoff ----------------------------------------------------------------

RetryPolicy SlowBackoffPolicy() {
  RetryOptions o;
  o.attempts_max = 5;
  o.backoff.delay_initial = Duration::Seconds(1);
  o.backoff.delay_max = Duration::Seconds(1);
  o.backoff.jitter = Jitter::kNone;
  auto p = RetryPolicy::Create(o);
  EXPECT_TRUE(p.ok());
  return std::move(p).value();
}

TEST(RetryBudgetBackoffTest, RetryBudgetIgnoringRetriesSleepingInBackoffDoesNotHappen) {
  // Regression for Envoy #30205 ("retry budget ignoring retries sleeping in backoff"): 10 calls
  // fail at the same instant and all want to retry after a 1 s backoff. If the budget were only
  // charged when a retry is SENT, all 10 would pass the check while none has been sent yet.
  // Permits are taken at decision time, so a 20 % budget grants exactly 2 of the 10.
  ManualClock clock;
  auto budget = MakeRatio(clock, Duration::Seconds(10), 10, 0, Ratio::Percent(20));
  const RetryPolicy policy = SlowBackoffPolicy();
  std::vector<std::unique_ptr<RetryState>> calls;
  for (int i = 0; i < 10; ++i) {
    calls.push_back(std::make_unique<RetryState>(policy, budget.get(), Deadline::Infinite(), i));
    ASSERT_TRUE(calls.back()->StartAttempt(clock.Now()).start);
  }
  int sleeping = 0;
  int refused = 0;
  for (auto& c : calls) {
    const auto d = c->Decide(UnavailableError("down"), clock.Now());
    if (d.retry()) {
      ++sleeping;
      EXPECT_EQ(d.delay, Duration::Seconds(1));
    } else {
      EXPECT_EQ(d.reason, StopReason::kBudgetExhausted);
      ++refused;
    }
  }
  EXPECT_EQ(sleeping, 2);
  EXPECT_EQ(refused, 8);
  // A sleeping retry abandoned (e.g. its caller cancelled) hands its permit back: one more call
  // may now retry.
  auto* sleeper = calls[0]->holding_permit() ? calls[0].get() : calls[1].get();
  ASSERT_TRUE(sleeper->holding_permit());
  sleeper->Abandon();
  EXPECT_FALSE(sleeper->holding_permit());
  RetryState late(policy, budget.get(), Deadline::Infinite(), 77);
  ASSERT_TRUE(late.StartAttempt(clock.Now()).start);  // an 11th request: 2.2 retries allowed
  EXPECT_TRUE(late.Decide(UnavailableError("down"), clock.Now()).retry());
}

TEST(RetryBudgetBackoffTest, TokenBudgetChargesFailuresBeforeTheSleep) {
  // The A6 budget charges the failure itself at decision time, so the same burst is cut off after
  // tokens_max/2 failures even though no retry has been sent: with max 10, 4 of 10 retry.
  ManualClock clock;
  auto budget = MakeTokens(10, 100);
  const RetryPolicy policy = SlowBackoffPolicy();
  int sleeping = 0;
  std::vector<std::unique_ptr<RetryState>> calls;
  for (int i = 0; i < 10; ++i) {
    calls.push_back(std::make_unique<RetryState>(policy, budget.get(), Deadline::Infinite(), i));
    ASSERT_TRUE(calls.back()->StartAttempt(clock.Now()).start);
    sleeping += calls.back()->Decide(UnavailableError("down"), clock.Now()).retry() ? 1 : 0;
  }
  EXPECT_EQ(sleeping, 4);
  EXPECT_EQ(budget->milli_tokens(), 0);
}

// ---- Concurrency --------------------------------------------------------------------------------

TEST(RetryBudgetConcurrent, TwoThreadsKeepTokensInRange) {
  // Two threads hammer one A6 budget with successes, failures and acquisitions while a third
  // samples it: tokens never leave [0, max] and TSan sees no race.
  auto b = MakeTokens(10, 250);
  std::atomic<bool> stop{false};
  std::atomic<int> out_of_range{0};
  std::atomic<int> gate1{0};  // start both threads together so they overlap
  auto worker = [&](int id) {
    gate1.fetch_add(1);
    while (gate1.load() < 2) {
    }
    for (int i = 0; i < 50000; ++i) {
      if ((i + id) % 3 == 0) {
        b->RecordSuccess();
      } else {
        b->RecordFailure();
      }
      if (b->TryAcquireRetry().granted) b->RecordSuccess();
    }
  };
  std::thread sampler([&] {
    while (!stop.load()) {
      const int64_t t = b->milli_tokens();
      if (t < 0 || t > 10'000) out_of_range.fetch_add(1);
    }
  });
  std::thread t0(worker, 0);
  std::thread t1(worker, 1);
  t0.join();
  t1.join();
  stop.store(true);
  sampler.join();
  EXPECT_EQ(out_of_range.load(), 0);
  EXPECT_GE(b->milli_tokens(), 0);
  EXPECT_LE(b->milli_tokens(), 10'000);
}

TEST(RatioRetryBudgetConcurrent, TwoThreadsNeverExceedTheCap) {
  // Two threads record requests and take retries on one ratio budget while a third moves the
  // clock (rotating buckets). The grant check and withdrawal are atomic, so with the clock frozen
  // the total granted can never exceed ratio × requests + reserve — no check-then-act overshoot.
  ManualClock clock;
  auto frozen = MakeRatio(clock, Duration::Seconds(10), 10, 1, Ratio::Percent(10));
  std::atomic<uint64_t> granted{0};
  std::atomic<int> gate2{0};  // start both threads together so they overlap
  auto worker = [&](int) {
    gate2.fetch_add(1);
    while (gate2.load() < 2) {
    }
    for (int i = 0; i < 20000; ++i) {
      frozen->RecordRequest();
      if (frozen->TryAcquireRetry().granted) granted.fetch_add(1);
      if (frozen->TryAcquireRetry().granted) granted.fetch_add(1);
    }
  };
  std::thread t0(worker, 0);
  std::thread t1(worker, 1);
  t0.join();
  t1.join();
  EXPECT_EQ(granted.load(), 40000 / 10 + 10u);

  // Rotation under contention: a ticking clock; counters stay consistent.
  ManualClock ticking;
  auto moving = MakeRatio(ticking, Duration::Millis(10), 5, 0, Ratio::Percent(50));
  std::atomic<bool> stop{false};
  std::thread ticker([&] {
    while (!stop.load()) ticking.Advance(Duration::Micros(50));
  });
  std::atomic<int> gate3{0};  // start both threads together so they overlap
  auto mover = [&](int) {
    gate3.fetch_add(1);
    while (gate3.load() < 2) {
    }
    for (int i = 0; i < 20000; ++i) {
      moving->RecordRequest();
      RetryPermit p = moving->TryAcquireRetry();
      if (p.granted && i % 4 == 0) moving->ReleaseRetry(p);
    }
  };
  std::thread m0(mover, 0);
  std::thread m1(mover, 1);
  m0.join();
  m1.join();
  stop.store(true);
  ticker.join();
  EXPECT_EQ(moving->requests_total(), 40000u);
  EXPECT_EQ(moving->retries_granted() + moving->retries_denied(), 40000u);
  EXPECT_LE(moving->retries_released(), moving->retries_granted());
  const auto w = moving->Window(ticking.Now());
  EXPECT_GE(w.retries, 0);
}

}  // namespace
}  // namespace faultline
