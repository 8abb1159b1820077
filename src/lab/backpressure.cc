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
#include "src/lab/metric_series.h"
#include "src/lab/scenarios.h"
#include "src/lab/backpressure_nodes.h"

namespace faultline::lab {
namespace {

using namespace faultline::lab::backpressure;  // NOLINT: the scenario and its nodes share one vocabulary

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
  std::vector<std::string> probe_modules() const override { return {"breaker"}; }
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
    MetricSeriesRecorder metrics;  // outlives the world's nodes, which report to it
    sim::World world(ctx.seed, sim::WorldOptions::Nodes(3));
    metrics.SetTime(&world);
    ObserveRun(world, ctx);
    Conditions conditions;
    BackpressureObservations obs;
    sim::World* w = &world;
    Conditions* c = &conditions;
    BackpressureObservations* o = &obs;
    world.Boot(NodeId(kDependency), [w, c, hardened, o](Env& env) -> std::unique_ptr<Node> {
      return backpressure::MakeDependency(env, w, c, hardened, o);
    });
    MetricSeriesRecorder* m = &metrics;
    world.Boot(NodeId(kFrontend), [hardened, m](Env& env) -> std::unique_ptr<Node> {
      return backpressure::MakeFrontend(env, hardened, m);
    });
    world.Boot(NodeId(kClient), [w, hardened, o](Env& env) -> std::unique_ptr<Node> {
      return backpressure::MakeClient(env, w, hardened, o);
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
    // The frontend's bulkhead and breaker decisions as the exporter's series (the naive frontend
    // forwards without them, so it reports none).
    metrics.AddTo(world.now().nanos(), &result);
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
