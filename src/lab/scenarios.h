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

const Scenario* ClockOrderingScenario();

// clock-ordering's checker (clock_checker.cc): judges a history of f="write" operations (invoke
// value {"id","key","deps"}, ok value {"id","key","deps","ts","node"}) and f="final" reads (ok value
// {"node","key","ids"}) for causality, lost updates, concurrent writes lost, external consistency
// and replica divergence.
void CheckClockHistory(const sim::History& history, RunResult* result);

}  // namespace faultline::lab
