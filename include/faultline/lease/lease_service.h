// File: faultline/lease/lease_service.h
//
// Leases: time-bounded, exclusive ownership of a name, with a fencing token.
//
//   Result<LeaseGrant> grant = co_await service.Acquire("leader", Duration::Seconds(2));
//   if (grant.ok() && grant->Valid(env.clock().Now())) { ... act, passing grant->token ... }
//
// The contract every implementation keeps (etcd's client recipe, Chubby's sequencer, PaxosLease):
//   - Acquire succeeds only when nobody else holds a live lease on the name. It is etcd's
//     `Txn(If CreateRevision(k) == 0 Then Put(k, self, lease))`: a compare-and-set on the key whose
//     revision is the fencing token.
//   - Acquire by the node that already holds a live lease on the name (as the service sees it:
//     the holder is a node id, not a client object) succeeds and renews it, exactly like
//     KeepAlive: Ok with the same token, validity counted from this call's send time. It is never
//     kAlreadyExists naming the caller. (etcd's election recipe: the txn's failure branch finds
//     the key owned by the caller's own lease and re-uses it.) An implementation that cannot prove
//     the old grant is the newest may instead grant a fresh, higher token (PaxosLease after a
//     lost race); the old grant is then superseded and its KeepAlive fails.
//   - The fencing token is the revision (ballot) of the write that granted ownership, never a later
//     read. Tokens strictly increase from one holder to the next; renewals keep the token.
//   - Client-side validity is computed on the holder's monotonic clock from the time the granting
//     request was *sent*: valid_until = t_send + ttl·(1 − ρ) − margin, where ρ bounds the rate
//     difference between any two clocks. The holder fences itself at valid_until; remote
//     timestamps are never used.
//   - The server-side TTL is a lower bound: the service never lets a lease go before ttl has
//     passed on its own clocks after it granted or renewed it.
//   - KeepAlive after the holder's validity has passed fails (kFailedPrecondition): an expired
//     lease is never silently re-granted under the old token.
//   - Revoke is a clean release: the name is free at once (no lock-delay).
#pragma once

#include <cstdint>
#include <string>

#include "faultline/core/ids.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/cancel.h"
#include "faultline/env/task.h"

namespace faultline::lease {

struct LeaseLimits {
  static constexpr Duration kTtlMin = Duration::Millis(10);
  static constexpr Duration kTtlMax = Duration::Seconds(3600);
};

// kInvalidArgument naming the bound when ttl is outside [kTtlMin, kTtlMax].
Status ValidateTtl(Duration ttl);

struct LeaseGrant {
  std::string name;
  NodeId holder;
  // The ballot/revision of the write that granted ownership; constant across renewals.
  FencingToken token;
  Duration ttl;
  // The holder's monotonic time when the (re)granting round was sent.
  MonoTime sent_at;
  // sent_at + ttl·(1 − ρ) − margin: the holder may act strictly before this instant.
  MonoTime valid_until;

  bool Valid(MonoTime now) const { return now < valid_until; }
};

// t_send + ttl·(1 − drift_ppm_max·1e-6) − margin, saturating; never earlier than t_send.
MonoTime LeaseValidUntil(MonoTime sent_at, Duration ttl, int64_t drift_ppm_max, Duration margin);

// Who holds a name, as a quorum of the service sees it.
struct LeaseInfo {
  NodeId holder;
  FencingToken token;
};

class LeaseService {
 public:
  virtual ~LeaseService() = default;

  // Grants `name` to this node for `ttl`; when this node holds it already, renews it under the
  // same token (see the contract above). Errors: kAlreadyExists (another node holds a live lease;
  // the message names the holder), kUnavailable (no quorum answered in time, or the name is in
  // lock-delay), kInvalidArgument (ttl out of range), kAborted (lost a race to a higher ballot).
  virtual Task<Result<LeaseGrant>> Acquire(std::string name, Duration ttl) = 0;

  // Extends a lease this node holds; the token does not change. kFailedPrecondition when the
  // grant's validity has passed or another holder has taken the name; kUnavailable without a
  // quorum (the grant may still be valid until its valid_until).
  virtual Task<Result<LeaseGrant>> KeepAlive(LeaseGrant grant) = 0;

  // Releases a lease this node holds; the name is free at once. Best effort: kUnavailable when no
  // quorum answered (the lease then simply expires).
  virtual Task<Status> Revoke(LeaseGrant grant) = 0;

  // The live holder of `name`, or kNotFound when it is free.
  virtual Task<Result<LeaseInfo>> Read(std::string name) = 0;

  // Waits until `name` is seen free (its holder released it or its lease expired), for at most
  // `max` of this node's monotonic time, so that a candidate campaigns at once instead of on a
  // polling period. Ok: the name was seen free (it may be taken again by the time the caller
  // acquires). kDeadlineExceeded: `max` passed first. kCancelled: `cancel` fired. kUnavailable: the
  // service could not be asked (the caller waits its usual retry delay). kUnimplemented: the
  // service cannot watch — the default, returned at once without suspending; the caller then
  // sleeps `max` itself (PaxosLease keeps the default, so simulator runs are unchanged).
  virtual Task<Status> WaitReleased(std::string name, Duration max, CancelToken cancel);
};

}  // namespace faultline::lease
