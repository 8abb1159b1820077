// File: faultline/lab/shrink.h
//
// Shrinking a failing run: the fewest faults, the fewest operations and the shortest fault phase
// that still fail with the same violation.
//
//   lab::ShrinkOptions options;
//   const Result<lab::ShrinkResult> r = lab::Shrink(*scenario, variant, seed, options);
//   std::puts(r->ReplayCommand().c_str());  // faultline replay ID --variant V --seed S --faults ...
//
// A run's choices are its drawn nemesis schedule (sim::Nemesis::Draw -> Install) plus, for
// scenarios whose workload counts operations (World::AdmitOp), an operation limit, and the end of
// the fault phase. Shrink replays the seed under a sim::RunPlan that keeps a subset of the
// installed faults, and
//   1. delta-debugs the kept faults (Zeller's ddmin: drop halves, then quarters, ... then single
//      faults, keeping any subset that still fails),
//   2. binary-searches the smallest operation limit that still fails,
//   3. binary-searches the earliest end of the fault phase (100 ms steps) that still fails,
//   4. if more than `faults_goal` faults remain, tries the next `nearby_seeds` seeds: each that
//      fails with the same violation on fewer drawn faults is shrunk too, and the smallest
//      reduced run wins (TigerBeetle keeps the shortest failing seed; this is the same fallback).
// "The same violation" is a violation of the same name as the target (the original run's first
// violation by name, unless one is given). Every step replays a whole run, deterministically:
// a reduced run fails the same way whenever it is replayed with the same plan.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/lab/scenario.h"
#include "faultline/sim/nemesis.h"

namespace faultline::lab {

struct ShrinkOptions {
  // Violation to preserve; empty: the original run's first violation (by name).
  std::string violation;
  // Runs at most; the best reduction so far is returned when they run out. Limit: 1..1000000.
  uint64_t runs_max = 2000;
  // Stop looking at other seeds once a reduction has at most this many faults.
  uint32_t faults_goal = 3;
  // Seeds after the given one tried when the reduction keeps more than faults_goal faults.
  uint64_t nearby_seeds = 16;
  bool buggify = false;
  // Called after every run with a one-line description (may be empty).
  std::function<void(const std::string&)> progress;
  Status Validate() const;
};

struct ShrinkResult {
  std::string scenario;
  std::string variant;
  std::string violation;
  bool buggify = false;
  uint64_t original_seed = 0;
  // The original run of original_seed.
  std::vector<sim::FaultAction> original_faults;  // installed actions, closing HealAll excluded
  int64_t original_ops = -1;
  Duration original_fault_end;
  // The reduced run (its seed may be a nearby one).
  uint64_t seed = 0;
  std::vector<uint32_t> faults;                  // kept indices into the seed's installed actions
  std::vector<sim::FaultAction> reduced_faults;  // those actions
  std::optional<int64_t> ops_max;
  std::optional<Duration> fault_end;
  RunResult reduced;  // the reduced run's result
  uint64_t runs = 0;  // runs tried, the original included
  // "faultline replay ID --variant V --seed S --faults i,j[ --ops N][ --time-ms T][ --buggify]".
  std::string ReplayCommand() const;
};

// The plan that replays `r`'s reduced run.
sim::RunPlan ReducedPlan(const ShrinkResult& r);

// kFailedPrecondition when the original run does not fail (or not with options.violation);
// kInvalidArgument for bad options.
Result<ShrinkResult> Shrink(const Scenario& scenario, const VariantSpec& variant, uint64_t seed,
                            const ShrinkOptions& options);

// Parses "3,7,12" (ascending or not; duplicates merged) or "none". kInvalidArgument otherwise.
Result<std::vector<uint32_t>> ParseFaultList(std::string_view text);

}  // namespace faultline::lab
