// File: faultline/sim/world.h
//
// World(seed): one deterministic simulation. It owns the scheduler, the network, and for every node
// a clock, a disk and a process slot in which node code runs against an Env. Everything random
// comes from streams of the one seed, every scheduling decision and random draw is folded into a
// rolling determinism hash, and nothing reads the real clock: the same seed replays the same run,
// event for event.
//
//   sim::World world(seed, sim::WorldOptions::Nodes(5));
//   for (uint32_t i = 0; i < 5; ++i)
//     world.Boot(NodeId(i), [](Env& env) { return std::make_unique<MyNode>(env); });
//   world.Schedule(Duration::Seconds(3), [&] { world.Crash(NodeId(2)); });
//   world.RunFor(Duration::Seconds(60));
//
// Processes: Crash() destroys the node object and every coroutine it spawned, drops its pending
// timers and in-flight inbound messages at delivery, and applies power-loss semantics to its disk;
// Restart() builds a fresh node object from the same factory over the surviving disk. Pause() freezes
// the node (SIGSTOP): its timers and arriving messages wait, its clock keeps running; Resume() runs
// what waited, in order. World events (workload, nemesis, checkers) are never paused.
#pragma once

// Node code (files compiled with FAULTLINE_NODE_CODE) runs on the real runtime too: it may not see
// the simulator.
#ifdef FAULTLINE_NODE_CODE
#error "node code must not include faultline/sim/ headers"
#endif

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/ids.h"
#include "faultline/core/random.h"
#include "faultline/env/env.h"
#include "faultline/env/node.h"
#include "faultline/sim/clock.h"
#include "faultline/sim/disk.h"
#include "faultline/sim/history.h"
#include "faultline/sim/network.h"
#include "faultline/sim/scheduler.h"

namespace faultline::sim {

// Node code (faultline/env/node.h) is hosted here as in production; the names stay reachable from
// sim:: for the simulator's own tests.
using faultline::Node;
using faultline::NodeFactory;

enum class ProcessState : uint8_t { kDown, kUp, kPaused };

// Independent random streams of one seed. Adding draws to one never shifts another.
enum class Stream : uint64_t {
  kScheduler = 1,
  kNetwork = 2,
  kDisk = 3,
  kClock = 4,
  kNemesis = 5,
  kWorkload = 6,
  kNodeBase = 1000,  // node i draws from kNodeBase + i
};

struct ClockOptions {
  // Initial wall-clock error of each node, uniform in [-offset_max, +offset_max].
  Duration offset_max = Duration::Millis(50);
  // Initial rate error of each node, uniform in [-drift_ppm_max, +drift_ppm_max].
  int64_t drift_ppm_max = 100;
};

struct WorldOptions {
  uint32_t node_count = 5;
  LinkOptions links;
  ClockOptions clocks;
  SimDiskOptions disk;
  // A run that executes more events than this stops with an assertion: a livelock guard.
  uint64_t events_max = 200'000'000;
  Status Validate() const;
  // Defaults with `n` nodes.
  static WorldOptions Nodes(uint32_t n) {
    WorldOptions o;
    o.node_count = n;
    return o;
  }
};

class World final : public TrueTime {
 public:
  World(uint64_t seed, WorldOptions options = {});
  World(const World&) = delete;
  World& operator=(const World&) = delete;
  ~World();

  uint64_t seed() const { return seed_; }
  uint32_t node_count() const { return options_.node_count; }
  SimTime now() const { return scheduler_.now(); }
  Duration elapsed() const { return Duration::Nanos(now().nanos()); }
  // TrueTime: the simulated time, for nodes' observation stamps.
  int64_t NowNs() const override { return now().nanos(); }

  // World-level events (workload, nemesis, checkers): never paused, never dropped.
  EventId Schedule(Duration after, EventCallback callback);
  EventId ScheduleAt(SimTime at, EventCallback callback);
  bool Cancel(EventId id) { return scheduler_.Cancel(id); }

  // Runs one event. False when no event is pending.
  bool Step();
  // Runs every event due at or before `until`, then moves time to `until`.
  void RunUntil(SimTime until);
  void RunFor(Duration d) { RunUntil(now() + d); }

  // Processes.
  void Boot(NodeId id, NodeFactory factory);
  void Crash(NodeId id);
  void Restart(NodeId id);
  void Pause(NodeId id);
  void Resume(NodeId id);
  ProcessState state(NodeId id) const;
  // The live node object (nullptr while down). Valid until the next crash.
  Node* node(NodeId id);
  template <typename T>
  T* node_as(NodeId id) {
    return static_cast<T*>(node(id));
  }
  Env& env(NodeId id);
  uint32_t incarnation(NodeId id) const;

  SimClock& clock(NodeId id);
  SimDisk& disk(NodeId id);
  SimNetwork& network() { return *network_; }
  History& history() { return history_; }
  const History& history() const { return history_; }
  Rng& rng(Stream stream);

  // Ends every fault: heals partitions, releases held links, restarts crashed processes, resumes
  // paused ones and steps wall clocks back to true time (drift stays: it is hardware).
  void HealAll();

  uint64_t hash() const { return hash_; }
  uint64_t events_executed() const { return scheduler_.executed(); }

  // Tracing: when a sink is set, every executed event and fault is described to it.
  using TraceSink = std::function<void(SimTime at, const std::string& line)>;
  void set_trace(TraceSink sink) { trace_ = std::move(sink); }
  bool tracing() const { return static_cast<bool>(trace_); }
  void Trace(const std::string& line) {
    if (trace_) trace_(now(), line);
  }
  // When set, the determinism hash after every executed event is appended (for --check-determinism
  // to locate the first divergent event).
  void set_event_hashes(std::vector<uint64_t>* out) { event_hashes_ = out; }

 private:
  class Process;
  Process& process(NodeId id);
  bool RunNext(SimTime limit);
  const Process& process(NodeId id) const;
  void OnMessage(uint32_t from, uint32_t to, const FrameView& frame);

  uint64_t seed_;
  WorldOptions options_;
  uint64_t hash_ = 0;
  Rng scheduler_rng_;
  Rng network_rng_;
  Rng disk_rng_;
  Rng clock_rng_;
  Rng nemesis_rng_;
  Rng workload_rng_;
  Scheduler scheduler_;
  std::unique_ptr<SimNetwork> network_;
  std::vector<std::unique_ptr<Process>> processes_;
  History history_;
  TraceSink trace_;
  std::vector<uint64_t>* event_hashes_ = nullptr;
  bool in_node_event_ = false;
};

}  // namespace faultline::sim
