// What the synchronous and the coroutine drivers share. Internal to saga/.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

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

// Checks a definition's shape for Register.
inline Status CheckDefinition(std::string_view type, size_t steps, size_t steps_max) {
  if (type.empty()) return InvalidArgumentError("saga type is empty");
  if (steps == 0) return InvalidArgumentError("saga type " + std::string(type) + " has no steps");
  if (steps > steps_max) {
    return InvalidArgumentError("saga type " + std::string(type) + " has more than steps_max (" +
                                std::to_string(steps_max) + ") steps");
  }
  return Status::Ok();
}

// Register of both drivers: checks `definition` (its shape, and a forward and a compensation
// function for every step) and adds it to `types` under its type, which must be new.
template <typename Definition, typename Types>
Status RegisterDefinition(Types& types, Definition definition, size_t steps_max) {
  FL_RETURN_IF_ERROR(CheckDefinition(definition.type, definition.steps.size(), steps_max));
  for (size_t i = 0; i < definition.steps.size(); ++i) {
    if (!definition.steps[i].forward || !definition.steps[i].compensate) {
      return InvalidArgumentError("saga type " + definition.type + " step " + std::to_string(i) +
                                  " lacks a forward or a compensation function");
    }
  }
  if (types.count(definition.type) != 0) {
    return AlreadyExistsError("saga type " + definition.type + " is registered already");
  }
  std::string type = definition.type;
  types.emplace(std::move(type), std::move(definition));
  return Status::Ok();
}

}  // namespace faultline::saga::internal
