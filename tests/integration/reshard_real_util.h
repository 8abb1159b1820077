// Shared pieces of the live-resharding tests on real databases (tests/integration/reshard_*): a
// directory store and two shard stores on three SQLite files, or on PostgreSQL (directory and shard
// 1 in the test server's database, shard 2 in a second database created on the same server), the
// writer threads whose acknowledged writes are checked afterwards, and the final checks.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "faultline/shard/reshard.h"
#include "tests/integration/idempotency_real_util.h"

namespace faultline::testing {

// The URI and table of each of the three stores; shard 1 = "a", shard 2 = "b".
struct ReshardDbs {
  std::string kind;
  std::string dir_uri, a_uri, b_uri;
  std::string dir_table, a_table, b_table;
  std::string created_db;  // PostgreSQL: the second database (dropped by DropCreated)
  std::shared_ptr<TempDir> dir;
};
Result<ReshardDbs> MakeReshardDbs(std::string_view kind);
// Drops the PostgreSQL database MakeReshardDbs created (nothing for SQLite).
void DropCreated(const ReshardDbs& dbs);
// `uri` (a postgresql:// URI) naming database `dbname` instead.
std::string WithDbname(const std::string& uri, const std::string& dbname);

// The three stores opened, shard stores over them, and the resolver (1 -> a, 2 -> b).
struct ReshardStores {
  std::unique_ptr<LocalStore> dir, a, b;
  std::unique_ptr<shard::ShardStore> sa, sb;
  shard::ShardResolver resolver() const;
};
Result<ReshardStores> OpenReshardStores(const ReshardDbs& dbs, uint32_t connections_max);
// Directory: one range on shard 1 (shards 1 and 2 registered); shard 1 serves everything; then
// `rows` rows "k%08d" -> "init" written through shard 1 in batches.
Status InitReshard(ReshardStores& stores, uint64_t rows);
std::string RowKey(uint64_t i);

// K threads writing through ShardClient (buffer window `window`) until Stop(): thread t overwrites
// the keys i = t (mod K) of [0, rows) in a pseudo-random order with "t-<seq>", remembering the
// last acknowledged value of each key. Every error is recorded.
class Writers {
 public:
  Writers(ReshardStores& stores, int threads, uint64_t rows, Duration window);
  ~Writers();
  void Start();
  void Stop();
  uint64_t acknowledged() const { return acked_.load(); }
  const std::vector<std::string>& errors() const { return errors_; }
  // Every write's wait at a fence (ns), sorted.
  std::vector<int64_t> waits() const;
  // key -> last acknowledged value, over all threads.
  std::map<std::string, std::string> Expected() const;

 private:
  void Loop(int t);
  ReshardStores* stores_;
  int threads_;
  uint64_t rows_;
  Duration window_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> acked_{0};
  std::vector<std::thread> running_;
  std::vector<std::map<std::string, std::string>> last_;
  std::vector<std::vector<int64_t>> waits_;
  std::vector<std::string> errors_;
  std::mutex mu_;
};

// After a move of [begin, "") to shard 2: every expected key reads back its value through the
// final map, and every row lives exactly once where the map says (no key of the moved range left on
// shard 1 once `completed`, none outside it on shard 2). The error names the first problem.
Status CheckNothingLostOrDuplicated(ReshardStores& stores, const std::string& begin,
                                    const std::map<std::string, std::string>& expected,
                                    uint64_t rows, bool completed);
// No change-log entry of shard 1 at or above `fence_seq` lies in [begin, ""): the source accepted
// no write to the moved range after the fence.
Status CheckNoWriteAfterFence(ReshardStores& stores, const std::string& begin, uint64_t fence_seq);

}  // namespace faultline::testing
