// The `retry-amplification` scenario: client -> gateway -> service -> database, one node each,
// 500 user requests per second, and a 3-second database blip (every request fails after 50 ms with
// UNAVAILABLE and "Retry-After: 1"). The database serves at most 20 requests at once, 5 ms each
// (4,000/s); beyond that it sheds with RESOURCE_EXHAUSTED.
//
//   naive     every layer makes 3 attempts, immediately, on any error: one failing user request
//             becomes 3 x 3 x 3 = 27 database attempts, and the retry storm keeps the database
//             saturated while it is trying to come back.
//   hardened  only the outermost layer retries: 3 attempts at most, full-jitter exponential
//             backoff, a gRPC A6 retry budget shared by all requests, Retry-After honoured,
//             RESOURCE_EXHAUSTED never retried, and a 1 s deadline that travels with every call.
//             Inner layers make one attempt and fail fast, within the remaining deadline.
//
// The checker (retry_checker.cc) reads the typed observations: user requests and their outcomes,
// every database attempt (tagged with its user request) and the blip's start and end.
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/lab/scenario.h"
#include "faultline/resilience/retry.h"
#include "faultline/resilience/retry_after.h"
#include "faultline/resilience/retry_budget.h"
#include "src/lab/chart_data.h"
#include "src/lab/retry_check.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

constexpr uint32_t kClient = 0;
constexpr uint32_t kGateway = 1;
constexpr uint32_t kService = 2;
constexpr uint32_t kDatabase = 3;
constexpr uint16_t kMethodCall = 1;
constexpr Duration kArrivalMean = Duration::Millis(2);  // 500 requests/s
constexpr Duration kBlipStart = Duration::Seconds(5);
constexpr Duration kBlipEnd = Duration::Seconds(8);
constexpr Duration kArrivalsEnd = Duration::Seconds(20);
constexpr Duration kRunEnd = Duration::Seconds(25);
constexpr Duration kDeadline = Duration::Seconds(1);
constexpr Duration kNaiveTimeout = Duration::Seconds(30);
constexpr uint32_t kDbConcurrencyMax = 20;
constexpr Duration kDbServiceTime = Duration::Millis(5);
constexpr Duration kDbFailTime = Duration::Millis(50);  // a failing database is slow to say so

struct Conditions {
  bool blip = false;
};

Bytes RequestBytes(uint64_t id) {
  Bytes b;
  ByteWriter(&b).U64(id);
  return b;
}

// Gateway and service: forward to the next hop.
class Layer final : public sim::Node {
 public:
  Layer(Env& env, NodeId next, bool naive) : env_(env), rpc_(env), next_(next), naive_(naive) {}
  void Start() override {
    rpc_.HandleAsync(kMethodCall, [this](NodeId, Bytes req, MonoTime deadline) {
      return Forward(std::move(req), deadline);
    });
  }

 private:
  Task<Result<Bytes>> Forward(Bytes req, MonoTime deadline) {
    if (naive_) {
      // Three attempts, at once, whatever the error.
      Result<Bytes> r = UnavailableError("no attempt");
      for (int attempt = 0; attempt < 3; ++attempt) {
        r = co_await rpc_.Call(next_, kMethodCall, req, kNaiveTimeout);
        if (r.ok()) break;
      }
      co_return r;
    }
    // Fail fast: one attempt, within what is left of the caller's deadline.
    const Duration remaining = deadline - env_.clock().Now();
    if (remaining <= Duration::Zero()) co_return DeadlineExceededError("deadline passed");
    co_return co_await rpc_.Call(next_, kMethodCall, req, remaining);
  }

  Env& env_;
  Rpc rpc_;
  NodeId next_;
  bool naive_;
};

class Database final : public sim::Node {
 public:
  Database(Env& env, sim::World* world, const Conditions* conditions, RetryObservations* obs)
      : env_(env), rpc_(env), world_(world), conditions_(conditions), obs_(obs) {}
  void Start() override {
    rpc_.HandleAsync(kMethodCall, [this](NodeId, Bytes req, MonoTime) { return Serve(std::move(req)); });
  }

 private:
  Task<Result<Bytes>> Serve(Bytes req) {
    uint64_t id = 0;
    if (!ByteReader(req).U64(&id).ok()) co_return InvalidArgumentError("bad request");
    obs_->db_attempts.push_back(DbAttempt{id, world_->now().nanos()});
    if (inflight_ >= kDbConcurrencyMax) co_return ResourceExhaustedError("overloaded");
    ++inflight_;
    const bool failing = conditions_->blip;
    co_await Sleep(env_.executor(), failing ? kDbFailTime : kDbServiceTime);
    --inflight_;
    if (failing) co_return UnavailableError("Retry-After: 1");
    co_return Bytes{1};
  }

  Env& env_;
  Rpc rpc_;
  sim::World* world_;
  const Conditions* conditions_;
  RetryObservations* obs_;
  uint32_t inflight_ = 0;
};

class Client final : public sim::Node {
 public:
  Client(Env& env, sim::World* world, bool naive, RetryObservations* obs)
      : env_(env), rpc_(env), world_(world), naive_(naive), obs_(obs) {
    RetryOptions retry;
    retry.attempts_max = 3;
    retry.backoff.delay_initial = Duration::Millis(50);
    retry.backoff.delay_max = Duration::Seconds(1);
    policy_ = std::make_unique<RetryPolicy>(std::move(RetryPolicy::Create(retry)).value());
    budget_ = std::move(TokenRetryBudget::Create(TokenRetryBudgetOptions())).value();
    parser_ = std::make_unique<RetryAfterParser>(
        std::move(RetryAfterParser::Create(RetryAfterOptions())).value());
  }
  void Start() override { env_.Spawn(Arrivals()); }

 private:
  Task<void> Arrivals() {
    uint64_t next_id = 1;
    while (world_->elapsed() < kArrivalsEnd) {
      if (!(co_await Sleep(env_.executor(), env_.random().Exponential(kArrivalMean))).ok()) {
        co_return;
      }
      env_.Spawn(Request(next_id++));
    }
  }

  Task<void> Request(uint64_t id) {
    const size_t entry = obs_->requests.size();
    obs_->requests.push_back(UserRequest{id, world_->now().nanos()});
    const Bytes req = RequestBytes(id);
    // (Not a conditional expression: GCC 12 miscompiles co_await inside ?:.)
    Status outcome;
    if (naive_) {
      outcome = co_await Naive(req);
    } else {
      outcome = co_await Hardened(req);
    }
    UserRequest& r = obs_->requests[entry];
    FL_ASSERT(r.id == id && r.outcome == Outcome::kPending);
    r.outcome = outcome.ok() ? Outcome::kOk : Outcome::kFail;
    r.end_ns = world_->now().nanos();
  }

  Task<Status> Naive(const Bytes& req) {
    Status last;
    for (int attempt = 0; attempt < 3; ++attempt) {
      Result<Bytes> r = co_await rpc_.Call(NodeId(kGateway), kMethodCall, req, kNaiveTimeout);
      if (r.ok()) co_return Status::Ok();
      last = r.status();
    }
    co_return last;
  }

  Task<Status> Hardened(const Bytes& req) {
    const Deadline deadline = Deadline::FromRemaining(env_.clock().Now(), kDeadline);
    RetryState state(*policy_, budget_.get(), deadline, env_.random().Next());
    Status last = DeadlineExceededError("no attempt fit in the deadline");
    while (true) {
      const RetryState::Attempt a = state.StartAttempt(env_.clock().Now());
      if (!a.start) co_return last;
      Result<Bytes> r = co_await rpc_.Call(NodeId(kGateway), kMethodCall, req, a.timeout);
      if (r.ok()) {
        state.Decide(Status::Ok(), env_.clock().Now());
        co_return Status::Ok();
      }
      last = r.status();
      // The server's Retry-After travels in the error message through every layer.
      Pushback pushback = Pushback::None();
      const std::string_view message = last.message();
      if (const size_t at = message.find("Retry-After: "); at != std::string_view::npos) {
        pushback = parser_->Parse(message.substr(at + 13), env_.clock().WallNow());
      }
      const RetryState::Decision d = state.Decide(last, env_.clock().Now(), pushback);
      if (!d.retry()) co_return last;
      if (!(co_await Sleep(env_.executor(), d.delay)).ok()) co_return CancelledError("shutdown");
    }
  }

  Env& env_;
  Rpc rpc_;
  sim::World* world_;
  bool naive_;
  RetryObservations* obs_;
  std::unique_ptr<RetryPolicy> policy_;
  std::unique_ptr<TokenRetryBudget> budget_;
  std::unique_ptr<RetryAfterParser> parser_;
};

class RetryAmplification final : public Scenario {
 public:
  std::string_view id() const override { return "retry-amplification"; }
  std::string_view description() const override {
    return "client -> gateway -> service -> database through a 3 s database blip: retries at "
           "every layer vs outermost-only retries with backoff, budget, deadlines, Retry-After";
  }
  std::vector<VariantSpec> variants() const override {
    return {
        {"naive", false, 0.9, "every layer retries 3 times, immediately, on any error"},
        {"hardened", true, 0,
         "outermost-only retries: backoff + jitter, A6 budget, Retry-After, 1 s deadline"},
    };
  }
  std::vector<std::string> key_metrics() const override {
    return {"db_amplification", "db_peak_load_per_s", "recovery_s", "requests_failed"};
  }

  // The report's chart: attempts per second at the database against user requests per second,
  // with the blip as a fault band.
  static void AddRetryCharts(const RetryObservations& obs, int64_t end_ns, RunResult* result) {
    result->faults.push_back(FaultSpan{"database blip", "database", obs.blip_start_ns,
                                       obs.blip_end_ns < 0 ? end_ns : obs.blip_end_ns});
    std::vector<int64_t> attempts, invoked;
    for (const DbAttempt& a : obs.db_attempts) attempts.push_back(a.time_ns);
    for (const UserRequest& r : obs.requests) invoked.push_back(r.invoke_ns);
    result->series.push_back(
        RateSeries("attempts at the database", attempts, kChartWindowNs, end_ns));
    result->series.push_back(RateSeries("user requests", invoked, kChartWindowNs, end_ns));
  }

  RunResult Run(const RunContext& ctx) const override {
    FL_ASSERT(ctx.variant != nullptr);
    FL_ASSERT(ctx.variant->name == "naive" || ctx.variant->name == "hardened");
    const bool naive = ctx.variant->name == "naive";
    sim::World world(ctx.seed, sim::WorldOptions::Nodes(4));
    ObserveRun(world, ctx);
    Conditions conditions;
    RetryObservations obs;
    sim::World* w = &world;
    const Conditions* c = &conditions;
    RetryObservations* o = &obs;
    world.Boot(NodeId(kDatabase), [w, c, o](Env& env) -> std::unique_ptr<sim::Node> {
      return std::make_unique<Database>(env, w, c, o);
    });
    world.Boot(NodeId(kService), [naive](Env& env) -> std::unique_ptr<sim::Node> {
      return std::make_unique<Layer>(env, NodeId(kDatabase), naive);
    });
    world.Boot(NodeId(kGateway), [naive](Env& env) -> std::unique_ptr<sim::Node> {
      return std::make_unique<Layer>(env, NodeId(kService), naive);
    });
    world.Boot(NodeId(kClient), [w, naive, o](Env& env) -> std::unique_ptr<sim::Node> {
      return std::make_unique<Client>(env, w, naive, o);
    });
    Conditions* mc = &conditions;
    world.ScheduleAt(sim::SimTime::FromNanos(kBlipStart.nanos()), [w, mc, o] {
      mc->blip = true;
      w->Trace("nemesis database blip starts");
      o->blip_start_ns = w->now().nanos();
    });
    world.ScheduleAt(sim::SimTime::FromNanos(kBlipEnd.nanos()), [w, mc, o] {
      mc->blip = false;
      w->Trace("nemesis database blip ends");
      o->blip_end_ns = w->now().nanos();
    });
    world.RunUntil(sim::SimTime::FromNanos(kRunEnd.nanos()));

    RunResult result;
    CheckRetryHistory(obs, &result);
    AddRetryCharts(obs, world.now().nanos(), &result);
    if (ctx.history_out != nullptr) world.history() = RetryHistory(obs);
    FinishRun(world, ctx, &result);
    return result;
  }
};

}  // namespace

const Scenario* RetryAmplificationScenario() {
  static const RetryAmplification scenario;
  return &scenario;
}

}  // namespace faultline::lab
