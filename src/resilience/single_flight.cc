// SingleFlight is a template (include/faultline/resilience/single_flight.h); this file holds the
// non-template option validation.
#include "faultline/resilience/single_flight.h"

#include "faultline/core/options.h"

namespace faultline {

Status SingleFlightOptions::Validate() const {
  FL_CHECK_OPTION(ttl >= Duration::Zero() && !ttl.is_infinite(), "ttl must be >= 0 and finite");
  FL_CHECK_OPTION(keys_max >= 1 && keys_max <= (1u << 20), "keys_max must be in [1, 2^20]");
  FL_CHECK_OPTION(inflight_keys_max >= 1 && inflight_keys_max <= (1u << 20),
                  "inflight_keys_max must be in [1, 2^20]");
  return Status::Ok();
}

}  // namespace faultline
