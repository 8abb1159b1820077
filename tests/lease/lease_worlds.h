// LeaseWorld factories for the conformance suite (tests/lease/lease_conformance.h).
#pragma once

#include <memory>

#include "faultline/core/status.h"
#include "faultline/runtime/etcd_cluster.h"
#include "tests/lease/lease_conformance.h"

namespace faultline::lease_conformance {

// PaxosLease in the simulator: three nodes, each an acceptor and a client; ttl 300 ms.
Result<std::unique_ptr<LeaseWorld>> MakePaxosWorld();

// EtcdLeaseService on a real etcd of `members` members (started once per process and shared by
// every world of that size; each world gets a key prefix of its own); two clients, ttl 1 s.
Result<std::unique_ptr<LeaseWorld>> MakeEtcdWorld(size_t members);

// The shared cluster of that size (started on first use), for etcd-only tests.
Result<runtime::EtcdCluster*> SharedEtcdCluster(size_t members);

}  // namespace faultline::lease_conformance
