// Internal: the built-in scenarios. Each lives in its own file under src/lab/. The checkers of
// selftest, clock-ordering, retry-amplification and backpressure take typed observations: see
// counter_check.h, clock_check.h, retry_check.h and backpressure_check.h.
#pragma once

#include "faultline/lab/scenario.h"

namespace faultline::lab {

const Scenario* SelftestScenario();

const Scenario* SplitBrainScenario();

// split-brain's checker (split_brain_checker.cc): reads the store's f="store-write"/"store-load"
// ops (value {"token","node",...}), the probe's f="leaders" samples ({"nodes":[...]}), the "heal"
// and "failover-crash" markers, and the clients' f="read"/"write" ops (kv model), and adds
// violations stale-write-accepted, two-leaders, non-linearizable, linearizability-unknown,
// no-leader-after-heal, no-failover and failover-over-bound.
void CheckSplitBrainHistory(const sim::History& history, RunResult* result);

const Scenario* ClockOrderingScenario();

const Scenario* RetryAmplificationScenario();

const Scenario* BackpressureScenario();

// idempotency (idempotency_scenario.cc); its checker is declared in idempotency_observations.h.
const Scenario* IdempotencyScenario();

}  // namespace faultline::lab
