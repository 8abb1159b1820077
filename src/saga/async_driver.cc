#include "faultline/saga/async_driver.h"

#include <optional>
#include <utility>

#include "faultline/core/options.h"
#include "src/saga/driver_common.h"

namespace faultline::saga {

Status AsyncOrchestratorOptions::Validate() const {
  FL_CHECK_OPTION(actions_per_drive_max >= 1, "actions_per_drive_max must be >= 1");
  FL_CHECK_OPTION(sleep_max >= Duration::Zero(), "sleep_max must be >= 0");
  return Status::Ok();
}

Result<std::unique_ptr<AsyncOrchestrator>> AsyncOrchestrator::Create(
    SagaLog& log, Executor& executor, Clock& clock, AsyncOrchestratorOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<AsyncOrchestrator>(new AsyncOrchestrator(log, executor, clock, options));
}

Status AsyncOrchestrator::Register(AsyncSagaDefinition definition) {
  return internal::RegisterDefinition(types_, std::move(definition), log_.options().steps_max);
}

Task<Result<SagaOutcome>> AsyncOrchestrator::Run(std::string type, std::string saga_id,
                                                 std::string data, CancelToken cancel) {
  auto it = types_.find(type);
  if (it == types_.end()) {
    co_return InvalidArgumentError("saga type " + type + " is not registered");
  }
  const Status started =
      log_.Start(type, saga_id, static_cast<uint32_t>(it->second.steps.size()), data);
  // A stored row that does not decode: Drive parks it with its reason.
  if (!started.ok() && started.code() != StatusCode::kDataLoss) co_return started;
  co_return co_await Drive(std::move(saga_id), std::move(cancel));
}

Task<Result<SagaOutcome>> AsyncOrchestrator::Drive(std::string saga_id, CancelToken cancel) {
  Result<SagaState> state = log_.Get(saga_id);
  if (!state.ok() && state.status().code() != StatusCode::kDataLoss) co_return state.status();
  auto it = state.ok() ? types_.find(state->type) : types_.end();
  std::optional<size_t> registered;
  if (it != types_.end()) registered = it->second.steps.size();
  const std::optional<std::string> reason = internal::ParkReason(state, registered);
  if (reason) {
    const Status parked = log_.Park(saga_id, *reason);
    if (!parked.ok()) co_return parked;
    co_return SagaOutcome::kParked;
  }
  const AsyncSagaDefinition& definition = it->second;  // map nodes are stable
  const std::string data = std::move(state->data);
  for (uint32_t i = 0; i < options_.actions_per_drive_max; ++i) {
    Result<Action> next = log_.Next(saga_id);
    if (next.status().code() == StatusCode::kDataLoss) {
      const Status parked = log_.Park(saga_id, "saga row is corrupt: " + next.status().ToString());
      if (!parked.ok()) co_return parked;
      co_return SagaOutcome::kParked;
    }
    if (!next.ok()) co_return next.status();
    const Action action = std::move(*next);
    if (action.kind == Action::kDone) co_return SagaOutcome::kDone;
    if (action.kind == Action::kCompensated) co_return SagaOutcome::kCompensated;
    if (action.kind == Action::kParked) co_return SagaOutcome::kParked;
    if (action.kind == Action::kWait) {
      const Duration delay = action.not_before - clock_.WallNow();
      if (delay > options_.sleep_max) co_return SagaOutcome::kWaiting;
      const Status slept = co_await Sleep(executor_, delay, cancel);
      if (!slept.ok()) co_return slept;
      continue;
    }
    FL_ASSERT(action.step < definition.steps.size());
    const AsyncSagaStep& step = definition.steps[action.step];
    const StepCall call{saga_id,         definition.type,   data, action.step, action.attempt,
                        action.step_key, action.forward_key};
    Status recorded;
    const bool forward = action.kind == Action::kForward;
    Status outcome;
    if (forward) {
      outcome = co_await step.forward(call);
      recorded = log_.RecordForward(saga_id, action.step, outcome);
    } else {
      outcome = co_await step.compensate(call);
      recorded = log_.RecordCompensation(saga_id, action.step, outcome);
    }
    if (recorded.ok()) {
      observer_.Emit(forward ? EventKind::kSagaStep : EventKind::kSagaCompensation, MonoTime(),
                     action.step, outcome.ok() ? 1 : 0);
    }
    if (recorded.code() == StatusCode::kDataLoss) {
      const Status parked = log_.Park(saga_id, "saga row is corrupt: " + recorded.ToString());
      if (!parked.ok()) co_return parked;
      co_return SagaOutcome::kParked;
    }
    // kFailedPrecondition: another driver moved the saga on meanwhile; Next says where it is.
    if (recorded.code() == StatusCode::kFailedPrecondition) continue;
    if (!recorded.ok()) co_return recorded;
  }
  co_return SagaOutcome::kWaiting;
}

Task<Result<RecoveryReport>> AsyncOrchestrator::RecoverAll(CancelToken cancel) {
  Result<std::vector<std::string>> ids = log_.Unfinished();
  if (!ids.ok()) co_return ids.status();
  RecoveryReport report;
  for (const std::string& id : *ids) {
    Result<SagaOutcome> outcome = co_await Drive(id, cancel);
    report.resumed += 1;
    if (!outcome.ok()) {
      report.errors.emplace(id, outcome.status());
      continue;
    }
    report.outcomes.emplace(id, *outcome);
    if (*outcome == SagaOutcome::kParked) report.parked_now.push_back(id);
  }
  co_return report;
}

}  // namespace faultline::saga
