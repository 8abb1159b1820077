// `faultline chaos SCENARIO --variant V [--time D] [--seed S] [--failovers N] [--json F]
// [--history F]`: the harness (chaos_command.cc) and the scenario runs it dispatches to.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "apps/faultline/chaos.h"
#include "apps/faultline/chaos_harness.h"
#include "faultline/check/history.h"
#include "faultline/lab/scenario.h"

namespace faultline::app::chaos {

struct ChaosArgs {
  std::string scenario;
  std::string variant;
  std::string time = "30s";
  std::string seed = "1";
  std::string nodes;  // default: the scenario's
  std::string failovers = "1";
  std::string json_path;
  std::string history_path;
  bool verbose = false;
  std::string lease = "paxos";  // split-brain: paxos | etcd
  std::string store = "memory";  // split-brain: memory | postgresql
};

struct ChaosArgsParsed {
  std::string scenario;
  std::string variant;
  Duration time;
  uint64_t seed = 1;
  uint32_t failovers = 1;
  bool etcd = false;        // --lease etcd
  bool postgresql = false;  // --store postgresql
  std::string nft;          // with --lease etcd: the nft binary (FindNft)
};

// One scenario's run on real processes.
struct ScenarioRun {
  bool completed = false;  // false: interrupted
  lab::RunResult result;
  check::History history;  // the clients' Jepsen-shaped history (TrueTime)
  std::vector<double> failover_ms;  // split-brain: every failover crash's failover time
};

class Infra;  // chaos_infra.h
// `infra`: the etcd cluster / PostgreSQL server of --lease etcd / --store postgresql, or null.
ScenarioRun RunSplitBrain(Harness& harness, const ChaosArgsParsed& args, Infra* infra);
ScenarioRun RunSelftest(Harness& harness, const ChaosArgsParsed& args);

// 0 the verdict passed, 1 it failed, 2 misuse; 130 interrupted (everything cleaned up).
int RunChaos(const ChaosArgs& args);

}  // namespace faultline::app::chaos

namespace CLI {
class App;
}  // namespace CLI

namespace faultline::app::chaos {

// The `node` and `chaos` subcommands (chaos_cli.cc).
struct ChaosCli {
  NodeArgs node;
  ChaosArgs chaos;
  CLI::App* node_cmd = nullptr;
  CLI::App* chaos_cmd = nullptr;
};
void AddChaosCommands(CLI::App& app, ChaosCli& cli);
// -1 when neither subcommand was given; else its exit code.
int RunChaosCommands(const ChaosCli& cli);

}  // namespace faultline::app::chaos
