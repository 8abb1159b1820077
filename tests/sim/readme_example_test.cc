// The README's simulator example, compiled and run as a test so it can never go stale.
#include <gtest/gtest.h>

// [readme-example]
#include "faultline/env/rpc.h"
#include "faultline/sim/nemesis.h"
#include "faultline/sim/world.h"

using namespace faultline;

// Node code sees only Env: the same class runs under the simulator and on a real runtime.
class Greeter : public sim::Node {
 public:
  explicit Greeter(Env& env) : env_(env), rpc_(env) {}

  void Start() override {
    rpc_.Handle(1, [](NodeId, std::span<const uint8_t> req) -> Result<Bytes> {
      return Bytes(req.begin(), req.end());  // echo
    });
    if (env_.self() == NodeId(0)) env_.Spawn(Client());
  }

  int replies = 0;
  int timeouts = 0;

 private:
  Task<void> Client() {
    const Bytes hello = {'h', 'i'};
    while (true) {
      Result<Bytes> reply =
          co_await rpc_.Call(NodeId(1), /*method=*/1, hello, Duration::Millis(100));
      reply.ok() ? ++replies : ++timeouts;
      co_await Sleep(env_.executor(), Duration::Millis(10));
    }
  }

  Env& env_;
  Rpc rpc_;
};

uint64_t RunGreeters(uint64_t seed, int* replies, int* timeouts) {
  sim::World world(seed, sim::WorldOptions::Nodes(3));
  for (uint32_t i = 0; i < 3; ++i) {
    world.Boot(NodeId(i), [](Env& env) { return std::make_unique<Greeter>(env); });
  }
  // Draw a fault schedule from the seed: partitions, crashes, pauses, clock faults, ...
  sim::NemesisOptions faults;
  faults.duration = Duration::Seconds(10);
  const auto schedule = sim::Nemesis::Draw(faults, 3, world.rng(sim::Stream::kNemesis));
  sim::Nemesis::Install(world, schedule, faults);
  world.RunFor(Duration::Seconds(15));
  *replies = world.node_as<Greeter>(NodeId(0))->replies;
  *timeouts = world.node_as<Greeter>(NodeId(0))->timeouts;
  return world.hash();  // same seed, same hash
}
// [readme-example]

TEST(ReadmeExample, RunsAndReplaysIdentically) {
  int replies_a = 0, timeouts_a = 0, replies_b = 0, timeouts_b = 0;
  const uint64_t a = RunGreeters(7, &replies_a, &timeouts_a);
  const uint64_t b = RunGreeters(7, &replies_b, &timeouts_b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(replies_a, replies_b);
  EXPECT_EQ(timeouts_a, timeouts_b);
  EXPECT_GT(replies_a, 0);
}
