// `faultline chaos`: a lab scenario's nodes as real processes on loopback under real faults, judged
// by the lab's own checker and reported with the lab's table and JSON (report.cc). See
// chaos_harness.h for the mechanics and chaos_split_brain.cc / chaos_selftest.cc for the runs.
#include "apps/faultline/chaos_command.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "apps/faultline/chaos_infra.h"
#include "apps/faultline/commands.h"
#include "faultline/lab/runner.h"
#include "faultline/lab/scenario.h"

namespace faultline::app::chaos {
namespace {

// "60s", "500ms", "2m" or plain seconds.
Duration ParseDuration(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::string unit = text.substr(digits);
  const uint64_t n = ParseUnsigned("--time", text.substr(0, digits), 0, 86400'000);
  if (unit.empty() || unit == "s") return Duration::Seconds(static_cast<int64_t>(n));
  if (unit == "ms") return Duration::Millis(static_cast<int64_t>(n));
  if (unit == "m") return Duration::Seconds(static_cast<int64_t>(n) * 60);
  throw UsageError("--time: '" + text + "' is not a duration (e.g. 60s, 500ms, 2m)");
}

std::string SelfExe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = '\0';
  return buf;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// SIGINT/SIGTERM while the infrastructure starts (before the harness's own handler exists): noted,
// so that the run stops and cleans up once Start returns.
volatile sig_atomic_t g_start_interrupted = 0;
void OnStartSignal(int) { g_start_interrupted = 1; }

// Starts the infrastructure with SIGINT/SIGTERM noted rather than fatal; false: interrupted.
bool StartInfra(Infra& infra, Status* status) {
  struct sigaction on{}, old_int{}, old_term{};
  on.sa_handler = OnStartSignal;
  sigemptyset(&on.sa_mask);
  ::sigaction(SIGINT, &on, &old_int);
  ::sigaction(SIGTERM, &on, &old_term);
  *status = infra.Start();
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return g_start_interrupted == 0;
}

// Starts the etcd cluster / PostgreSQL server of --lease etcd / --store postgresql into *infra
// (left null when neither is asked for). nullopt: go on; else the exit code (2: could not start,
// 130: interrupted), everything started so far stopped and removed.
std::optional<int> LaunchInfra(const ChaosArgsParsed& parsed, const std::string& run_dir,
                               std::unique_ptr<Infra>* infra) {
  if (!parsed.etcd && !parsed.postgresql) return std::nullopt;
  InfraOptions options;
  options.etcd = parsed.etcd;
  options.postgresql = parsed.postgresql;
  options.nft = parsed.nft;
  *infra = std::make_unique<Infra>(options);
  Status started;
  if (!StartInfra(**infra, &started)) {
    infra->reset();
    std::fprintf(stderr, "faultline chaos: interrupted; etcd, PostgreSQL and the nftables table "
                         "removed, %s removed\n", run_dir.c_str());
    return 130;
  }
  if (!started.ok()) {
    infra->reset();
    std::fprintf(stderr, "faultline: error: %s\n", started.ToString().c_str());
    return 2;
  }
  return std::nullopt;
}

// The lease service and store figures of a run on real infrastructure.
void PrintLeaseFigures(const lab::RunResult& result) {
  auto metric = [&](const char* name) {
    auto it = result.metrics.find(name);
    return it == result.metrics.end() ? -1.0 : it->second;
  };
  if (metric("lease_ops") > 0) {
    std::printf("lease service: %.0f granted acquires, acquire latency p50 %.2f ms, p99 %.2f ms; "
                "%.0f lease calls (%.1f/s over the run)\n",
                metric("acquires_granted"), metric("acquire_p50_ms"), metric("acquire_p99_ms"),
                metric("lease_ops"), metric("lease_ops_per_s"));
  }
  std::printf("store: %.0f writes accepted, %.0f refused by the fence (stale tokens), %.0f stale "
              "writes accepted\n",
              metric("store_writes"), metric("fenced_rejections"), metric("stale_writes"));
}

void PrintFailovers(const std::vector<double>& ms) {
  if (ms.empty()) return;
  double sum = 0;
  for (double x : ms) sum += x;
  std::printf("failover (leader SIGKILLed -> another node able to act), %zu crashes: mean %.1f ms, "
              "p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
              ms.size(), sum / static_cast<double>(ms.size()), Percentile(ms, 0.5),
              Percentile(ms, 0.99), Percentile(ms, 1.0));
}

}  // namespace

int RunChaos(const ChaosArgs& args) {
  const lab::Scenario* scenario = lab::FindScenario(args.scenario);
  if (scenario == nullptr || (args.scenario != "split-brain" && args.scenario != "selftest")) {
    throw UsageError("chaos runs split-brain and selftest, not '" + args.scenario + "'");
  }
  const lab::VariantSpec* variant = nullptr;
  std::vector<lab::VariantSpec> variants = scenario->variants();
  for (const lab::VariantSpec& v : variants) {
    if (v.name == args.variant) variant = &v;
  }
  if (variant == nullptr) {
    throw UsageError("unknown variant '" + args.variant + "' of " + args.scenario);
  }
  ChaosArgsParsed parsed;
  parsed.scenario = args.scenario;
  parsed.variant = args.variant;
  parsed.time = ParseDuration(args.time);
  parsed.seed = ParseUnsigned("--seed", args.seed, 0, UINT64_MAX);
  parsed.failovers = static_cast<uint32_t>(ParseUnsigned("--failovers", args.failovers, 1, 1000));
  const uint32_t nodes = args.scenario == "split-brain" ? 6 : 5;
  if (!args.nodes.empty() && ParseUnsigned("--nodes", args.nodes, 1, 64) != nodes) {
    throw UsageError("--nodes: " + args.scenario + " runs exactly " + std::to_string(nodes) +
                     " node processes");
  }
  if (parsed.time < Duration::Seconds(12)) throw UsageError("--time: at least 12s");
  std::string error;
  if (!args.json_path.empty() && !CanWrite(args.json_path, &error)) throw UsageError(error);
  if (!args.history_path.empty() && !CanWrite(args.history_path, &error)) throw UsageError(error);
  if (args.lease != "paxos" && args.lease != "etcd") {
    throw UsageError("--lease: '" + args.lease + "' is not paxos or etcd");
  }
  if (args.store != "memory" && args.store != "postgresql") {
    throw UsageError("--store: '" + args.store + "' is not memory or postgresql");
  }
  parsed.etcd = args.lease == "etcd";
  parsed.postgresql = args.store == "postgresql";
  if ((parsed.etcd || parsed.postgresql) && args.scenario != "split-brain") {
    throw UsageError("--lease and --store apply to split-brain only");
  }

  // Before anything starts: nft (--lease etcd partitions members with it) and the tables that
  // SIGKILLed harnesses left.
  if (parsed.etcd) {
    Result<std::string> nft = FindNft();
    Result<std::vector<std::string>> removed =
        nft.ok() ? RemoveStaleNftTables(*nft) : Result<std::vector<std::string>>(nft.status());
    if (!removed.ok()) {
      std::fprintf(stderr, "faultline: error: %s\n", removed.status().ToString().c_str());
      return 2;
    }
    parsed.nft = *nft;
    for (const std::string& line : *removed) std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }

  Result<TempDir> dir = TempDir::Create();
  if (!dir.ok()) {
    std::fprintf(stderr, "faultline: error: %s\n", dir.status().ToString().c_str());
    return 2;
  }
  HarnessOptions options;
  options.scenario = args.scenario;
  options.variant = args.variant;
  options.nodes = nodes;
  options.seed = parsed.seed;
  options.exe = SelfExe();
  options.verbose = args.verbose;
  ScenarioRun run;
  std::vector<std::string> fault_log;
  std::map<std::string, int> counts;
  std::unique_ptr<Infra> infra;
  if (std::optional<int> exit_code = LaunchInfra(parsed, dir->path(), &infra)) return *exit_code;
  if (infra != nullptr) options.node_args = infra->NodeArgs();
  {
    Harness harness(options, dir->path());
    if (infra != nullptr) infra->Attach(&harness);
    Status launched = harness.Launch();
    if (!launched.ok()) {
      if (harness.interrupted()) {
        std::fprintf(stderr, "faultline chaos: interrupted; node processes killed, %s removed\n",
                     dir->path().c_str());
        return 130;
      }
      std::fprintf(stderr, "faultline: error: starting the node processes: %s\n",
                   launched.ToString().c_str());
      return 2;
    }
    std::printf("chaos %s/%s seed %llu: %u node processes on 127.0.0.1 (run dir %s)\n",
                args.scenario.c_str(), args.variant.c_str(),
                static_cast<unsigned long long>(parsed.seed), nodes, dir->path().c_str());
    std::printf("partitions: in-transport drop rules (LoopbackTransport Block/Unblock via the "
                "control channel; not nftables)\n");
    if (infra != nullptr) {
      for (const std::string& line : infra->Describe()) std::printf("%s\n", line.c_str());
    }
    std::fflush(stdout);
    run = args.scenario == "split-brain" ? RunSplitBrain(harness, parsed, infra.get())
                                         : RunSelftest(harness, parsed);
    fault_log = harness.fault_log();
    counts = harness.fault_counts();
    if (!run.completed) {
      // ~Harness kills and reaps every node process; the TempDir goes with this scope.
    }
    if (infra != nullptr) infra->Attach(nullptr);
  }
  infra.reset();  // etcd and PostgreSQL stopped, their directories and the nftables table removed
  if (!run.completed) {
    std::fprintf(stderr, "faultline chaos: interrupted; node processes killed, %s removed%s\n",
                 dir->path().c_str(),
                 parsed.etcd || parsed.postgresql
                     ? "; etcd, PostgreSQL and their directories, and the nftables table, gone"
                     : "");
    return 130;
  }
  std::printf("faults applied (TrueTime since the run's start):\n");
  for (const std::string& line : fault_log) std::printf("  %s\n", line.c_str());
  std::printf("fault counts:");
  for (const auto& [kind, n] : counts) std::printf(" %s %d,", kind.c_str(), n);
  std::printf(" link loss/duplication/reordering not injected\n");
  PrintFailovers(run.failover_ms);
  if (parsed.etcd || parsed.postgresql) PrintLeaseFigures(run.result);

  lab::RunnerReport report;
  report.summaries.push_back(lab::Summarize(*scenario, *variant, {parsed.seed}, {run.result}));
  report.results.push_back({run.result});
  report.runs = 1;
  report.threads = 1;
  PrintTable(report.summaries);
  if (!args.json_path.empty() && !WriteJson(args.json_path, report, parsed.seed, 1, &error)) {
    std::fprintf(stderr, "faultline: error: %s\n", error.c_str());
    return 2;
  }
  if (!args.history_path.empty()) {
    std::ofstream out(args.history_path);
    run.history.WriteJsonl(out);
    if (!out) {
      std::fprintf(stderr, "faultline: error: cannot write %s\n", args.history_path.c_str());
      return 2;
    }
  }
  return report.ok() ? 0 : 1;
}

}  // namespace faultline::app::chaos
