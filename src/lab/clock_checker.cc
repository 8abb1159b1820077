// The clock-ordering checker. It reads only the history (JSON values of write, read and final
// operations) and judges three properties:
//
//   causality          a write that depends on another (its client had read it) must carry a
//                      larger timestamp: (ts, node) of the effect > (ts, node) of the cause.
//   no lost updates    an acknowledged write W must be visible where it was acknowledged: the
//                      read-back right after the ack (a read with "after": W) must return W or a
//                      value whose causal past contains W. And after the replicas converge, W must
//                      be a surviving value or in the causal past of one. Otherwise W was lost: to
//                      a causally earlier write ("lost-update", the LWW-under-skew bug), to a
//                      concurrent one ("concurrent-write-lost", what siblings prevent), or to
//                      nothing at all ("write-vanished"). Each write is counted once.
//   external           a write invoked after another was acknowledged (in true time) must carry a
//   consistency        larger timestamp (what commit-wait buys).
// Replicas whose final values differ are reported as "replicas-diverged".
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

struct Stamp {
  uint64_t ts = 0;
  uint64_t node = 0;
  friend bool operator<(const Stamp& a, const Stamp& b) {
    return a.ts != b.ts ? a.ts < b.ts : a.node < b.node;
  }
};

struct Write {
  uint64_t key = 0;
  std::vector<uint64_t> deps;
  bool acked = false;
  Stamp stamp;
  int64_t invoke_ns = 0;
  int64_t ack_ns = 0;
};

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

}  // namespace

void CheckClockHistory(const sim::History& history, RunResult* result) {
  std::map<uint64_t, Write> writes;  // by id; ids grow with invoke time
  std::map<uint64_t, std::map<uint64_t, std::set<uint64_t>>> finals;  // key -> node -> ids
  std::vector<std::pair<uint64_t, std::vector<uint64_t>>> read_backs;   // (write id, ids read)
  for (const sim::HistoryOp& op : history.ops()) {
    const nlohmann::json v = nlohmann::json::parse(op.value, nullptr, false);
    FL_ASSERT_MSG(!v.is_discarded(), "history value is not JSON");
    if (op.f == "write") {
      Write& w = writes[v.at("id").get<uint64_t>()];
      if (op.type == sim::OpType::kInvoke) {
        w.key = v.at("key").get<uint64_t>();
        w.deps = v.at("deps").get<std::vector<uint64_t>>();
        w.invoke_ns = op.time_ns;
      } else if (op.type == sim::OpType::kOk) {
        w.acked = true;
        w.stamp = Stamp{v.at("ts").get<uint64_t>(), v.at("node").get<uint64_t>()};
        w.ack_ns = op.time_ns;
      }
    } else if (op.f == "read" && op.type == sim::OpType::kOk && v.contains("after")) {
      read_backs.emplace_back(v.at("after").get<uint64_t>(),
                              v.at("ids").get<std::vector<uint64_t>>());
    } else if (op.f == "final" && op.type == sim::OpType::kOk) {
      auto ids = v.at("ids").get<std::vector<uint64_t>>();
      finals[v.at("key").get<uint64_t>()][v.at("node").get<uint64_t>()] =
          std::set<uint64_t>(ids.begin(), ids.end());
    }
  }

  // Causality: every dependency with a known stamp must be ordered before its effect.
  int64_t causality = 0;
  for (const auto& [id, w] : writes) {
    if (!w.acked) continue;
    for (uint64_t d : w.deps) {
      auto it = writes.find(d);
      if (it != writes.end() && it->second.acked && !(it->second.stamp < w.stamp)) ++causality;
    }
  }

  // Transitive causal pasts, in id order (a dependency always has a smaller id).
  std::map<uint64_t, Past> past;
  for (const auto& [id, w] : writes) {
    Past p;
    for (uint64_t d : w.deps) {
      FL_ASSERT(d < id);
      Set(p, d);
      if (auto it = past.find(d); it != past.end()) Or(p, it->second);
    }
    past.emplace(id, std::move(p));
  }

  // Classifies a write W missing from `seen` (what a read returned): nothing if a returned value
  // saw W, else which kind of loss.
  enum class Loss { kNone, kEarlierWon, kConcurrent, kVanished };
  auto classify = [&past](uint64_t w, const std::vector<uint64_t>& seen) {
    if (std::find(seen.begin(), seen.end(), w) != seen.end()) return Loss::kNone;
    for (uint64_t r : seen) {
      if (auto it = past.find(r); it != past.end() && Has(it->second, w)) return Loss::kNone;
    }
    if (seen.empty()) return Loss::kVanished;
    const Past& pw = past[w];
    for (uint64_t r : seen) {
      if (!Has(pw, r)) return Loss::kConcurrent;
    }
    return Loss::kEarlierWon;
  };
  std::map<uint64_t, Loss> lost;  // each write counted once, by its first detection
  for (const auto& [w, seen] : read_backs) {
    const Loss l = classify(w, seen);
    if (l != Loss::kNone) lost.emplace(w, l);
  }

  int64_t diverged = 0;
  for (const auto& [key, by_node] : finals) {
    std::set<uint64_t> survivors;
    for (const auto& [node, ids] : by_node) {
      if (ids != by_node.begin()->second) ++diverged;
      survivors.insert(ids.begin(), ids.end());
    }
    const std::vector<uint64_t> seen(survivors.begin(), survivors.end());
    for (const auto& [id, w] : writes) {
      if (!w.acked || w.key != key) continue;
      const Loss l = classify(id, seen);
      if (l != Loss::kNone) lost.emplace(id, l);
    }
  }
  int64_t lost_update = 0;
  int64_t concurrent_lost = 0;
  int64_t vanished = 0;
  for (const auto& [id, l] : lost) {
    lost_update += l == Loss::kEarlierWon ? 1 : 0;
    concurrent_lost += l == Loss::kConcurrent ? 1 : 0;
    vanished += l == Loss::kVanished ? 1 : 0;
  }

  // External consistency: sweep invocations in time order against the largest stamp acknowledged
  // strictly before each.
  struct Event {
    int64_t t;
    int kind;  // 0 = invoke, 1 = ack. At equal times invokes sort first: an ack at the same
               // instant is not "before" the invocation.
    uint64_t id;
  };
  std::vector<Event> events;
  for (const auto& [id, w] : writes) {
    if (!w.acked) continue;
    events.push_back({w.invoke_ns, 0, id});
    events.push_back({w.ack_ns, 1, id});
  }
  std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return a.t != b.t ? a.t < b.t : a.kind < b.kind;
  });
  int64_t external = 0;
  bool any_acked = false;
  Stamp max_acked;
  for (const Event& e : events) {
    const Write& w = writes[e.id];
    if (e.kind == 1) {
      if (!any_acked || max_acked < w.stamp) max_acked = w.stamp;
      any_acked = true;
    } else if (any_acked && !(max_acked < w.stamp)) {
      ++external;
    }
  }

  result->Violate("causality-violation", causality);
  result->Violate("lost-update", lost_update);
  result->Violate("concurrent-write-lost", concurrent_lost);
  result->Violate("write-vanished", vanished);
  result->Violate("external-consistency-violation", external);
  result->Violate("replicas-diverged", diverged);
  int64_t acked = 0;
  for (const auto& [id, w] : writes) acked += w.acked ? 1 : 0;
  result->metrics["writes_acked"] = static_cast<double>(acked);
  result->metrics["causality_violations"] = static_cast<double>(causality);
  result->metrics["lost_updates"] = static_cast<double>(lost_update);
  result->metrics["concurrent_writes_lost"] = static_cast<double>(concurrent_lost);
  result->metrics["external_consistency_violations"] = static_cast<double>(external);
}

}  // namespace faultline::lab
