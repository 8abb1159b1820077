#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "apps/faultline/commands.h"
#include "faultline/lab/scenario.h"

namespace faultline::app {
namespace {

struct Job {
  const lab::Scenario* scenario;
  lab::VariantSpec variant;
  std::vector<uint64_t> seeds;
  std::vector<lab::RunResult> results;
  std::vector<uint64_t> divergent_seeds;
  double wall_seconds = 0;
};

// Progress on stderr, only when it is a terminal.
class Progress {
 public:
  Progress(uint64_t total) : total_(total), tty_(isatty(STDERR_FILENO) == 1) {}
  void Tick(const std::string& label) {
    const uint64_t done = ++done_;
    if (!tty_) return;
    std::lock_guard<std::mutex> lock(mu_);
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(kWidth * done / total_);
    std::fprintf(stderr, "\r[%s%s] %llu/%llu %-40s", std::string(filled, '=').c_str(),
                 std::string(kWidth - filled, ' ').c_str(), static_cast<unsigned long long>(done),
                 static_cast<unsigned long long>(total_), label.c_str());
    if (done == total_) std::fprintf(stderr, "\r%*s\r", kWidth + 60, "");
    std::fflush(stderr);
  }

 private:
  uint64_t total_;
  bool tty_;
  std::atomic<uint64_t> done_{0};
  std::mutex mu_;
};

lab::RunResult RunOnce(const lab::Scenario& s, const lab::VariantSpec& v, uint64_t seed,
                       std::vector<uint64_t>* hashes = nullptr,
                       std::vector<std::string>* trace = nullptr) {
  lab::RunContext ctx;
  ctx.seed = seed;
  ctx.variant = &v;
  ctx.event_hashes = hashes;
  if (trace != nullptr) {
    ctx.trace = [trace, hashes](sim::SimTime at, const std::string& line) {
      const size_t index = hashes != nullptr ? hashes->size() : 0;
      std::string entry = "#";  // appended: "#" + std::string&& trips GCC 12's -Wrestrict
      entry += std::to_string(index);
      trace->push_back(entry + " t=" + std::to_string(at.nanos()) + "ns " + line);
    };
  }
  return s.Run(ctx);
}

// Runs the seed twice more with per-event hashes and prints where the runs first differ.
void ReportDivergence(const Job& job, uint64_t seed) {
  std::vector<uint64_t> ha, hb;
  std::vector<std::string> ta, tb;
  RunOnce(*job.scenario, job.variant, seed, &ha, &ta);
  RunOnce(*job.scenario, job.variant, seed, &hb, &tb);
  size_t i = 0;
  while (i < ha.size() && i < hb.size() && ha[i] == hb[i]) ++i;
  std::printf("DIVERGENCE %s/%s seed %llu: first divergent event #%zu of %zu/%zu\n",
              std::string(job.scenario->id()).c_str(), job.variant.name.c_str(),
              static_cast<unsigned long long>(seed), i, ha.size(), hb.size());
  const std::string prefix = std::string("#").append(std::to_string(i)) + " ";
  for (const auto& [name, lines] : {std::pair{"run A", &ta}, std::pair{"run B", &tb}}) {
    for (const std::string& line : *lines) {
      if (line.rfind(prefix, 0) == 0) std::printf("  %s: %s\n", name, line.c_str());
    }
  }
}

void RunJobs(std::vector<Job>& jobs, unsigned threads, bool check_determinism) {
  struct Task {
    size_t job;
    size_t seed_index;
  };
  std::vector<Task> tasks;
  for (size_t j = 0; j < jobs.size(); ++j) {
    jobs[j].results.resize(jobs[j].seeds.size());
    for (size_t k = 0; k < jobs[j].seeds.size(); ++k) tasks.push_back({j, k});
  }
  Progress progress(tasks.size());
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::vector<double> wall(jobs.size(), 0.0);
  auto worker = [&] {
    while (true) {
      const size_t t = next.fetch_add(1);
      if (t >= tasks.size()) return;
      Job& job = jobs[tasks[t].job];
      const uint64_t seed = job.seeds[tasks[t].seed_index];
      const auto start = std::chrono::steady_clock::now();
      lab::RunResult r = RunOnce(*job.scenario, job.variant, seed);
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      bool diverged = false;
      if (check_determinism) diverged = RunOnce(*job.scenario, job.variant, seed).hash != r.hash;
      {
        std::lock_guard<std::mutex> lock(mu);
        wall[tasks[t].job] += secs;
        if (diverged) job.divergent_seeds.push_back(seed);
      }
      job.results[tasks[t].seed_index] = std::move(r);
      progress.Tick(std::string(job.scenario->id()) + "/" + job.variant.name);
    }
  };
  threads = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(tasks.size())));
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  for (size_t j = 0; j < jobs.size(); ++j) {
    jobs[j].wall_seconds = wall[j];
    std::sort(jobs[j].divergent_seeds.begin(), jobs[j].divergent_seeds.end());
  }
}

void PrintList() {
  for (const lab::Scenario* s : lab::AllScenarios()) {
    std::printf("%s\n  %s\n", std::string(s->id()).c_str(), std::string(s->description()).c_str());
    for (const lab::VariantSpec& v : s->variants()) {
      std::printf("    %-12s %-9s %s\n", v.name.c_str(), v.hardened ? "hardened" : "baseline",
                  v.description.c_str());
    }
  }
}

}  // namespace

int RunLab(const LabArgs& args) {
  if (args.list) {
    PrintList();
    return 0;
  }
  std::vector<const lab::Scenario*> scenarios;
  if (args.ids.empty()) {
    scenarios = lab::AllScenarios();
  } else {
    for (const std::string& id : args.ids) {
      const lab::Scenario* s = lab::FindScenario(id);
      if (s == nullptr) UsageError("unknown scenario '" + id + "' (see faultline lab --list)");
      scenarios.push_back(s);
    }
  }
  for (const std::string& v : args.variants) {
    bool known = false;
    for (const lab::Scenario* s : scenarios) known |= lab::FindVariant(s->variants(), v) != nullptr;
    if (!known) UsageError("unknown variant '" + v + "' for the chosen scenarios");
  }
  if (args.seed > UINT64_MAX - args.seeds) UsageError("--seed + --seeds overflows 64 bits");
  std::string error;
  if (!args.json_path.empty() && !CanWrite(args.json_path, &error)) UsageError(error);

  std::vector<Job> jobs;
  for (const lab::Scenario* s : scenarios) {
    for (const lab::VariantSpec& v : s->variants()) {
      if (!args.variants.empty() &&
          std::find(args.variants.begin(), args.variants.end(), v.name) == args.variants.end()) {
        continue;
      }
      Job job{s, v, {}, {}, {}, 0};
      for (uint64_t k = 0; k < args.seeds; ++k) job.seeds.push_back(args.seed + k);
      jobs.push_back(std::move(job));
    }
  }
  const unsigned threads = args.jobs != 0 ? args.jobs : std::max(1u, std::thread::hardware_concurrency());
  RunJobs(jobs, threads, args.check_determinism);

  std::vector<lab::VariantSummary> summaries;
  bool ok = true;
  uint64_t divergences = 0;
  for (const Job& job : jobs) {
    lab::VariantSummary s = lab::Summarize(*job.scenario, job.variant, job.seeds, job.results);
    s.wall_seconds = job.wall_seconds;
    ok &= s.passed;
    summaries.push_back(std::move(s));
    divergences += job.divergent_seeds.size();
    for (uint64_t seed : job.divergent_seeds) ReportDivergence(job, seed);
  }
  PrintTable(summaries);
  if (args.check_determinism) {
    std::printf("determinism: %llu runs checked twice, %llu divergences\n",
                static_cast<unsigned long long>(args.seeds * jobs.size()),
                static_cast<unsigned long long>(divergences));
    ok &= divergences == 0;
  }
  if (!args.json_path.empty() && !WriteJson(args.json_path, summaries, args, &error)) {
    std::fprintf(stderr, "faultline: error: %s\n", error.c_str());
    return 1;
  }
  for (const lab::VariantSummary& s : summaries) {
    if (!s.passed && !s.failing_seeds.empty()) {
      std::printf("replay the first failing seed: faultline replay %s --variant %s --seed %llu --trace\n",
                  s.scenario.c_str(), s.variant.c_str(),
                  static_cast<unsigned long long>(s.failing_seeds.front()));
    }
  }
  std::printf("lab: %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

int RunReplay(const ReplayArgs& args) {
  const lab::Scenario* s = lab::FindScenario(args.id);
  if (s == nullptr) UsageError("unknown scenario '" + args.id + "' (see faultline lab --list)");
  const std::vector<lab::VariantSpec> variants = s->variants();
  const lab::VariantSpec* v = lab::FindVariant(variants, args.variant);
  if (v == nullptr) UsageError("unknown variant '" + args.variant + "' for " + args.id);
  std::string error;
  if (!args.history_path.empty() && !CanWrite(args.history_path, &error)) UsageError(error);

  lab::RunContext ctx;
  ctx.seed = args.seed;
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
              static_cast<unsigned long long>(args.seed));
  std::printf("events %llu, simulated %.3fs\n", static_cast<unsigned long long>(r.events),
              r.simulated.seconds_f());
  for (const auto& [name, value] : r.metrics) std::printf("metric %s = %g\n", name.c_str(), value);
  for (const auto& [name, count] : r.violations) {
    std::printf("violation %s x%lld\n", name.c_str(), static_cast<long long>(count));
  }
  std::printf("violations %lld\n", static_cast<long long>(r.violation_count()));
  std::printf("hash %016llx\n", static_cast<unsigned long long>(r.hash));
  if (!args.history_path.empty()) {
    std::ofstream out(args.history_path);
    history.WriteJsonl(out);
    if (!out) {
      std::fprintf(stderr, "faultline: error: cannot write %s\n", args.history_path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace faultline::app
