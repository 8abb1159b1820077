// Directory (the map in a LocalStore, compare-and-set updates) and Router (cached map corrected by
// EpochNotMatch in one extra round trip).
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "faultline/core/random.h"
#include "faultline/shard/directory.h"
#include "faultline/shard/router.h"
#include "faultline/sim/disk.h"
#include "faultline/store/log_store.h"

namespace faultline::shard {
namespace {

const ShardId kA(1), kB(2);

struct StoreFixture : ::testing::Test {
  StoreFixture() : rng(7), disk(&rng) { store = LogStore::Open(disk).value(); }
  Rng rng;
  sim::SimDisk disk;
  std::unique_ptr<LogStore> store;
};

using DirectoryTest = StoreFixture;

TEST_F(DirectoryTest, InitializeLoadAndReopen) {
  Directory dir(*store);
  EXPECT_EQ(dir.Load().status().code(), StatusCode::kNotFound);
  const ShardMap m = ShardMap::Single(KeyMode::kRange, kA).AddShard(kB).value();
  ASSERT_TRUE(dir.Initialize(m).ok());
  EXPECT_EQ(dir.Initialize(m).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(dir.Load().value(), m);
  // Durable: a crash and reopen of the store keeps it.
  store.reset();
  disk.Crash();
  store = LogStore::Open(disk).value();
  EXPECT_EQ(Directory(*store).Load().value(), m);
}

// Two updaters read version 2 and both try to install their version 3: exactly one wins, the other
// gets kFailedPrecondition and the stored map is the winner's.
TEST_F(DirectoryTest, ConcurrentUpdatersCannotBothWin) {
  Directory dir(*store);
  ASSERT_TRUE(dir.Initialize(ShardMap::Single(KeyMode::kRange, kA).AddShard(kB).value()).ok());
  const ShardMap seen_by_first = dir.Load().value();
  const ShardMap seen_by_second = dir.Load().value();
  const ShardMap first = seen_by_first.Split(RangeId(1), "m").value();
  const ShardMap second = seen_by_second.Move(RangeId(1), kB).value();
  ASSERT_EQ(first.version(), second.version());
  ASSERT_TRUE(dir.CompareAndSwap(seen_by_first.version(), first).ok());
  const Status lost = dir.CompareAndSwap(seen_by_second.version(), second);
  EXPECT_EQ(lost.code(), StatusCode::kFailedPrecondition) << lost.ToString();
  EXPECT_EQ(dir.Load().value(), first);
  // Update() is load + change + CAS: after the loss, retrying from a fresh load succeeds.
  Result<ShardMap> retried = dir.Update([](const ShardMap& m) { return m.Move(RangeId(1), kB); });
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_EQ(retried.value().version(), 4u);
  EXPECT_EQ(dir.Load().value(), retried.value());
  // A version that does not advance is a caller error.
  EXPECT_EQ(dir.CompareAndSwap(4, retried.value()).code(), StatusCode::kInvalidArgument);
}

TEST_F(DirectoryTest, CorruptStoredMapIsDataLoss) {
  Directory dir(*store);
  ASSERT_TRUE(dir.Initialize(ShardMap::Single(KeyMode::kHash, kA)).ok());
  ASSERT_TRUE(RunInTransaction(*store, [](Transaction& txn) {
                return txn.Put("faultline/shard/map", "not a shard map");
              }).ok());
  EXPECT_EQ(dir.Load().status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(dir.Update([](const ShardMap& m) { return m.AddShard(kB); }).status().code(),
            StatusCode::kDataLoss);
}

// A toy shard server: the map it believes and its id; it checks every request's epoch.
struct Server {
  ShardId id;
  std::shared_ptr<const ShardMap> map;
  int requests = 0;
  EpochCheck Handle(const Route& route) {
    ++requests;
    return map->CheckEpoch(id, route.range, route.epoch);
  }
};

// Sends `key` through the router; on EpochNotMatch installs the server's map and retries.
// Returns the number of attempts it took.
int SendWithRetry(Router& router, std::map<ShardId, Server>& servers, std::string_view key) {
  for (int attempt = 1; attempt <= 5; ++attempt) {
    const Route route = router.RouteKey(key);
    Server& server = servers.at(route.shard);
    const EpochCheck check = server.Handle(route);
    if (check.ok()) return attempt;
    EXPECT_EQ(check.kind, EpochCheck::Kind::kEpochNotMatch);
    EXPECT_TRUE(router.OnStaleEpoch(server.map->Encode()).value());
  }
  return -1;
}

TEST(Router, StaleClientIsCorrectedAfterExactlyOneRetry) {
  // v1: everything on A. v2..v4: B registered, split at "m", ["m", "") moved to B.
  auto v1 = std::make_shared<const ShardMap>(ShardMap::Single(KeyMode::kRange, kA));
  auto v4 = std::make_shared<const ShardMap>(
      v1->AddShard(kB).value().Split(RangeId(1), "m").value().Move(RangeId(2), kB).value());
  std::map<ShardId, Server> servers{{kA, Server{kA, v4}}, {kB, Server{kB, v4}}};

  Router stale(v1);
  EXPECT_EQ(SendWithRetry(stale, servers, "zebra"), 2);  // went to A, corrected, then B
  EXPECT_EQ(servers.at(kA).requests, 1);
  EXPECT_EQ(servers.at(kB).requests, 1);
  EXPECT_EQ(stale.version(), 4u);
  EXPECT_EQ(SendWithRetry(stale, servers, "zoo"), 1);  // now current: no retry

  Router stale2(v1);
  EXPECT_EQ(SendWithRetry(stale2, servers, "apple"), 2);  // right shard, stale epoch (split)

  Router fresh(v4);
  EXPECT_EQ(SendWithRetry(fresh, servers, "apple"), 1);
}

TEST(Router, NeverGoesBackToAnOlderMap) {
  auto v1 = std::make_shared<const ShardMap>(ShardMap::Single(KeyMode::kRange, kA));
  auto v2 = std::make_shared<const ShardMap>(v1->AddShard(kB).value());
  Router router(v2);
  EXPECT_FALSE(router.OnStaleEpoch(v1));
  EXPECT_FALSE(router.OnStaleEpoch(v2));
  EXPECT_EQ(router.version(), 2u);
  std::vector<uint8_t> garbage = {1, 2, 3};
  EXPECT_EQ(router.OnStaleEpoch(garbage).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(router.version(), 2u);
}

TEST_F(DirectoryTest, RouterRefreshesFromTheDirectory) {
  Directory dir(*store);
  const ShardMap v1 = ShardMap::Single(KeyMode::kRange, kA);
  ASSERT_TRUE(dir.Initialize(v1).ok());
  Router router(std::make_shared<const ShardMap>(v1));
  ASSERT_TRUE(dir.Update([](const ShardMap& m) { return m.SetOverride("t1", kA); }).ok());
  ASSERT_TRUE(router.Refresh(dir).ok());
  EXPECT_EQ(router.version(), 2u);
  EXPECT_TRUE(router.RouteTenantKey("t1", "k").by_override);
}

}  // namespace
}  // namespace faultline::shard
