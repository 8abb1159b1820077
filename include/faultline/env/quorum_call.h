// File: faultline/env/quorum_call.h
//
// One quorum round: the same Rpc request to every target in parallel, waiting for enough answers.
//
//   QuorumCallOptions call;
//   call.targets = replicas;  call.method = kStore;  call.request = bytes;
//   call.needed = 2;  call.timeout = Duration::Millis(50);
//   call.classify = [](const Result<Bytes>& r) {
//     return r.ok() ? QuorumVerdict::Yes() : QuorumVerdict::Failure(r.status());
//   };
//   QuorumResult result = co_await QuorumCall(env, rpc, std::move(call));
//   if (!result.reached()) ...
//
// Each target gets one Rpc::Call from its own detached task, started in target order before the
// call suspends. Every reply is classified on arrival (yes / reject / failure). The awaiting
// coroutine resumes, always on a later executor turn (never inside a replying call's stack), once
// the call is decided: `needed` yes votes, the quorum became impossible (yes + unanswered <
// needed), the optional `decided_early` predicate holds, or `timeout` passed. From then on later
// replies are ignored, and the calls still in flight are cancelled (cancel_stragglers) or left to
// finish on their own Rpc timeout.
//
// Lifetime: the per-target tasks and the awaiting coroutine share the round's state, so either may
// be destroyed first (a crash destroys all of them in some order) and nothing dangles. Destroying
// the awaiting coroutine stops classification of later replies. When `tasks` is given, destroying
// that TaskSet tears the fan-out down with it; when `alive` is given and false, the awaiting
// coroutine is never resumed (its owner is gone). Single-threaded, on the node's executor; the Rpc
// must outlive every call (as Rpc requires).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "faultline/env/env.h"
#include "faultline/env/rpc.h"

namespace faultline {

inline constexpr size_t kQuorumCallTargetsMax = 1024;

enum class QuorumVote : uint8_t { kYes, kReject, kFailure };

// The classifier's verdict on one reply. `status` explains a reject or failure; the result reports
// the last one of each kind.
struct QuorumVerdict {
  QuorumVote vote = QuorumVote::kFailure;
  Status status;

  static QuorumVerdict Yes() { return QuorumVerdict{QuorumVote::kYes, Status::Ok()}; }
  static QuorumVerdict Reject(Status why = Status::Ok()) {
    return QuorumVerdict{QuorumVote::kReject, std::move(why)};
  }
  static QuorumVerdict Failure(Status why) {
    return QuorumVerdict{QuorumVote::kFailure, std::move(why)};
  }
};

// Votes counted so far. Invariant: yes + rejects + failures <= targets.
struct QuorumTally {
  size_t targets = 0;
  size_t yes = 0;
  size_t rejects = 0;
  size_t failures = 0;  // Rpc errors, timeouts, replies the classifier refused
  size_t answered() const { return yes + rejects + failures; }
};

struct QuorumCallOptions {
  std::vector<NodeId> targets;  // 1 .. kQuorumCallTargetsMax, in the order calls start
  uint16_t method = 0;
  Bytes request;
  size_t needed = 1;  // yes votes that decide the call; 1 .. targets.size()
  // Bounds both each Rpc call and the wait; <= 0 ends the wait at once (the calls still start).
  Duration timeout = Duration::Millis(100);
  // Required. Called once per reply (an Rpc error included) that arrives before the call ends,
  // with the index of its target: a classifier that decodes the reply can keep what it decoded
  // (by target) so the caller never decodes it twice.
  std::function<QuorumVerdict(size_t target, const Result<Bytes>& reply)> classify;
  // Optional: also decides the call when it returns true (e.g. "any reject is final").
  std::function<bool(const QuorumTally& tally)> decided_early;
  // true: the calls still in flight when the call ends are cancelled at once (each finishes with
  // kCancelled on a later turn, releasing its Rpc slot and timer). false: they run until their own
  // reply or timeout, and their results are ignored.
  bool cancel_stragglers = true;
  // Where the per-target tasks run: nullptr means env.Spawn (they live as long as the node).
  TaskSet* tasks = nullptr;
  // Optional liveness flag of the awaiting coroutine's owner: once false, it is never resumed.
  std::shared_ptr<const bool> alive;
};

// One target's answer, by target index.
struct QuorumReply {
  std::optional<Result<Bytes>> reply;      // nullopt: no answer before the call ended
  QuorumVote vote = QuorumVote::kFailure;  // meaningful when `reply` is set
};

struct QuorumResult {
  std::vector<QuorumReply> replies;  // one per target, in target order
  QuorumTally tally;
  size_t needed = 0;
  bool timed_out = false;  // ended by `timeout` before it was decided
  Status last_reject;      // status of the last reject counted (Ok if none or none given)
  Status last_failure;     // status of the last failure counted (Ok if none)
  bool reached() const { return tally.yes >= needed; }
};

// Runs one quorum round; see the file comment. Programmer errors (no targets, needed out of
// range, no classifier) crash.
Task<QuorumResult> QuorumCall(Env& env, Rpc& rpc, QuorumCallOptions options);

}  // namespace faultline
