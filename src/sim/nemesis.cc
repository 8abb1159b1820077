#include "faultline/sim/nemesis.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "faultline/core/options.h"

namespace faultline::sim {

const char* FaultKindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kPartition: return "partition";
    case FaultKind::kHeal: return "heal";
    case FaultKind::kCrash: return "crash";
    case FaultKind::kRestart: return "restart";
    case FaultKind::kPause: return "pause";
    case FaultKind::kResume: return "resume";
    case FaultKind::kClockJump: return "clock-jump";
    case FaultKind::kClockStrobe: return "clock-strobe";
    case FaultKind::kClockDrift: return "clock-drift";
    case FaultKind::kClockReset: return "clock-reset";
    case FaultKind::kLinkFaults: return "link-faults";
    case FaultKind::kLinkRepair: return "link-repair";
    case FaultKind::kClog: return "clog";
    case FaultKind::kHealAll: return "heal-all";
  }
  return "?";
}

std::string FaultAction::Describe() const {
  std::string s = std::string("nemesis ") + FaultKindName(kind);
  switch (kind) {
    case FaultKind::kPartition:
      s += std::string(" ") + PartitionShapeName(shape) + " " + grudge.Describe();
      break;
    case FaultKind::kCrash:
    case FaultKind::kRestart:
    case FaultKind::kPause:
    case FaultKind::kResume:
    case FaultKind::kClockReset:
      s += " n" + std::to_string(node.value());
      break;
    case FaultKind::kClockJump:
      s += " n" + std::to_string(node.value()) + " by " + std::to_string(amount / 1'000'000) + "ms";
      break;
    case FaultKind::kClockStrobe:
      s += " n" + std::to_string(node.value()) + " by " + std::to_string(amount / 1'000'000) +
           "ms every " + std::to_string(period.millis()) + "ms for " +
           std::to_string(length.millis()) + "ms";
      break;
    case FaultKind::kClockDrift:
      s += " n" + std::to_string(node.value()) + " to " + std::to_string(amount) + "ppm";
      break;
    case FaultKind::kClog:
      s += " n" + std::to_string(node.value()) + " for " + std::to_string(length.millis()) + "ms";
      break;
    default:
      break;
  }
  return s;
}

Status NemesisOptions::Validate() const {
  FL_CHECK_OPTION(start >= Duration::Zero(), "start must be >= 0");
  FL_CHECK_OPTION(duration >= Duration::Zero(), "duration must be >= 0");
  FL_CHECK_OPTION(interval_mean > Duration::Zero(), "interval_mean must be > 0");
  FL_CHECK_OPTION(fault_length_min > Duration::Zero(), "fault_length_min must be > 0");
  FL_CHECK_OPTION(fault_length_max >= fault_length_min, "fault_length_max must be >= min");
  FL_CHECK_OPTION(flap_period > Duration::Zero(), "flap_period must be > 0");
  FL_CHECK_OPTION(drift_ppm_max >= 0 && drift_ppm_max <= 100'000, "drift_ppm_max out of range");
  FL_CHECK_OPTION(clock_jump_max >= Duration::Zero(), "clock_jump_max must be >= 0");
  FL_CHECK_OPTION(loss.valid() && duplicate.valid() && reorder.valid() && corrupt.valid(),
                  "loss, duplicate, reorder and corrupt must be ratios in [0, 1]");
  return Status::Ok();
}

namespace {

enum class Family : uint8_t { kPartition, kCrash, kPause, kClock, kLink, kClog };

// Tracks which processes are crashed or paused over time, so a drawn schedule never takes down
// more than down_max at once.
struct DownTracker {
  std::vector<Duration> busy_until;
  bool Free(uint32_t node, Duration t) const { return busy_until[node] <= t; }
  uint32_t DownAt(Duration t) const {
    uint32_t n = 0;
    for (Duration d : busy_until) n += d > t ? 1 : 0;
    return n;
  }
};

// Draws the fault schedule: which family strikes when comes from Nemesis::Draw, the shape of
// each fault from the methods below, each of which appends the fault's actions (or nothing, when
// the family is busy at that time). The order of the rng draws is the schedule itself: it is
// part of every seed's determinism hash and must not change.
class ScheduleDrawer {
 public:
  ScheduleDrawer(const NemesisOptions& options, uint32_t node_count, Rng& rng)
      : options_(options),
        node_count_(node_count),
        rng_(rng),
        down_{std::vector<Duration>(node_count, Duration::Zero())} {}

  void Partition(FaultAction a, Duration stop) {
    if (partition_until_ > a.at) return;
    partition_until_ = stop;
    a.kind = FaultKind::kPartition;
    a.shape = static_cast<PartitionShape>(rng_.Uniform(kPartitionShapeCount));
    a.grudge = Grudge::Make(a.shape, node_count_, rng_);
    const bool flap = options_.flapping && rng_.Chance(Ratio::Percent(25));
    if (!flap) {
      out_.push_back(a);
      out_.push_back(FaultAction{stop, FaultKind::kHeal, a.node, a.shape, {}, 0, {}, {}});
      return;
    }
    // Flapping: the same cut toggles faster than most failure detectors settle.
    for (Duration u = a.at; u < stop; u += options_.flap_period * 2) {
      FaultAction on = a;
      on.at = u;
      out_.push_back(on);
      const Duration off = std::min(u + options_.flap_period, stop);
      out_.push_back(FaultAction{off, FaultKind::kHeal, a.node, a.shape, {}, 0, {}, {}});
    }
  }

  // A crash (then restart) or a pause (then resume), never taking down more than down_max.
  void DownFault(FaultAction a, Duration stop, bool crash) {
    const Duration t = a.at;
    if (!down_.Free(a.node.value(), t) || down_.DownAt(t) >= options_.down_max) return;
    down_.busy_until[a.node.value()] = stop;
    a.kind = crash ? FaultKind::kCrash : FaultKind::kPause;
    out_.push_back(a);
    out_.push_back(FaultAction{stop, crash ? FaultKind::kRestart : FaultKind::kResume, a.node,
                               a.shape, {}, 0, {}, {}});
  }

  void ClockFault(FaultAction a, Duration length, Duration stop) {
    const uint64_t which = rng_.Uniform(3);
    if (which == 0) {
      a.kind = FaultKind::kClockJump;
      a.amount = rng_.Range(-options_.clock_jump_max.nanos(), options_.clock_jump_max.nanos());
    } else if (which == 1) {
      a.kind = FaultKind::kClockStrobe;
      a.amount =
          rng_.Range(1'000'000, std::max<int64_t>(options_.clock_jump_max.nanos(), 1'000'000));
      a.period = rng_.Range(Duration::Millis(1), Duration::Millis(200));
      a.length = length;
    } else {
      a.kind = FaultKind::kClockDrift;
      a.amount = rng_.Range(-options_.drift_ppm_max, options_.drift_ppm_max);
    }
    out_.push_back(a);
    if (a.kind != FaultKind::kClockDrift) {
      out_.push_back(FaultAction{stop, FaultKind::kClockReset, a.node, a.shape, {}, 0, {}, {}});
    }
  }

  void LinkFaults(FaultAction a, Duration stop) {
    if (link_until_ > a.at) return;
    link_until_ = stop;
    a.kind = FaultKind::kLinkFaults;
    out_.push_back(a);
    out_.push_back(FaultAction{stop, FaultKind::kLinkRepair, a.node, a.shape, {}, 0, {}, {}});
  }

  void Clog(FaultAction a, Duration length) {
    a.kind = FaultKind::kClog;
    a.length = length;
    out_.push_back(a);
  }

  // Ends the schedule with a heal of everything at `end`, in time order.
  std::vector<FaultAction> Finish(Duration end) {
    FaultAction heal;
    heal.at = end;
    heal.kind = FaultKind::kHealAll;
    out_.push_back(heal);
    std::stable_sort(out_.begin(), out_.end(),
                     [](const FaultAction& x, const FaultAction& y) { return x.at < y.at; });
    return std::move(out_);
  }

 private:
  const NemesisOptions& options_;
  const uint32_t node_count_;
  Rng& rng_;
  std::vector<FaultAction> out_;
  DownTracker down_;
  Duration partition_until_ = Duration::Zero();
  Duration link_until_ = Duration::Zero();
};

}  // namespace

std::vector<FaultAction> Nemesis::Draw(const NemesisOptions& options, uint32_t node_count,
                                       Rng& rng) {
  FL_ASSERT(options.Validate().ok());
  FL_ASSERT(node_count >= 1);
  std::vector<Family> families;
  if (options.partitions && node_count >= 2) families.push_back(Family::kPartition);
  if (options.crashes && options.down_max > 0) families.push_back(Family::kCrash);
  if (options.pauses && options.down_max > 0) families.push_back(Family::kPause);
  if (options.clocks) families.push_back(Family::kClock);
  if (options.link_faults) families.push_back(Family::kLink);
  if (options.clogs && node_count >= 2) families.push_back(Family::kClog);

  ScheduleDrawer drawer(options, node_count, rng);
  const Duration end = options.start + options.duration;
  Duration t = options.start;
  while (!families.empty()) {
    t += rng.Exponential(options.interval_mean);
    if (t >= end) break;
    const Family family = families[rng.Uniform(families.size())];
    Duration length = rng.Range(options.fault_length_min, options.fault_length_max);
    if (t + length > end) length = end - t;
    const Duration stop = t + length;
    FaultAction a;
    a.at = t;
    a.node = NodeId(static_cast<uint32_t>(rng.Uniform(node_count)));
    switch (family) {
      case Family::kPartition: drawer.Partition(a, stop); break;
      case Family::kCrash: drawer.DownFault(a, stop, /*crash=*/true); break;
      case Family::kPause: drawer.DownFault(a, stop, /*crash=*/false); break;
      case Family::kClock: drawer.ClockFault(a, length, stop); break;
      case Family::kLink: drawer.LinkFaults(a, stop); break;
      case Family::kClog: drawer.Clog(a, length); break;
    }
  }
  return drawer.Finish(end);
}

void Nemesis::Apply(World& world, const FaultAction& a, const NemesisOptions& options) {
  world.Trace(a.Describe());
  SimNetwork& net = world.network();
  switch (a.kind) {
    case FaultKind::kPartition: net.Partition(a.grudge); break;
    case FaultKind::kHeal: net.Heal(); break;
    case FaultKind::kCrash: world.Crash(a.node); break;
    case FaultKind::kRestart: world.Restart(a.node); break;
    case FaultKind::kPause: world.Pause(a.node); break;
    case FaultKind::kResume: world.Resume(a.node); break;
    case FaultKind::kClockJump: world.clock(a.node).JumpWall(Duration::Nanos(a.amount)); break;
    case FaultKind::kClockStrobe:
      world.clock(a.node).Strobe(Duration::Nanos(a.amount), a.period, world.now() + a.length);
      break;
    case FaultKind::kClockDrift: world.clock(a.node).SetDrift(a.amount); break;
    case FaultKind::kClockReset: world.clock(a.node).ResetWall(); break;
    case FaultKind::kLinkFaults: {
      for (uint32_t from = 0; from < net.node_count(); ++from) {
        for (uint32_t to = 0; to < net.node_count(); ++to) {
          LinkOptions l = net.link(from, to);
          l.loss = options.loss;
          l.duplicate = options.duplicate;
          l.reorder = options.reorder;
          l.corrupt = options.corrupt;
          net.SetLink(from, to, l);
        }
      }
      break;
    }
    case FaultKind::kLinkRepair: {
      for (uint32_t from = 0; from < net.node_count(); ++from) {
        for (uint32_t to = 0; to < net.node_count(); ++to) {
          LinkOptions l = net.link(from, to);
          l.loss = Ratio::Zero();
          l.duplicate = Ratio::Zero();
          l.reorder = Ratio::Zero();
          l.corrupt = Ratio::Zero();
          net.SetLink(from, to, l);
        }
      }
      break;
    }
    case FaultKind::kClog: {
      const SimTime until = world.now() + a.length;
      for (uint32_t other = 0; other < net.node_count(); ++other) {
        net.Clog(a.node.value(), other, until);
        net.Clog(other, a.node.value(), until);
      }
      break;
    }
    case FaultKind::kHealAll: world.HealAll(); break;
  }
}

bool RunPlan::Keeps(uint32_t index) const {
  return !faults || std::binary_search(faults->begin(), faults->end(), index);
}

void Nemesis::Install(World& world, const std::vector<FaultAction>& schedule,
                      const NemesisOptions& options) {
  // One event per run of same-time actions, applying them in schedule order: separate events due
  // at one instant would run in a seed-random order (a heal after the next partition, a restart
  // after the next crash). Capture indices, not actions: callbacks stay small and allocation-free.
  // The schedule must outlive the run.
  const std::vector<FaultAction>* actions = &schedule;
  const NemesisOptions* opts = &options;
  World* w = &world;
  RunPlan* plan = world.plan();
  uint32_t base = 0;
  if (plan != nullptr) {
    base = static_cast<uint32_t>(plan->installed.size());
    plan->installed.insert(plan->installed.end(), schedule.begin(), schedule.end());
  }
  for (size_t first = 0; first < schedule.size();) {
    size_t last = first + 1;
    while (last < schedule.size() && schedule[last].at == schedule[first].at) ++last;
    Duration at = schedule[first].at;
    if (plan != nullptr && plan->fault_end && at >= *plan->fault_end) {
      // Past the shortened fault phase: only the closing heal runs, at the new end.
      bool heal = false;
      for (size_t i = first; i < last; ++i) heal |= schedule[i].kind == FaultKind::kHealAll;
      if (!heal) {
        first = last;
        continue;
      }
      at = *plan->fault_end;
    }
    world.ScheduleAt(SimTime::FromNanos(at.nanos()), [w, actions, opts, first, last, base] {
      const RunPlan* p = w->plan();
      const bool cut = p != nullptr && p->fault_end && (*actions)[first].at >= *p->fault_end;
      for (size_t i = first; i < last; ++i) {
        const FaultAction& a = (*actions)[i];
        const bool keep = a.kind == FaultKind::kHealAll ||
                          (p == nullptr || (!cut && p->Keeps(base + static_cast<uint32_t>(i))));
        if (keep) Apply(*w, a, *opts);
      }
    });
    first = last;
  }
}

}  // namespace faultline::sim
