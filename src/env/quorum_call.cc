#include "faultline/env/quorum_call.h"

#include <coroutine>
#include <utility>

#include "faultline/core/assert.h"

namespace faultline {
namespace {

class Awaiter;

// Shared by the awaiting coroutine and the per-target call tasks, so that whichever finishes or is
// destroyed first leaves nothing dangling.
struct State {
  explicit State(QuorumCallOptions o) : options(std::move(o)) {
    result.replies.resize(options.targets.size());
    result.tally.targets = options.targets.size();
    result.needed = options.needed;
  }

  bool Decided() const {
    const QuorumTally& t = result.tally;
    if (t.yes >= options.needed) return true;
    if (t.yes + (t.targets - t.answered()) < options.needed) return true;  // quorum impossible
    return options.decided_early && options.decided_early(t);
  }
  bool OwnerAlive() const { return options.alive == nullptr || *options.alive; }
  void Record(size_t index, Result<Bytes> reply);

  QuorumCallOptions options;
  QuorumResult result;
  bool ended = false;  // the result was taken (or its awaiter destroyed); later replies are ignored
  CancelSource cancel;  // releases the stragglers when cancel_stragglers
  Awaiter* waiter = nullptr;
};

// Suspends the awaiting coroutine until the call is decided or its timeout passes, then resumes it
// on a later executor turn.
class [[nodiscard]] Awaiter {
 public:
  Awaiter(Executor& executor, std::shared_ptr<State> state)
      : executor_(executor), state_(std::move(state)) {}
  Awaiter(const Awaiter&) = delete;
  Awaiter& operator=(const Awaiter&) = delete;
  ~Awaiter() {
    if (timer_) executor_.Cancel(timer_);
    if (state_->waiter == this) state_->waiter = nullptr;
    state_->ended = true;  // the classifier may capture the awaiting frame: never call it again
  }

  bool await_ready() const {
    return state_->Decided() || state_->options.timeout <= Duration::Zero();
  }
  void await_suspend(std::coroutine_handle<> h) {
    handle_ = h;
    state_->waiter = this;
    timer_ = executor_.ScheduleAfter(state_->options.timeout, [this] {
      timer_ = {};
      state_->result.timed_out = true;
      Resume();
    });
  }
  void await_resume() const {}

  // Called by Record once the call is decided: never resumes inside the replying call's stack.
  void Wake() {
    FL_ASSERT(state_->waiter == this);
    state_->waiter = nullptr;
    if (timer_) executor_.Cancel(timer_);
    timer_ = executor_.Post([this] {
      timer_ = {};
      Resume();
    });
  }

 private:
  void Resume() {
    state_->waiter = nullptr;
    if (state_->OwnerAlive()) handle_.resume();
  }

  Executor& executor_;
  std::shared_ptr<State> state_;
  TimerId timer_;
  std::coroutine_handle<> handle_;
};

void State::Record(size_t index, Result<Bytes> reply) {
  FL_ASSERT(index < options.targets.size());
  if (ended) return;  // `result` may have been moved out
  QuorumReply& slot = result.replies[index];
  FL_ASSERT(!slot.reply.has_value());
  QuorumVerdict verdict = options.classify(index, reply);
  QuorumTally& tally = result.tally;
  switch (verdict.vote) {
    case QuorumVote::kYes:
      ++tally.yes;
      break;
    case QuorumVote::kReject:
      ++tally.rejects;
      result.last_reject = std::move(verdict.status);
      break;
    case QuorumVote::kFailure:
      ++tally.failures;
      result.last_failure = std::move(verdict.status);
      break;
  }
  slot.vote = verdict.vote;
  slot.reply = std::move(reply);
  FL_ASSERT(tally.answered() <= tally.targets);
  if (waiter != nullptr && Decided()) waiter->Wake();
}

Task<void> CallTarget(Rpc* rpc, std::shared_ptr<State> state, size_t index, CancelToken token) {
  const QuorumCallOptions& o = state->options;
  Result<Bytes> reply = co_await rpc->Call(o.targets[index], o.method, o.request, o.timeout, token);
  state->Record(index, std::move(reply));
}

}  // namespace

Task<QuorumResult> QuorumCall(Env& env, Rpc& rpc, QuorumCallOptions options) {
  FL_ASSERT(!options.targets.empty() && options.targets.size() <= kQuorumCallTargetsMax);
  FL_ASSERT(options.needed >= 1 && options.needed <= options.targets.size());
  FL_ASSERT(options.classify != nullptr);
  auto state = std::make_shared<State>(std::move(options));
  const size_t targets = state->options.targets.size();
  for (size_t i = 0; i < targets; ++i) {
    CancelToken token;
    if (state->options.cancel_stragglers) token = state->cancel.token();
    Task<void> call = CallTarget(&rpc, state, i, std::move(token));
    if (state->options.tasks != nullptr) {
      state->options.tasks->Spawn(std::move(call));
    } else {
      env.Spawn(std::move(call));
    }
  }
  co_await Awaiter(env.executor(), state);
  if (!state->Decided()) state->result.timed_out = true;  // a timeout <= 0 ends it unanswered
  state->ended = true;
  if (state->options.cancel_stragglers) state->cancel.Cancel();
  FL_ASSERT(state->result.timed_out || state->Decided());
  co_return std::move(state->result);
}

}  // namespace faultline
