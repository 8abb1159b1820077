// The `sharding` scenario's checker: a function of ShardingObservations alone (see sharding.h).
//
// Violations:
//   lost-write              a write acknowledged to a client that the final store of the shard the
//                           final routing names for its tenant does not hold
//   duplicated-write        an acknowledged write applied more than once in that store (count:
//                           the extra applications)
//   write-after-fence       a shard accepted a write for a tenant it had fenced (between its fence
//                           and its unfence, in the order events happened)
//   misrouted-write         a shard accepted a write for a tenant after the routing had passed the
//                           tenant to another shard (a client with an old route, served anyway)
//   client-error            an operation the client gave up on (no answer within its deadline)
//   hot-tenant-not-detected no detection of the hot tenant within kDetectBound of it turning hot
//   hot-tenant-not-isolated no routing change moved the hot tenant alone (its own placement unit:
//                           a tenant override, Citus's isolate_tenant_to_new_shard) to the shard
//                           the final routing names for it, within kIsolateBound of turning hot
//   load-imbalance          max/mean of the operations served per shard above 1.10, over the
//                           shards the final routing uses, in the kLoadWindow (20 s) after the
//                           isolation deadline (hot start + 60 s): the "afterwards"
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "faultline/lab/scenario.h"
#include "src/lab/observations.h"
#include "src/lab/sharding.h"

namespace faultline::lab::sharding {
namespace {

std::string Seconds(int64_t ns) { return FormatSeconds(ns) + " s"; }

std::string Fixed(double v, int digits) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

void CheckWrites(const ShardingObservations& obs, RunResult* result) {
  std::map<std::pair<uint32_t, uint64_t>, uint32_t> stored;  // (shard, wid) -> applications
  for (const FinalRecord& r : obs.final_records) stored[{r.shard, r.wid}] += r.count;
  int64_t lost = 0, duplicated = 0, acked = 0;
  std::string lost_detail, dup_detail;
  for (const ClientOp& op : obs.ops) {
    if (!op.write || !op.ok) continue;
    ++acked;
    const auto owner = obs.final_owner.find(op.tenant);
    const uint32_t shard = owner == obs.final_owner.end() ? UINT32_MAX : owner->second;
    const auto it = stored.find({shard, op.wid});
    const uint32_t count = it == stored.end() ? 0 : it->second;
    const std::string what = "write " + std::to_string(op.wid) + " (" + op.tenant + "/" + op.key +
                             ", acknowledged at " + Seconds(op.end_ns) + ")";
    if (count == 0) {
      ++lost;
      if (lost_detail.empty()) {
        lost_detail = what + " not in shard " + std::to_string(shard) +
                      ", which the final routing names: expected once, found 0 times";
      }
    } else if (count > 1) {
      duplicated += count - 1;
      if (dup_detail.empty()) {
        dup_detail = what + " applied " + std::to_string(count) + " times in shard " +
                     std::to_string(shard) + ", expected once";
      }
    }
  }
  result->Violate("lost-write", lost, lost_detail);
  result->Violate("duplicated-write", duplicated, dup_detail);
  result->metrics["writes_acked"] = static_cast<double>(acked);
  result->metrics["lost_writes"] = static_cast<double>(lost);
  result->metrics["duplicated_writes"] = static_cast<double>(duplicated);
}

using Owned = std::map<std::pair<uint32_t, std::string>, std::vector<std::pair<uint64_t, bool>>>;

// Whether a switch gave `tenant` to `shard` strictly between the two orders.
bool SwitchedTo(const Owned& owned, uint32_t shard, const std::string& tenant, uint64_t after,
                uint64_t before) {
  auto it = owned.find({shard, tenant});
  if (it == owned.end()) return false;
  for (const auto& [order, away] : it->second) {
    if (!away && order > after && order < before) return true;
  }
  return false;
}

struct FenceSpan {
  const FenceEvent* fence;
  uint64_t until = UINT64_MAX;  // the unfence's order
};

bool Covers(const FenceEvent& f, const Served& s) {
  if (!f.tenant.empty()) return f.tenant == s.tenant;
  if (s.by_override) return false;
  const std::string k = RoutingKey(s.tenant);
  return k >= f.begin && (f.end.empty() || k < f.end);
}

void CheckFencesAndRoutes(const ShardingObservations& obs, RunResult* result) {
  std::map<uint32_t, std::vector<FenceSpan>> spans;  // shard -> its fences, in order
  for (const FenceEvent& f : obs.fences) {
    std::vector<FenceSpan>& list = spans[f.shard];
    if (f.fenced) {
      list.push_back(FenceSpan{&f});
      continue;
    }
    for (FenceSpan& span : list) {
      if (span.until == UINT64_MAX && span.fence->tenant == f.tenant &&
          span.fence->begin == f.begin && span.fence->end == f.end) {
        span.until = f.order;
      }
    }
  }
  // (shard, tenant) -> switches away from (true) and to (false) the shard: (order, away).
  Owned owned;
  for (const Switch& s : obs.switches) {
    owned[{s.from, s.tenant}].emplace_back(s.order, true);
    owned[{s.to, s.tenant}].emplace_back(s.order, false);
  }
  int64_t after_fence = 0, misrouted_writes = 0, misrouted_reads = 0;
  std::string fence_detail, route_detail;
  for (const Served& s : obs.served) {
    const std::string what = (s.write ? "write " + std::to_string(s.wid) : std::string("read")) +
                             " of " + s.tenant + " accepted by shard " + std::to_string(s.shard) +
                             " at " + Seconds(s.time_ns);
    for (const FenceSpan& span : s.write ? spans[s.shard] : std::vector<FenceSpan>{}) {
      if (s.order <= span.fence->order || s.order >= span.until || !Covers(*span.fence, s) ||
          SwitchedTo(owned, s.shard, s.tenant, span.fence->order, s.order)) {
        continue;
      }
      ++after_fence;
      if (fence_detail.empty()) {
        fence_detail = what + ", after its fence there at " + Seconds(span.fence->time_ns) +
                       ": expected refused";
      }
      break;
    }
    auto o = owned.find({s.shard, s.tenant});
    if (o == owned.end()) continue;
    bool away = false;
    for (const auto& [order, is_away] : o->second) {
      if (order < s.order) away = is_away;
    }
    if (!away) continue;
    (s.write ? misrouted_writes : misrouted_reads) += 1;
    if (s.write && route_detail.empty()) {
      route_detail = what + ", after the routing had moved the tenant away from it";
    }
  }
  result->Violate("write-after-fence", after_fence, fence_detail);
  result->Violate("misrouted-write", misrouted_writes, route_detail);
  result->metrics["writes_after_fence"] = static_cast<double>(after_fence);
  result->metrics["misrouted_writes"] = static_cast<double>(misrouted_writes);
  result->metrics["misrouted_reads"] = static_cast<double>(misrouted_reads);
}

void CheckClients(const ShardingObservations& obs, RunResult* result) {
  int64_t errors = 0, redirects = 0, buffered = 0;
  std::string detail;
  std::vector<int64_t> latencies;
  for (const ClientOp& op : obs.ops) {
    redirects += op.redirects;
    buffered += op.buffered;
    if (op.ok) latencies.push_back(op.end_ns - op.invoke_ns);
    if (!op.failed) continue;
    ++errors;
    if (detail.empty()) {
      detail = std::string(op.write ? "write " : "read of ") + op.tenant + "/" + op.key +
               " invoked at " + Seconds(op.invoke_ns) + " gave up after " +
               std::to_string(op.attempts) + " attempts: expected an answer";
    }
  }
  result->Violate("client-error", errors, detail);
  std::sort(latencies.begin(), latencies.end());
  const double p99 =
      latencies.empty() ? 0 : static_cast<double>(latencies[(latencies.size() - 1) * 99 / 100]);
  result->metrics["ops"] = static_cast<double>(obs.ops.size());
  result->metrics["client_errors"] = static_cast<double>(errors);
  result->metrics["latency_p99_ms"] = p99 / 1e6;
  result->metrics["redirects"] = static_cast<double>(redirects);
  result->metrics["buffered_retries"] = static_cast<double>(buffered);
}

void CheckHotTenant(const ShardingObservations& obs, RunResult* result) {
  const int64_t start = obs.hot_start_ns;
  int64_t detected = -1;
  for (const Detection& d : obs.detections) {
    if (d.tenant == obs.hot_tenant && d.time_ns >= start) {
      detected = d.time_ns;
      break;
    }
  }
  result->metrics["detect_s"] = detected < 0 ? -1 : static_cast<double>(detected - start) / 1e9;
  if (detected < 0 || detected - start > kDetectBound.nanos()) {
    result->Violate("hot-tenant-not-detected", 1,
                    "hot tenant " + obs.hot_tenant + " (hot from " + Seconds(start) + ") " +
                        (detected < 0 ? "never detected" : "detected at " + Seconds(detected)) +
                        ": expected within " + Seconds(kDetectBound.nanos()));
  }
  // Isolated: a routing change that moved the hot tenant alone (its own placement: an override,
  // or a range holding no other tenant) to the shard the final routing names for it.
  const auto owner = obs.final_owner.find(obs.hot_tenant);
  int64_t switched = -1;
  for (const Switch& s : obs.switches) {
    if (s.tenant != obs.hot_tenant) continue;
    const bool alone = s.group == 1 && owner != obs.final_owner.end() && s.to == owner->second;
    switched = alone ? s.time_ns : -1;
  }
  const bool in_time = switched >= 0 && switched - start <= kIsolateBound.nanos();
  result->metrics["isolate_s"] = switched < 0 ? -1 : static_cast<double>(switched - start) / 1e9;
  if (!in_time) {
    const std::string seen =
        switched < 0 ? "never moved alone to the shard it ends on"
                     : "moved alone to shard " + std::to_string(owner->second) + " at " +
                           Seconds(switched);
    result->Violate("hot-tenant-not-isolated", 1,
                    "hot tenant " + obs.hot_tenant + " " + seen + ": expected within " +
                        Seconds(kIsolateBound.nanos()) + " of " + Seconds(start));
  }
}

void CheckLoad(const ShardingObservations& obs, RunResult* result) {
  const int64_t begin = obs.hot_start_ns + kIsolateBound.nanos();
  const int64_t end = std::min(obs.workload_end_ns, begin + kLoadWindow.nanos());
  std::map<uint32_t, int64_t> load;
  for (const auto& [tenant, shard] : obs.final_owner) load[shard] = 0;
  for (const Served& s : obs.served) {
    if (s.time_ns < begin || s.time_ns >= end) continue;
    auto it = load.find(s.shard);
    if (it != load.end()) ++it->second;
  }
  int64_t total = 0, max = 0;
  uint32_t max_shard = 0;
  for (const auto& [shard, n] : load) {
    total += n;
    if (n > max) std::tie(max, max_shard) = std::tie(n, shard);
  }
  const double mean = load.empty() ? 0 : static_cast<double>(total) / static_cast<double>(load.size());
  const double ratio = mean > 0 ? static_cast<double>(max) / mean : 0;
  result->metrics["load_max_mean"] = ratio;
  result->metrics["load_window_s"] = static_cast<double>(end - begin) / 1e9;
  // Integer comparison: max * shards * 1000 > 1100 * total.
  if (total > 0 && max * static_cast<int64_t>(load.size()) * 1000 > kImbalanceMaxPermille * total) {
    std::string per;
    for (const auto& [shard, n] : load) per += (per.empty() ? "" : ", ") + std::to_string(n);
    result->Violate("load-imbalance", 1,
                    "shard " + std::to_string(max_shard) + " served " + std::to_string(max) +
                        " ops from " + Seconds(begin) + " to " + Seconds(end) + " (per shard: " +
                        per + "): max/mean " + Fixed(ratio, 3) + " > 1.100");
  }
}

void ReportMoves(const ShardingObservations& obs, RunResult* result) {
  int64_t pause_max = 0, switch_max = 0, reversals = 0;
  std::map<int64_t, int64_t> over;  // ms -> cutovers that paused longer
  for (const Cutover& c : obs.cutovers) {
    pause_max = std::max(pause_max, c.end_ns - c.fence_ns);
    reversals += c.switched ? 0 : 1;
    if (c.switched) switch_max = std::max(switch_max, c.end_ns - c.fence_ns);
    for (int64_t ms : {100, 250, 500, 1000}) {
      over[ms] += c.end_ns - c.fence_ns > Duration::Millis(ms).nanos() ? 1 : 0;
    }
  }
  const ShardingCounters& c = obs.counters;
  // Writes to the moving data are refused from the fence to the switch (or the reversal).
  result->metrics["cutover_pause_ms"] = static_cast<double>(pause_max) / 1e6;
  result->metrics["switch_pause_ms"] = static_cast<double>(switch_max) / 1e6;
  result->metrics["cutovers"] = static_cast<double>(obs.cutovers.size());
  // A cutover pause distribution over many runs: sum these over the seeds.
  for (const auto& [ms, n] : over) {
    result->metrics["cutovers_over_" + std::to_string(ms) + "ms"] = static_cast<double>(n);
  }
  result->metrics["reversals"] = static_cast<double>(reversals);
  result->metrics["moves"] = static_cast<double>(c.moves_started);
  result->metrics["splits"] = static_cast<double>(c.splits);
  result->metrics["range_moves"] = static_cast<double>(c.range_moves);
  result->metrics["hot_key_reports"] = static_cast<double>(c.hot_key_reports);
  result->metrics["crashes_aimed"] = static_cast<double>(c.crashes_aimed);
  result->metrics["switched_tenants"] = static_cast<double>(obs.switches.size());
}

}  // namespace

void CheckSharding(const ShardingObservations& obs, RunResult* result) {
  CheckWrites(obs, result);
  CheckFencesAndRoutes(obs, result);
  CheckClients(obs, result);
  CheckHotTenant(obs, result);
  CheckLoad(obs, result);
  ReportMoves(obs, result);
}

}  // namespace faultline::lab::sharding
