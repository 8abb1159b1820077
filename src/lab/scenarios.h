// Internal: the built-in scenarios. Each lives in its own file under src/lab/. The checkers of
// selftest, clock-ordering, retry-amplification and backpressure take typed observations: see
// counter_check.h, clock_check.h, retry_check.h and backpressure_check.h.
#pragma once

#include "faultline/lab/scenario.h"

namespace faultline::lab {

const Scenario* SelftestScenario();

const Scenario* SplitBrainScenario();

// split-brain's record and checker are declared in split_brain.h.

const Scenario* ClockOrderingScenario();

const Scenario* RetryAmplificationScenario();

const Scenario* BackpressureScenario();

// idempotency (idempotency_scenario.cc); its checker is declared in idempotency_observations.h.
const Scenario* IdempotencyScenario();

// distributed-txn (distributed_txn_scenario.cc); its checker is declared in txn_observations.h.
const Scenario* DistributedTxnScenario();

// sharding (sharding_scenario.cc); its record and checker are declared in sharding.h.
const Scenario* ShardingScenario();

}  // namespace faultline::lab
