// TracedRetry runs Retry()'s own loop: on the same script, with the same seed, it starts the same
// attempts at the same instants with the same timeouts, sleeps the same backoff and stops for the
// same reason, and its loop span reports exactly Retry()'s RetryReport. Its fan-out to a metrics
// observer goes through the observer's Bind (the per-instance observer), never the unbound one.
#include "faultline/observe/traced_retry.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/sim/world.h"

namespace faultline::observe {
namespace {

constexpr NodeId kN0(0);

struct Script {
  // Attempt i (0-based) answers codes[i] (OK past the end); pushback on the attempt numbered
  // pushback_on, if any.
  std::vector<StatusCode> codes;
  uint32_t pushback_on = 0;
  Duration pushback;
  // What the loop saw: per attempt, when it started and its timeout.
  std::vector<MonoTime> starts;
  std::vector<Duration> timeouts;
};

Task<Result<int>> Attempt(Env& env, Script* s, RetryAttempt& a) {
  s->starts.push_back(env.clock().Now());
  s->timeouts.push_back(a.timeout);
  const size_t i = s->starts.size() - 1;
  const Status slept = co_await Sleep(env.executor(), Duration::Millis(3));
  if (!slept.ok()) co_return slept;
  if (a.number == s->pushback_on) a.pushback = Pushback::Delay(s->pushback);
  if (i < s->codes.size() && s->codes[i] != StatusCode::kOk) co_return Status(s->codes[i], "x");
  co_return static_cast<int>(a.number);
}

Script Answers(std::vector<StatusCode> codes, uint32_t pushback_on = 0,
               Duration pushback = Duration::Zero()) {
  Script s;
  s.codes = std::move(codes);
  s.pushback_on = pushback_on;
  s.pushback = pushback;
  return s;
}

RetryPolicy Policy() {
  RetryOptions o;
  o.attempts_max = 4;
  o.backoff.delay_initial = Duration::Millis(10);
  o.backoff.delay_max = Duration::Millis(80);
  o.attempt_timeout = Duration::Millis(50);
  return RetryPolicy::Create(o).value();
}

struct LoopRun {
  std::optional<Result<int>> result;
  RetryReport report;
  Script script;
  std::vector<SpanData> spans;
};

Task<void> Plain(Env* env, const RetryPolicy* policy, Deadline deadline, LoopRun* run) {
  Result<int> r = co_await Retry(
      *env, *policy, nullptr, deadline,
      [env, run](RetryAttempt& a) { return Attempt(*env, &run->script, a); }, {}, &run->report);
  run->result.emplace(std::move(r));
}

Task<void> Traced(Env* env, Tracer* tracer, const RetryPolicy* policy, Deadline deadline,
                  LoopRun* run, Observer* metrics) {
  Result<int> r = co_await TracedRetry(
      *env, *tracer, TraceContext(), "retry.layer", *policy, nullptr, deadline,
      [env, run](RetryAttempt& a, TraceContext) { return Attempt(*env, &run->script, a); }, {},
      metrics);
  run->result.emplace(std::move(r));
}

LoopRun RunOnce(bool traced, Script script, Duration budget, Observer* metrics = nullptr) {
  sim::World world(9, sim::WorldOptions::Nodes(1));
  world.Boot(kN0, [](Env&) { return std::make_unique<sim::Node>(); });
  Env& env = world.env(kN0);
  const RetryPolicy policy = Policy();
  const Deadline deadline = Deadline::At(env.clock().Now() + budget);
  LoopRun run;
  run.script = std::move(script);
  InMemorySpanSink sink;
  Rng span_ids(5);  // span ids from their own stream: the node's stream sees only the loop
  Tracer tracer(env.clock(), span_ids, &sink);
  if (traced) {
    env.Spawn(Traced(&env, &tracer, &policy, deadline, &run, metrics));
  } else {
    env.Spawn(Plain(&env, &policy, deadline, &run));
  }
  world.RunFor(Duration::Seconds(5));
  run.spans = sink.spans();
  return run;
}

const AttributeValue* Attr(const SpanData& s, std::string_view key) {
  for (const Attribute& a : s.attributes) {
    if (a.key == key) return &a.value;
  }
  return nullptr;
}

void ExpectSameLoop(const Script& script, Duration budget) {
  const LoopRun plain = RunOnce(false, script, budget);
  const LoopRun traced = RunOnce(true, script, budget);
  ASSERT_TRUE(plain.result.has_value() && traced.result.has_value());
  EXPECT_EQ(plain.result->status().code(), traced.result->status().code());
  if (plain.result->ok() && traced.result->ok()) {
    EXPECT_EQ(**plain.result, **traced.result);
  }
  EXPECT_EQ(plain.script.starts, traced.script.starts);
  EXPECT_EQ(plain.script.timeouts, traced.script.timeouts);
  // The loop span (the last to end) reports Retry()'s own report.
  ASSERT_FALSE(traced.spans.empty());
  const SpanData& loop = traced.spans.back();
  ASSERT_EQ(loop.name, "retry.layer");
  EXPECT_EQ(std::get<int64_t>(*Attr(loop, "retry.attempts")), plain.report.attempts);
  EXPECT_EQ(std::get<std::string>(*Attr(loop, "retry.stop_reason")),
            StopReasonName(plain.report.reason));
  EXPECT_EQ(std::get<int64_t>(*Attr(loop, "retry.backoff_total_ms")),
            plain.report.slept.nanos() / 1'000'000);
  EXPECT_EQ(traced.spans.size(), 1 + plain.script.starts.size());  // one span per attempt
}

TEST(TracedRetryTest, SameAttemptsAsRetryUntilSuccess) {
  ExpectSameLoop(Answers({StatusCode::kUnavailable, StatusCode::kUnavailable}),
                 Duration::Seconds(2));
}

TEST(TracedRetryTest, SameAttemptsAsRetryWithServerPushback) {
  ExpectSameLoop(Answers({StatusCode::kUnavailable, StatusCode::kUnavailable}, 1, Duration::Millis(120)),
                 Duration::Seconds(2));
}

TEST(TracedRetryTest, SameAttemptsAsRetryWhenAttemptsRunOut) {
  ExpectSameLoop(Answers(std::vector<StatusCode>(10, StatusCode::kUnavailable)),
                 Duration::Seconds(2));
}

TEST(TracedRetryTest, SameAttemptsAsRetryWhenTheDeadlineRunsOut) {
  ExpectSameLoop(Answers(std::vector<StatusCode>(10, StatusCode::kUnavailable)),
                 Duration::Millis(40));
}

TEST(TracedRetryTest, SameAttemptsAsRetryOnANonRetryableError) {
  ExpectSameLoop(Answers({StatusCode::kInvalidArgument}), Duration::Seconds(2));
}

// Bind returns a per-instance observer; the exporter itself must never be called by name.
class BindingMetrics final : public Observer {
 public:
  class Instance final : public Observer {
   public:
    void OnEvent(const Event& e) noexcept override {
      kinds.push_back(e.kind);
      sources.emplace_back(e.source);
    }
    std::vector<EventKind> kinds;
    std::vector<std::string> sources;
  };
  void OnEvent(const Event&) noexcept override { ++unbound; }
  Observer* Bind(std::string_view name) override {
    bound_names.emplace_back(name);
    return &instance;
  }
  Instance instance;
  std::vector<std::string> bound_names;
  int unbound = 0;
};

TEST(TracedRetryTest, MetricsFanOutGoesThroughBind) {
  BindingMetrics metrics;
  const LoopRun run = RunOnce(true, Answers({StatusCode::kUnavailable, StatusCode::kUnavailable}),
                          Duration::Seconds(2), &metrics);
  ASSERT_TRUE(run.result.has_value() && run.result->ok());
  EXPECT_EQ(metrics.bound_names, std::vector<std::string>{"retry.layer"});
  EXPECT_EQ(metrics.unbound, 0);
  EXPECT_EQ(metrics.instance.kinds,
            (std::vector<EventKind>{EventKind::kRetryScheduled, EventKind::kRetryScheduled}));
  for (const std::string& s : metrics.instance.sources) EXPECT_EQ(s, "retry.layer");
}

}  // namespace
}  // namespace faultline::observe
