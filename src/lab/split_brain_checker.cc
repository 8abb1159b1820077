// split-brain's checker: judges the run's typed record and the clients' history alone, never the
// design that produced them. One named check per property:
//
//   CheckStore      stale-write-accepted: the store accepted a write whose fencing token is below
//                   a token it had already seen (on an accepted write or a new leader's load): a
//                   deposed leader's write landed after its successor's.
//   CheckLeaders    two-leaders: a period in which two or more nodes could act as leader at the
//                   same true instant (from the probe's samples, taken every millisecond).
//   CheckHeal       no-leader-after-heal: no node could act within the recorded bound after the
//                   heal marker.
//   CheckFailover   no-failover / failover-over-bound: after the failover crash (the only leader
//                   crashed), no other node could act before the end, or only after the recorded
//                   bound.
//   CheckClients    non-linearizable: the clients' reads and writes (kv model) have no
//                   linearisation: some client saw a stale or lost value. linearizability-unknown:
//                   the checker hit its memo budget before deciding.
//
// Each violation carries its first instance in words: what was expected and what was seen.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "faultline/check/linearizability.h"
#include "faultline/env/clock.h"
#include "faultline/lab/scenario.h"
#include "src/lab/split_brain.h"

namespace faultline::lab::split_brain {
namespace {

// "12.345 s"
std::string At(int64_t time_ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f s", static_cast<double>(time_ns) / 1e9);
  return buf;
}

// "340 ms", or "340.5 ms" when not a whole number of milliseconds.
std::string Ms(int64_t ns) {
  if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + " ms";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f ms", static_cast<double>(ns) / 1e6);
  return buf;
}

// "n1", "n1 and n3", "n0, n1 and n4"
std::string NodeList(const std::vector<uint32_t>& nodes) {
  std::string s;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (i > 0) s += i + 1 == nodes.size() ? " and " : ", ";
    s += "n" + std::to_string(nodes[i]);
  }
  return s;
}

// The last instant the run recorded anything.
int64_t EndOf(const Record& record, const check::History& clients) {
  int64_t end_ns = 0;
  for (const check::HistoryOp& op : clients.ops()) end_ns = std::max(end_ns, op.time_ns);
  for (const Observation& o : record.observations) {
    end_ns = std::max(end_ns, std::visit([](const auto& x) { return x.time_ns; }, o));
  }
  return end_ns;
}

void CheckStore(const Record& record, RunResult* result) {
  uint64_t max_token = 0;
  const StoreOp* max_op = nullptr;  // the op that brought max_token
  int64_t stale_writes = 0, fenced_rejections = 0, store_writes = 0;
  std::string detail;
  for (const Observation& o : record.observations) {
    const StoreOp* op = std::get_if<StoreOp>(&o);
    if (op == nullptr) continue;
    if (!op->accepted) {
      ++fenced_rejections;
      continue;
    }
    if (!op->load) {
      ++store_writes;
      if (op->token < max_token && ++stale_writes == 1) {
        detail = "token " + std::to_string(op->token) + " of n" + std::to_string(op->node) +
                 " accepted at " + At(op->time_ns) + " (key " + std::to_string(op->key) +
                 ") after token " + std::to_string(max_token) + " (n" +
                 std::to_string(max_op->node) + "'s " + (max_op->load ? "load" : "write") +
                 " at " + At(max_op->time_ns) + ")";
      }
    }
    if (op->token > max_token) {
      max_token = op->token;
      max_op = op;
    }
  }
  result->Violate("stale-write-accepted", stale_writes, detail);
  result->metrics["stale_writes"] = static_cast<double>(stale_writes);
  result->metrics["store_writes"] = static_cast<double>(store_writes);
  result->metrics["fenced_rejections"] = static_cast<double>(fenced_rejections);
}

void CheckLeaders(const Record& record, int64_t end_ns, RunResult* result) {
  int64_t dual_since = -1;
  int64_t dual_ns = 0;
  int64_t dual_periods = 0;
  std::vector<uint32_t> first_nodes;
  int64_t first_since = -1;
  int64_t first_ns = -1;
  for (const Observation& o : record.observations) {
    const LeaderSample* sample = std::get_if<LeaderSample>(&o);
    if (sample == nullptr) continue;
    if (sample->nodes.size() >= 2 && dual_since < 0) {
      dual_since = sample->time_ns;
      if (++dual_periods == 1) {
        first_nodes = sample->nodes;
        first_since = sample->time_ns;
      }
    } else if (sample->nodes.size() < 2 && dual_since >= 0) {
      dual_ns += sample->time_ns - dual_since;
      if (dual_since == first_since) first_ns = sample->time_ns - dual_since;
      dual_since = -1;
    }
  }
  if (dual_since >= 0) {
    dual_ns += end_ns - dual_since;
    if (dual_since == first_since) first_ns = end_ns - dual_since;
  }
  std::string detail;
  if (dual_periods > 0) {
    detail = NodeList(first_nodes) + " all able to act at " + At(first_since) + " for " +
             Ms(first_ns) + " (expected at most one)";
  }
  result->Violate("two-leaders", dual_periods, detail);
  result->metrics["dual_leader_ms"] = static_cast<double>(dual_ns) / 1e6;
  result->metrics["dual_leader_periods"] = static_cast<double>(dual_periods);
}

void CheckHeal(const Record& record, int64_t end_ns, RunResult* result) {
  size_t acting = 0;
  std::optional<int64_t> heal_at, recovered_at;
  Duration bound;
  for (const Observation& o : record.observations) {
    if (const LeaderSample* sample = std::get_if<LeaderSample>(&o)) {
      acting = sample->nodes.size();
      if (heal_at && !recovered_at && acting > 0) recovered_at = sample->time_ns;
    } else if (const NemesisMark* mark = std::get_if<NemesisMark>(&o)) {
      if (mark->kind != NemesisMark::Kind::kHeal) continue;
      heal_at = mark->time_ns;
      bound = mark->bound;
      if (acting > 0) recovered_at = mark->time_ns;
    }
  }
  if (!heal_at) return;
  if (!recovered_at) {
    result->Violate("no-leader-after-heal", 1,
                    "no node able to act between the heal at " + At(*heal_at) + " and the end at " +
                        At(end_ns) + " (expected one within " + Ms(bound.nanos()) + ")");
    return;
  }
  const int64_t took = *recovered_at - *heal_at;
  if (took > bound.nanos()) {
    result->Violate("no-leader-after-heal", 1,
                    Ms(took) + " > " + Ms(bound.nanos()) + " after the heal at " + At(*heal_at));
  }
  result->metrics["recovery_ms"] = static_cast<double>(took) / 1e6;
}

void CheckFailover(const Record& record, int64_t end_ns, RunResult* result) {
  std::optional<int64_t> crash_at, failed_over_at;
  uint32_t crashed = 0, successor = 0;
  Duration bound;
  for (const Observation& o : record.observations) {
    if (const LeaderSample* sample = std::get_if<LeaderSample>(&o)) {
      if (!crash_at || failed_over_at) continue;
      for (uint32_t n : sample->nodes) {
        if (n == crashed) continue;
        failed_over_at = sample->time_ns;
        successor = n;
      }
    } else if (const NemesisMark* mark = std::get_if<NemesisMark>(&o)) {
      if (mark->kind != NemesisMark::Kind::kFailoverCrash) continue;
      crash_at = mark->time_ns;
      crashed = mark->node;
      bound = mark->bound;
    }
  }
  if (!crash_at) return;
  const std::string crash = "the crash of n" + std::to_string(crashed) + " at " + At(*crash_at);
  if (!failed_over_at) {
    result->Violate("no-failover", 1,
                    "no other node able to act between " + crash + " and the end at " +
                        At(end_ns) + " (expected one within " + Ms(bound.nanos()) + ")");
    return;
  }
  const int64_t took = *failed_over_at - *crash_at;
  result->metrics["failover_ms"] = static_cast<double>(took) / 1e6;
  if (took > bound.nanos()) {
    result->Violate("failover-over-bound", 1,
                    Ms(took) + " > " + Ms(bound.nanos()) + " after " + crash + " (n" +
                        std::to_string(successor) + " able to act at " + At(*failed_over_at) +
                        ")");
  }
}

// "process 7's write {"key":1,"value":42} invoked at 12.345 s, returned ok {...} at 12.400 s"
std::string DescribeOp(const check::History& clients, uint64_t index) {
  const std::vector<check::HistoryOp>& ops = clients.ops();
  auto it = std::find_if(ops.begin(), ops.end(),
                         [index](const check::HistoryOp& op) { return op.index == index; });
  if (it == ops.end()) return "op " + std::to_string(index);
  std::string s = "process " + std::to_string(it->process) + "'s " + it->f + " " + it->value +
                  " invoked at " + At(it->time_ns);
  for (auto done = it + 1; done != ops.end(); ++done) {
    if (done->process != it->process) continue;
    s += ", returned " + std::string(check::OpTypeName(done->type)) + " " + done->value + " at " +
         At(done->time_ns);
    break;
  }
  return s;
}

// The ops of a linearizability explanation for the report's timeline: the last ops of the longest
// linearisation found and the op that could not follow them, each from invocation to return.
std::vector<TimelineOp> Unorderable(const check::History& clients,
                                    const check::Explanation& explanation) {
  constexpr size_t kPrefixShown = 10;
  std::vector<uint64_t> shown;
  const std::vector<uint64_t>& prefix = explanation.linearized_prefix;
  const size_t from = prefix.size() > kPrefixShown ? prefix.size() - kPrefixShown : 0;
  shown.assign(prefix.begin() + static_cast<std::ptrdiff_t>(from), prefix.end());
  shown.push_back(explanation.blocked_op);
  const std::vector<check::HistoryOp>& ops = clients.ops();
  std::vector<TimelineOp> out;
  for (uint64_t index : shown) {
    auto it = std::find_if(ops.begin(), ops.end(),
                           [index](const check::HistoryOp& op) { return op.index == index; });
    if (it == ops.end()) continue;
    TimelineOp t;
    t.process = it->process;
    t.start_ns = it->time_ns;
    t.label = it->f + " " + it->value;
    t.blocked = index == explanation.blocked_op;
    for (auto done = it + 1; done != ops.end(); ++done) {
      if (done->process != it->process) continue;
      if (done->type == check::OpType::kOk || done->type == check::OpType::kFail) {
        t.end_ns = done->time_ns;
      }
      if (it->f == "read") t.label += " -> " + done->value;
      if (done->type != check::OpType::kOk)
        t.label += " (" + std::string(check::OpTypeName(done->type)) + ")";
      break;
    }
    out.push_back(std::move(t));
  }
  return out;
}

void CheckClients(const check::History& clients, RunResult* result) {
  int64_t client_ok = 0, client_info = 0;
  for (const check::HistoryOp& op : clients.ops()) {
    if (op.type == check::OpType::kOk) ++client_ok;
    if (op.type == check::OpType::kInfo) ++client_info;
  }
  result->metrics["client_ok_ops"] = static_cast<double>(client_ok);
  result->metrics["client_info_ops"] = static_cast<double>(client_info);

  // The budget is a memo size, never wall time, so the verdict is the same on every machine.
  ManualClock frozen;
  check::CheckOptions options;
  options.clock = &frozen;
  options.memo_entries_max = 2'000'000;
  options.minimize_ops_max = 0;
  const check::LinearizabilityResult lin = check::Check(clients, check::Model::kKv, options);
  if (!lin.error.ok()) {
    result->Violate("malformed-client-history", 1, lin.error.ToString());
  } else if (lin.verdict == check::Verdict::kNotLinearizable) {
    std::string detail = "no linearisation";
    if (lin.explanation) {
      detail = "key " + lin.explanation->key + ": " +
               DescribeOp(clients, lin.explanation->blocked_op) +
               ", cannot be placed after the longest linearisation found (" +
               std::to_string(lin.explanation->linearized_prefix.size()) + " ops)";
      result->unorderable = Unorderable(clients, *lin.explanation);
    }
    result->Violate("non-linearizable", 1, detail);
  } else if (lin.verdict == check::Verdict::kUnknown) {
    result->Violate("linearizability-unknown", 1,
                    "undecided within the memo budget of " +
                        std::to_string(options.memo_entries_max) + " entries");
  }
  result->metrics["linearizable"] = lin.verdict == check::Verdict::kLinearizable ? 1.0 : 0.0;
}

}  // namespace

void Check(const Record& record, const check::History& clients, RunResult* result) {
  const int64_t end_ns = EndOf(record, clients);
  CheckStore(record, result);
  CheckLeaders(record, end_ns, result);
  CheckHeal(record, end_ns, result);
  CheckFailover(record, end_ns, result);
  CheckClients(clients, result);
}

}  // namespace faultline::lab::split_brain
