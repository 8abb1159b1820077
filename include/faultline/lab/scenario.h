// File: faultline/lab/scenario.h
//
// The scenario contract. A scenario replays one of the seven failures in the simulator against two
// or more variants of a design — `naive` and `hardened`, sometimes intermediate ones. One run of
// (scenario, variant, seed) builds a World from the seed, drives a workload under a nemesis, and
// hands the recorded history to checkers. It yields:
//   violations  safety checks that failed, by name, with counts (only non-zero entries)
//   metrics     named numbers (amplification factors, latencies, counts)
//   hash        the world's determinism hash: same seed, same hash, bit for bit
// Checkers judge the recorded history and final observations, never the variant's name.
//
// The lab passes when every hardened variant has zero violations on every seed, and every naive
// variant shows its failure on at least `failure_rate_min` of the seeds.
//
// Run() must be reentrant: the lab runs seeds concurrently, each in its own World.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/sim/world.h"

namespace faultline::lab {

struct VariantSpec {
  std::string name;
  // True: the design must hold (zero violations on every seed).
  bool hardened = false;
  // For a variant that is not hardened: the fraction of seeds on which it must show a violation.
  double failure_rate_min = 0.5;
  std::string description;
};

struct RunContext {
  uint64_t seed = 0;
  const VariantSpec* variant = nullptr;
  // Optional: receives every traced event (faultline replay --trace).
  sim::World::TraceSink trace;
  // Optional: receives the determinism hash after every event (--check-determinism).
  std::vector<uint64_t>* event_hashes = nullptr;
  // Optional: receives a copy of the recorded history.
  sim::History* history_out = nullptr;
  // Optional: a reduced run to replay (faultline shrink / replay --faults); see sim::RunPlan.
  sim::RunPlan* plan = nullptr;
  // Turns FL_BUGGIFY points on for the run (core/buggify.h).
  bool buggify = false;
};

// A fault as it was applied during a run, for the report's charts: `name` ("partition",
// "crash", "clock jump", ...), `target` ("n2", "halves", "all links", "" for the whole system),
// and its extent in simulated time since the run began. end_ns == start_ns: instantaneous.
struct FaultSpan {
  std::string name;
  std::string target;
  int64_t start_ns = 0;
  int64_t end_ns = 0;
};
// A time series for the report's charts, sampled in simulated time: (time_ns, value) pairs in
// ascending time, each value holding until the next point. Series that share a `unit` share a
// chart; unit "lane" draws each series as a row of on/off intervals (value > 0 is on).
struct Series {
  std::string name;
  std::string unit;
  std::vector<std::pair<int64_t, double>> points;
};
// One operation of a history drawn on the report's Porcupine-style timeline: a client process's
// call from invocation to return (end_ns == -1: it never returned).
struct TimelineOp {
  int64_t process = 0;
  std::string label;  // "write k1=5", "read k1 -> 3"
  int64_t start_ns = 0;
  int64_t end_ns = -1;
  bool blocked = false;  // the op no linearisation could place
};

struct RunResult {
  std::map<std::string, int64_t> violations;
  // For each violated check, the first instance in words: what was expected and what was seen,
  // e.g. "3700 ms > 2520 ms after the crash of n2 at 25.000 s". Empty when the checker gave none.
  std::map<std::string, std::string> violation_details;
  std::map<std::string, double> metrics;
  uint64_t hash = 0;
  uint64_t events = 0;
  Duration simulated;
  std::vector<FaultSpan> faults;  // every fault applied in the run, drawn and scenario-aimed
  std::vector<Series> series;     // time series for the report's charts
  // A non-linearizable run: the operations that cannot be ordered (the longest linearisation's
  // last ops and the op that could not follow them), for the report's timeline.
  std::vector<TimelineOp> unorderable;
  // Operations the workload started (World::AdmitOp); -1 when the scenario does not count them.
  int64_t ops = -1;
  // Hits per coverage probe and firings per BUGGIFY point (non-zero entries only).
  std::map<std::string, int64_t> probes;
  std::map<std::string, int64_t> buggify_fired;
  int64_t violation_count() const;
  // Adds `count` (> 0) to the named violation; zero counts are not recorded. `detail` describes
  // the instance (expected vs seen); the first non-empty detail per name is kept.
  void Violate(const std::string& name, int64_t count = 1, std::string_view detail = {});
};

class Scenario {
 public:
  virtual ~Scenario() = default;
  virtual std::string_view id() const = 0;
  virtual std::string_view description() const = 0;
  virtual std::vector<VariantSpec> variants() const = 0;
  // The metrics shown in the results table, in order (the JSON carries all of them).
  virtual std::vector<std::string> key_metrics() const = 0;
  // The coverage probes its code can reach, by module: a probe "m.x" counts for this scenario when
  // "m" is listed (core/buggify.h). Empty: every probe.
  virtual std::vector<std::string> probe_modules() const { return {}; }
  virtual RunResult Run(const RunContext& context) const = 0;
};

// Connects a run's observers (trace sink, per-event hashes) to `world`: call right after
// constructing it.
void ObserveRun(sim::World& world, const RunContext& context);
// Fills the result's hash, event count and simulated time, and copies the history out when the
// context asks for it: call after the checkers.
void FinishRun(const sim::World& world, const RunContext& context, RunResult* result);
// Appends one operation to the world's history at the current simulated time.
void RecordOp(sim::World& world, int64_t process, sim::OpType type, std::string_view f,
              std::string_view value_json);

// Runs one (scenario, variant, seed) of the built-in scenarios. kNotFound for an unknown scenario
// or variant.
Result<RunResult> RunOne(std::string_view scenario, std::string_view variant, uint64_t seed);

// Every built-in scenario, in presentation order.
const std::vector<const Scenario*>& AllScenarios();
// nullptr when unknown.
const Scenario* FindScenario(std::string_view id);
// nullptr when unknown.
const VariantSpec* FindVariant(const std::vector<VariantSpec>& variants, std::string_view name);

}  // namespace faultline::lab
