// One behavioural contract for every LeaseService (faultline/lease/lease_service.h), run against
// PaxosLease in the simulator and EtcdLeaseService on a real etcd (single node and 3 members).
//
// A test binary provides LeaseWorld factories and instantiates the suite:
//
//   INSTANTIATE_TEST_SUITE_P(Etcd1, LeaseConformanceTest,
//                            ::testing::Values(LeaseConformanceParam{"etcd1", MakeEtcdWorld}),
//                            LeaseConformanceParamName);
//
// Cases: exclusive acquire (the loser's error names the holder), tokens strictly increase across
// holders, renewal keeps the token and moves valid_until, acquire by the holder renews under the
// same token, keepalive after validity passed fails,
// revoke frees the name at once, read (holder, token, kNotFound), TTL bounds, expiry frees the
// name within the service's bound after ttl, and validity is computed from the send time (a slow
// reply shortens it).
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "faultline/core/ids.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/task.h"
#include "faultline/lease/lease_service.h"

namespace faultline::lease_conformance {

// One lease service as seen by clients() >= 2 nodes, each with its own LeaseService client.
class LeaseWorld {
 public:
  virtual ~LeaseWorld() = default;
  virtual size_t clients() const = 0;
  virtual lease::LeaseService& service(size_t i) = 0;
  virtual NodeId id(size_t i) const = 0;
  // Client i's monotonic clock (the one its grants' sent_at / valid_until are on).
  virtual MonoTime Now(size_t i) = 0;
  // Runs `task` on client i's loop until it finishes; false when `limit` passed first.
  virtual bool RunTask(size_t i, Task<void> task, Duration limit) = 0;
  // Lets `d` pass with every loop (and the service) running.
  virtual void Advance(Duration d) = 0;
  // From now on every reply to client i reaches it `extra` later (Duration::Zero(): none).
  virtual void SetReplyDelay(size_t i, Duration extra) = 0;
  // The ttl the cases use, and the longest the service may keep a name taken after the last
  // grant/renewal of a lease of `ttl` was sent (expiry is late, never early).
  virtual Duration Ttl() const = 0;
  virtual Duration ExpiryBound(Duration ttl) const = 0;
  // A reply delay the service still answers through (below its round/request timeouts).
  virtual Duration SlowReply() const = 0;
  // Upper bound on one uncontended call (the limit RunTask gets).
  virtual Duration CallLimit() const = 0;
};

struct LeaseConformanceParam {
  std::string name;
  std::function<Result<std::unique_ptr<LeaseWorld>>()> make;
};
// gtest prints a parameter in the test's description (and ctest's test names): the name, not
// the struct's bytes.
inline void PrintTo(const LeaseConformanceParam& param, std::ostream* os) { *os << param.name; }

std::string LeaseConformanceParamName(
    const ::testing::TestParamInfo<LeaseConformanceParam>& info);

class LeaseConformanceTest : public ::testing::TestWithParam<LeaseConformanceParam> {
 protected:
  void SetUp() override;
  void TearDown() override;

  LeaseWorld& world() { return *world_; }
  // Runs the call on client i and returns its result; a call that does not finish within
  // CallLimit() is reported as kDeadlineExceeded "did not finish".
  Result<lease::LeaseGrant> Acquire(size_t i, const std::string& name, Duration ttl);
  Result<lease::LeaseGrant> KeepAlive(size_t i, const lease::LeaseGrant& grant);
  Status Revoke(size_t i, const lease::LeaseGrant& grant);
  Result<lease::LeaseInfo> Read(size_t i, const std::string& name);

  std::unique_ptr<LeaseWorld> world_;
};

}  // namespace faultline::lease_conformance
