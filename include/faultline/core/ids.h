// File: faultline/core/ids.h
//
// Strong ids: a NodeId cannot be passed where a fencing token or an epoch is expected. Each id is
// a tagged integer with comparison, hashing and an explicit value() accessor.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace faultline {

template <typename Tag, typename Rep>
class StrongId {
 public:
  using rep_type = Rep;
  constexpr StrongId() = default;
  constexpr explicit StrongId(Rep v) : v_(v) {}
  constexpr Rep value() const { return v_; }
  constexpr auto operator<=>(const StrongId&) const = default;

 private:
  Rep v_{};
};

struct NodeIdTag {};
struct EpochTag {};
struct FencingTokenTag {};

// A process in a cluster, 0-based and dense in the simulator.
using NodeId = StrongId<NodeIdTag, uint32_t>;
// A configuration or leadership epoch; increases monotonically.
using Epoch = StrongId<EpochTag, uint64_t>;
// A token granted with ownership; resources reject writes carrying a lower one.
using FencingToken = StrongId<FencingTokenTag, uint64_t>;

}  // namespace faultline

template <typename Tag, typename Rep>
struct std::hash<faultline::StrongId<Tag, Rep>> {
  size_t operator()(const faultline::StrongId<Tag, Rep>& id) const noexcept {
    return std::hash<Rep>()(id.value());
  }
};
