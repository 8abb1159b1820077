// File: faultline/adapters/system_clock.h
//
// The production Clock: Now() from std::chrono::steady_clock, WallNow() from system_clock.
// Thread-safe; one shared instance is fine.
#pragma once

#include "faultline/env/clock.h"

namespace faultline {

class SystemClock final : public Clock {
 public:
  MonoTime Now() override;
  WallTime WallNow() override;
  // A process-wide instance.
  static SystemClock& Default();
};

}  // namespace faultline
