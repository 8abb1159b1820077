// distributed-txn's checker: judges the typed observations alone (see txn_observations.h).
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "faultline/lab/scenario.h"
#include "src/lab/observations.h"
#include "src/lab/txn_observations.h"

namespace faultline::lab {
namespace {

std::string At(int64_t ns) { return FormatSeconds(ns) + " s"; }

// Conservation at every quiescent point: walk starts, ends and applied effects in time order
// (at one instant: starts, then effects, then ends); whenever no transfer is in flight the applied
// deltas must sum to zero. Then the final balances against the initial total.
void CheckConservation(const TxnObservations& obs, RunResult* result) {
  struct Point {
    int64_t time_ns;
    int order;  // 0 start, 1 effect, 2 end
    int64_t delta;
  };
  std::vector<Point> points;
  for (const TxnStart& s : obs.starts) points.push_back({s.time_ns, 0, 0});
  for (const TxnEffect& e : obs.effects) {
    if (e.applied) points.push_back({e.time_ns, 1, e.delta});
  }
  std::set<std::string> started;
  for (const TxnStart& s : obs.starts) started.insert(s.transfer);
  for (const TxnEnd& e : obs.ends) {
    if (started.count(e.transfer) != 0) points.push_back({e.time_ns, 2, 0});
  }
  std::stable_sort(points.begin(), points.end(), [](const Point& a, const Point& b) {
    return a.time_ns != b.time_ns ? a.time_ns < b.time_ns : a.order < b.order;
  });
  int64_t in_flight = 0, sum = 0, bad = 0, quiescent = 0;
  std::string detail;
  for (size_t i = 0; i < points.size(); ++i) {
    const Point& p = points[i];
    in_flight += p.order == 0 ? 1 : p.order == 2 ? -1 : 0;
    sum += p.delta;
    const bool last_at_instant = i + 1 == points.size() || points[i + 1].time_ns != p.time_ns;
    if (in_flight != 0 || !last_at_instant) continue;
    ++quiescent;
    if (sum == 0) continue;
    ++bad;
    if (detail.empty()) {
      detail = "at the quiescent point " + At(p.time_ns) + " the applied legs sum to " +
               std::to_string(sum) + ", expected 0";
    }
  }
  int64_t final_total = 0;
  for (const TxnBalances& b : obs.balances) final_total += b.total;
  if (!obs.balances.empty() && final_total != obs.initial_total) {
    ++bad;
    if (detail.empty()) {
      detail = "final balances sum to " + std::to_string(final_total) + ", expected " +
               std::to_string(obs.initial_total);
    }
  }
  result->Violate("money-not-conserved", bad, detail);
  result->metrics["quiescent_points"] = static_cast<double>(quiescent);
  result->metrics["money_drift"] = static_cast<double>(final_total - obs.initial_total);
}

void CheckAppliedTwice(const TxnObservations& obs, RunResult* result) {
  std::map<std::string, int64_t> applied, consumed;
  for (const TxnEffect& e : obs.effects) applied[e.id] += e.applied ? 1 : 0;
  for (const TxnConsumed& c : obs.consumed) consumed[c.event_id] += c.applied ? 1 : 0;
  int64_t extra = 0;
  std::string detail;
  for (const auto& [id, n] : applied) {
    if (n < 2) continue;
    extra += n - 1;
    if (detail.empty()) detail = "effect " + id + " applied " + std::to_string(n) + " times";
  }
  for (const auto& [id, n] : consumed) {
    if (n < 2) continue;
    extra += n - 1;
    if (detail.empty()) detail = "event " + id + " applied " + std::to_string(n) + " times";
  }
  result->Violate("applied-twice", extra, detail + (detail.empty() ? "" : ", expected once"));
  result->metrics["applied_twice"] = static_cast<double>(extra);
}

void CheckEvents(const TxnObservations& obs, RunResult* result) {
  std::map<std::string, const TxnEffect*> committed;
  for (const TxnEffect& e : obs.effects) committed.try_emplace(e.id, &e);
  std::map<std::string, const TxnConsumed*> seen;
  for (const TxnConsumed& c : obs.consumed) seen.try_emplace(c.event_id, &c);
  int64_t lost = 0, phantom = 0;
  std::string lost_detail, phantom_detail;
  for (const auto& [id, e] : committed) {
    if (seen.count(id) != 0) continue;
    ++lost;
    if (lost_detail.empty()) {
      lost_detail = "effect " + id + " committed on shard " + std::to_string(e->shard) + " at " +
                    At(e->time_ns) + ", its event never consumed";
    }
  }
  for (const auto& [id, c] : seen) {
    if (committed.count(id) != 0) continue;
    ++phantom;
    if (phantom_detail.empty()) {
      phantom_detail = "event " + id + " consumed at " + At(c->time_ns) +
                       ", but no shard committed that effect";
    }
  }
  result->Violate("lost-event", lost, lost_detail);
  result->Violate("phantom-event", phantom, phantom_detail);
  result->metrics["lost_events"] = static_cast<double>(lost);
  result->metrics["phantom_events"] = static_cast<double>(phantom);
  result->metrics["events_consumed"] = static_cast<double>(seen.size());
}

// Each ended transfer applied nothing, debit + credit, or debit + refund; a started transfer ends.
void CheckTransfers(const TxnObservations& obs, RunResult* result) {
  std::map<std::string, std::set<std::string>> legs;  // transfer -> applied leg kinds
  for (const TxnEffect& e : obs.effects) {
    if (e.applied) legs[e.transfer].insert(e.id.substr(e.id.find('/') + 1));
  }
  std::set<std::string> ended;
  for (const TxnEnd& e : obs.ends) ended.insert(e.transfer);
  int64_t stuck = 0, partial = 0, completed = 0, compensated = 0, refused = 0;
  std::string stuck_detail, partial_detail;
  for (const TxnStart& s : obs.starts) {
    if (ended.count(s.transfer) == 0) {
      ++stuck;
      if (stuck_detail.empty()) {
        stuck_detail = "transfer " + s.transfer + " started at " + At(s.time_ns) +
                       ", not ended by the end of the run";
      }
      continue;
    }
    const std::set<std::string>& l = legs[s.transfer];
    const bool debit = l.count("debit") != 0, credit = l.count("credit") != 0;
    const bool undone = debit == (l.count("refund") != 0) && credit == (l.count("uncredit") != 0);
    if (l.empty()) {
      ++refused;
    } else if (l == std::set<std::string>{"credit", "debit"}) {
      ++completed;
    } else if (debit && undone && l.size() <= 4) {
      ++compensated;
    } else {
      ++partial;
      if (partial_detail.empty()) {
        std::string got;
        for (const std::string& k : l) got += (got.empty() ? "" : "+") + k;
        partial_detail = "transfer " + s.transfer + " ended with " + got +
                         " applied, expected nothing, debit+credit, or every applied leg undone "
                         "(debit+refund, credit+uncredit)";
      }
    }
  }
  result->Violate("stuck-transfer", stuck, stuck_detail);
  result->Violate("partial-transfer", partial, partial_detail);
  int64_t undone_credits = 0, tombstones = 0;
  for (const TxnEffect& e : obs.effects) {
    const bool compensation = e.id.ends_with("/refund") || e.id.ends_with("/uncredit");
    undone_credits += e.applied && e.id.ends_with("/uncredit") ? 1 : 0;
    tombstones += compensation && !e.applied ? 1 : 0;
  }
  result->metrics["credits_undone"] = static_cast<double>(undone_credits);
  result->metrics["compensations_without_forward"] = static_cast<double>(tombstones);
  result->metrics["transfers"] = static_cast<double>(obs.starts.size());
  result->metrics["completed"] = static_cast<double>(completed);
  result->metrics["compensated"] = static_cast<double>(compensated);
  result->metrics["refused"] = static_cast<double>(refused);
  result->metrics["stuck"] = static_cast<double>(stuck);
}

double Percentile(std::vector<int64_t> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return static_cast<double>(v[std::min(i, v.size() - 1)]) / 1e6;
}

void CheckBlocking(const TxnObservations& obs, int64_t run_end_ns, RunResult* result) {
  std::vector<int64_t> held;
  int64_t blocked = 0, never = 0;
  std::set<std::string> blocked_transfers;
  std::string detail;
  for (const TxnLock& l : obs.locks) {
    const int64_t until = l.released_ns == kTxnNever ? run_end_ns : l.released_ns;
    const int64_t d = until - l.held_ns;
    held.push_back(d);
    never += l.released_ns == kTxnNever ? 1 : 0;
    if (d <= kBlockedBoundNs) continue;
    ++blocked;
    blocked_transfers.insert(l.transfer);
    if (detail.empty()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.0f ms", static_cast<double>(d) / 1e6);
      detail = "shard " + std::to_string(l.shard) + " held the lock on " + l.account + " for " +
               l.transfer + " in doubt from " + At(l.held_ns) + " for " + buf +
               (l.released_ns == kTxnNever ? " (never released)" : "") + ", bound " +
               std::to_string(kBlockedBoundNs / 1'000'000) + " ms";
    }
  }
  result->Violate("blocked-in-doubt", blocked, detail);
  result->metrics["in_doubt_locks"] = static_cast<double>(obs.locks.size());
  result->metrics["blocked_locks"] = static_cast<double>(blocked);
  result->metrics["blocked_transfers"] = static_cast<double>(blocked_transfers.size());
  result->metrics["locks_never_released"] = static_cast<double>(never);
  result->metrics["blocked_p50_ms"] = Percentile(held, 0.50);
  result->metrics["blocked_p99_ms"] = Percentile(held, 0.99);
  result->metrics["blocked_max_ms"] = Percentile(held, 1.0);
}

}  // namespace

void CheckDistributedTxn(const TxnObservations& obs, int64_t run_end_ns, RunResult* result) {
  CheckConservation(obs, result);
  CheckAppliedTwice(obs, result);
  CheckEvents(obs, result);
  CheckTransfers(obs, result);
  CheckBlocking(obs, run_end_ns, result);
  const TxnCounters& c = obs.counters;
  result->metrics["crashes_aimed"] = static_cast<double>(c.crashes_aimed);
  result->metrics["coordinator_crashes_after_prepare"] =
      static_cast<double>(c.coordinator_crashes_after_prepare);
  result->metrics["broker_restarts"] = static_cast<double>(std::max<int64_t>(0, c.broker_starts - 1));
  result->metrics["published"] = static_cast<double>(c.published);
  result->metrics["publish_duplicates"] = static_cast<double>(c.publish_duplicates);
  result->metrics["redeliveries"] = static_cast<double>(c.redeliveries);
  result->metrics["duplicate_deliveries"] = static_cast<double>(c.duplicate_deliveries);
  result->metrics["relay_republished"] = static_cast<double>(c.relay_republished);
  result->metrics["inbox_duplicates"] = static_cast<double>(c.inbox_duplicates);
  result->metrics["retries"] = static_cast<double>(c.retries);
  result->metrics["votes_no"] = static_cast<double>(c.votes_no);
}

}  // namespace faultline::lab
