#include "faultline/check/linearizability.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "faultline/core/assert.h"
#include "src/check/linearizability_search.h"

namespace faultline::check {
namespace {

using internal::OpKind;
using internal::POp;
using internal::SearchLimits;
using internal::SearchOutcome;
using nlohmann::json;

class Interner {
 public:
  int64_t Id(const std::string& text) {
    auto [it, inserted] = ids_.emplace(text, static_cast<int64_t>(ids_.size()));
    return it->second;
  }

 private:
  std::unordered_map<std::string, int64_t> ids_;
};

std::string Compact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

struct Partition {
  std::vector<POp> ops;
};

struct Extracted {
  Status error;
  std::map<std::string, Partition> partitions;
  size_t ops = 0;
};

// An indeterminate (info) write or cas whose new value no operation ever observed — no ok read
// returned it and no cas expected it — can be dropped without changing the verdict: if a
// linearisation places it, no read or cas lies between it and the next write (each would have
// observed its value), so removing it leaves every other operation's result unchanged; and any
// linearisation without it is one the original allows (an info op may never take effect).
// Histories from faulty runs carry many such timed-out writes, and each doubles the states the
// search can reach. Returns the number dropped.
size_t DropUnobservedInfoWrites(std::vector<POp>* ops) {
  std::unordered_set<int64_t> observed;
  for (const POp& op : *ops) {
    if (op.kind == OpKind::kRead) observed.insert(op.a);  // only ok reads are kept
    if (op.kind == OpKind::kCas) observed.insert(op.a);
  }
  const size_t before = ops->size();
  std::erase_if(*ops, [&observed](const POp& op) {
    if (!op.info) return false;
    if (op.kind == OpKind::kWrite) return observed.count(op.a) == 0;
    if (op.kind == OpKind::kCas) return observed.count(op.b) == 0;
    return false;
  });
  return before - ops->size();
}

Status OpError(const HistoryOp& op, std::string_view why) {
  return InvalidArgumentError("op " + std::to_string(op.index) + " (process " +
                              std::to_string(op.process) + "): " + std::string(why));
}

// One operation value, decoded once per distinct JSON text: histories repeat the same few
// texts thousands of times, and parsing them is most of the cost of a check otherwise.
struct Decoded {
  bool valid = false;
  bool is_object = false;
  bool has_key = false;
  bool has_from_to = false;
  bool is_pair = false;   // a two-element array (register cas)
  std::string key;        // kv: compact text of "key"
  int64_t whole = 0;      // register: the whole value
  int64_t value = 0;      // kv: "value" (absent: null)
  int64_t first = 0;      // register cas: [first, second]
  int64_t second = 0;
  int64_t from = 0;       // kv cas
  int64_t to = 0;
};

class ValueCache {
 public:
  explicit ValueCache(Interner& interner) : interner_(interner), null_id_(interner.Id("null")) {}

  // `text` must outlive the cache (it points into the history).
  const Decoded& Decode(std::string_view text) {
    auto [it, inserted] = cache_.try_emplace(text);
    if (!inserted) return it->second;
    Decoded& d = it->second;
    const json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return d;
    d.valid = true;
    d.whole = interner_.Id(Compact(j));
    if (j.is_array() && j.size() == 2) {
      d.is_pair = true;
      d.first = interner_.Id(Compact(j[0]));
      d.second = interner_.Id(Compact(j[1]));
    }
    if (!j.is_object()) return d;
    d.is_object = true;
    if (auto k = j.find("key"); k != j.end()) {
      d.has_key = true;
      d.key = Compact(*k);
    }
    auto v = j.find("value");
    d.value = v == j.end() ? null_id_ : interner_.Id(Compact(*v));
    auto from = j.find("from");
    auto to = j.find("to");
    if (from != j.end() && to != j.end()) {
      d.has_from_to = true;
      d.from = interner_.Id(Compact(*from));
      d.to = interner_.Id(Compact(*to));
    }
    return d;
  }
  int64_t null_id() const { return null_id_; }

 private:
  Interner& interner_;
  int64_t null_id_;
  std::unordered_map<std::string_view, Decoded> cache_;
};

// An invocation's position in the history and its completion's, none for an info op or one that
// never completed.
using OpPair = std::pair<size_t, std::optional<size_t>>;

// Pairs invocations with completions by process, in invocation order; fail ops are dropped.
Status PairOps(const std::vector<HistoryOp>& hops, std::vector<OpPair>& pairs) {
  // Process ids are mapped to dense slots once; each slot holds its invocation in flight.
  constexpr size_t kIdle = SIZE_MAX;
  std::unordered_map<int64_t, size_t> slot_of;  // process -> slot
  std::vector<size_t> pending;                  // slot -> invocation position, or kIdle
  pairs.reserve(hops.size() / 2 + 1);
  for (size_t i = 0; i < hops.size(); ++i) {
    const HistoryOp& h = hops[i];
    auto [slot, added] = slot_of.try_emplace(h.process, pending.size());
    if (added) pending.push_back(kIdle);
    size_t& in_flight = pending[slot->second];
    if (h.type == OpType::kInvoke) {
      if (in_flight != kIdle) {
        return OpError(h, "invoked while the process has an operation in flight");
      }
      in_flight = i;
      continue;
    }
    if (in_flight == kIdle) return OpError(h, "completion without an invocation");
    const size_t inv = in_flight;
    in_flight = kIdle;
    if (h.type == OpType::kFail) continue;  // certainly did not take effect
    pairs.emplace_back(inv, h.type == OpType::kOk ? std::optional<size_t>(i) : std::nullopt);
  }
  for (const size_t inv : pending) {
    if (inv != kIdle) pairs.emplace_back(inv, std::nullopt);
  }
  std::sort(pairs.begin(), pairs.end());
  return Status::Ok();
}

// Fills op.a/op.b (and `key`, for kKv) from the invocation's decoded value `in` and the
// completion's `done` (nullptr for an info op).
Status DecodeValues(const HistoryOp& h, Model model, const Decoded& in, const Decoded* done,
                    int64_t null_id, POp& op, std::string_view& key) {
  if (model == Model::kRegister) {
    if (op.kind == OpKind::kRead) {
      op.a = done != nullptr ? done->whole : null_id;
    } else if (op.kind == OpKind::kWrite) {
      op.a = in.whole;
    } else {
      if (!in.is_pair) return OpError(h, "cas value must be [expected, new]");
      op.a = in.first;
      op.b = in.second;
    }
    return Status::Ok();
  }
  // A read's value comes from its completion; an info op has none (JSON null).
  const bool src_is_object =
      op.kind == OpKind::kRead ? (done != nullptr && done->is_object) : in.is_object;
  if (!in.is_object || !in.has_key || !src_is_object) {
    return OpError(h, "kv value must be an object with \"key\"");
  }
  key = in.key;
  if (op.kind == OpKind::kCas) {
    if (!in.has_from_to) return OpError(h, "kv cas value must have \"from\" and \"to\"");
    op.a = in.from;
    op.b = in.to;
  } else {
    op.a = op.kind == OpKind::kRead ? done->value : in.value;
  }
  return Status::Ok();
}

// Pairs invocations with completions and splits the ops by key.
Extracted Extract(const History& history, Model model, bool drop_unobserved_info,
                  Interner& interner) {
  Extracted out;
  const std::vector<HistoryOp>& hops = history.ops();
  std::vector<OpPair> pairs;
  out.error = PairOps(hops, pairs);
  if (!out.error.ok()) return out;

  ValueCache cache(interner);
  for (const auto& [inv, comp] : pairs) {
    const HistoryOp& h = hops[inv];
    POp op;
    op.index = h.index;
    op.call_ns = h.time_ns;
    op.info = !comp.has_value();
    if (comp) {
      op.completion_pos = *comp;
      op.return_ns = hops[*comp].time_ns;
    }
    if (h.f == "read") {
      op.kind = OpKind::kRead;
    } else if (h.f == "write") {
      op.kind = OpKind::kWrite;
    } else if (h.f == "cas") {
      op.kind = OpKind::kCas;
    } else {
      out.error = OpError(h, "unknown f \"" + h.f + "\" (expected read, write or cas)");
      return out;
    }
    if (op.kind == OpKind::kRead && op.info) continue;  // unknown output: constrains nothing
    const Decoded& in = cache.Decode(h.value);
    const Decoded* done = comp ? &cache.Decode(hops[*comp].value) : nullptr;
    if (!in.valid || (done != nullptr && !done->valid)) {
      out.error = OpError(h, "value is not valid JSON");
      return out;
    }
    std::string_view key;
    out.error = DecodeValues(h, model, in, done, cache.null_id(), op, key);
    if (!out.error.ok()) return out;
    out.partitions[std::string(key)].ops.push_back(op);
    ++out.ops;
  }
  if (drop_unobserved_info) {
    for (auto& [key, partition] : out.partitions) out.ops -= DropUnobservedInfoWrites(&partition.ops);
  }
  return out;
}

std::string Describe(const History& history, const POp& op) {
  const HistoryOp& h = history.ops()[op.index];
  // Appended piecewise: GCC 12 misreports "literal" + std::string&& at -O3 (see sim/world.cc).
  std::string s = "#";
  s += std::to_string(op.index);
  s += " p";
  s += std::to_string(h.process);
  s += " " + h.f + " " + h.value;
  if (op.info) {
    s += " -> info";
  } else {
    s += " -> " + history.ops()[op.completion_pos].value;
  }
  return s;
}

// The explanation's text: the longest partial linearisation, the op that could not follow it,
// and the minimal set when there is one.
std::string RenderExplanation(const History& history, const std::string& key,
                              const std::vector<POp>& ops, const SearchOutcome& so,
                              const std::vector<POp>* minimal) {
  std::string text = "key " + (key.empty() ? std::string("(register)") : key) +
                     ": longest linearisation [";
  for (size_t i = 0; i < so.best_prefix.size(); ++i) {
    if (i > 0) text += ", ";
    text += Describe(history, ops[so.best_prefix[i]]);
  }
  text += "], then cannot place " + Describe(history, ops[so.blocked]) + " before it returns";
  if (minimal != nullptr) {
    text += "; minimal non-linearizable set: {";
    for (size_t i = 0; i < minimal->size(); ++i) {
      if (i > 0) text += ", ";
      text += Describe(history, (*minimal)[i]);
    }
    text += "}";
  }
  return text;
}

// Why partition `key` (whose search gave `so`, kNotLinearizable) fails, minimised within
// options.minimize_budget when it is small enough.
Explanation Explain(const History& history, const std::string& key, const std::vector<POp>& ops,
                    const SearchOutcome& so, int64_t initial, const SearchLimits& lim,
                    const CheckOptions& options) {
  Explanation ex;
  ex.key = key;
  for (size_t p : so.best_prefix) ex.linearized_prefix.push_back(ops[p].index);
  ex.blocked_op = ops[so.blocked].index;
  std::vector<POp> minimal;
  if (options.minimize_ops_max > 0 && ops.size() <= options.minimize_ops_max) {
    minimal = ops;
    SearchLimits min_lim = lim;
    if (lim.clock != nullptr) {
      const MonoTime now = lim.clock->Now();
      const int64_t min_ns =
          std::clamp<int64_t>(options.minimize_budget.nanos(), 0, int64_t{1} << 50);
      min_lim.deadline = std::min(lim.deadline, now + Duration::Nanos(min_ns));
    }
    ex.minimized = internal::Minimize(minimal, initial, min_lim);
  }
  if (ex.minimized) {
    for (const POp& op : minimal) ex.minimal_ops.push_back(op.index);
  } else {
    ex.minimal_ops = ex.linearized_prefix;
    ex.minimal_ops.push_back(ex.blocked_op);
  }
  std::sort(ex.minimal_ops.begin(), ex.minimal_ops.end());
  ex.text = RenderExplanation(history, key, ops, so, ex.minimized ? &minimal : nullptr);
  return ex;
}

}  // namespace

const char* VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kLinearizable: return "linearizable";
    case Verdict::kNotLinearizable: return "not linearizable";
    case Verdict::kUnknown: return "unknown";
  }
  return "?";
}

LinearizabilityResult Check(const History& history, Model model, const CheckOptions& options) {
  Clock* clock = options.clock;
  const MonoTime start = clock != nullptr ? clock->Now() : MonoTime::FromNanos(0);
  LinearizabilityResult result;
  SearchLimits lim;
  lim.clock = clock;
  const int64_t budget_ns = options.deadline.nanos();
  lim.deadline = options.deadline.is_infinite() || budget_ns > int64_t{1} << 62
                     ? MonoTime::Max()
                     : start + Duration::Nanos(std::max<int64_t>(budget_ns, 0));
  lim.memo_entries_max = std::max<size_t>(options.memo_entries_max, 1);
  lim.memo_bytes_max = options.memo_bytes_max;

  auto finish = [&]() {
    result.stats.elapsed = clock != nullptr ? clock->Now() - start : Duration::Zero();
    return result;
  };

  Interner interner;
  Extracted ex;
  int64_t initial = 0;
  try {
    json init = json::parse(options.initial_value_json, nullptr, false);
    if (init.is_discarded()) {
      result.error = InvalidArgumentError("initial_value_json is not valid JSON");
      return finish();
    }
    initial = interner.Id(Compact(init));
    ex = Extract(history, model, options.drop_unobserved_info, interner);
  } catch (const std::exception& e) {
    result.error = InvalidArgumentError(std::string("cannot read history: ") + e.what());
    return finish();
  }
  if (!ex.error.ok()) {
    result.error = ex.error;
    return finish();
  }
  result.stats.ops = ex.ops;
  result.stats.partitions = ex.partitions.size();

  bool any_unknown = false;
  for (auto& [key, part] : ex.partitions) {
    const SearchOutcome so = internal::Search(part.ops, initial, lim);
    PartitionResult pr;
    pr.key = key;
    pr.ops = part.ops.size();
    pr.verdict = so.verdict;
    pr.states_explored = so.states_explored;
    pr.memo_peak = so.memo_peak;
    result.stats.states_explored += so.states_explored;
    result.stats.memo_peak = std::max(result.stats.memo_peak, so.memo_peak);
    result.partitions.push_back(pr);
    if (so.verdict == Verdict::kUnknown) any_unknown = true;
    if (so.verdict != Verdict::kNotLinearizable || result.explanation.has_value()) continue;
    result.explanation = Explain(history, key, part.ops, so, initial, lim, options);
  }
  if (result.explanation.has_value()) {
    result.verdict = Verdict::kNotLinearizable;
  } else {
    result.verdict = any_unknown ? Verdict::kUnknown : Verdict::kLinearizable;
  }
  return finish();
}

}  // namespace faultline::check
