// The faultline command-line tool: thin argument parsing over lab/. Exit codes: 0 success, 1 the
// lab's verdict failed (a hardened variant violated, a naive one did not fail, a run diverged),
// 2 command-line misuse.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "faultline/lab/runner.h"

namespace CLI {
class App;
}  // namespace CLI

namespace faultline::app {

struct LabArgs {
  std::vector<std::string> ids;
  std::vector<std::string> variants;
  uint64_t seeds = 20;
  uint64_t seed = 1;
  std::string json_path;
  bool list = false;
  bool check_determinism = false;
  unsigned jobs = 0;  // 0: one per core
};

struct ReplayArgs {
  std::string id;
  std::string variant;
  uint64_t seed = 1;
  bool trace = false;
  std::string history_path;
};

struct CheckArgs {
  std::string model = "register";
  std::string history_path;
  uint32_t deadline_s = 60;
};

int RunLab(const LabArgs& args);
// faultline check linearizable: 0 linearizable, 1 not (or unknown within the deadline), 2 misuse
// or a malformed history.
int RunCheck(const CheckArgs& args);
int RunReplay(const ReplayArgs& args);

// bench_command.cc: `faultline bench idempotency --store URI ...`.
struct BenchArgs {
  std::string store;
  unsigned threads = 1;
  uint64_t ops = 2000;
  uint64_t keys = 1000;
  double skew = 0;
  std::string table = "faultline_bench";
};
CLI::App* AddBenchCommand(CLI::App& app, BenchArgs& args);
// 0 done, 1 a round failed, 2 misuse (bad URI, unreachable server).
int RunBench(const BenchArgs& args);

// report.cc
void PrintTable(const std::vector<lab::VariantSummary>& summaries);
// Writes FILE atomically (temporary file, then rename). False with a message on failure.
bool WriteJson(const std::string& path, const std::vector<lab::VariantSummary>& summaries,
               const LabArgs& args, std::string* error);
// True when `path` can be created or overwritten (checked before any run starts).
bool CanWrite(const std::string& path, std::string* error);

[[noreturn]] void UsageError(const std::string& message);

}  // namespace faultline::app
