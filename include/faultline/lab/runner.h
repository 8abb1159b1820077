// File: faultline/lab/runner.h
//
// The multi-seed runner: runs (scenario, variant) pairs over many seeds in parallel, optionally
// runs every seed twice to check determinism, and aggregates each pair's runs into the summary
// and verdict the lab prints. It works with any Scenario, built-in or your own:
//
//   lab::RunSpec spec{&my_scenario, my_scenario.variants()[0], lab::SeedRange(1, 100)};
//   lab::RunnerOptions options;
//   options.check_determinism = true;
//   const lab::RunnerReport report = lab::RunSeeds({spec}, options);
//   for (const auto& d : report.divergences) std::puts(d.Describe().c_str());
//   EXPECT_TRUE(report.ok());
//
// Soak() does the same in batches of fresh consecutive seeds until a wall-time budget is spent.
//
// Threads: a simulation (one World) stays on one thread; the runner's worker threads each take
// whole runs. Scenario::Run must therefore be reentrant (see scenario.h). The progress callback
// is called from worker threads, one call at a time.
//
// Verdicts (Summarize): a hardened variant "holds" with zero violations on every seed, else it is
// "VIOLATED". A baseline variant with failure_rate_min p "fails as expected" when it failed on at
// least a fraction p of the seeds (and on at least one). When it did not, the verdict depends on
// whether the sample could show the rate: with fewer than MinSeedsToJudge(p) seeds it is
// "inconclusive" (does not fail the lab), otherwise "DID NOT FAIL". MinSeedsToJudge(p) is the
// smallest n with (1 - p)^n <= 5%: below it, a design that fails on exactly a fraction p of
// seeds shows no failure at all with probability above 5%, so the sample cannot tell even
// whether the failure occurs, let alone at which rate. (p = 0.5 needs 5 seeds; p = 0.2 needs 14.)
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/lab/scenario.h"

namespace faultline::lab {

struct MetricStats {
  double mean = 0;
  double min = 0;
  double max = 0;
  double p50 = 0;
};

enum class Verdict : uint8_t {
  kHolds,            // hardened, zero violations
  kViolated,         // hardened, some violation
  kFailsAsExpected,  // baseline, failed on at least failure_rate_min of the seeds
  kDidNotFail,       // baseline, failed on fewer, and the sample was large enough to judge
  kInconclusive,     // baseline, failed on fewer, but too few seeds to judge the rate
};
// "holds", "VIOLATED", "fails as expected", "DID NOT FAIL", "inconclusive".
const char* VerdictName(Verdict verdict);

// The first instance of one violated check: the lowest seed on which it occurred and that run's
// detail ("expected vs seen"; empty when the checker gave none).
struct ViolationInstance {
  uint64_t seed = 0;
  std::string detail;
};

struct VariantSummary {
  std::string scenario;
  std::string variant;
  bool hardened = false;
  double failure_rate_min = 0;
  uint64_t seeds = 0;
  int64_t violations = 0;  // total over all seeds
  std::map<std::string, int64_t> violations_by_name;
  // For each violated check, its first instance (lowest seed).
  std::map<std::string, ViolationInstance> first_violations;
  std::vector<uint64_t> failing_seeds;  // ascending
  std::map<std::string, MetricStats> metrics;
  // Coverage probe hits and BUGGIFY firings, summed over the seeds (non-zero entries only).
  std::map<std::string, int64_t> probes;
  std::map<std::string, int64_t> buggify_fired;
  uint64_t events = 0;
  Duration simulated;
  // Filled by the runner: CPU time (CLOCK_THREAD_CPUTIME_ID) of the runs counted above, of the
  // determinism-check reruns, and the wall time those runs took (summed over runs, not elapsed).
  double cpu_seconds = 0;
  double rerun_cpu_seconds = 0;
  double wall_seconds = 0;
  // True: the variant demonstrated its contract ("holds" or "fails as expected").
  bool passed = false;
  Verdict verdict_code = Verdict::kDidNotFail;
  std::string verdict;  // VerdictName(verdict_code)
  // One line saying why, for every verdict other than "holds" (empty for "holds").
  std::string reason;
  // True when this variant makes the lab fail: "VIOLATED" or "DID NOT FAIL".
  bool fails_lab() const {
    return verdict_code == Verdict::kViolated || verdict_code == Verdict::kDidNotFail;
  }
};

// The fewest seeds on which a failure rate of `failure_rate_min` can be judged (see the header
// comment). 1 for a rate >= 0.95 or <= 0 (the latter still needs one failing seed to pass).
uint64_t MinSeedsToJudge(double failure_rate_min);

// Accumulates runs of one (scenario, variant), in any order, into its summary.
class SummaryBuilder {
 public:
  SummaryBuilder(const Scenario& scenario, const VariantSpec& variant);
  void Add(uint64_t seed, const RunResult& result);
  void AddTime(double cpu_seconds, double rerun_cpu_seconds, double wall_seconds);
  VariantSummary Build() const;

 private:
  VariantSummary base_;
  std::map<std::string, std::vector<double>> samples_;
};

// `results[i]` is the run of `seeds[i]`.
VariantSummary Summarize(const Scenario& scenario, const VariantSpec& variant,
                         const std::vector<uint64_t>& seeds, const std::vector<RunResult>& results);

// Seeds first .. first + count - 1. Requires first + count - 1 <= UINT64_MAX.
std::vector<uint64_t> SeedRange(uint64_t first, uint64_t count);

struct RunSpec {
  const Scenario* scenario = nullptr;
  VariantSpec variant;
  std::vector<uint64_t> seeds;
  // Turns FL_BUGGIFY points on in every run (core/buggify.h).
  bool buggify = false;
};

struct RunnerProgress {
  uint64_t done = 0;   // runs finished (determinism reruns are not counted)
  uint64_t total = 0;  // runs to do
  std::string_view scenario;
  std::string_view variant;
  uint64_t seed = 0;
};

struct RunnerOptions {
  // Worker threads; 0: one per core (std::thread::hardware_concurrency). Never more than the
  // number of runs. Limit: 1024.
  unsigned threads = 0;
  // Run every seed a second time and compare determinism hashes; each divergent seed is run twice
  // more with per-event hashes to find the first divergent event.
  bool check_determinism = false;
  // Called after every run (from worker threads, serialised); may be empty.
  std::function<void(const RunnerProgress&)> progress;
  // Keep every RunResult in RunnerReport::results (the summaries are built either way).
  bool keep_results = false;
};

// Where two runs of one seed first differed.
struct Divergence {
  std::string scenario;
  std::string variant;
  uint64_t seed = 0;
  uint64_t first_divergent_event = 0;  // index into the per-event hash sequence
  uint64_t events_a = 0;               // events in each run
  uint64_t events_b = 0;
  // The traced lines of that event in each run (may be empty when nothing was traced there).
  std::vector<std::string> trace_a;
  std::vector<std::string> trace_b;
  // "DIVERGENCE s/v seed N: first divergent event #i of a/b" plus one line per traced line.
  std::string Describe() const;
};

struct RunnerReport {
  std::vector<VariantSummary> summaries;  // one per RunSpec, in order
  std::vector<Divergence> divergences;    // by spec, then seed
  // results[i][k]: the run of specs[i].seeds[k], when RunnerOptions::keep_results.
  std::vector<std::vector<RunResult>> results;
  uint64_t runs = 0;        // runs counted in the summaries
  uint64_t reruns = 0;      // determinism-check and divergence-report reruns
  double cpu_seconds = 0;   // CPU time of all runs and reruns
  double wall_seconds = 0;  // elapsed (steady clock) from start to end of RunSeeds
  unsigned threads = 0;     // worker threads used
  // No variant fails the lab and no run diverged.
  bool ok() const;
};

// Runs every spec's seeds. Requires every spec's scenario to be non-null and variant to be one
// the scenario accepts.
RunnerReport RunSeeds(const std::vector<RunSpec>& specs, const RunnerOptions& options = {});

struct SoakOptions {
  RunnerOptions runner;  // keep_results is ignored (results are folded into the summaries)
  uint64_t first_seed = 1;
  // Seeds per variant per batch, >= 1; every spec runs the same seeds.
  uint64_t batch = 8;
  // Batches start until this much wall time (steady clock) has passed; the batch in flight
  // finishes, so a soak overruns by at most one batch. At least one batch always runs.
  double seconds = 60;
  // Called after every batch with the seeds run so far per variant; may be empty.
  std::function<void(uint64_t seeds_per_variant)> on_batch;
};

struct SoakReport {
  // Summaries over every batch (RunnerReport::results is empty).
  RunnerReport total;
  uint64_t first_seed = 0;
  uint64_t seeds_per_variant = 0;  // seeds first_seed .. first_seed + seeds_per_variant - 1
  uint64_t batches = 0;
};

// Runs batches of consecutive seeds, from options.first_seed, for every spec (its `seeds` are
// ignored) until options.seconds have passed or the next batch would pass seed 2^64-1.
// Requires first_seed + batch - 1 <= UINT64_MAX.
SoakReport Soak(std::vector<RunSpec> specs, const SoakOptions& options);

}  // namespace faultline::lab
