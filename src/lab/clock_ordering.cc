// The `clock-ordering` scenario: a replicated key-value register whose clients write what they
// just read, across nodes, while every node's clock is wrong — initial offsets up to ±250 ms, drift
// up to ±500 ppm, jumps, strobes — and the network partitions, clogs, loses, duplicates and
// reorders. Three replicas (nodes 0-2) and a time service (node 3, true time, out of the nemesis's
// reach); six clients each loop: read a key at one replica, then write (70%: the same key) at
// another, carrying what they read as causal dependencies.
//
//   naive     last-writer-wins on the coordinator's physical wall clock. A write made after
//             reading another, on a node whose clock is behind, gets a smaller timestamp: it
//             loses to its own cause (lost update) and is ordered before it (causality
//             violation).
//   hlc       last-writer-wins on hybrid logical clocks: the coordinator observes the timestamp
//             the client read, so effects always follow causes. Concurrent writes still lose
//             silently, and a write that starts after another finished but never heard of it can
//             get a smaller timestamp (external consistency).
//   hardened  HLC timestamps + dotted version vectors (concurrent writes kept as siblings; a write
//             drops exactly the siblings its read context covers) + commit-wait on an interval
//             clock synced to the time service: a write's timestamp is at least the interval's
//             `latest`, and it is acknowledged only once `earliest` has passed it.
//
// This file holds the workload, which records typed observations (clock_check.h), and the
// scenario; the replicas live in clock_replicas.cc, the checker in clock_checker.cc. The checker
// judges the observations alone.
#include "src/lab/clock_ordering.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "faultline/lab/scenario.h"
#include "faultline/sim/clock.h"
#include "faultline/sim/nemesis.h"
#include "src/lab/chart_data.h"
#include "src/lab/clock_check.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

using clock::kKeys;
using clock::kNodes;
using clock::kReplicas;
using clock::kTimeService;
using clock::ReadReply;
using clock::Replica;
using clock::WriteRequest;

constexpr uint32_t kClients = 6;
constexpr Duration kFaultStart = Duration::Seconds(1);
constexpr Duration kFaultDuration = Duration::Seconds(20);
constexpr Duration kWorkloadEnd = Duration::Millis(21'500);
constexpr Duration kFinalRead = Duration::Seconds(26);
constexpr Duration kOpTimeout = Duration::Seconds(2);

enum class Design : uint8_t { kPhysicalLww, kHlcLww, kHardened };

// Six clients doing read-then-write across replicas, recording what they saw.
class Workload final : public clock::WriteSink {
 public:
  explicit Workload(sim::World& world) : world_(world), clients_(kClients) {
    for (uint32_t c = 0; c < kClients; ++c) clients_[c].process = c;
    observations_.ts_origin_us = sim::kSimEpochUnixNs / 1000;
  }

  void Start() {
    for (uint32_t c = 0; c < kClients; ++c) Schedule(c, Duration::Millis(c * 7));
  }

  void WriteDone(uint32_t client, uint64_t id, bool ok, uint64_t ts, uint32_t node) override {
    Client& c = clients_[client];
    if (c.pending_write != id) return;  // timed out already: recorded as info
    world_.Cancel(c.timeout);
    c.pending_write = 0;
    ClockWrite& w = End(c, ok ? Outcome::kOk : Outcome::kFail);
    if (!ok) {
      Schedule(client, Think());
      return;
    }
    w.ts = ts;
    w.node = node;
    c.last_write = id;
    if (ts > c.token) c.token = ts;
    // Read the key back at the replica that acknowledged the write: the write, or something that
    // saw it, must be there (what a lost update violates).
    const uint64_t key = c.request.key;
    Workload* self = this;
    sim::World* wp = &world_;
    world_.env(NodeId(node)).executor().Post([self, wp, client, key, node, id] {
      self->ReadBackDone(client, key, id, wp->node_as<Replica>(NodeId(node))->Read(key));
    });
  }

  void ReadBackDone(uint32_t client, uint64_t key, uint64_t after, const ReadReply& reply) {
    Client& c = clients_[client];
    observations_.reads.push_back(ClockRead{c.process, key, after, reply.ids, Now()});
    if (reply.observed_ts > c.token) c.token = reply.observed_ts;
    Schedule(client, Think());
  }

  void FinalReads() {
    for (uint32_t n = 0; n < kReplicas; ++n) {
      auto* r = world_.node_as<Replica>(NodeId(n));
      FL_ASSERT(r != nullptr);
      for (uint64_t k = 0; k < kKeys; ++k) {
        observations_.finals.push_back(ClockFinal{n, k, r->FinalIds(k), Now()});
      }
    }
  }

  const ClockObservations& observations() const { return observations_; }

  // The replicas' wall-clock errors, sampled for the report's chart.
  std::vector<Series> ClockSeries() const {
    std::vector<Series> out;
    for (uint32_t n = 0; n < kReplicas; ++n) {
      out.push_back(Series{"n" + std::to_string(n) + " clock offset", "ms", offsets_[n]});
    }
    return out;
  }

 private:
  struct Client {
    int64_t process = 0;
    uint64_t token = 0;  // largest timestamp this client has seen: its causal token
    uint64_t last_write = 0;
    uint64_t pending_write = 0;
    size_t write = 0;  // the pending write's entry in observations_.writes
    WriteRequest request;
    std::vector<uint64_t> deps;
    sim::EventId timeout;
  };

  Rng& rng() { return world_.rng(sim::Stream::kWorkload); }
  Duration Think() { return rng().Range(Duration::Zero(), Duration::Millis(20)); }
  int64_t Now() const { return world_.now().nanos(); }
  void Schedule(uint32_t client, Duration after) {
    world_.Schedule(after, [this, client] { ReadThenWrite(client); });
  }
  ClockWrite& End(const Client& c, Outcome outcome) {
    ClockWrite& w = observations_.writes[c.write];
    FL_ASSERT(w.id == c.request.id && w.outcome == Outcome::kPending);
    w.outcome = outcome;
    w.end_ns = Now();
    return w;
  }

  // A read is local and instantaneous at the replica (its own event, so it waits out a pause);
  // the write follows after a think time, at a different replica.
  void ReadThenWrite(uint32_t client) {
    if (world_.elapsed() >= kWorkloadEnd) return;
    SampleClocks();
    const uint64_t key = rng().Uniform(kKeys);
    const uint32_t at = static_cast<uint32_t>(rng().Uniform(kReplicas));
    Workload* self = this;
    sim::World* w = &world_;
    world_.env(NodeId(at)).executor().Post([self, w, client, key, at] {
      self->ReadDone(client, key, w->node_as<Replica>(NodeId(at))->Read(key));
    });
  }

  void ReadDone(uint32_t client, uint64_t key, ReadReply reply) {
    Client& c = clients_[client];
    observations_.reads.push_back(ClockRead{c.process, key, 0, reply.ids, Now()});
    WriteRequest& req = c.request;
    req = WriteRequest{};
    req.client = client;
    req.id = ++next_id_;
    req.key = rng().Chance(Ratio::Percent(70)) ? key : rng().Uniform(kKeys);
    if (reply.observed_ts > c.token) c.token = reply.observed_ts;
    req.observed_ts = c.token;
    req.has_context = req.key == key;
    if (req.has_context) req.context = reply.context;
    c.deps = reply.ids;
    if (c.last_write != 0) c.deps.push_back(c.last_write);
    world_.Schedule(Think(), [this, client] { SendWrite(client); });
  }

  void SendWrite(uint32_t client) {
    Client& c = clients_[client];
    const uint64_t id = c.request.id;
    c.write = observations_.writes.size();
    observations_.writes.push_back(ClockWrite{id, c.request.key, c.deps, c.process, Now()});
    c.pending_write = id;
    const uint32_t at = static_cast<uint32_t>(rng().Uniform(kReplicas));
    Workload* self = this;
    sim::World* w = &world_;
    requests_[id] = c.request;  // the event may run late (a paused replica): keep its own copy
    world_.env(NodeId(at)).executor().Post([self, w, id, at] {
      w->node_as<Replica>(NodeId(at))->Write(self->requests_.at(id));
    });
    c.timeout = world_.Schedule(kOpTimeout, [this, client, id] { TimedOut(client, id); });
  }

  void TimedOut(uint32_t client, uint64_t id) {
    Client& c = clients_[client];
    if (c.pending_write != id) return;
    End(c, Outcome::kInfo);
    c.pending_write = 0;
    c.process += kClients;  // an indeterminate op ends its process
    Schedule(client, Think());
  }

  // At most every kChartWindowNs, on a workload event that runs anyway: reading a clock draws no
  // randomness and schedules nothing, and monotonic readings at later instants are never smaller,
  // so sampling leaves the run and its hash unchanged.
  void SampleClocks() {
    const int64_t now = Now();
    if (now - last_sample_ns_ < kChartWindowNs) return;
    last_sample_ns_ = now;
    for (uint32_t n = 0; n < kReplicas; ++n) {
      const Duration error = world_.clock(NodeId(n)).wall_error();
      offsets_[n].emplace_back(now, static_cast<double>(error.nanos()) / 1e6);
    }
  }

  sim::World& world_;
  std::vector<std::vector<std::pair<int64_t, double>>> offsets_ =
      std::vector<std::vector<std::pair<int64_t, double>>>(kReplicas);
  int64_t last_sample_ns_ = -kChartWindowNs;
  std::vector<Client> clients_;
  std::map<uint64_t, WriteRequest> requests_;
  uint64_t next_id_ = 0;
  ClockObservations observations_;
};

class ClockOrdering final : public Scenario {
 public:
  std::string_view id() const override { return "clock-ordering"; }
  std::string_view description() const override {
    return "replicated register, read-then-write clients, skewed/drifting/jumping clocks: LWW on "
           "wall clocks vs HLC vs HLC + dotted version vectors + commit-wait";
  }
  std::vector<VariantSpec> variants() const override {
    return {
        {"naive", false, 0.9, "last-writer-wins on the coordinator's wall clock"},
        {"hlc", false, 0.5, "last-writer-wins on hybrid logical clocks"},
        {"hardened", true, 0, "HLC + dotted version vectors + commit-wait on an interval clock"},
    };
  }
  std::vector<std::string> probe_modules() const override { return {"hlc"}; }
  std::vector<std::string> key_metrics() const override {
    return {"writes_acked", "causality_violations", "lost_updates", "concurrent_writes_lost",
            "external_consistency_violations", "commit_wait_ms_mean", "error_bound_ms_mean"};
  }

  RunResult Run(const RunContext& ctx) const override {
    FL_ASSERT(ctx.variant != nullptr);
    const std::string& v = ctx.variant->name;
    FL_ASSERT(v == "naive" || v == "hlc" || v == "hardened");
    const Design design = v == "naive" ? Design::kPhysicalLww
                          : v == "hlc" ? Design::kHlcLww
                                       : Design::kHardened;
    sim::WorldOptions options = sim::WorldOptions::Nodes(kNodes);
    options.clocks.offset_max = Duration::Millis(250);
    options.clocks.drift_ppm_max = 500;
    sim::World world(ctx.seed, options);
    ObserveRun(world, ctx);
    // The time service keeps true time: no offset, no drift, out of the nemesis's reach.
    world.clock(NodeId(kTimeService)).SetDrift(0);
    world.clock(NodeId(kTimeService)).ResetWall();

    Workload workload(world);
    clock::Metrics metrics;
    Boot(world, design, &workload, &metrics);
    // The installed events refer to the schedule and options: both live until the run ends.
    const sim::NemesisOptions nemesis = Faults();
    const std::vector<sim::FaultAction> schedule =
        sim::Nemesis::Draw(nemesis, kReplicas, world.rng(sim::Stream::kNemesis));
    sim::Nemesis::Install(world, schedule, nemesis);
    workload.Start();
    world.RunUntil(sim::SimTime::FromNanos(kFinalRead.nanos()));
    workload.FinalReads();

    RunResult result;
    CheckClockHistory(workload.observations(), &result);
    for (Series& s : workload.ClockSeries()) result.series.push_back(std::move(s));
    result.faults = FaultSpans(schedule, world.now().nanos());
    const double waits = metrics.commit_waits > 0 ? static_cast<double>(metrics.commit_waits) : 1;
    result.metrics["commit_wait_ms_mean"] = static_cast<double>(metrics.commit_wait_ns) / waits / 1e6;
    result.metrics["error_bound_ms_mean"] = static_cast<double>(metrics.half_width_ns) / waits / 1e6;
    result.metrics["faults"] = static_cast<double>(schedule.size());
    if (ctx.history_out != nullptr) world.history() = ClockHistory(workload.observations());
    FinishRun(world, ctx, &result);
    return result;
  }

 private:
  static void Boot(sim::World& world, Design design, Workload* w, clock::Metrics* m) {
    for (uint32_t i = 0; i < kReplicas; ++i) {
      world.Boot(NodeId(i), [w, m, design](Env& env) -> std::unique_ptr<Node> {
        if (design == Design::kHardened) return clock::MakeDvvReplica(env, w, m);
        return clock::MakeLwwReplica(env, w, design == Design::kHlcLww);
      });
    }
    world.Boot(NodeId(kTimeService), [](Env& env) { return clock::MakeTimeService(env); });
  }

  // Clock faults (offsets, drift, jumps, strobes) and network faults on the replicas.
  static sim::NemesisOptions Faults() {
    sim::NemesisOptions nemesis;
    nemesis.start = kFaultStart;
    nemesis.duration = kFaultDuration;
    nemesis.crashes = false;  // the registers live in memory; durability is selftest's subject
    nemesis.clock_jump_max = Duration::Millis(300);
    nemesis.drift_ppm_max = 500;
    return nemesis;
  }
};

}  // namespace

const Scenario* ClockOrderingScenario() {
  static const ClockOrdering scenario;
  return &scenario;
}

}  // namespace faultline::lab