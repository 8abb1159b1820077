// faultline shrink: reduce a failing run to the fewest faults, operations and the shortest fault
// phase that still fail with the same violation (lab/shrink.h), and print its replay command.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "apps/faultline/commands.h"
#include "faultline/lab/scenario.h"
#include "faultline/lab/shrink.h"

namespace faultline::app {
namespace {

void PrintFaults(const char* label, const std::vector<sim::FaultAction>& faults,
                 const std::vector<uint32_t>* indices) {
  std::printf("%s: %zu faults\n", label, faults.size());
  for (size_t i = 0; i < faults.size(); ++i) {
    const uint32_t index = indices != nullptr ? (*indices)[i] : static_cast<uint32_t>(i);
    std::printf("  #%-3u at %7.3fs  %s\n", index, faults[i].at.seconds_f(),
                faults[i].Describe().c_str());
  }
}

}  // namespace

CLI::App* AddShrinkCommand(CLI::App& app, ShrinkArgs& args) {
  CLI::App* cmd = app.add_subcommand(
      "shrink", "reduce a failing run to the fewest faults, operations and time that still fail");
  cmd->add_option("id", args.id, "scenario id")->required();
  cmd->add_option("--variant", args.variant, "variant")->type_name("V")->required();
  cmd->add_option("--seed", args.seed, "the failing seed, 0..2^64-1")->type_name("S")->required();
  cmd->add_option("--violation", args.violation,
                  "the violation to keep (default: the run's first, by name)")
      ->type_name("NAME");
  cmd->add_option("--runs", args.runs_max, "runs at most, 1..1000000 (default 2000)")
      ->type_name("N");
  cmd->add_option("--nearby", args.nearby,
                  "seeds after S to try when more than 3 faults remain, 0..100000 (default 16)")
      ->type_name("K");
  cmd->add_flag("--buggify", args.buggify, "shrink a run with FL_BUGGIFY points on");
  cmd->add_flag("--verbose,-v", args.verbose, "print every run tried");
  cmd->footer(
      "Delta-debugs the run's drawn faults, then binary-searches the operation limit (scenarios "
      "that count operations) and the end of the fault phase; prints the original and reduced "
      "faults and the replay command of the reduced run. Exit 0 reduced, 1 the run does not fail "
      "(with that violation), 2 misuse.\n");
  return cmd;
}

int RunShrink(const ShrinkArgs& args) {
  const uint64_t seed = ParseUnsigned("--seed", args.seed, 0, UINT64_MAX);
  const lab::Scenario* s = lab::FindScenario(args.id);
  if (s == nullptr) {
    throw UsageError("unknown scenario '" + args.id + "' (see faultline lab --list)");
  }
  const std::vector<lab::VariantSpec> variants = s->variants();
  const lab::VariantSpec* v = lab::FindVariant(variants, args.variant);
  if (v == nullptr) throw UsageError("unknown variant '" + args.variant + "' for " + args.id);
  lab::ShrinkOptions options;
  options.violation = args.violation;
  options.runs_max = ParseUnsigned("--runs", args.runs_max, 1, 1'000'000);
  options.nearby_seeds = ParseUnsigned("--nearby", args.nearby, 0, 100'000);
  options.buggify = args.buggify;
  if (args.verbose) {
    options.progress = [](const std::string& line) { std::printf("  %s\n", line.c_str()); };
  }
  const Result<lab::ShrinkResult> r = lab::Shrink(*s, *v, seed, options);
  if (!r.ok()) {
    std::printf("shrink %s/%s seed %llu: %s\n", args.id.c_str(), v->name.c_str(),
                static_cast<unsigned long long>(seed), std::string(r.status().message()).c_str());
    return 1;
  }
  std::printf("shrink %s/%s seed %llu, violation %s\n", args.id.c_str(), v->name.c_str(),
              static_cast<unsigned long long>(seed), r->violation.c_str());
  PrintFaults("original", r->original_faults, nullptr);
  if (r->original_ops >= 0) {
    std::printf("original operations: %lld\n", static_cast<long long>(r->original_ops));
  }
  std::printf("original fault phase ends at %.3fs\n", r->original_fault_end.seconds_f());
  if (r->seed != r->original_seed) {
    std::printf("a nearby seed shrank further: seed %llu\n",
                static_cast<unsigned long long>(r->seed));
  }
  PrintFaults("reduced", r->reduced_faults, &r->faults);
  if (r->ops_max) std::printf("reduced operations: %lld\n", static_cast<long long>(*r->ops_max));
  if (r->fault_end) std::printf("reduced fault phase ends at %.3fs\n", r->fault_end->seconds_f());
  const bool same = r->reduced.violations.count(r->violation) > 0;
  auto detail = r->reduced.violation_details.find(r->violation);
  std::printf("reduced run: %s%s%s\n", same ? "fails with " : "DOES NOT FAIL with ",
              r->violation.c_str(),
              detail != r->reduced.violation_details.end() ? (": " + detail->second).c_str() : "");
  std::printf("runs tried: %llu\n", static_cast<unsigned long long>(r->runs));
  std::printf("replay: %s\n", r->ReplayCommand().c_str());
  return same ? 0 : 1;
}

}  // namespace faultline::app
