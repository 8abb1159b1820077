// The `selftest` scenario: a replicated counter on five nodes under every fault the simulator has
// (each partition shape, flapping, crashes with power loss, pauses, clock jumps/strobes/drift,
// loss, duplication, reordering, clogs). It exercises the simulator end to end and shows the
// difference between a design that merely works on a quiet network and one that holds.
//
//   naive     each node keeps its count in memory, acknowledges an increment at once and tells its
//             peers "+1" once. A lost message undercounts, a duplicated one overcounts, a crash
//             forgets every acknowledged increment.
//   gossip    a grow-only counter (G-counter CRDT) kept in memory: nodes gossip their whole state
//             on a timer and merge by per-slot maximum, which is idempotent, commutative and
//             survives loss, duplication, reordering and partitions. A restarted node relearns its
//             own slot from its peers, but increments it acknowledged since its last gossip round
//             are gone: acknowledging before the write is durable is the remaining bug.
//   hardened  the same G-counter, but a node persists its own slot in a LogStore and acknowledges
//             only after the commit is durable.
//
// The checker (counter_checker.cc) reads only the recorded increments and final reads: every
// acknowledged increment must be in every replica's final value (no lost acknowledged write), no
// replica may count more increments than were attempted (no phantom), and after the faults heal all
// replicas must agree (convergence).
//
// Shrinking (faultline shrink): the workload counts its increments through World::AdmitOp, and a
// plan's earlier fault-phase end moves the end of the workload and the final reads with it. The
// gossip variant's minimal failing case is known: one crash (only a crash loses memory), which
// tests/sim/shrink_test.cc checks the shrinker finds.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "faultline/env/task.h"
#include "faultline/lab/scenario.h"
#include "faultline/sim/nemesis.h"
#include "src/lab/chart_data.h"
#include "src/lab/counter_check.h"
#include "src/lab/scenarios.h"
#include "src/lab/selftest_nodes.h"

namespace faultline::lab {
namespace {

using selftest::kNodes;

constexpr Duration kFaultStart = Duration::Seconds(1);
constexpr Duration kFaultDuration = Duration::Seconds(20);
// After the heal: the workload runs 1 s more, the final reads come 6 s after it (at 22 s and 27 s
// as drawn; earlier when a shrunk run's plan ends the fault phase earlier).
constexpr Duration kWorkloadAfterHeal = Duration::Seconds(1);
constexpr Duration kFinalReadAfterHeal = Duration::Seconds(6);
constexpr Duration kOpInterval = Duration::Millis(30);
constexpr Duration kOpTimeout = Duration::Seconds(1);

// Drives one client per node and records what each saw.
class Workload final : public selftest::CounterSink {
 public:
  Workload(sim::World& world, Duration end)
      : world_(world), end_(end), clients_(world.node_count()) {
    for (uint32_t i = 0; i < clients_.size(); ++i) clients_[i].process = i;
  }

  void Start() {
    for (uint32_t i = 0; i < clients_.size(); ++i) ScheduleTick(i);
  }

  // Called by node code when an increment is durable (ok) or certainly failed.
  void Complete(uint32_t node, uint64_t op_id, bool ok) override {
    Client& c = clients_[node];
    if (c.op_id != op_id) return;  // already timed out: recorded as info
    world_.Cancel(c.timeout);
    End(c, ok ? Outcome::kOk : Outcome::kFail);
    c.op_id = 0;
  }

  void FinalReads() {
    for (uint32_t i = 0; i < clients_.size(); ++i) {
      auto* node = world_.node_as<selftest::CounterNode>(NodeId(i));
      FL_ASSERT(node != nullptr);  // HealAll restarted everyone
      observations_.final_reads.push_back(
          CounterRead{1000 + i, i, node->Value(), world_.now().nanos()});
    }
  }

  const CounterObservations& observations() const { return observations_; }

 private:
  struct Client {
    int64_t process = 0;
    uint64_t op_id = 0;  // 0: idle
    size_t increment = 0;  // its entry in observations_.increments
    sim::EventId timeout;
  };

  void End(const Client& c, Outcome outcome) {
    CounterIncrement& inc = observations_.increments[c.increment];
    FL_ASSERT(inc.process == c.process && inc.outcome == Outcome::kPending);
    inc.outcome = outcome;
    inc.end_ns = world_.now().nanos();
  }

  void ScheduleTick(uint32_t i) {
    const Duration gap = world_.rng(sim::Stream::kWorkload).Exponential(kOpInterval);
    world_.Schedule(gap, [this, i] { Tick(i); });
  }

  void Tick(uint32_t i) {
    if (world_.elapsed() >= end_) return;
    if (clients_[i].op_id == 0) Invoke(i);
    ScheduleTick(i);
  }

  void Invoke(uint32_t i) {
    if (!world_.AdmitOp()) return;  // a shrunk run's operation limit
    Client& c = clients_[i];
    const uint64_t op_id = ++next_op_id_;
    c.increment = observations_.increments.size();
    observations_.increments.push_back(CounterIncrement{c.process, world_.now().nanos()});
    if (world_.state(NodeId(i)) == sim::ProcessState::kDown) {
      End(c, Outcome::kFail);  // connection refused: never applied
      return;
    }
    c.op_id = op_id;
    sim::World* w = &world_;
    // The request reaches the node as an event of its own: parked while it is paused, lost if it
    // crashes first.
    world_.env(NodeId(i)).executor().Post([w, i, op_id] {
      w->node_as<selftest::CounterNode>(NodeId(i))->Increment(op_id);
    });
    c.timeout = world_.Schedule(kOpTimeout, [this, i, op_id] { TimedOut(i, op_id); });
  }

  void TimedOut(uint32_t i, uint64_t op_id) {
    Client& c = clients_[i];
    if (c.op_id != op_id) return;
    End(c, Outcome::kInfo);
    c.op_id = 0;
    c.process += clients_.size();  // an indeterminate op ends its process, as in Jepsen
  }

  sim::World& world_;
  const Duration end_;
  std::vector<Client> clients_;
  uint64_t next_op_id_ = 0;
  CounterObservations observations_;
};

class Selftest final : public Scenario {
 public:
  std::string_view id() const override { return "selftest"; }
  std::string_view description() const override {
    return "replicated counter on 5 nodes under every simulator fault: in-memory +1 broadcast vs "
           "durable G-counter with gossip";
  }
  std::vector<VariantSpec> variants() const override {
    return {
        {"naive", false, 0.9, "in-memory counter, ack at once, fire-and-forget +1 to peers"},
        {"gossip", false, 0.1, "in-memory G-counter, gossip + max-merge, ack before durable"},
        {"hardened", true, 0, "G-counter: own slot durable before ack, gossip, max-merge"},
    };
  }
  std::vector<std::string> probe_modules() const override { return {"disk"}; }
  std::vector<std::string> key_metrics() const override {
    return {"acked_increments", "lost_increments", "phantom_increments", "replica_spread"};
  }

  RunResult Run(const RunContext& ctx) const override {
    FL_ASSERT(ctx.variant != nullptr);
    const std::string& variant = ctx.variant->name;
    FL_ASSERT(variant == "naive" || variant == "gossip" || variant == "hardened");
    sim::WorldOptions options;
    options.node_count = kNodes;
    // Unsynced writes may survive a crash, whole or torn: the store must tell them apart.
    options.disk.unsynced_survives = Ratio::Percent(30);
    // Its stores handle I/O errors, so buggified runs may fail writes and fsyncs (core/buggify.h).
    options.disk.buggify_io_errors = true;
    sim::World world(ctx.seed, options);
    ObserveRun(world, ctx);

    Duration heal = kFaultStart + kFaultDuration;
    if (ctx.plan != nullptr && ctx.plan->fault_end) heal = std::min(heal, *ctx.plan->fault_end);
    Workload workload(world, heal + kWorkloadAfterHeal);
    for (uint32_t i = 0; i < kNodes; ++i) {
      Workload* w = &workload;
      const selftest::CounterDesign design = variant == "naive"    ? selftest::CounterDesign::kNaive
                                             : variant == "gossip" ? selftest::CounterDesign::kGossip
                                                                   : selftest::CounterDesign::kHardened;
      world.Boot(NodeId(i), [w, design](Env& env) -> std::unique_ptr<Node> {
        return selftest::MakeCounterNode(env, design, w);
      });
    }
    sim::NemesisOptions nemesis;
    nemesis.start = kFaultStart;
    nemesis.duration = kFaultDuration;
    const std::vector<sim::FaultAction> schedule =
        sim::Nemesis::Draw(nemesis, kNodes, world.rng(sim::Stream::kNemesis));
    sim::Nemesis::Install(world, schedule, nemesis);
    workload.Start();
    world.RunUntil(sim::SimTime::FromNanos((heal + kFinalReadAfterHeal).nanos()));
    workload.FinalReads();

    RunResult result;
    CheckCounterHistory(workload.observations(), &result);
    result.faults = FaultSpans(schedule, world.now().nanos());
    {
      std::vector<int64_t> ok, info;
      for (const CounterIncrement& i : workload.observations().increments) {
        if (i.outcome == Outcome::kOk) ok.push_back(i.end_ns);
        if (i.outcome == Outcome::kInfo) info.push_back(i.end_ns);
      }
      const int64_t end = world.now().nanos();
      result.series.push_back(RateSeries("increments acknowledged", ok, kChartWindowNs, end));
      result.series.push_back(RateSeries("increments indeterminate", info, kChartWindowNs, end));
    }
    if (ctx.history_out != nullptr) world.history() = CounterHistory(workload.observations());
    const sim::NetworkStats& net = world.network().stats();
    result.metrics["faults"] = static_cast<double>(schedule.size());
    result.metrics["messages_sent"] = static_cast<double>(net.sent);
    result.metrics["messages_lost"] =
        static_cast<double>(net.dropped_loss + net.dropped_partition + net.dropped_down);
    result.metrics["messages_duplicated"] = static_cast<double>(net.duplicated);
    result.metrics["frames_rejected"] = static_cast<double>(net.rejected);
    FinishRun(world, ctx, &result);
    return result;
  }
};

}  // namespace

const Scenario* SelftestScenario() {
  static const Selftest scenario;
  return &scenario;
}

}  // namespace faultline::lab
