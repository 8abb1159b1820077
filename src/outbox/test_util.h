// Shared fixtures of the outbox tests: a LogStore on a SimDisk (src/store/sim_store_env.h), and an
// in-memory publisher that de-duplicates by id like a broker and can be told to refuse.
#pragma once

#include <string>
#include <utility>

#include "faultline/outbox/broker.h"
#include "src/store/sim_store_env.h"
#include "tests/outbox/memory_publisher.h"

namespace faultline::outbox::testing {

using faultline::testing::Must;
using faultline::testing::MustOk;
using faultline::testing::SimStoreEnv;

inline Message Event(const std::string& id, const std::string& key, std::string payload = "p") {
  return Message{id, "orders.created", key, std::move(payload)};
}

}  // namespace faultline::outbox::testing
