#include "faultline/check/linearizability.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <deque>
#include <memory>
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
#include "src/check/linearizability_values.h"

namespace faultline::check {
namespace {

using internal::OpKind;
using internal::POp;
using internal::SearchLimits;
using internal::SearchOutcome;
using nlohmann::json;

using internal::Decoded;
using internal::ValueTable;

std::string Compact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

struct Partition {
  std::string key;
  std::vector<POp> ops;
};

struct Extracted {
  Status error;
  std::vector<Partition> partitions;  // sorted by key
  size_t ops = 0;
};

// An indeterminate (info) write or cas whose new value no operation ever observed — no ok read
// returned it and no cas expected it — can be dropped without changing the verdict: if a
// linearisation places it, no read or cas lies between it and the next write (each would have
// observed its value), so removing it leaves every other operation's result unchanged; and any
// linearisation without it is one the original allows (an info op may never take effect).
// Histories from faulty runs carry many such timed-out writes, and each doubles the states the
// search can reach. Returns the number dropped.
// An append consumes the state it extends, so a partition with appends keeps all its ops.
size_t DropUnobservedInfoWrites(std::vector<POp>* ops) {
  std::unordered_set<int64_t> observed;
  for (const POp& op : *ops) {
    if (op.kind == OpKind::kAppend) return 0;
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
                    const ValueTable& values, POp& op, std::string_view& key) {
  if (model == Model::kRegister) {
    if (op.kind == OpKind::kRead) {
      op.a = done != nullptr ? done->whole : ValueTable::kNull;
    } else if (op.kind == OpKind::kCas) {
      if (!in.is_pair) return OpError(h, "cas value must be [expected, new]");
      op.a = in.first;
      op.b = in.second;
    } else {
      op.a = in.whole;
      if (op.kind == OpKind::kAppend && !values.IsString(op.a)) {
        return OpError(h, "append value must be a JSON string");
      }
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
    if (op.kind == OpKind::kAppend && (!in.has_value || !values.IsString(op.a))) {
      return OpError(h, "kv append value must have \"value\", a JSON string");
    }
  }
  return Status::Ok();
}

bool ParseKind(std::string_view f, OpKind& kind) {
  if (f == "read") {
    kind = OpKind::kRead;
  } else if (f == "write") {
    kind = OpKind::kWrite;
  } else if (f == "cas") {
    kind = OpKind::kCas;
  } else if (f == "append") {
    kind = OpKind::kAppend;
  } else {
    return false;
  }
  return true;
}

// Groups ops by key text; partitions come out sorted by key.
class Partitioner {
 public:
  void Add(std::string_view key, const POp& op) {
    if (last_ == nullptr || last_key_ != key) {
      auto it = index_.find(key);
      if (it == index_.end()) {
        // The map keeps views of its own copies: `key` may point into a decoder's scratch.
        parts_.push_back(Partition{std::string(key), {}});
        it = index_.emplace(std::string_view(keys_.emplace_back(key)), parts_.size() - 1).first;
      }
      last_ = &parts_[it->second].ops;
      last_key_ = it->first;
    }
    last_->push_back(op);
  }
  std::vector<Partition> Take() {
    std::sort(parts_.begin(), parts_.end(),
              [](const Partition& a, const Partition& b) { return a.key < b.key; });
    return std::move(parts_);
  }

 private:
  std::vector<Partition> parts_;
  std::deque<std::string> keys_;
  std::unordered_map<std::string_view, size_t> index_;
  std::vector<POp>* last_ = nullptr;  // the partition of the previous op, a fast path
  std::string_view last_key_;
};

// Pairs invocations with completions and splits the ops by key.
Extracted Extract(const History& history, Model model, bool drop_unobserved_info,
                  ValueTable& values) {
  Extracted out;
  const std::vector<HistoryOp>& hops = history.ops();
  std::vector<OpPair> pairs;
  out.error = PairOps(hops, pairs);
  if (!out.error.ok()) return out;

  const bool whole = model == Model::kRegister;
  Decoded in;
  Decoded done;
  Partitioner partitioner;
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
    if (!ParseKind(h.f, op.kind)) {
      out.error = OpError(h, "unknown f \"" + h.f + "\" (expected read, write, cas or append)");
      return out;
    }
    if (op.kind == OpKind::kRead && op.info) continue;  // unknown output: constrains nothing
    // Only a read uses its completion's value, but every completion's must be valid JSON.
    const bool need_done = comp.has_value();
    if (!DecodeValue(h.value, whole && op.kind != OpKind::kRead, values, in) ||
        (need_done && !DecodeValue(hops[*comp].value, whole, values, done))) {
      out.error = OpError(h, "value is not valid JSON");
      return out;
    }
    std::string_view key;
    out.error = DecodeValues(h, model, in, need_done ? &done : nullptr, values, op, key);
    FL_ASSERT(key.empty() || model == Model::kKv);
    if (!out.error.ok()) return out;
    partitioner.Add(key, op);
    ++out.ops;
  }
  out.partitions = partitioner.Take();
  if (drop_unobserved_info) {
    for (Partition& p : out.partitions) out.ops -= DropUnobservedInfoWrites(&p.ops);
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

// Why partition `key` (whose search gave `so`, kNotLinearizable) fails; minimised, when asked
// and the partition is small enough, within options.minimize_budget and minimize_effort.
Explanation Explain(const History& history, const std::string& key, const std::vector<POp>& ops,
                    const SearchOutcome& so, int64_t initial, const SearchLimits& lim,
                    const CheckOptions& options, ValueTable& values) {
  Explanation ex;
  ex.key = key;
  for (size_t p : so.best_prefix) ex.linearized_prefix.push_back(ops[p].index);
  ex.blocked_op = ops[so.blocked].index;
  std::vector<POp> minimal;
  if (options.minimize && ops.size() <= options.minimize_ops_max) {
    minimal = ops;
    SearchLimits min_lim = lim;
    if (lim.clock != nullptr) {
      const MonoTime now = lim.clock->Now();
      const int64_t min_ns =
          std::clamp<int64_t>(options.minimize_budget.nanos(), 0, int64_t{1} << 50);
      min_lim.deadline = std::min(lim.deadline, now + Duration::Nanos(min_ns));
    }
    if (options.minimize_effort > 0) {
      const uint64_t cost = so.states_explored + ops.size();
      min_lim.states_max = cost > UINT64_MAX / options.minimize_effort
                               ? UINT64_MAX
                               : cost * options.minimize_effort;
    }
    uint64_t states_used = 0;
    ex.minimized = internal::Minimize(minimal, initial, min_lim, values, states_used);
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

// Searches the partitions interleaved: each undecided partition gets a slice of states, the
// slices doubling each round, so a cheap violation is found after at most about twice the work of
// the partitions that finish first, however hard the rest are. Slices count states, not time: the
// same history gives the same verdict and explanation on any machine. Fills result.partitions and
// the search stats; returns the failing partition to explain and its outcome, if any.
std::optional<std::pair<size_t, SearchOutcome>> SearchPartitions(
    const Extracted& ex, int64_t initial, const SearchLimits& lim, ValueTable& values,
    const CheckOptions& options, LinearizabilityResult& result, bool& any_unknown) {
  const size_t n = ex.partitions.size();
  std::vector<std::unique_ptr<internal::Searcher>> searchers(n);
  for (size_t i = 0; i < n; ++i) {
    searchers[i] =
        std::make_unique<internal::Searcher>(ex.partitions[i].ops, initial, lim, values);
  }
  result.partitions.resize(n);
  std::vector<bool> decided(n, false);
  size_t undecided = n;
  std::optional<std::pair<size_t, SearchOutcome>> failed;
  for (uint64_t slice = uint64_t{1} << 12; undecided > 0;
       slice = slice < (uint64_t{1} << 40) ? slice * 2 : slice) {
    for (size_t i = 0; i < n && undecided > 0; ++i) {
      if (decided[i] || !searchers[i]->Run(slice)) continue;
      decided[i] = true;
      --undecided;
      const SearchOutcome& so = searchers[i]->outcome();
      if (so.verdict == Verdict::kNotLinearizable && (!failed || i < failed->first)) {
        failed.emplace(i, so);
      }
      if (failed && !options.check_every_partition) break;
    }
    if (failed && !options.check_every_partition) break;
  }
  any_unknown = false;
  for (size_t i = 0; i < n; ++i) {
    const SearchOutcome& so = searchers[i]->outcome();
    PartitionResult& pr = result.partitions[i];
    pr.key = ex.partitions[i].key;
    pr.ops = ex.partitions[i].ops.size();
    pr.verdict = decided[i] ? so.verdict : Verdict::kUnknown;
    pr.abandoned = !decided[i];
    pr.states_explored = so.states_explored;
    pr.memo_peak = so.memo_peak;
    result.stats.states_explored += so.states_explored;
    result.stats.memo_peak = std::max(result.stats.memo_peak, so.memo_peak);
    if (pr.verdict == Verdict::kUnknown) any_unknown = true;
  }
  return failed;  // the searchers and their memos are freed before any minimisation
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

  ValueTable values;
  Extracted ex;
  int64_t initial = 0;
  try {
    json init = json::parse(options.initial_value_json, nullptr, false);
    if (init.is_discarded()) {
      result.error = InvalidArgumentError("initial_value_json is not valid JSON");
      return finish();
    }
    initial = values.Id(Compact(init));
    ex = Extract(history, model, options.drop_unobserved_info, values);
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
  const std::optional<std::pair<size_t, SearchOutcome>> failed =
      SearchPartitions(ex, initial, lim, values, options, result, any_unknown);
  if (failed) {
    const Partition& part = ex.partitions[failed->first];
    result.explanation =
        Explain(history, part.key, part.ops, failed->second, initial, lim, options, values);
  }
  if (result.explanation.has_value()) {
    result.verdict = Verdict::kNotLinearizable;
  } else {
    result.verdict = any_unknown ? Verdict::kUnknown : Verdict::kLinearizable;
  }
  return finish();
}

}  // namespace faultline::check
