#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "apps/faultline/chaos_command.h"
#include "apps/faultline/commands.h"
#include "faultline/adapters/nats_broker.h"
#include "faultline/outbox/open_broker.h"

namespace faultline::app {
namespace {

int Misuse(const std::string& message) {
  std::fprintf(stderr, "faultline: error: %s\n", message.c_str());
  return 2;
}

// CLI11's message, on one line, with the cases it words misleadingly reworded.
std::string DescribeParseError(const CLI::ParseError& e, int argc, char** argv) {
  std::string what = e.what();
  if (what.empty()) what = e.get_name();
  for (char& c : what) {
    if (c == '\n') c = ' ';
  }
  // "faultline --bogus", "faultline check --bogus": CLI11 reports the missing subcommand, not
  // the option it did not know.
  if (e.get_name() == "RequiredError" && what.find("subcommand") != std::string::npos) {
    for (int i = 1; i < argc; ++i) {
      if (argv[i][0] == '-') return "unknown option '" + std::string(argv[i]) + "'";
    }
  }
  return what;
}

// Declares `faultline lab`; returns its command.
CLI::App* AddLabCommand(CLI::App& app, LabArgs& args) {
  CLI::App* lab_cmd =
      app.add_subcommand("lab", "run scenarios over many seeds: baseline vs hardened");
  lab_cmd->add_option("ids", args.ids, "scenario ids (default: all; repeats are ignored)");
  lab_cmd->add_option("--seeds", args.seeds, "seeds per variant, 1..10000000 (default 20)")
      ->type_name("N");
  lab_cmd
      ->add_option("--seed", args.seed,
                   "first seed: the runs use seeds S .. S+N-1, 0..2^64-1 (default 1)")
      ->type_name("S");
  lab_cmd->add_option("--variant", args.variants, "only these variants (repeatable)")
      ->type_name("V");
  lab_cmd->add_option("--json", args.json_path, "write the full result as JSON to FILE")
      ->type_name("FILE");
  lab_cmd->add_option("--html", args.html_path, "write a self-contained HTML report to FILE")
      ->type_name("FILE");
  lab_cmd
      ->add_option("--jobs,-j", args.jobs, "parallel runs, 0..1024; 0 = one per core (default 0)")
      ->type_name("J");
  lab_cmd->add_flag("--list", args.list, "list scenarios and variants");
  lab_cmd->add_flag("--check-determinism", args.check_determinism,
                    "run every seed twice and report the first divergent event");
  lab_cmd->add_flag("--buggify", args.buggify,
                    "turn FL_BUGGIFY points on (changes every run: off by default)");
  lab_cmd->footer(
      "Verdicts: a hardened variant 'holds' with zero violations on every seed, else it is "
      "VIOLATED. A baseline variant 'fails as expected' when it violates on at least its minimum "
      "failure rate p of the seeds (0.5 unless the scenario says otherwise). If it violates on "
      "fewer, it is 'DID NOT FAIL' - unless there are fewer than n(p) seeds, the smallest n with "
      "(1-p)^n <= 5% (5 seeds for p = 0.5), too few to tell: then it is 'inconclusive', which "
      "does not fail the lab. Exit 0 pass, 1 a VIOLATED or DID NOT FAIL verdict or a divergence, "
      "2 misuse.\n");
  return lab_cmd;
}

// Declares `faultline soak`; returns its command.
CLI::App* AddSoakCommand(CLI::App& app, SoakArgs& args) {
  CLI::App* soak_cmd =
      app.add_subcommand("soak", "run hardened variants on fresh seeds until SECONDS have passed");
  soak_cmd->add_option("seconds", args.seconds, "how long to run, 1..31536000")->required();
  soak_cmd->add_option("ids", args.ids, "scenario ids (default: all)");
  soak_cmd
      ->add_option("--seed", args.seed, "first seed (default: random from the OS, printed first)")
      ->type_name("S");
  soak_cmd
      ->add_option("--jobs,-j", args.jobs, "parallel runs, 0..1024; 0 = one per core (default 0)")
      ->type_name("J");
  soak_cmd
      ->add_option("--batch", args.batch,
                   "seeds per variant per batch, 0..100000; 0 = 4 per thread (default 0)")
      ->type_name("B");
  soak_cmd->add_flag("--baselines", args.baselines,
                     "also run the baseline variants (shown, never fail the soak)");
  soak_cmd->add_flag("--check-determinism", args.check_determinism,
                     "run every seed twice and report the first divergent event");
  soak_cmd->footer(
      "Batches of consecutive seeds run until the time is up; the batch in flight finishes, so "
      "the soak can overrun by one batch. Exit 0 when every hardened variant held, 1 on any "
      "hardened violation or divergence (with the replay command), 2 misuse.\n");
  return soak_cmd;
}

// Declares `faultline replay`; returns its command.
CLI::App* AddReplayCommand(CLI::App& app, ReplayArgs& args) {
  CLI::App* replay_cmd =
      app.add_subcommand("replay", "replay one run: its trace and determinism hash");
  replay_cmd->add_option("id", args.id, "scenario id")->required();
  replay_cmd->add_option("--variant", args.variant, "variant")->type_name("V")->required();
  replay_cmd->add_option("--seed", args.seed, "seed, 0..2^64-1")->type_name("S")->required();
  replay_cmd->add_flag("--trace", args.trace, "print every event");
  replay_cmd->add_option("--history", args.history_path, "write the history as JSON lines")
      ->type_name("FILE");
  replay_cmd
      ->add_option("--faults", args.faults,
                   "keep only these drawn faults: indices as faultline shrink prints them, or none")
      ->type_name("I,J,..");
  replay_cmd->add_option("--ops", args.ops, "start at most N workload operations")->type_name("N");
  replay_cmd->add_option("--time-ms", args.time_ms, "end the fault phase at T ms")->type_name("T");
  replay_cmd->add_flag("--buggify", args.buggify, "turn FL_BUGGIFY points on");
  replay_cmd->footer("Exit 0 when the run has no violation, 1 when it has, 2 misuse.\n");
  return replay_cmd;
}

// Declares `faultline check`; returns its command (the linearizable subcommand).
CLI::App* AddCheckCommand(CLI::App& app, CheckArgs& args) {
  CLI::App* check_cmd = app.add_subcommand("check", "check a recorded history");
  check_cmd->require_subcommand(1);
  CLI::App* lin_cmd =
      check_cmd->add_subcommand("linearizable", "is a register or key-value history linearizable?");
  lin_cmd->add_option("--model", args.model, "register or kv")->type_name("M")->required();
  lin_cmd
      ->add_option("history", args.history_paths,
                   "histories as JSON lines (regular files), checked one after another")
      ->required();
  lin_cmd
      ->add_option("--deadline", args.deadline_s,
                   "give up (verdict unknown) after S seconds, 1..86400 (default 60)")
      ->type_name("S");
  lin_cmd
      ->add_option("--max-states", args.max_states,
                   "give up (verdict unknown) when one key's search has memoised N states, "
                   "1..1000000000 (default 4000000: about 0.6 GB of memo for a 1000-op key)")
      ->type_name("N");
  lin_cmd->add_flag("--minimize", args.minimize,
                    "on a violation, also report a 1-minimal failing set of operations (up to one "
                    "search per operation of the failing key; off: verdict and failing op only)");
  lin_cmd
      ->add_option("--minimize-effort", args.minimize_effort,
                   "with --minimize, stop minimising after K times the states the check "
                   "explored, 0..1000000 (default 0: only --deadline bounds it)")
      ->type_name("K");
  lin_cmd
      ->add_option("--initial-value", args.initial_value,
                   "every register's (key's) initial value, as JSON (default null; \"\" for "
                   "Porcupine-style kv histories, where a missing key reads as the empty string)")
      ->type_name("JSON");
  lin_cmd->footer(
      "Exit 0 linearizable, 1 not linearizable or unknown (a limit was reached; the "
      "output names it), 2 misuse or a malformed history. With several histories: the "
      "largest of their codes; checking stops at the first malformed one.\n");
  return lin_cmd;
}

}  // namespace
}  // namespace faultline::app

int main(int argc, char** argv) {
  using namespace faultline::app;
  // Broker URIs nats://HOST:PORT (faultline bench outbox --broker) reach NATS JetStream.
  faultline::outbox::RegisterBrokerScheme("nats://", faultline::OpenNatsBroker);
  CLI::App app{
      "faultline: distributed-systems failures replayed in a deterministic simulator, "
      "naive designs against hardened ones",
      "faultline"};
  app.require_subcommand(1);

  LabArgs lab;
  CLI::App* lab_cmd = AddLabCommand(app, lab);
  SoakArgs soak;
  CLI::App* soak_cmd = AddSoakCommand(app, soak);
  ReplayArgs replay;
  CLI::App* replay_cmd = AddReplayCommand(app, replay);
  CheckArgs check;
  CLI::App* lin_cmd = AddCheckCommand(app, check);
  app.add_subcommand("version", "print the version");

  ShrinkArgs shrink;  // faultline shrink (shrink_command.cc)
  CLI::App* shrink_cmd = AddShrinkCommand(app, shrink);
  BenchArgs bench;  // faultline bench (bench_command.cc)
  CLI::App* bench_cmd = AddBenchCommand(app, bench);
  chaos::ChaosCli chaos_cli;  // faultline chaos / faultline node (chaos_cli.cc)
  chaos::AddChaosCommands(app, chaos_cli);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Misuse(DescribeParseError(e, argc, argv) + " (see --help)");
  }

  try {
    if (app.got_subcommand("version")) {
      std::printf("faultline %s\n", FAULTLINE_VERSION);
      return 0;
    }
    if (app.got_subcommand(lab_cmd)) {
      lab.json_given = lab_cmd->count("--json") > 0;
      lab.html_given = lab_cmd->count("--html") > 0;
      return RunLab(lab);
    }
    if (app.got_subcommand(soak_cmd)) return RunSoak(soak);
    if (app.got_subcommand(replay_cmd)) {
      replay.history_given = replay_cmd->count("--history") > 0;
      replay.faults_given = replay_cmd->count("--faults") > 0;
      return RunReplay(replay);
    }
    if (lin_cmd->parsed()) return RunCheck(check);
    if (app.got_subcommand(shrink_cmd)) return RunShrink(shrink);
    if (app.got_subcommand(bench_cmd)) return RunBench(bench);
    if (const int rc = chaos::RunChaosCommands(chaos_cli); rc >= 0) return rc;
  } catch (const UsageError& e) {
    return Misuse(e.what());
  }
  return 2;
}
