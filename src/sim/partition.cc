#include "faultline/sim/partition.h"

#include "faultline/core/assert.h"

namespace faultline::sim {

const char* PartitionShapeName(PartitionShape shape) {
  switch (shape) {
    case PartitionShape::kHalves: return "halves";
    case PartitionShape::kIsolateOne: return "isolate-one";
    case PartitionShape::kBridge: return "bridge";
    case PartitionShape::kMajoritiesRing: return "majorities-ring";
    case PartitionShape::kOneWay: return "one-way";
  }
  return "?";
}

size_t Grudge::blocked_links() const {
  size_t n = 0;
  for (bool b : blocked_) n += b ? 1 : 0;
  return n;
}

std::string Grudge::Describe() const {
  std::string out;
  for (uint32_t to = 0; to < n_; ++to) {
    std::string from_list;
    for (uint32_t from = 0; from < n_; ++from) {
      if (blocked(from, to)) {
        if (!from_list.empty()) from_list += ",";
        from_list += std::to_string(from);
      }
    }
    if (from_list.empty()) continue;
    if (!out.empty()) out += " ";
    out += std::to_string(to) + "<-x{" + from_list + "}";
  }
  return out.empty() ? "none" : out;
}

Grudge Grudge::Make(PartitionShape shape, uint32_t n, Rng& rng) {
  FL_ASSERT(n >= 2);
  Grudge g(n);
  std::vector<uint32_t> order(n);
  for (uint32_t i = 0; i < n; ++i) order[i] = i;
  rng.Shuffle(order.data(), n);
  switch (shape) {
    case PartitionShape::kHalves: {
      const uint32_t cut = n / 2;
      for (uint32_t i = 0; i < cut; ++i) {
        for (uint32_t j = cut; j < n; ++j) g.BlockBoth(order[i], order[j]);
      }
      break;
    }
    case PartitionShape::kIsolateOne: {
      for (uint32_t j = 1; j < n; ++j) g.BlockBoth(order[0], order[j]);
      break;
    }
    case PartitionShape::kBridge: {
      // order[0] is the bridge; the rest split in two halves that cannot see each other.
      const uint32_t rest = n - 1;
      const uint32_t cut = 1 + rest / 2;
      for (uint32_t i = 1; i < cut; ++i) {
        for (uint32_t j = cut; j < n; ++j) g.BlockBoth(order[i], order[j]);
      }
      break;
    }
    case PartitionShape::kMajoritiesRing: {
      // Node at ring position i sees positions within distance k, where 2k+1 >= majority.
      const uint32_t majority = n / 2 + 1;
      const uint32_t k = majority / 2;
      for (uint32_t i = 0; i < n; ++i) {
        for (uint32_t j = 0; j < n; ++j) {
          const uint32_t d = i > j ? i - j : j - i;
          const uint32_t ring = d < n - d ? d : n - d;
          if (ring > k) g.Block(order[i], order[j]);
        }
      }
      break;
    }
    case PartitionShape::kOneWay: {
      for (uint32_t j = 1; j < n; ++j) g.Block(order[j], order[0]);
      break;
    }
  }
  return g;
}

}  // namespace faultline::sim
