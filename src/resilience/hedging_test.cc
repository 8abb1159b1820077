// Tests for faultline/resilience/hedging.h, run in a sim::World so that attempt latencies and
// hedge delays are exact simulated time: k-th attempt at k·hedge_delay, the first success wins and
// cancels the rest, a non-fatal error fires the next attempt at once, fatal errors end the call,
// the retry budget can refuse a hedge, pushback delays or stops hedging, the deadline cancels
// everything, and a crash tears down a hedge in flight without leaks (ASan).
#include "faultline/resilience/hedging.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "faultline/sim/world.h"

namespace faultline {
namespace {

constexpr NodeId kNode(0);

std::unique_ptr<sim::World> MakeWorld() {
  sim::WorldOptions options = sim::WorldOptions::Nodes(1);
  options.clocks.drift_ppm_max = 0;  // node time == simulated time: delays are exact
  auto world = std::make_unique<sim::World>(5, options);
  world->Boot(kNode, [](Env&) { return std::make_unique<sim::Node>(); });
  return world;
}

HedgingPolicy MakePolicy(uint32_t attempts, Duration delay) {
  HedgingOptions o;
  o.attempts_max = attempts;
  o.hedge_delay = delay;
  auto p = HedgingPolicy::Create(o);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return std::move(p).value();
}

// What attempt k does: wait `latency`, then return `code` (OK: the value 100 + k) with `pushback`.
struct Script {
  Script(Duration l, StatusCode c = StatusCode::kOk, Pushback p = Pushback::None())  // NOLINT
      : latency(l), code(c), pushback(p) {}
  Duration latency;
  StatusCode code;
  Pushback pushback;
};

// A backend whose attempts follow a script and which records what happened to each attempt.
struct Backend {
  explicit Backend(Env* e) : env(e) {}
  Env* env;
  std::vector<Script> script;
  MonoTime t0;
  std::vector<Duration> starts;        // when each attempt started, relative to t0
  std::vector<CancelToken> tokens;     // each attempt's token, to check cancellation
  std::vector<int> finished;           // attempts that ran to completion
  int live = 0;                        // attempt frames alive (destroyed ones decrement)

  struct Alive {
    int* live;
    explicit Alive(int* l) : live(l) { ++*live; }
    Alive(const Alive&) = delete;
    Alive& operator=(const Alive&) = delete;
    ~Alive() { --*live; }
  };

  Task<Result<int>> Attempt(int k, CancelToken token, Pushback& pushback) {
    Alive alive(&live);
    starts.push_back(env->clock().Now() - t0);
    tokens.push_back(token);
    const Script& s = script.at(static_cast<size_t>(k));
    Status slept = co_await Sleep(env->executor(), s.latency, token);
    if (!slept.ok()) co_return slept;
    finished.push_back(k);
    pushback = s.pushback;
    if (s.code != StatusCode::kOk) co_return Status(s.code, "scripted");
    co_return 100 + k;
  }
};

struct Outcome {
  bool done = false;
  Result<int> result = InternalError("unset");
  Duration at;
  HedgeReport report;
};

Task<void> RunHedge(Env& env, const HedgingPolicy& policy, RetryBudget* budget, Deadline deadline,
                    Backend* backend, CancelToken cancel, Outcome* out) {
  backend->t0 = env.clock().Now();
  out->result = co_await Hedge<int>(
      env.executor(), env.clock(), policy, budget, deadline,
      [backend](int k, CancelToken token, Pushback& pushback) {
        return backend->Attempt(k, std::move(token), pushback);
      },
      std::move(cancel), &out->report);
  out->at = env.clock().Now() - backend->t0;
  out->done = true;
}

struct Fixture {
  std::unique_ptr<sim::World> world = MakeWorld();
  Env& env = world->env(kNode);
  Backend backend{&env};
  Outcome out;
  void Run(const HedgingPolicy& policy, std::vector<Script> script, RetryBudget* budget = nullptr,
           Deadline deadline = Deadline::Infinite(), CancelToken cancel = {}) {
    backend.script = std::move(script);
    env.Spawn(RunHedge(env, policy, budget, deadline, &backend, std::move(cancel), &out));
    world->RunFor(Duration::Seconds(10));
  }
};

TEST(HedgingTest, KthAttemptAtKTimesDelayAndFirstSuccessCancelsTheRest) {
  // Attempt 0 is slow (200 ms); attempt 1 starts at 50 ms and answers at 80 ms: it wins, attempt
  // 0 is cancelled and torn down, and attempt 2 (due at 100 ms) is never sent.
  Fixture f;
  f.Run(MakePolicy(3, Duration::Millis(50)),
        {{Duration::Millis(200)}, {Duration::Millis(30)}, {Duration::Millis(10)}});
  ASSERT_TRUE(f.out.done);
  ASSERT_TRUE(f.out.result.ok()) << f.out.result.status().ToString();
  EXPECT_EQ(*f.out.result, 101);
  EXPECT_EQ(f.out.at, Duration::Millis(80));
  ASSERT_EQ(f.backend.starts.size(), 2u);
  EXPECT_EQ(f.backend.starts[0], Duration::Zero());
  EXPECT_EQ(f.backend.starts[1], Duration::Millis(50));
  EXPECT_TRUE(f.backend.tokens[0].cancelled());
  EXPECT_EQ(f.backend.finished, std::vector<int>{1});
  EXPECT_EQ(f.backend.live, 0);
  EXPECT_EQ(f.out.report.winner, 1);
  EXPECT_EQ(f.out.report.reason, StopReason::kSucceeded);
  EXPECT_EQ(f.out.report.attempts_started, 2u);
}

TEST(HedgingTest, AllAttemptsAtMultiplesOfTheDelayWhenSlow) {
  // Nothing answers quickly: attempts at exactly 0, 50 and 100 ms; the third answers first.
  Fixture f;
  f.Run(MakePolicy(3, Duration::Millis(50)),
        {{Duration::Millis(500)}, {Duration::Millis(500)}, {Duration::Millis(120)}});
  ASSERT_TRUE(f.out.result.ok());
  EXPECT_EQ(*f.out.result, 102);
  EXPECT_EQ(f.out.at, Duration::Millis(220));
  EXPECT_EQ(f.backend.starts,
            (std::vector<Duration>{Duration::Zero(), Duration::Millis(50), Duration::Millis(100)}));
}

TEST(HedgingTest, ZeroDelaySendsAllAtOnce) {
  // hedge_delay 0 is the "parallel" mode: every attempt at t = 0.
  Fixture f;
  f.Run(MakePolicy(3, Duration::Zero()),
        {{Duration::Millis(30)}, {Duration::Millis(20)}, {Duration::Millis(10)}});
  ASSERT_TRUE(f.out.result.ok());
  EXPECT_EQ(*f.out.result, 102);
  EXPECT_EQ(f.backend.starts, (std::vector<Duration>(3, Duration::Zero())));
}

TEST(HedgingTest, NonFatalErrorFiresTheNextAttemptImmediately) {
  // Attempt 0 fails UNAVAILABLE at 10 ms: attempt 1 goes out at 10 ms instead of 50 ms, and the
  // delay restarts from there (attempt 2 at 60 ms).
  Fixture f;
  f.Run(MakePolicy(3, Duration::Millis(50)),
        {{Duration::Millis(10), StatusCode::kUnavailable},
         {Duration::Millis(200)},
         {Duration::Millis(20)}});
  ASSERT_TRUE(f.out.result.ok());
  EXPECT_EQ(*f.out.result, 102);
  EXPECT_EQ(f.backend.starts,
            (std::vector<Duration>{Duration::Zero(), Duration::Millis(10), Duration::Millis(60)}));
  EXPECT_EQ(f.out.at, Duration::Millis(80));
}

TEST(HedgingTest, FatalErrorEndsTheCallAndCancelsTheOthers) {
  // INVALID_ARGUMENT is not in non_fatal_codes: it is returned at once and the slow attempt 0 is
  // cancelled.
  Fixture f;
  f.Run(MakePolicy(3, Duration::Millis(50)),
        {{Duration::Millis(500)}, {Duration::Millis(10), StatusCode::kInvalidArgument}});
  EXPECT_EQ(f.out.result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.out.at, Duration::Millis(60));
  EXPECT_EQ(f.out.report.reason, StopReason::kNonRetryable);
  EXPECT_TRUE(f.backend.tokens[0].cancelled());
  EXPECT_EQ(f.backend.live, 0);
}

TEST(HedgingTest, AllNonFatalFailuresReturnTheLast) {
  // Every attempt fails UNAVAILABLE: each failure fires the next, and the last failure is
  // returned once attempts_max are spent.
  Fixture f;
  f.Run(MakePolicy(3, Duration::Millis(50)), {{Duration::Millis(5), StatusCode::kUnavailable},
                                              {Duration::Millis(5), StatusCode::kUnavailable},
                                              {Duration::Millis(5), StatusCode::kUnavailable}});
  EXPECT_EQ(f.out.result.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(f.out.report.reason, StopReason::kAttemptsExhausted);
  EXPECT_EQ(f.out.at, Duration::Millis(15));
}

TEST(HedgingTest, BudgetRefusesTheHedge) {
  // A throttled A6 budget (tokens at max/2) must stop hedges from being sent: only the original
  // attempt runs and its answer is returned. Hedging must not bypass the retry budget.
  Fixture f;
  TokenRetryBudgetOptions bo;
  bo.tokens_max = 4;
  auto budget = std::move(TokenRetryBudget::Create(bo)).value();
  budget->RecordFailure();
  budget->RecordFailure();  // 2 tokens: 2 > 2 is false
  f.Run(MakePolicy(3, Duration::Millis(50)), {{Duration::Millis(200)}}, budget.get());
  ASSERT_TRUE(f.out.result.ok());
  EXPECT_EQ(*f.out.result, 100);
  EXPECT_EQ(f.backend.starts.size(), 1u);
  EXPECT_EQ(f.out.report.budget_denied, 1u);
  EXPECT_EQ(budget->milli_tokens(), 2'100);  // the success was recorded
}

TEST(HedgingTest, HedgesSpendTheBudget) {
  // With a ratio budget of one retry, the first hedge takes it and the second is refused.
  Fixture f;
  RatioRetryBudgetOptions bo;
  bo.min_retries_per_sec = 0;
  bo.retry_ratio = Ratio{1, 1};
  auto budget = std::move(RatioRetryBudget::Create(f.env.clock(), bo)).value();
  f.Run(MakePolicy(3, Duration::Millis(50)), {{Duration::Millis(500)}, {Duration::Millis(500)}},
        budget.get());
  ASSERT_TRUE(f.out.result.ok());
  EXPECT_EQ(f.backend.starts.size(), 2u);
  EXPECT_EQ(budget->retries_granted(), 1u);
  EXPECT_EQ(budget->retries_denied(), 1u);
}

TEST(HedgingTest, PushbackDelaysOrStopsHedging) {
  // A failure carrying a 300 ms pushback moves the next hedge to 310 ms; a Stop() pushback ends
  // hedging and the failure is returned once nothing is in flight.
  {
    Fixture f;
    f.Run(MakePolicy(2, Duration::Millis(50)),
          {{Duration::Millis(10), StatusCode::kUnavailable, Pushback::Delay(Duration::Millis(300))},
           {Duration::Millis(5)}});
    ASSERT_TRUE(f.out.result.ok());
    EXPECT_EQ(f.backend.starts, (std::vector<Duration>{Duration::Zero(), Duration::Millis(310)}));
  }
  {
    Fixture f;
    f.Run(MakePolicy(3, Duration::Millis(50)),
          {{Duration::Millis(10), StatusCode::kUnavailable, Pushback::Stop()}});
    EXPECT_EQ(f.out.result.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(f.out.report.reason, StopReason::kPushbackStop);
    EXPECT_EQ(f.backend.starts.size(), 1u);
    EXPECT_EQ(f.out.at, Duration::Millis(10));
  }
}

TEST(HedgingTest, DeadlineCancelsEverything) {
  // Nothing answers within the 120 ms deadline: at exactly 120 ms the call ends with
  // DEADLINE_EXCEEDED and all three attempts are cancelled and destroyed.
  Fixture f;
  const Deadline deadline = Deadline::FromRemaining(f.env.clock().Now(), Duration::Millis(120));
  f.Run(MakePolicy(3, Duration::Millis(50)),
        {{Duration::Seconds(1)}, {Duration::Seconds(1)}, {Duration::Seconds(1)}}, nullptr,
        deadline);
  EXPECT_EQ(f.out.result.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(f.out.at, Duration::Millis(120));
  EXPECT_EQ(f.backend.starts.size(), 3u);
  for (const CancelToken& t : f.backend.tokens) EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(f.backend.live, 0);
  EXPECT_FALSE(f.world->Step()) << "a timer survived the finished hedge";
}

TEST(HedgingTest, CallerCancellationEndsTheHedge) {
  // The caller's token ends the call with CANCELLED on the next turn, attempts torn down.
  Fixture f;
  CancelSource cancel;
  f.world->Schedule(Duration::Millis(70), [&cancel] { cancel.Cancel(); });
  f.Run(MakePolicy(3, Duration::Millis(50)), {{Duration::Seconds(1)}, {Duration::Seconds(1)}},
        nullptr, Deadline::Infinite(), cancel.token());
  EXPECT_EQ(f.out.result.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(f.out.report.reason, StopReason::kCancelled);
  EXPECT_EQ(f.backend.live, 0);
}

TEST(HedgingTest, CrashTearsDownAHedgeInFlight) {
  // A crash destroys the node's coroutines: the hedge and its attempts must be freed (ASan) and
  // leave no timer that would resume a dead frame.
  Fixture f;
  f.backend.script = {{Duration::Seconds(1)}, {Duration::Seconds(1)}, {Duration::Seconds(1)}};
  const HedgingPolicy policy = MakePolicy(3, Duration::Millis(50));  // outlives the hedge
  f.env.Spawn(RunHedge(f.env, policy, nullptr, Deadline::Infinite(), &f.backend, {}, &f.out));
  f.world->RunFor(Duration::Millis(120));
  EXPECT_EQ(f.backend.live, 3);
  f.world->Crash(kNode);
  EXPECT_EQ(f.backend.live, 0);
  EXPECT_FALSE(f.out.done);
  f.world->RunFor(Duration::Seconds(5));
  EXPECT_FALSE(f.out.done);
}

Task<void> RunBriefForm(Env& env, const HedgingPolicy& policy, Result<int>* out) {
  // The signature from the issue: fn(int attempt, CancelToken) without pushback.
  HedgeFn<int> fn = [&env](int k, CancelToken token) -> Task<Result<int>> {
    Status s = co_await Sleep(env.executor(), Duration::Millis(k == 0 ? 100 : 10), token);
    if (!s.ok()) co_return s;
    co_return k;
  };
  *out = co_await Hedge<int>(env.executor(), env.clock(), policy, nullptr, Deadline::Infinite(),
                             std::move(fn));
}

TEST(HedgingTest, BriefSignatureWithoutPushback) {
  // The two-argument attempt form behaves the same: attempt 1 (at 50 ms, 10 ms latency) wins.
  Fixture f;
  const HedgingPolicy policy = MakePolicy(2, Duration::Millis(50));
  Result<int> out = InternalError("unset");
  f.env.Spawn(RunBriefForm(f.env, policy, &out));
  f.world->RunFor(Duration::Seconds(1));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, 1);
}

TEST(HedgingOptionsTest, InvalidOptionsAreRejectedNamingTheField) {
  // Zero or too many attempts, a negative delay, OK as a failure code: configuration errors.
  HedgingOptions o;
  o.attempts_max = 0;
  EXPECT_NE(HedgingPolicy::Create(o).status().message().find("attempts_max"), std::string::npos);
  o.attempts_max = kHedgeAttemptsMax + 1;
  EXPECT_NE(HedgingPolicy::Create(o).status().message().find("attempts_max"), std::string::npos);
  o = HedgingOptions();
  o.hedge_delay = Duration::Millis(-1);
  EXPECT_NE(HedgingPolicy::Create(o).status().message().find("hedge_delay"), std::string::npos);
  o = HedgingOptions();
  o.non_fatal_codes = {StatusCode::kOk};
  EXPECT_NE(HedgingPolicy::Create(o).status().message().find("non_fatal_codes"),
            std::string::npos);
  o = HedgingOptions();
  o.attempt_duration_min = Duration::Zero();
  EXPECT_NE(HedgingPolicy::Create(o).status().message().find("attempt_duration_min"),
            std::string::npos);
}

}  // namespace
}  // namespace faultline
