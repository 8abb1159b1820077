// File: faultline/env/env.h
//
// Env: everything a node may touch of the outside world. Node code receives an Env& and uses
// nothing else for time, timers, randomness, messages and storage; that is the whole contract that
// lets one implementation run under the simulator (sim::World gives each node a SimEnv) and in
// production (the real runtime adapters).
#pragma once

#include "faultline/core/ids.h"
#include "faultline/core/random.h"
#include "faultline/env/clock.h"
#include "faultline/env/disk.h"
#include "faultline/env/executor.h"
#include "faultline/env/task.h"
#include "faultline/env/transport.h"

namespace faultline {

class Env {
 public:
  virtual ~Env() = default;

  virtual NodeId self() const = 0;
  virtual Clock& clock() = 0;
  virtual Executor& executor() = 0;
  virtual Transport& transport() = 0;
  virtual Disk& disk() = 0;
  // This node's deterministic random stream.
  virtual Rng& random() = 0;

  // Starts a detached coroutine owned by this node's process. It runs until its first suspension
  // before Spawn returns; a crash of the process destroys it.
  virtual void Spawn(Task<void> task) = 0;
};

}  // namespace faultline
