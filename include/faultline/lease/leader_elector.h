// File: faultline/lease/leader_elector.h
//
// Leader election over a LeaseService, with Curator's connection states:
//
//   kFollower   not the leader; campaigning (retrying Acquire) or idle.
//   kLeader     holds a lease that is valid on this node's clock: may act, fencing every side
//               effect with token().
//   kSuspended  the last keep-alive failed (no quorum): the lease may still be valid, but the
//               leader must stop work (CanAct() is false) until a keep-alive succeeds — Curator's
//               SUSPENDED, which must never be tolerated as "still leader" (CURATOR-460).
//   kLost       the lease's validity passed, or the service reported another holder. Final for
//               this campaign: Campaign() returns, and a new Campaign() starts a fresh one (with a
//               new token if it wins).
//
//   LeaderElector elector(env, service, options);
//   elector.SetListener([](LeaderState s, const LeaseGrant* g) { ... });
//   env.Spawn(elector.Campaign(cancel.token()));
//   ...
//   if (elector.CanAct()) Write(elector.token(), ...);   // re-check before every side effect
//
// While leading, Campaign keeps the lease alive every renew_interval (default ttl / 3) and arms a
// timer at valid_until that moves the state to kLost (self-fencing). CanAct() also reads the clock,
// so a leader that was paused past valid_until cannot act even before that timer runs. While
// kSuspended, KeepAlive is retried every min(retry_min, renew_interval) until valid_until. A
// keep-alive reply that arrives after valid_until is ignored: the state is then kLost.
// Keep-alive errors kUnavailable, kDeadlineExceeded, kAborted and kResourceExhausted suspend; every
// other error (kFailedPrecondition above all) loses the lease at once.
//
// Campaign attempts are spaced by a random delay in [retry_min, 2·retry_min) — randomised over
// [T, 2T) as Raft requires (etcd #10483) — so candidates do not collide in lockstep.
// After an attempt that found the name held (kAlreadyExists), the candidate waits through
// LeaseService::WaitReleased for at most that delay: a service that watches (EtcdLeaseService)
// wakes it as soon as the holder's key goes, so it campaigns at once; one that cannot (the
// default, PaxosLease) answers kUnimplemented and the candidate sleeps the delay as before.
//
// Single-threaded, on the node's executor. The elector must outlive its Campaign task.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/cancel.h"
#include "faultline/env/env.h"
#include "faultline/lease/lease_service.h"

namespace faultline::lease {

enum class LeaderState : uint8_t { kFollower, kLeader, kSuspended, kLost };
const char* LeaderStateName(LeaderState state);

struct ElectorOptions {
  std::string name = "leader";
  Duration ttl = Duration::Seconds(2);
  // 0: ttl / 3.
  Duration renew_interval = Duration::Zero();
  // Campaign attempts are spaced uniformly in [retry_min, 2·retry_min).
  Duration retry_min = Duration::Millis(250);

  Status Validate() const;
};

struct ElectorStats {
  uint64_t attempts = 0;
  uint64_t gated = 0;  // attempts skipped by the campaign gate
  uint64_t elected = 0;
  uint64_t renewals = 0;
  uint64_t renewal_failures = 0;
  uint64_t suspensions = 0;
  uint64_t losses = 0;
};

class LeaderElector {
 public:
  using Listener = std::function<void(LeaderState state, const LeaseGrant* grant)>;

  static Result<std::unique_ptr<LeaderElector>> Create(Env& env, LeaseService& service,
                                                       const ElectorOptions& options);
  ~LeaderElector();
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Campaigns until elected, then leads until the lease is lost, the token is cancelled or
  // Resign() is called; returns then (state kLost after a loss, kFollower after cancel/resign).
  Task<void> Campaign(CancelToken cancel);

  // Revokes the lease (clean release, no lock-delay) and returns to kFollower.
  Task<void> Resign();

  // Observe: waits until the service reports a holder with a token above `after` (pass the last
  // one seen; FencingToken() for any) and returns it — revision-monotone like etcd's Observe, and
  // it returns the latest holder, not every one in between. Polls Read() every `poll`; returns
  // kCancelled when `cancel` fires. Needs no campaign: any node may observe.
  Task<Result<LeaseInfo>> Observe(FencingToken after, Duration poll, CancelToken cancel);

  LeaderState state() const { return state_; }
  // True iff kLeader and the grant is valid on this node's monotonic clock now.
  bool CanAct() const;
  // The current grant while kLeader or kSuspended.
  const std::optional<LeaseGrant>& grant() const { return grant_; }
  FencingToken token() const { return grant_ ? grant_->token : FencingToken(); }

  // Consulted before every campaign attempt: false skips it (sleeping the usual retry delay).
  // Typically "no leader is known, or the failure detector suspects it", so that followers do
  // not run rounds against a healthy leader. Unset: always attempt.
  void SetCampaignGate(std::function<bool()> gate) { gate_ = std::move(gate); }

  // Called on every state change, after it happened; grant is null in kFollower / kLost.
  void SetListener(Listener listener) { listener_ = std::move(listener); }
  const ElectorStats& stats() const { return stats_; }
  // Reports kLeaseAcquired (a = token; d = acquire latency: the grant's sent_at to the reading
  // that accepted the reply, both taken anyway), kLeaseRenewed, kLeaseLost
  // (b = 1 when the service refused the renewal, 0 when the validity ran out) and kSelfFenced
  // (the fence at valid_until stopped this leader), each timed by a reading the elector already
  // took. Attach before campaigning.
  ObserverSlot& observe() { return observer_; }

 private:
  LeaderElector(Env& env, LeaseService& service, const ElectorOptions& options);
  // Keeps the lease alive until it is lost (state kLost) or `stop` is cancelled.
  Task<void> Lead(const CancelSource& stop);
  // Applies a KeepAlive reply to the held grant: renew, suspend or lose.
  void OnKeepAliveReply(Result<LeaseGrant> reply);
  // Clears the grant, moves to kFollower and revokes what was held (best effort).
  Task<void> StepDown();
  // Moves to kLost when the grant's validity has passed; returns whether the lease is still held.
  bool CheckValidity();
  // The fence fired (or was found due at `now`): kSelfFenced, kLeaseLost, then kLost.
  void SelfFence(MonoTime now);
  bool Holding() const {
    return state_ == LeaderState::kLeader || state_ == LeaderState::kSuspended;
  }
  Duration RetryDelay();
  void Transition(LeaderState next);
  void ArmFence(MonoTime now);
  void CancelFence();
  void OnFence();

  Env& env_;
  LeaseService& service_;
  ElectorOptions options_;
  Duration renew_interval_;  // options_.renew_interval, or ttl / 3 when that is 0
  LeaderState state_ = LeaderState::kFollower;
  std::optional<LeaseGrant> grant_;
  TimerId fence_timer_;
  // The running Campaign's stop source, which Resign() cancels. The Campaign frame owns it, so
  // tearing that frame down (a crash) touches nothing of the elector; expired when none runs.
  std::weak_ptr<CancelSource> stop_;
  Listener listener_;
  std::function<bool()> gate_;
  ElectorStats stats_;
  ObserverSlot observer_;
};

}  // namespace faultline::lease
