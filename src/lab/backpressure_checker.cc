// The backpressure checker: goodput against capacity, latency, queue depth and recovery, from the
// typed observations alone (see backpressure_check.h).
#include <algorithm>
#include <climits>
#include <cstdio>
#include <string>
#include <vector>

#include "faultline/lab/scenario.h"
#include "src/lab/backpressure_check.h"

namespace faultline::lab {
namespace {

constexpr int64_t kWindowNs = 1'000'000'000;
constexpr double kHealthyRatio = 0.9;
constexpr double kGoodputMin = 0.7;
constexpr double kRecoveryLimitS = 30.0;

bool Succeeded(const UserRequest& r) { return r.outcome == Outcome::kOk; }

int64_t LastInvoke(const BackpressureObservations& obs) {
  int64_t last = 0;
  for (const UserRequest& r : obs.requests) last = std::max(last, r.invoke_ns);
  return last;
}

// Goodput against capacity, phase by phase while the trigger is on.
struct Goodput {
  double served = 0;
  double possible = 0;
  int64_t trigger_end_ns = -1;  // -1: the trigger never ended
  double ratio() const { return possible > 0 ? served / possible : 1.0; }
};

Goodput MeasureGoodput(const BackpressureObservations& obs, int64_t last_invoke) {
  Goodput g;
  const std::vector<CapacityPhase>& phases = obs.phases;
  for (size_t i = 0; i < phases.size(); ++i) {
    const int64_t start = phases[i].start_ns;
    const int64_t end = i + 1 < phases.size() ? phases[i + 1].start_ns : last_invoke;
    if (!phases[i].trigger) {
      if (g.trigger_end_ns < 0 && i > 0 && phases[i - 1].trigger) g.trigger_end_ns = start;
      continue;
    }
    int64_t offered = 0;
    for (const UserRequest& r : obs.requests) {
      if (r.invoke_ns >= start && r.invoke_ns < end) ++offered;
      if (Succeeded(r) && r.end_ns >= start && r.end_ns < end) g.served += 1;
    }
    const double seconds = static_cast<double>(end - start) / 1e9;
    g.possible += std::min(static_cast<double>(offered),
                           static_cast<double>(phases[i].capacity_rps) * seconds);
  }
  return g;
}

double P99LatencyMs(const BackpressureObservations& obs) {
  std::vector<int64_t> latencies;
  for (const UserRequest& r : obs.requests) {
    if (Succeeded(r)) latencies.push_back(r.end_ns - r.invoke_ns);
  }
  std::sort(latencies.begin(), latencies.end());
  return latencies.empty() ? 0.0
                           : static_cast<double>(latencies[latencies.size() * 99 / 100]) / 1e6;
}

void ReportGoodput(const Goodput& g, RunResult* result) {
  if (g.ratio() >= kGoodputMin) return;
  char buf[200];
  std::snprintf(buf, sizeof(buf),
                "goodput while the trigger was on was %s of what capacity allowed < 70%% (%.0f "
                "served of %.0f possible)",
                FormatPercent(g.ratio()).c_str(), g.served, g.possible);
  result->Violate("goodput-collapse", 1, buf);
}

void CheckQueue(const BackpressureObservations& obs, RunResult* result) {
  const QueueSample* deepest = nullptr;
  for (const QueueSample& s : obs.queue_samples) {
    if (deepest == nullptr || s.depth > deepest->depth) deepest = &s;
  }
  const int64_t max_depth = deepest == nullptr ? 0 : std::max<int64_t>(0, deepest->depth);
  const int64_t bound = obs.queue_samples.empty() ? INT64_MAX : obs.queue_samples.back().bound;
  if (max_depth > bound) {
    result->Violate("queue-over-bound", 1,
                    "dependency queue held " + std::to_string(max_depth) + " at " +
                        FormatSeconds(deepest->time_ns) + " s > bound " + std::to_string(bound));
  }
  result->metrics["max_queue_depth"] = static_cast<double>(max_depth);
}

}  // namespace

void CheckBackpressureHistory(const BackpressureObservations& obs, RunResult* result) {
  FL_ASSERT_MSG(!obs.phases.empty(), "observations lack capacity phases");
  const int64_t last_invoke = LastInvoke(obs);
  const Goodput goodput = MeasureGoodput(obs, last_invoke);
  // A trigger that never ended leaves nothing to recover from.
  const WindowRecovery rec =
      goodput.trigger_end_ns < 0
          ? WindowRecovery{}
          : MeasureWindowRecovery(obs.requests, goodput.trigger_end_ns, kWindowNs, kHealthyRatio);
  const double recovery_s = static_cast<double>(rec.first_healthy) * kWindowNs / 1e9;

  ReportGoodput(goodput, result);
  CheckQueue(obs, result);
  if (rec.never() || recovery_s > kRecoveryLimitS) {
    result->Violate(
        "not-recovered", 1,
        (rec.never()
             ? std::string("never recovered after the trigger's end: ")
             : "recovered " + FormatSeconds(static_cast<int64_t>(rec.first_healthy) * kWindowNs) +
                   " s after the trigger's end > 30 s: ") +
            DescribeLastUnhealthy(rec, goodput.trigger_end_ns, kWindowNs, "1 s"));
  }
  result->metrics["goodput_ratio"] = goodput.ratio();
  result->metrics["p99_latency_ms"] = P99LatencyMs(obs);
  result->metrics["recovery_s"] = recovery_s;
  result->metrics["requests"] = static_cast<double>(obs.requests.size());
}

check::History BackpressureHistory(const BackpressureObservations& obs) {
  HistoryExport out;
  out.AddRequests(obs.requests);
  for (const CapacityPhase& p : obs.phases) {
    out.Add(-2, check::OpType::kInfo, "capacity",
            "{\"rps\":" + std::to_string(p.capacity_rps) +
                ",\"trigger\":" + (p.trigger ? "true" : "false") + "}",
            p.start_ns);
  }
  for (const QueueSample& s : obs.queue_samples) {
    out.Add(-3, check::OpType::kInfo, "queue-depth",
            "{\"depth\":" + std::to_string(s.depth) + ",\"bound\":" + std::to_string(s.bound) + "}",
            s.time_ns);
  }
  return out.Build();
}

}  // namespace faultline::lab
