// The backpressure checker. From the history alone:
//   goodput_ratio    requests completed successfully while the trigger is on, divided by what the
//                    dependency could have served then: the integral of min(offered rate,
//                    capacity) over the trigger's phases (capacity from the "capacity" markers)
//   p99_latency_ms   99th percentile latency of successful requests, whole run
//   max_queue_depth  the largest sampled dependency queue, against its declared bound
//   recovery_s       from the trigger's end until every later 1 s window of requests succeeds at
//                    >= 90% (requests still pending at the end count as failed)
// Violations: "goodput-collapse" (ratio < 0.7), "queue-over-bound", "not-recovered" (30 s).
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

constexpr int64_t kWindowNs = 1'000'000'000;
constexpr double kHealthyRatio = 0.9;
constexpr double kGoodputMin = 0.7;
constexpr double kRecoveryLimitS = 30.0;

struct Request {
  int64_t invoke_ns = -1;
  int64_t done_ns = -1;
  bool ok = false;
};

struct Phase {
  int64_t start_ns;
  double capacity_rps;
  bool trigger;
};

}  // namespace

void CheckBackpressureHistory(const sim::History& history, RunResult* result) {
  std::map<uint64_t, Request> requests;
  std::vector<Phase> phases;
  int64_t max_depth = 0;
  int64_t bound = INT64_MAX;
  int64_t last_invoke = 0;
  for (const sim::HistoryOp& op : history.ops()) {
    if (op.f != "request" && op.f != "capacity" && op.f != "queue-depth") continue;
    const nlohmann::json v = nlohmann::json::parse(op.value, nullptr, false);
    FL_ASSERT_MSG(!v.is_discarded(), "history value is not JSON");
    if (op.f == "capacity") {
      phases.push_back({op.time_ns, v.at("rps").get<double>(), v.at("trigger").get<bool>()});
    } else if (op.f == "queue-depth") {
      max_depth = std::max(max_depth, v.at("depth").get<int64_t>());
      bound = v.at("bound").get<int64_t>();
    } else {
      Request& r = requests[v.at("req").get<uint64_t>()];
      if (op.type == sim::OpType::kInvoke) {
        r.invoke_ns = op.time_ns;
        last_invoke = std::max(last_invoke, op.time_ns);
      } else {
        r.done_ns = op.time_ns;
        r.ok = op.type == sim::OpType::kOk;
      }
    }
  }
  FL_ASSERT_MSG(!phases.empty(), "history lacks capacity markers");

  // Goodput against capacity, phase by phase while the trigger is on.
  double served = 0;
  double possible = 0;
  int64_t trigger_end = -1;
  for (size_t i = 0; i < phases.size(); ++i) {
    const int64_t start = phases[i].start_ns;
    const int64_t end = i + 1 < phases.size() ? phases[i + 1].start_ns : last_invoke;
    if (!phases[i].trigger) {
      if (trigger_end < 0 && i > 0 && phases[i - 1].trigger) trigger_end = start;
      continue;
    }
    int64_t offered = 0;
    for (const auto& [id, r] : requests) {
      if (r.invoke_ns >= start && r.invoke_ns < end) ++offered;
      if (r.ok && r.done_ns >= start && r.done_ns < end) served += 1;
    }
    const double seconds = static_cast<double>(end - start) / 1e9;
    possible += std::min(static_cast<double>(offered), phases[i].capacity_rps * seconds);
  }
  const double goodput_ratio = possible > 0 ? served / possible : 1.0;

  std::vector<int64_t> latencies;
  for (const auto& [id, r] : requests) {
    if (r.ok) latencies.push_back(r.done_ns - r.invoke_ns);
  }
  std::sort(latencies.begin(), latencies.end());
  const double p99_ms =
      latencies.empty() ? 0.0
                        : static_cast<double>(latencies[latencies.size() * 99 / 100]) / 1e6;

  // Recovery after the trigger ends.
  double recovery_s = 0;
  bool recovered = true;
  if (trigger_end >= 0) {
    const size_t windows = static_cast<size_t>((last_invoke - trigger_end) / kWindowNs + 1);
    std::vector<int64_t> ok(windows, 0);
    std::vector<int64_t> all(windows, 0);
    for (const auto& [id, r] : requests) {
      if (r.invoke_ns < trigger_end) continue;
      const size_t w = static_cast<size_t>((r.invoke_ns - trigger_end) / kWindowNs);
      if (w >= windows) continue;
      ++all[w];
      ok[w] += r.ok ? 1 : 0;
    }
    size_t first_healthy = windows;
    for (size_t w = windows; w-- > 0;) {
      if (all[w] != 0 && static_cast<double>(ok[w]) < kHealthyRatio * static_cast<double>(all[w])) {
        break;
      }
      first_healthy = w;
    }
    recovered = first_healthy < windows;
    recovery_s = static_cast<double>(recovered ? first_healthy : windows) * kWindowNs / 1e9;
  }

  if (goodput_ratio < kGoodputMin) result->Violate("goodput-collapse");
  if (max_depth > bound) result->Violate("queue-over-bound");
  if (!recovered || recovery_s > kRecoveryLimitS) result->Violate("not-recovered");
  result->metrics["goodput_ratio"] = goodput_ratio;
  result->metrics["p99_latency_ms"] = p99_ms;
  result->metrics["max_queue_depth"] = static_cast<double>(max_depth);
  result->metrics["recovery_s"] = recovery_s;
  result->metrics["requests"] = static_cast<double>(requests.size());
}

}  // namespace faultline::lab
