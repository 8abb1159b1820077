// Tests for faultline/resilience/rate_limiter.h on a ManualClock: exact integer-nanosecond
// arithmetic and wait hints, never-admittable requests, idle time never banking more than the
// capacity (Envoy TokenBucketImpl / kombu #2652), no 2x burst across any boundary (Resilience4j
// #1356) as a property over random arrival sequences, TokenBucket == GCRA decision for decision,
// and the keyed limiter's bounded table against a reference model. Threaded tests (suites
// RateLimiterConcurrent, KeyedRateLimiterConcurrent) run under TSan in ./run sanitize.
#include "faultline/resilience/rate_limiter.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <atomic>
#include <list>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "faultline/core/random.h"
#include "faultline/env/clock.h"

namespace faultline {
namespace {

TokenBucketOptions Bucket(uint64_t capacity, uint64_t tokens, Duration period) {
  TokenBucketOptions o;
  o.capacity_tokens = capacity;
  o.refill_tokens = tokens;
  o.refill_period = period;
  return o;
}

std::unique_ptr<TokenBucket> MakeBucket(Clock& clock, const TokenBucketOptions& o) {
  auto r = TokenBucket::Create(clock, o);
  FL_ASSERT_MSG(r.ok(), "test options must be valid");
  return std::move(r).value();
}

std::unique_ptr<Gcra> MakeGcra(Clock& clock, const GcraOptions& o) {
  auto r = Gcra::Create(clock, o);
  FL_ASSERT_MSG(r.ok(), "test options must be valid");
  return std::move(r).value();
}

GcraOptions GcraOf(Duration interval, Duration tolerance) {
  GcraOptions o;
  o.emission_interval = interval;
  o.burst_tolerance = tolerance;
  return o;
}

void ExpectInvalid(const Status& s, const char* field) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
  EXPECT_NE(std::string(s.message()).find(field), std::string::npos) << s.ToString();
}

// --- Options -----------------------------------------------------------------------------------

TEST(RateLimiterOptionsTest, InvalidOptionsAreRejectedNamingTheField) {
  // Invalid limits must never build a limiter, and the error must say which field is wrong.
  ManualClock clock;
  ExpectInvalid(TokenBucket::Create(clock, Bucket(0, 1, Duration::Seconds(1))).status(),
                "capacity_tokens");
  ExpectInvalid(TokenBucket::Create(clock, Bucket(1, 0, Duration::Seconds(1))).status(),
                "refill_tokens");
  ExpectInvalid(TokenBucket::Create(clock, Bucket(1, 1, Duration::Zero())).status(),
                "refill_period");
  ExpectInvalid(TokenBucket::Create(clock, Bucket(1, 1, Duration::Nanos(-1))).status(),
                "refill_period");
  ExpectInvalid(TokenBucket::Create(clock, Bucket(1, 11, Duration::Nanos(10))).status(),
                "refill_tokens per refill_period");
  ExpectInvalid(
      TokenBucket::Create(clock, Bucket(uint64_t{1} << 40, 1, Duration::Seconds(1))).status(),
      "capacity_tokens x");
  ExpectInvalid(Gcra::Create(clock, GcraOf(Duration::Zero(), Duration::Seconds(1))).status(),
                "emission_interval");
  ExpectInvalid(Gcra::Create(clock, GcraOf(Duration::Millis(2), Duration::Millis(1))).status(),
                "burst_tolerance must be >= emission_interval");
  ExpectInvalid(Gcra::Create(clock, GcraOf(Duration::Nanos(1), Duration::Infinite())).status(),
                "burst_tolerance must be < 2^62");
  ExpectInvalid(Gcra::Create(clock, GcraOptions::PerPeriod(0, Duration::Seconds(1), 1)).status(),
                "emission_interval");
  KeyedRateLimiterOptions k;
  k.keys_max = 0;
  ExpectInvalid(KeyedRateLimiter::Create(clock, k).status(), "keys_max");
  k.keys_max = 10;
  k.limit.burst_tolerance = Duration::Zero();
  ExpectInvalid(KeyedRateLimiter::Create(clock, k).status(), "burst_tolerance");
  EXPECT_TRUE(TokenBucketOptions().Validate().ok());
  EXPECT_TRUE(GcraOptions().Validate().ok());
}

TEST(RateLimiterOptionsTest, RatesRoundToAnEmissionIntervalThatNeverExceedsTheNominalRate) {
  // 3 per second cannot be exact in integer ns; rounding T up keeps the realised rate below 3/s
  // (so "burst + rate·t" holds with the nominal rate), and exact rates stay exact.
  EXPECT_EQ(Bucket(1, 3, Duration::Seconds(1)).emission_interval(), Duration::Nanos(333'333'334));
  EXPECT_EQ(Bucket(1, 100, Duration::Seconds(1)).emission_interval(), Duration::Millis(10));
  const GcraOptions g = GcraOptions::PerPeriod(3, Duration::Seconds(1), 2);
  EXPECT_EQ(g.emission_interval, Duration::Nanos(333'333'334));
  EXPECT_EQ(g.burst_tolerance, Duration::Nanos(666'666'668));
}

// --- TokenBucket -------------------------------------------------------------------------------

TEST(TokenBucketTest, AdmitsTheCapacityAtOnceThenOneTokenPerIntervalWithExactWaitHints) {
  // A full bucket of 5 admits 5 at once; the 6th is told to wait exactly one emission interval,
  // and is refused 1 ns earlier and admitted exactly then. Rejections consume nothing.
  ManualClock clock;
  auto b = MakeBucket(clock, Bucket(5, 10, Duration::Seconds(1)));  // T = 100 ms
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b->TryAcquire().admitted()) << i;
  RateLimitResult r = b->TryAcquire();
  EXPECT_EQ(r.decision(), RateDecision::kRejected);
  EXPECT_EQ(r.retry_after(), Duration::Millis(100));
  clock.Advance(Duration::Millis(100) - Duration::Nanos(1));
  r = b->TryAcquire();
  EXPECT_EQ(r.retry_after(), Duration::Nanos(1));
  clock.Advance(Duration::Nanos(1));
  EXPECT_TRUE(b->TryAcquire().admitted());
  EXPECT_FALSE(b->TryAcquire().admitted());
  EXPECT_EQ(b->Available(), 0u);
  const RateLimiterCounters c = b->counters();
  EXPECT_EQ(c.admitted, 6u);
  EXPECT_EQ(c.rejected, 3u);
}

TEST(TokenBucketTest, IdleTimeNeverBanksMoreThanTheCapacity) {
  // Envoy's TokenBucketImpl advanced its refill timestamp only when not full, so after an idle
  // period it granted one token too many (fixed in kombu #2652). After an hour idle, exactly the
  // capacity passes, and the refill restarts from the moment the bucket was last full.
  ManualClock clock;
  auto b = MakeBucket(clock, Bucket(5, 10, Duration::Seconds(1)));
  clock.Advance(Duration::Seconds(3600));
  EXPECT_EQ(b->Available(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b->TryAcquire().admitted());
  const RateLimitResult r = b->TryAcquire();
  EXPECT_FALSE(r.admitted());
  EXPECT_EQ(r.retry_after(), Duration::Millis(100));
}

TEST(TokenBucketTest, MultiTokenRequestsWaitForTheirWholeCost) {
  // A request of 3 tokens with 1 available must wait for exactly 2 more intervals; partial tokens
  // accrued in between count (nanosecond credit is never truncated).
  ManualClock clock;
  auto b = MakeBucket(clock, Bucket(4, 10, Duration::Seconds(1)));
  EXPECT_TRUE(b->TryAcquire(3).admitted());
  clock.Advance(Duration::Millis(30));
  RateLimitResult r = b->TryAcquire(3);
  EXPECT_EQ(r.retry_after(), Duration::Millis(170));
  clock.Advance(Duration::Millis(170));
  EXPECT_TRUE(b->TryAcquire(3).admitted());
  EXPECT_TRUE(b->TryAcquire(0).admitted());  // zero cost always passes and changes nothing
  EXPECT_EQ(b->TryAcquire(1).retry_after(), Duration::Millis(100));
}

TEST(TokenBucketTest, RequestLargerThanTheCapacityIsNeverAdmittable) {
  // No wait could ever admit 6 tokens from a bucket of 5: say so, with no wait hint, and consume
  // nothing (the next request of 5 still passes).
  ManualClock clock;
  auto b = MakeBucket(clock, Bucket(5, 1, Duration::Seconds(1)));
  const RateLimitResult r = b->TryAcquire(6);
  EXPECT_EQ(r.decision(), RateDecision::kNeverAdmittable);
  EXPECT_EQ(r.retry_after(), Duration::Zero());
  EXPECT_TRUE(b->TryAcquire(5).admitted());
  EXPECT_EQ(b->counters().never_admittable, 1u);
}

TEST(TokenBucketTest, StartEmptyAdmitsNothingUntilTheFirstRefill) {
  // start_full = false: the first token arrives one interval after Create().
  ManualClock clock;
  TokenBucketOptions o = Bucket(3, 1, Duration::Millis(10));
  o.start_full = false;
  auto b = MakeBucket(clock, o);
  EXPECT_EQ(b->TryAcquire().retry_after(), Duration::Millis(10));
  clock.Advance(Duration::Millis(25));
  EXPECT_EQ(b->Available(), 2u);
  EXPECT_TRUE(b->TryAcquire(2).admitted());
  EXPECT_EQ(b->TryAcquire().retry_after(), Duration::Millis(5));
}

TEST(TokenBucketTest, NoDoubleBurstAcrossAPeriodBoundary) {
  // Resilience4j #1356: a fixed-window limiter admits its limit at the end of one cycle and again
  // at the start of the next (2x in a moment). Draining the bucket just before a "boundary" leaves
  // exactly one refilled token just after it.
  ManualClock clock;
  auto b = MakeBucket(clock, Bucket(10, 10, Duration::Seconds(1)));
  clock.Advance(Duration::Millis(999));
  int admitted = 0;
  while (b->TryAcquire().admitted()) ++admitted;
  clock.Advance(Duration::Millis(101));  // t = 1.1 s: "a new period"
  while (b->TryAcquire().admitted()) ++admitted;
  EXPECT_EQ(admitted, 11);
}

// --- GCRA --------------------------------------------------------------------------------------

TEST(GcraTest, FollowsTheRedisCellArithmeticExactly) {
  // T = 100 ms, τ = 500 ms: 5 at once from idle; the 6th waits tat' - τ - now = 100 ms; the
  // limiter is idle again tat - now = 500 ms after the burst.
  ManualClock clock(MonoTime::FromNanos(123));
  auto g = MakeGcra(clock, GcraOf(Duration::Millis(100), Duration::Millis(500)));
  EXPECT_EQ(g->quantity_max(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(g->TryAcquire().admitted()) << i;
  EXPECT_EQ(g->ResetAfter(), Duration::Millis(500));
  const RateLimitResult r = g->TryAcquire();
  EXPECT_EQ(r.decision(), RateDecision::kRejected);
  EXPECT_EQ(r.retry_after(), Duration::Millis(100));
  clock.Advance(Duration::Millis(250));
  EXPECT_TRUE(g->TryAcquire(2).admitted());
  EXPECT_EQ(g->TryAcquire().retry_after(), Duration::Millis(50));
  clock.Advance(Duration::Seconds(10));
  EXPECT_EQ(g->ResetAfter(), Duration::Zero());
  EXPECT_TRUE(g->TryAcquire(5).admitted());
}

TEST(GcraTest, QuantityWhoseCostExceedsTheToleranceIsNeverAdmittable) {
  // q·T > τ can never satisfy now >= tat' - τ: report it instead of a wait hint that would lie.
  ManualClock clock;
  auto g = MakeGcra(clock, GcraOf(Duration::Millis(100), Duration::Millis(350)));
  EXPECT_EQ(g->TryAcquire(4).decision(), RateDecision::kNeverAdmittable);
  EXPECT_TRUE(g->TryAcquire(3).admitted());
  clock.Advance(Duration::Seconds(100));
  EXPECT_EQ(g->TryAcquire(4).decision(), RateDecision::kNeverAdmittable);
}

// --- Properties --------------------------------------------------------------------------------

struct Arrival {
  int64_t at_ns;
  uint64_t cost;
};

// Random arrivals: bursts at one instant, sub-interval gaps and long idles, costs up to
// capacity + 1 (so some are never admittable).
std::vector<Arrival> GenArrivals(int64_t interval_ns, uint64_t capacity) {
  Rng rng(*rc::gen::arbitrary<uint64_t>());
  const int n = *rc::gen::inRange(1, 160);
  std::vector<Arrival> out;
  int64_t t = *rc::gen::inRange<int64_t>(0, 1'000'000'000);
  for (int i = 0; i < n; ++i) {
    const uint64_t kind = rng.Uniform(8);
    if (kind < 3)
      t += 0;
    else if (kind < 7)
      t += static_cast<int64_t>(rng.Uniform(static_cast<uint64_t>(2 * interval_ns)));
    else
      t += static_cast<int64_t>(rng.Uniform(static_cast<uint64_t>(interval_ns) * (capacity + 2)));
    out.push_back({t, rng.Uniform(capacity + 2)});
  }
  return out;
}

// Admitted (time, cost) pairs must satisfy, for every interval [a, b] spanned by two of them:
// sum of costs · T <= burst_ns + (b - a), i.e. at most burst + rate · t, exactly (burst_ns is
// capacity · T for the bucket, τ for GCRA).
bool NeverExceedsBurstPlusRate(const std::vector<Arrival>& admitted, int64_t interval_ns,
                               int64_t burst_ns) {
  for (size_t i = 0; i < admitted.size(); ++i) {
    Int128 sum = 0;
    for (size_t j = i; j < admitted.size(); ++j) {
      sum += admitted[j].cost;
      const Int128 span = admitted[j].at_ns - admitted[i].at_ns;
      if (sum * interval_ns > static_cast<Int128>(burst_ns) + span) return false;
    }
  }
  return true;
}

RC_GTEST_PROP(RateLimiterProperty, TokenBucketNeverAdmitsMoreThanBurstPlusRateTimesT, ()) {
  // In ANY interval of length t, at most capacity + t/T tokens pass: no boundary effect, whatever
  // the arrival pattern.
  const uint64_t capacity = *rc::gen::inRange<uint64_t>(1, 12);
  const int64_t interval = *rc::gen::inRange<int64_t>(1, 5'000'000);
  ManualClock clock;
  TokenBucketOptions o = Bucket(capacity, 1, Duration::Nanos(interval));
  o.start_full = *rc::gen::arbitrary<bool>();
  auto b = MakeBucket(clock, o);
  std::vector<Arrival> admitted;
  for (const Arrival& a : GenArrivals(interval, capacity)) {
    const RateLimitResult r = b->TryAcquire(MonoTime::FromNanos(a.at_ns), a.cost);
    RC_ASSERT((r.decision() == RateDecision::kNeverAdmittable) == (a.cost > capacity));
    if (r.admitted()) admitted.push_back(a);
  }
  RC_ASSERT(
      NeverExceedsBurstPlusRate(admitted, interval, static_cast<int64_t>(capacity) * interval));
}

RC_GTEST_PROP(RateLimiterProperty, GcraNeverAdmitsMoreThanBurstPlusRateTimesT, ()) {
  // The same bound for GCRA, burst + rate·t = (τ + t) / T, including a τ that is not a multiple
  // of T (then floor(τ / T) pass at once, and the fractional rest of τ is usable later).
  const int64_t interval = *rc::gen::inRange<int64_t>(1, 5'000'000);
  const int64_t tau =
      interval * *rc::gen::inRange<int64_t>(1, 12) + *rc::gen::inRange<int64_t>(0, interval);
  ManualClock clock;
  auto g = MakeGcra(clock, GcraOf(Duration::Nanos(interval), Duration::Nanos(tau)));
  const uint64_t burst = static_cast<uint64_t>(tau / interval);
  std::vector<Arrival> admitted;
  for (const Arrival& a : GenArrivals(interval, burst)) {
    const RateLimitResult r = g->TryAcquire(MonoTime::FromNanos(a.at_ns), a.cost);
    RC_ASSERT((r.decision() == RateDecision::kNeverAdmittable) == (a.cost > burst));
    if (r.admitted()) admitted.push_back(a);
  }
  RC_ASSERT(NeverExceedsBurstPlusRate(admitted, interval, tau));
}

RC_GTEST_PROP(RateLimiterProperty, WaitHintsAreExactToTheNanosecond, ()) {
  // After a rejection with wait w (and nothing admitted meanwhile), the same request is refused
  // at now + w - 1 ns and admitted at now + w, for both limiters.
  const uint64_t capacity = *rc::gen::inRange<uint64_t>(1, 10);
  const int64_t interval = *rc::gen::inRange<int64_t>(1, 1'000'000);
  ManualClock clock;
  auto b = MakeBucket(clock, Bucket(capacity, 1, Duration::Nanos(interval)));
  auto g = MakeGcra(clock, GcraOf(Duration::Nanos(interval),
                                  Duration::Nanos(interval * static_cast<int64_t>(capacity))));
  int64_t t = 0;
  for (const Arrival& a : GenArrivals(interval, capacity)) {
    if (a.cost > capacity) continue;
    t = std::max(t, a.at_ns);
    for (int which = 0; which < 2; ++which) {
      auto acquire = [&](int64_t at) {
        return which == 0 ? b->TryAcquire(MonoTime::FromNanos(at), a.cost)
                          : g->TryAcquire(MonoTime::FromNanos(at), a.cost);
      };
      const RateLimitResult r = acquire(t);
      if (r.admitted()) continue;
      const int64_t w = r.retry_after().nanos();
      RC_ASSERT(w > 0);
      RC_ASSERT(!acquire(t + w - 1).admitted());
      RC_ASSERT(acquire(t + w).admitted());
    }
  }
}

RC_GTEST_PROP(RateLimiterProperty, TokenBucketAndGcraAgreeDecisionForDecision, ()) {
  // GCRA with τ = capacity·T is the token bucket in another form: same decisions, same hints.
  const uint64_t capacity = *rc::gen::inRange<uint64_t>(1, 12);
  const int64_t interval = *rc::gen::inRange<int64_t>(1, 5'000'000);
  ManualClock clock;
  auto b = MakeBucket(clock, Bucket(capacity, 1, Duration::Nanos(interval)));
  auto g = MakeGcra(clock, GcraOf(Duration::Nanos(interval),
                                  Duration::Nanos(interval * static_cast<int64_t>(capacity))));
  for (const Arrival& a : GenArrivals(interval, capacity)) {
    const RateLimitResult rb = b->TryAcquire(MonoTime::FromNanos(a.at_ns), a.cost);
    const RateLimitResult rg = g->TryAcquire(MonoTime::FromNanos(a.at_ns), a.cost);
    RC_ASSERT(rb.decision() == rg.decision());
    RC_ASSERT(rb.retry_after() == rg.retry_after());
  }
}

// --- KeyedRateLimiter --------------------------------------------------------------------------

std::unique_ptr<KeyedRateLimiter> MakeKeyed(Clock& clock, uint32_t keys_max, Duration interval,
                                            Duration tolerance) {
  KeyedRateLimiterOptions o;
  o.keys_max = keys_max;
  o.limit = GcraOf(interval, tolerance);
  auto r = KeyedRateLimiter::Create(clock, o);
  FL_ASSERT_MSG(r.ok(), "test options must be valid");
  return std::move(r).value();
}

TEST(KeyedRateLimiterTest, EachKeyHasItsOwnLimit) {
  // Exhausting one tenant's burst must not touch another's.
  ManualClock clock;
  auto k = MakeKeyed(clock, 10, Duration::Millis(100), Duration::Millis(300));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(k->TryAcquire(7).admitted());
  EXPECT_EQ(k->TryAcquire(7).retry_after(), Duration::Millis(100));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(k->TryAcquire(8).admitted());
  EXPECT_EQ(k->TryAcquire(9, 4).decision(), RateDecision::kNeverAdmittable);
  EXPECT_FALSE(k->Contains(9));  // a never-admittable request does not take a table entry
  EXPECT_EQ(k->keys(), 2u);
}

TEST(KeyedRateLimiterTest, FullTableForgetsOnlyAnIdleLeastRecentlyUsedKey) {
  // With the table full, a new key may take the place of the least-recently-used key only when
  // that key is idle (forgetting it is unobservable); an active LRU key makes the new key
  // kKeysExhausted (fail closed: evicting it would reset its limit).
  ManualClock clock;
  auto k = MakeKeyed(clock, 2, Duration::Millis(100), Duration::Millis(200));
  EXPECT_TRUE(k->TryAcquire(1).admitted());  // tat(1) = 100 ms
  EXPECT_TRUE(k->TryAcquire(2).admitted());
  EXPECT_EQ(k->TryAcquire(3).decision(), RateDecision::kKeysExhausted);
  clock.Advance(Duration::Millis(100));      // both idle now; key 1 is the LRU
  EXPECT_TRUE(k->TryAcquire(2).admitted());  // touch 2 (and make it active again)
  EXPECT_TRUE(k->TryAcquire(3).admitted());  // evicts idle key 1
  EXPECT_FALSE(k->Contains(1));
  EXPECT_TRUE(k->Contains(2));
  EXPECT_TRUE(k->Contains(3));
  EXPECT_EQ(k->TryAcquire(4).decision(), RateDecision::kKeysExhausted);  // LRU 2 is active
  const RateLimiterCounters c = k->counters();
  EXPECT_EQ(c.keys_exhausted, 2u);
  EXPECT_EQ(c.keys_evicted, 1u);
}

RC_GTEST_PROP(KeyedRateLimiterProperty, AgreesWithAReferenceModelUnderKeyChurn, ()) {
  // The open-addressing table with backward-shift deletion and the LRU list must behave exactly
  // like a std::map + std::list model: same decisions, same hints, same key set.
  const uint32_t keys_max = *rc::gen::inRange<uint32_t>(1, 12);
  const int64_t interval = *rc::gen::inRange<int64_t>(1, 1000);
  const int64_t tau = interval * *rc::gen::inRange<int64_t>(1, 5);
  ManualClock clock;
  auto k = MakeKeyed(clock, keys_max, Duration::Nanos(interval), Duration::Nanos(tau));
  std::map<uint64_t, int64_t> tat;
  std::list<uint64_t> lru;  // front = most recent
  Rng rng(*rc::gen::arbitrary<uint64_t>());
  const int ops = *rc::gen::inRange(1, 400);
  const uint64_t key_space = keys_max + 1 + rng.Uniform(2 * keys_max);
  int64_t now = 0;
  for (int i = 0; i < ops; ++i) {
    now += static_cast<int64_t>(rng.Uniform(static_cast<uint64_t>(interval)));
    const uint64_t key = rng.Uniform(key_space) * 0x9e3779b97f4a7c15ULL;  // spread + collide homes
    const uint64_t q = 1 + rng.Uniform(static_cast<uint64_t>(tau / interval));
    const RateLimitResult r = k->TryAcquire(key, MonoTime::FromNanos(now), q);
    // Model.
    RateDecision want = RateDecision::kAdmitted;
    int64_t wait = 0;
    if (tat.count(key) == 0 && tat.size() == keys_max) {
      if (tat[lru.back()] > now) {
        want = RateDecision::kKeysExhausted;
      } else {
        tat.erase(lru.back());
        lru.pop_back();
      }
    }
    if (want != RateDecision::kKeysExhausted) {
      if (tat.count(key) == 0) tat[key] = now;
      lru.remove(key);
      lru.push_front(key);
      int64_t t = tat[key];
      wait = limiter_internal::GcraDecide(&t, now, static_cast<int64_t>(q) * interval, tau);
      tat[key] = t;
      if (wait > 0) want = RateDecision::kRejected;
    }
    RC_ASSERT(r.decision() == want);
    RC_ASSERT(r.retry_after().nanos() == wait);
    RC_ASSERT(k->keys() == tat.size());
    for (const auto& [key_in, unused] : tat) RC_ASSERT(k->Contains(key_in));
  }
}

// --- Concurrency (run under TSan by ./run sanitize) --------------------------------------------

TEST(RateLimiterConcurrent, FourThreadsOnAFrozenClockAdmitExactlyTheBurst) {
  // With time standing still, four racing threads must together get exactly the burst (no lost
  // or duplicated CAS updates), and the counters must add up.
  ManualClock clock;
  auto b = MakeBucket(clock, Bucket(1000, 1, Duration::Seconds(1)));
  auto g = MakeGcra(clock, GcraOf(Duration::Millis(1), Duration::Millis(1000)));
  std::atomic<int> bucket_admitted{0}, gcra_admitted{0};
  auto worker = [&] {
    for (int i = 0; i < 5000; ++i) {
      if (b->TryAcquire().admitted()) bucket_admitted.fetch_add(1);
      if (g->TryAcquire().admitted()) gcra_admitted.fetch_add(1);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bucket_admitted.load(), 1000);
  EXPECT_EQ(gcra_admitted.load(), 1000);
  EXPECT_EQ(b->counters().admitted, 1000u);
  EXPECT_EQ(b->counters().admitted + b->counters().rejected, 20'000u);
}

TEST(RateLimiterConcurrent, ThreadsWithAMovingClockNeverExceedBurstPlusRate) {
  // Threads that also advance the shared clock: the total admitted must stay within
  // burst + elapsed / T (each thread's `now` may lag others'; the bound holds regardless).
  ManualClock clock;
  auto b = MakeBucket(clock, Bucket(50, 1, Duration::Micros(10)));
  auto g = MakeGcra(clock, GcraOf(Duration::Micros(10), Duration::Micros(500)));
  std::atomic<uint64_t> bucket_tokens{0}, gcra_tokens{0};
  auto worker = [&](uint64_t seed) {
    Rng rng(seed);
    for (int i = 0; i < 20'000; ++i) {
      clock.Advance(Duration::Nanos(static_cast<int64_t>(rng.Uniform(4000))));
      const uint64_t cost = 1 + rng.Uniform(3);
      if (b->TryAcquire(cost).admitted()) bucket_tokens.fetch_add(cost);
      if (g->TryAcquire(cost).admitted()) gcra_tokens.fetch_add(cost);
    }
  };
  std::thread t1(worker, 1), t2(worker, 2), t3(worker, 3);
  t1.join();
  t2.join();
  t3.join();
  const uint64_t bound = 50 + static_cast<uint64_t>(clock.Now().nanos() / 10'000);
  EXPECT_LE(bucket_tokens.load(), bound);
  EXPECT_LE(gcra_tokens.load(), bound);
  EXPECT_GT(bucket_tokens.load(), bound / 2);  // and it does admit at about the rate
}

TEST(KeyedRateLimiterConcurrent, FourThreadsOnSharedKeysAdmitExactlyTheBurstPerKey) {
  // The per-key state is updated under the mutex: on a frozen clock each of 8 keys admits exactly
  // its burst, however the threads interleave.
  ManualClock clock;
  auto k = MakeKeyed(clock, 8, Duration::Millis(1), Duration::Millis(100));
  std::vector<std::atomic<int>> per_key(8);
  auto worker = [&](uint64_t seed) {
    Rng rng(seed);
    for (int i = 0; i < 5000; ++i) {
      const uint64_t key = rng.Uniform(8);
      if (k->TryAcquire(key).admitted()) per_key[key].fetch_add(1);
    }
  };
  std::vector<std::thread> threads;
  for (uint64_t s = 1; s <= 4; ++s) threads.emplace_back(worker, s);
  for (std::thread& t : threads) t.join();
  for (int key = 0; key < 8; ++key) EXPECT_EQ(per_key[key].load(), 100) << key;
}

}  // namespace
}  // namespace faultline
