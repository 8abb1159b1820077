#include "faultline/lab/runner.h"

#include <algorithm>

namespace faultline::lab {

VariantSummary Summarize(const Scenario& scenario, const VariantSpec& variant,
                         const std::vector<uint64_t>& seeds, const std::vector<RunResult>& results) {
  FL_ASSERT(seeds.size() == results.size());
  VariantSummary s;
  s.scenario = std::string(scenario.id());
  s.variant = variant.name;
  s.hardened = variant.hardened;
  s.failure_rate_min = variant.failure_rate_min;
  s.seeds = seeds.size();
  std::map<std::string, std::vector<double>> samples;
  for (size_t i = 0; i < results.size(); ++i) {
    const RunResult& r = results[i];
    const int64_t v = r.violation_count();
    s.violations += v;
    if (v > 0) s.failing_seeds.push_back(seeds[i]);
    for (const auto& [name, count] : r.violations) s.violations_by_name[name] += count;
    for (const auto& [name, value] : r.metrics) samples[name].push_back(value);
    s.events += r.events;
    s.simulated += r.simulated;
  }
  std::sort(s.failing_seeds.begin(), s.failing_seeds.end());
  for (auto& [name, values] : samples) {
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
  if (variant.hardened) {
    s.passed = s.violations == 0;
    s.verdict = s.passed ? "holds" : "VIOLATED";
  } else {
    const double rate = s.seeds == 0 ? 0.0
                                     : static_cast<double>(s.failing_seeds.size()) /
                                           static_cast<double>(s.seeds);
    s.passed = s.seeds > 0 && !s.failing_seeds.empty() && rate >= variant.failure_rate_min;
    s.verdict = s.passed ? "fails as expected" : "DID NOT FAIL";
  }
  return s;
}

}  // namespace faultline::lab
