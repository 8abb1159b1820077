// Unit tests for faultline/env/quorum_call.h: one request fanned out to a set of simulated
// nodes, each answering yes, no, an error, or too late, and the call's ending in each case
// (quorum reached, quorum impossible, decided early, timeout), plus what it leaves behind:
// stragglers cancelled or left alone, and nothing dangling when the waiter is destroyed.
#include "faultline/env/quorum_call.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/sim/world.h"

namespace faultline {
namespace {

using sim::World;

constexpr NodeId kCaller(0);
constexpr uint16_t kVote = 11;
constexpr Duration kTimeout = Duration::Millis(200);
constexpr Duration kSlow = Duration::Seconds(10);

// How a target answers kVote.
enum class Answer : uint8_t { kYes, kNo, kError, kLate };

Task<Result<Bytes>> AnswerLate(Env* env, Duration delay) {
  Status s = co_await Sleep(env->executor(), delay);
  if (!s.ok()) co_return s;
  co_return Bytes{'y'};
}

class VoteNode final : public sim::Node {
 public:
  VoteNode(Env& env, std::optional<Answer> answer) : env_(env), rpc_(env) {
    if (!answer.has_value()) return;  // the caller: no handler
    if (*answer == Answer::kLate) {
      rpc_.HandleAsync(kVote, [this](NodeId, Bytes, MonoTime) { return AnswerLate(&env_, kSlow); });
      return;
    }
    const Answer a = *answer;
    rpc_.Handle(kVote, [a](NodeId, std::span<const uint8_t>) -> Result<Bytes> {
      if (a == Answer::kError) return UnavailableError("says error");
      return Bytes{a == Answer::kYes ? uint8_t{'y'} : uint8_t{'n'}};
    });
  }
  Rpc& rpc() { return rpc_; }

 private:
  Env& env_;
  Rpc rpc_;
};

QuorumVerdict Classify(size_t /*target*/, const Result<Bytes>& reply) {
  if (!reply.ok()) return QuorumVerdict::Failure(reply.status());
  if (reply->size() == 1 && (*reply)[0] == 'y') return QuorumVerdict::Yes();
  if (reply->size() == 1 && (*reply)[0] == 'n') return QuorumVerdict::Reject(AbortedError("no"));
  return QuorumVerdict::Failure(InvalidArgumentError("garbled vote"));
}

struct Outcome {
  std::optional<QuorumResult> result;
  Duration took;
};

Task<void> RunCall(Env* env, Rpc* rpc, QuorumCallOptions options, std::shared_ptr<Outcome> out) {
  const MonoTime start = env->clock().Now();
  QuorumResult result = co_await QuorumCall(*env, *rpc, std::move(options));
  out->took = env->clock().Now() - start;
  out->result.emplace(std::move(result));
}

// Node 0 calls; node i (1..answers.size()) answers answers[i-1].
class Harness {
 public:
  Harness(uint64_t seed, const std::vector<Answer>& answers)
      : world_(seed, sim::WorldOptions::Nodes(static_cast<uint32_t>(answers.size() + 1))) {
    world_.Boot(kCaller, [](Env& env) { return std::make_unique<VoteNode>(env, std::nullopt); });
    for (size_t i = 0; i < answers.size(); ++i) {
      const NodeId id(static_cast<uint32_t>(i + 1));
      const Answer a = answers[i];
      world_.Boot(id, [a](Env& env) { return std::make_unique<VoteNode>(env, a); });
      targets_.push_back(id);
    }
  }

  QuorumCallOptions Call(size_t needed) const {
    QuorumCallOptions call;
    call.targets = targets_;
    call.method = kVote;
    call.request = Bytes{'?'};
    call.needed = needed;
    call.timeout = kTimeout;
    call.classify = Classify;
    return call;
  }
  // Starts the call on the caller, as a root of `tasks` (or of the caller's Env).
  std::shared_ptr<Outcome> Start(QuorumCallOptions call, TaskSet* tasks = nullptr) {
    auto out = std::make_shared<Outcome>();
    Task<void> task = RunCall(&env(), &rpc(), std::move(call), out);
    if (tasks != nullptr) {
      tasks->Spawn(std::move(task));
    } else {
      env().Spawn(std::move(task));
    }
    return out;
  }
  std::shared_ptr<Outcome> RunToEnd(QuorumCallOptions call) {
    std::shared_ptr<Outcome> out = Start(std::move(call));
    world_.RunFor(kTimeout + Duration::Millis(50));
    return out;
  }

  World& world() { return world_; }
  Env& env() { return world_.env(kCaller); }
  Rpc& rpc() { return world_.node_as<VoteNode>(kCaller)->rpc(); }

 private:
  World world_;
  std::vector<NodeId> targets_;
};

TEST(QuorumCallTest, QuorumReachedEndsTheCallBeforeTheTimeout) {
  // Three yes votes of four: the call ends as soon as they are in, reached, not timed out, and
  // each target's reply sits at its own index.
  Harness h(1, {Answer::kYes, Answer::kYes, Answer::kLate, Answer::kYes});
  auto out = h.RunToEnd(h.Call(3));
  ASSERT_TRUE(out->result.has_value());
  const QuorumResult& r = *out->result;
  EXPECT_TRUE(r.reached());
  EXPECT_FALSE(r.timed_out);
  EXPECT_LT(out->took, kTimeout);
  EXPECT_EQ(r.tally.yes, 3u);
  ASSERT_EQ(r.replies.size(), 4u);
  EXPECT_FALSE(r.replies[2].reply.has_value());  // the slow one had not answered
  for (size_t i : {0u, 1u, 3u}) {
    ASSERT_TRUE(r.replies[i].reply.has_value());
    EXPECT_EQ(r.replies[i].vote, QuorumVote::kYes);
  }
}

TEST(QuorumCallTest, ImpossibleQuorumEndsTheCallWithoutWaitingForTheRest) {
  // needed 3 of 4, and two targets refuse: a quorum can no longer form, so the call ends without
  // waiting for the slow one, reporting the last reject and failure.
  Harness h(2, {Answer::kYes, Answer::kNo, Answer::kError, Answer::kLate});
  auto out = h.RunToEnd(h.Call(3));
  ASSERT_TRUE(out->result.has_value());
  const QuorumResult& r = *out->result;
  EXPECT_FALSE(r.reached());
  EXPECT_FALSE(r.timed_out);
  EXPECT_LT(out->took, kTimeout);
  EXPECT_EQ(r.tally.rejects, 1u);
  EXPECT_EQ(r.tally.failures, 1u);
  EXPECT_EQ(r.last_reject.code(), StatusCode::kAborted);
  EXPECT_EQ(r.last_failure.code(), StatusCode::kUnavailable);
}

TEST(QuorumCallTest, DecidedEarlyPredicateEndsTheCallOnItsCondition) {
  // One reject is final for this caller (like a fenced-out reply): the call ends at it although
  // a quorum of two could still form.
  Harness h(3, {Answer::kNo, Answer::kLate, Answer::kLate, Answer::kYes});
  QuorumCallOptions call = h.Call(2);
  call.decided_early = [](const QuorumTally& t) { return t.rejects > 0; };
  auto out = h.RunToEnd(std::move(call));
  ASSERT_TRUE(out->result.has_value());
  EXPECT_FALSE(out->result->reached());
  EXPECT_FALSE(out->result->timed_out);
  EXPECT_EQ(out->result->tally.rejects, 1u);
  EXPECT_LT(out->took, kTimeout);
}

TEST(QuorumCallTest, TimeoutEndsTheCallWhenTooFewAnswerInTime) {
  // Two of three needed are slow: the call ends at its timeout, timed out and short of quorum.
  Harness h(4, {Answer::kYes, Answer::kLate, Answer::kLate});
  auto out = h.RunToEnd(h.Call(2));
  ASSERT_TRUE(out->result.has_value());
  EXPECT_TRUE(out->result->timed_out);
  EXPECT_FALSE(out->result->reached());
  EXPECT_EQ(out->result->tally.yes, 1u);
  EXPECT_GE(out->took, kTimeout);
}

TEST(QuorumCallTest, StragglersAreCancelledWhenTheCallEnds) {
  // With cancel_stragglers the slow targets' calls are released right after the quorum, not left
  // pending until their own timeout; without it they stay in flight and their replies are ignored.
  Harness h(5, {Answer::kYes, Answer::kLate, Answer::kYes, Answer::kLate});
  auto out = h.Start(h.Call(2));
  h.world().RunFor(kTimeout / 2);
  ASSERT_TRUE(out->result.has_value());
  EXPECT_EQ(h.rpc().pending_calls(), 0u);

  QuorumCallOptions keep = h.Call(2);
  keep.cancel_stragglers = false;
  auto kept = h.Start(std::move(keep));
  h.world().RunFor(kTimeout / 2);
  ASSERT_TRUE(kept->result.has_value());
  EXPECT_EQ(h.rpc().pending_calls(), 2u);
  h.world().RunFor(kTimeout);  // they time out on their own
  EXPECT_EQ(h.rpc().pending_calls(), 0u);
  EXPECT_EQ(kept->result->tally.answered(), 2u);
}

TEST(QuorumCallTest, DestroyingTheWaiterBeforeTheEndLeavesNothingDangling) {
  // The awaiting task and the fan-out are destroyed mid-call (as a client's teardown does): no
  // call stays registered on the Rpc, the timer never fires into freed memory, and later traffic
  // is unaffected (run under ASan to see a dangling access bite).
  Harness h(6, {Answer::kLate, Answer::kLate, Answer::kYes});
  auto alive = std::make_shared<bool>(true);
  std::shared_ptr<Outcome> out;
  {
    TaskSet waiter;
    TaskSet fan_out;
    QuorumCallOptions call = h.Call(2);
    call.tasks = &fan_out;
    call.alive = alive;
    out = h.Start(std::move(call), &waiter);
    h.world().RunFor(kTimeout / 2);
    ASSERT_FALSE(out->result.has_value());
    ASSERT_EQ(h.rpc().pending_calls(), 2u);
    *alive = false;
  }  // `fan_out`, then `waiter`
  EXPECT_EQ(h.rpc().pending_calls(), 0u);
  h.world().RunFor(kTimeout * 2);
  EXPECT_FALSE(out->result.has_value());
  auto again = h.RunToEnd(h.Call(1));
  ASSERT_TRUE(again->result.has_value());
  EXPECT_TRUE(again->result->reached());
}

TEST(QuorumCallTest, DeadOwnerIsNeverResumed) {
  // The owner's liveness flag goes false while the call waits: neither the decision nor the
  // timeout resumes the awaiting coroutine afterwards.
  Harness h(7, {Answer::kLate, Answer::kLate});
  auto alive = std::make_shared<bool>(true);
  QuorumCallOptions call = h.Call(1);
  call.alive = alive;
  auto out = h.Start(std::move(call));
  h.world().RunFor(kTimeout / 2);
  *alive = false;
  h.world().RunFor(kTimeout * 2);
  EXPECT_FALSE(out->result.has_value());
}

TEST(QuorumCallTest, CrashingTheCallerMidCallLeavesNothingDangling) {
  // A crash destroys the awaiting task and the per-target tasks in some order; the shared state
  // must survive whichever goes first. The restarted caller then calls normally.
  Harness h(8, {Answer::kLate, Answer::kYes, Answer::kLate});
  auto out = h.Start(h.Call(2));
  h.world().RunFor(kTimeout / 2);
  ASSERT_FALSE(out->result.has_value());
  h.world().Crash(kCaller);
  h.world().RunFor(kTimeout * 2);
  EXPECT_FALSE(out->result.has_value());
  h.world().Restart(kCaller);
  auto again = h.RunToEnd(h.Call(1));
  ASSERT_TRUE(again->result.has_value());
  EXPECT_TRUE(again->result->reached());
}

}  // namespace
}  // namespace faultline
