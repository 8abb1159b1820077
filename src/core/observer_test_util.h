// Test helper: an Observer that keeps every event it is given (thread-safe), for tests of the
// primitives' observer hooks.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "faultline/core/observer.h"

namespace faultline::testing {

// An Event with its string copied (Event's views live only during OnEvent).
struct Seen {
  EventKind kind;
  std::string source;
  MonoTime at;
  int64_t a, b;
  Duration d;
};

class Recorder final : public Observer {
 public:
  void OnEvent(const Event& e) noexcept override {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back({e.kind, std::string(e.source), e.at, e.a, e.b, e.d});
  }
  int Count(EventKind kind) const {
    int n = 0;
    for (const Seen& s : events) n += s.kind == kind ? 1 : 0;
    return n;
  }
  const Seen* First(EventKind kind) const {
    for (const Seen& s : events) {
      if (s.kind == kind) return &s;
    }
    return nullptr;
  }
  std::mutex mu;
  std::vector<Seen> events;
};

}  // namespace faultline::testing
