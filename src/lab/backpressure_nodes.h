// Internal: the `backpressure` scenario's nodes — client, frontend, dependency — and the constants
// they share with the scenario, apart from the simulator (backpressure.cc hosts them in a sim::World).
#pragma once

#include <cstdint>
#include <memory>

#include "faultline/core/observer.h"
#include "faultline/core/time.h"
#include "faultline/env/env.h"
#include "faultline/env/node.h"
#include "src/lab/backpressure_check.h"

namespace faultline::lab::backpressure {

inline constexpr uint32_t kClient = 0;
inline constexpr uint32_t kFrontend = 1;
inline constexpr uint32_t kDependency = 2;
inline constexpr uint16_t kMethodCall = 1;
inline constexpr Duration kArrivalMean = Duration::Millis(2);  // 500/s
inline constexpr uint32_t kWorkers = 20;
inline constexpr Duration kServiceTime = Duration::Millis(20);
inline constexpr Duration kSlowStart = Duration::Seconds(5);
inline constexpr Duration kPartialStart = Duration::Seconds(10);
inline constexpr Duration kTriggerEnd = Duration::Seconds(15);
inline constexpr Duration kArrivalsEnd = Duration::Seconds(50);
inline constexpr Duration kRunEnd = Duration::Seconds(52);
inline constexpr Duration kClientTimeout = Duration::Seconds(1);
inline constexpr uint32_t kQueueBound = 100;
inline constexpr Duration kSampleInterval = Duration::Millis(100);

struct Conditions {
  int64_t slowdown = 1;  // service time multiplier
};

// The dependency: kWorkers at kServiceTime × conditions->slowdown; hardened: a bounded queue and
// expired work dropped. Samples its queue depth into obs.
std::unique_ptr<Node> MakeDependency(Env& env, const TrueTime* true_time, const Conditions* conditions,
                                     bool hardened, BackpressureObservations* obs);
// The frontend: forwards; hardened: bulkhead + circuit breaker + the caller's deadline.
// `metrics` (nullptr: none) receives the frontend's bulkhead and breaker events as instance
// "frontend".
std::unique_ptr<Node> MakeFrontend(Env& env, bool hardened, Observer* metrics = nullptr);
// The open-loop client: 500 requests/s until kArrivalsEnd; naive retries after a 1 s timeout.
std::unique_ptr<Node> MakeClient(Env& env, const TrueTime* true_time, bool hardened,
                                 BackpressureObservations* obs);

}  // namespace faultline::lab::backpressure
