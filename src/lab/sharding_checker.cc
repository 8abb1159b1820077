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
//   hot-tenant-not-isolated the hot tenant is not, in the final routing, alone on a shard that it
//                           was switched to within kIsolateBound of turning hot
//   load-imbalance          max/mean of the operations served per shard above 1.10, over the
//                           shards the final routing uses, in the window from kSettle after the
//                           isolation (or from the isolation deadline when there was none in time)
//                           to the end of the workload
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

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

void CheckFencesAndRoutes(const ShardingObservations& obs, RunResult* result) {
  // (shard, tenant) -> fence intervals [fence order, unfence order).
  std::map<std::pair<uint32_t, std::string>, std::vector<std::pair<uint64_t, uint64_t>>> fenced;
  for (const FenceEvent& f : obs.fences) {
    auto& list = fenced[{f.shard, f.tenant}];
    if (f.fenced) {
      list.emplace_back(f.order, UINT64_MAX);
    } else if (!list.empty() && list.back().second == UINT64_MAX) {
      list.back().second = f.order;
    }
  }
  // (shard, tenant) -> switches away from and back to the shard, in order: (order, away?).
  std::map<std::pair<uint32_t, std::string>, std::vector<std::pair<uint64_t, bool>>> owned;
  for (const Switch& s : obs.switches) {
    owned[{s.from, s.tenant}].emplace_back(s.order, true);
    owned[{s.to, s.tenant}].emplace_back(s.order, false);
  }
  int64_t after_fence = 0, misrouted_writes = 0, misrouted_reads = 0;
  std::string fence_detail, route_detail;
  for (const Served& s : obs.served) {
    const std::pair<uint32_t, std::string> id{s.shard, s.tenant};
    const std::string what = (s.write ? "write " + std::to_string(s.wid) : std::string("read")) +
                             " of " + s.tenant + " accepted by shard " + std::to_string(s.shard) +
                             " at " + Seconds(s.time_ns);
    if (auto f = fenced.find(id); f != fenced.end() && s.write) {
      for (const auto& [from, to] : f->second) {
        if (s.order <= from || s.order >= to) continue;
        ++after_fence;
        if (fence_detail.empty()) fence_detail = what + ", after its fence there: expected refused";
        break;
      }
    }
    auto o = owned.find(id);
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

// The instant the hot tenant became isolated in time, or -1.
int64_t CheckHotTenant(const ShardingObservations& obs, RunResult* result) {
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
  const auto owner = obs.final_owner.find(obs.hot_tenant);
  FL_ASSERT(owner != obs.final_owner.end());
  size_t sharing = 0;
  for (const auto& [tenant, shard] : obs.final_owner) sharing += shard == owner->second ? 1 : 0;
  int64_t switched = -1;
  for (const Switch& s : obs.switches) {
    if (s.tenant == obs.hot_tenant && s.to == owner->second) switched = s.time_ns;
  }
  const bool alone = sharing == 1;
  const bool in_time = switched >= 0 && switched - start <= kIsolateBound.nanos();
  result->metrics["isolate_s"] = alone && switched >= 0
                                     ? static_cast<double>(switched - start) / 1e9
                                     : -1;
  if (!alone || !in_time) {
    std::string seen = alone ? "alone on shard " + std::to_string(owner->second) +
                                   (switched < 0 ? " from the start"
                                                 : " since " + Seconds(switched))
                             : "sharing shard " + std::to_string(owner->second) + " with " +
                                   std::to_string(sharing - 1) + " other tenants";
    result->Violate("hot-tenant-not-isolated", 1,
                    "hot tenant " + obs.hot_tenant + " " + seen + ": expected alone on a shard " +
                        "within " + Seconds(kIsolateBound.nanos()) + " of " + Seconds(start));
  }
  return alone && in_time ? switched : -1;
}

void CheckLoad(const ShardingObservations& obs, int64_t isolated_ns, RunResult* result) {
  const int64_t begin = isolated_ns >= 0 ? isolated_ns + kSettle.nanos()
                                         : obs.hot_start_ns + kIsolateBound.nanos();
  const int64_t end = obs.workload_end_ns;
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
  int64_t pause_max = 0, reversals = 0;
  for (const Cutover& c : obs.cutovers) {
    pause_max = std::max(pause_max, c.end_ns - c.fence_ns);
    reversals += c.switched ? 0 : 1;
  }
  const ShardingCounters& c = obs.counters;
  result->metrics["cutover_pause_ms"] = static_cast<double>(pause_max) / 1e6;
  result->metrics["cutovers"] = static_cast<double>(obs.cutovers.size());
  result->metrics["reversals"] = static_cast<double>(reversals);
  result->metrics["moves"] = static_cast<double>(c.moves_started);
  result->metrics["splits"] = static_cast<double>(c.splits);
  result->metrics["hot_key_reports"] = static_cast<double>(c.hot_key_reports);
  result->metrics["crashes_aimed"] = static_cast<double>(c.crashes_aimed);
  result->metrics["switched_tenants"] = static_cast<double>(obs.switches.size());
}

}  // namespace

void CheckSharding(const ShardingObservations& obs, RunResult* result) {
  CheckWrites(obs, result);
  CheckFencesAndRoutes(obs, result);
  CheckClients(obs, result);
  const int64_t isolated = CheckHotTenant(obs, result);
  CheckLoad(obs, isolated, result);
  ReportMoves(obs, result);
}

}  // namespace faultline::lab::sharding
