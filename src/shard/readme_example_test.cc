// The README's "Sharding your own data" example, compiled and run as a test so it can never go
// stale. The text between the markers is the README snippet; tests/readme_snippets_test.sh checks
// the README shows this code verbatim.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "faultline/core/random.h"
#include "faultline/sim/disk.h"

// [readme-shard-example]
#include "faultline/shard/directory.h"
#include "faultline/shard/router.h"
#include "faultline/store/log_store.h"

using namespace faultline;
using namespace faultline::shard;

// The shard map lives in a LocalStore (here a LogStore; SqliteStore and PostgresStore work alike).
// Four shards own four equal hash ranges; a hot tenant gets a shard of its own.
Status SetUpShards(LocalStore& store) {
  Directory directory(store);
  FL_ASSIGN_OR_RETURN(ShardMap map,
                      ShardMap::EvenHash({ShardId(0), ShardId(1), ShardId(2), ShardId(3)}));
  FL_RETURN_IF_ERROR(directory.Initialize(map));
  return directory
      .Update([](const ShardMap& m) -> Result<ShardMap> {
        FL_ASSIGN_OR_RETURN(ShardMap with_shard, m.AddShard(ShardId(4)));
        return with_shard.SetOverride("tenant-hot", ShardId(4));
      })
      .status();
}

// A shard server checks the route each request carries against its own map. On EpochNotMatch it
// answers with its map, the client installs it and retries once.
Status Handle(const ShardMap& server_map, ShardId self, std::string_view tenant,
              const Route& route) {
  return server_map.CheckRoute(self, tenant, route).ToStatus();
}

Result<ShardId> Send(Router& router, const ShardMap& server_map, std::string_view tenant,
                     std::string_view key) {
  Route route = router.RouteTenantKey(tenant, key);
  Status status = Handle(server_map, route.shard, tenant, route);
  if (status.code() == StatusCode::kFailedPrecondition) {  // EpochNotMatch: refresh, retry once
    router.OnStaleEpoch(std::make_shared<const ShardMap>(server_map));
    route = router.RouteTenantKey(tenant, key);
    status = Handle(server_map, route.shard, tenant, route);
  }
  FL_RETURN_IF_ERROR(status);
  return route.shard;
}
// [readme-shard-example]

TEST(ShardReadmeExample, HotTenantIsRoutedToItsOwnShardAfterOneRetry) {
  Rng rng(1);
  sim::SimDisk disk(&rng);
  std::unique_ptr<LogStore> store = LogStore::Open(disk).value();
  ASSERT_TRUE(SetUpShards(*store).ok());
  Directory directory(*store);
  const ShardMap current = directory.Load().value();
  ASSERT_EQ(current.version(), 3u);

  // A router that started before the override still holds version 1.
  Router router(std::make_shared<const ShardMap>(
      ShardMap::EvenHash({ShardId(0), ShardId(1), ShardId(2), ShardId(3)}).value()));
  const Route stale = router.RouteTenantKey("tenant-hot", "tenant-hot/orders/17");
  EXPECT_FALSE(stale.by_override);
  EXPECT_EQ(Send(router, current, "tenant-hot", "tenant-hot/orders/17").value(), ShardId(4));
  EXPECT_EQ(router.version(), 3u);
  // Other tenants stay on their hash range.
  EXPECT_EQ(Send(router, current, "tenant-b", "tenant-b/orders/1").value(),
            current.RouteKey("tenant-b/orders/1").shard);
}
