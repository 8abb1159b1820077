#include "faultline/lease/lease_service.h"

#include <algorithm>

namespace faultline::lease {

Status ValidateTtl(Duration ttl) {
  if (ttl <= Duration::Zero()) return InvalidArgumentError("ttl must be positive");
  if (ttl < LeaseLimits::kTtlMin) {
    return InvalidArgumentError("ttl is below LeaseLimits::kTtlMin (10 ms)");
  }
  if (ttl > LeaseLimits::kTtlMax) {
    return InvalidArgumentError("ttl is above LeaseLimits::kTtlMax (1 h)");
  }
  return Status::Ok();
}

MonoTime LeaseValidUntil(MonoTime sent_at, Duration ttl, int64_t drift_ppm_max, Duration margin) {
  // Out-of-range inputs only ever shorten the validity: a negative drift bound or margin would
  // lengthen it past what the acceptors promise, so they count as zero.
  if (ttl <= Duration::Zero()) return sent_at;
  const int64_t ppm = std::clamp<int64_t>(drift_ppm_max, 0, 1'000'000);
  const Int128 ttl_ns = ttl.nanos();
  // Rounded up: the drift allowance is never understated.
  const Int128 drift_ns = (ttl_ns * ppm + 999'999) / 1'000'000;
  const Int128 margin_ns = std::max(margin, Duration::Zero()).nanos();
  const Int128 valid_ns = ttl_ns - drift_ns - margin_ns;
  if (valid_ns <= 0) return sent_at;
  FL_ASSERT(valid_ns <= ttl_ns);
  const MonoTime until = sent_at + Duration::Nanos(static_cast<int64_t>(valid_ns));  // saturates
  FL_ASSERT(until >= sent_at);
  return until;
}

}  // namespace faultline::lease

namespace faultline::lease {

Task<Status> LeaseService::WaitReleased(std::string name, Duration max, CancelToken cancel) {
  (void)name;
  (void)max;
  (void)cancel;
  co_return UnimplementedError("this lease service cannot watch a name");
}

}  // namespace faultline::lease
