#include "faultline/idempotency/phased_operation.h"

#include <set>
#include <utility>

#include "src/idempotency/sha256.h"

namespace faultline::idempotency {

namespace {

Status CheckSteps(const IdempotencyKeys& keys, std::span<const PhasedStep> steps) {
  std::set<std::string_view> names;
  for (const PhasedStep& step : steps) {
    if (step.name.empty() || step.name.size() > keys.options().recovery_point_bytes_max) {
      return InvalidArgumentError("step name empty or over recovery_point_bytes_max");
    }
    if (!names.insert(step.name).second) {
      return InvalidArgumentError("duplicate step name '" + step.name + "'");
    }
    if (!step.commit) return InvalidArgumentError("step '" + step.name + "' has no commit");
  }
  return Status::Ok();
}

// Index of the first step to run after `recovery_point` ("" = from the top).
Result<size_t> ResumeIndex(std::span<const PhasedStep> steps, std::string_view recovery_point) {
  if (recovery_point.empty()) return size_t{0};
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].name == recovery_point) return i + 1;
  }
  return FailedPreconditionError("stored recovery point '" + std::string(recovery_point) +
                                 "' names no step");
}

}  // namespace

std::string StepKey(std::string_view scope, std::string_view key, std::string_view step) {
  std::string material;
  material.reserve(scope.size() + key.size() + step.size() + 2);
  material.append(scope).push_back('\0');
  material.append(key).push_back('\0');
  material.append(step);
  const Fingerprint digest = internal::Sha256(material);
  return internal::Hex(digest.data(), digest.size());
}

Result<PhasedOutcome> RunPhased(
    IdempotencyKeys& keys, LocalStore& store, const PhasedRequest& request,
    std::span<const PhasedStep> steps,
    const std::function<Result<std::string>(Transaction&, const StepContext&)>& finish) {
  FL_RETURN_IF_ERROR(CheckSteps(keys, steps));
  FL_ASSERT(finish != nullptr);
  PhasedOutcome outcome;
  FL_ASSIGN_OR_RETURN(outcome.claim,
                      keys.Acquire(request.scope, request.key, request.fingerprint, request.lease));
  if (outcome.claim.state == ClaimState::kCompleted) outcome.response = outcome.claim.response;
  if (outcome.claim.state != ClaimState::kClaimed) return outcome;

  StepContext ctx{request.scope, request.key, outcome.claim.attempt, ""};
  FL_ASSIGN_OR_RETURN(const size_t first, ResumeIndex(steps, outcome.claim.recovery_point));
  for (size_t i = first; i < steps.size(); ++i) {
    const PhasedStep& step = steps[i];
    ctx.step_key = StepKey(request.scope, request.key, step.name);
    std::string call_result;
    if (step.call) {
      FL_ASSIGN_OR_RETURN(call_result, step.call(ctx));
    }
    const Status committed = RunInTransaction(store, [&](Transaction& txn) -> Status {
      // The checkpoint first: a fenced attempt learns it before running the body.
      FL_RETURN_IF_ERROR(
          keys.Checkpoint(txn, request.scope, request.key, ctx.attempt, step.name, request.lease));
      return step.commit(txn, ctx, call_result);
    });
    if (!committed.ok()) return committed;
    ++outcome.steps_run;
  }
  ctx.step_key.clear();  // finish makes no foreign call
  const Status done = RunInTransaction(store, [&](Transaction& txn) -> Status {
    FL_ASSIGN_OR_RETURN(outcome.response, finish(txn, ctx));
    return keys.Complete(txn, request.scope, request.key, ctx.attempt, outcome.response);
  });
  if (!done.ok()) return done;
  return outcome;
}

}  // namespace faultline::idempotency
