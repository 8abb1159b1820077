#include "faultline/saga/saga_log.h"

#include <utility>

#include "faultline/core/buggify.h"
#include "faultline/core/options.h"
#include "faultline/core/random.h"
#include "src/saga/saga_record.h"

namespace faultline::saga {
namespace {

using internal::CheckPrintable;
using internal::DecodeState;
using internal::EncodeState;

std::string Cut(std::string_view reason, size_t max) {
  return std::string(reason.substr(0, std::min(reason.size(), max)));
}

// The end of the key range of every key that starts with `begin` (which ends in '/').
std::string RangeEnd(std::string begin) {
  FL_ASSERT(!begin.empty() && begin.back() == '/');
  begin.back() = '0';  // '/' + 1
  return begin;
}

Action Finished(Action::Kind kind, const SagaState& state) {
  Action action;
  action.kind = kind;
  action.step = state.cursor;
  if (kind == Action::kParked) action.reason = state.reason;
  return action;
}

}  // namespace

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kForward:
      return "forward";
    case Phase::kCompensating:
      return "compensating";
    case Phase::kDone:
      return "done";
    case Phase::kCompensated:
      return "compensated";
  }
  return "?";
}

const char* ActionKindName(Action::Kind kind) {
  switch (kind) {
    case Action::kForward:
      return "forward";
    case Action::kCompensate:
      return "compensate";
    case Action::kWait:
      return "wait";
    case Action::kDone:
      return "done";
    case Action::kCompensated:
      return "compensated";
    case Action::kParked:
      return "parked";
  }
  return "?";
}

std::string ForwardKey(std::string_view saga_id, uint32_t step) {
  std::string key(saga_id);
  key.push_back('#');
  key += std::to_string(step);
  return key;
}

std::string CompensationKey(std::string_view saga_id, uint32_t step) {
  return ForwardKey(saga_id, step) + "c";
}

bool IsOutcomeUnknown(const Status& status) {
  switch (status.code()) {
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kUnavailable:
    case StatusCode::kCancelled:
    case StatusCode::kAborted:
    case StatusCode::kResourceExhausted:
    case StatusCode::kUnknown:
      return true;
    default:
      return false;
  }
}

Status SagaOptions::Validate() const {
  FL_CHECK_OPTION(!prefix.empty(), "prefix must be non-empty");
  FL_CHECK_OPTION(saga_id_bytes_max > 0, "saga_id_bytes_max must be > 0");
  FL_CHECK_OPTION(type_bytes_max > 0, "type_bytes_max must be > 0");
  FL_CHECK_OPTION(reason_bytes_max > 0, "reason_bytes_max must be > 0");
  FL_CHECK_OPTION(steps_max >= 1, "steps_max must be >= 1");
  FL_CHECK_OPTION(forward_attempts_max >= 1 && forward_attempts_max <= 1000,
                  "forward_attempts_max must be in [1, 1000]");
  FL_CHECK_OPTION(compensation_attempts_max >= 1 && compensation_attempts_max <= 1000,
                  "compensation_attempts_max must be in [1, 1000]");
  FL_RETURN_IF_ERROR(retry_backoff.Validate());
  FL_CHECK_OPTION(stuck_after > Duration::Zero(), "stuck_after must be > 0");
  FL_CHECK_OPTION(list_max >= 1, "list_max must be >= 1");
  FL_CHECK_OPTION(commit_attempts_max >= 1 && commit_attempts_max <= 1000,
                  "commit_attempts_max must be in [1, 1000]");
  return Status::Ok();
}

Result<std::unique_ptr<SagaLog>> SagaLog::Create(LocalStore& store, Clock& clock,
                                                 SagaOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  FL_ASSIGN_OR_RETURN(Backoff backoff, Backoff::Create(options.retry_backoff));
  return std::unique_ptr<SagaLog>(new SagaLog(store, clock, std::move(options), backoff));
}

std::string SagaLog::Key(char kind, std::string_view saga_id) const {
  std::string key = options_.prefix;
  key.push_back(kind);
  key.push_back('/');
  key.append(saga_id);
  return key;
}

Status SagaLog::Run(const std::function<Status(Transaction&)>& body) {
  return RunInTransaction(store_, body, options_.commit_attempts_max);
}

Duration SagaLog::RetryDelay(std::string_view saga_id, uint32_t step, uint32_t attempt) const {
  uint64_t bits = HashMix(step, attempt);
  for (const char c : saga_id) bits = HashMix(bits, static_cast<uint8_t>(c));
  return backoff_.Delay(attempt == 0 ? 0 : attempt - 1, Duration::Zero(), bits);
}

// ---- Start ----------------------------------------------------------------------------------

Status SagaLog::Start(std::string_view type, std::string_view saga_id, uint32_t steps,
                      std::string_view data) {
  return Run([&](Transaction& txn) { return Start(txn, type, saga_id, steps, data); });
}

Status SagaLog::Start(Transaction& txn, std::string_view type, std::string_view saga_id,
                      uint32_t steps, std::string_view data) {
  FL_RETURN_IF_ERROR(CheckPrintable("saga id", saga_id, options_.saga_id_bytes_max));
  FL_RETURN_IF_ERROR(CheckPrintable("saga type", type, options_.type_bytes_max));
  if (steps == 0 || steps > options_.steps_max) {
    return InvalidArgumentError("saga steps must be in [1, " + std::to_string(options_.steps_max) +
                                "], got " + std::to_string(steps));
  }
  if (data.size() > options_.data_bytes_max) {
    return InvalidArgumentError("saga data is " + std::to_string(data.size()) +
                                " bytes, over the limit of " +
                                std::to_string(options_.data_bytes_max));
  }
  const std::string key = Key('s', saga_id);
  FL_ASSIGN_OR_RETURN(std::optional<std::string> existing, txn.Get(key));
  if (existing) {
    FL_ASSIGN_OR_RETURN(SagaState state, DecodeState(*existing));
    if (state.type != type || state.steps != steps || state.data != data) {
      return AlreadyExistsError("saga " + std::string(saga_id) +
                                " exists with another type, step count or data");
    }
    return Status::Ok();
  }
  SagaState state;
  state.type = std::string(type);
  state.steps = steps;
  state.started_at = clock_.WallNow();
  state.data = std::string(data);
  FL_RETURN_IF_ERROR(txn.Put(key, EncodeState(state)));
  return txn.Put(Key('r', saga_id), internal::EncodeRunning(state.started_at));
}

// ---- Next -----------------------------------------------------------------------------------

Result<Action> SagaLog::Next(std::string_view saga_id) {
  Action action;
  const Status status = Run([&](Transaction& txn) -> Status {
    const std::string key = Key('s', saga_id);
    FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(key));
    if (!value) return NotFoundError("no saga " + std::string(saga_id));
    FL_ASSIGN_OR_RETURN(SagaState state, DecodeState(*value));
    if (state.parked) {
      action = Finished(Action::kParked, state);
      return Status::Ok();
    }
    if (state.phase == Phase::kDone || state.phase == Phase::kCompensated) {
      action = Finished(state.phase == Phase::kDone ? Action::kDone : Action::kCompensated, state);
      return Status::Ok();
    }
    const WallTime now = clock_.WallNow();
    // A wait longer than the backoff's cap means the wall clock jumped backwards since retry_at
    // was set: never wait longer than the cap.
    if (now < state.retry_at && state.retry_at - now <= options_.retry_backoff.delay_max) {
      action = Action{};
      action.kind = Action::kWait;
      action.step = state.cursor;
      action.not_before = state.retry_at;
      return Status::Ok();
    }
    if (state.phase == Phase::kForward && state.attempts >= options_.forward_attempts_max) {
      // The forward may have been applied by any of its attempts: compensate it too.
      state.phase = Phase::kCompensating;
      state.attempts = 0;
      state.reason =
          Cut("step " + std::to_string(state.cursor) + " forward gave up after " +
                  std::to_string(options_.forward_attempts_max) + " attempts; last outcome unknown",
              options_.reason_bytes_max);
    }
    if (state.phase == Phase::kCompensating &&
        state.attempts >= options_.compensation_attempts_max) {
      // Every attempt was armed and none recorded: a compensation that kills its driver.
      FL_RETURN_IF_ERROR(ParkIn(txn, saga_id, state,
                                "compensation of step " + std::to_string(state.cursor) +
                                    " never reported an outcome in " +
                                    std::to_string(state.attempts) + " attempts"));
      action = Finished(Action::kParked, state);
      return Status::Ok();
    }
    state.attempts += 1;
    state.started = true;
    FL_RETURN_IF_ERROR(txn.Put(key, EncodeState(state)));
    action = Action{};
    const bool forward = state.phase == Phase::kForward;
    action.kind = forward ? Action::kForward : Action::kCompensate;
    if (!forward) FL_PROBE("saga.compensation_step");
    action.step = state.cursor;
    action.attempt = state.attempts;
    action.forward_key = ForwardKey(saga_id, state.cursor);
    action.step_key = forward ? action.forward_key : CompensationKey(saga_id, state.cursor);
    if (!forward) action.reason = state.reason;
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return action;
}

// ---- Record ---------------------------------------------------------------------------------

Status SagaLog::RecordForward(std::string_view saga_id, uint32_t step, const Status& outcome) {
  return Run([&](Transaction& txn) -> Status {
    const std::string key = Key('s', saga_id);
    FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(key));
    if (!value) return NotFoundError("no saga " + std::string(saga_id));
    FL_ASSIGN_OR_RETURN(SagaState state, DecodeState(*value));
    if (state.parked || state.phase != Phase::kForward || state.cursor != step || !state.started) {
      return FailedPreconditionError("saga " + std::string(saga_id) + " is not running step " +
                                     std::to_string(step) + " forward: stale outcome ignored");
    }
    state.retry_at = WallTime();
    if (outcome.ok()) {
      state.cursor += 1;
      state.attempts = 0;
      state.started = false;
      if (state.cursor == state.steps) {
        state.phase = Phase::kDone;
        FL_RETURN_IF_ERROR(txn.Delete(Key('r', saga_id)).status());
      }
    } else if (IsOutcomeUnknown(outcome)) {
      state.retry_at = clock_.WallNow() + RetryDelay(saga_id, step, state.attempts);
    } else {
      state.phase = Phase::kCompensating;
      state.attempts = 0;
      state.started = false;
      state.reason = Cut("step " + std::to_string(step) + " forward refused: " + outcome.ToString(),
                         options_.reason_bytes_max);
    }
    return txn.Put(key, EncodeState(state));
  });
}

Status SagaLog::RecordCompensation(std::string_view saga_id, uint32_t step, const Status& outcome) {
  return Run([&](Transaction& txn) -> Status {
    const std::string key = Key('s', saga_id);
    FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(key));
    if (!value) return NotFoundError("no saga " + std::string(saga_id));
    FL_ASSIGN_OR_RETURN(SagaState state, DecodeState(*value));
    if (state.parked || state.phase != Phase::kCompensating || state.cursor != step ||
        !state.started) {
      return FailedPreconditionError("saga " + std::string(saga_id) + " is not compensating step " +
                                     std::to_string(step) + ": stale outcome ignored");
    }
    state.retry_at = WallTime();
    if (outcome.ok()) {
      state.attempts = 0;
      state.started = false;
      if (step == 0) {
        state.phase = Phase::kCompensated;
        FL_RETURN_IF_ERROR(txn.Delete(Key('r', saga_id)).status());
      } else {
        state.cursor -= 1;
      }
      return txn.Put(key, EncodeState(state));
    }
    if (state.attempts >= options_.compensation_attempts_max) {
      return ParkIn(txn, saga_id, state,
                    "compensation of step " + std::to_string(step) + " failed " +
                        std::to_string(state.attempts) + " times, last: " + outcome.ToString());
    }
    state.retry_at = clock_.WallNow() + RetryDelay(saga_id, step, state.attempts);
    return txn.Put(key, EncodeState(state));
  });
}

// ---- Park -----------------------------------------------------------------------------------

Status SagaLog::ParkIn(Transaction& txn, std::string_view saga_id, SagaState& state,
                       std::string_view reason) {
  FL_ASSERT(!state.parked);
  state.parked = true;
  state.reason = Cut(reason, options_.reason_bytes_max);
  FL_RETURN_IF_ERROR(txn.Put(Key('s', saga_id), EncodeState(state)));
  FL_RETURN_IF_ERROR(txn.Delete(Key('r', saga_id)).status());
  return txn.Put(Key('p', saga_id),
                 internal::EncodeParked({state.started_at, clock_.WallNow(), state.reason}));
}

Status SagaLog::Park(std::string_view saga_id, std::string_view reason_in) {
  FL_RETURN_IF_ERROR(CheckPrintable("saga id", saga_id, options_.saga_id_bytes_max));
  const std::string reason = Cut(reason_in, options_.reason_bytes_max);
  return Run([&](Transaction& txn) -> Status {
    const std::string key = Key('s', saga_id);
    const std::string running_key = Key('r', saga_id);
    const std::string parked_key = Key('p', saga_id);
    FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(key));
    if (!value) return NotFoundError("no saga " + std::string(saga_id));
    const WallTime now = clock_.WallNow();
    Result<SagaState> state = DecodeState(*value);
    if (state.ok()) {
      if (state->parked || state->phase == Phase::kDone || state->phase == Phase::kCompensated) {
        return Status::Ok();
      }
      return ParkIn(txn, saga_id, *state, reason);
    }
    // The row does not decode: leave it for inspection, move the saga out of the running set.
    FL_ASSIGN_OR_RETURN(std::optional<std::string> parked, txn.Get(parked_key));
    if (parked) return Status::Ok();
    std::optional<WallTime> started_at;
    FL_ASSIGN_OR_RETURN(std::optional<std::string> running, txn.Get(running_key));
    if (running) {
      Result<WallTime> decoded = internal::DecodeRunning(*running);
      if (decoded.ok()) started_at = *decoded;
      FL_RETURN_IF_ERROR(txn.Delete(running_key).status());
    }
    return txn.Put(parked_key, internal::EncodeParked({started_at, now, reason}));
  });
}

Status SagaLog::Unpark(std::string_view saga_id) {
  return Run([&](Transaction& txn) -> Status {
    const std::string key = Key('s', saga_id);
    FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(key));
    if (!value) return NotFoundError("no saga " + std::string(saga_id));
    Result<SagaState> state = DecodeState(*value);
    if (!state.ok()) {
      return FailedPreconditionError("saga " + std::string(saga_id) +
                                     " cannot be unparked: " + state.status().ToString());
    }
    if (!state->parked) {
      return FailedPreconditionError("saga " + std::string(saga_id) + " is not parked");
    }
    state->parked = false;
    state->attempts = 0;
    state->retry_at = WallTime();
    FL_RETURN_IF_ERROR(txn.Put(key, EncodeState(*state)));
    FL_RETURN_IF_ERROR(txn.Delete(Key('p', saga_id)).status());
    return txn.Put(Key('r', saga_id), internal::EncodeRunning(state->started_at));
  });
}

Status SagaLog::Forget(std::string_view saga_id) {
  return Run([&](Transaction& txn) -> Status {
    const std::string key = Key('s', saga_id);
    FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(key));
    if (!value) return Status::Ok();
    FL_ASSIGN_OR_RETURN(bool was_parked, txn.Delete(Key('p', saga_id)));
    if (!was_parked) {
      FL_ASSIGN_OR_RETURN(SagaState state, DecodeState(*value));
      if (state.phase != Phase::kDone && state.phase != Phase::kCompensated) {
        return FailedPreconditionError("saga " + std::string(saga_id) +
                                       " is still running: it cannot be forgotten");
      }
    }
    FL_RETURN_IF_ERROR(txn.Delete(Key('r', saga_id)).status());
    return txn.Delete(key).status();
  });
}

// ---- Reads ----------------------------------------------------------------------------------

Result<SagaState> SagaLog::Get(std::string_view saga_id) {
  SagaState state;
  const Status status = Run([&](Transaction& txn) -> Status {
    FL_ASSIGN_OR_RETURN(std::optional<std::string> value, txn.Get(Key('s', saga_id)));
    if (!value) return NotFoundError("no saga " + std::string(saga_id));
    FL_ASSIGN_OR_RETURN(state, DecodeState(*value));
    state.saga_id = std::string(saga_id);
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return state;
}

Result<std::vector<std::string>> SagaLog::Unfinished() {
  std::vector<std::string> ids;
  const Status status = Run([&](Transaction& txn) -> Status {
    ids.clear();
    const std::string begin = options_.prefix + "r/";
    FL_ASSIGN_OR_RETURN(std::vector<KeyValue> rows,
                        txn.Scan(begin, RangeEnd(begin), options_.list_max));
    for (KeyValue& row : rows) ids.push_back(row.key.substr(begin.size()));
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return ids;
}

Result<std::vector<ParkedSaga>> SagaLog::Parked() {
  std::vector<ParkedSaga> out;
  const Status status = Run([&](Transaction& txn) -> Status {
    out.clear();
    const std::string begin = options_.prefix + "p/";
    FL_ASSIGN_OR_RETURN(std::vector<KeyValue> rows,
                        txn.Scan(begin, RangeEnd(begin), options_.list_max));
    for (KeyValue& row : rows) {
      ParkedSaga parked;
      parked.saga_id = row.key.substr(begin.size());
      Result<internal::ParkedEntry> entry = internal::DecodeParked(row.value);
      if (entry.ok()) {
        parked.started_at = entry->started_at;
        parked.parked_at = entry->parked_at;
        parked.reason = std::move(entry->reason);
      } else {
        parked.reason = entry.status().ToString();
      }
      out.push_back(std::move(parked));
    }
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return out;
}

Result<std::vector<StuckSaga>> SagaLog::Stuck(WallTime now) {
  std::vector<StuckSaga> out;
  const Status status = Run([&](Transaction& txn) -> Status {
    out.clear();
    const std::string begin = options_.prefix + "r/";
    FL_ASSIGN_OR_RETURN(std::vector<KeyValue> rows,
                        txn.Scan(begin, RangeEnd(begin), options_.list_max));
    for (KeyValue& row : rows) {
      Result<WallTime> started = internal::DecodeRunning(row.value);
      StuckSaga stuck;
      stuck.saga_id = row.key.substr(begin.size());
      if (started.ok())
        stuck.started_at = *started;
      else
        stuck.reason = started.status().ToString();
      stuck.age = now - stuck.started_at;
      if (!started.ok() || stuck.age > options_.stuck_after) out.push_back(std::move(stuck));
    }
    return Status::Ok();
  });
  if (!status.ok()) return status;
  FL_ASSIGN_OR_RETURN(std::vector<ParkedSaga> parked, Parked());
  for (ParkedSaga& p : parked) {
    StuckSaga stuck;
    stuck.saga_id = std::move(p.saga_id);
    stuck.started_at = p.started_at.value_or(WallTime());
    stuck.age = now - stuck.started_at;
    stuck.parked = true;
    stuck.reason = std::move(p.reason);
    if (!p.started_at || stuck.age > options_.stuck_after) out.push_back(std::move(stuck));
  }
  return out;
}

}  // namespace faultline::saga
