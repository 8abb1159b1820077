// Internal: the `selftest` scenario's node classes (a replicated counter), apart from the scenario
// so that they build without the simulator: sim::World hosts them in the lab, the real runtime in
// `faultline node selftest`.
//
//   naive     count in memory, acknowledge at once, tell peers "+1" once.
//   gossip    a G-counter in memory, gossiped on a timer and merged by per-slot maximum.
//   hardened  the same G-counter with the node's own slot committed to a LogStore before the ack.
#pragma once

#include <cstdint>
#include <memory>

#include "faultline/env/env.h"
#include "faultline/env/node.h"

namespace faultline::lab::selftest {

inline constexpr uint32_t kNodes = 5;

enum class CounterDesign : uint8_t { kNaive, kGossip, kHardened };

// Where a node reports the end of an increment: durable (ok) or certainly failed.
class CounterSink {
 public:
  virtual ~CounterSink() = default;
  virtual void Complete(uint32_t node, uint64_t op_id, bool ok) = 0;
};

// What the workload sees of a node.
class CounterNode : public Node {
 public:
  // Starts one increment; its end is reported to the sink (never, if the node crashes first).
  virtual void Increment(uint64_t op_id) = 0;
  virtual int64_t Value() const = 0;
};

std::unique_ptr<CounterNode> MakeCounterNode(Env& env, CounterDesign design, CounterSink* sink);

}  // namespace faultline::lab::selftest
