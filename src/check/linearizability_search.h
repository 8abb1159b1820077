// The search half of faultline/check/linearizability.h, private to the checker: Wing & Gong's
// search with Lowe's memo over one partition's paired operations, and the greedy minimisation of
// a failing partition. linearizability.cc turns a History into these POps and the results back
// into the public LinearizabilityResult.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "faultline/check/linearizability.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"
#include "src/check/linearizability_values.h"

namespace faultline::check::internal {

enum class OpKind : uint8_t { kRead, kWrite, kCas, kAppend };

// One paired operation inside a partition. Values are interned ids (see Interner).
struct POp {
  uint64_t index = 0;           // history index of the invocation
  size_t completion_pos = 0;    // position of the completion in the history (if !info)
  int64_t call_ns = 0;
  int64_t return_ns = 0;        // meaningless when info
  bool info = false;            // return time +inf
  OpKind kind = OpKind::kRead;
  int64_t a = 0;                // read: value read; write: value; cas: expected; append: suffix
  int64_t b = 0;                // cas: new
};

struct SearchLimits {
  // nullptr: no time budget (`deadline` is ignored); only the memo limits bound the search.
  Clock* clock = nullptr;
  MonoTime deadline;
  size_t memo_entries_max = 0;
  size_t memo_bytes_max = 0;
  // States one Search may explore (memo entries created) before it gives up with kUnknown.
  uint64_t states_max = UINT64_MAX;

  bool Expired() const { return clock != nullptr && clock->Now() >= deadline; }
};

struct SearchOutcome {
  Verdict verdict = Verdict::kUnknown;
  uint64_t states_explored = 0;
  size_t memo_peak = 0;
  std::vector<size_t> best_prefix;  // positions in the partition's op vector
  size_t blocked = 0;
};

// The search below as a resumable object, so that a check can interleave the searches of its
// partitions and stop at the first violation, however hard the other partitions are.
// `ops`, `lim` and `values` must outlive it.
class Searcher {
 public:
  Searcher(const std::vector<POp>& ops, int64_t initial_state, const SearchLimits& lim,
           ValueTable& values);
  ~Searcher();
  Searcher(const Searcher&) = delete;
  Searcher& operator=(const Searcher&) = delete;

  // Searches on until a verdict or until `states_more` more states have been explored. Returns
  // true when decided (outcome() is final; further calls do nothing), false when paused.
  bool Run(uint64_t states_more);
  const SearchOutcome& outcome() const;
  size_t memo_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool done_ = false;
};

// Decides whether `ops` (non-empty) has a linearisation from `initial_state`. kUnknown when a
// limit ran out. On kNotLinearizable, best_prefix/blocked describe the longest partial
// linearisation found.
// `values` interns the states an append creates.
SearchOutcome Search(const std::vector<POp>& ops, int64_t initial_state, const SearchLimits& lim,
                     ValueTable& values);

// Greedily drops ops while the partition stays non-linearizable: the result is 1-minimal among
// sets in which every value consumed has a producer. Returns false when the limits ran out first
// (then `ops` is some non-linearizable subset of the input); lim.states_max bounds the states of
// all its searches together. `states_used` receives the states they explored.
bool Minimize(std::vector<POp>& ops, int64_t initial_state, const SearchLimits& lim,
              ValueTable& values, uint64_t& states_used);

}  // namespace faultline::check::internal
