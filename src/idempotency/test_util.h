// Shared fixtures of the idempotency tests: a LogStore on a SimDisk with a ManualClock
// (src/store/sim_store_env.h).
#pragma once

#include "src/store/sim_store_env.h"

namespace faultline::idempotency::testing {

using faultline::testing::Must;
using faultline::testing::MustOk;
using faultline::testing::SimStoreEnv;

}  // namespace faultline::idempotency::testing
