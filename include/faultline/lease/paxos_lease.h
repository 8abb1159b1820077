// File: faultline/lease/paxos_lease.h
//
// A lease service replicated over a majority of acceptors, after PaxosLease (Trencher et al.,
// 2008): no single node can grant a lease alone, and no acceptor needs a synchronised clock.
//
//   Acceptors (one per replica node):
//     Prepare(name, b):  if b < promised: reject(promised). If another node's lease is live
//                        here: refuse, naming it, WITHOUT promising (a candidate polling a held
//                        name must not out-ballot the holder's renewals). Else promised = b
//                        (persisted and synced before the reply) and answer with the last
//                        accepted value, if any (holder, token), and whether the name is in
//                        lock-delay.
//     Propose(name, b, holder, token, ttl):  if b < promised: reject(promised). Else accept:
//                        remember (holder, token) and start a timer of ttl on the acceptor's own
//                        monotonic clock; when it fires the value is forgotten and, unless the
//                        holder revoked it, the name enters lock-delay for `lock_delay`.
//     Revoke(name, holder, token, b):  forgets the value if it is that holder's (no lock-delay)
//                        and, when b != 0, was accepted at ballot b.
//   After a restart an acceptor answers nothing for `restart_quiet` (≥ the longest TTL): it has
//   forgotten which leases it accepted, and staying silent until they have all expired keeps any
//   majority it joins from granting a second holder (PaxosLease §4).
//
//   Client (the proposer; runs on any node):
//     t_send = now; b = a fresh ballot above every ballot seen; Prepare to all acceptors. On a
//     majority of promises: if any reports a live lease of another holder ⇒ kAlreadyExists; if any
//     reports lock-delay ⇒ kUnavailable. Otherwise Propose(b, self, token, ttl) where token = b for
//     a new lease and the existing token for a renewal. On a majority of accepts the lease is held
//     until LeaseValidUntil(t_send, ttl, ρ, margin). Rounds that do not finish before that instant
//     (or round_timeout) fail.
//
// Ballots are (round << 16) | node id: unique per proposer and totally ordered, so the ballot of
// the granting Propose is a fencing token that strictly increases across holders (a new holder's
// Prepare was promised by a majority, which refuses every older ballot, including the previous
// holder's renewals).
//
// Safety needs only that clock *rates* differ by at most ρ (drift_ppm_max), not synchronised
// clocks: the holder's validity is measured from before the acceptors started their timers and
// shortened by ρ and margin.
//
// Beyond the paper:
//   - Replies carry the acceptor's last accepted value even when it has expired, with its ballot,
//     and the promise the acceptor held before the request. Acquire reuses its own live token (the
//     idempotent retry after a lost reply) only when that value has the highest accepted ballot in
//     the majority and no acceptor had promised a higher ballot; otherwise it takes a fresh token.
//     That keeps tokens increasing across holders even when a clogged, stale Propose revives an
//     old value on one acceptor long after another holder came and went.
//   - Acceptors check that a ballot belongs to its sender and that a Propose or Revoke names the
//     sender as holder, so a confused node cannot push the ballots of the others out of the way.
//   - A round rejected by higher ballots is retried with a ballot above them, up to
//     PaxosLeaseLimits::kPrepareAttemptsMax rounds per call (then kAborted for Acquire,
//     kUnavailable for KeepAlive). KeepAlive ignores lock-delay (it guards against a *new* holder;
//     an acceptor that missed the last renewals may report it for the current holder's value).
//   - An Acquire whose Propose did not win (rejected by a higher ballot, no majority in time)
//     revokes it, by ballot, at the acceptors that accepted it. Otherwise that minority's value
//     refuses every other candidate's Prepare as a live lease for a whole TTL; two dueling
//     candidates each leave one, block each other, and a failover takes a TTL longer.
//   - During restart_quiet an acceptor answers every request with kUnavailable (no promise, no
//     value: it is as good as silence, and frees the caller at once). A disk error makes it
//     fail-stop the same way until the process restarts (fsync errors cannot be retried safely).
//
// Lifetimes: the acceptor and the client must be destroyed before the Rpc they use. Destroying the
// client abandons its calls in flight: they are never resumed (their owner frees them).
// Single-threaded, on the node's executor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "faultline/core/ids.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/env.h"
#include "faultline/env/rpc.h"
#include "faultline/lease/lease_service.h"

namespace faultline::lease {

struct PaxosLeaseOptions {
  // Every acceptor node; a majority is acceptors.size() / 2 + 1. Must be non-empty, no duplicates.
  std::vector<NodeId> acceptors;
  // Bound on the clock-rate difference between any two nodes, in parts per million (ρ).
  int64_t drift_ppm_max = 1000;
  // Subtracted from every holder's validity on top of the drift allowance.
  Duration margin = Duration::Millis(50);
  // Each phase (prepare, propose) waits at most this long for a majority.
  Duration round_timeout = Duration::Millis(250);
  // After a lease expires without a revoke, acceptors refuse to grant the name for this long
  // (Chubby's lock-delay; 0 disables it).
  Duration lock_delay = Duration::Zero();
  // Silence after an acceptor restarts; must be ≥ the longest TTL ever granted.
  Duration restart_quiet = Duration::Seconds(10);
  // Rpc methods method_base .. method_base + 3 are taken by the acceptor.
  uint16_t method_base = 0x4C00;
  // The acceptor's persisted promises live in this Disk file (and, while it compacts the file, in
  // `file + ".alt"`; the two take turns).
  std::string file = "paxoslease.promises";

  Status Validate() const;
};

// Fixed limits of the service (a limit on everything; not tunable per instance).
struct PaxosLeaseLimits {
  // Acceptors in one service: majorities of more are not a lease service but a broadcast.
  static constexpr size_t kAcceptorsMax = 31;
  // A lease name is 1 .. kNameBytesMax bytes.
  static constexpr size_t kNameBytesMax = 256;
  // Names one acceptor remembers promises for; a Prepare for a new name beyond this is
  // kResourceExhausted (promises are never forgotten: forgetting one would break safety).
  static constexpr size_t kNamesMax = 4096;
  // Prepare rounds one Acquire/KeepAlive runs when rejected by higher ballots before giving up.
  static constexpr int kPrepareAttemptsMax = 3;
  // Promise records appended before the promise file is compacted (or twice the names, if more).
  static constexpr uint64_t kCompactRecordsMin = 1024;
};

// Counters, for tests and scenario metrics.
struct AcceptorStats {
  uint64_t prepares = 0;
  uint64_t proposes = 0;
  uint64_t rejects = 0;
  uint64_t held_refusals = 0;  // prepares refused, without a promise, for another live holder
  uint64_t expiries = 0;
  uint64_t revokes = 0;
  uint64_t ignored_quiet = 0;  // requests ignored during restart_quiet
};

class PaxosLeaseAcceptor {
 public:
  // Loads the persisted promises from env.disk() (a torn or corrupt file is kDataLoss), registers
  // the acceptor's handlers on `rpc`, and, when `restarted`, stays silent for restart_quiet.
  static Result<std::unique_ptr<PaxosLeaseAcceptor>> Create(Env& env, Rpc& rpc,
                                                            const PaxosLeaseOptions& options,
                                                            bool restarted);
  ~PaxosLeaseAcceptor();
  PaxosLeaseAcceptor(const PaxosLeaseAcceptor&) = delete;
  PaxosLeaseAcceptor& operator=(const PaxosLeaseAcceptor&) = delete;

  const AcceptorStats& stats() const { return stats_; }

 private:
  struct State;
  PaxosLeaseAcceptor(Env& env, Rpc& rpc, const PaxosLeaseOptions& options);
  Result<Bytes> OnRequest(uint16_t method_offset, NodeId from, std::span<const uint8_t> request);
  Env& env_;
  Rpc& rpc_;
  PaxosLeaseOptions options_;
  std::unique_ptr<State> state_;
  AcceptorStats stats_;
};

class PaxosLeaseClient final : public LeaseService {
 public:
  static Result<std::unique_ptr<PaxosLeaseClient>> Create(Env& env, Rpc& rpc,
                                                          const PaxosLeaseOptions& options);
  ~PaxosLeaseClient() override;

  Task<Result<LeaseGrant>> Acquire(std::string name, Duration ttl) override;
  Task<Result<LeaseGrant>> KeepAlive(LeaseGrant grant) override;
  Task<Status> Revoke(LeaseGrant grant) override;
  Task<Result<LeaseInfo>> Read(std::string name) override;

 private:
  struct Impl;
  explicit PaxosLeaseClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Ballot layout, exposed for tests and codecs.
inline constexpr uint64_t MakeBallot(uint64_t round, NodeId node) {
  return (round << 16) | (node.value() & 0xFFFF);
}
// The node that owns a ballot (its low 16 bits).
inline constexpr uint32_t BallotOwner(uint64_t ballot) {
  return static_cast<uint32_t>(ballot & 0xFFFF);
}

// The wire format, exposed for tests (round trips and fuzzing); not for users.
//   request = u8 version | bytes name | Prepare: u64 ballot
//                                     | Propose: u64 ballot | u32 holder | u64 token | i64 ttl_ns
//                                     | Revoke:  u32 holder | u64 token | u64 ballot (0: any)
//                                     | Query:   (nothing)
//   reply   = u8 version | u8 flags (ok, has_accepted, live, lock_delay) | u64 promised
//             | if has_accepted: u64 accepted_ballot | u32 holder | u64 token
// Decoders are total: malformed or trailing bytes, an unknown version or out-of-range fields give
// kInvalidArgument, never a crash.
namespace paxos_lease_internal {

enum class Method : uint16_t { kPrepare = 0, kPropose = 1, kRevoke = 2, kQuery = 3 };
inline constexpr uint16_t kMethodCount = 4;
inline constexpr uint8_t kWireVersion = 1;

struct Request {
  std::string name;
  uint64_t ballot = 0;  // Prepare, Propose; Revoke (0: any ballot)
  NodeId holder;        // Propose, Revoke
  FencingToken token;   // Propose, Revoke
  Duration ttl;         // Propose
  friend bool operator==(const Request&, const Request&) = default;
};

struct Reply {
  // Prepare: promised; Propose: accepted; Revoke, Query: answered.
  bool ok = false;
  // The acceptor's promise for the name before this request (a reject's blocking ballot).
  uint64_t promised = 0;
  // The last value this acceptor accepted for the name since it booted, live or not.
  bool has_accepted = false;
  uint64_t accepted_ballot = 0;
  NodeId holder;
  FencingToken token;
  bool live = false;        // not expired and not revoked, on the acceptor's clock
  bool lock_delay = false;  // expired without a revoke less than lock_delay ago
  friend bool operator==(const Reply&, const Reply&) = default;
};

Bytes EncodeRequest(Method method, const Request& request);
Result<Request> DecodeRequest(Method method, std::span<const uint8_t> bytes);
Bytes EncodeReply(const Reply& reply);
Result<Reply> DecodeReply(std::span<const uint8_t> bytes);

}  // namespace paxos_lease_internal

}  // namespace faultline::lease
