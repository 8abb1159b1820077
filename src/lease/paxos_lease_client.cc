// PaxosLease: the client, i.e. the proposer (see faultline/lease/paxos_lease.h for the protocol).
#include "faultline/lease/paxos_lease.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "faultline/core/buggify.h"
#include "faultline/env/quorum_call.h"

namespace faultline::lease {

using paxos_lease_internal::Method;
using paxos_lease_internal::Reply;
using paxos_lease_internal::Request;

namespace {

// One phase's decoded answers, by acceptor index.
struct Round {
  std::vector<std::optional<Reply>> replies;  // decoded answers only
  size_t yes = 0;
  size_t rejects = 0;
  uint64_t ballot_seen_max = 0;
  Status last_error;  // the last error, timeout or undecodable reply
};

// Decodes a reply into `decoded[target]` (kept for the round) and votes on it.
QuorumVerdict ClassifyReply(std::vector<std::optional<Reply>>& decoded, size_t target,
                            const Result<Bytes>& result) {
  if (!result.ok()) return QuorumVerdict::Failure(result.status());
  Result<Reply> reply = paxos_lease_internal::DecodeReply(*result);
  if (!reply.ok()) return QuorumVerdict::Failure(reply.status());
  const bool yes = reply->ok;
  decoded[target] = std::move(reply).value();
  return yes ? QuorumVerdict::Yes() : QuorumVerdict::Reject();
}

Round MakeRound(QuorumResult result, std::vector<std::optional<Reply>> decoded) {
  Round round;
  round.yes = result.tally.yes;
  round.rejects = result.tally.rejects;
  round.last_error = std::move(result.last_failure);
  for (const std::optional<Reply>& reply : decoded) {
    if (!reply.has_value()) continue;
    round.ballot_seen_max =
        std::max({round.ballot_seen_max, reply->promised, reply->accepted_ballot});
  }
  round.replies = std::move(decoded);
  return round;
}

std::string NodeName(NodeId id) { return "node " + std::to_string(id.value()); }

// Acquire's decision over a majority of promises: the token to propose, or why not.
Result<FencingToken> DecideAcquire(const Round& round, NodeId self, uint64_t ballot) {
  const Reply* top = nullptr;  // the value accepted at the highest ballot, live or not
  uint64_t promised_before = 0;
  bool lock_delay = false;
  for (const std::optional<Reply>& r : round.replies) {
    if (!r.has_value() || !r->ok) continue;
    if (r->live && r->holder != self) {
      return AlreadyExistsError("lease held by " + NodeName(r->holder) + " (token " +
                                std::to_string(r->token.value()) + ")");
    }
    lock_delay |= r->lock_delay;
    promised_before = std::max(promised_before, r->promised);
    if (r->has_accepted && (top == nullptr || r->accepted_ballot > top->accepted_ballot)) {
      top = &*r;
    }
  }
  if (lock_delay) FL_PROBE("lease.lock_delay");
  if (lock_delay) return UnavailableError("lock-delay: the last lease expired without a revoke");
  // Our own live value, and nothing newer anywhere in the majority: an Acquire retried after a
  // lost reply keeps its token. Otherwise a fresh token, above every ballot the majority knows.
  if (top != nullptr && top->holder == self && top->live &&
      top->accepted_ballot >= promised_before) {
    return top->token;
  }
  return FencingToken(ballot);
}

// KeepAlive's decision: the grant's value must still be live somewhere and nobody else's.
Status DecideRenewal(const Round& round, NodeId self, FencingToken token) {
  bool ours_live = false;
  for (const std::optional<Reply>& r : round.replies) {
    if (!r.has_value() || !r->ok || !r->live) continue;
    if (r->holder != self) {
      return FailedPreconditionError("another holder took the lease: " + NodeName(r->holder));
    }
    if (r->token != token) {
      return FailedPreconditionError("a newer grant of this node replaced the lease");
    }
    ours_live = true;
  }
  if (!ours_live) {
    return FailedPreconditionError("the lease expired at every acceptor of the majority");
  }
  return Status::Ok();
}

}  // namespace

struct PaxosLeaseClient::Impl {
  Impl(Env& e, Rpc& r, const PaxosLeaseOptions& o)
      : env(e), rpc(r), options(o), majority(o.acceptors.size() / 2 + 1) {}
  ~Impl() { *alive = false; }  // before `calls` tears the fan-out down

  static Status CheckName(std::string_view name) {
    if (name.empty() || name.size() > PaxosLeaseLimits::kNameBytesMax) {
      return InvalidArgumentError("name must be 1 .. PaxosLeaseLimits::kNameBytesMax bytes");
    }
    return Status::Ok();
  }
  static Status CheckRequest(std::string_view name, Duration ttl) {
    FL_RETURN_IF_ERROR(CheckName(name));
    return ValidateTtl(ttl);
  }
  // Acquire's and KeepAlive's checks before any round: a renewed grant must be this node's and
  // still valid.
  Status CheckCall(std::string_view name, Duration ttl,
                   const std::optional<LeaseGrant>& renewing) const {
    if (renewing.has_value()) {
      if (env.clock().Now() >= renewing->valid_until) {
        return FailedPreconditionError("the lease's validity has passed; acquire it again");
      }
      if (renewing->holder != env.self()) {
        return InvalidArgumentError("KeepAlive of a grant held by another node");
      }
    }
    return CheckRequest(name, ttl);
  }

  Result<uint64_t> NextBallot() {
    constexpr uint64_t kRoundMax = (uint64_t{1} << 48) - 1;
    if (round >= kRoundMax) return ResourceExhaustedError("ballot rounds exhausted");
    ++round;
    return MakeBallot(round, env.self());
  }
  void Learn(const Round& r) { round = std::max(round, r.ballot_seen_max >> 16); }
  Duration PhaseTimeout(MonoTime deadline) {
    return std::min(options.round_timeout, deadline - env.clock().Now());
  }

  // One phase: `request` to every acceptor, until a majority said yes or no longer can, or
  // `timeout`. The calls live in `calls` and are not cancelled when the phase ends.
  Task<Round> RunPhase(Method method, Bytes request, Duration timeout) {
    QuorumCallOptions call;
    call.targets = options.acceptors;
    call.method = static_cast<uint16_t>(options.method_base + static_cast<uint16_t>(method));
    call.request = std::move(request);
    call.needed = majority;
    call.timeout = timeout;
    auto decoded = std::make_shared<std::vector<std::optional<Reply>>>(options.acceptors.size());
    call.classify = [decoded](size_t target, const Result<Bytes>& reply) {
      return ClassifyReply(*decoded, target, reply);
    };
    call.cancel_stragglers = false;  // they finish on their own timeout (recorded seeds rely on it)
    call.tasks = &calls;
    call.alive = alive;
    QuorumResult result = co_await QuorumCall(env, rpc, std::move(call));
    co_return MakeRound(std::move(result), std::move(*decoded));
  }

  Task<Result<LeaseGrant>> Run(std::string name, Duration ttl, std::optional<LeaseGrant> renewing);

  // Revokes `proposal` (this node's Propose, which did not win) at the acceptors that accepted
  // it. Such a minority value looks like a live lease to everyone else's Prepare: with two
  // candidates dueling, each side's leftovers refuse the other for a TTL, and the name stays
  // ungranted that long. The revoke names the proposal's ballot, so a late one never releases a
  // later grant that reused the token; and withdrawing is always safe, since this node never
  // acted on the proposal. Best effort: a minority that misses it expires at its TTL.
  Task<void> Withdraw(const Request& proposal) {
    Request req;
    req.name = proposal.name;
    req.holder = proposal.holder;
    req.token = proposal.token;
    req.ballot = proposal.ballot;
    Bytes bytes = paxos_lease_internal::EncodeRequest(Method::kRevoke, req);
    const Round revoked =
        co_await RunPhase(Method::kRevoke, std::move(bytes), options.round_timeout);
    Learn(revoked);
  }

  Env& env;
  Rpc& rpc;
  const PaxosLeaseOptions options;
  const size_t majority;
  uint64_t round = 0;  // highest ballot round used or seen
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  TaskSet calls;  // last: destroyed first, while everything its calls touch is alive
};

namespace {

// What a phase's answers mean for the call: go on to the next phase, run another round with a
// higher ballot (status: why this one failed), or stop with `status` as the call's answer.
enum class Next : uint8_t { kGoOn, kRetry, kStop };
struct Verdict {
  Next next = Next::kGoOn;
  Status status;
};

// The prepare phase. An Acquire that won a majority of promises goes on, whatever a minority
// says; otherwise an acceptor that refused because another node holds a live lease settles it at
// once (for a renewal, always), higher ballots mean another round, silence means stop.
//
// Why a minority's refusal may be ignored: an acceptor promises only when no other node's value
// is live on it, and a holder can act only while its value is live on a majority (its validity
// ends before any acceptor's timer, see LeaseValidUntil). Two majorities intersect, so a majority
// of promises proves that nobody else can act. A value live on a minority only is the leftover of
// a proposal that lost (two candidates dueling each leave one on their own acceptor); treating it
// as a lease would keep every candidate out for a whole TTL.
Verdict JudgePrepare(const Round& prepare, NodeId self, size_t majority, bool renewing) {
  if (!renewing && prepare.yes >= majority) return {Next::kGoOn, Status::Ok()};
  for (const std::optional<Reply>& r : prepare.replies) {
    if (!r.has_value() || r->ok || !r->live || r->holder == self) continue;
    if (renewing) {
      return {Next::kStop,
              FailedPreconditionError("another holder took the lease: " + NodeName(r->holder))};
    }
    return {Next::kStop, AlreadyExistsError("lease held by " + NodeName(r->holder) + " (token " +
                                            std::to_string(r->token.value()) + ")")};
  }
  if (prepare.yes >= majority) return {Next::kGoOn, Status::Ok()};
  if (prepare.rejects == 0) {
    return {Next::kStop,
            UnavailableError("no majority answered prepare: " + prepare.last_error.ToString())};
  }
  // Retried with a ballot above every one the rejects reported.
  return {Next::kRetry, renewing ? UnavailableError("prepare rejected by higher ballots")
                                 : AbortedError("prepare rejected by higher ballots")};
}

// The propose phase: a majority of accepts grants the lease; rejects mean a higher prepare came in
// between (the next round sees its value if it won).
Verdict JudgePropose(const Round& propose, size_t majority, bool renewing) {
  if (propose.yes >= majority) return {Next::kGoOn, Status::Ok()};
  if (propose.rejects == 0) {
    return {Next::kStop, UnavailableError("no majority accepted the proposal")};
  }
  return {Next::kRetry, renewing ? UnavailableError("proposal rejected by higher ballots")
                                 : AbortedError("proposal rejected by higher ballots")};
}

// The token to propose after a majority of promises: the renewed grant's, or Acquire's choice.
Result<FencingToken> ChooseToken(const Round& prepare, NodeId self, uint64_t ballot,
                                 const std::optional<LeaseGrant>& renewing) {
  if (!renewing.has_value()) return DecideAcquire(prepare, self, ballot);
  FL_RETURN_IF_ERROR(DecideRenewal(prepare, self, renewing->token));
  return renewing->token;
}

}  // namespace

// Checks the call, then prepare and propose, retrying the prepare (with a higher ballot) when
// higher ballots rejected it. `renewing` is KeepAlive's grant: its validity bounds the whole call.
Task<Result<LeaseGrant>> PaxosLeaseClient::Impl::Run(std::string name, Duration ttl,
                                                     std::optional<LeaseGrant> renewing) {
  Status checked = CheckCall(name, ttl, renewing);
  if (!checked.ok()) co_return checked;
  Clock& clock = env.clock();
  const NodeId self = env.self();
  Status last = UnavailableError("no prepare round ran");
  for (int attempt = 0; attempt < PaxosLeaseLimits::kPrepareAttemptsMax; ++attempt) {
    const MonoTime sent_at = clock.Now();
    MonoTime valid_until = LeaseValidUntil(sent_at, ttl, options.drift_ppm_max, options.margin);
    if (valid_until <= sent_at) {
      co_return InvalidArgumentError("ttl leaves no validity after drift_ppm_max and margin");
    }
    // BUGGIFY: the holder believes its lease ends early. Always safe (it stops acting sooner);
    // it exercises lapsed-lease and renewal-race paths.
    if (FL_BUGGIFY("lease.early_expiry")) valid_until = sent_at + (valid_until - sent_at) / 2;
    const MonoTime deadline = renewing.has_value() ? renewing->valid_until : valid_until;
    if (sent_at >= deadline) {
      FL_PROBE("lease.renewal_too_late");
      co_return FailedPreconditionError("the lease's validity has passed");
    }
    Result<uint64_t> ballot = NextBallot();
    if (!ballot.ok()) co_return ballot.status();

    Request req;
    req.name = name;
    req.ballot = *ballot;
    Bytes prepare_bytes = paxos_lease_internal::EncodeRequest(Method::kPrepare, req);
    const Round prepare =
        co_await RunPhase(Method::kPrepare, std::move(prepare_bytes), PhaseTimeout(deadline));
    Learn(prepare);
    if (clock.Now() >= deadline) {
      co_return DeadlineExceededError("prepare did not finish within the lease's validity");
    }
    Verdict verdict = JudgePrepare(prepare, self, majority, renewing.has_value());
    if (verdict.next == Next::kStop) co_return verdict.status;
    if (verdict.next == Next::kRetry) {
      last = std::move(verdict.status);
      continue;
    }
    Result<FencingToken> token = ChooseToken(prepare, self, *ballot, renewing);
    if (!token.ok()) co_return token.status();
    req.token = *token;
    req.holder = self;
    req.ttl = ttl;
    Bytes propose_bytes = paxos_lease_internal::EncodeRequest(Method::kPropose, req);
    const Round propose =
        co_await RunPhase(Method::kPropose, std::move(propose_bytes), PhaseTimeout(deadline));
    Learn(propose);
    verdict = clock.Now() >= deadline
                  ? Verdict{Next::kStop, DeadlineExceededError(
                                             "propose did not finish within the lease's validity")}
                  : JudgePropose(propose, majority, renewing.has_value());
    // A lost Acquire's proposal may live on the minority that accepted it, where it would refuse
    // every other candidate for a whole TTL (see Withdraw). A renewal's is never withdrawn: those
    // acceptors stand for the holder's current grant too.
    if (verdict.next != Next::kGoOn && !renewing.has_value()) co_await Withdraw(req);
    if (verdict.next == Next::kStop) co_return verdict.status;
    if (verdict.next == Next::kRetry) {
      last = std::move(verdict.status);
      continue;
    }
    LeaseGrant grant;
    grant.name = std::move(name);
    grant.holder = self;
    grant.token = req.token;
    grant.ttl = ttl;
    grant.sent_at = sent_at;
    grant.valid_until = valid_until;
    FL_ASSERT(grant.Valid(clock.Now()));
    co_return grant;
  }
  co_return last;
}

PaxosLeaseClient::PaxosLeaseClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PaxosLeaseClient::~PaxosLeaseClient() = default;

Result<std::unique_ptr<PaxosLeaseClient>> PaxosLeaseClient::Create(
    Env& env, Rpc& rpc, const PaxosLeaseOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  if (env.self().value() > 0xFFFF) {
    return InvalidArgumentError("the client's node id must fit in 16 bits (ballots)");
  }
  return std::unique_ptr<PaxosLeaseClient>(
      new PaxosLeaseClient(std::make_unique<Impl>(env, rpc, options)));
}

// Acquire and KeepAlive hand their Task over as it is: Run checks the request first.
Task<Result<LeaseGrant>> PaxosLeaseClient::Acquire(std::string name, Duration ttl) {
  return impl_->Run(std::move(name), ttl, std::nullopt);
}

Task<Result<LeaseGrant>> PaxosLeaseClient::KeepAlive(LeaseGrant grant) {
  std::string name = grant.name;
  const Duration ttl = grant.ttl;
  return impl_->Run(std::move(name), ttl, std::move(grant));
}

Task<Status> PaxosLeaseClient::Revoke(LeaseGrant grant) {
  Impl& impl = *impl_;
  if (grant.holder != impl.env.self()) {
    co_return InvalidArgumentError("Revoke of a grant held by another node");
  }
  Status valid = impl.CheckRequest(grant.name, grant.ttl);
  if (!valid.ok()) co_return valid;
  Request req;
  req.name = std::move(grant.name);
  req.holder = grant.holder;
  req.token = grant.token;
  Bytes bytes = paxos_lease_internal::EncodeRequest(Method::kRevoke, req);
  const Round round =
      co_await impl.RunPhase(Method::kRevoke, std::move(bytes), impl.options.round_timeout);
  impl.Learn(round);
  if (round.yes < impl.majority) {
    co_return UnavailableError("revoke reached no majority; the lease will expire on its own");
  }
  co_return Status::Ok();
}

Task<Result<LeaseInfo>> PaxosLeaseClient::Read(std::string name) {
  Impl& impl = *impl_;
  Status valid = Impl::CheckName(name);
  if (!valid.ok()) co_return valid;
  Request req;
  req.name = std::move(name);
  Bytes bytes = paxos_lease_internal::EncodeRequest(Method::kQuery, req);
  const Round round =
      co_await impl.RunPhase(Method::kQuery, std::move(bytes), impl.options.round_timeout);
  impl.Learn(round);
  if (round.yes < impl.majority) co_return UnavailableError("no majority answered the read");
  const Reply* best = nullptr;
  for (const std::optional<Reply>& r : round.replies) {
    if (!r.has_value() || !r->live) continue;
    if (best == nullptr || r->accepted_ballot > best->accepted_ballot) best = &*r;
  }
  if (best == nullptr) co_return NotFoundError("no live lease on the name");
  LeaseInfo info;
  info.holder = best->holder;
  info.token = best->token;
  co_return info;
}

}  // namespace faultline::lease
