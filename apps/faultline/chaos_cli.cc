// Declares `faultline node` and `faultline chaos` (chaos_command.h).
#include <CLI/CLI.hpp>

#include "apps/faultline/chaos_command.h"

namespace faultline::app::chaos {

void AddChaosCommands(CLI::App& app, ChaosCli& cli) {
  CLI::App* chaos_cmd = app.add_subcommand(
      "chaos", "run a scenario's nodes as real processes on loopback under real faults");
  ChaosArgs& c = cli.chaos;
  chaos_cmd->add_option("scenario", c.scenario, "split-brain or selftest")->required();
  chaos_cmd->add_option("--variant", c.variant, "variant")->type_name("V")->required();
  chaos_cmd->add_option("--time", c.time, "run length, e.g. 60s (at least 12s; default 30s)")
      ->type_name("D");
  chaos_cmd->add_option("--seed", c.seed, "seed of the nemesis and the workload (default 1)")
      ->type_name("S");
  chaos_cmd->add_option("--nodes", c.nodes, "node processes (the scenario's count)")
      ->type_name("N");
  chaos_cmd
      ->add_option("--failovers", c.failovers,
                   "split-brain: SIGKILL the leader N times after the heal, 7 s apart; the run "
                   "grows by 7 s per extra crash (default 1)")
      ->type_name("N");
  chaos_cmd->add_option("--json", c.json_path, "write the result as JSON (the lab's format)")
      ->type_name("FILE");
  chaos_cmd->add_option("--history", c.history_path, "write the clients' history as JSON lines")
      ->type_name("FILE");
  chaos_cmd->add_flag("--verbose,-v", c.verbose, "print each fault as it is applied");
  chaos_cmd
      ->add_option("--lease", c.lease,
                   "split-brain: the lease service the nodes elect through: paxos (PaxosLease "
                   "among the nodes, default) or etcd (a 3-member etcd cluster the harness starts)")
      ->type_name("S");
  chaos_cmd
      ->add_option("--store", c.store,
                   "split-brain: the shared store: memory (default) or postgresql (a PostgreSQL "
                   "server the harness starts; fencing checked in each write's transaction)")
      ->type_name("S");
  chaos_cmd->footer(
      "Exit 0 when the variant's verdict passes (as in faultline lab: hardened 0 violations, a "
      "baseline fails as expected or is inconclusive), 1 when it does not, 2 misuse or the nodes "
      "could not start, 130 interrupted (node processes killed, run directory removed).\n");
  cli.chaos_cmd = chaos_cmd;

  CLI::App* node_cmd =
      app.add_subcommand("node", "host one scenario node in this process (started by chaos)");
  NodeArgs& n = cli.node;
  node_cmd->add_option("scenario", n.scenario, "scenario id")->required();
  node_cmd->add_option("--variant", n.variant, "variant")->type_name("V")->required();
  node_cmd->add_option("--id", n.id, "node id")->type_name("N")->required();
  node_cmd->add_option("--peers", n.peers, "ID:PORT,... on 127.0.0.1 (self and harness included)")
      ->type_name("LIST")
      ->required();
  node_cmd->add_option("--data", n.data, "the process's directory")->type_name("DIR")->required();
  node_cmd->add_option("--t0", n.t0, "the run's start, CLOCK_MONOTONIC ns")
      ->type_name("NS")
      ->required();
  node_cmd->add_option("--incarnation", n.incarnation, "restarts so far (default 0)")
      ->type_name("K");
  node_cmd->add_option("--seed", n.seed, "seed (default 1)")->type_name("S");
  node_cmd->add_option("--lease", n.lease, "split-brain: paxos (default) or etcd")->type_name("S");
  node_cmd->add_option("--etcd", n.etcd_endpoints, "--lease etcd: the endpoints, comma-separated")
      ->type_name("URLS");
  node_cmd->add_option("--store-uri", n.store_uri, "split-brain's store node: a PostgreSQL conninfo")
      ->type_name("URI");
  cli.node_cmd = node_cmd;
}

int RunChaosCommands(const ChaosCli& cli) {
  if (cli.chaos_cmd != nullptr && cli.chaos_cmd->parsed()) return RunChaos(cli.chaos);
  if (cli.node_cmd != nullptr && cli.node_cmd->parsed()) return RunNode(cli.node);
  return -1;
}

}  // namespace faultline::app::chaos
