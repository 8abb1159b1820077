// The broker conformance suite: the contract of faultline/outbox/broker.h as tests, for every
// Broker implementation. A target gives a factory and the broker's configuration; the suite's
// TEST_Ps live in broker_conformance.cc, which a test binary compiles in (not through a library:
// the linker would drop tests nothing references) together with its own instantiation:
//
//   INSTANTIATE_TEST_SUITE_P(SqliteQueue, BrokerConformance,
//                            ::testing::Values(MySqliteQueueTarget()), BrokerTargetName);
//
// Every test publishes to subjects of its own (target.subject_root + a fresh nonce) and uses fresh
// durable names, so targets may share one long-lived server and stream between tests and runs;
// message ids carry the nonce too, so a broker's de-duplication window never spans two tests.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/outbox/broker.h"

namespace faultline::outbox::testing {

struct BrokerConformanceTarget {
  std::string name;  // [A-Za-z0-9_]+, the test name suffix
  // A new client of the same broker on every call (a restarted process reconnecting).
  std::function<Result<std::unique_ptr<Broker>>()> open;
  // The ack-wait the broker's consumers use (the suite sleeps past it: keep it short, ~0.5 s).
  Duration ack_wait = Duration::Millis(500);
  // Subjects the suite uses start with it (a JetStream stream bound to "outbox.>": "outbox.").
  std::string subject_root = "conformance.";
  // The broker's payload limit: a larger payload must be kInvalidArgument.
  size_t payload_bytes_max = 1 << 20;
  // Restarts the broker server (stop + start on the same storage), or empty when there is none to
  // restart (an embedded broker: reopening it is what `open` does).
  std::function<Status()> restart;
};

inline void PrintTo(const BrokerConformanceTarget& target, std::ostream* os) { *os << target.name; }
inline std::string BrokerTargetName(const ::testing::TestParamInfo<BrokerConformanceTarget>& info) {
  return info.param.name;
}

class BrokerConformance : public ::testing::TestWithParam<BrokerConformanceTarget> {};

}  // namespace faultline::outbox::testing
