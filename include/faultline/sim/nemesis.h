// File: faultline/sim/nemesis.h
//
// The nemesis: a schedule of faults, either scripted by hand or drawn from the seed's nemesis
// stream. A drawn schedule is fixed before the run starts (so it can be printed, replayed and, later,
// shrunk), honours its limits (at most one partition at a time; at most `down_max` processes crashed
// or paused at once, so a majority can stay live when the scenario asks for it), and ends with
// World::HealAll() at `start + duration` — the safety phase gives way to a liveness phase in which
// the system must recover (TigerBeetle's VOPR does the same).
#pragma once

// Node code (files compiled with FAULTLINE_NODE_CODE) runs on the real runtime too: it may not see
// the simulator.
#ifdef FAULTLINE_NODE_CODE
#error "node code must not include faultline/sim/ headers"
#endif

#include <cstdint>
#include <string>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/sim/partition.h"
#include "faultline/sim/world.h"

namespace faultline::sim {

enum class FaultKind : uint8_t {
  kPartition,    // grudge applied
  kHeal,         // partitions healed
  kCrash,        // node crashed
  kRestart,      // node restarted
  kPause,        // node paused
  kResume,       // node resumed
  kClockJump,    // wall clock stepped by `amount`
  kClockStrobe,  // wall clock strobes by `amount` with `period` for `length`
  kClockDrift,   // rate set to `amount` ppm
  kClockReset,   // wall clock stepped back to true time
  kLinkFaults,   // every link gets loss/duplicate/reorder/corrupt as in NemesisOptions
  kLinkRepair,   // links back to their defaults
  kClog,         // every link into and out of `node` clogged for `length`
  kHealAll,      // end of the fault phase
};
const char* FaultKindName(FaultKind kind);

struct FaultAction {
  Duration at;  // from the start of the run
  FaultKind kind = FaultKind::kHeal;
  NodeId node;
  PartitionShape shape = PartitionShape::kHalves;
  Grudge grudge;
  int64_t amount = 0;  // ns for jumps and strobes, ppm for drift
  Duration period;
  Duration length;
  std::string Describe() const;
};

struct NemesisOptions {
  Duration start = Duration::Seconds(1);
  // Faults are drawn in [start, start + duration); HealAll runs at start + duration.
  Duration duration = Duration::Seconds(20);
  // Mean gap between the starts of two faults.
  Duration interval_mean = Duration::Millis(1500);
  // How long one fault lasts, uniform in [fault_length_min, fault_length_max].
  Duration fault_length_min = Duration::Millis(500);
  Duration fault_length_max = Duration::Seconds(4);

  bool partitions = true;
  bool flapping = true;  // a partition that toggles on and off every flap_period
  Duration flap_period = Duration::Millis(300);
  bool crashes = true;
  bool pauses = true;
  bool clocks = true;
  bool link_faults = true;
  bool clogs = true;
  // Processes crashed or paused at the same time.
  uint32_t down_max = 2;

  Duration clock_jump_max = Duration::Seconds(5);
  int64_t drift_ppm_max = 500;
  Ratio loss = Ratio::Percent(10);
  Ratio duplicate = Ratio::Percent(10);
  Ratio reorder = Ratio::Percent(20);
  Ratio corrupt = Ratio::Percent(1);  // bit flips: the receiver's frame CRC must catch them
  Status Validate() const;
};

class Nemesis {
 public:
  // Draws a schedule for `node_count` nodes from `rng` (use the world's Stream::kNemesis). With
  // node_count below the world's, faults touch only nodes [0, node_count): the rest (a time
  // service, say) are never crashed, paused, skewed or partitioned.
  static std::vector<FaultAction> Draw(const NemesisOptions& options, uint32_t node_count,
                                       Rng& rng);
  // Schedules every action as a world event. `options` supplies link-fault ratios.
  static void Install(World& world, const std::vector<FaultAction>& schedule,
                      const NemesisOptions& options);
  // Applies one action now.
  static void Apply(World& world, const FaultAction& action, const NemesisOptions& options);
};

}  // namespace faultline::sim
