// An in-memory publisher for outbox tests: de-duplicates by id like a broker, and can be told to
// refuse.
#pragma once

#include <set>
#include <span>
#include <string>
#include <vector>

#include "faultline/outbox/broker.h"

namespace faultline::outbox::testing {

// Stores each id once, in publish order (a broker's de-duplication); `calls` counts every message
// handed to Publish, duplicates included. `fail` makes Publish refuse with that status.
class MemoryPublisher final : public Publisher {
 public:
  Status Publish(std::span<const Message> batch) override {
    if (!fail.ok()) return fail;
    for (const Message& m : batch) {
      ++calls;
      if (ids.insert(m.id).second) stored.push_back(m);
    }
    return Status::Ok();
  }
  Status fail = Status::Ok();
  uint64_t calls = 0;
  std::set<std::string> ids;
  std::vector<Message> stored;
};

}  // namespace faultline::outbox::testing
