#include "faultline/resilience/hedging.h"

#include "faultline/core/options.h"

namespace faultline {

Status HedgingOptions::Validate() const {
  FL_CHECK_OPTION(attempts_max >= 1 && attempts_max <= kHedgeAttemptsMax,
                  "attempts_max must be in [1, kHedgeAttemptsMax]");
  FL_CHECK_OPTION(hedge_delay >= Duration::Zero(), "hedge_delay must be >= 0");
  FL_CHECK_OPTION(!non_fatal_codes.contains(StatusCode::kOk), "non_fatal_codes must not contain OK");
  FL_CHECK_OPTION(attempt_duration_min > Duration::Zero(), "attempt_duration_min must be > 0");
  return Status::Ok();
}

Result<HedgingPolicy> HedgingPolicy::Create(const HedgingOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return HedgingPolicy(options);
}

}  // namespace faultline
