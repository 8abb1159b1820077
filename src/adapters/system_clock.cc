#include "faultline/adapters/system_clock.h"

#include <chrono>

namespace faultline {

MonoTime SystemClock::Now() {
  const auto d = std::chrono::steady_clock::now().time_since_epoch();
  return MonoTime::FromNanos(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

WallTime SystemClock::WallNow() {
  const auto d = std::chrono::system_clock::now().time_since_epoch();
  return WallTime::FromNanos(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

SystemClock& SystemClock::Default() {
  static SystemClock clock;
  return clock;
}

}  // namespace faultline
