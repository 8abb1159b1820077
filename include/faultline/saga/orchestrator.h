// File: faultline/saga/orchestrator.h
//
// Orchestrator: the synchronous driver of SagaLog. It holds a registry of saga types, each a list
// of steps (a forward function and a compensation, both registered before anything runs: the
// compensation of a step exists before its forward is ever called), and drives sagas to an end:
// Run starts one and drives it, Drive continues one, RecoverAll resumes every unfinished saga
// after a crash (call it at startup, and periodically: a saga whose driver died mid-call is only
// resumed by someone calling it).
//
// Step functions receive a StepCall and return a Status: ok when the effect is applied (or was
// already: they must be idempotent by call.step_key), an IsOutcomeUnknown code when they cannot
// tell (the call is retried), any other error when the participant refused (compensation starts).
// A compensation returns ok once the step is undone or was never applied (tombstone rule,
// participant.h); any error is retried, and the saga is parked once the attempts are spent.
//
// Bad input never stops recovery: a saga of a type not registered, whose step count differs from
// the registered one, or whose row does not decode, is parked with a reason a person can read and
// reported in the RecoveryReport; RecoverAll goes on with the others.
//
// Waiting: a retry's backoff (Action::kWait) is slept through with options.sleep when set (tests
// pass a ManualClock advance; services a real sleep); without it Drive returns kWaiting and the
// caller drives again later. Thread safety: Register before use; then Drive/Run/RecoverAll may run
// on several threads for DIFFERENT sagas if the store and the step functions allow it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/saga/saga_log.h"

namespace faultline::saga {

struct StepCall {
  std::string_view saga_id;
  std::string_view type;
  std::string_view data;  // the saga's data, as given to Start
  uint32_t step = 0;
  uint32_t attempt = 0;          // 1 for the first attempt of this call
  std::string_view step_key;     // idempotency key of this call
  std::string_view forward_key;  // the step's forward key (ParticipantGuard)
};

using StepFunction = std::function<Status(const StepCall&)>;

struct SagaStep {
  std::string name;  // for reasons and logs
  StepFunction forward;
  StepFunction compensate;
};

struct SagaDefinition {
  std::string type;
  std::vector<SagaStep> steps;
};

// How a Drive ended.
enum class SagaOutcome : uint8_t {
  kDone,         // every forward applied
  kCompensated,  // failed and fully compensated
  kParked,       // waiting for a person (see SagaLog::Parked)
  kWaiting,      // a backoff is running and no sleep was configured, or actions_per_drive_max hit
};
const char* SagaOutcomeName(SagaOutcome outcome);

struct RecoveryReport {
  size_t resumed = 0;  // sagas driven
  std::map<std::string, SagaOutcome> outcomes;
  // Sagas that could not be driven (store error other than the ones parked): id → status.
  std::map<std::string, Status> errors;
  std::vector<std::string> parked_now;  // parked during this recovery (bad input, attempts)
};

struct OrchestratorOptions {
  // Sleeps through a backoff (a real sleep, or a ManualClock advance). Empty: return kWaiting.
  std::function<void(Duration)> sleep;
  // Most actions one Drive performs before returning kWaiting (a bound on every loop).
  uint32_t actions_per_drive_max = 10000;
  Status Validate() const;
};

class Orchestrator {
 public:
  // `log` and `clock` must outlive the orchestrator.
  static Result<std::unique_ptr<Orchestrator>> Create(SagaLog& log, Clock& clock,
                                                      OrchestratorOptions options = {});

  // kInvalidArgument for an empty type, no steps, more than the log's steps_max, a missing
  // function; kAlreadyExists for a type registered twice.
  Status Register(SagaDefinition definition);

  // Start (idempotent) and Drive.
  Result<SagaOutcome> Run(std::string_view type, std::string_view saga_id, std::string_view data);
  // Drives one saga until it finishes, parks or must wait. Errors are the store's (the saga stays
  // as it was: drive it again); bad input parks the saga instead of failing.
  Result<SagaOutcome> Drive(std::string_view saga_id);
  // Drives every saga in the running set once (each until it finishes, parks or must wait).
  Result<RecoveryReport> RecoverAll();

  // Reports, once the log recorded it, kSagaStep (a = step index, b = 1 ok / 0 failed) for every
  // forward attempt and kSagaCompensation (a = step index, b = 1 ok / 0 failed) for every
  // compensation attempt. No clock reading: `at` is MonoTime(). Attach before driving.
  ObserverSlot& observe() { return observer_; }

 private:
  Orchestrator(SagaLog& log, Clock& clock, OrchestratorOptions options)
      : log_(log), clock_(clock), options_(std::move(options)) {}
  Result<const SagaDefinition*> DefinitionFor(std::string_view saga_id, std::string* data,
                                              bool* parked);

  SagaLog& log_;
  Clock& clock_;
  OrchestratorOptions options_;
  std::map<std::string, SagaDefinition, std::less<>> types_;
  ObserverSlot observer_;
};

}  // namespace faultline::saga
