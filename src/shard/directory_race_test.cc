// Directory updates racing on two threads over SqliteStore (thread-safe, a real file): every
// Update either installs the next version or fails with a lost-race error, and no successful
// update is lost (each winner's shard is in the final map; the final version counts the winners).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "faultline/adapters/sqlite_store.h"
#include "faultline/shard/directory.h"

namespace faultline::shard {
namespace {

TEST(DirectoryRace, TwoThreadsNeverBothWinAndNoUpdateIsLost) {
  char pattern[] = "/tmp/flshard-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  {
    SqliteStoreOptions options;
    options.path = dir + "/store.db";
    options.synchronous = SqliteSynchronous::kNormal;
    std::unique_ptr<SqliteStore> store = SqliteStore::Open(options).value();
    Directory directory(*store);
    ASSERT_TRUE(directory.Initialize(ShardMap::Single(KeyMode::kRange, ShardId(0))).ok());

    std::mutex mu;
    std::set<uint32_t> won;
    std::set<uint64_t> versions;
    int lost = 0;
    std::atomic<int> ready{0};
    auto worker = [&](uint32_t thread) {
      ready.fetch_add(1);
      while (ready.load() < 2) std::this_thread::yield();
      // 40 updates each, continuing (up to 400) until a race was actually lost, so a descheduled
      // thread on a loaded machine does not leave the check vacuous.
      for (uint32_t i = 0; i < 400; ++i) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (i >= 40 && lost > 0) break;
        }
        const ShardId mine(1000 * (thread + 1) + i);
        // The pause between Update's load and its compare-and-set is where the other thread
        // commits; without it the two threads rarely overlap.
        Result<ShardMap> r = directory.Update([&](const ShardMap& m) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          return m.AddShard(mine);
        });
        std::lock_guard<std::mutex> lock(mu);
        if (r.ok()) {
          won.insert(mine.value());
          EXPECT_TRUE(versions.insert(r.value().version()).second) << "two winners of a version";
        } else {
          EXPECT_TRUE(r.status().code() == StatusCode::kFailedPrecondition ||
                      r.status().code() == StatusCode::kAborted)
              << r.status().ToString();
          ++lost;
        }
      }
    };
    std::thread a(worker, 0), b(worker, 1);
    a.join();
    b.join();
    const ShardMap final_map = directory.Load().value();
    std::printf("updates won %zu, lost %d\n", won.size(), lost);
    EXPECT_GT(lost, 0) << "the threads never raced: the test checked nothing";
    EXPECT_EQ(final_map.version(), 1 + won.size());
    std::set<uint32_t> present;
    for (ShardId s : final_map.shards()) present.insert(s.value());
    present.erase(0);
    EXPECT_EQ(present, won);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace faultline::shard
