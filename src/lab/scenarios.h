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

// split-brain's record and checker are declared in split_brain.h.

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

}  // namespace faultline::lab
