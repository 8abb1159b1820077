#include "faultline/lab/shrink.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "faultline/core/options.h"

namespace faultline::lab {
namespace {

constexpr Duration kTimeStep = Duration::Millis(100);

// A candidate reduced run of one seed.
struct Candidate {
  std::vector<uint32_t> faults;
  std::optional<int64_t> ops_max;
  std::optional<Duration> fault_end;
};

// Smaller is better: fewer faults, then fewer operations, then a shorter fault phase.
bool Better(const ShrinkResult& a, const ShrinkResult& b) {
  if (a.faults.size() != b.faults.size()) return a.faults.size() < b.faults.size();
  const int64_t ops_a = a.ops_max.value_or(INT64_MAX);
  const int64_t ops_b = b.ops_max.value_or(INT64_MAX);
  if (ops_a != ops_b) return ops_a < ops_b;
  return a.fault_end.value_or(Duration::Nanos(INT64_MAX)) < b.fault_end.value_or(Duration::Nanos(INT64_MAX));
}

std::vector<sim::FaultAction> WithoutHeal(const std::vector<sim::FaultAction>& actions) {
  std::vector<sim::FaultAction> out;
  for (const sim::FaultAction& a : actions) {
    if (a.kind != sim::FaultKind::kHealAll) out.push_back(a);
  }
  return out;
}

class Shrinker {
 public:
  Shrinker(const Scenario& scenario, const VariantSpec& variant, const ShrinkOptions& options)
      : scenario_(scenario), variant_(variant), options_(options) {}

  uint64_t runs() const { return runs_; }
  bool budget_left() const { return runs_ < options_.runs_max; }

  // Runs `seed` under `c` (null: as drawn); the installed actions go to `installed`.
  RunResult Run(uint64_t seed, const Candidate* c, std::vector<sim::FaultAction>* installed) {
    sim::RunPlan plan;
    if (c != nullptr) {
      plan.faults = c->faults;
      plan.ops_max = c->ops_max;
      plan.fault_end = c->fault_end;
    }
    RunContext ctx;
    ctx.seed = seed;
    ctx.variant = &variant_;
    ctx.plan = &plan;
    ctx.buggify = options_.buggify;
    RunResult r = scenario_.Run(ctx);
    ++runs_;
    if (installed != nullptr) *installed = std::move(plan.installed);
    return r;
  }

  // Does `seed` under `c` still fail with the target violation?
  bool Fails(uint64_t seed, const Candidate& c, const char* step) {
    if (!budget_left()) return false;
    const RunResult r = Run(seed, &c, nullptr);
    const bool fails = r.violations.count(target_) > 0;
    if (options_.progress) {
      options_.progress("run " + std::to_string(runs_) + " " + step + ": seed " +
                        std::to_string(seed) + ", " + std::to_string(c.faults.size()) +
                        " faults" + (c.ops_max ? ", ops " + std::to_string(*c.ops_max) : "") +
                        (c.fault_end ? ", faults end at " + std::to_string(c.fault_end->nanos() / 1'000'000) + " ms"
                                   : "") + ": " +
                        (fails ? "fails" : "passes"));
    }
    return fails;
  }

  void set_target(std::string target) { target_ = std::move(target); }

  // ddmin over c.faults: the result is 1-minimal (dropping any one fault makes the run pass)
  // unless the run budget ran out.
  void ReduceFaults(uint64_t seed, Candidate* c) {
    Candidate trial = *c;
    trial.faults.clear();
    if (Fails(seed, trial, "no faults")) {
      c->faults.clear();
      return;
    }
    size_t n = 2;
    while (c->faults.size() >= 2 && budget_left()) {
      const std::vector<uint32_t>& f = c->faults;
      std::vector<std::vector<uint32_t>> chunks(n);
      for (size_t i = 0; i < f.size(); ++i) chunks[i * n / f.size()].push_back(f[i]);
      bool reduced = false;
      for (size_t i = 0; i < n && !reduced; ++i) {  // a chunk alone
        trial.faults = chunks[i];
        if (Fails(seed, trial, "ddmin subset")) {
          c->faults = chunks[i];
          n = 2;
          reduced = true;
        }
      }
      for (size_t i = 0; i < n && !reduced && n > 2; ++i) {  // all but a chunk
        trial.faults.clear();
        for (size_t j = 0; j < n; ++j) {
          if (j != i) trial.faults.insert(trial.faults.end(), chunks[j].begin(), chunks[j].end());
        }
        std::sort(trial.faults.begin(), trial.faults.end());
        if (Fails(seed, trial, "ddmin complement")) {
          c->faults = trial.faults;
          n = std::max<size_t>(n - 1, 2);
          reduced = true;
        }
      }
      if (reduced) continue;
      if (n >= c->faults.size()) break;
      n = std::min(n * 2, c->faults.size());
    }
  }

  // The smallest operation limit in [1, ops] that still fails (binary search).
  void ReduceOps(uint64_t seed, int64_t ops, Candidate* c) {
    if (ops <= 1) return;
    int64_t lo = 1;
    int64_t hi = ops;  // fails: the original number of operations
    while (lo < hi && budget_left()) {
      const int64_t mid = lo + (hi - lo) / 2;
      Candidate trial = *c;
      trial.ops_max = mid;
      if (Fails(seed, trial, "ops")) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    if (hi < ops) c->ops_max = hi;
  }

  // The earliest end of the fault phase, in kTimeStep steps, that still fails.
  void ReduceTime(uint64_t seed, Duration end, const std::vector<sim::FaultAction>& installed,
                  Candidate* c) {
    int64_t lo = 0;
    int64_t hi = (end.nanos() + kTimeStep.nanos() - 1) / kTimeStep.nanos();
    const int64_t original = hi;
    while (lo < hi && budget_left()) {
      const int64_t mid = lo + (hi - lo) / 2;
      Candidate trial = *c;
      trial.fault_end = kTimeStep * mid;
      if (Fails(seed, trial, "time")) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    if (hi >= original) return;
    c->fault_end = kTimeStep * hi;
    // Faults at or after the new end never run: drop them from the list.
    std::erase_if(c->faults, [&](uint32_t i) { return installed[i].at >= *c->fault_end; });
  }

  ShrinkResult Reduce(uint64_t seed, const std::vector<sim::FaultAction>& installed,
                      int64_t ops) {
    Candidate c;
    Duration end = Duration::Zero();
    bool heal = false;
    for (uint32_t i = 0; i < installed.size(); ++i) {
      if (installed[i].kind == sim::FaultKind::kHealAll) {
        end = std::max(end, installed[i].at);
        heal = true;
      } else {
        c.faults.push_back(i);
      }
    }
    ReduceFaults(seed, &c);
    if (ops > 0) ReduceOps(seed, ops, &c);
    if (heal) ReduceTime(seed, end, installed, &c);
    ShrinkResult r;
    r.seed = seed;
    r.faults = c.faults;
    for (uint32_t i : c.faults) r.reduced_faults.push_back(installed[i]);
    r.ops_max = c.ops_max;
    r.fault_end = c.fault_end;
    r.reduced = Run(seed, &c, nullptr);
    return r;
  }

 private:
  const Scenario& scenario_;
  const VariantSpec& variant_;
  const ShrinkOptions& options_;
  std::string target_;
  uint64_t runs_ = 0;
};

}  // namespace

Status ShrinkOptions::Validate() const {
  FL_CHECK_OPTION(runs_max >= 1 && runs_max <= 1'000'000, "runs_max must be in [1, 1000000]");
  FL_CHECK_OPTION(nearby_seeds <= 100'000, "nearby_seeds must be <= 100000");
  return Status::Ok();
}

std::string ShrinkResult::ReplayCommand() const {
  std::string cmd = "faultline replay " + scenario + " --variant " + variant + " --seed " +
                    std::to_string(seed) + " --faults ";
  if (faults.empty()) cmd += "none";
  for (size_t i = 0; i < faults.size(); ++i) {
    if (i > 0) cmd += ",";
    cmd += std::to_string(faults[i]);
  }
  if (ops_max) cmd += " --ops " + std::to_string(*ops_max);
  if (fault_end) cmd += " --time-ms " + std::to_string(fault_end->nanos() / 1'000'000);
  if (buggify) cmd += " --buggify";
  return cmd;
}

sim::RunPlan ReducedPlan(const ShrinkResult& r) {
  sim::RunPlan plan;
  plan.faults = r.faults;
  plan.ops_max = r.ops_max;
  plan.fault_end = r.fault_end;
  return plan;
}

Result<ShrinkResult> Shrink(const Scenario& scenario, const VariantSpec& variant, uint64_t seed,
                            const ShrinkOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  Shrinker shrinker(scenario, variant, options);
  std::vector<sim::FaultAction> installed;
  const RunResult original = shrinker.Run(seed, nullptr, &installed);
  if (original.violations.empty()) {
    return FailedPreconditionError("the run does not fail: nothing to shrink");
  }
  std::string target = options.violation;
  if (target.empty()) target = original.violations.begin()->first;
  if (original.violations.count(target) == 0) {
    return FailedPreconditionError("the run does not show violation '" + target + "'");
  }
  shrinker.set_target(target);

  ShrinkResult best = shrinker.Reduce(seed, installed, original.ops);
  best.original_seed = seed;
  best.original_faults = WithoutHeal(installed);
  best.original_ops = original.ops;
  for (const sim::FaultAction& a : installed) {
    if (a.kind == sim::FaultKind::kHealAll) best.original_fault_end = a.at;
  }

  // Fallback: nearby seeds that fail the same way, fewest drawn faults first.
  if (best.faults.size() > options.faults_goal) {
    struct Nearby {
      uint64_t seed;
      std::vector<sim::FaultAction> installed;
      int64_t ops;
    };
    std::vector<Nearby> failing;
    for (uint64_t k = 1; k <= options.nearby_seeds && seed <= UINT64_MAX - k; ++k) {
      if (!shrinker.budget_left()) break;
      Nearby n{seed + k, {}, 0};
      const RunResult r = shrinker.Run(n.seed, nullptr, &n.installed);
      n.ops = r.ops;
      if (r.violations.count(target) > 0) failing.push_back(std::move(n));
    }
    std::stable_sort(failing.begin(), failing.end(), [](const Nearby& a, const Nearby& b) {
      return a.installed.size() < b.installed.size();
    });
    for (const Nearby& n : failing) {
      if (best.faults.size() <= options.faults_goal || !shrinker.budget_left()) break;
      ShrinkResult candidate = shrinker.Reduce(n.seed, n.installed, n.ops);
      if (Better(candidate, best)) {
        candidate.original_seed = best.original_seed;
        candidate.original_faults = std::move(best.original_faults);
        candidate.original_ops = best.original_ops;
        candidate.original_fault_end = best.original_fault_end;
        best = std::move(candidate);
      }
    }
  }
  best.scenario = std::string(scenario.id());
  best.variant = variant.name;
  best.violation = target;
  best.buggify = options.buggify;
  best.runs = shrinker.runs();
  return best;
}

Result<std::vector<uint32_t>> ParseFaultList(std::string_view text) {
  std::vector<uint32_t> out;
  if (text == "none") return out;
  if (text.empty()) return InvalidArgumentError("empty fault list (use 'none' for no faults)");
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string_view item = text.substr(pos, comma - pos);
    uint32_t v = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size()) {
      return InvalidArgumentError("not a fault index: '" + std::string(item) + "'");
    }
    out.push_back(v);
    pos = comma + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace faultline::lab
