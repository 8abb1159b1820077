// File: faultline/adapters/etcd_lease.h
//
// EtcdLeaseService: the LeaseService seam over etcd v3 (3.4+), through its JSON gateway (libcurl,
// plain HTTP on the given endpoints; no TLS, no auth).
//
//   EtcdLeaseOptions options;
//   options.endpoints = {"http://127.0.0.1:2379", "http://127.0.0.1:22379"};
//   FL_ASSIGN_OR_RETURN(auto service, EtcdLeaseService::Open(env, env.self(), options));
//   FL_ASSIGN_OR_RETURN(auto elector, lease::LeaderElector::Create(env, *service, elector_options));
//   env.Spawn(elector->Campaign(cancel.token()));
//
// How each call maps to etcd (key = key_prefix + name, value = decimal holder NodeId):
//   Acquire    POST /v3/lease/grant {TTL: ceil(ttl in s), at least 1}, then /v3/kv/txn
//              If CreateRevision(key) == 0 Then Put(key, self, lease) Else Range(key). The token is
//              the header revision of the winning txn (the revision of the granting put). On a lost
//              compare the granted lease is revoked and kAlreadyExists names the holder — unless
//              the key's value is this node: then, as etcd's election recipe re-uses the key its
//              own lease owns, the key's lease is renewed (keepalive, then a range read that the
//              key still has that lease and create_revision) and the grant keeps the key's token,
//              its validity from the keepalive's send time, its ttl capped at the key's lease TTL
//              (kAborted if the key went meanwhile). This also lets a restarted process of the
//              same node id take back its unexpired lease.
//   KeepAlive  POST /v3/lease/keepalive {ID}; a reply without TTL or with TTL <= 0 is a lost lease
//              (kFailedPrecondition). Then /v3/kv/range on the key: its create_revision must still
//              be the token (else kFailedPrecondition: the key was deleted or re-created).
//   Revoke     POST /v3/lease/revoke {ID}: etcd deletes the key in the same step.
//   Read       POST /v3/kv/range {key}: holder and create_revision, kNotFound when absent.
//   WaitReleased  a streaming POST /v3/watch on the key from the revision after a range read;
//              returns as soon as a DELETE event arrives (or the key is already absent).
//
// TTL rounding: etcd's lease TTL is whole seconds. The server-side TTL is ceil(ttl) and at least
// 1 s — never less than the requested ttl, so it stays the lower bound the LeaseService contract
// requires. Client-side validity still uses the requested ttl from the send time of the grant
// (LeaseValidUntil(t_send, ttl, drift_ppm_max, margin)); a renewal's validity starts at the send
// time of the keepalive. A sub-second ttl is therefore safe but frees the name only after ~1 s
// (plus etcd's own minimum, ceil(1.5 x election timeout), which etcd applies silently).
// etcd extends every lease by its election timeout on a raft leader change: expiry may come late,
// never early.
//
// Errors: every endpoint failing (connect refused, timeout, HTTP 5xx) -> kUnavailable naming the
// last failure; an answer that is not the JSON etcd sends (garbage, missing fields) ->
// kUnavailable "etcd answered malformed JSON ..." (the next endpoint is tried first);
// KeepAlive/Revoke of a grant this service does not hold -> kFailedPrecondition.
// An endpoint that answered is tried first next time (sticky), the others in order after it.
//
// Threading: the HTTP requests run on one worker thread (curl_multi, so a streaming watch does not
// hold up keepalives); each call's result is handed back to env's loop, where the awaiting
// coroutine resumes. Node code never blocks. Destroying a coroutine that awaits a call (a crash)
// abandons the request; the service must outlive every coroutine awaiting it, and env must
// outlive the service. Single-threaded use from env's loop.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/ids.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/cancel.h"
#include "faultline/env/env.h"
#include "faultline/lease/lease_service.h"

namespace faultline::adapters {

struct EtcdLeaseLimits {
  static constexpr size_t kEndpointsMax = 16;
  static constexpr size_t kEndpointLengthMax = 256;
  static constexpr size_t kKeyPrefixLengthMax = 256;
  static constexpr size_t kNameLengthMax = 512;
  static constexpr Duration kTimeoutMin = Duration::Millis(1);
  static constexpr Duration kTimeoutMax = Duration::Seconds(60);
  static constexpr int64_t kDriftPpmMax = 100'000;
  static constexpr Duration kMarginMax = Duration::Seconds(10);
  // A reply body larger than this is malformed (a range of one key is a few hundred bytes).
  static constexpr size_t kReplyBytesMax = 1 << 20;
};

struct EtcdLeaseOptions {
  // Client URLs, "http://HOST:PORT" (no path), tried in order; 1..kEndpointsMax.
  std::vector<std::string> endpoints;
  // One HTTP request, connection included, on one endpoint.
  Duration request_timeout = Duration::Seconds(1);
  Duration connect_timeout = Duration::Millis(250);
  // ρ and margin of LeaseValidUntil (lease_service.h).
  int64_t drift_ppm_max = 1000;
  Duration margin = Duration::Millis(5);
  // Prepended to every lease name to form the etcd key.
  std::string key_prefix = "/faultline/lease/";
  // Hands a callback from the worker thread to env's loop (must be thread-safe). Unset: env must
  // be a runtime::RealEnv, whose PostFromAnyThread is used; Open() fails otherwise.
  std::function<void(std::function<void()>)> post_to_loop;

  // kInvalidArgument naming the bound that is violated.
  Status Validate() const;
};

class EtcdLeaseService final : public lease::LeaseService {
 public:
  static Result<std::unique_ptr<EtcdLeaseService>> Open(Env& env, NodeId self,
                                                        EtcdLeaseOptions options);
  ~EtcdLeaseService() override;
  EtcdLeaseService(const EtcdLeaseService&) = delete;
  EtcdLeaseService& operator=(const EtcdLeaseService&) = delete;

  Task<Result<lease::LeaseGrant>> Acquire(std::string name, Duration ttl) override;
  Task<Result<lease::LeaseGrant>> KeepAlive(lease::LeaseGrant grant) override;
  Task<Status> Revoke(lease::LeaseGrant grant) override;
  Task<Result<lease::LeaseInfo>> Read(std::string name) override;
  Task<Status> WaitReleased(std::string name, Duration max, CancelToken cancel) override;

  // The etcd lease id behind a grant this service holds, or 0.
  int64_t LeaseIdOf(const lease::LeaseGrant& grant) const;
  const EtcdLeaseOptions& options() const { return options_; }

  struct Stats {
    uint64_t requests = 0;
    uint64_t endpoint_failures = 0;  // one endpoint failed, the next was tried
    uint64_t malformed_replies = 0;
    uint64_t watch_compactions = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  class Worker;
  struct Held {
    int64_t lease_id = 0;
    FencingToken token;
  };
  EtcdLeaseService(Env& env, NodeId self, EtcdLeaseOptions options);

  Env& env_;
  NodeId self_;
  EtcdLeaseOptions options_;
  std::unique_ptr<Worker> worker_;
  // name -> the lease held on it by this service.
  std::map<std::string, Held> held_;
  size_t preferred_endpoint_ = 0;
  Stats stats_;

  friend class EtcdLeaseServiceInternals;
};

}  // namespace faultline::adapters
