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

}  // namespace faultline::lab
