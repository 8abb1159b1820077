// The `backpressure` scenario: a client (node 0, 500 requests/s, open loop) calls a frontend
// (node 1) which calls a dependency (node 2) with 20 workers at 20 ms per request (1,000/s). From
// 5 s the dependency slows down 10x (capacity 100/s), at 10 s it partially recovers (3x, 333/s),
// and at 15 s the trigger is removed.
//
//   naive     an unbounded queue in front of the workers, no deadlines, no breaker; the client
//             gives up after 1 s and tries again (3 attempts). The queue fills with work whose
//             callers have left, latency explodes, goodput collapses — and stays collapsed after
//             the trigger is gone, because the retries alone offer 1,500/s to a 1,000/s service
//             (a metastable failure).
//   hardened  a 1 s deadline that travels with each call (the dependency drops expired work
//             instead of doing it), a bulkhead at the frontend (at most 25 calls in flight, the
//             rest shed at once), a circuit breaker on dependency failures, a bounded dependency
//             queue (100) that sheds when full, and no blind client retries.
//
// The checker (backpressure_checker.cc) reads the typed observations: requests and their outcomes,
// the capacity phases, and queue-depth samples.
#include <coroutine>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/lab/scenario.h"
#include "faultline/resilience/bulkhead.h"
#include "faultline/resilience/circuit_breaker.h"
#include "src/lab/backpressure_check.h"
#include "src/lab/chart_data.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

constexpr uint32_t kClient = 0;
constexpr uint32_t kFrontend = 1;
constexpr uint32_t kDependency = 2;
constexpr uint16_t kMethodCall = 1;
constexpr Duration kArrivalMean = Duration::Millis(2);  // 500/s
constexpr uint32_t kWorkers = 20;
constexpr Duration kServiceTime = Duration::Millis(20);
constexpr Duration kSlowStart = Duration::Seconds(5);
constexpr Duration kPartialStart = Duration::Seconds(10);
constexpr Duration kTriggerEnd = Duration::Seconds(15);
constexpr Duration kArrivalsEnd = Duration::Seconds(50);
constexpr Duration kRunEnd = Duration::Seconds(52);
constexpr Duration kClientTimeout = Duration::Seconds(1);
constexpr uint32_t kQueueBound = 100;
constexpr Duration kSampleInterval = Duration::Millis(100);

struct Conditions {
  int64_t slowdown = 1;  // service time multiplier
};

// A FIFO of coroutines waiting for one of `kWorkers` slots.
class WorkerPool {
 public:
  explicit WorkerPool(Executor& executor) : executor_(executor) {}
  struct Awaiter {
    WorkerPool& pool;
    bool await_ready() {
      if (pool.busy_ < kWorkers) {
        ++pool.busy_;
        return true;
      }
      return false;
    }
    void await_suspend(std::coroutine_handle<> h) { pool.waiting_.push_back(h); }
    void await_resume() {}
  };
  Awaiter Acquire() { return Awaiter{*this}; }
  // Hands the slot to the oldest waiter (resumed on a later turn), or frees it.
  void Release() {
    if (waiting_.empty()) {
      --busy_;
      return;
    }
    std::coroutine_handle<> next = waiting_.front();
    waiting_.pop_front();
    executor_.Post([next] { next.resume(); });
  }
  size_t queued() const { return waiting_.size(); }

 private:
  Executor& executor_;
  uint32_t busy_ = 0;
  std::deque<std::coroutine_handle<>> waiting_;
};

class Dependency final : public sim::Node {
 public:
  Dependency(Env& env, sim::World* world, const Conditions* conditions, bool hardened,
             BackpressureObservations* obs)
      : env_(env),
        rpc_(env),
        world_(world),
        conditions_(conditions),
        hardened_(hardened),
        obs_(obs),
        pool_(env.executor()) {}
  void Start() override {
    rpc_.HandleAsync(kMethodCall, [this](NodeId, Bytes, MonoTime deadline) { return Serve(deadline); });
    env_.Spawn(Sampler());
  }

 private:
  Task<Result<Bytes>> Serve(MonoTime deadline) {
    if (hardened_ && pool_.queued() >= kQueueBound) co_return ResourceExhaustedError("queue full");
    co_await pool_.Acquire();
    if (pool_.queued() > depth_max_) depth_max_ = pool_.queued();
    if (hardened_ && env_.clock().Now() >= deadline) {
      pool_.Release();  // nobody is waiting for this answer any more: do not do the work
      co_return DeadlineExceededError("expired in queue");
    }
    co_await Sleep(env_.executor(), kServiceTime * conditions_->slowdown);
    pool_.Release();
    co_return Bytes(1, 1);
  }

  Task<void> Sampler() {
    while ((co_await Sleep(env_.executor(), kSampleInterval)).ok()) {
      const size_t depth = std::max(depth_max_, pool_.queued());
      obs_->queue_samples.push_back(QueueSample{world_->now().nanos(), static_cast<int64_t>(depth),
                                                static_cast<int64_t>(kQueueBound)});
      depth_max_ = 0;
    }
  }

  Env& env_;
  Rpc rpc_;
  sim::World* world_;
  const Conditions* conditions_;
  bool hardened_;
  BackpressureObservations* obs_;
  WorkerPool pool_;
  size_t depth_max_ = 0;
};

class Frontend final : public sim::Node {
 public:
  Frontend(Env& env, bool hardened) : env_(env), rpc_(env), hardened_(hardened) {
    BulkheadOptions b;
    b.concurrency_max = kWorkers + 5;
    bulkhead_ = std::move(Bulkhead::Create(b)).value();
    CircuitBreakerOptions cb;
    cb.window_calls = 100;
    cb.min_calls = 50;
    cb.failure_rate_threshold = Ratio::Percent(50);
    cb.slow_call_threshold = Duration::Seconds(5);
    cb.open_duration_min = Duration::Millis(500);
    cb.open_duration_max = Duration::Seconds(5);
    breaker_ = std::move(CircuitBreaker::Create(env_.clock(), cb)).value();
  }
  void Start() override {
    rpc_.HandleAsync(kMethodCall, [this](NodeId, Bytes req, MonoTime deadline) {
      return Forward(std::move(req), deadline);
    });
  }

 private:
  Task<Result<Bytes>> Forward(Bytes req, MonoTime deadline) {
    if (!hardened_) co_return co_await rpc_.Call(NodeId(kDependency), kMethodCall, req, Duration::Seconds(60));
    BulkheadPermit slot = bulkhead_->TryAcquire();
    if (!slot) co_return ResourceExhaustedError("bulkhead full");
    const MonoTime start = env_.clock().Now();
    const BreakerPermit permit = breaker_->TryAcquire(start);
    if (!permit.admitted()) co_return UnavailableError("circuit open");
    const Duration remaining = deadline - start;
    Result<Bytes> r = co_await rpc_.Call(NodeId(kDependency), kMethodCall, req, remaining);
    // Shedding and deadline expiry are the dependency protecting itself, not a fault of it.
    const StatusCode code = r.status().code();
    const CallOutcome outcome = r.ok() ? CallOutcome::kSuccess
                                : (code == StatusCode::kResourceExhausted ||
                                   code == StatusCode::kDeadlineExceeded)
                                    ? CallOutcome::kIgnored
                                    : CallOutcome::kFailure;
    breaker_->Record(permit, outcome, env_.clock().Now() - start);
    co_return r;
  }

  Env& env_;
  Rpc rpc_;
  bool hardened_;
  std::unique_ptr<Bulkhead> bulkhead_;
  std::unique_ptr<CircuitBreaker> breaker_;
};

class Client final : public sim::Node {
 public:
  Client(Env& env, sim::World* world, bool hardened, BackpressureObservations* obs)
      : env_(env), rpc_(env), world_(world), hardened_(hardened), obs_(obs) {}
  void Start() override { env_.Spawn(Arrivals()); }

 private:
  Task<void> Arrivals() {
    uint64_t id = 1;
    while (world_->elapsed() < kArrivalsEnd) {
      if (!(co_await Sleep(env_.executor(), env_.random().Exponential(kArrivalMean))).ok()) co_return;
      env_.Spawn(Request(id++));
    }
  }

  Task<void> Request(uint64_t id) {
    const size_t entry = obs_->requests.size();
    obs_->requests.push_back(UserRequest{id, world_->now().nanos()});
    // Naive: give up after 1 s and try again, up to 3 times. Hardened: one call whose 1 s
    // deadline travels with it.
    const int attempts = hardened_ ? 1 : 3;
    const Bytes req(1, 1);
    bool ok = false;
    for (int a = 0; a < attempts && !ok; ++a) {
      Result<Bytes> r = co_await rpc_.Call(NodeId(kFrontend), kMethodCall, req, kClientTimeout);
      ok = r.ok();
    }
    UserRequest& r = obs_->requests[entry];
    FL_ASSERT(r.id == id && r.outcome == Outcome::kPending);
    r.outcome = ok ? Outcome::kOk : Outcome::kFail;
    r.end_ns = world_->now().nanos();
  }

  Env& env_;
  Rpc rpc_;
  sim::World* world_;
  bool hardened_;
  BackpressureObservations* obs_;
};

class Backpressure final : public Scenario {
 public:
  std::string_view id() const override { return "backpressure"; }
  std::string_view description() const override {
    return "a dependency slows 10x then 3x: unbounded queues and blind retries vs deadlines, "
           "bulkhead, breaker and bounded queues";
  }
  std::vector<VariantSpec> variants() const override {
    return {
        {"naive", false, 0.9, "unbounded queue, no deadlines, no breaker, client retries on timeout"},
        {"hardened", true, 0, "propagated deadlines, bulkhead, circuit breaker, bounded queue"},
    };
  }
  std::vector<std::string> key_metrics() const override {
    return {"goodput_ratio", "p99_latency_ms", "max_queue_depth", "recovery_s"};
  }

  // The report's charts: goodput against what the dependency can serve, and its queue depth
  // against the bound, with the slowdown phases as fault bands.
  static void AddBackpressureCharts(const BackpressureObservations& obs, int64_t end_ns,
                                    RunResult* result) {
    Series capacity{"dependency capacity", "per second", {}};
    for (size_t i = 0; i < obs.phases.size(); ++i) {
      const CapacityPhase& p = obs.phases[i];
      capacity.points.emplace_back(p.start_ns, static_cast<double>(p.capacity_rps));
      if (!p.trigger) continue;
      const int64_t stop = i + 1 < obs.phases.size() ? obs.phases[i + 1].start_ns : end_ns;
      result->faults.push_back(
          FaultSpan{"dependency slow (" + std::to_string(p.capacity_rps) + "/s)", "dependency",
                    p.start_ns, stop});
    }
    std::vector<int64_t> ok, invoked;
    for (const UserRequest& r : obs.requests) {
      invoked.push_back(r.invoke_ns);
      if (r.outcome == Outcome::kOk) ok.push_back(r.end_ns);
    }
    result->series.push_back(
        RateSeries("goodput (successful requests)", ok, kChartWindowNs, end_ns));
    result->series.push_back(RateSeries("offered requests", invoked, kChartWindowNs, end_ns));
    result->series.push_back(std::move(capacity));
    Series depth{"dependency queue depth", "requests queued", {}};
    Series bound{"queue bound", "requests queued", {}};
    for (const QueueSample& q : obs.queue_samples) {
      depth.points.emplace_back(q.time_ns, static_cast<double>(q.depth));
      bound.points.emplace_back(q.time_ns, static_cast<double>(q.bound));
    }
    result->series.push_back(std::move(depth));
    result->series.push_back(std::move(bound));
  }

  RunResult Run(const RunContext& ctx) const override {
    FL_ASSERT(ctx.variant != nullptr);
    FL_ASSERT(ctx.variant->name == "naive" || ctx.variant->name == "hardened");
    const bool hardened = ctx.variant->name == "hardened";
    sim::World world(ctx.seed, sim::WorldOptions::Nodes(3));
    ObserveRun(world, ctx);
    Conditions conditions;
    BackpressureObservations obs;
    sim::World* w = &world;
    Conditions* c = &conditions;
    BackpressureObservations* o = &obs;
    world.Boot(NodeId(kDependency), [w, c, hardened, o](Env& env) -> std::unique_ptr<sim::Node> {
      return std::make_unique<Dependency>(env, w, c, hardened, o);
    });
    world.Boot(NodeId(kFrontend), [hardened](Env& env) -> std::unique_ptr<sim::Node> {
      return std::make_unique<Frontend>(env, hardened);
    });
    world.Boot(NodeId(kClient), [w, hardened, o](Env& env) -> std::unique_ptr<sim::Node> {
      return std::make_unique<Client>(env, w, hardened, o);
    });
    // The dependency's capacity in each phase, for the checker.
    auto phase = [w, c, o](Duration at, int64_t slowdown) {
      w->ScheduleAt(sim::SimTime::FromNanos(at.nanos()), [w, c, o, slowdown] {
        c->slowdown = slowdown;
        w->Trace("nemesis dependency latency x" + std::to_string(slowdown));
        const int64_t capacity = kWorkers * 1'000'000'000LL / (kServiceTime * slowdown).nanos();
        o->phases.push_back(CapacityPhase{w->now().nanos(), capacity, slowdown > 1});
      });
    };
    phase(Duration::Zero(), 1);
    phase(kSlowStart, 10);
    phase(kPartialStart, 3);
    phase(kTriggerEnd, 1);
    world.RunUntil(sim::SimTime::FromNanos(kRunEnd.nanos()));

    RunResult result;
    CheckBackpressureHistory(obs, &result);
    AddBackpressureCharts(obs, world.now().nanos(), &result);
    if (ctx.history_out != nullptr) world.history() = BackpressureHistory(obs);
    FinishRun(world, ctx, &result);
    return result;
  }
};

}  // namespace

const Scenario* BackpressureScenario() {
  static const Backpressure scenario;
  return &scenario;
}

}  // namespace faultline::lab
