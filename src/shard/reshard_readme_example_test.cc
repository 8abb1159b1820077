// The README's "Live resharding" example, compiled and run as a test so it can never go stale. The
// text between the markers is the README snippet;
// tests/readme_snippets_test.sh checks the README shows this code verbatim.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "faultline/core/random.h"
#include "faultline/sim/disk.h"
#include "faultline/store/log_store.h"

// [readme-reshard-example]
#include "faultline/shard/reshard.h"

using namespace faultline;
using namespace faultline::shard;

// Moves the keys from "m" up off shard 1 onto shard 2 while clients keep writing. `directory`
// holds the map (and the move's record); each shard's rows live in its own store.
Status SplitOff(LocalStore& directory, ShardStore& shard1, ShardStore& shard2) {
  ShardResolver shards = [&](ShardId id) -> Result<ShardStore*> {
    if (id == ShardId(1)) return &shard1;
    if (id == ShardId(2)) return &shard2;
    return NotFoundError("no such shard");
  };
  FL_ASSIGN_OR_RETURN(ShardMap map, Directory(directory).Load());
  const RangeId range = map.ranges()[map.RangeIndexOf("m")].id;
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Reshard> move,
                      Reshard::Start(directory, shards, {"split-m", range, "m", ShardId(2)}));
  // Copy, catch up, verify, fence shard 1, final catch-up, switch the map, open shard 2. Each
  // Step is one persisted batch: after a crash, Reshard::Resume(directory, shards, "split-m")
  // continues where the dead mover stopped.
  FL_RETURN_IF_ERROR(move->Run());
  // Still reversible here (move->Reverse()). Complete drops the moved rows from shard 1.
  return move->Complete();
}
// [readme-reshard-example]

namespace {

TEST(ReshardReadmeExample, SplitOffMovesTheUpperKeysAndClientsFollow) {
  Rng rng(3);
  sim::SimDisk d0(&rng), d1(&rng), d2(&rng);
  std::unique_ptr<LogStore> dir = LogStore::Open(d0).value();
  std::unique_ptr<LogStore> s1 = LogStore::Open(d1).value();
  std::unique_ptr<LogStore> s2 = LogStore::Open(d2).value();
  ShardStore shard1(*s1), shard2(*s2);
  ASSERT_TRUE(
      Directory(*dir)
          .Initialize(ShardMap::Single(KeyMode::kRange, ShardId(1)).AddShard(ShardId(2)).value())
          .ok());
  ASSERT_TRUE(shard1.SetRange({"", "", Epoch(1), RangeState::kServing}).ok());
  ASSERT_TRUE(shard1.Write("apple", "1", Epoch(1)).ok());
  ASSERT_TRUE(shard1.Write("pear", "2", Epoch(1)).ok());

  ASSERT_TRUE(SplitOff(*dir, shard1, shard2).ok());

  const ShardMap map = Directory(*dir).Load().value();
  EXPECT_EQ(map.RouteKey("apple").shard, ShardId(1));
  EXPECT_EQ(map.RouteKey("pear").shard, ShardId(2));
  EXPECT_EQ(shard2.Read("pear", map.RouteKey("pear").epoch).value(), "2");
  // A client still routing "pear" to shard 1 with the old epoch is told to refresh.
  EXPECT_EQ(shard1.Write("pear", "3", Epoch(1)).code(), StatusCode::kFencedOut);
  EXPECT_TRUE(shard1.Write("apple", "3", Epoch(1)).ok());
}

}  // namespace
