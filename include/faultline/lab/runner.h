// File: faultline/lab/runner.h
//
// Aggregation of many seeds of one (scenario, variant) into the summary the lab prints and writes
// as JSON, and the lab's verdict.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "faultline/lab/scenario.h"

namespace faultline::lab {

struct MetricStats {
  double mean = 0;
  double min = 0;
  double max = 0;
  double p50 = 0;
};

struct VariantSummary {
  std::string scenario;
  std::string variant;
  bool hardened = false;
  double failure_rate_min = 0;
  uint64_t seeds = 0;
  int64_t violations = 0;  // total over all seeds
  std::map<std::string, int64_t> violations_by_name;
  std::vector<uint64_t> failing_seeds;  // ascending
  std::map<std::string, MetricStats> metrics;
  uint64_t events = 0;
  Duration simulated;
  double wall_seconds = 0;  // filled by the caller that timed the runs
  bool passed = false;
  std::string verdict;  // "holds", "fails as expected", "VIOLATED", "DID NOT FAIL"
};

// `results[i]` is the run of `seeds[i]`.
VariantSummary Summarize(const Scenario& scenario, const VariantSpec& variant,
                         const std::vector<uint64_t>& seeds, const std::vector<RunResult>& results);

}  // namespace faultline::lab
