// Wing & Gong's search with Lowe's memo, and the minimisation of a failing partition; see
// linearizability_search.h.
#include "src/check/linearizability_search.h"

#include <algorithm>
#include <memory>
#include <cstdint>
#include <utility>
#include <vector>

#include "faultline/core/assert.h"

namespace faultline::check::internal {
namespace {

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

bool Step(const POp& op, int64_t state, int64_t& next, ValueTable& values) {
  switch (op.kind) {
    case OpKind::kAppend:
      next = values.Append(state, op.a);
      return next != ValueTable::kNoState;
    case OpKind::kRead: next = state; return state == op.a;
    case OpKind::kWrite: next = op.a; return true;
    case OpKind::kCas:
      if (state != op.a) return false;
      next = op.b;
      return true;
  }
  return false;
}

// Whether Minimize must keep ops[i]. An op that produces a value (write, cas) is kept while it is
// the only producer of a value some remaining read or cas consumes: otherwise the set degenerates
// into "a read of a value nobody wrote", which is 1-minimal but explains nothing.
bool IsSoleNeededProducer(const std::vector<POp>& ops, size_t i, int64_t initial_state) {
  const POp& p = ops[i];
  // An append's output depends on the state it extends: it is never a sole producer of a value.
  if (p.kind == OpKind::kRead || p.kind == OpKind::kAppend) return false;
  const int64_t v = p.kind == OpKind::kWrite ? p.a : p.b;
  if (v == initial_state) return false;
  bool consumed = false;
  for (size_t j = 0; j < ops.size(); ++j) {
    if (j == i) continue;
    const POp& q = ops[j];
    if (q.kind == OpKind::kAppend) continue;
    if (q.kind != OpKind::kRead && (q.kind == OpKind::kWrite ? q.a : q.b) == v) return false;
    if (q.kind != OpKind::kWrite && q.a == v) consumed = true;
  }
  return consumed;
}

// The call and return entries of a partition, sorted by time (calls before returns at equal
// times: equal timestamps are treated as concurrent, the permissive reading), as a doubly linked
// list from which a linearised call is lifted together with its return.
class CallList {
 public:
  struct Entry {
    int64_t time;
    bool is_call;
    uint32_t op;
  };

  explicit CallList(const std::vector<POp>& ops) {
    const size_t n = ops.size();
    entries_.reserve(2 * n);
    for (size_t i = 0; i < n; ++i) {
      entries_.push_back({ops[i].call_ns, true, static_cast<uint32_t>(i)});
      if (!ops[i].info) entries_.push_back({ops[i].return_ns, false, static_cast<uint32_t>(i)});
    }
    std::stable_sort(entries_.begin(), entries_.end(), [](const Entry& x, const Entry& y) {
      if (x.time != y.time) return x.time < y.time;
      return x.is_call && !y.is_call;
    });
    const size_t e_count = entries_.size();
    head_ = static_cast<int32_t>(e_count);
    next_.assign(e_count + 1, -1);
    prev_.assign(e_count + 1, -1);
    match_.assign(e_count, -1);
    std::vector<int32_t> call_of(n, -1);
    int32_t last = head_;
    for (size_t e = 0; e < e_count; ++e) {
      const int32_t ei = static_cast<int32_t>(e);
      next_[static_cast<size_t>(last)] = ei;
      prev_[e] = last;
      last = ei;
      if (entries_[e].is_call) {
        call_of[entries_[e].op] = ei;
      } else {
        match_[static_cast<size_t>(call_of[entries_[e].op])] = ei;
      }
    }
  }

  int32_t first() const { return next_[static_cast<size_t>(head_)]; }
  int32_t next(int32_t e) const { return next_[static_cast<size_t>(e)]; }
  const Entry& entry(int32_t e) const { return entries_[static_cast<size_t>(e)]; }

  // Removes a call and its return (if any) from the list; Unlift restores the last one lifted.
  void Lift(int32_t call) {
    Unlink(call);
    if (match_[static_cast<size_t>(call)] != -1) Unlink(match_[static_cast<size_t>(call)]);
  }
  void Unlift(int32_t call) {
    if (match_[static_cast<size_t>(call)] != -1) Relink(match_[static_cast<size_t>(call)]);
    Relink(call);
  }

 private:
  void Unlink(int32_t x) {
    const size_t xs = static_cast<size_t>(x);
    next_[static_cast<size_t>(prev_[xs])] = next_[xs];
    if (next_[xs] != -1) prev_[static_cast<size_t>(next_[xs])] = prev_[xs];
  }
  void Relink(int32_t x) {
    const size_t xs = static_cast<size_t>(x);
    next_[static_cast<size_t>(prev_[xs])] = x;
    if (next_[xs] != -1) prev_[static_cast<size_t>(next_[xs])] = x;
  }

  std::vector<Entry> entries_;
  int32_t head_ = 0;             // the list's sentinel: index entries_.size()
  std::vector<int32_t> next_;    // entry (or head) -> next entry, -1 at the end
  std::vector<int32_t> prev_;
  std::vector<int32_t> match_;   // call entry -> its return entry, -1 for an info op
};

// The set of linearised ops as a bitset, with its Zobrist hash (XOR of per-op keys) and the
// canonical bounds the memo stores it by: words [0, full) all ones, [end, words) all zero.
class LinearizedSet {
 public:
  explicit LinearizedSet(size_t n) : words_((n + 63) / 64), zobrist_(n), bits_(words_, 0) {
    for (size_t i = 0; i < n; ++i) zobrist_[i] = Mix64(0x5eed0000ULL + i);
  }

  // Adds `op` (absent) and offers the set with `state` to the memo. When the pair is new, keeps it
  // and returns true; otherwise takes `op` out again and returns false.
  bool AddIfNew(uint32_t op, int64_t state, Memo& memo) {
    const size_t w = op / 64;
    const uint64_t bit = uint64_t{1} << (op % 64);
    FL_ASSERT((bits_[w] & bit) == 0);
    bits_[w] |= bit;
    const size_t full_before = full_;
    const size_t end_before = end_;
    while (full_ < words_ && bits_[full_] == ~uint64_t{0}) ++full_;
    end_ = std::max({end_, w + 1, full_});
    const uint64_t h = hash_ ^ zobrist_[op];
    if (memo.Insert(bits_, full_, end_, h, state)) {
      hash_ = h;
      return true;
    }
    bits_[w] &= ~bit;
    full_ = full_before;
    end_ = end_before;
    return false;
  }

  // Takes out `op`, added by the last AddIfNew not yet undone.
  void Remove(uint32_t op) {
    const size_t w = op / 64;
    bits_[w] &= ~(uint64_t{1} << (op % 64));
    full_ = std::min(full_, w);
    while (end_ > full_ && bits_[end_ - 1] == 0) --end_;
    hash_ ^= zobrist_[op];
  }

 private:
  size_t words_;
  std::vector<uint64_t> zobrist_;
  std::vector<uint64_t> bits_;
  uint64_t hash_ = 0;
  size_t full_ = 0;
  size_t end_ = 0;
};

}  // namespace

struct Searcher::Impl {
  Impl(const std::vector<POp>& ops_in, int64_t initial_state, const SearchLimits& lim_in,
       ValueTable& values_in)
      : ops(ops_in), lim(lim_in), values(values_in), list(ops_in), linearized(ops_in.size()),
        state(initial_state), entry(list.first()) {
    for (const POp& op : ops) finite_remaining += op.info ? 0 : 1;
    stack.reserve(ops.size());
  }

  struct Frame {
    int32_t call;
    int64_t state;
  };

  const std::vector<POp>& ops;
  const SearchLimits lim;
  ValueTable& values;
  CallList list;
  LinearizedSet linearized;
  Memo memo;
  size_t finite_remaining = 0;
  std::vector<Frame> stack;
  int64_t state;
  int32_t entry;
  bool recorded = false;
  uint64_t iterations = 0;
  SearchOutcome out;
};

Searcher::Searcher(const std::vector<POp>& ops, int64_t initial_state, const SearchLimits& lim,
                   ValueTable& values)
    : impl_(std::make_unique<Impl>(ops, initial_state, lim, values)) {}

Searcher::~Searcher() = default;

// Wing & Gong's search with Lowe's memo: walk the list; linearise the first call whose step is
// legal and whose (set, state) is new, and restart from the head; at a return whose call is not
// linearised, everything before it has been tried, so backtrack.
bool Searcher::Run(uint64_t states_more) {
  Impl& s = *impl_;
  SearchOutcome& out = s.out;
  if (done_) return true;
  const uint64_t pause_at =
      states_more > UINT64_MAX - out.states_explored ? UINT64_MAX : out.states_explored + states_more;
  while (true) {
    if (s.finite_remaining == 0) {
      out.verdict = Verdict::kLinearizable;
      break;
    }
    if ((++s.iterations & 0x3ff) == 0 && s.lim.Expired()) {
      out.verdict = Verdict::kUnknown;
      break;
    }
    // A finite op not yet linearised keeps its return in the list, so the walk meets it first.
    FL_ASSERT(s.entry != -1);
    const CallList::Entry& en = s.list.entry(s.entry);
    if (en.is_call) {
      const POp& op = s.ops[en.op];
      int64_t next_state = 0;
      if (!Step(op, s.state, next_state, s.values) ||
          !s.linearized.AddIfNew(en.op, next_state, s.memo)) {
        s.entry = s.list.next(s.entry);
        continue;
      }
      ++out.states_explored;
      if (s.memo.size() >= s.lim.memo_entries_max || s.memo.bytes() >= s.lim.memo_bytes_max ||
          out.states_explored >= s.lim.states_max) {
        out.verdict = Verdict::kUnknown;
        break;
      }
      s.stack.push_back({s.entry, s.state});
      s.state = next_state;
      s.list.Lift(s.entry);
      if (!op.info) --s.finite_remaining;
      s.entry = s.list.first();
      if (out.states_explored >= pause_at) {
        out.memo_peak = s.memo.size();
        return false;
      }
      continue;
    }
    // A return whose call was not linearised: everything before it has been tried.
    if (!s.recorded || s.stack.size() > out.best_prefix.size()) {
      s.recorded = true;
      out.best_prefix.clear();
      for (const Impl::Frame& f : s.stack) out.best_prefix.push_back(s.list.entry(f.call).op);
      out.blocked = en.op;
    }
    if (s.stack.empty()) {
      out.verdict = Verdict::kNotLinearizable;
      break;
    }
    const Impl::Frame top = s.stack.back();
    s.stack.pop_back();
    const uint32_t top_op = s.list.entry(top.call).op;
    s.linearized.Remove(top_op);
    s.state = top.state;
    s.list.Unlift(top.call);
    if (!s.ops[top_op].info) ++s.finite_remaining;
    s.entry = s.list.next(top.call);
  }
  out.memo_peak = s.memo.size();
  done_ = true;
  return true;
}

const SearchOutcome& Searcher::outcome() const { return impl_->out; }

size_t Searcher::memo_bytes() const { return impl_->memo.bytes(); }

SearchOutcome Search(const std::vector<POp>& ops, int64_t initial_state, const SearchLimits& lim,
                     ValueTable& values) {
  Searcher searcher(ops, initial_state, lim, values);
  const bool done = searcher.Run(UINT64_MAX);
  FL_ASSERT(done);
  return searcher.outcome();
}

bool Minimize(std::vector<POp>& ops, int64_t initial_state, const SearchLimits& lim,
              ValueTable& values, uint64_t& states_used) {
  states_used = 0;
  for (size_t i = 0; i < ops.size();) {
    if (lim.Expired() || states_used >= lim.states_max) return false;
    if (IsSoleNeededProducer(ops, i, initial_state)) {
      ++i;
      continue;
    }
    std::vector<POp> without = ops;
    without.erase(without.begin() + static_cast<ptrdiff_t>(i));
    Verdict v = Verdict::kLinearizable;
    if (!without.empty()) {
      SearchLimits one = lim;
      one.states_max = lim.states_max - states_used;
      const SearchOutcome so = Search(without, initial_state, one, values);
      states_used += so.states_explored;
      v = so.verdict;
    }
    if (v == Verdict::kUnknown) return false;
    if (v == Verdict::kNotLinearizable) {
      ops = std::move(without);
    } else {
      ++i;
    }
  }
  return true;
}

}  // namespace faultline::check::internal
