#include "faultline/resilience/internal/striped_counters.h"

namespace faultline::resilience_internal {

uint32_t AssignStripe() {
  static std::atomic<uint32_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed) % kStripes + 1;
}

}  // namespace faultline::resilience_internal
