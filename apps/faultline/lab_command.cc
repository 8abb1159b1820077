// faultline lab and faultline replay: argument checks and printing over lab::RunSeeds.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "apps/faultline/commands.h"
#include "faultline/lab/runner.h"
#include "faultline/lab/scenario.h"

namespace faultline::app {
namespace {

// Progress on stderr, only when it is a terminal.
void ShowProgress(const lab::RunnerProgress& p) {
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * p.done / std::max<uint64_t>(p.total, 1));
  const std::string label = std::string(p.scenario) + "/" + std::string(p.variant);
  std::fprintf(stderr, "\r[%s%s] %llu/%llu %-40s", std::string(filled, '=').c_str(),
               std::string(kWidth - filled, ' ').c_str(), static_cast<unsigned long long>(p.done),
               static_cast<unsigned long long>(p.total), label.c_str());
  if (p.done == p.total) std::fprintf(stderr, "\r%*s\r", kWidth + 60, "");
  std::fflush(stderr);
}

void PrintList() {
  for (const lab::Scenario* s : lab::AllScenarios()) {
    std::printf("%s\n  %s\n", std::string(s->id()).c_str(), std::string(s->description()).c_str());
    for (const lab::VariantSpec& v : s->variants()) {
      std::printf("    %-12s %-9s %s\n", v.name.c_str(), v.hardened ? "hardened" : "baseline",
                  v.description.c_str());
      if (!v.hardened) {
        std::printf("    %-12s %-9s must fail on >= %.0f%% of seeds; judged from %llu seeds\n", "",
                    "", v.failure_rate_min * 100,
                    static_cast<unsigned long long>(lab::MinSeedsToJudge(v.failure_rate_min)));
      }
    }
  }
}

// The command as the user could retype it, for the report's header.
std::string LabCommandLine(const LabArgs& args) {
  std::string s = "faultline lab";
  for (const std::string& id : args.ids) s += " " + id;
  for (const std::string& v : args.variants) s += " --variant " + v;
  s += " --seeds " + args.seeds;
  if (args.seed != "1") s += " --seed " + args.seed;
  if (args.check_determinism) s += " --check-determinism";
  return s + " --html " + args.html_path;
}

}  // namespace

int RunLab(const LabArgs& args) {
  if (args.list) {
    PrintList();
    return 0;
  }
  const uint64_t seeds = ParseUnsigned("--seeds", args.seeds, 1, 10'000'000);
  const uint64_t first = ParseUnsigned("--seed", args.seed, 0, UINT64_MAX);
  const uint64_t jobs = ParseUnsigned("--jobs", args.jobs, 0, 1024);
  const std::vector<const lab::Scenario*> scenarios = SelectScenarios(args.ids);
  for (const std::string& v : args.variants) {
    bool known = false;
    for (const lab::Scenario* s : scenarios) known |= lab::FindVariant(s->variants(), v) != nullptr;
    if (!known) throw UsageError("unknown variant '" + v + "' for the chosen scenarios");
  }
  // The last seed is first + seeds - 1; it must fit in 64 bits.
  if (first > UINT64_MAX - (seeds - 1)) {
    throw UsageError("--seed " + args.seed + " with --seeds " + args.seeds +
                     " runs past the largest seed 2^64-1");
  }
  if (args.json_given && args.json_path.empty()) throw UsageError("--json: empty file name");
  std::string error;
  if (!args.json_path.empty() && !CanWrite(args.json_path, &error)) throw UsageError(error);
  if (args.html_given && args.html_path.empty()) throw UsageError("--html: empty file name");
  if (!args.html_path.empty() && !CanWrite(args.html_path, &error)) throw UsageError(error);

  std::vector<lab::RunSpec> specs;
  for (const lab::Scenario* s : scenarios) {
    for (const lab::VariantSpec& v : s->variants()) {
      if (!args.variants.empty() &&
          std::find(args.variants.begin(), args.variants.end(), v.name) == args.variants.end()) {
        continue;
      }
      specs.push_back(lab::RunSpec{s, v, lab::SeedRange(first, seeds)});
    }
  }
  lab::RunnerOptions options;
  options.threads = ThreadsFor(jobs);
  options.check_determinism = args.check_determinism;
  if (isatty(STDERR_FILENO) == 1) options.progress = ShowProgress;
  options.keep_results = !args.html_path.empty();  // the HTML report draws single runs
  const lab::RunnerReport report = lab::RunSeeds(specs, options);

  for (const lab::Divergence& d : report.divergences) std::printf("%s\n", d.Describe().c_str());
  PrintTable(report.summaries);
  if (args.check_determinism) {
    std::printf("determinism: %llu runs checked twice, %zu divergences\n",
                static_cast<unsigned long long>(report.runs), report.divergences.size());
  }
  PrintTiming(report);
  if (!args.json_path.empty() && !WriteJson(args.json_path, report, first, seeds, &error)) {
    std::fprintf(stderr, "faultline: error: %s\n", error.c_str());
    return 1;
  }
  if (!args.html_path.empty() &&
      !WriteHtml(args.html_path, report, specs, first, seeds, LabCommandLine(args), &error)) {
    std::fprintf(stderr, "faultline: error: %s\n", error.c_str());
    return 1;
  }
  for (const lab::VariantSummary& s : report.summaries) {
    if (s.passed) continue;
    std::printf("%s\n", s.reason.c_str());
    if (!s.failing_seeds.empty() && s.fails_lab()) {
      std::printf(
          "  replay the first failing seed: faultline replay %s --variant %s --seed %llu --trace\n",
          s.scenario.c_str(), s.variant.c_str(),
          static_cast<unsigned long long>(s.failing_seeds.front()));
    }
  }
  if (!report.divergences.empty()) {
    std::printf("determinism: %zu runs diverged (see DIVERGENCE above)\n",
                report.divergences.size());
  }
  const bool ok = report.ok();
  std::printf("lab: %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

int RunReplay(const ReplayArgs& args) {
  const uint64_t seed = ParseUnsigned("--seed", args.seed, 0, UINT64_MAX);
  const lab::Scenario* s = lab::FindScenario(args.id);
  if (s == nullptr)
    throw UsageError("unknown scenario '" + args.id + "' (see faultline lab --list)");
  const std::vector<lab::VariantSpec> variants = s->variants();
  const lab::VariantSpec* v = lab::FindVariant(variants, args.variant);
  if (v == nullptr) throw UsageError("unknown variant '" + args.variant + "' for " + args.id);
  if (args.history_given && args.history_path.empty()) {
    throw UsageError("--history: empty file name");
  }
  std::string error;
  if (!args.history_path.empty() && !CanWrite(args.history_path, &error)) throw UsageError(error);

  lab::RunContext ctx;
  ctx.seed = seed;
  ctx.variant = v;
  if (args.trace) {
    ctx.trace = [](sim::SimTime at, const std::string& line) {
      std::printf("%12.6fs  %s\n", static_cast<double>(at.nanos()) / 1e9, line.c_str());
    };
  }
  sim::History history;
  ctx.history_out = &history;
  const lab::RunResult r = s->Run(ctx);
  std::printf("scenario %s variant %s seed %llu\n", args.id.c_str(), v->name.c_str(),
              static_cast<unsigned long long>(seed));
  std::printf("events %llu, simulated %.3fs\n", static_cast<unsigned long long>(r.events),
              r.simulated.seconds_f());
  for (const auto& [name, value] : r.metrics) std::printf("metric %s = %g\n", name.c_str(), value);
  for (const auto& [name, count] : r.violations) {
    auto it = r.violation_details.find(name);
    if (it != r.violation_details.end()) {
      std::printf("violation %s x%lld: first: %s\n", name.c_str(), static_cast<long long>(count),
                  it->second.c_str());
    } else {
      std::printf("violation %s x%lld\n", name.c_str(), static_cast<long long>(count));
    }
  }
  std::printf("violations %lld\n", static_cast<long long>(r.violation_count()));
  std::printf("hash %016llx\n", static_cast<unsigned long long>(r.hash));
  if (!args.history_path.empty()) {
    std::ofstream out(args.history_path);
    history.WriteJsonl(out);
    out.flush();
    if (!out) {
      std::fprintf(stderr, "faultline: error: cannot write '%s'\n", args.history_path.c_str());
      return 1;
    }
  }
  return r.violation_count() > 0 ? 1 : 0;
}

}  // namespace faultline::app
