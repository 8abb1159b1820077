// The `split-brain` scenario: five nodes elect a leader, and the leader serves a key-value
// service whose data lives in a shared store (node 5: the database, the S3 bucket, the disk array
// of Kleppmann's story). Clients send reads and writes to whichever node they believe leads. The
// leader answers reads from its cache and writes through to the store.
//
//   naive      heartbeat-timeout self-election: a follower that has not heard a leader for an
//              election timeout promotes itself; a leader steps down only when it hears a higher
//              term. The store accepts every write. A partitioned, paused or deaf leader goes on
//              serving: two leaders, stale writes, stale reads.
//   lease-only majority leases (PaxosLease over the five nodes) with self-fencing on the holder's
//              monotonic clock, but a store that does not check tokens: a write delayed in the
//              network past its sender's lease still lands (Kleppmann's argument).
//   hardened   majority leases + self-fencing + a store that checks fencing tokens: a new leader
//              raises the store's token before it reads, and every older holder's write is refused.
//
// The nemesis (per seed) combines the generic schedule over nodes 0-4 (partitions of every shape,
// including bridge and flapping links faster than the election timeout; clock drift within the
// bound; jumps; loss, duplication, reordering; pauses; crashes) with faults aimed at whoever leads
// at the time: the leader hears nobody but can still send (asymmetric), the leader paused longer
// than the lease TTL (the GC-pause story), the leader isolated, and a write of the leader held in
// the network while it is deposed and released afterwards (the delayed message with an old token).
// At the end of the fault phase everything heals; four seconds later the leader is crashed, to
// measure failover.
//
// The store lives in split_brain_store.cc, the cluster nodes in split_brain_nodes.cc. The run
// records typed observations (split_brain.h) and the clients' history; the checker
// (split_brain_checker.cc) judges those alone: writes the store accepted with a
// token below one it had already seen; instants at which two nodes could act as leader (sampled
// every millisecond of true time); linearizability of the clients' operations; recovery after the
// heal and the failover time.
#include "src/lab/split_brain.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "faultline/lab/scenario.h"
#include "faultline/sim/nemesis.h"
#include "src/lab/chart_data.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace split_brain {
namespace {

constexpr uint32_t kClients = 5;
constexpr Duration kClientTimeout = Duration::Seconds(1);
constexpr Duration kFaultStart = Duration::Seconds(1);
constexpr Duration kFaultDuration = Duration::Seconds(20);
constexpr Duration kFailoverAfterHeal = Duration::Seconds(4);
constexpr Duration kRestartAfterFailover = Duration::Seconds(6);
constexpr Duration kRunEnd = Duration::Seconds(34);
constexpr Duration kLivenessBound = Duration::Seconds(10);
// An upper bound on one round trip here: 2 × (0.5 ms + an exponential tail of mean 0.5 ms). A
// message's extra latency passes 4.5 ms (nine means) with probability e^-9 ≈ 1e-4.
constexpr Duration kRttBound = Duration::Millis(10);
// The nemesis drifts clocks by at most this much (ρ); acceptors time leases on their own clocks.
constexpr int64_t kDriftPpmMax = 500;

// The failover bound, derived. Every fault has ended by the crash at C (the generic nemesis at the
// heal, 4 s before; aimed faults and the restarted acceptors' quiet, restart_quiet = 2.5 s, by
// 2.5 s after it), so the four other nodes are up and connected.
//   1. The crashed leader's value expires at every acceptor by C + kTtl·(1 + ρ) + kRttBound / 2:
//      its last Propose was accepted at most one way after C, and an acceptor forgets it kTtl
//      later on a clock running at most ρ slow.
//   2. A follower campaigns once its phi detector suspects the leader (about 0.5 s after the last
//      heartbeat, well before 1.), and its attempts start at most 2·kRetryMin + kRttBound apart:
//      a refused attempt costs a prepare round trip, then RetryDelay < 2·kRetryMin. So an attempt
//      starts within that after the expiry.
//   3. That attempt wins with a prepare and a propose (2 round trips), and the winner can act after
//      its store load (1 more).
//   bound = kTtl·(1 + ρ) + kRttBound/2 + 2·kRetryMin + 4·kRttBound = 2001 + 5 + 500 + 40 = 2546 ms.
// It takes the first attempt after the expiry to win: two candidates whose rounds interleave
// (dueling proposers) can both lose all kPrepareAttemptsMax rounds and wait another RetryDelay.
constexpr Duration kFailoverBound = kTtl + kTtl * kDriftPpmMax / 1'000'000 + kRttBound / 2 +
                                    kRetryMin * 2 + kRttBound * 4;
static_assert(kFailoverBound == Duration::Millis(2546));

// ---- the world-level workload, probe and leader-aimed nemesis ----

std::string OpJson(uint32_t key, std::optional<uint64_t> value) {
  return "{\"key\":" + std::to_string(key) +
         ",\"value\":" + (value ? std::to_string(*value) : std::string("null")) + "}";
}

class Harness {
 public:
  Harness(sim::World& world, Record* record) : world_(world), record_(record), clients_(kClients) {
    for (uint32_t c = 0; c < kClients; ++c) clients_[c].process = c;
  }

  void Start() {
    for (uint32_t c = 0; c < kClients; ++c) Next(c, Duration::Millis(3 * c));
    Probe();
  }

  // The nodes that could act as leader now, ascending.
  std::vector<uint32_t> ActingLeaders() {
    std::vector<uint32_t> acting;
    for (uint32_t i = 0; i < kClusterNodes; ++i) {
      if (world_.state(NodeId(i)) == sim::ProcessState::kDown) continue;
      auto* node = world_.node_as<ClusterNode>(NodeId(i));
      if (node != nullptr && node->ActingLeader()) acting.push_back(i);
    }
    return acting;
  }

  // Every millisecond of true time: record the set of nodes able to act when it changes.
  void Probe() {
    std::vector<uint32_t> acting = ActingLeaders();
    if (acting != last_acting_ || !probed_) {
      probed_ = true;
      record_->observations.push_back(LeaderSample{world_.now().nanos(), acting});
      last_acting_ = std::move(acting);
    }
    world_.Schedule(Duration::Millis(1), [this] { Probe(); });
  }

  // Records a nemesis marker at the current time.
  void Mark(NemesisMark mark) {
    mark.time_ns = world_.now().nanos();
    record_->observations.push_back(std::move(mark));
  }
  // Leader-aimed faults that found a leader to aim at.
  void CountLeaderFault() { ++leader_faults_; }
  int64_t leader_faults() const { return leader_faults_; }

 private:
  struct Client {
    int64_t process = 0;
    uint64_t op = 0;  // current op number; replies for older ones are ignored
    uint32_t target = 0;
    ClientRequest request;
    sim::EventId timeout;
  };

  void Next(uint32_t c, Duration after) {
    world_.Schedule(after, [this, c] { Invoke(c); });
  }

  void Invoke(uint32_t c) {
    Client& client = clients_[c];
    if (world_.elapsed() >= kRunEnd - Duration::Seconds(1)) return;
    Rng& rng = world_.rng(sim::Stream::kWorkload);
    client.request.write = rng.Chance(Ratio::Percent(50));
    client.request.key = static_cast<uint32_t>(rng.Uniform(kKeys));
    client.request.value = client.request.write ? ++values_ : 0;
    const uint64_t op = ++client.op;
    const std::string f = client.request.write ? "write" : "read";
    RecordOp(world_, client.process, check::OpType::kInvoke, f,
             OpJson(client.request.key,
                    client.request.write ? std::optional<uint64_t>(client.request.value)
                                         : std::nullopt));
    client.timeout = world_.Schedule(kClientTimeout, [this, c, op] {
      Finish(c, op, ClientReply{Outcome::kInfo, std::nullopt});
    });
    const NodeId target(client.target);
    if (world_.state(target) == sim::ProcessState::kDown) {
      Finish(c, op, ClientReply{});
      return;
    }
    Harness* self = this;
    world_.env(target).executor().Post([self, c, op] { self->Deliver(c, op); });
  }

  // On the target node's executor.
  void Deliver(uint32_t c, uint64_t op) {
    const Client& client = clients_[c];
    // Timed out while queued at a paused node: the request is dropped (its op is already info,
    // and the client has moved on to another request).
    if (client.op != op) return;
    auto* node = world_.node_as<ClusterNode>(NodeId(client.target));
    Harness* self = this;
    node->ClientOp(client.request,
                   [self, c, op](const ClientReply& reply) { self->Finish(c, op, reply); });
  }

  void Finish(uint32_t c, uint64_t op, const ClientReply& reply) {
    Client& client = clients_[c];
    if (client.op != op) return;  // already finished (timeout or reply)
    ++client.op;
    world_.Cancel(client.timeout);
    const std::string f = client.request.write ? "write" : "read";
    Rng& rng = world_.rng(sim::Stream::kWorkload);
    switch (reply.outcome) {
      case Outcome::kOk:
        RecordOp(world_, client.process, check::OpType::kOk, f,
                 OpJson(client.request.key,
                        client.request.write ? std::optional<uint64_t>(client.request.value)
                                             : reply.value));
        break;
      case Outcome::kFail:
        RecordOp(world_, client.process, check::OpType::kFail, f,
                 OpJson(client.request.key, std::nullopt));
        // Not the leader (or refused): try another node next time.
        client.target = static_cast<uint32_t>(rng.Uniform(kClusterNodes));
        break;
      case Outcome::kInfo:
        RecordOp(world_, client.process, check::OpType::kInfo, f,
                 OpJson(client.request.key, std::nullopt));
        // Jepsen's rule: a process whose op is indeterminate is replaced by a fresh one.
        client.process += kClients;
        client.target = static_cast<uint32_t>(rng.Uniform(kClusterNodes));
        break;
    }
    Next(c, Duration::Millis(10 + static_cast<int64_t>(rng.Uniform(40))));
  }

  sim::World& world_;
  Record* record_;
  std::vector<Client> clients_;
  uint64_t values_ = 0;
  std::vector<uint32_t> last_acting_;
  bool probed_ = false;
  int64_t leader_faults_ = 0;
};

enum class LeaderFault : uint8_t { kDeaf, kPause, kIsolate, kDelayedWrite };
constexpr int kLeaderFaultKinds = 4;

const char* LeaderFaultName(LeaderFault f) {
  switch (f) {
    case LeaderFault::kDeaf: return "leader-deaf";
    case LeaderFault::kPause: return "leader-pause";
    case LeaderFault::kIsolate: return "leader-isolated";
    case LeaderFault::kDelayedWrite: return "leader-write-delayed";
  }
  return "?";
}

struct AimedFault {
  Duration at;
  Duration length;
  LeaderFault kind = LeaderFault::kDeaf;
  // When nobody leads at `at`, the fault waits for a leader, 250 ms at a time, this many times.
  uint8_t waits_left = 8;
};

// Faults aimed at whoever leads when they fire: drawn per seed, before the run.
std::vector<AimedFault> DrawAimedFaults(Rng& rng) {
  std::vector<AimedFault> faults;
  Duration at = kFaultStart + Duration::Seconds(1);
  const Duration end = kFaultStart + kFaultDuration - Duration::Seconds(4);
  while (true) {
    at = at + Duration::Millis(500 + static_cast<int64_t>(rng.Uniform(1500)));
    if (at >= end) break;
    AimedFault f;
    f.at = at;
    f.kind = static_cast<LeaderFault>(rng.Uniform(kLeaderFaultKinds));
    // Long enough to outlive the lease: TTL plus up to 3 s.
    f.length = kTtl + Duration::Millis(500 + static_cast<int64_t>(rng.Uniform(2500)));
    faults.push_back(f);
    at = at + f.length;
  }
  return faults;
}

void ApplyAimedFault(sim::World& world, Harness& harness, AimedFault fault) {
  const std::vector<uint32_t> acting = harness.ActingLeaders();
  if (acting.empty()) {
    if (fault.waits_left == 0) return;
    --fault.waits_left;
    sim::World* w = &world;
    Harness* h = &harness;
    world.Schedule(Duration::Millis(250), [w, h, fault] { ApplyAimedFault(*w, *h, fault); });
    return;
  }
  const uint32_t leader = acting.back();
  harness.CountLeaderFault();
  NemesisMark mark;
  mark.kind = NemesisMark::Kind::kLeaderFault;
  mark.name = LeaderFaultName(fault.kind);
  mark.node = leader;
  mark.length = fault.length;
  harness.Mark(std::move(mark));
  switch (fault.kind) {
    case LeaderFault::kDeaf: {
      // The leader hears nobody (not even the store's replies) but can still send.
      sim::Grudge grudge(kNodes);
      for (uint32_t i = 0; i < kNodes; ++i) grudge.Block(i, leader);
      world.network().Partition(grudge);
      world.Schedule(fault.length, [&world] { world.network().Heal(); });
      break;
    }
    case LeaderFault::kPause:
      world.Pause(NodeId(leader));
      world.Schedule(fault.length, [&world, leader] {
        if (world.state(NodeId(leader)) == sim::ProcessState::kPaused) world.Resume(NodeId(leader));
      });
      break;
    case LeaderFault::kIsolate: {
      sim::Grudge grudge(kClusterNodes);
      for (uint32_t i = 0; i < kClusterNodes; ++i) grudge.BlockBoth(i, leader);
      world.network().Partition(grudge);
      world.Schedule(fault.length, [&world] { world.network().Heal(); });
      break;
    }
    case LeaderFault::kDelayedWrite: {
      // Hold what the leader sends to the store, cut the leader off from its peers until it is
      // deposed and a successor has written, then let the old messages through.
      world.network().Hold(leader, kStoreNode);
      sim::Grudge grudge(kClusterNodes);
      for (uint32_t i = 0; i < kClusterNodes; ++i) grudge.BlockBoth(i, leader);
      world.network().Partition(grudge);
      world.Schedule(fault.length, [&world] { world.network().Heal(); });
      world.Schedule(fault.length + Duration::Seconds(1),
                     [&world, leader] { world.network().Release(leader, kStoreNode); });
      break;
    }
  }
}

class SplitBrain final : public Scenario {
 public:
  std::string_view id() const override { return "split-brain"; }
  std::string_view description() const override {
    return "leader election under asymmetric/bridge/flapping partitions, pauses > TTL, drift and "
           "delayed messages";
  }
  std::vector<VariantSpec> variants() const override {
    return {
        {"naive", false, 0.5,
         "heartbeat-timeout self-election; the store accepts any write"},
        {"lease-only", false, 0.2,
         "majority leases + self-fencing; the store does not check tokens"},
        {"hardened", true, 0.0,
         "majority leases + self-fencing + fencing tokens checked by the store"},
    };
  }
  std::vector<std::string> probe_modules() const override { return {"fence", "lease"}; }
  std::vector<std::string> key_metrics() const override {
    return {"stale_writes", "dual_leader_ms", "linearizable", "recovery_ms", "failover_ms"};
  }

  RunResult Run(const RunContext& ctx) const override {
    FL_ASSERT(ctx.variant != nullptr);
    const std::string& v = ctx.variant->name;
    FL_ASSERT(v == "naive" || v == "lease-only" || v == "hardened");
    const Design design = v == "naive"        ? Design::kNaive
                          : v == "lease-only" ? Design::kLeaseOnly
                                              : Design::kHardened;
    sim::WorldOptions options = sim::WorldOptions::Nodes(kNodes);
    options.clocks.drift_ppm_max = kDriftPpmMax;
    sim::World world(ctx.seed, options);
    ObserveRun(world, ctx);
    world.clock(NodeId(kStoreNode)).SetDrift(0);

    Record record;
    BootNodes(world, design, &record);
    Harness harness(world, &record);
    Faults faults;  // the nemesis refers to its schedule and options until the run ends
    InstallFaults(world, harness, &faults);
    harness.Start();
    world.RunUntil(sim::SimTime::FromNanos(kRunEnd.nanos()));

    RunResult result;
    Check(record, world.history(), &result);
    AddCharts(record, faults, world.now().nanos(), &result);
    result.metrics["faults"] = static_cast<double>(faults.schedule.size() + faults.aimed.size());
    result.metrics["leader_faults"] = static_cast<double>(harness.leader_faults());
    FinishRun(world, ctx, &result);
    return result;
  }

 private:
  static void BootNodes(sim::World& world, Design design, Record* record) {
    sim::World* w = &world;
    for (uint32_t i = 0; i < kClusterNodes; ++i) {
      const NodeId id(i);
      world.Boot(id, [w, id, design](Env& env) -> std::unique_ptr<Node> {
        return MakeClusterNode(env, design, w->incarnation(id));
      });
    }
    const bool fenced = design == Design::kHardened;
    world.Boot(NodeId(kStoreNode), [w, record, fenced](Env& env) -> std::unique_ptr<Node> {
      return MakeStoreNode(env, w, record, fenced);
    });
  }

  struct Faults {
    sim::NemesisOptions nemesis;
    std::vector<sim::FaultAction> schedule;
    std::vector<AimedFault> aimed;
  };

  // The report's chart: who could act as leader, one lane per node, under the drawn faults, the
  // leader-aimed ones and the failover crash.
  static void AddCharts(const Record& record, const Faults& faults, int64_t end_ns,
                        RunResult* result) {
    result->faults = FaultSpans(faults.schedule, end_ns);
    std::vector<Series> lanes;
    for (uint32_t n = 0; n < kClusterNodes; ++n) {
      lanes.push_back(Series{"n" + std::to_string(n) + " leads", "lane", {{0, 0.0}}});
    }
    for (const Observation& o : record.observations) {
      if (const LeaderSample* s = std::get_if<LeaderSample>(&o)) {
        for (uint32_t n = 0; n < kClusterNodes; ++n) {
          const bool on = std::find(s->nodes.begin(), s->nodes.end(), n) != s->nodes.end();
          auto& points = lanes[n].points;
          if ((points.back().second > 0) != on) points.emplace_back(s->time_ns, on ? 1.0 : 0.0);
        }
      } else if (const NemesisMark* m = std::get_if<NemesisMark>(&o)) {
        const std::string node = "n" + std::to_string(m->node);
        if (m->kind == NemesisMark::Kind::kLeaderFault) {
          result->faults.push_back(FaultSpan{"leader " + m->name, node, m->time_ns,
                                             std::min(end_ns, m->time_ns + m->length.nanos())});
        } else if (m->kind == NemesisMark::Kind::kFailoverCrash) {
          result->faults.push_back(
              FaultSpan{"failover crash", node, m->time_ns,
                        std::min(end_ns, m->time_ns + kRestartAfterFailover.nanos())});
        }
      }
    }
    for (Series& s : lanes) {
      s.points.emplace_back(end_ns, s.points.back().second);
      result->series.push_back(std::move(s));
    }
  }

  // Draws and schedules the generic nemesis over nodes 0-4, the leader-aimed faults, the heal
  // marker and the failover crash. `faults` must outlive the run.
  static void InstallFaults(sim::World& world, Harness& harness, Faults* faults) {
    sim::NemesisOptions& nemesis = faults->nemesis;
    nemesis.start = kFaultStart;
    nemesis.duration = kFaultDuration;
    nemesis.interval_mean = Duration::Millis(2000);
    nemesis.flap_period = Duration::Millis(150);  // faster than the election timeout
    nemesis.drift_ppm_max = kDriftPpmMax;
    nemesis.clock_jump_max = Duration::Seconds(2);
    nemesis.down_max = 2;
    faults->schedule =
        sim::Nemesis::Draw(nemesis, kClusterNodes, world.rng(sim::Stream::kNemesis));
    sim::Nemesis::Install(world, faults->schedule, nemesis);
    faults->aimed = DrawAimedFaults(world.rng(sim::Stream::kNemesis));
    sim::World* w = &world;
    Harness* h = &harness;
    for (const AimedFault& fault : faults->aimed) {
      world.ScheduleAt(sim::SimTime::FromNanos(fault.at.nanos()),
                       [w, h, fault] { ApplyAimedFault(*w, *h, fault); });
    }
    const Duration heal = kFaultStart + kFaultDuration;
    world.ScheduleAt(sim::SimTime::FromNanos(heal.nanos()), [h] {
      NemesisMark mark;
      mark.kind = NemesisMark::Kind::kHeal;
      mark.bound = kLivenessBound;
      h->Mark(std::move(mark));
    });
    world.ScheduleAt(sim::SimTime::FromNanos((heal + kFailoverAfterHeal).nanos()),
                     [w, h] { CrashLeader(*w, *h); });
  }

  // Failover: crash whoever leads (when exactly one node does), then bring it back.
  static void CrashLeader(sim::World& world, Harness& harness) {
    const std::vector<uint32_t> acting = harness.ActingLeaders();
    NemesisMark mark;
    if (acting.size() != 1) {
      mark.kind = NemesisMark::Kind::kFailoverSkipped;
      harness.Mark(std::move(mark));
      return;
    }
    const uint32_t leader = acting.front();
    mark.kind = NemesisMark::Kind::kFailoverCrash;
    mark.node = leader;
    mark.bound = kFailoverBound;
    harness.Mark(std::move(mark));
    world.Crash(NodeId(leader));
    sim::World* w = &world;
    world.Schedule(kRestartAfterFailover, [w, leader] { w->Restart(NodeId(leader)); });
  }
};

}  // namespace
}  // namespace split_brain

const Scenario* SplitBrainScenario() {
  static const split_brain::SplitBrain scenario;
  return &scenario;
}

}  // namespace faultline::lab
