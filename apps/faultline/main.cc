#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "apps/faultline/commands.h"

namespace faultline::app {

void UsageError(const std::string& message) {
  std::fprintf(stderr, "faultline: error: %s\n", message.c_str());
  std::exit(2);
}

}  // namespace faultline::app

int main(int argc, char** argv) {
  using namespace faultline::app;
  CLI::App app{"faultline: the seven distributed-systems failures, replayed and held", "faultline"};
  app.require_subcommand(1);

  LabArgs lab;
  CLI::App* lab_cmd = app.add_subcommand("lab", "run scenarios over many seeds: naive vs hardened");
  lab_cmd->add_option("ids", lab.ids, "scenario ids (default: all)");
  lab_cmd->add_option("--seeds", lab.seeds, "number of seeds per variant")->check(CLI::Range(uint64_t{1}, uint64_t{10'000'000}));
  lab_cmd->add_option("--seed", lab.seed, "first seed (seeds S .. S+N-1)");
  lab_cmd->add_option("--variant", lab.variants, "only these variants");
  lab_cmd->add_option("--json", lab.json_path, "write the full result as JSON to FILE");
  lab_cmd->add_option("--jobs,-j", lab.jobs, "parallel runs (default: one per core)")->check(CLI::Range(0u, 256u));
  lab_cmd->add_flag("--list", lab.list, "list scenarios and variants");
  lab_cmd->add_flag("--check-determinism", lab.check_determinism,
                    "run every seed twice and report the first divergent event");

  ReplayArgs replay;
  CLI::App* replay_cmd = app.add_subcommand("replay", "replay one run: its trace and determinism hash");
  replay_cmd->add_option("id", replay.id, "scenario id")->required();
  replay_cmd->add_option("--variant", replay.variant, "variant")->required();
  replay_cmd->add_option("--seed", replay.seed, "seed")->required();
  replay_cmd->add_flag("--trace", replay.trace, "print every event");
  replay_cmd->add_option("--history", replay.history_path, "write the history as JSON lines");

  CheckArgs check;
  CLI::App* check_cmd = app.add_subcommand("check", "check a recorded history");
  check_cmd->require_subcommand(1);
  CLI::App* lin_cmd =
      check_cmd->add_subcommand("linearizable", "is a register or key-value history linearizable?");
  lin_cmd->add_option("--model", check.model, "register or kv")->required();
  lin_cmd->add_option("history", check.history_path, "history as JSON lines")->required();
  lin_cmd->add_option("--deadline", check.deadline_s, "give up (verdict unknown) after S seconds")
      ->check(CLI::Range(1u, 86400u));

  app.add_subcommand("version", "print the version");

  BenchArgs bench;  // faultline bench (bench_command.cc)
  CLI::App* bench_cmd = AddBenchCommand(app, bench);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (what.empty()) what = e.get_name();
    for (char& c : what) {
      if (c == '\n') c = ' ';
    }
    UsageError(what + " (see --help)");
  }

  if (app.got_subcommand("version")) {
    std::printf("faultline %s\n", FAULTLINE_VERSION);
    return 0;
  }
  if (app.got_subcommand(lab_cmd)) return RunLab(lab);
  if (app.got_subcommand(replay_cmd)) return RunReplay(replay);
  if (app.got_subcommand(check_cmd) && check_cmd->got_subcommand(lin_cmd)) return RunCheck(check);
  if (app.got_subcommand(bench_cmd)) return RunBench(bench);  // faultline bench
  return 2;
}
