// Tests for faultline/resilience/retry.h: option validation, outcome classification, the exact
// decision sequence on a ManualClock (backoff, attempts_max, per-try timeout), deadline awareness
// (the "retry past the deadline" bug, linkerd #2369), pushback / Retry-After, budget permits, the
// Retry() coroutine under the simulator, and a TSan stress of a shared policy and budget.
#include "faultline/resilience/retry.h"

#include <gtest/gtest.h>

#include <memory>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "faultline/sim/world.h"

namespace faultline {
namespace {

RetryOptions ExactOptions() {
  // No jitter, so every delay is known: 100 ms, 200 ms, 400 ms, ... capped at 1 s.
  RetryOptions o;
  o.attempts_max = 4;
  o.backoff.delay_initial = Duration::Millis(100);
  o.backoff.delay_max = Duration::Seconds(1);
  o.backoff.multiplier = 2.0;
  o.backoff.jitter = Jitter::kNone;
  o.attempt_timeout = Duration::Seconds(1);
  o.attempt_duration_min = Duration::Millis(10);
  return o;
}

RetryPolicy MakePolicy(const RetryOptions& o) {
  auto p = RetryPolicy::Create(o);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return std::move(p).value();
}

std::string InvalidField(const RetryOptions& o) {
  auto p = RetryPolicy::Create(o);
  EXPECT_FALSE(p.ok());
  return std::string(p.status().message());
}

TEST(RetryOptionsTest, InvalidOptionsAreRejectedNamingTheField) {
  // Zero attempts, a zero minimum attempt duration, a per-try timeout below it, OK classified as
  // a failure, overlapping code sets and bad backoff options are all configuration errors.
  RetryOptions o = ExactOptions();
  o.attempts_max = 0;
  EXPECT_NE(InvalidField(o).find("attempts_max"), std::string::npos);
  o = ExactOptions();
  o.attempt_duration_min = Duration::Zero();
  EXPECT_NE(InvalidField(o).find("attempt_duration_min"), std::string::npos);
  o = ExactOptions();
  o.attempt_timeout = Duration::Millis(5);
  EXPECT_NE(InvalidField(o).find("attempt_timeout"), std::string::npos);
  o = ExactOptions();
  o.retryable_codes = {StatusCode::kOk};
  EXPECT_NE(InvalidField(o).find("retryable_codes"), std::string::npos);
  o = ExactOptions();
  o.overloaded_codes = {StatusCode::kUnavailable};
  EXPECT_NE(InvalidField(o).find("disjoint"), std::string::npos);
  o = ExactOptions();
  o.backoff.multiplier = 0.9;
  EXPECT_NE(InvalidField(o).find("multiplier"), std::string::npos);
  EXPECT_TRUE(RetryOptions().Validate().ok());
}

TEST(RetryPolicyTest, ClassifiesByStatusCode) {
  // Defaults: UNAVAILABLE retryable, RESOURCE_EXHAUSTED "overloaded, do not retry", everything
  // else non-retryable; the sets are configurable.
  const RetryPolicy p = MakePolicy(ExactOptions());
  EXPECT_EQ(p.Classify(Status::Ok()), Outcome::kSuccess);
  EXPECT_EQ(p.Classify(UnavailableError("x")), Outcome::kRetryable);
  EXPECT_EQ(p.Classify(ResourceExhaustedError("x")), Outcome::kOverloaded);
  EXPECT_EQ(p.Classify(InvalidArgumentError("x")), Outcome::kNonRetryable);
  EXPECT_EQ(p.Classify(DeadlineExceededError("x")), Outcome::kNonRetryable);
  EXPECT_EQ(p.Classify(AbortedError("x")), Outcome::kNonRetryable);
  RetryOptions o = ExactOptions();
  o.retryable_codes = {StatusCode::kUnavailable, StatusCode::kAborted};
  o.overloaded_codes = {};
  const RetryPolicy q = MakePolicy(o);
  EXPECT_EQ(q.Classify(AbortedError("x")), Outcome::kRetryable);
  EXPECT_EQ(q.Classify(ResourceExhaustedError("x")), Outcome::kNonRetryable);
}

TEST(RetryStateTest, ExactSequenceUntilAttemptsExhausted) {
  // Four attempts: retries after exactly 100, 200 and 400 ms, each with the full per-try timeout
  // (the deadline is infinite), then a stop naming attempts_max.
  ManualClock clock;
  const RetryPolicy policy = MakePolicy(ExactOptions());
  RetryState s(policy, nullptr, Deadline::Infinite(), 1);
  const Duration expected[] = {Duration::Millis(100), Duration::Millis(200), Duration::Millis(400)};
  for (uint32_t i = 0; i < 4; ++i) {
    const auto a = s.StartAttempt(clock.Now());
    ASSERT_TRUE(a.start);
    EXPECT_EQ(a.number, i + 1);
    EXPECT_EQ(a.timeout, Duration::Seconds(1));
    clock.Advance(Duration::Millis(5));
    const auto d = s.Decide(UnavailableError("down"), clock.Now());
    if (i < 3) {
      ASSERT_TRUE(d.retry()) << i;
      EXPECT_EQ(d.delay, expected[i]);
      EXPECT_EQ(d.attempt_timeout, Duration::Seconds(1));
      clock.Advance(d.delay);
    } else {
      EXPECT_FALSE(d.retry());
      EXPECT_EQ(d.reason, StopReason::kAttemptsExhausted);
    }
  }
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.attempts_started(), 4u);
}

TEST(RetryStateTest, OverloadedAndNonRetryableStopAtOnce) {
  // RESOURCE_EXHAUSTED is the server shedding load: retrying would deepen the overload, so it
  // stops immediately (and counts as a failure in the A6 budget); INVALID_ARGUMENT stops without
  // touching the budget; success records a success.
  ManualClock clock;
  const RetryPolicy policy = MakePolicy(ExactOptions());
  auto budget = std::move(TokenRetryBudget::Create(TokenRetryBudgetOptions())).value();
  {
    RetryState s(policy, budget.get(), Deadline::Infinite(), 1);
    ASSERT_TRUE(s.StartAttempt(clock.Now()).start);
    const auto d = s.Decide(ResourceExhaustedError("shed"), clock.Now());
    EXPECT_EQ(d.reason, StopReason::kOverloaded);
    EXPECT_EQ(budget->milli_tokens(), 99'000);
  }
  {
    RetryState s(policy, budget.get(), Deadline::Infinite(), 1);
    ASSERT_TRUE(s.StartAttempt(clock.Now()).start);
    EXPECT_EQ(s.Decide(InvalidArgumentError("bad"), clock.Now()).reason, StopReason::kNonRetryable);
    EXPECT_EQ(budget->milli_tokens(), 99'000);
  }
  {
    RetryState s(policy, budget.get(), Deadline::Infinite(), 1);
    ASSERT_TRUE(s.StartAttempt(clock.Now()).start);
    EXPECT_EQ(s.Decide(Status::Ok(), clock.Now()).reason, StopReason::kSucceeded);
    EXPECT_EQ(budget->milli_tokens(), 99'100);
  }
}

TEST(RetryStateTest, RetryPastTheDeadlineDoesNotHappen) {
  // Regression for "retry past the deadline" (linkerd #2369: retries kept going hours after a 5 s
  // total timeout). With 250 ms to go: attempt 1 fails at 50 ms, the 100 ms backoff leaves 100 ms
  // at the retry's start, so the retry's timeout is 100 ms, not the 1 s per-try timeout. Attempt 2
  // fails at 160 ms; the next backoff (200 ms) would start at 360 ms, past the deadline, so it
  // stops right away instead of sleeping into it.
  ManualClock clock;
  const RetryPolicy policy = MakePolicy(ExactOptions());
  const Deadline deadline = Deadline::FromRemaining(clock.Now(), Duration::Millis(250));
  RetryState s(policy, nullptr, deadline, 1);
  auto a = s.StartAttempt(clock.Now());
  ASSERT_TRUE(a.start);
  EXPECT_EQ(a.timeout, Duration::Millis(250));
  clock.Advance(Duration::Millis(50));
  auto d = s.Decide(UnavailableError("down"), clock.Now());
  ASSERT_TRUE(d.retry());
  EXPECT_EQ(d.delay, Duration::Millis(100));
  EXPECT_EQ(d.attempt_timeout, Duration::Millis(100));
  clock.Advance(d.delay);
  a = s.StartAttempt(clock.Now());
  ASSERT_TRUE(a.start);
  EXPECT_EQ(a.timeout, Duration::Millis(100));
  clock.Advance(Duration::Millis(10));
  d = s.Decide(UnavailableError("down"), clock.Now());
  EXPECT_FALSE(d.retry());
  EXPECT_EQ(d.reason, StopReason::kDeadline);
}

TEST(RetryStateTest, NoAttemptStartsWithLessThanTheMinimumLeft) {
  // A call arriving with 5 ms left (min 10 ms) sends nothing; a retry whose sleep overslept to
  // within the minimum is not sent either, and its permit goes back to the budget.
  ManualClock clock;
  const RetryPolicy policy = MakePolicy(ExactOptions());
  RetryState late(policy, nullptr, Deadline::FromRemaining(clock.Now(), Duration::Millis(5)), 1);
  EXPECT_FALSE(late.StartAttempt(clock.Now()).start);
  EXPECT_EQ(late.stop_reason(), StopReason::kDeadline);

  auto budget = std::move(TokenRetryBudget::Create(TokenRetryBudgetOptions())).value();
  RetryState s(policy, budget.get(), Deadline::FromRemaining(clock.Now(), Duration::Millis(300)),
               1);
  ASSERT_TRUE(s.StartAttempt(clock.Now()).start);
  ASSERT_TRUE(s.Decide(UnavailableError("down"), clock.Now()).retry());
  EXPECT_TRUE(s.holding_permit());
  clock.Advance(Duration::Millis(295));  // overslept: 5 ms left
  EXPECT_FALSE(s.StartAttempt(clock.Now()).start);
  EXPECT_EQ(s.stop_reason(), StopReason::kDeadline);
  EXPECT_FALSE(s.holding_permit());
  EXPECT_EQ(budget->retries_released(), 1u);
}

TEST(RetryStateTest, PushbackDelaysStopsOrCannotFit) {
  // Retry-After larger than the backoff wins (never come back earlier than asked); smaller loses
  // to the backoff; a Stop() pushback (negative grpc-retry-pushback-ms) ends the loop; a pushback
  // that would end past the deadline stops instead of sleeping.
  ManualClock clock;
  const RetryPolicy policy = MakePolicy(ExactOptions());
  {
    RetryState s(policy, nullptr, Deadline::Infinite(), 1);
    ASSERT_TRUE(s.StartAttempt(clock.Now()).start);
    auto d = s.Decide(UnavailableError("x"), clock.Now(), Pushback::Delay(Duration::Seconds(2)));
    ASSERT_TRUE(d.retry());
    EXPECT_EQ(d.delay, Duration::Seconds(2));
    ASSERT_TRUE(s.StartAttempt(clock.Now()).start);
    d = s.Decide(UnavailableError("x"), clock.Now(), Pushback::Delay(Duration::Millis(1)));
    ASSERT_TRUE(d.retry());
    EXPECT_EQ(d.delay, Duration::Millis(200));
    ASSERT_TRUE(s.StartAttempt(clock.Now()).start);
    d = s.Decide(UnavailableError("x"), clock.Now(), Pushback::Stop());
    EXPECT_EQ(d.reason, StopReason::kPushbackStop);
  }
  {
    RetryState s(policy, nullptr, Deadline::FromRemaining(clock.Now(), Duration::Seconds(1)), 1);
    ASSERT_TRUE(s.StartAttempt(clock.Now()).start);
    auto d = s.Decide(UnavailableError("x"), clock.Now(), Pushback::Delay(Duration::Seconds(5)));
    EXPECT_EQ(d.reason, StopReason::kDeadline);
  }
}

TEST(RetryStateTest, DestroyingAStateHoldingAPermitReleasesIt) {
  // RAII: a call torn down while its retry sleeps (crash, shutdown) must not leak the withdrawal.
  ManualClock clock;
  RatioRetryBudgetOptions bo;
  bo.min_retries_per_sec = 0;
  bo.retry_ratio = Ratio{1, 1};
  auto budget = std::move(RatioRetryBudget::Create(clock, bo)).value();
  const RetryPolicy policy = MakePolicy(ExactOptions());
  {
    RetryState s(policy, budget.get(), Deadline::Infinite(), 1);
    ASSERT_TRUE(s.StartAttempt(clock.Now()).start);
    ASSERT_TRUE(s.Decide(UnavailableError("x"), clock.Now()).retry());
    EXPECT_EQ(budget->Window(clock.Now()).retries, 1);
  }
  EXPECT_EQ(budget->Window(clock.Now()).retries, 0);
  EXPECT_EQ(budget->retries_released(), 1u);
}

// ---- Retry() coroutine under the simulator -------------------------------------------------------

std::unique_ptr<sim::World> MakeWorld() {
  sim::WorldOptions options = sim::WorldOptions::Nodes(1);
  options.clocks.drift_ppm_max = 0;  // node time == simulated time, so delays are exact
  auto world = std::make_unique<sim::World>(11, options);
  world->Boot(NodeId(0), [](Env&) { return std::make_unique<sim::Node>(); });
  return world;
}

// Fails `failures` times with `code`, then returns 42; records when each attempt started.
struct FlakyServer {
  FlakyServer(Env* e, int f, StatusCode c = StatusCode::kUnavailable)
      : env(e), failures(f), code(c) {}
  Env* env;
  int failures;
  StatusCode code;
  std::vector<MonoTime> starts;
  std::vector<Duration> timeouts;
  Task<Result<int>> operator()(RetryAttempt& attempt) {
    starts.push_back(env->clock().Now());
    timeouts.push_back(attempt.timeout);
    co_await Sleep(env->executor(), Duration::Millis(5));
    if (static_cast<int>(starts.size()) <= failures) co_return Status(code, "flaky");
    co_return 42;
  }
};

Task<void> RunRetry(Env& env, const RetryPolicy& policy, RetryBudget* budget, Deadline deadline,
                    FlakyServer* server, CancelToken cancel, Result<int>* out, RetryReport* report) {
  *out = co_await Retry(
      env, policy, budget, deadline, [server](RetryAttempt& a) { return (*server)(a); },
      std::move(cancel), report);
}

TEST(RetryCoroutineTest, RetriesWithBackoffInSimulatedTime) {
  // Two failures then success: attempts start at 0, 5+100 and 110+200 ms of node time, the
  // result is the third attempt's value, and the report names the success.
  auto world = MakeWorld();
  Env& env = world->env(NodeId(0));
  const RetryPolicy policy = MakePolicy(ExactOptions());
  FlakyServer server{&env, 2};
  Result<int> out = InternalError("unset");
  RetryReport report;
  const MonoTime t0 = env.clock().Now();
  env.Spawn(RunRetry(env, policy, nullptr, Deadline::Infinite(), &server, {}, &out, &report));
  world->RunFor(Duration::Seconds(5));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, 42);
  ASSERT_EQ(server.starts.size(), 3u);
  EXPECT_EQ(server.starts[0] - t0, Duration::Zero());
  EXPECT_EQ(server.starts[1] - t0, Duration::Millis(105));
  EXPECT_EQ(server.starts[2] - t0, Duration::Millis(310));
  EXPECT_EQ(report.attempts, 3u);
  EXPECT_EQ(report.reason, StopReason::kSucceeded);
  EXPECT_EQ(report.slept, Duration::Millis(300));
}

TEST(RetryCoroutineTest, StopsBeforeTheDeadlineWithTheLastError) {
  // Deadline 200 ms: attempts at 0 and 105 ms; the next backoff (200 ms) cannot fit, so Retry
  // returns the last UNAVAILABLE at 110 ms instead of sleeping past the deadline; each attempt's
  // timeout was bounded by the time left.
  auto world = MakeWorld();
  Env& env = world->env(NodeId(0));
  const RetryPolicy policy = MakePolicy(ExactOptions());
  FlakyServer server{&env, 100};
  Result<int> out = 0;
  RetryReport report;
  const Deadline deadline = Deadline::FromRemaining(env.clock().Now(), Duration::Millis(200));
  env.Spawn(RunRetry(env, policy, nullptr, deadline, &server, {}, &out, &report));
  world->RunFor(Duration::Seconds(5));
  EXPECT_EQ(out.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(report.reason, StopReason::kDeadline);
  ASSERT_EQ(server.timeouts.size(), 2u);
  EXPECT_EQ(server.timeouts[0], Duration::Millis(200));
  EXPECT_EQ(server.timeouts[1], Duration::Millis(95));
}

TEST(RetryCoroutineTest, CancelDuringBackoffReleasesThePermit) {
  // Cancelling the caller while the retry sleeps ends with kCancelled at once and hands the
  // budget permit back (the sleeping retry counted against the budget until then).
  auto world = MakeWorld();
  Env& env = world->env(NodeId(0));
  RetryOptions o = ExactOptions();
  o.backoff.delay_initial = Duration::Seconds(10);
  o.backoff.delay_max = Duration::Seconds(10);
  const RetryPolicy policy = MakePolicy(o);
  RatioRetryBudgetOptions bo;
  bo.min_retries_per_sec = 0;
  bo.retry_ratio = Ratio{1, 1};
  auto budget = std::move(RatioRetryBudget::Create(env.clock(), bo)).value();
  FlakyServer server{&env, 100};
  CancelSource cancel;
  Result<int> out = 0;
  RetryReport report;
  env.Spawn(RunRetry(env, policy, budget.get(), Deadline::Infinite(), &server, cancel.token(), &out,
                     &report));
  world->RunFor(Duration::Seconds(1));
  EXPECT_EQ(budget->Window(env.clock().Now()).retries, 1);  // sleeping retry holds a permit
  cancel.Cancel();
  world->RunFor(Duration::Millis(1));
  EXPECT_EQ(out.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(report.reason, StopReason::kCancelled);
  EXPECT_EQ(budget->Window(env.clock().Now()).retries, 0);
  EXPECT_EQ(server.starts.size(), 1u);
}

TEST(RetryCoroutineTest, OverloadedIsReturnedWithoutRetrying) {
  // RESOURCE_EXHAUSTED from the server: one attempt, the error returned as is.
  auto world = MakeWorld();
  Env& env = world->env(NodeId(0));
  const RetryPolicy policy = MakePolicy(ExactOptions());
  FlakyServer server{&env, 100, StatusCode::kResourceExhausted};
  Result<int> out = 0;
  RetryReport report;
  env.Spawn(RunRetry(env, policy, nullptr, Deadline::Infinite(), &server, {}, &out, &report));
  world->RunFor(Duration::Seconds(5));
  EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(report.reason, StopReason::kOverloaded);
  EXPECT_EQ(server.starts.size(), 1u);
}

// ---- Concurrency --------------------------------------------------------------------------------

TEST(RetryConcurrent, TwoThreadsShareAPolicyAndBudget) {
  // A RetryPolicy and a budget are shared by every call of a client: two threads each running
  // thousands of RetryStates against them must not race (TSan), and the A6 budget's decisions
  // must leave its tokens in range.
  ManualClock clock;
  const RetryPolicy policy = MakePolicy(ExactOptions());
  auto budget = std::move(TokenRetryBudget::Create(TokenRetryBudgetOptions())).value();
  std::vector<int> retries(2, 0);
  std::atomic<int> gate1{0};  // start both threads together so they overlap
  auto worker = [&](int id) {
    gate1.fetch_add(1);
    while (gate1.load() < 2) {
    }
    for (int i = 0; i < 5000; ++i) {
      RetryState s(policy, budget.get(), Deadline::Infinite(), static_cast<uint64_t>(i));
      for (;;) {
        if (!s.StartAttempt(clock.Now()).start) break;
        const Status st = (i + id) % 3 == 0 ? Status::Ok() : UnavailableError("x");
        const auto d = s.Decide(st, clock.Now());
        if (!d.retry()) break;
        ++retries[static_cast<size_t>(id)];
      }
    }
  };
  std::thread t0(worker, 0);
  std::thread t1(worker, 1);
  t0.join();
  t1.join();
  EXPECT_GT(retries[0] + retries[1], 0);
  EXPECT_GE(budget->milli_tokens(), 0);
  EXPECT_LE(budget->milli_tokens(), 100'000);
}

}  // namespace
}  // namespace faultline
