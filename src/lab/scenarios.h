// Internal: the built-in scenarios. Each lives in its own file under src/lab/.
#pragma once

#include "faultline/lab/scenario.h"

namespace faultline::lab {

const Scenario* SelftestScenario();

// selftest's checker, exposed for its tests: judges a counter history whose final reads are
// recorded as f="read" ok ops. Adds violations lost-acknowledged-increment (a final read below the
// number of acknowledged increments), phantom-increment (above the number attempted) and
// replicas-diverged (final reads differ), and metrics.
void CheckCounterHistory(const sim::History& history, RunResult* result);

const Scenario* SplitBrainScenario();

// split-brain's checker (split_brain_checker.cc): reads the store's f="store-write"/"store-load"
// ops (value {"token","node",...}), the probe's f="leaders" samples ({"nodes":[...]}), the "heal"
// and "failover-crash" markers, and the clients' f="read"/"write" ops (kv model), and adds
// violations stale-write-accepted, two-leaders, non-linearizable, linearizability-unknown,
// no-leader-after-heal, no-failover and failover-over-bound.
void CheckSplitBrainHistory(const sim::History& history, RunResult* result);

const Scenario* ClockOrderingScenario();

// clock-ordering's checker (clock_checker.cc): judges a history of f="write" operations (invoke
// value {"id","key","deps"}, ok value {"id","key","deps","ts","node"}) and f="final" reads (ok value
// {"node","key","ids"}) for causality, lost updates, concurrent writes lost, external consistency
// and replica divergence.
void CheckClockHistory(const sim::History& history, RunResult* result);

const Scenario* RetryAmplificationScenario();

// retry-amplification's checker (retry_checker.cc): reads f="request" ops (value {"req": id}),
// f="db-attempt" ops tagged with their request, and the "blip-start"/"blip-end" markers.
void CheckRetryHistory(const sim::History& history, RunResult* result);

const Scenario* BackpressureScenario();

// backpressure's checker (backpressure_checker.cc): reads f="request" ops, "capacity" markers
// ({"rps", "trigger"}) and "queue-depth" samples ({"depth", "bound"}).
void CheckBackpressureHistory(const sim::History& history, RunResult* result);

// idempotency (idempotency_scenario.cc); its checker is declared in idempotency_observations.h.
const Scenario* IdempotencyScenario();

}  // namespace faultline::lab
