// File: faultline/env/node.h
//
// Node: the unit of code that runs as one process, in the simulator and in production alike. A
// factory builds it over the process's Env; Start() runs once per boot. A crash destroys the
// object (and every coroutine it spawned through Env::Spawn); a restart builds a fresh one from the
// same factory over the surviving disk. sim::World hosts nodes in a simulation; the real runtime
// (faultline/runtime/) hosts one per operating-system process. Node code includes neither.
//
// TrueTime: the harness's reference time for stamping what a node records for a checker —
// simulated time under sim::World, the machine's shared CLOCK_MONOTONIC under the real runtime.
// Node code never decides anything by it (decisions read Env::clock(), which may be skewed); it
// only lets a checker line up observations from many nodes on one exact time axis.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "faultline/env/env.h"

namespace faultline {

class Node {
 public:
  virtual ~Node() = default;
  virtual void Start() {}
};

using NodeFactory = std::function<std::unique_ptr<Node>(Env& env)>;

class TrueTime {
 public:
  virtual ~TrueTime() = default;
  // Nanoseconds since the run began on the harness's reference clock.
  virtual int64_t NowNs() const = 0;
};

}  // namespace faultline
