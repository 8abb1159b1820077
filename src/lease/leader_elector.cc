#include "faultline/lease/leader_elector.h"

#include <algorithm>
#include <string>
#include <utility>

#include "faultline/core/assert.h"
#include "faultline/core/options.h"

namespace faultline::lease {
namespace {

// Keep-alive failures that say nothing about who holds the lease (no quorum, a slow or contended
// round): the grant may still be valid, so the leader suspends and retries. Every other error —
// kFailedPrecondition (validity passed, another holder) above all — is taken as the lease being
// gone: giving a lease up early is always safe, holding on to one that is gone is not.
bool IsTransient(StatusCode code) {
  return code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded ||
         code == StatusCode::kAborted || code == StatusCode::kResourceExhausted;
}

// Cancels `to` when `from` is cancelled, for as long as it lives. Lives in the Campaign frame and
// refers to nothing but the two cancellation states, so a crash may tear it down at any point.
class CancelRelay {
 public:
  CancelRelay(CancelToken from, CancelSource to) : from_(std::move(from)) {
    if (from_.cancelled()) {
      to.Cancel();
      return;
    }
    registration_ = from_.Register([to]() mutable { to.Cancel(); });
    FL_ASSERT(registration_ != 0 || !from_.can_be_cancelled());
  }
  CancelRelay(const CancelRelay&) = delete;
  CancelRelay& operator=(const CancelRelay&) = delete;
  ~CancelRelay() { from_.Unregister(registration_); }

 private:
  CancelToken from_;
  uint64_t registration_ = 0;
};

}  // namespace

const char* LeaderStateName(LeaderState state) {
  switch (state) {
    case LeaderState::kFollower:
      return "FOLLOWER";
    case LeaderState::kLeader:
      return "LEADER";
    case LeaderState::kSuspended:
      return "SUSPENDED";
    case LeaderState::kLost:
      return "LOST";
  }
  return "UNKNOWN";
}

Status ElectorOptions::Validate() const {
  FL_CHECK_OPTION(!name.empty(), "name must not be empty");
  Status ttl_valid = ValidateTtl(ttl);
  if (!ttl_valid.ok()) {
    if (ttl_valid.message().starts_with("ttl")) return ttl_valid;
    return InvalidArgumentError("ttl: " + std::string(ttl_valid.message()));
  }
  FL_CHECK_OPTION(renew_interval >= Duration::Zero(), "renew_interval must be >= 0 (0: ttl / 3)");
  FL_CHECK_OPTION(renew_interval < ttl, "renew_interval must be < ttl");
  FL_CHECK_OPTION(retry_min > Duration::Zero(), "retry_min must be > 0");
  FL_CHECK_OPTION(retry_min <= LeaseLimits::kTtlMax, "retry_min must be <= 3600 s");
  return Status::Ok();
}

Result<std::unique_ptr<LeaderElector>> LeaderElector::Create(Env& env, LeaseService& service,
                                                             const ElectorOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<LeaderElector>(new LeaderElector(env, service, options));
}

LeaderElector::LeaderElector(Env& env, LeaseService& service, const ElectorOptions& options)
    : env_(env),
      service_(service),
      options_(options),
      renew_interval_(options.renew_interval == Duration::Zero() ? options.ttl / 3
                                                                 : options.renew_interval) {
  FL_ASSERT(renew_interval_ > Duration::Zero());
  FL_ASSERT(renew_interval_ < options_.ttl);
}

LeaderElector::~LeaderElector() {
  // A running Campaign would resume into freed memory; a crash tears coroutines down first.
  FL_ASSERT_MSG(stop_.expired(), "LeaderElector destroyed while its Campaign is running");
  CancelFence();
  FL_ASSERT(!fence_timer_);
}

bool LeaderElector::CanAct() const {
  if (state_ != LeaderState::kLeader) return false;
  FL_ASSERT(grant_.has_value());
  return grant_->Valid(env_.clock().Now());
}

Task<void> LeaderElector::Campaign(CancelToken cancel) {
  FL_ASSERT_MSG(stop_.expired(), "Campaign is already running on this elector");
  FL_ASSERT(state_ == LeaderState::kFollower || state_ == LeaderState::kLost);
  FL_ASSERT(!grant_.has_value() && !fence_timer_);
  const std::shared_ptr<CancelSource> stop = std::make_shared<CancelSource>();
  stop_ = stop;
  const CancelRelay relay(std::move(cancel), *stop);
  if (state_ == LeaderState::kLost) Transition(LeaderState::kFollower);  // a fresh campaign

  // Unbounded by design: a candidate campaigns until elected, cancelled or resigned; each attempt
  // is spaced by at least retry_min.
  while (!stop->cancelled()) {
    if (gate_ && !gate_()) {
      // The caller sees a healthy leader: an attempt would only cost the service a round.
      ++stats_.gated;
      const Status slept = co_await Sleep(env_.executor(), RetryDelay(), stop->token());
      slept.IgnoreError();
      continue;
    }
    ++stats_.attempts;
    Result<LeaseGrant> reply = co_await service_.Acquire(options_.name, options_.ttl);
    if (stop->cancelled()) {
      // Stopped while the round was in flight: release a grant nobody will lead with.
      if (reply.ok()) {
        const Status revoked = co_await service_.Revoke(*reply);
        revoked.IgnoreError();
      }
      break;
    }
    const MonoTime now = env_.clock().Now();
    // A grant whose validity passed before its reply arrived is worth nothing: try again.
    if (reply.ok() && reply->Valid(now)) {
      FL_ASSERT(reply->name == options_.name);
      grant_ = std::move(reply).value();
      ArmFence(now);
      Transition(LeaderState::kLeader);
      // Latency from the reading the round was sent at (sent_at) to the one that accepted it.
      observer_.Emit(EventKind::kLeaseAcquired, now, static_cast<int64_t>(grant_->token.value()),
                     0, now - grant_->sent_at);
      co_await Lead(*stop);
      if (state_ == LeaderState::kLost) co_return;
      break;
    }
    const Duration delay = RetryDelay();
    if (!reply.ok() && reply.status().code() == StatusCode::kAlreadyExists) {
      // Held by someone else: a service that can watch wakes us as soon as the name is free.
      const Status woke = co_await service_.WaitReleased(options_.name, delay, stop->token());
      if (woke.ok() || woke.code() == StatusCode::kDeadlineExceeded ||
          woke.code() == StatusCode::kCancelled) {
        continue;
      }
      // kUnimplemented (no watch) or the watch failed: wait the plain retry delay.
    }
    const Status slept = co_await Sleep(env_.executor(), delay, stop->token());
    slept.IgnoreError();  // cancelled: the loop condition ends the campaign
  }
  co_await StepDown();
  FL_ASSERT(state_ == LeaderState::kFollower && !grant_.has_value());
}

Task<void> LeaderElector::Lead(const CancelSource& stop) {
  const CancelToken stop_token = stop.token();
  const Duration suspended_retry = std::min(options_.retry_min, renew_interval_);
  // Bounded by the lease: each round renews it (the service's say) or comes nearer to
  // valid_until, after which CheckValidity() ends the loop.
  while (!stop.cancelled() && CheckValidity()) {
    const Duration pause = state_ == LeaderState::kLeader ? renew_interval_ : suspended_retry;
    // Wake no later than valid_until, so a campaign whose lease lapsed returns without waiting.
    const Duration until_fence = grant_->valid_until - env_.clock().Now();
    if (until_fence <= Duration::Zero()) continue;  // lapsed just now: CheckValidity() fences
    const Status slept = co_await Sleep(env_.executor(), std::min(pause, until_fence), stop_token);
    if (!slept.ok() || !CheckValidity()) co_return;  // stopped, or the lease lapsed
    const LeaseGrant held = *grant_;
    Result<LeaseGrant> reply = co_await service_.KeepAlive(held);
    if (stop.cancelled()) {
      // Resigned while the round was in flight: it may have extended a lease nobody leads with.
      // (After a cancel the elector still holds the grant and StepDown() revokes it.)
      if (reply.ok() && !Holding()) {
        const Status revoked = co_await service_.Revoke(*reply);
        revoked.IgnoreError();
      }
      co_return;
    }
    if (!Holding()) co_return;  // the fence fired while the round was in flight
    OnKeepAliveReply(std::move(reply));
  }
}

void LeaderElector::OnKeepAliveReply(Result<LeaseGrant> reply) {
  FL_ASSERT(Holding() && grant_.has_value());
  // A reply that arrives after valid_until is ignored, a success included: the leader could not
  // act in between, and the lease may have moved on (the fence timer may not have run yet if the
  // node was paused).
  if (!CheckValidity()) return;
  const MonoTime now = env_.clock().Now();
  if (!reply.ok()) {
    ++stats_.renewal_failures;
    if (!IsTransient(reply.status().code())) {
      observer_.Emit(EventKind::kLeaseLost, now, static_cast<int64_t>(grant_->token.value()), 1);
      Transition(LeaderState::kLost);
    } else if (state_ == LeaderState::kLeader) {
      Transition(LeaderState::kSuspended);
    }
    return;
  }
  FL_ASSERT_MSG(reply->token == grant_->token, "KeepAlive changed the fencing token");
  FL_ASSERT(reply->name == grant_->name);
  if (!reply->Valid(now)) {
    ++stats_.renewal_failures;
    observer_.Emit(EventKind::kLeaseLost, now, static_cast<int64_t>(grant_->token.value()), 0);
    Transition(LeaderState::kLost);
    return;
  }
  grant_ = std::move(reply).value();
  ++stats_.renewals;
  observer_.Emit(EventKind::kLeaseRenewed, now, static_cast<int64_t>(grant_->token.value()));
  ArmFence(now);
  if (state_ == LeaderState::kSuspended) Transition(LeaderState::kLeader);
  FL_ASSERT(state_ == LeaderState::kLeader && fence_timer_);
}

Task<void> LeaderElector::Resign() {
  const std::shared_ptr<CancelSource> stop = stop_.lock();
  if (stop != nullptr) stop->Cancel();
  co_await StepDown();
}

Task<Result<LeaseInfo>> LeaderElector::Observe(FencingToken after, Duration poll,
                                               CancelToken cancel) {
  if (poll <= Duration::Zero()) co_return InvalidArgumentError("poll must be > 0");
  // Unbounded by design (a watch): ends when a newer holder appears or on cancel.
  while (!cancel.cancelled()) {
    Result<LeaseInfo> info = co_await service_.Read(options_.name);
    if (info.ok() && info->token > after) co_return info;
    const Status slept = co_await Sleep(env_.executor(), poll, cancel);
    if (!slept.ok()) break;
  }
  co_return CancelledError("observe cancelled");
}

Task<void> LeaderElector::StepDown() {
  std::optional<LeaseGrant> held;
  held.swap(grant_);
  if (state_ != LeaderState::kFollower) Transition(LeaderState::kFollower);
  FL_ASSERT(!grant_.has_value() && !fence_timer_);
  if (held.has_value()) {
    // Best effort: without a quorum the lease simply expires at its TTL.
    const Status revoked = co_await service_.Revoke(*held);
    revoked.IgnoreError();
  }
}

bool LeaderElector::CheckValidity() {
  if (!Holding()) return false;
  FL_ASSERT(grant_.has_value());
  const MonoTime now = env_.clock().Now();
  if (grant_->Valid(now)) return true;
  // The fence timer is due but has not run (the node was paused past valid_until): fence now.
  SelfFence(now);
  return false;
}

void LeaderElector::SelfFence(MonoTime now) {
  FL_ASSERT(grant_.has_value());
  const auto token = static_cast<int64_t>(grant_->token.value());
  observer_.Emit(EventKind::kSelfFenced, now, token);
  observer_.Emit(EventKind::kLeaseLost, now, token, 0);
  Transition(LeaderState::kLost);
}

Duration LeaderElector::RetryDelay() {
  const Duration jitter =
      env_.random().Range(Duration::Zero(), options_.retry_min - Duration::Nanos(1));
  const Duration delay = options_.retry_min + jitter;
  FL_ASSERT(delay >= options_.retry_min);
  FL_ASSERT(delay < options_.retry_min * 2);
  return delay;
}

void LeaderElector::Transition(LeaderState next) {
  FL_ASSERT(next != state_);
  const LeaderState prev = state_;
  switch (next) {
    case LeaderState::kFollower:
    case LeaderState::kLost:
      CancelFence();
      grant_.reset();
      if (next == LeaderState::kLost) ++stats_.losses;
      break;
    case LeaderState::kLeader:
      FL_ASSERT(grant_.has_value() && fence_timer_);
      if (prev == LeaderState::kFollower) ++stats_.elected;
      break;
    case LeaderState::kSuspended:
      FL_ASSERT(prev == LeaderState::kLeader && grant_.has_value());
      ++stats_.suspensions;
      break;
  }
  state_ = next;
  if (listener_) listener_(state_, grant_.has_value() ? &*grant_ : nullptr);
}

void LeaderElector::ArmFence(MonoTime now) {
  FL_ASSERT(grant_.has_value());
  FL_ASSERT(grant_->Valid(now));
  CancelFence();
  fence_timer_ = env_.executor().ScheduleAfter(grant_->valid_until - now, [this] {
    fence_timer_ = {};
    OnFence();
  });
  FL_ASSERT(fence_timer_);
}

void LeaderElector::CancelFence() {
  if (!fence_timer_) return;
  env_.executor().Cancel(fence_timer_);
  fence_timer_ = {};
}

void LeaderElector::OnFence() {
  // Every transition out of kLeader / kSuspended cancels the timer.
  FL_ASSERT(Holding() && grant_.has_value());
  const MonoTime now = env_.clock().Now();
  if (grant_->Valid(now)) {
    ArmFence(now);  // an executor whose timer ran early by its clock: wait for the rest
    return;
  }
  SelfFence(now);
}

}  // namespace faultline::lease
