// Internal: the `retry-amplification` scenario's nodes — client, gateway, service, database — and
// the constants they share with the scenario, apart from the simulator (retry_amplification.cc hosts
// them in a sim::World).
#pragma once

#include <cstdint>
#include <memory>

#include "faultline/core/observer.h"
#include "faultline/core/time.h"
#include "faultline/env/env.h"
#include "faultline/env/node.h"
#include "src/lab/retry_check.h"

namespace faultline::lab::retry_amp {

inline constexpr uint32_t kClient = 0;
inline constexpr uint32_t kGateway = 1;
inline constexpr uint32_t kService = 2;
inline constexpr uint32_t kDatabase = 3;
inline constexpr uint16_t kMethodCall = 1;
inline constexpr Duration kArrivalMean = Duration::Millis(2);  // 500 requests/s
inline constexpr Duration kBlipStart = Duration::Seconds(5);
inline constexpr Duration kBlipEnd = Duration::Seconds(8);
inline constexpr Duration kArrivalsEnd = Duration::Seconds(20);
inline constexpr Duration kRunEnd = Duration::Seconds(25);
inline constexpr Duration kDeadline = Duration::Seconds(1);
inline constexpr Duration kNaiveTimeout = Duration::Seconds(30);
inline constexpr uint32_t kDbConcurrencyMax = 20;
inline constexpr Duration kDbServiceTime = Duration::Millis(5);
inline constexpr Duration kDbFailTime = Duration::Millis(50);  // a failing database is slow to say so

struct Conditions {
  bool blip = false;
};

// The database fails every request while `conditions->blip` (set by the scenario's script).
std::unique_ptr<Node> MakeDatabase(Env& env, const TrueTime* true_time, const Conditions* conditions,
                                   RetryObservations* obs);
// Gateway and service: forward to `next`; naive: three immediate attempts, else one attempt within
// the caller's deadline.
std::unique_ptr<Node> MakeLayer(Env& env, NodeId next, bool naive);
// The open-loop client: 500 requests/s until kArrivalsEnd.
// `metrics` (nullptr: none) receives the hardened client's retry decisions as instance "client".
std::unique_ptr<Node> MakeClient(Env& env, const TrueTime* true_time, bool naive, RetryObservations* obs,
                                 Observer* metrics = nullptr);

}  // namespace faultline::lab::retry_amp
