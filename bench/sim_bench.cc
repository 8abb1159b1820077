// Simulator throughput. Targets (issue: foundation): >= 5M empty events/s/core, >= 1M 64-byte
// message deliveries/s/core with faults enabled, no heap allocation per event in steady state.
// Each benchmark reports allocs_per_event from a global operator-new counter.
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "bench/alloc_counter.h"
#include "faultline/lab/scenario.h"
#include "faultline/sim/world.h"

namespace faultline::sim {
namespace {

// Scheduler alone: a queue of `depth` pending events; each event, when run, schedules one more
// at a random near-future time, so the heap stays at `depth` entries.
void BM_SchedulerEmptyEvents(benchmark::State& state) {
  const int64_t depth = state.range(0);
  Rng rng(1, 1);
  uint64_t hash = 0;
  Scheduler scheduler(&rng, &hash);
  struct Chain {
    Scheduler* s;
    Rng* r;
    void Next() {
      Chain self = *this;
      s->At(s->now() + Duration::Nanos(static_cast<int64_t>(r->Uniform(1000))), EventOwner{},
            [self]() mutable { self.Next(); });
    }
  };
  for (int64_t i = 0; i < depth; ++i) Chain{&scheduler, &rng}.Next();
  // Warm up: let the slot table and heap reach their steady-state capacity.
  for (int i = 0; i < 10000; ++i) scheduler.Run(scheduler.PopNext(SimTime::Max()));
  const uint64_t allocs_before = bench::Allocations();
  uint64_t events = 0;
  for (auto _ : state) {
    scheduler.Run(scheduler.PopNext(SimTime::Max()));
    ++events;
  }
  state.counters["events_per_s"] = benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
  state.counters["allocs_per_event"] =
      static_cast<double>(bench::Allocations() - allocs_before) / static_cast<double>(events);
}
BENCHMARK(BM_SchedulerEmptyEvents)->Arg(16)->Arg(1024)->Arg(65536);

// The same through World::Step (owner dispatch, pause/crash checks, determinism hash), with node
// timers armed through a node's Executor (clock-drift conversion included).
void BM_WorldNodeTimers(benchmark::State& state) {
  World world(1, WorldOptions::Nodes(5));
  struct Ticker {
    Executor* ex;
    Rng* r;
    void Next() {
      Ticker self = *this;
      ex->ScheduleAfter(Duration::Nanos(static_cast<int64_t>(r->Uniform(1000))),
                        [self]() mutable { self.Next(); });
    }
  };
  class Idle : public Node {};
  for (uint32_t n = 0; n < 5; ++n) {
    world.Boot(NodeId(n), [](Env&) { return std::make_unique<Idle>(); });
    for (int i = 0; i < 200; ++i) {
      Ticker{&world.env(NodeId(n)).executor(), &world.rng(Stream::kWorkload)}.Next();
    }
  }
  for (int i = 0; i < 10000; ++i) world.Step();
  const uint64_t allocs_before = bench::Allocations();
  uint64_t events = 0;
  for (auto _ : state) {
    world.Step();
    ++events;
  }
  state.counters["events_per_s"] = benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
  state.counters["allocs_per_event"] =
      static_cast<double>(bench::Allocations() - allocs_before) / static_cast<double>(events);
}
BENCHMARK(BM_WorldNodeTimers);

// 64-byte messages between 5 nodes with faults on every link (1% loss, 1% duplication, 10%
// reordering, latency 0.5ms + Exp(0.5ms)). Each delivered message is answered with one more to a
// random peer; loss and duplication balance, so the number in flight stays near 1000. One benchmark iteration = one delivery.
class Pinger : public Node {
 public:
  explicit Pinger(Env& env) : env_(env) {}
  void Start() override {
    env_.transport().SetHandler([this](NodeId, const FrameView& f) {
      ++delivered;
      SendOne(f.payload);
    });
  }
  void SendOne(std::span<const uint8_t> payload) {
    uint32_t to = static_cast<uint32_t>(env_.random().Uniform(4));
    if (to >= env_.self().value()) ++to;
    env_.transport().Send(NodeId(to), 7, 1, payload).IgnoreError();
  }
  uint64_t delivered = 0;

 private:
  Env& env_;
};

void BM_NetworkDeliveries64B(benchmark::State& state) {
  WorldOptions options = WorldOptions::Nodes(5);
  options.links.loss = Ratio::Percent(1);
  options.links.duplicate = Ratio::Percent(1);
  options.links.reorder = Ratio::Percent(10);
  World world(1, options);
  std::vector<Pinger*> nodes;
  for (uint32_t n = 0; n < 5; ++n) {
    world.Boot(NodeId(n), [](Env& env) { return std::make_unique<Pinger>(env); });
    nodes.push_back(world.node_as<Pinger>(NodeId(n)));
  }
  const std::vector<uint8_t> payload(64, 0xab);
  for (Pinger* p : nodes) {
    for (int i = 0; i < 200; ++i) p->SendOne(payload);
  }
  auto delivered = [&] {
    uint64_t d = 0;
    for (Pinger* p : nodes) d += p->delivered;
    return d;
  };
  for (int i = 0; i < 20000; ++i) world.Step();
  const uint64_t allocs_before = bench::Allocations();
  const uint64_t delivered_before = delivered();
  uint64_t events = 0;
  for (auto _ : state) {
    world.Step();
    ++events;
  }
  const uint64_t d = delivered() - delivered_before;
  state.counters["deliveries_per_s"] = benchmark::Counter(static_cast<double>(d), benchmark::Counter::kIsRate);
  state.counters["allocs_per_event"] =
      static_cast<double>(bench::Allocations() - allocs_before) / static_cast<double>(events);
}
BENCHMARK(BM_NetworkDeliveries64B);

// One whole `selftest` run (27 simulated seconds, 5 nodes, full nemesis) per iteration; reports
// the simulated-time / wall-time ratio.
void BM_SelftestRun(benchmark::State& state, const char* variant_name) {
  const lab::Scenario* s = lab::FindScenario("selftest");
  const auto variants = s->variants();
  const lab::VariantSpec* v = lab::FindVariant(variants, variant_name);
  uint64_t seed = 1;
  double simulated_s = 0;
  uint64_t events = 0;
  for (auto _ : state) {
    lab::RunContext ctx;
    ctx.seed = seed++;
    ctx.variant = v;
    lab::RunResult r = s->Run(ctx);
    simulated_s += r.simulated.seconds_f();
    events += r.events;
  }
  state.counters["sim_seconds_per_s"] = benchmark::Counter(simulated_s, benchmark::Counter::kIsRate);
  state.counters["events_per_s"] = benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_SelftestRun, naive, "naive")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SelftestRun, hardened, "hardened")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace faultline::sim

BENCHMARK_MAIN();
