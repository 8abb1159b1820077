// The `sharding` scenario: a key-value service sharded by tenant, a hot tenant, and resharding
// under crashes and partitions. See sharding.h for the topology, sharding_client.cc for the
// workload, sharding_shard.cc and sharding_directory.cc for the two designs.
//
//   naive     static hash partitioning computed in the client (jump hash of the tenant over the
//             shard count); resharding adds shard 2 by copy-then-switch without fencing.
//   hardened  a directory with a versioned, epoched shard map; servers refuse stale routes with
//             their map (EpochNotMatch); per-range load deciders find the hot tenant, which the
//             mover isolates on shard 2 with a fenced live move (copy, catch-up, fence, verify,
//             switch; reversed and retried when the cutover cannot finish in time); then the
//             balancer evens the shards out with fenced range moves.
//
// Faults (3 s .. 40 s, then everything heals; the workload runs until 82 s, the run until 88 s):
// the generic nemesis over the shard servers and the directory (crashes with power loss, pauses,
// partitions of every shape, clock faults, loss, duplication, reordering, clogs; the directory is
// never crashed or paused), plus, at each step of a move, a 30 % chance of crashing its source or
// its target for 0.2-0.7 s. After the run every shard's store is read back, and every tenant's
// owner in the final routing recorded, for the checker (sharding_checker.cc).
#include <memory>
#include <string>
#include <vector>

#include "faultline/lab/scenario.h"
#include "faultline/sim/nemesis.h"
#include "src/lab/chart_data.h"
#include "src/lab/observations.h"
#include "src/lab/scenarios.h"
#include "src/lab/sharding.h"

namespace faultline::lab {
namespace sharding {
namespace {

constexpr Ratio kCrashAtMoveStep = Ratio::Percent(30);

// The report's chart: client operations answered ok and given up per second, under every fault
// of the run.
void AddCharts(const ShardingObservations& obs, const std::vector<sim::FaultAction>& schedule,
               const std::vector<FaultSpan>& aimed, int64_t end_ns, RunResult* result) {
  result->faults = FaultSpans(schedule, end_ns);
  for (const FaultSpan& f : aimed) result->faults.push_back(f);
  std::vector<int64_t> ok, failed;
  for (const ClientOp& op : obs.ops) {
    if (op.ok) ok.push_back(op.end_ns);
    if (op.failed) failed.push_back(op.end_ns);
  }
  result->series.push_back(RateSeries("client ops answered ok", ok, kChartWindowNs, end_ns));
  result->series.push_back(RateSeries("client ops failed", failed, kChartWindowNs, end_ns));
}

class Harness final : public MoveFaults {
 public:
  Harness(sim::World& world, ShardingObservations* obs) : world_(world), obs_(obs) {}

  // The crashes aimed at move steps, as applied (for the report's charts).
  std::vector<FaultSpan> aimed_faults;

  void AtMoveStep(uint32_t source, uint32_t target) override {
    const Duration t = world_.elapsed();
    if (t < kFaultStart || t >= kFaultStart + kFaultDuration) return;
    Rng& rng = world_.rng(sim::Stream::kNemesis);
    if (!rng.Chance(kCrashAtMoveStep)) return;
    const NodeId victim(rng.Chance(Ratio::Percent(50)) ? source : target);
    const Duration down = rng.Range(Duration::Millis(200), Duration::Millis(700));
    sim::World* w = &world_;
    ShardingObservations* obs = obs_;
    std::vector<FaultSpan>* aimed = &aimed_faults;
    world_.Schedule(Duration::Zero(), [w, obs, aimed, victim, down] {
      if (w->state(victim) != sim::ProcessState::kUp) return;
      ++obs->counters.crashes_aimed;
      aimed->push_back(FaultSpan{"crash at a move step", "n" + std::to_string(victim.value()),
                                 w->now().nanos(), (w->now() + down).nanos()});
      w->Crash(victim);
      w->Schedule(down, [w, victim] {
        if (w->state(victim) == sim::ProcessState::kDown) w->Restart(victim);
      });
    });
  }

 private:
  sim::World& world_;
  ShardingObservations* obs_;
};

// The generic schedule over the shard servers and the directory, without crashes or pauses of the
// directory.
std::vector<sim::FaultAction> DrawFaults(sim::World& world, const sim::NemesisOptions& options) {
  std::vector<sim::FaultAction> drawn =
      sim::Nemesis::Draw(options, kDirectoryNode + 1, world.rng(sim::Stream::kNemesis));
  std::vector<sim::FaultAction> kept;
  for (const sim::FaultAction& a : drawn) {
    const bool process = a.kind == sim::FaultKind::kCrash || a.kind == sim::FaultKind::kRestart ||
                         a.kind == sim::FaultKind::kPause || a.kind == sim::FaultKind::kResume;
    if (process && a.node == NodeId(kDirectoryNode)) continue;
    kept.push_back(a);
  }
  return kept;
}

void BootNodes(sim::World& world, Design design, ShardingObservations* obs, MoveFaults* faults,
               uint32_t hot) {
  sim::World* w = &world;
  for (uint32_t s = 0; s < kShards; ++s) {
    world.Boot(NodeId(s), [design, obs, w](Env& env) -> std::unique_ptr<Node> {
      return MakeShardNode(env, design, obs, w);
    });
  }
  world.Boot(NodeId(kDirectoryNode),
             [design, obs, w, faults](Env& env) -> std::unique_ptr<Node> {
               return MakeDirectoryNode(env, design, obs, w, faults);
             });
  for (uint32_t c = 0; c < kClientNodes; ++c) {
    world.Boot(NodeId(kFirstClientNode + c),
               [design, obs, w, hot](Env& env) -> std::unique_ptr<Node> {
                 return MakeClientNode(env, design, obs, w, hot);
               });
  }
}

// Reads every shard's store and the final routing into the record.
void CollectFinalState(sim::World& world, ShardingObservations* obs) {
  for (uint32_t s = 0; s < kShards; ++s) {
    if (world.state(NodeId(s)) != sim::ProcessState::kUp) continue;  // its records count as lost
    for (StoredWrite& w : world.node_as<ShardNode>(NodeId(s))->Dump()) {
      obs->final_records.push_back(
          FinalRecord{s, std::move(w.tenant), std::move(w.key), w.wid, w.count});
    }
  }
  const auto* directory = world.node_as<DirectoryNode>(NodeId(kDirectoryNode));
  FL_ASSERT(directory != nullptr);
  for (uint32_t t = 0; t < kTenants; ++t) {
    obs->final_owner[TenantName(t)] = directory->OwnerOf(TenantName(t));
  }
}

check::History ExportHistory(const ShardingObservations& obs) {
  HistoryExport out;
  for (size_t i = 0; i < obs.ops.size(); ++i) {
    const ClientOp& op = obs.ops[i];
    const std::string value = "{\"tenant\":\"" + op.tenant + "\",\"key\":\"" + op.key +
                              "\",\"wid\":" + std::to_string(op.wid) + "}";
    const char* f = op.write ? "write" : "read";
    out.Add(static_cast<int64_t>(i), check::OpType::kInvoke, f, value, op.invoke_ns);
    const Outcome outcome = op.ok ? Outcome::kOk : op.failed ? Outcome::kFail : Outcome::kPending;
    out.End(static_cast<int64_t>(i), outcome, f, value, op.end_ns);
  }
  return out.Build();
}

class Sharding final : public Scenario {
 public:
  std::string_view id() const override { return "sharding"; }
  std::string_view description() const override {
    return "tenant-sharded key-value store with a 30% hot tenant, resharding under crashes and "
           "partitions: client-side hash + copy-then-switch vs directory, epochs, hot-tenant "
           "isolation and fenced live moves";
  }
  std::vector<VariantSpec> variants() const override {
    return {
        {"naive", false, 0.9,
         "static jump hash in the client; add a shard by copy-then-switch, no fence"},
        {"hardened", true, 0.0,
         "directory + epochs (EpochNotMatch), load deciders, hot tenant isolated by a fenced "
         "live move (copy, catch-up, fence, verify, switch), buffered client retries"},
    };
  }
  std::vector<std::string> probe_modules() const override { return {"shard", "disk"}; }
  std::vector<std::string> key_metrics() const override {
    return {"load_max_mean", "lost_writes", "misrouted_writes", "duplicated_writes",
            "client_errors", "latency_p99_ms", "detect_s", "isolate_s", "cutover_pause_ms"};
  }

  RunResult Run(const RunContext& ctx) const override {
    FL_ASSERT(ctx.variant != nullptr);
    const std::string& v = ctx.variant->name;
    FL_ASSERT(v == "naive" || v == "hardened");
    const Design design = v == "naive" ? Design::kNaive : Design::kHardened;
    sim::World world(ctx.seed, sim::WorldOptions::Nodes(kNodes));
    ObserveRun(world, ctx);

    ShardingObservations obs;
    const uint32_t hot = static_cast<uint32_t>(world.rng(sim::Stream::kWorkload).Uniform(kTenants));
    obs.hot_tenant = TenantName(hot);
    obs.hot_start_ns = kHotStart.nanos();
    obs.workload_end_ns = kWorkloadEnd.nanos();
    Harness harness(world, &obs);
    BootNodes(world, design, &obs, &harness, hot);

    sim::NemesisOptions nemesis;
    nemesis.start = kFaultStart;
    nemesis.duration = kFaultDuration;
    nemesis.interval_mean = Duration::Millis(1500);
    nemesis.fault_length_max = Duration::Seconds(2);
    nemesis.down_max = 2;
    const std::vector<sim::FaultAction> schedule = DrawFaults(world, nemesis);
    sim::Nemesis::Install(world, schedule, nemesis);
    world.RunUntil(sim::SimTime::FromNanos(kRunEnd.nanos()));

    CollectFinalState(world, &obs);
    RunResult result;
    CheckSharding(obs, &result);
    AddCharts(obs, schedule, harness.aimed_faults, world.now().nanos(), &result);
    result.metrics["faults"] = static_cast<double>(schedule.size());
    FinishRun(world, ctx, &result);
    if (ctx.history_out != nullptr) *ctx.history_out = ExportHistory(obs);
    return result;
  }
};

}  // namespace
}  // namespace sharding

const Scenario* ShardingScenario() {
  static const sharding::Sharding scenario;
  return &scenario;
}

}  // namespace faultline::lab
