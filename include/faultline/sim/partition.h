// File: faultline/sim/partition.h
//
// Partition shapes as "grudges" (Jepsen's term): a directed matrix where blocked(from, to) means
// messages from `from` never reach `to`. Every shape is drawn from the nemesis stream, so a seed
// fixes which nodes end up where.
//   Halves          two sides of sizes floor(n/2) and ceil(n/2), cut both ways
//   IsolateOne      one node cut off from all others, both ways
//   Bridge          two halves that cannot talk, and one bridge node that talks to both
//   MajoritiesRing  nodes on a ring, each seeing only its neighbours so that every node sees a
//                   (different) majority including itself; n = 5 is exact
//   OneWay          one node's inbound links cut: it hears nobody but everyone still hears it (the
//                   asymmetric partition that defeats heartbeat-based failure detection)
#pragma once

// Node code (files compiled with FAULTLINE_NODE_CODE) runs on the real runtime too: it may not see
// the simulator.
#ifdef FAULTLINE_NODE_CODE
#error "node code must not include faultline/sim/ headers"
#endif

#include <cstdint>
#include <string>
#include <vector>

#include "faultline/core/random.h"

namespace faultline::sim {

enum class PartitionShape : uint8_t { kHalves, kIsolateOne, kBridge, kMajoritiesRing, kOneWay };
inline constexpr int kPartitionShapeCount = 5;
const char* PartitionShapeName(PartitionShape shape);

class Grudge {
 public:
  Grudge() = default;
  explicit Grudge(uint32_t node_count) : n_(node_count), blocked_(size_t{node_count} * node_count) {}

  uint32_t node_count() const { return n_; }
  bool blocked(uint32_t from, uint32_t to) const { return blocked_[size_t{from} * n_ + to]; }
  void Block(uint32_t from, uint32_t to) {
    if (from != to) blocked_[size_t{from} * n_ + to] = true;
  }
  void BlockBoth(uint32_t a, uint32_t b) {
    Block(a, b);
    Block(b, a);
  }
  size_t blocked_links() const;
  // e.g. "0,3|1,2,4" for symmetric splits, or a list of directed cuts "2<-{0,1,3,4}".
  std::string Describe() const;

  static Grudge Make(PartitionShape shape, uint32_t node_count, Rng& rng);

 private:
  uint32_t n_ = 0;
  std::vector<bool> blocked_;
};

}  // namespace faultline::sim
