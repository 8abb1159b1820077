// File: faultline/idempotency/phased_operation.h
//
// Atomic phases (Brandur Leach, "Implementing Stripe-like idempotency keys in Postgres"): a request
// whose work spans a local database and foreign services is cut into steps. Each step is
//
//   call    (optional) a foreign call, made OUTSIDE any local transaction, carrying `step_key` as
//           its downstream idempotency key, so repeating it returns the first call's result
//           instead of charging twice;
//   commit  one local transaction that records what the call returned and ends with the step's
//           recovery point (IdempotencyKeys::Checkpoint): the step's effects and "this step is
//           done" commit together, or neither does.
//
// After the last step, `finish` computes the response inside the transaction that completes the
// key. A retry — after a crash, a timeout, or a takeover once the lease ran out — claims the key
// and resumes after the last committed recovery point, so a completed step's local effects are
// never applied twice, and the one foreign call that may be repeated (the step that was in flight)
// is deduplicated downstream by its step key. A superseded attempt (paused past its lease) fails
// its next Checkpoint or Complete with kFencedOut, inside the very transaction that would have
// applied its effects, so nothing it does after the takeover commits.
//
// Contract:
// - Step names are the recovery points: non-empty, distinct, at most recovery_point_bytes_max,
//   and stable across deployments (a renamed step orphans in-flight keys). A stored recovery point
//   that names no step is kFailedPrecondition (nothing runs).
// - StepKey(scope, key, step) = lowercase hex SHA-256 of scope '\0' key '\0' step: 64 printable
//   characters, the same for every attempt of the request, different for every step.
// - RunPhased returns the claim outcome: kClaimed means this call ran the remaining steps and
//   completed the key, and `response` is what `finish` returned; kCompleted replays the stored
//   response; kInProgress and kMismatch are returned as they are (nothing ran).
// - An error from a step's call, commit or finish stops the attempt and is returned; the claim is
//   kept (not released: an earlier step or this step's call may have had effects), so the next
//   retry is answered kInProgress until the lease runs out and then takes over and resumes. The
//   lease passed to RunPhased is renewed by every Checkpoint; it must cover one step.
// - `commit` and `finish` run inside RunInTransaction and may be repeated on kAborted: they must
//   only write through the transaction they are given.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/idempotency/idempotency_keys.h"

namespace faultline::idempotency {

struct StepContext {
  std::string_view scope;
  std::string_view key;
  uint64_t attempt = 0;  // this attempt's fencing token
  std::string step_key;  // StepKey(scope, key, step name): pass it downstream ("" in finish)
};

struct PhasedStep {
  std::string name;
  // Foreign call; its result is handed to `commit`. Empty: no call.
  std::function<Result<std::string>(const StepContext&)> call;
  // The local transaction of the step (the Checkpoint is added by RunPhased).
  std::function<Status(Transaction&, const StepContext&, std::string_view call_result)> commit;
};

struct PhasedRequest {
  std::string_view scope;
  std::string_view key;
  Fingerprint fingerprint{};
  Duration lease;
};

struct PhasedOutcome {
  Claim claim;           // the claim as Acquire returned it
  std::string response;  // kClaimed: the response stored; kCompleted: the replayed response
  size_t steps_run = 0;  // steps whose commit this call made (for tests and metrics)
};

std::string StepKey(std::string_view scope, std::string_view key, std::string_view step);

// Claims the key and runs the steps after its recovery point, then `finish` and Complete.
Result<PhasedOutcome> RunPhased(
    IdempotencyKeys& keys, LocalStore& store, const PhasedRequest& request,
    std::span<const PhasedStep> steps,
    const std::function<Result<std::string>(Transaction&, const StepContext&)>& finish);

}  // namespace faultline::idempotency
