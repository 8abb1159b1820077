// The faultline command-line tool: thin argument parsing over lab/ and check/. Exit codes: 0
// success, 1 a verdict failed (a hardened variant violated, a baseline did not fail, a run
// diverged, a history is not linearizable), 2 command-line misuse.
//
// Commands report misuse by throwing UsageError; main() catches it, prints
// "faultline: error: MESSAGE" on one line and exits 2. Nothing in a command calls exit().
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/lab/runner.h"

namespace CLI {
class App;
}  // namespace CLI

namespace faultline::app {

class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& message) : std::runtime_error(message) {}
};

// Strict unsigned decimal: digits only (no sign, space or suffix), overflow detected, within
// [min, max]. Throws UsageError naming `option`: "not a number" or "out of range".
uint64_t ParseUnsigned(std::string_view option, std::string_view text, uint64_t min, uint64_t max);

struct LabArgs {
  std::vector<std::string> ids;
  std::vector<std::string> variants;
  std::string seeds = "20";
  std::string seed = "1";
  std::string jobs = "0";
  std::string json_path;
  bool json_given = false;
  std::string html_path;
  bool html_given = false;
  bool list = false;
  bool check_determinism = false;
  bool buggify = false;  // FL_BUGGIFY points on in every run
};

struct SoakArgs {
  std::string seconds;
  std::vector<std::string> ids;
  std::string seed;  // empty: drawn from the OS
  std::string jobs = "0";
  std::string batch = "0";
  bool baselines = false;
  bool check_determinism = false;
};

struct ReplayArgs {
  std::string id;
  std::string variant;
  std::string seed;
  bool trace = false;
  std::string history_path;
  bool history_given = false;
  // A reduced run (faultline shrink prints these): kept fault indices, operation limit, end of
  // the fault phase in ms; empty: as drawn.
  std::string faults;
  bool faults_given = false;
  std::string ops;
  std::string time_ms;
  bool buggify = false;
};

// shrink_command.cc: `faultline shrink ID --variant V --seed S`.
struct ShrinkArgs {
  std::string id;
  std::string variant;
  std::string seed;
  std::string violation;
  std::string runs_max = "2000";
  std::string nearby = "16";
  bool buggify = false;
  bool verbose = false;
};
CLI::App* AddShrinkCommand(CLI::App& app, ShrinkArgs& args);
// 0 reduced (the reduced run fails the same way), 1 the run does not fail, 2 misuse.
int RunShrink(const ShrinkArgs& args);

struct CheckArgs {
  std::string model = "register";
  std::vector<std::string> history_paths;  // checked in order, one process
  std::string deadline_s = "60";
  std::string max_states = "4000000";
  bool minimize = false;
  std::string minimize_effort = "0";
  std::string initial_value = "null";
};

int RunLab(const LabArgs& args);
int RunSoak(const SoakArgs& args);
int RunReplay(const ReplayArgs& args);
// faultline check linearizable: 0 linearizable, 1 not (or unknown within the limits), 2 misuse
// or a malformed history.
int RunCheck(const CheckArgs& args);

// lab_command.cc: the scenarios named by `ids` (all when empty), in the order given, without
// duplicates; throws UsageError for an unknown id.
std::vector<const lab::Scenario*> SelectScenarios(const std::vector<std::string>& ids);
// Worker threads for --jobs (0: one per core).
unsigned ThreadsFor(uint64_t jobs);

// bench_reshard.cc: `faultline bench reshard --from URI --to URI --rows N [--writers K]`.
struct BenchReshardArgs {
  std::string from;
  std::string to;
  uint64_t rows = 100000;
  unsigned writers = 4;
  uint64_t rate = 2000;  // writes/s over all writers; 0: as fast as they can
  uint32_t batch = 20000;
  std::string table = "faultline_bench";
};
CLI::App* AddBenchReshardCommand(CLI::App& bench, BenchReshardArgs& args);
// 0 done, 1 the move failed or lost/duplicated a write, 2 misuse (bad URI, unreachable server).
int RunBenchReshard(const BenchReshardArgs& args);
// bench_outbox.cc: `faultline bench outbox --store URI --broker URI ...`.
struct OutboxBenchArgs {
  std::string store;
  std::string broker;
  std::string outbox = "kv";  // kv | table
  uint64_t events = 100000;
  uint64_t rate = 10000;
  uint64_t seconds = 5;
  uint64_t keys = 100;
  unsigned relays = 1;
  size_t batch = 512;
  std::string table = "faultline_bench";
  unsigned producers = 1;   // steady phase: producer threads, each on its own connection
  uint64_t txn_events = 0;  // steady phase: events per transaction; 0: rate / 1000 (at least 1)
};
CLI::App* AddBenchOutboxCommand(CLI::App& bench, OutboxBenchArgs& args);
// 0 done, 1 a relay failed or the read-back check failed, 2 misuse.
int RunBenchOutbox(const OutboxBenchArgs& args);

// bench_command.cc: `faultline bench idempotency --store URI ...`.
struct BenchArgs {
  std::string store;
  unsigned threads = 1;
  uint64_t ops = 2000;
  uint64_t keys = 1000;
  double skew = 0;
  std::string table = "faultline_bench";
  BenchReshardArgs reshard;            // `bench reshard` (bench_reshard.cc)
  CLI::App* reshard_cmd = nullptr;
  OutboxBenchArgs outbox;            // `faultline bench outbox` (bench_outbox.cc)
  CLI::App* outbox_app = nullptr;
};
CLI::App* AddBenchCommand(CLI::App& app, BenchArgs& args);
// 0 done, 1 a round failed, 2 misuse (bad URI, unreachable server).
int RunBench(const BenchArgs& args);

// report.cc
// The results table, then per variant with violations: counts by name and the details ("expected
// vs seen") of its first failing seed's violations, for those that have one.
void PrintTable(const std::vector<lab::VariantSummary>& summaries);
// The closing timing line: simulated time, CPU time (runs and reruns), wall time of the whole lab.
void PrintTiming(const lab::RunnerReport& report);
// Writes FILE atomically (temporary file, then rename). False with a message on failure.
bool WriteJson(const std::string& path, const lab::RunnerReport& report, uint64_t first_seed,
               uint64_t seeds, std::string* error);
// html_command.cc: the HTML report of a lab run (faultline/lab/html_report.h), built from
// `report` (which must hold every result: RunnerOptions::keep_results) and written atomically.
// Failing representative seeds are replayed once more for their history, and the replay's hash
// must match the run's. False with a message on failure.
bool WriteHtml(const std::string& path, const lab::RunnerReport& report,
               const std::vector<lab::RunSpec>& specs, uint64_t first_seed, uint64_t seeds,
               const std::string& command, std::string* error);
// coverage.cc: per scenario, the coverage probes its runs hit and those they never hit, then the
// probes no scenario hit.
void PrintProbeCoverage(const std::vector<lab::VariantSummary>& summaries);

// Writes `content` to FILE atomically (a temporary file, then rename). False with a message.
bool WriteFileAtomically(const std::string& path, const std::string& content, std::string* error);
// True when `path` can be created or overwritten (checked before any run starts).
bool CanWrite(const std::string& path, std::string* error);

}  // namespace faultline::app
