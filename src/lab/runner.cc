#include "faultline/lab/runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace faultline::lab {

const char* VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kHolds:
      return "holds";
    case Verdict::kViolated:
      return "VIOLATED";
    case Verdict::kFailsAsExpected:
      return "fails as expected";
    case Verdict::kDidNotFail:
      return "DID NOT FAIL";
    case Verdict::kInconclusive:
      return "inconclusive";
  }
  return "?";
}

uint64_t MinSeedsToJudge(double failure_rate_min) {
  // Smallest n with (1 - p)^n <= 0.05, i.e. n >= ln(0.05) / ln(1 - p).
  if (!(failure_rate_min > 0) || failure_rate_min >= 0.95) return 1;
  const double n = std::log(0.05) / std::log1p(-failure_rate_min);
  // Guard against n landing a hair above an integer through rounding.
  const double rounded = std::round(n);
  if (std::fabs(n - rounded) < 1e-9) return static_cast<uint64_t>(rounded);
  return static_cast<uint64_t>(std::ceil(n));
}

SummaryBuilder::SummaryBuilder(const Scenario& scenario, const VariantSpec& variant) {
  base_.scenario = std::string(scenario.id());
  base_.variant = variant.name;
  base_.hardened = variant.hardened;
  base_.failure_rate_min = variant.failure_rate_min;
}

void SummaryBuilder::Add(uint64_t seed, const RunResult& r) {
  VariantSummary& s = base_;
  ++s.seeds;
  const int64_t v = r.violation_count();
  s.violations += v;
  if (v > 0) s.failing_seeds.push_back(seed);
  for (const auto& [name, count] : r.violations) {
    s.violations_by_name[name] += count;
    auto it = r.violation_details.find(name);
    const std::string detail = it == r.violation_details.end() ? std::string() : it->second;
    auto [first, inserted] = s.first_violations.try_emplace(name, ViolationInstance{seed, detail});
    if (!inserted && seed < first->second.seed) first->second = ViolationInstance{seed, detail};
  }
  for (const auto& [name, value] : r.metrics) samples_[name].push_back(value);
  for (const auto& [name, count] : r.probes) s.probes[name] += count;
  for (const auto& [name, count] : r.buggify_fired) s.buggify_fired[name] += count;
  s.events += r.events;
  s.simulated += r.simulated;
}

void SummaryBuilder::AddTime(double cpu_seconds, double rerun_cpu_seconds, double wall_seconds) {
  base_.cpu_seconds += cpu_seconds;
  base_.rerun_cpu_seconds += rerun_cpu_seconds;
  base_.wall_seconds += wall_seconds;
}

namespace {

std::string Percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.0f%%", fraction * 100);
  return buf;
}

void Judge(VariantSummary& s) {
  const std::string who = s.scenario + "/" + s.variant;
  const size_t failing = s.failing_seeds.size();
  const std::string counted = std::to_string(failing) + " of " + std::to_string(s.seeds) + " seeds";
  if (s.hardened) {
    s.verdict_code = s.violations == 0 ? Verdict::kHolds : Verdict::kViolated;
    if (s.violations > 0) {
      s.reason = who + " VIOLATED: " + std::to_string(s.violations) + " violations on " + counted +
                 ", first on seed " + std::to_string(s.failing_seeds.front()) +
                 "; a hardened variant must have none";
    }
  } else {
    const double rate =
        s.seeds == 0 ? 0.0 : static_cast<double>(failing) / static_cast<double>(s.seeds);
    const uint64_t needed = MinSeedsToJudge(s.failure_rate_min);
    const std::string minimum = Percent(s.failure_rate_min);
    if (failing > 0 && rate >= s.failure_rate_min) {
      s.verdict_code = Verdict::kFailsAsExpected;
      s.reason = who + " fails as expected: on " + counted + " (" + Percent(rate) + ", minimum " +
                 minimum + ")";
    } else if (s.seeds < needed) {
      s.verdict_code = Verdict::kInconclusive;
      s.reason = who + " inconclusive: failed on " + counted + " (" + Percent(rate) + ", minimum " +
                 minimum + "), but judging a " + minimum + " failure rate needs " +
                 std::to_string(needed) + " seeds or more (--seeds)";
    } else {
      s.verdict_code = Verdict::kDidNotFail;
      s.reason = who + " DID NOT FAIL: failed on " + counted + " (" + Percent(rate) +
                 "), below its minimum failure rate " + minimum;
    }
  }
  s.passed = s.verdict_code == Verdict::kHolds || s.verdict_code == Verdict::kFailsAsExpected;
  s.verdict = VerdictName(s.verdict_code);
}

}  // namespace

VariantSummary SummaryBuilder::Build() const {
  VariantSummary s = base_;
  std::sort(s.failing_seeds.begin(), s.failing_seeds.end());
  for (const auto& [name, unsorted] : samples_) {
    std::vector<double> values = unsorted;
    std::sort(values.begin(), values.end());
    MetricStats m;
    double sum = 0;
    for (double x : values) sum += x;
    m.mean = sum / static_cast<double>(values.size());
    m.min = values.front();
    m.max = values.back();
    m.p50 = values[values.size() / 2];
    s.metrics[name] = m;
  }
  Judge(s);
  return s;
}

VariantSummary Summarize(const Scenario& scenario, const VariantSpec& variant,
                         const std::vector<uint64_t>& seeds,
                         const std::vector<RunResult>& results) {
  FL_ASSERT(seeds.size() == results.size());
  SummaryBuilder builder(scenario, variant);
  for (size_t i = 0; i < results.size(); ++i) builder.Add(seeds[i], results[i]);
  return builder.Build();
}

std::vector<uint64_t> SeedRange(uint64_t first, uint64_t count) {
  FL_ASSERT(count == 0 || first <= UINT64_MAX - (count - 1));
  std::vector<uint64_t> seeds;
  seeds.reserve(count);
  for (uint64_t k = 0; k < count; ++k) seeds.push_back(first + k);
  return seeds;
}

}  // namespace faultline::lab
