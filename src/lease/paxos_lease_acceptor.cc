// PaxosLease: the acceptor (see faultline/lease/paxos_lease.h for the protocol).
#include <memory>
#include <string>
#include <string_view>

#include "faultline/lease/paxos_lease.h"
#include "src/lease/paxos_lease_promises.h"

namespace faultline::lease {

using paxos_lease_internal::Method;
using paxos_lease_internal::PromiseLog;
using paxos_lease_internal::Reply;
using paxos_lease_internal::Request;

namespace {

// An acceptor's memory of the last value it accepted for one name.
struct NameState {
  uint64_t accepted_ballot = 0;  // 0: nothing accepted since boot
  NodeId holder;
  FencingToken token;
  MonoTime expires_at;
  bool released = false;  // revoked: no lock-delay
  TimerId timer;
};

}  // namespace

struct PaxosLeaseAcceptor::State {
  State(Env& e, const PaxosLeaseOptions& o, AcceptorStats& s)
      : env(e), options(o), stats(s), log(e.disk(), o.file) {}

  Env& env;
  const PaxosLeaseOptions& options;
  AcceptorStats& stats;
  PromiseLog log;
  std::map<std::string, NameState, std::less<>> names;  // names with an accepted value
  MonoTime quiet_until = MonoTime::Min();
  bool registered = false;

  // Raises the promise for `name` to `ballot` (durably) unless it is there already.
  Status Promise(const std::string& name, uint64_t ballot) {
    const uint64_t promised = log.Promised(name);
    FL_ASSERT(ballot >= promised);
    if (ballot == promised) return Status::Ok();
    if (promised == 0 && log.size() >= PaxosLeaseLimits::kNamesMax) {
      return ResourceExhaustedError("acceptor holds promises for kNamesMax names");
    }
    return log.Promise(name, ballot);
  }

  void Describe(std::string_view name, MonoTime now, Reply* reply) const {
    auto it = names.find(name);
    if (it == names.end() || it->second.accepted_ballot == 0) return;
    const NameState& ns = it->second;
    reply->has_accepted = true;
    reply->accepted_ballot = ns.accepted_ballot;
    reply->holder = ns.holder;
    reply->token = ns.token;
    if (ns.released) return;
    reply->live = now < ns.expires_at;
    reply->lock_delay = !reply->live && now < ns.expires_at + options.lock_delay;
  }

  Result<Bytes> Prepare(NodeId from, const Request& req, MonoTime now) {
    if (BallotOwner(req.ballot) != (from.value() & 0xFFFF)) {
      return InvalidArgumentError("prepare ballot does not belong to its sender");
    }
    ++stats.prepares;
    Reply reply;
    reply.promised = log.Promised(req.name);
    Describe(req.name, now, &reply);
    if (req.ballot < reply.promised) {
      ++stats.rejects;
      return paxos_lease_internal::EncodeReply(reply);
    }
    if (reply.live && reply.holder != from) {
      // Someone else holds a live lease: refuse without promising. A candidate polling a held
      // name must not raise the promise, or the holder's next renewal (and a holder re-acquiring
      // after a lost reply) would be rejected by the candidate's ballot — dueling proposers that
      // can stall a failover for a whole TTL.
      ++stats.held_refusals;
      return paxos_lease_internal::EncodeReply(reply);
    }
    FL_RETURN_IF_ERROR(Promise(req.name, req.ballot));
    reply.ok = true;
    return paxos_lease_internal::EncodeReply(reply);
  }

  Result<Bytes> Propose(NodeId from, const Request& req, MonoTime now) {
    if (BallotOwner(req.ballot) != (from.value() & 0xFFFF) || req.holder != from ||
        BallotOwner(req.token.value()) != (from.value() & 0xFFFF) ||
        req.token.value() > req.ballot) {
      return InvalidArgumentError("proposal's ballot, holder or token does not fit its sender");
    }
    ++stats.proposes;
    Reply reply;
    reply.promised = log.Promised(req.name);
    if (req.ballot < reply.promised) {
      ++stats.rejects;
      return paxos_lease_internal::EncodeReply(reply);
    }
    // Accepting b promises b too (this acceptor may have missed the Prepare).
    FL_RETURN_IF_ERROR(Promise(req.name, req.ballot));
    NameState& ns = names[req.name];
    if (ns.timer) env.executor().Cancel(ns.timer);
    ns.accepted_ballot = req.ballot;
    ns.holder = req.holder;
    ns.token = req.token;
    ns.expires_at = now + req.ttl;
    ns.released = false;
    const uint64_t ballot = req.ballot;
    ns.timer = env.executor().ScheduleAfter(req.ttl, [this, state = &ns, ballot] {
      state->timer = {};
      if (state->accepted_ballot == ballot && !state->released) ++stats.expiries;
    });
    reply.ok = true;
    Describe(req.name, now, &reply);
    FL_ASSERT(reply.live && reply.token == req.token);
    return paxos_lease_internal::EncodeReply(reply);
  }

  Result<Bytes> Revoke(NodeId from, const Request& req, MonoTime now) {
    if (req.holder != from ||
        (req.ballot != 0 && BallotOwner(req.ballot) != (from.value() & 0xFFFF))) {
      return InvalidArgumentError("revoke for a holder or ballot other than its sender's");
    }
    auto it = names.find(req.name);
    if (it != names.end()) {
      NameState& ns = it->second;
      if (ns.accepted_ballot != 0 && !ns.released && ns.holder == req.holder &&
          ns.token == req.token && (req.ballot == 0 || ns.accepted_ballot == req.ballot)) {
        ns.released = true;  // also ends a lock-delay this value started
        if (ns.timer) env.executor().Cancel(ns.timer);
        ns.timer = {};
        ++stats.revokes;
      }
    }
    Reply reply;
    reply.ok = true;
    reply.promised = log.Promised(req.name);
    Describe(req.name, now, &reply);
    FL_ASSERT(!reply.live || reply.holder != req.holder || reply.token != req.token ||
              (req.ballot != 0 && reply.accepted_ballot != req.ballot));
    return paxos_lease_internal::EncodeReply(reply);
  }

  Result<Bytes> Query(const Request& req, MonoTime now) const {
    Reply reply;
    reply.ok = true;
    reply.promised = log.Promised(req.name);
    Describe(req.name, now, &reply);
    return paxos_lease_internal::EncodeReply(reply);
  }
};

PaxosLeaseAcceptor::PaxosLeaseAcceptor(Env& env, Rpc& rpc, const PaxosLeaseOptions& options)
    : env_(env), rpc_(rpc), options_(options) {
  state_ = std::make_unique<State>(env_, options_, stats_);
}

Result<std::unique_ptr<PaxosLeaseAcceptor>> PaxosLeaseAcceptor::Create(
    Env& env, Rpc& rpc, const PaxosLeaseOptions& options, bool restarted) {
  FL_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<PaxosLeaseAcceptor> acceptor(new PaxosLeaseAcceptor(env, rpc, options));
  FL_RETURN_IF_ERROR(acceptor->state_->log.Open());
  if (restarted) acceptor->state_->quiet_until = env.clock().Now() + options.restart_quiet;
  PaxosLeaseAcceptor* self = acceptor.get();
  for (uint16_t m = 0; m < paxos_lease_internal::kMethodCount; ++m) {
    rpc.Handle(options.method_base + m,
               [self, m](NodeId from, std::span<const uint8_t> request) -> Result<Bytes> {
                 return self->OnRequest(m, from, request);
               });
  }
  acceptor->state_->registered = true;
  return acceptor;
}

PaxosLeaseAcceptor::~PaxosLeaseAcceptor() {
  for (auto& [name, ns] : state_->names) {
    if (ns.timer) env_.executor().Cancel(ns.timer);
  }
  if (!state_->registered) return;
  // Rpc cannot unregister a method; leave a stub that no longer points at this object.
  for (uint16_t m = 0; m < paxos_lease_internal::kMethodCount; ++m) {
    rpc_.Handle(options_.method_base + m, [](NodeId, std::span<const uint8_t>) -> Result<Bytes> {
      return UnavailableError("paxos lease acceptor shut down");
    });
  }
}

Result<Bytes> PaxosLeaseAcceptor::OnRequest(uint16_t method_offset, NodeId from,
                                            std::span<const uint8_t> request) {
  FL_ASSERT(method_offset < paxos_lease_internal::kMethodCount);
  State& st = *state_;
  const MonoTime now = env_.clock().Now();
  if (now < st.quiet_until) {
    ++stats_.ignored_quiet;
    return UnavailableError("acceptor is quiet after a restart");
  }
  if (st.log.failed()) return UnavailableError("acceptor stopped after a disk error");
  const auto method = static_cast<Method>(method_offset);
  FL_ASSIGN_OR_RETURN(Request req, paxos_lease_internal::DecodeRequest(method, request));
  switch (method) {
    case Method::kPrepare:
      return st.Prepare(from, req, now);
    case Method::kPropose:
      return st.Propose(from, req, now);
    case Method::kRevoke:
      return st.Revoke(from, req, now);
    case Method::kQuery:
      return st.Query(req, now);
  }
  FL_UNREACHABLE();
}

}  // namespace faultline::lease
