#include "faultline/saga/orchestrator.h"

#include <utility>

#include "faultline/core/options.h"
#include "src/saga/driver_common.h"

namespace faultline::saga {

const char* SagaOutcomeName(SagaOutcome outcome) {
  switch (outcome) {
    case SagaOutcome::kDone:
      return "done";
    case SagaOutcome::kCompensated:
      return "compensated";
    case SagaOutcome::kParked:
      return "parked";
    case SagaOutcome::kWaiting:
      return "waiting";
  }
  return "?";
}

Status OrchestratorOptions::Validate() const {
  FL_CHECK_OPTION(actions_per_drive_max >= 1, "actions_per_drive_max must be >= 1");
  return Status::Ok();
}

Result<std::unique_ptr<Orchestrator>> Orchestrator::Create(SagaLog& log, Clock& clock,
                                                           OrchestratorOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<Orchestrator>(new Orchestrator(log, clock, std::move(options)));
}

Status Orchestrator::Register(SagaDefinition definition) {
  return internal::RegisterDefinition(types_, std::move(definition), log_.options().steps_max);
}

Result<SagaOutcome> Orchestrator::Run(std::string_view type, std::string_view saga_id,
                                      std::string_view data) {
  auto it = types_.find(type);
  if (it == types_.end()) {
    return InvalidArgumentError("saga type " + std::string(type) + " is not registered");
  }
  const Status started =
      log_.Start(type, saga_id, static_cast<uint32_t>(it->second.steps.size()), data);
  // A stored row that does not decode: Drive parks it with its reason.
  if (!started.ok() && started.code() != StatusCode::kDataLoss) return started;
  return Drive(saga_id);
}

// The definition the stored saga runs under, or nullptr after parking a saga that has none.
Result<const SagaDefinition*> Orchestrator::DefinitionFor(std::string_view saga_id,
                                                          std::string* data, bool* parked) {
  *parked = false;
  Result<SagaState> state = log_.Get(saga_id);
  if (!state.ok() && state.status().code() != StatusCode::kDataLoss) return state.status();
  auto it = state.ok() ? types_.find(state->type) : types_.end();
  std::optional<size_t> registered;
  if (it != types_.end()) registered = it->second.steps.size();
  const std::optional<std::string> reason = internal::ParkReason(state, registered);
  if (!reason) {
    *data = std::move(state->data);
    return &it->second;
  }
  FL_RETURN_IF_ERROR(log_.Park(saga_id, *reason));
  *parked = true;
  return static_cast<const SagaDefinition*>(nullptr);
}

Result<SagaOutcome> Orchestrator::Drive(std::string_view saga_id) {
  bool parked = false;
  std::string data;  // immutable after Start: read once
  FL_ASSIGN_OR_RETURN(const SagaDefinition* definition, DefinitionFor(saga_id, &data, &parked));
  if (parked) return SagaOutcome::kParked;
  FL_ASSERT(definition != nullptr);
  for (uint32_t i = 0; i < options_.actions_per_drive_max; ++i) {
    Result<Action> next = log_.Next(saga_id);
    if (next.status().code() == StatusCode::kDataLoss) {
      FL_RETURN_IF_ERROR(log_.Park(saga_id, "saga row is corrupt: " + next.status().ToString()));
      return SagaOutcome::kParked;
    }
    if (!next.ok()) return next.status();
    const Action& action = *next;
    switch (action.kind) {
      case Action::kDone:
        return SagaOutcome::kDone;
      case Action::kCompensated:
        return SagaOutcome::kCompensated;
      case Action::kParked:
        return SagaOutcome::kParked;
      case Action::kWait: {
        if (!options_.sleep) return SagaOutcome::kWaiting;
        const Duration delay = action.not_before - clock_.WallNow();
        if (delay > Duration::Zero()) options_.sleep(delay);
        continue;
      }
      case Action::kForward:
      case Action::kCompensate:
        break;
    }
    FL_ASSERT(action.step < definition->steps.size());
    const SagaStep& step = definition->steps[action.step];
    const StepCall call{saga_id,         definition->type,  data, action.step, action.attempt,
                        action.step_key, action.forward_key};
    Status recorded;
    const bool forward = action.kind == Action::kForward;
    const Status outcome = forward ? step.forward(call) : step.compensate(call);
    if (forward) {
      recorded = log_.RecordForward(saga_id, action.step, outcome);
    } else {
      recorded = log_.RecordCompensation(saga_id, action.step, outcome);
    }
    if (recorded.ok()) {
      observer_.Emit(forward ? EventKind::kSagaStep : EventKind::kSagaCompensation, MonoTime(),
                     action.step, outcome.ok() ? 1 : 0);
    }
    if (recorded.code() == StatusCode::kDataLoss) {
      FL_RETURN_IF_ERROR(log_.Park(saga_id, "saga row is corrupt: " + recorded.ToString()));
      return SagaOutcome::kParked;
    }
    // kFailedPrecondition: another driver moved the saga on meanwhile; Next says where it is.
    if (recorded.code() == StatusCode::kFailedPrecondition) continue;
    FL_RETURN_IF_ERROR(recorded);
  }
  return SagaOutcome::kWaiting;
}

Result<RecoveryReport> Orchestrator::RecoverAll() {
  FL_ASSIGN_OR_RETURN(std::vector<std::string> ids, log_.Unfinished());
  RecoveryReport report;
  for (const std::string& id : ids) {
    Result<SagaOutcome> outcome = Drive(id);
    report.resumed += 1;
    if (!outcome.ok()) {
      report.errors.emplace(id, outcome.status());
      continue;
    }
    report.outcomes.emplace(id, *outcome);
    if (*outcome == SagaOutcome::kParked) report.parked_now.push_back(id);
  }
  return report;
}

}  // namespace faultline::saga
