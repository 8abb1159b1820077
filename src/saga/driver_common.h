// What the synchronous and the coroutine drivers share. Internal to saga/.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/saga/saga_log.h"

namespace faultline::saga::internal {

// Why a stored saga cannot be driven (the reason it is parked with), or nullopt when it can.
// `registered_steps` is the step count registered for the saga's type, nullopt when the type is not
// registered. `state` is SagaLog::Get's answer; errors other than kDataLoss are not decided here.
inline std::optional<std::string> ParkReason(const Result<SagaState>& state,
                                             std::optional<size_t> registered_steps) {
  if (state.status().code() == StatusCode::kDataLoss) {
    return "saga row is corrupt: " + state.status().ToString();
  }
  FL_ASSERT(state.ok());
  if (!registered_steps) {
    return "saga type '" + state->type + "' is not registered with this orchestrator";
  }
  if (*registered_steps != state->steps) {
    return "saga type '" + state->type + "' has " + std::to_string(*registered_steps) +
           " steps registered, the saga was started with " + std::to_string(state->steps);
  }
  return std::nullopt;
}

// Checks a definition's shape for Register (the function presence is the caller's).
inline Status CheckDefinition(std::string_view type, size_t steps, size_t steps_max) {
  if (type.empty()) return InvalidArgumentError("saga type is empty");
  if (steps == 0) return InvalidArgumentError("saga type " + std::string(type) + " has no steps");
  if (steps > steps_max) {
    return InvalidArgumentError("saga type " + std::string(type) + " has more than steps_max (" +
                                std::to_string(steps_max) + ") steps");
  }
  return Status::Ok();
}

}  // namespace faultline::saga::internal
