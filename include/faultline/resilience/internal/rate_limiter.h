// File: faultline/resilience/internal/rate_limiter.h
//
// Not part of the API: the GCRA step and the statistics counters behind TokenBucket, Gcra and
// KeyedRateLimiter (faultline/resilience/rate_limiter.h), whose inline TryAcquire hot paths use
// them.
#pragma once

#include <cstdint>

#include "faultline/core/time.h"
#include "faultline/resilience/internal/striped_counters.h"

namespace faultline {

namespace limiter_internal {

// Statistics in 16 per-thread stripes, incremented by relaxed load+store so that a call writes
// only its own thread's cache line. Exact with up to 16 threads using one limiter; beyond that,
// threads sharing a stripe may lose increments. Decisions never read them.
class StripedCounters : public resilience_internal::StripedCounters<3> {
 public:
  enum Counter : uint32_t { kAdmitted, kRejected, kNever, kCount };
};

// One GCRA decision on a TAT. Admitted: returns 0 and sets *tat to tat'. Rejected: returns the
// wait (> 0) and leaves *tat. Requires 0 <= inc <= tau < 2^62.
inline int64_t GcraDecide(int64_t* tat, int64_t now, int64_t inc, int64_t tau) {
  const int64_t base = *tat > now ? *tat : now;
  const int64_t next = time_internal::SatAdd(base, inc);
  const int64_t allow_at = next - tau;
  if (now < allow_at) return allow_at - now;
  *tat = next;
  return 0;
}

}  // namespace limiter_internal

}  // namespace faultline
