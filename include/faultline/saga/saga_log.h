// File: faultline/saga/saga_log.h
//
// SagaLog: the persisted state machine of orchestrated sagas, with no I/O of its own beyond the
// LocalStore it keeps its rows in ("sans-IO": it never calls a participant). A saga is a list of
// `steps` steps; step i has a forward action and a compensation. A driver asks Next() what to do,
// does it (a local call, an RPC, a coroutine), and reports the outcome with RecordForward() /
// RecordCompensation(). The synchronous Orchestrator (orchestrator.h) and the coroutine driver
// (async_driver.h) are such drivers; the simulator's nodes may write their own.
//
// The rules (Temporal's Saga and Eventuate Tram's orchestration, with their known bugs avoided):
// - Compensation is armed BEFORE the forward call. Next() persists "step i started" before it
//   returns kForward for i, so a crash or a timeout after the call was sent leaves a step that is
//   possibly applied, and recovery treats it so: it retries the forward (the participant makes it
//   idempotent by `step_key`) up to forward_attempts_max times in all, then compensates it.
// - A forward whose outcome is unknown (IsOutcomeUnknown: timeout, unavailable, cancelled,
//   aborted, overloaded) is retried after a backoff. A definite failure (any other error: the
//   participant refused) starts compensation AT the failed step and goes down to step 0: the failed
//   step is compensated too, because an earlier attempt of it may still be in flight, and its
//   compensation leaves the tombstone that refuses it (participant.h).
// - Compensations run in reverse order (LIFO), one step at a time, each idempotent by its own key
//   (step_key of the kCompensate action, forward key + "c"). A failed or unfinished compensation is
//   retried after a backoff; after compensation_attempts_max attempts of one step (attempts
//   interrupted by a crash count too, so a compensation that kills its process cannot loop) the
//   saga is parked for a person, with a reason. Unpark() re-arms it.
// - A participant may see a compensation before (or instead of) its forward: a forward still in
//   flight while the saga already compensates. Participants must record a tombstone when they
//   compensate a step they never applied, and refuse a forward that finds it (ParticipantGuard in
//   participant.h does exactly this). Without it a late forward applies after its compensation and
//   the saga ends "compensated" with the step's effect in place.
// - Bad rows never crash and never loop: a saga row that does not decode (CRC, version, fields) is
//   kDataLoss from Next and Record*; Park() then moves it out of the running set with a readable
//   reason and leaves the row untouched for inspection. Unfinished() never lists it again;
//   Parked() and Stuck() do.
//
// Keys (all under options.prefix, default "saga/"):
//   s/<saga_id>  the saga row (encoding below)
//   r/<saga_id>  in the running set (Unfinished): value u8 version (1), i64 started_at ns
//   p/<saga_id>  parked: u8 version (1), i64 started_at ns (0 = unknown), i64 parked_at ns,
//                bytes reason
// Saga row: u8 version (1), u8 phase (1 forward, 2 compensating, 3 done, 4 compensated), u8 flags
// (bit 0: cursor step started, bit 1: parked), bytes type, u32 steps, u32 cursor, u32 attempts,
// i64 started_at ns, i64 retry_at ns, bytes data, bytes reason, u32 CRC-32C of all before it;
// little endian, "bytes" = varint length + raw. `cursor` is the step being run forward, or being
// compensated; `attempts` counts the attempts armed at the cursor step.
//
// Time: started_at, retry_at and the stuck bound are judged on Clock::WallNow() (they must mean
// something after a restart). A wall clock that jumps backwards never stretches a backoff beyond
// retry_backoff.delay_max: a retry_at further ahead than that is treated as reached. Backoff
// jitter is a hash of (saga id, step, attempt): deterministic, and different for each saga.
//
// Concurrency: every call is one serializable transaction, so two drivers racing on one saga stay
// consistent (both may send the same call; step keys make that harmless; one Record wins, the other
// gets kFailedPrecondition). Run one driver per saga (a leader) to avoid the waste. A SagaLog is
// immutable after Create and may be shared by threads if the store may.
//
// Errors: kInvalidArgument for ids, types, data or reasons that are empty or over their limits, or
// ids/types with bytes outside printable ASCII; kAlreadyExists for Start of an existing saga id
// with another type, step count or data; kNotFound for an unknown saga id; kFailedPrecondition for
// an outcome that does not match the saga's current step (stale or duplicate: nothing changes);
// kDataLoss for a row that does not decode; the store's errors otherwise (kAborted only when all
// commit_attempts_max attempts conflicted).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"
#include "faultline/resilience/backoff.h"
#include "faultline/store/local_store.h"

namespace faultline::saga {

struct SagaOptions {
  // LocalStore keys used: prefix + "s/" | "r/" | "p/" + saga id. Non-empty.
  std::string prefix = "saga/";
  size_t saga_id_bytes_max = 200;
  size_t type_bytes_max = 100;
  size_t data_bytes_max = 64 << 10;
  size_t reason_bytes_max = 1024;  // longer reasons are cut, never refused
  uint32_t steps_max = 256;
  // Attempts (first included) of one step's forward before it is given up and compensated; 1..1000.
  uint32_t forward_attempts_max = 5;
  // Attempts (first included) of one step's compensation before the saga is parked; 1..1000.
  uint32_t compensation_attempts_max = 10;
  // Delay before retry n of a forward or a compensation.
  BackoffOptions retry_backoff{Duration::Millis(100), Duration::Seconds(10), 2.0, Jitter::kFull};
  // A saga unfinished this long after Start is reported by Stuck().
  Duration stuck_after = Duration::Seconds(600);
  // Most sagas listed by Unfinished, Parked and Stuck in one call (oldest-first is not promised).
  size_t list_max = 10000;
  // Attempts (first included) of each call's transaction when Commit conflicts; 1..1000.
  uint32_t commit_attempts_max = 32;

  Status Validate() const;
};

enum class Phase : uint8_t { kForward = 1, kCompensating = 2, kDone = 3, kCompensated = 4 };
const char* PhaseName(Phase phase);

// What a driver does next for one saga.
struct Action {
  enum Kind : uint8_t {
    kForward,      // call step `step`'s forward with idempotency key `step_key`
    kCompensate,   // call step `step`'s compensation with idempotency key `step_key`
    kWait,         // nothing before `not_before` (a retry's backoff); then ask Next again
    kDone,         // every forward applied: finished
    kCompensated,  // every started step compensated: finished
    kParked,       // waiting for a person; `reason` says why
  };
  Kind kind = kDone;
  uint32_t step = 0;
  // kForward: ForwardKey(id, step); kCompensate: CompensationKey(id, step). Empty otherwise.
  std::string step_key;
  // The forward key of `step` (the participant's tombstone key, participant.h). Empty for kDone,
  // kCompensated and kParked.
  std::string forward_key;
  uint32_t attempt = 0;  // kForward / kCompensate: 1 for the first attempt of this step
  WallTime not_before;   // kWait
  std::string reason;    // kParked: why; kCompensate: what failed
};
const char* ActionKindName(Action::Kind kind);

// "<saga_id>#<step>" and "<saga_id>#<step>c".
std::string ForwardKey(std::string_view saga_id, uint32_t step);
std::string CompensationKey(std::string_view saga_id, uint32_t step);

// True for the codes whose outcome is unknown (the call may or may not have taken effect):
// kDeadlineExceeded, kUnavailable, kCancelled, kAborted, kResourceExhausted, kUnknown. Any other
// error is a definite refusal.
bool IsOutcomeUnknown(const Status& status);

// The decoded saga row (Get), for drivers and tools.
struct SagaState {
  std::string saga_id;
  std::string type;
  Phase phase = Phase::kForward;
  bool started = false;  // the cursor step's call was armed and its outcome not yet recorded
  bool parked = false;
  uint32_t steps = 0;
  uint32_t cursor = 0;
  uint32_t attempts = 0;
  WallTime started_at;
  WallTime retry_at;
  std::string data;
  std::string reason;
};

struct ParkedSaga {
  std::string saga_id;
  std::optional<WallTime> started_at;  // nullopt when the row did not decode
  WallTime parked_at;
  std::string reason;
};

struct StuckSaga {
  std::string saga_id;
  WallTime started_at;
  Duration age;
  bool parked = false;
  std::string reason;  // parked: why
};

class SagaLog {
 public:
  // `store` and `clock` must outlive the log. kInvalidArgument for invalid options.
  static Result<std::unique_ptr<SagaLog>> Create(LocalStore& store, Clock& clock,
                                                 SagaOptions options = {});

  // Records a new saga of `type` with `steps` steps (>= 1) and opaque `data`, in the forward phase
  // at step 0. Idempotent: the same (id, type, steps, data) again is ok and changes nothing, even
  // after the saga finished. The Transaction form commits with the caller's own writes.
  Status Start(std::string_view type, std::string_view saga_id, uint32_t steps,
               std::string_view data);
  Status Start(Transaction& txn, std::string_view type, std::string_view saga_id, uint32_t steps,
               std::string_view data);

  // What to do next. Before returning kForward or kCompensate it persists the attempt (the
  // compensation is armed before the forward is sent; a crash mid-call counts as an attempt).
  // kWait while a retry's backoff runs. Gives up a forward after forward_attempts_max attempts
  // (switching to compensation) and parks after compensation_attempts_max.
  Result<Action> Next(std::string_view saga_id);

  // The outcome of the kForward action for `step`. ok: the next step (or done). Unknown
  // (IsOutcomeUnknown): retried after a backoff. Any other error: compensation from `step` down.
  Status RecordForward(std::string_view saga_id, uint32_t step, const Status& outcome);
  // The outcome of the kCompensate action for `step`. ok: the step below (or compensated). Any
  // error: retried after a backoff; parked once its attempts are spent.
  Status RecordCompensation(std::string_view saga_id, uint32_t step, const Status& outcome);

  // Parks the saga for a person with `reason` (cut to reason_bytes_max). Works on a row that does
  // not decode (the row is left as it is). Parking a parked or finished saga is ok and changes
  // nothing. Drivers park on an unknown type or a step count that no longer matches.
  Status Park(std::string_view saga_id, std::string_view reason);
  // A person resolved the cause: the saga runs again from where it was, with fresh attempts.
  // kFailedPrecondition when it is not parked or its row does not decode.
  Status Unpark(std::string_view saga_id);

  // Deletes a finished saga's row (retention: once no late outcome or duplicate Start of it can
  // arrive any more; a Start after Forget starts the saga afresh), or a parked saga's rows once a
  // person has resolved it by hand (a row that does not decode included). Absent: ok.
  // kFailedPrecondition for a saga still running.
  Status Forget(std::string_view saga_id);

  Result<SagaState> Get(std::string_view saga_id);

  // Saga ids in the running set (neither finished nor parked), at most list_max.
  Result<std::vector<std::string>> Unfinished();
  Result<std::vector<ParkedSaga>> Parked();
  // Running or parked sagas that started more than stuck_after before `now`.
  Result<std::vector<StuckSaga>> Stuck(WallTime now);

  const SagaOptions& options() const { return options_; }

 private:
  SagaLog(LocalStore& store, Clock& clock, SagaOptions options, Backoff backoff)
      : store_(store), clock_(clock), options_(std::move(options)), backoff_(backoff) {}
  Status Run(const std::function<Status(Transaction&)>& body);
  Duration RetryDelay(std::string_view saga_id, uint32_t step, uint32_t attempt) const;
  std::string Key(char kind, std::string_view saga_id) const;
  // Marks `state` (decoded, not parked) parked and moves it from the running to the parked set.
  Status ParkIn(Transaction& txn, std::string_view saga_id, SagaState& state,
                std::string_view reason);

  LocalStore& store_;
  Clock& clock_;
  SagaOptions options_;
  Backoff backoff_;
};

}  // namespace faultline::saga
