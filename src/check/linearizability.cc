#include "faultline/check/linearizability.h"

#include "faultline/adapters/system_clock.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "faultline/core/assert.h"

namespace faultline::check {
namespace {

using nlohmann::json;
using SteadyTime = MonoTime;

enum class OpKind : uint8_t { kRead, kWrite, kCas };

// One paired operation inside a partition. Values are interned ids (see Interner).
struct POp {
  uint64_t index = 0;           // history index of the invocation
  size_t completion_pos = 0;    // position of the completion in the history (if !info)
  int64_t call_ns = 0;
  int64_t return_ns = 0;        // meaningless when info
  bool info = false;            // return time +inf
  OpKind kind = OpKind::kRead;
  int64_t a = 0;                // read: value read; write: value; cas: expected
  int64_t b = 0;                // cas: new
};

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

uint64_t Mix64(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Open-addressing set of (bitset of linearised ops, state). The bitset hash is maintained
// incrementally by the search (XOR of per-op keys, Zobrist style); equality is always confirmed
// on the bitset itself. A bitset is stored compressed, as the number of leading all-ones words
// plus the words after them up to the last non-zero one: ops are sorted by call time and mostly
// linearised in that order, so the set is a long run of ones and a short tail, and storing and
// comparing the tail alone keeps large partitions cheap.
class Memo {
 public:
  Memo() { slots_.assign(1024, 0); }

  // (bits, state), where words [0, full) of `bits` are all ones and [end, ...) all zero, both
  // canonical (full is the first word that is not all ones; end is one past the last non-zero
  // word, or full). Returns true when it was not present and has been added.
  bool Insert(const std::vector<uint64_t>& bits, size_t full, size_t end, uint64_t bits_hash,
              int64_t state) {
    if ((entries_.size() + 1) * 2 > slots_.size()) Grow();
    const uint64_t h = bits_hash ^ Mix64(static_cast<uint64_t>(state));
    const auto first = bits.begin() + static_cast<ptrdiff_t>(full);
    const auto last = bits.begin() + static_cast<ptrdiff_t>(end);
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const uint32_t slot = slots_[i];
      if (slot == 0) {
        slots_[i] = static_cast<uint32_t>(entries_.size() + 1);
        entries_.push_back({h, state, pool_.size(), static_cast<uint32_t>(full),
                            static_cast<uint32_t>(end - full)});
        pool_.insert(pool_.end(), first, last);
        return true;
      }
      const Entry& e = entries_[slot - 1];
      if (e.hash == h && e.state == state && e.full == full && e.len == end - full &&
          std::equal(first, last, pool_.begin() + static_cast<ptrdiff_t>(e.offset))) {
        return false;
      }
    }
  }
  size_t size() const { return entries_.size(); }
  size_t bytes() const {
    return pool_.size() * 8 + entries_.size() * sizeof(Entry) + slots_.size() * 4;
  }

 private:
  struct Entry {
    uint64_t hash;
    int64_t state;
    size_t offset;  // into pool_
    uint32_t full;
    uint32_t len;
  };

  void Grow() {
    std::vector<uint32_t> slots(slots_.size() * 2, 0);
    const size_t mask = slots.size() - 1;
    for (size_t e = 0; e < entries_.size(); ++e) {
      size_t i = entries_[e].hash & mask;
      while (slots[i] != 0) i = (i + 1) & mask;
      slots[i] = static_cast<uint32_t>(e + 1);
    }
    slots_ = std::move(slots);
  }

  std::vector<uint32_t> slots_;  // entry + 1, 0 = empty
  std::vector<Entry> entries_;
  std::vector<uint64_t> pool_;  // the stored tails, back to back
};

struct SearchLimits {
  Clock* clock = nullptr;
  SteadyTime deadline;
  size_t memo_entries_max = 0;
  size_t memo_bytes_max = 0;
};

struct SearchOutcome {
  Verdict verdict = Verdict::kUnknown;
  uint64_t states_explored = 0;
  size_t memo_peak = 0;
  std::vector<size_t> best_prefix;  // positions in the partition's op vector
  size_t blocked = 0;
};

bool Step(const POp& op, int64_t state, int64_t& next) {
  switch (op.kind) {
    case OpKind::kRead: next = state; return state == op.a;
    case OpKind::kWrite: next = op.a; return true;
    case OpKind::kCas:
      if (state != op.a) return false;
      next = op.b;
      return true;
  }
  return false;
}

// Wing & Gong's search with Lowe's memo over a doubly linked list of call/return entries.
// `ops` must be non-empty.
SearchOutcome Search(const std::vector<POp>& ops, int64_t initial_state, const SearchLimits& lim) {
  SearchOutcome out;
  const size_t n = ops.size();
  // Entries: call of op i, and its return unless info. Sorted by time, calls before returns at
  // equal times (equal timestamps are treated as concurrent, the permissive reading).
  struct Entry {
    int64_t time;
    bool is_call;
    uint32_t op;
  };
  std::vector<Entry> entries;
  entries.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    entries.push_back({ops[i].call_ns, true, static_cast<uint32_t>(i)});
    if (!ops[i].info) entries.push_back({ops[i].return_ns, false, static_cast<uint32_t>(i)});
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& x, const Entry& y) {
    if (x.time != y.time) return x.time < y.time;
    return x.is_call && !y.is_call;
  });
  const size_t e_count = entries.size();
  const int32_t head = static_cast<int32_t>(e_count);
  std::vector<int32_t> next(e_count + 1, -1);
  std::vector<int32_t> prev(e_count + 1, -1);
  std::vector<int32_t> match(e_count, -1);
  {
    std::vector<int32_t> call_of(n, -1);
    int32_t last = head;
    for (size_t e = 0; e < e_count; ++e) {
      const int32_t ei = static_cast<int32_t>(e);
      next[static_cast<size_t>(last)] = ei;
      prev[e] = last;
      last = ei;
      if (entries[e].is_call) {
        call_of[entries[e].op] = ei;
      } else {
        match[static_cast<size_t>(call_of[entries[e].op])] = ei;
      }
    }
  }
  auto unlink = [&](int32_t x) {
    const size_t xs = static_cast<size_t>(x);
    next[static_cast<size_t>(prev[xs])] = next[xs];
    if (next[xs] != -1) prev[static_cast<size_t>(next[xs])] = prev[xs];
  };
  auto relink = [&](int32_t x) {
    const size_t xs = static_cast<size_t>(x);
    next[static_cast<size_t>(prev[xs])] = x;
    if (next[xs] != -1) prev[static_cast<size_t>(next[xs])] = x;
  };
  auto lift = [&](int32_t call) {
    unlink(call);
    if (match[static_cast<size_t>(call)] != -1) unlink(match[static_cast<size_t>(call)]);
  };
  auto unlift = [&](int32_t call) {
    if (match[static_cast<size_t>(call)] != -1) relink(match[static_cast<size_t>(call)]);
    relink(call);
  };

  std::vector<uint64_t> zobrist(n);
  for (size_t i = 0; i < n; ++i) zobrist[i] = Mix64(0x5eed0000ULL + i);
  const size_t words = (n + 63) / 64;
  std::vector<uint64_t> bits(words, 0);
  uint64_t bits_hash = 0;
  Memo memo;
  // Canonical bounds of `bits` for the memo: [0, full) all ones, [end, words) all zero.
  size_t full = 0;
  size_t end = 0;

  size_t finite_remaining = 0;
  for (const POp& op : ops) finite_remaining += op.info ? 0 : 1;

  struct Frame {
    int32_t call;
    int64_t state;
  };
  std::vector<Frame> stack;
  stack.reserve(n);
  int64_t state = initial_state;
  int32_t entry = next[static_cast<size_t>(head)];
  bool recorded = false;
  uint64_t iterations = 0;

  while (true) {
    if (finite_remaining == 0) {
      out.verdict = Verdict::kLinearizable;
      break;
    }
    if ((++iterations & 0x3ff) == 0) {
      if (lim.clock->Now() >= lim.deadline) {
        out.verdict = Verdict::kUnknown;
        break;
      }
    }
    // A finite op not yet linearised keeps its return in the list, so the walk meets it first.
    FL_ASSERT(entry != -1);
    const Entry& en = entries[static_cast<size_t>(entry)];
    if (en.is_call) {
      const POp& op = ops[en.op];
      int64_t next_state = 0;
      if (Step(op, state, next_state)) {
        const size_t w = en.op / 64;
        const uint64_t bit = uint64_t{1} << (en.op % 64);
        FL_ASSERT((bits[w] & bit) == 0);
        bits[w] |= bit;
        const size_t full_before = full;
        const size_t end_before = end;
        while (full < words && bits[full] == ~uint64_t{0}) ++full;
        end = std::max({end, w + 1, full});
        const uint64_t h = bits_hash ^ zobrist[en.op];
        if (memo.Insert(bits, full, end, h, next_state)) {
          ++out.states_explored;
          if (memo.size() >= lim.memo_entries_max || memo.bytes() >= lim.memo_bytes_max) {
            out.verdict = Verdict::kUnknown;
            break;
          }
          stack.push_back({entry, state});
          state = next_state;
          bits_hash = h;
          lift(entry);
          if (!op.info) --finite_remaining;
          entry = next[static_cast<size_t>(head)];
          continue;
        }
        bits[w] &= ~bit;
        full = full_before;
        end = end_before;
      }
      entry = next[static_cast<size_t>(entry)];
      continue;
    }
    // A return whose call was not linearised: everything before it has been tried.
    if (!recorded || stack.size() > out.best_prefix.size()) {
      recorded = true;
      out.best_prefix.clear();
      for (const Frame& f : stack) out.best_prefix.push_back(entries[static_cast<size_t>(f.call)].op);
      out.blocked = en.op;
    }
    if (stack.empty()) {
      out.verdict = Verdict::kNotLinearizable;
      break;
    }
    const Frame top = stack.back();
    stack.pop_back();
    const uint32_t top_op = entries[static_cast<size_t>(top.call)].op;
    const size_t top_word = top_op / 64;
    bits[top_word] &= ~(uint64_t{1} << (top_op % 64));
    full = std::min(full, top_word);
    while (end > full && bits[end - 1] == 0) --end;
    bits_hash ^= zobrist[top_op];
    state = top.state;
    unlift(top.call);
    if (!ops[top_op].info) ++finite_remaining;
    entry = next[static_cast<size_t>(top.call)];
  }
  out.memo_peak = memo.size();
  return out;
}

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

Status OpError(const sim::HistoryOp& op, std::string_view why) {
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

// Pairs invocations with completions and splits the ops by key.
Extracted Extract(const sim::History& history, Model model, bool drop_unobserved_info,
                  Interner& interner) {
  Extracted out;
  const std::vector<sim::HistoryOp>& hops = history.ops();
  // Process ids are mapped to dense slots once; each slot holds its invocation in flight.
  constexpr size_t kIdle = SIZE_MAX;
  std::unordered_map<int64_t, size_t> slot_of;  // process -> slot
  std::vector<size_t> pending;                  // slot -> invocation position, or kIdle
  std::vector<std::pair<size_t, std::optional<size_t>>> pairs;  // invocation, completion
  pairs.reserve(hops.size() / 2 + 1);
  for (size_t i = 0; i < hops.size(); ++i) {
    const sim::HistoryOp& h = hops[i];
    auto [slot, added] = slot_of.try_emplace(h.process, pending.size());
    if (added) pending.push_back(kIdle);
    size_t& in_flight = pending[slot->second];
    if (h.type == sim::OpType::kInvoke) {
      if (in_flight != kIdle) {
        out.error = OpError(h, "invoked while the process has an operation in flight");
        return out;
      }
      in_flight = i;
      continue;
    }
    if (in_flight == kIdle) {
      out.error = OpError(h, "completion without an invocation");
      return out;
    }
    const size_t inv = in_flight;
    in_flight = kIdle;
    if (h.type == sim::OpType::kFail) continue;  // certainly did not take effect
    pairs.emplace_back(inv, h.type == sim::OpType::kOk ? std::optional<size_t>(i) : std::nullopt);
  }
  for (const size_t inv : pending) {
    if (inv != kIdle) pairs.emplace_back(inv, std::nullopt);
  }
  std::sort(pairs.begin(), pairs.end());

  ValueCache cache(interner);
  for (const auto& [inv, comp] : pairs) {
    const sim::HistoryOp& h = hops[inv];
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
    if (model == Model::kRegister) {
      if (op.kind == OpKind::kRead) {
        op.a = done != nullptr ? done->whole : cache.null_id();
      } else if (op.kind == OpKind::kWrite) {
        op.a = in.whole;
      } else {
        if (!in.is_pair) {
          out.error = OpError(h, "cas value must be [expected, new]");
          return out;
        }
        op.a = in.first;
        op.b = in.second;
      }
    } else {
      // A read's value comes from its completion; an info op has none (JSON null).
      const bool src_is_object = op.kind == OpKind::kRead
                                     ? (done != nullptr && done->is_object)
                                     : in.is_object;
      if (!in.is_object || !in.has_key || !src_is_object) {
        out.error = OpError(h, "kv value must be an object with \"key\"");
        return out;
      }
      key = in.key;
      if (op.kind == OpKind::kCas) {
        if (!in.has_from_to) {
          out.error = OpError(h, "kv cas value must have \"from\" and \"to\"");
          return out;
        }
        op.a = in.from;
        op.b = in.to;
      } else {
        op.a = op.kind == OpKind::kRead ? done->value : in.value;
      }
    }
    out.partitions[std::string(key)].ops.push_back(op);
    ++out.ops;
  }
  if (drop_unobserved_info) {
    for (auto& [key, partition] : out.partitions) out.ops -= DropUnobservedInfoWrites(&partition.ops);
  }
  return out;
}

std::string Describe(const sim::History& history, const POp& op) {
  const sim::HistoryOp& h = history.ops()[op.index];
  std::string s = "#" + std::to_string(op.index) + " p" + std::to_string(h.process) + " " + h.f +
                  " " + h.value;
  if (op.info) {
    s += " -> info";
  } else {
    s += " -> " + history.ops()[op.completion_pos].value;
  }
  return s;
}

// Greedily drops ops while the partition stays non-linearizable: the result is 1-minimal among
// sets in which every value consumed has a producer (see IsSoleNeededProducer).
// Returns false when the limits ran out first.
// An op that produces a value (write, cas) is kept while it is the only producer of a value some
// remaining read or cas consumes: otherwise the set degenerates into "a read of a value nobody
// wrote", which is 1-minimal but explains nothing.
bool IsSoleNeededProducer(const std::vector<POp>& ops, size_t i, int64_t initial_state) {
  const POp& p = ops[i];
  if (p.kind == OpKind::kRead) return false;
  const int64_t v = p.kind == OpKind::kWrite ? p.a : p.b;
  if (v == initial_state) return false;
  bool consumed = false;
  for (size_t j = 0; j < ops.size(); ++j) {
    if (j == i) continue;
    const POp& q = ops[j];
    if (q.kind != OpKind::kRead && (q.kind == OpKind::kWrite ? q.a : q.b) == v) return false;
    if (q.kind != OpKind::kWrite && q.a == v) consumed = true;
  }
  return consumed;
}

bool Minimize(std::vector<POp>& ops, int64_t initial_state, const SearchLimits& lim) {
  for (size_t i = 0; i < ops.size();) {
    if (lim.clock->Now() >= lim.deadline) return false;
    if (IsSoleNeededProducer(ops, i, initial_state)) {
      ++i;
      continue;
    }
    std::vector<POp> without = ops;
    without.erase(without.begin() + static_cast<ptrdiff_t>(i));
    const Verdict v = without.empty() ? Verdict::kLinearizable
                                      : Search(without, initial_state, lim).verdict;
    if (v == Verdict::kUnknown) return false;
    if (v == Verdict::kNotLinearizable) {
      ops = std::move(without);
    } else {
      ++i;
    }
  }
  return true;
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

LinearizabilityResult Check(const sim::History& history, Model model,
                            const CheckOptions& options) {
  Clock& clock = options.clock != nullptr ? *options.clock : SystemClock::Default();
  const SteadyTime start = clock.Now();
  LinearizabilityResult result;
  SearchLimits lim;
  lim.clock = &clock;
  const int64_t budget_ns = options.deadline.nanos();
  lim.deadline = options.deadline.is_infinite() || budget_ns > int64_t{1} << 62
                     ? SteadyTime::Max()
                     : start + Duration::Nanos(std::max<int64_t>(budget_ns, 0));
  lim.memo_entries_max = std::max<size_t>(options.memo_entries_max, 1);
  lim.memo_bytes_max = options.memo_bytes_max;

  auto finish = [&]() {
    result.stats.elapsed = clock.Now() - start;
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
    PartitionResult pr;
    pr.key = key;
    pr.ops = part.ops.size();
    SearchOutcome so = Search(part.ops, initial, lim);
    pr.verdict = so.verdict;
    pr.states_explored = so.states_explored;
    pr.memo_peak = so.memo_peak;
    result.stats.states_explored += so.states_explored;
    result.stats.memo_peak = std::max(result.stats.memo_peak, so.memo_peak);
    result.partitions.push_back(pr);
    if (so.verdict == Verdict::kUnknown) any_unknown = true;
    if (so.verdict != Verdict::kNotLinearizable || result.explanation.has_value()) continue;

    Explanation ex_out;
    ex_out.key = key;
    for (size_t p : so.best_prefix) ex_out.linearized_prefix.push_back(part.ops[p].index);
    ex_out.blocked_op = part.ops[so.blocked].index;
    std::vector<POp> minimal;
    if (options.minimize_ops_max > 0 && part.ops.size() <= options.minimize_ops_max) {
      minimal = part.ops;
      SearchLimits min_lim = lim;
      const SteadyTime now = clock.Now();
      const int64_t min_ns = std::clamp<int64_t>(options.minimize_budget.nanos(), 0, int64_t{1} << 50);
      min_lim.deadline = std::min(lim.deadline, now + Duration::Nanos(min_ns));
      ex_out.minimized = Minimize(minimal, initial, min_lim);
    }
    if (ex_out.minimized) {
      for (const POp& op : minimal) ex_out.minimal_ops.push_back(op.index);
    } else {
      ex_out.minimal_ops = ex_out.linearized_prefix;
      ex_out.minimal_ops.push_back(ex_out.blocked_op);
    }
    std::sort(ex_out.minimal_ops.begin(), ex_out.minimal_ops.end());

    std::string text = "key " + (key.empty() ? std::string("(register)") : key) +
                       ": longest linearisation [";
    for (size_t i = 0; i < so.best_prefix.size(); ++i) {
      if (i > 0) text += ", ";
      text += Describe(history, part.ops[so.best_prefix[i]]);
    }
    text += "], then cannot place " + Describe(history, part.ops[so.blocked]) + " before it returns";
    if (ex_out.minimized) {
      text += "; minimal non-linearizable set: {";
      for (size_t i = 0; i < minimal.size(); ++i) {
        if (i > 0) text += ", ";
        text += Describe(history, minimal[i]);
      }
      text += "}";
    }
    ex_out.text = std::move(text);
    result.explanation = std::move(ex_out);
  }
  if (result.explanation.has_value()) {
    result.verdict = Verdict::kNotLinearizable;
  } else {
    result.verdict = any_unknown ? Verdict::kUnknown : Verdict::kLinearizable;
  }
  return finish();
}

}  // namespace faultline::check
