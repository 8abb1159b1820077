// File: faultline/saga/async_driver.h
//
// AsyncOrchestrator: the coroutine driver of SagaLog, for node code under the simulator (or any
// Executor). The same rules as Orchestrator (orchestrator.h) — registry of types, park on unknown
// type, changed step count or corrupt row, RecoverAll after a crash — but each step function
// returns a Task<Status> (an RPC to a participant, typically with a timeout: a timeout is
// kDeadlineExceeded, an unknown outcome, and the step is retried by its key), and a retry's backoff
// is slept on the Executor (node-monotonic time; SagaLog's retry_at is on the node's wall clock,
// the difference is what is slept).
//
// A crash destroys the coroutines mid-call: nothing more is needed, since SagaLog armed every call
// before it was sent. The restarted node builds a new AsyncOrchestrator over the recovered store
// and runs RecoverAll.
//
// Thread safety: none; one node's executor. `log`, `executor` and `clock` must outlive it, and it
// must outlive the Tasks it returns.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/env/cancel.h"
#include "faultline/env/clock.h"
#include "faultline/env/executor.h"
#include "faultline/env/task.h"
#include "faultline/saga/orchestrator.h"
#include "faultline/saga/saga_log.h"

namespace faultline::saga {

// The StepCall's views stay valid until the returned Task finishes.
using AsyncStepFunction = std::function<Task<Status>(const StepCall&)>;

struct AsyncSagaStep {
  std::string name;
  AsyncStepFunction forward;
  AsyncStepFunction compensate;
};

struct AsyncSagaDefinition {
  std::string type;
  std::vector<AsyncSagaStep> steps;
};

struct AsyncOrchestratorOptions {
  // Most actions one Drive performs before returning kWaiting.
  uint32_t actions_per_drive_max = 10000;
  // Drive returns kWaiting instead of sleeping through a backoff longer than this.
  Duration sleep_max = Duration::Seconds(60);
  Status Validate() const;
};

class AsyncOrchestrator {
 public:
  static Result<std::unique_ptr<AsyncOrchestrator>> Create(SagaLog& log, Executor& executor,
                                                           Clock& clock,
                                                           AsyncOrchestratorOptions options = {});

  // As Orchestrator::Register.
  Status Register(AsyncSagaDefinition definition);

  // Start (idempotent) and Drive. kCancelled when `cancel` fires during a backoff sleep.
  Task<Result<SagaOutcome>> Run(std::string type, std::string saga_id, std::string data,
                                CancelToken cancel = {});
  Task<Result<SagaOutcome>> Drive(std::string saga_id, CancelToken cancel = {});
  // Drives every saga in the running set, one after the other (a saga in a backoff delays the
  // next). To drive them concurrently, spawn Drive for each id of SagaLog::Unfinished().
  Task<Result<RecoveryReport>> RecoverAll(CancelToken cancel = {});

  // Reports, once the log recorded it, kSagaStep (a = step index, b = 1 ok / 0 failed) for every
  // forward attempt and kSagaCompensation (a = step index, b = 1 ok / 0 failed) for every
  // compensation attempt. No clock reading: `at` is MonoTime(). Attach before driving.
  ObserverSlot& observe() { return observer_; }

 private:
  AsyncOrchestrator(SagaLog& log, Executor& executor, Clock& clock,
                    AsyncOrchestratorOptions options)
      : log_(log), executor_(executor), clock_(clock), options_(options) {}

  SagaLog& log_;
  Executor& executor_;
  Clock& clock_;
  AsyncOrchestratorOptions options_;
  std::map<std::string, AsyncSagaDefinition, std::less<>> types_;
  ObserverSlot observer_;
};

}  // namespace faultline::saga
