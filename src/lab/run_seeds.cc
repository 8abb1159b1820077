// RunSeeds: the parallel multi-seed runner of faultline/lab/runner.h.
//
// This file is host code, not node code: it owns threads and reads the real clocks, which the seams
// keep away from everything a simulation runs. Each World is built, run and destroyed on one
// worker thread and sees only its seed; the clocks here only time the runs (CPU and wall seconds
// for the report) and end a soak, and never reach a World. That is why 1 thread and 2 give the same
// results, bit for bit (runner_test checks it).
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "faultline/lab/runner.h"

namespace faultline::lab {
namespace {

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

RunResult RunOnce(const RunSpec& spec, uint64_t seed, std::vector<uint64_t>* hashes = nullptr,
                  std::vector<std::string>* trace = nullptr) {
  RunContext ctx;
  ctx.seed = seed;
  ctx.variant = &spec.variant;
  ctx.event_hashes = hashes;
  ctx.buggify = spec.buggify;
  if (trace != nullptr) {
    ctx.trace = [trace, hashes](sim::SimTime at, const std::string& line) {
      const size_t index = hashes != nullptr ? hashes->size() : 0;
      trace->push_back("#" + std::to_string(index) + " t=" + std::to_string(at.nanos()) + "ns " +
                       line);
    };
  }
  return spec.scenario->Run(ctx);
}

// Runs the seed twice more with per-event hashes and finds where the runs first differ.
Divergence FindDivergence(const RunSpec& spec, uint64_t seed) {
  std::vector<uint64_t> ha, hb;
  std::vector<std::string> ta, tb;
  RunOnce(spec, seed, &ha, &ta);
  RunOnce(spec, seed, &hb, &tb);
  size_t i = 0;
  while (i < ha.size() && i < hb.size() && ha[i] == hb[i]) ++i;
  Divergence d;
  d.scenario = std::string(spec.scenario->id());
  d.variant = spec.variant.name;
  d.seed = seed;
  d.first_divergent_event = i;
  d.events_a = ha.size();
  d.events_b = hb.size();
  const std::string prefix = "#" + std::to_string(i) + " ";
  for (const std::string& line : ta) {
    if (line.rfind(prefix, 0) == 0) d.trace_a.push_back(line);
  }
  for (const std::string& line : tb) {
    if (line.rfind(prefix, 0) == 0) d.trace_b.push_back(line);
  }
  return d;
}

struct Slot {
  double cpu = 0;
  double rerun_cpu = 0;
  double wall = 0;
  bool diverged = false;
};

// One seed: the run, its CPU and wall time, and with `check_determinism` a second run compared
// by hash.
Slot RunTimed(const RunSpec& spec, uint64_t seed, bool check_determinism, RunResult* result) {
  Slot slot;
  const auto wall_start = std::chrono::steady_clock::now();
  const double cpu_start = ThreadCpuSeconds();
  *result = RunOnce(spec, seed);
  const double cpu_mid = ThreadCpuSeconds();
  slot.cpu = cpu_mid - cpu_start;
  slot.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  if (check_determinism) {
    slot.diverged = RunOnce(spec, seed).hash != result->hash;
    slot.rerun_cpu = ThreadCpuSeconds() - cpu_mid;
  }
  return slot;
}

unsigned ThreadCount(unsigned requested, size_t tasks) {
  unsigned threads = requested != 0 ? requested : std::thread::hardware_concurrency();
  threads = std::clamp<unsigned>(threads, 1, 1024);
  return static_cast<unsigned>(std::max<size_t>(1, std::min<size_t>(threads, tasks)));
}

}  // namespace

std::string Divergence::Describe() const {
  std::string s = "DIVERGENCE " + scenario + "/" + variant + " seed " + std::to_string(seed) +
                  ": first divergent event #" + std::to_string(first_divergent_event) + " of " +
                  std::to_string(events_a) + "/" + std::to_string(events_b);
  for (const std::string& line : trace_a) s += "\n  run A: " + line;
  for (const std::string& line : trace_b) s += "\n  run B: " + line;
  return s;
}

bool RunnerReport::ok() const {
  if (!divergences.empty()) return false;
  for (const VariantSummary& s : summaries) {
    if (s.fails_lab()) return false;
  }
  return true;
}

RunnerReport RunSeeds(const std::vector<RunSpec>& specs, const RunnerOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  struct Task {
    size_t spec;
    size_t seed_index;
  };
  std::vector<Task> tasks;
  std::vector<std::vector<RunResult>> results(specs.size());
  std::vector<std::vector<Slot>> slots(specs.size());
  for (size_t j = 0; j < specs.size(); ++j) {
    FL_ASSERT(specs[j].scenario != nullptr);
    results[j].resize(specs[j].seeds.size());
    slots[j].resize(specs[j].seeds.size());
    for (size_t k = 0; k < specs[j].seeds.size(); ++k) tasks.push_back({j, k});
  }
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> done{0};
  std::mutex progress_mu;
  auto worker = [&] {
    while (true) {
      const size_t t = next.fetch_add(1);
      if (t >= tasks.size()) return;
      const RunSpec& spec = specs[tasks[t].spec];
      const uint64_t seed = spec.seeds[tasks[t].seed_index];
      slots[tasks[t].spec][tasks[t].seed_index] = RunTimed(
          spec, seed, options.check_determinism, &results[tasks[t].spec][tasks[t].seed_index]);
      const uint64_t finished = done.fetch_add(1) + 1;
      if (options.progress) {
        std::lock_guard<std::mutex> lock(progress_mu);
        options.progress(
            RunnerProgress{finished, tasks.size(), spec.scenario->id(), spec.variant.name, seed});
      }
    }
  };
  const unsigned threads = ThreadCount(options.threads, tasks.size());
  {
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i) pool.emplace_back(worker);
    worker();
    for (auto& th : pool) th.join();
  }

  RunnerReport report;
  report.threads = threads;
  for (size_t j = 0; j < specs.size(); ++j) {
    SummaryBuilder builder(*specs[j].scenario, specs[j].variant);
    for (size_t k = 0; k < specs[j].seeds.size(); ++k) {
      const Slot& slot = slots[j][k];
      builder.Add(specs[j].seeds[k], results[j][k]);
      builder.AddTime(slot.cpu, slot.rerun_cpu, slot.wall);
      report.cpu_seconds += slot.cpu + slot.rerun_cpu;
      ++report.runs;
      if (options.check_determinism) ++report.reruns;
    }
    // Divergence reports run on this thread, after the pool: they are rare and each is two more
    // traced runs, charged to the report's CPU total (not to the variant's).
    std::vector<uint64_t> divergent;
    for (size_t k = 0; k < specs[j].seeds.size(); ++k) {
      if (slots[j][k].diverged) divergent.push_back(specs[j].seeds[k]);
    }
    std::sort(divergent.begin(), divergent.end());
    for (uint64_t seed : divergent) {
      const double cpu_start = ThreadCpuSeconds();
      report.divergences.push_back(FindDivergence(specs[j], seed));
      report.cpu_seconds += ThreadCpuSeconds() - cpu_start;
      report.reruns += 2;
    }
    report.summaries.push_back(builder.Build());
  }
  if (options.keep_results) report.results = std::move(results);
  report.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

SoakReport Soak(std::vector<RunSpec> specs, const SoakOptions& options) {
  FL_ASSERT(options.batch >= 1);
  FL_ASSERT(options.first_seed <= UINT64_MAX - (options.batch - 1));
  RunnerOptions runner = options.runner;
  runner.keep_results = true;
  std::vector<SummaryBuilder> builders;
  for (const RunSpec& spec : specs) builders.emplace_back(*spec.scenario, spec.variant);
  SoakReport soak;
  soak.first_seed = options.first_seed;
  RunnerReport& total = soak.total;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(options.seconds));
  uint64_t next = options.first_seed;
  while (true) {
    for (RunSpec& spec : specs) spec.seeds = SeedRange(next, options.batch);
    RunnerReport r = RunSeeds(specs, runner);
    for (size_t i = 0; i < specs.size(); ++i) {
      for (size_t k = 0; k < specs[i].seeds.size(); ++k) {
        builders[i].Add(specs[i].seeds[k], r.results[i][k]);
      }
      builders[i].AddTime(r.summaries[i].cpu_seconds, r.summaries[i].rerun_cpu_seconds,
                          r.summaries[i].wall_seconds);
    }
    for (Divergence& d : r.divergences) total.divergences.push_back(std::move(d));
    total.runs += r.runs;
    total.reruns += r.reruns;
    total.cpu_seconds += r.cpu_seconds;
    total.threads = r.threads;
    soak.seeds_per_variant += options.batch;
    ++soak.batches;
    if (options.on_batch) options.on_batch(soak.seeds_per_variant);
    // Stop when the time is up or the next batch would pass the last seed.
    if (std::chrono::steady_clock::now() >= end) break;
    if (next > UINT64_MAX - options.batch) break;
    next += options.batch;
    if (next > UINT64_MAX - (options.batch - 1)) break;
  }
  total.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const SummaryBuilder& b : builders) total.summaries.push_back(b.Build());
  return soak;
}

}  // namespace faultline::lab
