// The `distributed-txn` scenario: money transfers between accounts held on two shards (n0, n1),
// each a LogStore on its own simulated disk, driven by a front node (n2), with an at-least-once
// broker (n3) carrying commands and events and a ledger service (n4) consuming every leg's event.
// A transfer debits the payer on one shard and credits the payee on the other; a credit to a
// frozen account is refused, and the transfer must then be rolled back.
//
//   naive     the application server calls the shards; each shard writes the leg and publishes its
//             event as two separate steps (dual write), and the server retries a timed-out call
//             without a key. Crashes between the steps lose events (committed, never published)
//             and publish events of legs that then roll back (phantoms); a crash of the server
//             abandons a transfer half done.
//   2pc       a coordinator with a decision log and two participants that PREPARE (durable record,
//             account locked) and apply the decision with its event through an outbox. Safe, but
//             when the coordinator crashes after the votes, prepared participants stay blocked,
//             locks held, until it returns: the scenario reports for how long.
//   hardened  a saga (saga::SagaLog: debit, then credit; compensations refund and uncredit) run by
//             an orchestrator that sends each armed step's command through an outbox::Outbox;
//             outbox::Relay publishes every node's outbox; shards consume through an inbox and the
//             saga ParticipantGuard, committing the inbox record, the guard's record, the leg and
//             the reply event in one local transaction.
//
// Faults (1 s .. 9 s, then everything heals; transfers stop at 8.5 s, the run ends at 14 s): the
// generic nemesis over all five nodes (crashes with power loss, pauses, partitions, clock faults,
// message loss, duplication, reordering, clogs); two to five broker crashes (it restarts from its
// log and redelivers what was in flight); crashes aimed at every step (between a leg's
// write and its publish, after a relay published and before it marked, after a consumer committed
// and before it acked, between a coordinator's votes and its decision); the broker's duplicate
// deliveries and redeliveries after ack-wait.
//
// The checker (txn_checker.cc) reads the typed observations only: starts, ends, committed leg
// outcomes, 2PC locks, consumed events, the final balances.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "faultline/lab/scenario.h"
#include "faultline/sim/nemesis.h"
#include "src/lab/chart_data.h"
#include "src/lab/scenarios.h"
#include "src/lab/txn_broker.h"
#include "src/lab/txn_nodes.h"
#include "src/lab/txn_observations.h"

namespace faultline::lab {
namespace {

constexpr Duration kFaultStart = Duration::Seconds(1);
constexpr Duration kFaultDuration = Duration::Seconds(8);
constexpr Duration kWorkloadEnd = Duration::Millis(8500);
constexpr Duration kRunEnd = Duration::Seconds(14);
constexpr Duration kTransferInterval = Duration::Millis(60);  // mean, exponential
constexpr Duration kSubmitRetry = Duration::Millis(200);
constexpr Ratio kCrashAtStep = Ratio::Percent(2);
constexpr Ratio kCrashAfterPrepare = Ratio::Percent(8);
constexpr Ratio kToFrozen = Ratio::Percent(10);

class Harness final : public TxnCrashPoints {
 public:
  Harness(sim::World& world, TxnObservations* obs) : world_(world), obs_(obs) {}

  void Start() { world_.Schedule(Duration::Millis(200), [this] { NextTransfer(); }); }

  bool CrashHere(NodeId self, Point point) override {
    const Duration t = world_.elapsed();
    if (t < kFaultStart || t >= kFaultStart + kFaultDuration) return false;
    Rng& rng = world_.rng(sim::Stream::kNemesis);
    const bool after_prepare = point == Point::kCoordinatorAfterPrepare;
    if (!rng.Chance(after_prepare ? kCrashAfterPrepare : kCrashAtStep)) return false;
    ++obs_->counters.crashes_aimed;
    if (after_prepare) ++obs_->counters.coordinator_crashes_after_prepare;
    // A coordinator that crashed after the votes stays away long enough to show the block.
    const Duration down = after_prepare
                              ? rng.Range(Duration::Millis(1000), Duration::Millis(4000))
                              : rng.Range(Duration::Millis(100), Duration::Millis(600));
    sim::World* w = &world_;
    world_.Schedule(Duration::Zero(), [w, self, down] {
      w->Crash(self);
      w->Schedule(down, [w, self] { w->Restart(self); });
    });
    return true;
  }

  // Reads each shard's balances from its store (all nodes are up after the heal).
  void ReadBalances() {
    for (uint32_t s = 0; s < kTxnShards; ++s) {
      if (world_.state(NodeId(s)) != sim::ProcessState::kUp) continue;
      Result<int64_t> total = world_.node_as<TxnShardNode>(NodeId(s))->Total();
      if (total.ok()) obs_->balances.push_back(TxnBalances{s, *total, world_.now().nanos()});
    }
  }

 private:
  struct Pending {
    TxnRequest request;
    bool accepted = false;
  };

  std::string Account(uint32_t shard, Rng& rng, bool payee) const {
    if (payee && rng.Chance(kToFrozen)) return "s" + std::to_string(shard) + "/frozen";
    return "s" + std::to_string(shard) + "/a" + std::to_string(rng.Uniform(kTxnAccounts));
  }

  void NextTransfer() {
    if (world_.elapsed() >= kWorkloadEnd) return;
    Rng& rng = world_.rng(sim::Stream::kWorkload);
    auto p = std::make_shared<Pending>();
    const uint32_t payer = static_cast<uint32_t>(rng.Uniform(kTxnShards));
    p->request.transfer = "T" + std::to_string(++transfers_);
    p->request.from = Account(payer, rng, false);
    p->request.to = Account(1 - payer, rng, true);
    p->request.amount = rng.Range(50, 400);
    Submit(p);
    world_.Schedule(rng.Exponential(kTransferInterval), [this] { NextTransfer(); });
  }

  // The client resubmits until the front accepted the transfer (a saga start is idempotent by
  // transfer id; the other fronts accept at once, when they are up).
  void Submit(std::shared_ptr<Pending> p) {
    if (p->accepted || world_.elapsed() >= kWorkloadEnd + Duration::Seconds(3)) return;
    if (world_.state(NodeId(kTxnFront)) == sim::ProcessState::kUp) {
      sim::World* w = &world_;
      world_.env(NodeId(kTxnFront)).executor().Post([w, p] {
        w->node_as<TxnFrontNode>(NodeId(kTxnFront))->Submit(p->request, [p] {
          p->accepted = true;
        });
      });
    }
    world_.Schedule(kSubmitRetry, [this, p] { Submit(p); });
  }

  sim::World& world_;
  TxnObservations* obs_;
  uint64_t transfers_ = 0;
};

// Broker crashes (it restarts from its log), drawn per seed before the run: 2..5 in the fault
// phase, on top of the nemesis's own crashes.
std::vector<std::pair<Duration, Duration>> DrawBrokerCrashes(Rng& rng) {
  std::vector<std::pair<Duration, Duration>> crashes;  // (at, down for)
  Duration at = kFaultStart;
  while (true) {
    at = at + rng.Range(Duration::Millis(1500), Duration::Millis(4000));
    if (at >= kFaultStart + kFaultDuration) break;
    crashes.emplace_back(at, rng.Range(Duration::Millis(100), Duration::Millis(800)));
  }
  return crashes;
}

// The report's charts: transfers started and finished per second, and the account locks held
// (prepared legs not yet decided) over time, under every fault of the run.
void AddCharts(const TxnObservations& obs, const std::vector<sim::FaultAction>& schedule,
               const std::vector<std::pair<Duration, Duration>>& broker_crashes, int64_t end_ns,
               RunResult* result) {
  result->faults = FaultSpans(schedule, end_ns);
  for (const auto& [at, down] : broker_crashes) {
    result->faults.push_back(
        FaultSpan{"broker crash", "broker", at.nanos(), std::min(end_ns, (at + down).nanos())});
  }
  std::vector<int64_t> started, ended;
  for (const TxnStart& s : obs.starts) started.push_back(s.time_ns);
  for (const TxnEnd& e : obs.ends) ended.push_back(e.time_ns);
  result->series.push_back(RateSeries("transfers started", started, kChartSlowWindowNs, end_ns));
  result->series.push_back(RateSeries("transfers finished", ended, kChartSlowWindowNs, end_ns));
  // Locks held: +1 at each YES vote, -1 when its decision is applied.
  std::map<int64_t, int64_t> delta;
  for (const TxnLock& l : obs.locks) {
    ++delta[l.held_ns];
    if (l.released_ns != kTxnNever) --delta[l.released_ns];
  }
  Series held{"account locks held", "locks", {{0, 0.0}}};
  int64_t level = 0;
  for (const auto& [t, d] : delta) {
    level += d;
    if (held.points.back().first == t) {
      held.points.back().second = static_cast<double>(level);
    } else {
      held.points.emplace_back(t, static_cast<double>(level));
    }
  }
  held.points.emplace_back(end_ns, static_cast<double>(level));
  result->series.push_back(std::move(held));
}

TxnDesign DesignOf(const std::string& variant) {
  if (variant == "naive") return TxnDesign::kNaive;
  if (variant == "2pc") return TxnDesign::kTwoPhase;
  FL_ASSERT(variant == "hardened");
  return TxnDesign::kHardened;
}

TxnBrokerOptions BrokerOptions() {
  TxnBrokerOptions o;
  o.consumers = {{"s0", "cmd.s0"}, {"s1", "cmd.s1"}, {"orch", "evt."}, {"ledger", "evt."}};
  return o;
}

void BootNodes(sim::World& world, const TxnNodeContext& ctx) {
  for (uint32_t s = 0; s < kTxnShards; ++s) {
    world.Boot(NodeId(s), [ctx, s](Env& env) -> std::unique_ptr<Node> {
      return std::make_unique<TxnShardNode>(env, ctx, s);
    });
  }
  world.Boot(NodeId(kTxnFront), [ctx](Env& env) -> std::unique_ptr<Node> {
    return std::make_unique<TxnFrontNode>(env, ctx);
  });
  TxnObservations* obs = ctx.obs;
  world.Boot(NodeId(kTxnBroker), [obs](Env& env) -> std::unique_ptr<Node> {
    return std::make_unique<TxnBrokerNode>(env, obs, BrokerOptions());
  });
  world.Boot(NodeId(kTxnLedger), [ctx](Env& env) -> std::unique_ptr<Node> {
    return std::make_unique<TxnLedgerNode>(env, ctx);
  });
}

class DistributedTxn final : public Scenario {
 public:
  std::string_view id() const override { return "distributed-txn"; }
  std::string_view description() const override {
    return "money transfers across two shards: dual write vs 2PC (blocking coordinator) vs saga + "
           "outbox + inbox";
  }
  std::vector<VariantSpec> variants() const override {
    return {
        {"naive", false, 0.8,
         "write the leg and publish its event as two steps; retry calls without keys"},
        {"2pc", false, 0.5,
         "coordinator + PREPARE with locks held; the coordinator crashes after the votes"},
        {"hardened", true, 0.0,
         "saga (debit, credit; refund) + outbox in each local transaction + relay + inbox"},
    };
  }
  std::vector<std::string> probe_modules() const override { return {"saga", "outbox", "disk"}; }
  std::vector<std::string> key_metrics() const override {
    return {"transfers",      "completed",     "compensated",       "stuck",
            "lost_events",    "phantom_events", "applied_twice",    "blocked_transfers",
            "blocked_p99_ms", "blocked_max_ms"};
  }

  RunResult Run(const RunContext& ctx) const override {
    FL_ASSERT(ctx.variant != nullptr);
    const TxnDesign design = DesignOf(ctx.variant->name);
    sim::WorldOptions options = sim::WorldOptions::Nodes(kTxnNodes);
    options.disk.unsynced_survives = Ratio::Percent(30);
    sim::World world(ctx.seed, options);
    ObserveRun(world, ctx);

    TxnObservations obs;
    obs.initial_total = static_cast<int64_t>(kTxnShards * kTxnAccounts) * kTxnOpening;
    Harness harness(world, &obs);
    BootNodes(world, TxnNodeContext{design, &harness, &obs, &world});

    sim::NemesisOptions nemesis;
    nemesis.start = kFaultStart;
    nemesis.duration = kFaultDuration;
    nemesis.interval_mean = Duration::Millis(1200);
    nemesis.clock_jump_max = Duration::Seconds(2);
    nemesis.down_max = 2;
    const std::vector<sim::FaultAction> schedule =
        sim::Nemesis::Draw(nemesis, kTxnNodes, world.rng(sim::Stream::kNemesis));
    sim::Nemesis::Install(world, schedule, nemesis);
    sim::World* w = &world;
    const auto broker_crashes = DrawBrokerCrashes(world.rng(sim::Stream::kNemesis));
    for (const auto& [at, down] : broker_crashes) {
      world.ScheduleAt(sim::SimTime::FromNanos(at.nanos()), [w, length = down] {
        w->Crash(NodeId(kTxnBroker));
        w->Schedule(length, [w] { w->Restart(NodeId(kTxnBroker)); });
      });
    }
    harness.Start();
    world.RunUntil(sim::SimTime::FromNanos(kRunEnd.nanos() - 1));
    harness.ReadBalances();
    world.RunUntil(sim::SimTime::FromNanos(kRunEnd.nanos()));

    RunResult result;
    CheckDistributedTxn(obs, kRunEnd.nanos(), &result);
    AddCharts(obs, schedule, broker_crashes, world.now().nanos(), &result);
    result.metrics["faults"] = static_cast<double>(schedule.size() + broker_crashes.size());
    FinishRun(world, ctx, &result);
    return result;
  }
};

}  // namespace

const Scenario* DistributedTxnScenario() {
  static const DistributedTxn scenario;
  return &scenario;
}

}  // namespace faultline::lab
