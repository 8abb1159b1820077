// The README's "Leader election on etcd" example, compiled and run against a real etcd; the
// `// [readme-etcd-election]` region must appear verbatim in README.md
// (tests/readme_snippets_test.sh).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "faultline/adapters/etcd_lease.h"
#include "faultline/lease/leader_elector.h"
#include "faultline/runtime/real_env.h"
#include "tests/lease/etcd_test_util.h"
#include "tests/lease/lease_worlds.h"

namespace faultline {
namespace {

// [readme-etcd-election]
struct EtcdLeader {
  std::unique_ptr<adapters::EtcdLeaseService> service;
  std::unique_ptr<lease::LeaderElector> elector;
};

// Campaigns for "leader" through etcd on this node's RealEnv. Keep the result alive until the
// campaign's coroutine is gone (cancel, run the loop, or RealEnv::DestroySpawned()).
Result<EtcdLeader> StartEtcdLeader(runtime::RealEnv& env, std::vector<std::string> endpoints,
                                   CancelToken cancel) {
  adapters::EtcdLeaseOptions options;
  options.endpoints = std::move(endpoints);         // {"http://etcd-1.internal:2379", ...}
  options.request_timeout = Duration::Millis(500);  // one HTTP request on one endpoint
  options.key_prefix = "/myservice/lease/";         // etcd key = prefix + lease name
  EtcdLeader leader;
  FL_ASSIGN_OR_RETURN(leader.service,
                      adapters::EtcdLeaseService::Open(env, env.self(), std::move(options)));
  lease::ElectorOptions elector_options;
  elector_options.name = "leader";
  elector_options.ttl = Duration::Seconds(2);
  FL_ASSIGN_OR_RETURN(leader.elector,
                      lease::LeaderElector::Create(env, *leader.service, elector_options));
  env.Spawn(leader.elector->Campaign(std::move(cancel)));
  return leader;
}
// Before every side effect:
//   if (leader.elector->CanAct()) store.Put(key, value, leader.elector->token());
// [readme-etcd-election]

TEST(EtcdReadmeExampleTest, TheExampleElectsThisNodeWithAnEtcdRevisionAsToken) {
  auto cluster = lease_conformance::SharedEtcdCluster(1);
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  auto env = adapters::etcd_test::OpenEnv(7);
  CancelSource cancel;
  Result<EtcdLeader> leader = StartEtcdLeader(*env, (*cluster)->endpoints(), cancel.token());
  ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  for (int i = 0; i < 3000 && !leader->elector->CanAct(); ++i) env->RunFor(Duration::Millis(1));
  ASSERT_TRUE(leader->elector->CanAct());
  EXPECT_GT(leader->elector->token(), FencingToken());
  // etcd agrees: the key carries this node and the token.
  auto info = adapters::etcd_test::RunOn(*env, leader->service->Read("leader"));
  ASSERT_TRUE(info.has_value() && info->ok());
  EXPECT_EQ(info->value().holder, NodeId(7));
  EXPECT_EQ(info->value().token, leader->elector->token());
  cancel.Cancel();  // steps down: revokes the lease
  for (int i = 0; i < 2000 && leader->elector->state() != lease::LeaderState::kFollower; ++i) {
    env->RunFor(Duration::Millis(1));
  }
  env->RunFor(Duration::Millis(50));
  auto gone = adapters::etcd_test::RunOn(*env, leader->service->Read("leader"));
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->status().code(), StatusCode::kNotFound);
  env->DestroySpawned();
}

}  // namespace
}  // namespace faultline
