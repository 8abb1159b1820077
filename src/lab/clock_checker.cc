// The clock-ordering checker: causality, lost updates (by kind), external consistency and replica
// divergence, judged from the typed observations alone (see clock_check.h for the properties).
// Each property is one named step below; each counts its violations and describes the first.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "faultline/time/hlc.h"
#include "faultline/lab/scenario.h"
#include "src/lab/chart_data.h"
#include "src/lab/clock_check.h"

namespace faultline::lab {
namespace {

// The total order of acknowledged writes: timestamp, then the acknowledging replica.
struct Stamp {
  uint64_t ts = 0;
  uint64_t node = 0;
  friend bool operator<(const Stamp& a, const Stamp& b) {
    return a.ts != b.ts ? a.ts < b.ts : a.node < b.node;
  }
};

Stamp StampOf(const ClockWrite& w) { return Stamp{w.ts, w.node}; }
bool Acked(const ClockWrite& w) { return w.outcome == Outcome::kOk; }

using WritesById = std::map<uint64_t, const ClockWrite*>;

// A violation's count and the words for its first instance.
struct Finding {
  int64_t count = 0;
  std::string first;
  std::vector<int64_t> at_ns;  // when each instance happened, where known (for the report)
  void Add(const std::string& detail) {
    if (count++ == 0) first = detail;
  }
  void Add(const std::string& detail, int64_t at) {
    Add(detail);
    at_ns.push_back(at);
  }
};

// "ts 12.004500" (seconds since the origin), with "+c" for a non-zero logical counter.
std::string Ts(uint64_t raw, int64_t origin_us) {
  const HlcTimestamp ts = HlcTimestamp::FromRaw(raw);
  std::string s =
      "ts " + FormatSeconds((static_cast<int64_t>(ts.physical_us()) - origin_us) * 1000);
  if (ts.logical() != 0) s += "+" + std::to_string(ts.logical());
  return s;
}

// "w17 (n2, ts 12.004500)"
std::string Describe(const ClockWrite& w, int64_t origin_us) {
  return "w" + std::to_string(w.id) + " (n" + std::to_string(w.node) + ", " + Ts(w.ts, origin_us) +
         ")";
}

// Bitset over write ids: the transitive causal past of one write.
using Past = std::vector<uint64_t>;
bool Has(const Past& p, uint64_t id) { return id / 64 < p.size() && (p[id / 64] >> (id % 64)) & 1; }
void Set(Past& p, uint64_t id) {
  if (id / 64 >= p.size()) p.resize(id / 64 + 1, 0);
  p[id / 64] |= uint64_t{1} << (id % 64);
}
void Or(Past& into, const Past& from) {
  if (from.size() > into.size()) into.resize(from.size(), 0);
  for (size_t i = 0; i < from.size(); ++i) into[i] |= from[i];
}

// Causality: every acknowledged dependency must be ordered before its acknowledged effect.
Finding CheckCausality(const WritesById& writes, int64_t origin_us) {
  Finding f;
  for (const auto& [id, w] : writes) {
    if (!Acked(*w)) continue;
    for (uint64_t d : w->deps) {
      auto it = writes.find(d);
      if (it == writes.end() || !Acked(*it->second) || StampOf(*it->second) < StampOf(*w)) continue;
      f.Add("write " + Describe(*w, origin_us) + " not above its cause " +
                Describe(*it->second, origin_us),
            w->end_ns);
    }
  }
  return f;
}

// Transitive causal pasts, in id order (a dependency always has a smaller id).
std::map<uint64_t, Past> CausalPasts(const WritesById& writes) {
  std::map<uint64_t, Past> past;
  for (const auto& [id, w] : writes) {
    Past p;
    for (uint64_t d : w->deps) {
      FL_ASSERT(d < id);
      Set(p, d);
      if (auto it = past.find(d); it != past.end()) Or(p, it->second);
    }
    past.emplace(id, std::move(p));
  }
  return past;
}

enum class Loss { kNone, kEarlierWon, kConcurrent, kVanished };

// Finds the writes lost where they should be visible: in their read-back and in the final values.
class LossFinder {
 public:
  LossFinder(const WritesById& writes, int64_t origin_us)
      : writes_(writes), past_(CausalPasts(writes)), origin_us_(origin_us) {}

  // The read-back of write `read.after` at the replica that acknowledged it.
  void ReadBack(const ClockRead& read) {
    Judge(read.after, read.ids, "read back there as " + FormatIds(read.ids));
  }

  // The union of the replicas' final values of `key` against every acknowledged write of it.
  void Final(uint64_t key, const std::vector<uint64_t>& survivors) {
    for (const auto& [id, w] : writes_) {
      if (!Acked(*w) || w->key != key) continue;
      Judge(id, survivors, "missing from the final values " + FormatIds(survivors));
    }
  }

  void Report(RunResult* result) const {
    Finding earlier;
    Finding concurrent;
    Finding vanished;
    for (const auto& [id, loss] : lost_) {
      Finding& f = loss.kind == Loss::kEarlierWon   ? earlier
                   : loss.kind == Loss::kConcurrent ? concurrent
                                                    : vanished;
      f.Add(loss.detail);
    }
    result->Violate("lost-update", earlier.count, earlier.first);
    result->Violate("concurrent-write-lost", concurrent.count, concurrent.first);
    result->Violate("write-vanished", vanished.count, vanished.first);
    result->metrics["lost_updates"] = static_cast<double>(earlier.count);
    result->metrics["concurrent_writes_lost"] = static_cast<double>(concurrent.count);
  }

 private:
  struct Lost {
    Loss kind;
    std::string detail;
  };

  // Nothing if a value in `seen` is w or saw w; else which kind of loss.
  Loss Classify(uint64_t w, const std::vector<uint64_t>& seen) const {
    if (std::find(seen.begin(), seen.end(), w) != seen.end()) return Loss::kNone;
    for (uint64_t r : seen) {
      if (auto it = past_.find(r); it != past_.end() && Has(it->second, w)) return Loss::kNone;
    }
    if (seen.empty()) return Loss::kVanished;
    auto it = past_.find(w);
    for (uint64_t r : seen) {
      if (it == past_.end() || !Has(it->second, r)) return Loss::kConcurrent;
    }
    return Loss::kEarlierWon;
  }

  // Records w's first loss only.
  void Judge(uint64_t w, const std::vector<uint64_t>& seen, const std::string& where) {
    const Loss kind = Classify(w, seen);
    if (kind == Loss::kNone || lost_.count(w) != 0) return;
    std::string detail = "write w" + std::to_string(w);
    if (auto it = writes_.find(w); it != writes_.end() && Acked(*it->second)) {
      detail += " (key " + std::to_string(it->second->key) + ", acked by n" +
                std::to_string(it->second->node) + " at " + FormatSeconds(it->second->end_ns) +
                " s, " + Ts(it->second->ts, origin_us_) + ")";
    }
    detail += " " + where;
    if (kind == Loss::kEarlierWon) detail += ", all in its causal past";
    if (kind == Loss::kConcurrent) detail += ", some concurrent with it";
    lost_.emplace(w, Lost{kind, std::move(detail)});
  }

  const WritesById& writes_;
  const std::map<uint64_t, Past> past_;
  const int64_t origin_us_;
  std::map<uint64_t, Lost> lost_;  // by write id
};

// Divergence: per key, each replica whose final values differ from the first replica's. Feeds the
// union of the final values to `losses`.
Finding CheckFinals(const std::vector<ClockFinal>& finals, LossFinder& losses) {
  std::map<uint64_t, std::map<uint32_t, std::set<uint64_t>>> by_key;  // key -> node -> ids
  for (const ClockFinal& f : finals) by_key[f.key][f.node] = {f.ids.begin(), f.ids.end()};
  Finding diverged;
  for (const auto& [key, by_node] : by_key) {
    std::set<uint64_t> survivors;
    const auto& [first_node, first_ids] = *by_node.begin();
    for (const auto& [node, ids] : by_node) {
      if (ids != first_ids) {
        diverged.Add("key " + std::to_string(key) + ": n" + std::to_string(node) + " ended with " +
                     FormatIds({ids.begin(), ids.end()}) + ", n" + std::to_string(first_node) +
                     " with " + FormatIds({first_ids.begin(), first_ids.end()}));
      }
      survivors.insert(ids.begin(), ids.end());
    }
    losses.Final(key, std::vector<uint64_t>(survivors.begin(), survivors.end()));
  }
  return diverged;
}

// External consistency: sweeps invocations in time order against the largest stamp acknowledged
// strictly before each.
Finding CheckExternalConsistency(const WritesById& writes, int64_t origin_us) {
  struct Event {
    int64_t t;
    int kind;  // 0 = invoke, 1 = ack. At equal times invokes sort first: an ack at the same
               // instant is not "before" the invocation.
    const ClockWrite* w;
  };
  std::vector<Event> events;
  for (const auto& [id, w] : writes) {
    if (!Acked(*w)) continue;
    events.push_back({w->invoke_ns, 0, w});
    events.push_back({w->end_ns, 1, w});
  }
  std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return a.t != b.t ? a.t < b.t : a.kind < b.kind;
  });
  Finding f;
  const ClockWrite* max_acked = nullptr;
  for (const Event& e : events) {
    if (e.kind == 1) {
      if (max_acked == nullptr || StampOf(*max_acked) < StampOf(*e.w)) max_acked = e.w;
    } else if (max_acked != nullptr && !(StampOf(*max_acked) < StampOf(*e.w))) {
      f.Add("write " + Describe(*e.w, origin_us) + ", invoked at " + FormatSeconds(e.w->invoke_ns) +
            " s, not above " + Describe(*max_acked, origin_us) + ", acked at " +
            FormatSeconds(max_acked->end_ns) + " s");
    }
  }
  return f;
}

}  // namespace

void CheckClockHistory(const ClockObservations& observations, RunResult* result) {
  const int64_t origin_us = observations.ts_origin_us;
  WritesById writes;
  for (const ClockWrite& w : observations.writes) {
    FL_ASSERT(w.id > 0);
    FL_ASSERT(writes.emplace(w.id, &w).second);
  }
  const Finding causality = CheckCausality(writes, origin_us);
  LossFinder losses(writes, origin_us);
  for (const ClockRead& read : observations.reads) {
    if (read.after != 0) losses.ReadBack(read);
  }
  const Finding diverged = CheckFinals(observations.finals, losses);
  const Finding external = CheckExternalConsistency(writes, origin_us);

  result->Violate("causality-violation", causality.count, causality.first);
  losses.Report(result);
  result->Violate("external-consistency-violation", external.count, external.first);
  result->Violate("replicas-diverged", diverged.count, diverged.first);
  int64_t acked = 0;
  for (const ClockWrite& w : observations.writes) acked += Acked(w) ? 1 : 0;
  result->metrics["writes_acked"] = static_cast<double>(acked);
  result->metrics["causality_violations"] = static_cast<double>(causality.count);
  result->metrics["external_consistency_violations"] = static_cast<double>(external.count);
  int64_t end_ns = 0;
  for (const ClockFinal& f : observations.finals) end_ns = std::max(end_ns, f.time_ns);
  result->series.push_back(CumulativeSeries("causality violations (acknowledged)", "violations",
                                            causality.at_ns, end_ns));
}

check::History ClockHistory(const ClockObservations& observations) {
  HistoryExport out;
  for (const ClockWrite& w : observations.writes) {
    const std::string base = "{\"id\":" + std::to_string(w.id) +
                             ",\"key\":" + std::to_string(w.key) + ",\"deps\":" + IdsJson(w.deps);
    out.Add(w.process, check::OpType::kInvoke, "write", base + "}", w.invoke_ns);
    const std::string stamp = w.outcome == Outcome::kOk ? ",\"ts\":" + std::to_string(w.ts) +
                                                              ",\"node\":" + std::to_string(w.node)
                                                        : std::string();
    out.End(w.process, w.outcome, "write", base + stamp + "}", w.end_ns);
  }
  for (const ClockRead& r : observations.reads) {
    std::string k = "{\"key\":" + std::to_string(r.key);
    if (r.after != 0) k += ",\"after\":" + std::to_string(r.after);
    out.Add(r.process, check::OpType::kInvoke, "read", k + "}", r.time_ns);
    out.Add(r.process, check::OpType::kOk, "read", k + ",\"ids\":" + IdsJson(r.ids) + "}", r.time_ns);
  }
  for (const ClockFinal& f : observations.finals) {
    const std::string v =
        "{\"node\":" + std::to_string(f.node) + ",\"key\":" + std::to_string(f.key);
    out.Add(2000 + f.node, check::OpType::kInvoke, "final", v + "}", f.time_ns);
    out.Add(2000 + f.node, check::OpType::kOk, "final", v + ",\"ids\":" + IdsJson(f.ids) + "}",
            f.time_ns);
  }
  return out.Build();
}

}  // namespace faultline::lab
