// File: faultline/check/linearizability.h
//
// A linearizability checker for register and key-value histories: Wing & Gong's search with
// Lowe's memoisation, as in Porcupine, with P-compositionality (each key checked on its own).
//
// Operations are paired invoke -> completion by process:
//   ok    the operation took effect, with the output recorded in the completion;
//   fail  it certainly did not take effect: it is dropped;
//   info  (or no completion at all) it may or may not have taken effect: its return time is +inf
//         and its output unknown. Such an op may be linearised anywhere after its invocation, or
//         never. A read with an unknown output constrains nothing and is dropped; so is an info
//         write (or cas) whose new value no read returned and no cas expected — placing it or
//         not cannot change the verdict, and each one would double the search space.
//
// Models (initial value of every register: CheckOptions::initial_value_json, null by default):
//   kRegister  one register. f="read": the completion's value is the value read (null = the
//              register was unset). f="write": value v. f="cas": value [expected, new]; an ok cas
//              succeeded, so it requires state == expected and sets new. f="append": value s, a
//              JSON string, appended to the register's string (see below).
//   kKv        one register per key. read/write/append: value {"key":k,"value":v} (the read's
//              value is taken from the completion); cas: {"key":k,"from":a,"to":b}.
// Append (Porcupine's kv model): the value must be a JSON string, and the register's new value is
// its string with that one concatenated; an unset register (null) counts as "". Appending to a
// register that holds a value other than a string or null is not a legal step, so no
// linearisation places an ok append there. Info appends are never dropped (a later read sees
// them in the concatenation).
// Values are compared by their compact JSON text (so 1 and 1.0 are different values).
//
// Cost: exponential in the worst case (it is NP-complete); bounded by the memo size and, when a
// clock is given, by CheckOptions::deadline, either of which yields kUnknown. Memory is about
// memo entries x (ops in the partition / 8 + 24) bytes.
//
// Dependencies: this module (faultline::check) links only faultline::core and nlohmann_json; it
// uses the header-only Clock interface of faultline/env/clock.h and never the simulator.
//
// Thread safety: Check is reentrant; it runs on the calling thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "faultline/check/history.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"

namespace faultline::check {

enum class Model : uint8_t { kRegister, kKv };

enum class Verdict : uint8_t {
  kLinearizable,
  kNotLinearizable,
  kUnknown,  // deadline, memo limit, or a malformed history (see LinearizabilityResult::error)
};
const char* VerdictName(Verdict verdict);

struct CheckOptions {
  // Budget for the whole check, measured on `clock`.
  Duration deadline = Duration::Seconds(60);
  // Time source for `deadline` and `minimize_budget`. nullptr (the default): no time budget at
  // all; both durations are ignored, only the memo limits below bound the work, and
  // CheckStats::elapsed is zero. For a wall-clock budget pass the process clock
  // (&SystemClock::Default() from faultline/adapters/system_clock.h); pass a ManualClock (or a
  // simulated node's clock) to make the verdict independent of how fast the machine is.
  Clock* clock = nullptr;
  // Memo entries per partition; reaching it gives kUnknown.
  size_t memo_entries_max = 4'000'000;
  // Memo bytes per partition (bitsets + bookkeeping); reaching it gives kUnknown.
  size_t memo_bytes_max = size_t{1} << 30;
  // Initial value of every register, as JSON text.
  std::string initial_value_json = "null";
  // Drop info writes/cas whose new value nobody observed before searching (verdict-preserving;
  // off only to test that claim).
  bool drop_unobserved_info = true;
  // After a violation, drop operations one at a time while the failing partition stays
  // non-linearizable, to report a 1-minimal failing set (Explanation::minimal_ops). Off by
  // default: the verdict, the longest partial linearisation and the operation that could not be
  // placed come from the check itself, while minimising runs up to one search per operation of
  // the partition and could cost hundreds of times the check.
  bool minimize = false;
  // Minimisation only for partitions with at most this many ops.
  size_t minimize_ops_max = 400;
  // Budget for the minimisation on `clock` (within `deadline`); on expiry the unminimised
  // explanation is reported.
  Duration minimize_budget = Duration::Seconds(1);
  // A second budget, proportional to the check's own cost and independent of the clock: the
  // minimisation's searches together may create at most minimize_effort x (states the check
  // explored + ops checked) memo states. 0: no such bound.
  uint64_t minimize_effort = 0;
  // Partitions (keys) are searched in interleaved slices of growing size, so that an easy
  // violation is found however hard the other keys are. By default the check stops at the first
  // partition found not linearizable (the others report kUnknown, `abandoned`); true searches
  // every partition to its verdict.
  bool check_every_partition = false;
};

struct PartitionResult {
  std::string key;  // compact JSON text of the key; "" for kRegister
  Verdict verdict = Verdict::kUnknown;
  // Operations checked: fail ops, info reads, and info writes/cas whose new value nobody observed
  // are dropped first (none of them can change the verdict).
  size_t ops = 0;
  uint64_t states_explored = 0;
  size_t memo_peak = 0;
  // Its search was stopped, undecided, because another partition was found not linearizable.
  bool abandoned = false;
};

// Why a partition is not linearizable. Op numbers are HistoryOp::index of the invocations.
struct Explanation {
  std::string key;
  // The longest linearisation found, in order, and the op that could not be placed after it
  // before its return (Porcupine's partial linearisation).
  std::vector<uint64_t> linearized_prefix;
  uint64_t blocked_op = 0;
  // A 1-minimal set of ops that cannot be linearised (removing any one of them makes the rest
  // linearizable, except a write/cas that is the only source of a value a kept read/cas needs),
  // sorted; when minimisation is off or ran out of time, the prefix plus the
  // blocked op.
  std::vector<uint64_t> minimal_ops;
  bool minimized = false;
  std::string text;  // human-readable rendering of the above
};

struct CheckStats {
  size_t ops = 0;  // paired operations considered, across partitions
  size_t partitions = 0;
  uint64_t states_explored = 0;
  size_t memo_peak = 0;  // largest memo of any partition
  Duration elapsed;
};

struct LinearizabilityResult {
  Verdict verdict = Verdict::kUnknown;
  // Not ok (kInvalidArgument) when the history is malformed: a completion without an invocation,
  // two invocations in flight on one process, an unknown f, a value of the wrong shape.
  Status error;
  std::vector<PartitionResult> partitions;  // sorted by key
  std::optional<Explanation> explanation;   // set iff verdict == kNotLinearizable
  CheckStats stats;
};

LinearizabilityResult Check(const History& history, Model model, const CheckOptions& options = {});

}  // namespace faultline::check
