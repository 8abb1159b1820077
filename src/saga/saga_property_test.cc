// Property: whatever the participants answer (ok, refusal, timeout before or after applying, a
// forward delayed in the network and delivered at the very end) and wherever the orchestrator's
// process dies, every saga ends either done with each step's forward applied exactly once, or
// compensated with none applied — and no step's net effect ever leaves {0, 1}.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "faultline/saga/orchestrator.h"
#include "src/saga/test_util.h"

namespace faultline::saga {
namespace {

using testing::CountingParticipant;
using testing::DyingStore;
using testing::Must;
using testing::SimStoreEnv;

enum Behavior : uint8_t {
  kOk = 0,
  kRefuse = 1,       // forward only: a definite refusal, nothing applied
  kLostRequest = 2,  // timeout, nothing applied
  kLostReply = 3,    // applied, then timeout
  kDelayed = 4,      // timeout; the request arrives at the participant after everything else
  kBehaviors = 5,
};

class Scenario {
 public:
  Scenario(uint32_t steps, std::vector<uint8_t> forward, std::vector<uint8_t> compensation)
      : steps_(steps),
        forward_(forward.begin(), forward.end()),
        compensation_(compensation.begin(), compensation.end()),
        participant_(*part_.store) {
    options_.forward_attempts_max = 3;
    options_.compensation_attempts_max = 1000;  // the behaviour lists are finite: never parked
    options_.retry_backoff.delay_initial = Duration::Millis(1);
    options_.retry_backoff.delay_max = Duration::Millis(20);
  }

  // Runs the saga, the process dying after each budget of log commits in turn, then once more
  // without dying. Returns the final outcome.
  SagaOutcome Run(const std::vector<uint8_t>& crash_budgets) {
    for (const uint8_t budget : crash_budgets) {
      DyingStore dying(*env_.store, budget);
      std::unique_ptr<SagaLog> log = Must(SagaLog::Create(dying, env_.clock, options_));
      std::unique_ptr<Orchestrator> orch = MakeOrchestrator(*log);
      if (orch->RecoverAll().ok()) orch->Run("transfer", "s", "").status().IgnoreError();
      env_.CrashAndReopen();
    }
    std::unique_ptr<SagaLog> log = Must(SagaLog::Create(*env_.store, env_.clock, options_));
    std::unique_ptr<Orchestrator> orch = MakeOrchestrator(*log);
    RC_ASSERT(Must(orch->RecoverAll()).errors.empty());
    const SagaOutcome outcome = Must(orch->Run("transfer", "s", ""));
    RC_ASSERT(Must(log->Unfinished()).empty());
    // The network finally delivers every delayed forward.
    for (auto& [key, counter] : delayed_) participant_.Forward(key, counter).IgnoreError();
    return outcome;
  }

  int64_t Effect(uint32_t step) { return participant_.Value(Counter(step)); }

 private:
  static std::string Counter(uint32_t step) { return "s/" + std::to_string(step); }

  static uint8_t Take(std::deque<uint8_t>& list) {
    if (list.empty()) return kOk;
    const uint8_t b = list.front() % kBehaviors;
    list.pop_front();
    return b;
  }

  Status Forward(const StepCall& call) {
    const std::string counter = Counter(call.step);
    switch (Take(forward_)) {
      case kRefuse:
        return FailedPreconditionError("refused");
      case kLostRequest:
        return DeadlineExceededError("request lost");
      case kLostReply:
        participant_.Forward(call.forward_key, counter).IgnoreError();
        return DeadlineExceededError("reply lost");
      case kDelayed:
        delayed_.emplace_back(std::string(call.forward_key), counter);
        return DeadlineExceededError("request delayed");
      default:
        return participant_.Forward(call.forward_key, counter);
    }
  }

  Status Compensate(const StepCall& call) {
    const std::string counter = Counter(call.step);
    switch (Take(compensation_)) {
      case kLostRequest:
      case kRefuse:
      case kDelayed:
        return UnavailableError("compensation failed");
      case kLostReply:
        participant_.Compensate(call.forward_key, counter).IgnoreError();
        return DeadlineExceededError("reply lost");
      default:
        return participant_.Compensate(call.forward_key, counter);
    }
  }

  std::unique_ptr<Orchestrator> MakeOrchestrator(SagaLog& log) {
    OrchestratorOptions options;
    options.sleep = [this](Duration d) { env_.clock.Advance(d); };
    std::unique_ptr<Orchestrator> orch = Must(Orchestrator::Create(log, env_.clock, options));
    SagaDefinition def;
    def.type = "transfer";
    for (uint32_t i = 0; i < steps_; ++i) {
      def.steps.push_back({"step" + std::to_string(i),
                           [this](const StepCall& c) { return Forward(c); },
                           [this](const StepCall& c) { return Compensate(c); }});
    }
    FL_ASSERT(orch->Register(std::move(def)).ok());
    return orch;
  }

  uint32_t steps_;
  std::deque<uint8_t> forward_;
  std::deque<uint8_t> compensation_;
  SagaOptions options_;
  SimStoreEnv env_{3};
  SimStoreEnv part_{4};
  CountingParticipant participant_;
  std::vector<std::pair<std::string, std::string>> delayed_;
};

RC_GTEST_PROP(SagaProperty, EverySagaEndsDoneOrFullyCompensatedWithEachStepAppliedAtMostOnce, ()) {
  const auto steps = *rc::gen::inRange<uint32_t>(1, 6);
  const auto forward = *rc::gen::container<std::vector<uint8_t>>(
      *rc::gen::inRange<size_t>(0, 12), rc::gen::inRange<uint8_t>(0, kBehaviors));
  const auto compensation = *rc::gen::container<std::vector<uint8_t>>(
      *rc::gen::inRange<size_t>(0, 12), rc::gen::inRange<uint8_t>(0, kBehaviors));
  const auto crashes = *rc::gen::container<std::vector<uint8_t>>(*rc::gen::inRange<size_t>(0, 4),
                                                                 rc::gen::inRange<uint8_t>(0, 16));
  Scenario scenario(steps, forward, compensation);
  const SagaOutcome outcome = scenario.Run(crashes);
  RC_ASSERT(outcome == SagaOutcome::kDone || outcome == SagaOutcome::kCompensated);
  for (uint32_t i = 0; i < steps; ++i) {
    RC_ASSERT(scenario.Effect(i) == (outcome == SagaOutcome::kDone ? 1 : 0));
  }
  RC_TAG(outcome == SagaOutcome::kDone ? "done" : "compensated");
}

}  // namespace
}  // namespace faultline::saga
