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
#include "src/lab/metric_series.h"
#include "src/lab/retry_check.h"
#include "src/lab/scenarios.h"
#include "src/lab/retry_amplification_nodes.h"

namespace faultline::lab {
namespace {

using namespace faultline::lab::retry_amp;  // NOLINT: the scenario and its nodes share one vocabulary

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
  std::vector<std::string> probe_modules() const override { return {"retry"}; }
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
    MetricSeriesRecorder metrics;  // outlives the world's nodes, which report to it
    sim::World world(ctx.seed, sim::WorldOptions::Nodes(4));
    metrics.SetTime(&world);
    ObserveRun(world, ctx);
    Conditions conditions;
    RetryObservations obs;
    sim::World* w = &world;
    const Conditions* c = &conditions;
    RetryObservations* o = &obs;
    world.Boot(NodeId(kDatabase), [w, c, o](Env& env) -> std::unique_ptr<Node> {
      return retry_amp::MakeDatabase(env, w, c, o);
    });
    world.Boot(NodeId(kService), [naive](Env& env) -> std::unique_ptr<Node> {
      return retry_amp::MakeLayer(env, NodeId(kDatabase), naive);
    });
    world.Boot(NodeId(kGateway), [naive](Env& env) -> std::unique_ptr<Node> {
      return retry_amp::MakeLayer(env, NodeId(kService), naive);
    });
    MetricSeriesRecorder* m = &metrics;
    world.Boot(NodeId(kClient), [w, naive, o, m](Env& env) -> std::unique_ptr<Node> {
      return retry_amp::MakeClient(env, w, naive, o, m);
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
    // The hardened client's retry decisions as the exporter's series (the naive variant has no
    // retry primitive, so it reports none).
    metrics.AddTo(world.now().nanos(), &result);
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
