// faultline soak SECONDS: hardened variants on fresh seeds, batch after batch, until the time is
// up. The first seed comes from the OS unless --seed gives it, and is printed first so that any
// soak can be rerun exactly.
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "apps/faultline/commands.h"
#include "faultline/lab/runner.h"

namespace faultline::app {
namespace {

// A random first seed in [1, 2^63): far enough from the end of the seed space that no soak can
// run past 2^64-1.
uint64_t SeedFromOs() {
  uint64_t seed = 0;
  ssize_t got = 0;
  do {
    got = getrandom(&seed, sizeof(seed), 0);
  } while (got < 0 && errno == EINTR);
  if (got != static_cast<ssize_t>(sizeof(seed))) throw UsageError("getrandom failed; pass --seed");
  seed &= (uint64_t{1} << 63) - 1;
  return seed == 0 ? 1 : seed;
}

}  // namespace

int RunSoak(const SoakArgs& args) {
  const uint64_t seconds = ParseUnsigned("seconds", args.seconds, 1, 31'536'000);
  const uint64_t jobs = ParseUnsigned("--jobs", args.jobs, 0, 1024);
  const uint64_t batch_arg = ParseUnsigned("--batch", args.batch, 0, 100'000);
  const std::vector<const lab::Scenario*> scenarios = SelectScenarios(args.ids);
  const bool seed_given = !args.seed.empty();
  const uint64_t first =
      seed_given ? ParseUnsigned("--seed", args.seed, 0, UINT64_MAX) : SeedFromOs();

  std::vector<lab::RunSpec> specs;
  for (const lab::Scenario* s : scenarios) {
    for (const lab::VariantSpec& v : s->variants()) {
      if (v.hardened || args.baselines) specs.push_back(lab::RunSpec{s, v, {}});
    }
  }
  if (specs.empty())
    throw UsageError("the chosen scenarios have no hardened variant (try --baselines)");
  lab::RunnerOptions options;
  options.threads = ThreadsFor(jobs);
  options.check_determinism = args.check_determinism;
  const uint64_t batch = batch_arg != 0 ? batch_arg : uint64_t{4} * options.threads;
  if (first > UINT64_MAX - (batch - 1)) {
    throw UsageError("--seed " + args.seed + " leaves fewer than one batch (" +
                     std::to_string(batch) + " seeds) before the largest seed 2^64-1");
  }

  std::string ids;
  for (const lab::Scenario* s : scenarios) {
    if (!args.ids.empty()) ids += " " + std::string(s->id());
  }
  std::printf("soak: %llu s from seed %llu (rerun: faultline soak %llu%s --seed %llu%s)\n",
              static_cast<unsigned long long>(seconds), static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(seconds), ids.c_str(),
              static_cast<unsigned long long>(first),
              (std::string(args.baselines ? " --baselines" : "") +
               (batch_arg != 0 ? " --batch " + std::to_string(batch_arg) : ""))
                  .c_str());
  std::fflush(stdout);

  lab::SoakOptions soak_options;
  soak_options.runner = options;
  soak_options.first_seed = first;
  soak_options.batch = batch;
  soak_options.seconds = static_cast<double>(seconds);
  const bool tty = isatty(STDERR_FILENO) == 1;
  const auto start = std::chrono::steady_clock::now();
  if (tty) {
    soak_options.on_batch = [start](uint64_t seeds_per_variant) {
      std::fprintf(stderr, "\rsoak: %llu seeds per variant, %.0f s  ",
                   static_cast<unsigned long long>(seeds_per_variant),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      std::fflush(stderr);
    };
  }
  const lab::SoakReport run = lab::Soak(specs, soak_options);
  if (tty) std::fprintf(stderr, "\r%60s\r", "");
  const lab::RunnerReport& total = run.total;
  for (const lab::Divergence& d : total.divergences) std::printf("%s\n", d.Describe().c_str());
  PrintTable(total.summaries);
  std::printf("seeds covered: %llu .. %llu (%llu per variant, %llu batches of %llu)\n",
              static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(first + (run.seeds_per_variant - 1)),
              static_cast<unsigned long long>(run.seeds_per_variant),
              static_cast<unsigned long long>(run.batches), static_cast<unsigned long long>(batch));
  // The same runs, whatever the machine's speed: the lab over the seed range covered.
  std::string variants;
  if (!args.baselines) {
    std::vector<std::string> names;
    for (const lab::RunSpec& spec : specs) {
      if (std::find(names.begin(), names.end(), spec.variant.name) != names.end()) continue;
      names.push_back(spec.variant.name);
      variants += " --variant " + spec.variant.name;
    }
  }
  std::printf("these runs again: faultline lab%s%s --seed %llu --seeds %llu\n", ids.c_str(),
              variants.c_str(), static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(run.seeds_per_variant));
  PrintTiming(total);
  bool ok = total.divergences.empty();
  for (const lab::VariantSummary& s : total.summaries) {
    if (!s.hardened || s.passed) continue;
    ok = false;
    std::printf("%s\n", s.reason.c_str());
    std::printf(
        "  replay the first failing seed: faultline replay %s --variant %s --seed %llu --trace\n",
        s.scenario.c_str(), s.variant.c_str(),
        static_cast<unsigned long long>(s.failing_seeds.front()));
  }
  if (!total.divergences.empty()) {
    std::printf("determinism: %zu runs diverged (see DIVERGENCE above)\n",
                total.divergences.size());
  }
  std::printf("soak: %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

}  // namespace faultline::app
