// A project outside the faultline tree, built against an installed faultline: it runs a tiny
// simulation and checks it is deterministic.
#include <cstdio>

#include "faultline/sim/world.h"

int main() {
  uint64_t hashes[2];
  for (uint64_t& h : hashes) {
    faultline::sim::World world(42, faultline::sim::WorldOptions::Nodes(3));
    int fired = 0;
    for (int i = 0; i < 100; ++i) {
      world.Schedule(faultline::Duration::Millis(world.rng(faultline::sim::Stream::kWorkload).Range(0, 1000)),
                     [&fired] { ++fired; });
    }
    world.RunFor(faultline::Duration::Seconds(2));
    if (fired != 100) return 1;
    h = world.hash();
  }
  std::printf("hash %llx\n", static_cast<unsigned long long>(hashes[0]));
  return hashes[0] == hashes[1] ? 0 : 1;
}
