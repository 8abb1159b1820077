// split-brain's checker: judges the recorded history alone.
//
//   stale-write-accepted    the store accepted a write whose fencing token is below a token it had
//                           already seen (on an accepted write or a new leader's load): a deposed
//                           leader's write landed after its successor's.
//   two-leaders             a period in which two or more nodes could act as leader at the same
//                           true instant (from the probe's f="leaders" samples, taken every
//                           millisecond of simulated time).
//   non-linearizable        the clients' reads and writes (f="read"/"write", kv model) have no
//                           linearisation: some client saw a stale or lost value.
//   linearizability-unknown the checker hit its memo budget before deciding.
//   no-leader-after-heal    no node could act within the bound after the "heal" marker.
//   no-failover / failover-over-bound   after "failover-crash" (the leader crashed), no other node
//                           could act before the end, or only after the recorded bound.
#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "faultline/check/linearizability.h"
#include "faultline/env/clock.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

using nlohmann::json;

int64_t Field(const json& j, const char* name, int64_t fallback = -1) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number_integer()) return fallback;
  return it->get<int64_t>();
}

}  // namespace

void CheckSplitBrainHistory(const sim::History& history, RunResult* result) {
  sim::History clients;
  uint64_t max_token = 0;
  int64_t stale_writes = 0;
  int64_t fenced_rejections = 0;
  int64_t store_writes = 0;

  // Leadership intervals from the probe.
  size_t acting_count = 0;
  std::vector<int64_t> acting_nodes;
  int64_t dual_since = -1;
  int64_t dual_ns = 0;
  int64_t dual_periods = 0;

  std::optional<int64_t> heal_at;
  int64_t heal_bound_ns = 0;
  std::optional<int64_t> recovered_at;
  std::optional<int64_t> crash_at;
  int64_t crashed_node = -1;
  int64_t failover_bound_ns = 0;
  std::optional<int64_t> failed_over_at;

  int64_t client_ok = 0;
  int64_t client_info = 0;
  int64_t end_ns = 0;

  for (const sim::HistoryOp& op : history.ops()) {
    end_ns = std::max(end_ns, op.time_ns);
    if (op.f == "read" || op.f == "write") {
      clients.Add(op.process, op.type, op.f, op.value, op.time_ns);
      if (op.type == sim::OpType::kOk) ++client_ok;
      if (op.type == sim::OpType::kInfo) ++client_info;
      continue;
    }
    const json v = json::parse(op.value, nullptr, /*allow_exceptions=*/false);
    if (v.is_discarded()) continue;
    if (op.f == "store-write" || op.f == "store-load") {
      const int64_t token = Field(v, "token");
      if (token < 0) continue;
      if (op.type == sim::OpType::kFail) {
        ++fenced_rejections;
        continue;
      }
      if (op.type != sim::OpType::kOk) continue;
      if (op.f == "store-write") {
        ++store_writes;
        if (static_cast<uint64_t>(token) < max_token) ++stale_writes;
      }
      max_token = std::max(max_token, static_cast<uint64_t>(token));
    } else if (op.f == "leaders") {
      acting_nodes.clear();
      auto nodes = v.find("nodes");
      if (nodes != v.end() && nodes->is_array()) {
        for (const json& n : *nodes) {
          if (n.is_number_integer()) acting_nodes.push_back(n.get<int64_t>());
        }
      }
      acting_count = acting_nodes.size();
      if (acting_count >= 2 && dual_since < 0) {
        dual_since = op.time_ns;
        ++dual_periods;
      } else if (acting_count < 2 && dual_since >= 0) {
        dual_ns += op.time_ns - dual_since;
        dual_since = -1;
      }
      if (heal_at && !recovered_at && acting_count > 0) recovered_at = op.time_ns;
      if (crash_at && !failed_over_at) {
        for (int64_t n : acting_nodes) {
          if (n != crashed_node) failed_over_at = op.time_ns;
        }
      }
    } else if (op.f == "heal") {
      heal_at = op.time_ns;
      heal_bound_ns = Field(v, "bound_ms", 0) * 1'000'000;
      if (acting_count > 0) recovered_at = op.time_ns;
    } else if (op.f == "failover-crash") {
      crash_at = op.time_ns;
      crashed_node = Field(v, "node");
      failover_bound_ns = Field(v, "bound_ms", 0) * 1'000'000;
    }
  }
  if (dual_since >= 0) dual_ns += end_ns - dual_since;

  result->Violate("stale-write-accepted", stale_writes);
  result->Violate("two-leaders", dual_periods);
  result->metrics["stale_writes"] = static_cast<double>(stale_writes);
  result->metrics["store_writes"] = static_cast<double>(store_writes);
  result->metrics["fenced_rejections"] = static_cast<double>(fenced_rejections);
  result->metrics["dual_leader_ms"] = static_cast<double>(dual_ns) / 1e6;
  result->metrics["dual_leader_periods"] = static_cast<double>(dual_periods);
  result->metrics["client_ok_ops"] = static_cast<double>(client_ok);
  result->metrics["client_info_ops"] = static_cast<double>(client_info);

  if (heal_at) {
    if (!recovered_at || *recovered_at - *heal_at > heal_bound_ns) {
      result->Violate("no-leader-after-heal");
    }
    if (recovered_at) {
      result->metrics["recovery_ms"] = static_cast<double>(*recovered_at - *heal_at) / 1e6;
    }
  }
  if (crash_at) {
    if (!failed_over_at) {
      result->Violate("no-failover");
    } else {
      const int64_t took = *failed_over_at - *crash_at;
      result->metrics["failover_ms"] = static_cast<double>(took) / 1e6;
      if (took > failover_bound_ns) result->Violate("failover-over-bound");
    }
  }

  // The budget is a memo size, never wall time, so the verdict is the same on every machine.
  ManualClock frozen;
  check::CheckOptions options;
  options.clock = &frozen;
  options.memo_entries_max = 2'000'000;
  options.minimize_ops_max = 0;
  const check::LinearizabilityResult lin = check::Check(clients, check::Model::kKv, options);
  if (!lin.error.ok()) {
    result->Violate("malformed-client-history");
  } else if (lin.verdict == check::Verdict::kNotLinearizable) {
    result->Violate("non-linearizable");
  } else if (lin.verdict == check::Verdict::kUnknown) {
    result->Violate("linearizability-unknown");
  }
  result->metrics["linearizable"] = lin.verdict == check::Verdict::kLinearizable ? 1.0 : 0.0;
}

}  // namespace faultline::lab
