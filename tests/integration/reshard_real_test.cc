// Live resharding on real databases: between two SQLite files, and between two PostgreSQL
// databases on one server. Writer threads keep writing through ShardClient while the range above a
// split key moves from shard 1 to shard 2; the mover runs in this process, or as a child process
// SIGKILLed mid-copy and twice mid-cutover and resumed by new processes. Afterwards: no writer saw
// an error, every acknowledged write reads back from the shard the final map names (0 lost), every
// row lives on exactly one owner (0 duplicated), the source refuses writes to the moved range,
// and its change log holds no write to the range at or after the fence.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "tests/integration/reshard_real_util.h"

namespace faultline::testing {
namespace {

using shard::Reshard;
using shard::ReshardPhase;

class ReshardReal : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    Result<ReshardDbs> dbs = MakeReshardDbs(GetParam());
    ASSERT_TRUE(dbs.ok()) << dbs.status().ToString();
    dbs_ = std::move(dbs).value();
    Result<ReshardStores> stores = OpenReshardStores(dbs_, 8);
    ASSERT_TRUE(stores.ok()) << stores.status().ToString();
    stores_ = std::move(stores).value();
    ASSERT_TRUE(InitReshard(stores_, kRows).ok());
  }
  void TearDown() override {
    stores_ = ReshardStores{};
    DropCreated(dbs_);
  }

  void ExpectClean(Writers& writers, uint64_t fence_seq) {
    EXPECT_TRUE(writers.errors().empty()) << writers.errors().front();
    EXPECT_GT(writers.acknowledged(), 100u);
    const std::vector<int64_t> waits = writers.waits();
    auto pct = [&](double p) {
      return waits.empty()
                 ? 0.0
                 : static_cast<double>(
                       waits[std::min(waits.size() - 1, static_cast<size_t>(p * waits.size()))]) /
                       1e6;
    };
    std::printf("%s: %llu writes acknowledged; fence wait p50 %.3f ms p99 %.3f ms max %.3f ms\n",
                GetParam().c_str(), static_cast<unsigned long long>(writers.acknowledged()),
                pct(0.5), pct(0.99), waits.empty() ? 0.0 : static_cast<double>(waits.back()) / 1e6);
    const Status lost = CheckNothingLostOrDuplicated(stores_, kSplit, writers.Expected(), kRows,
                                                     /*completed=*/true);
    EXPECT_TRUE(lost.ok()) << lost.ToString();
    const Status late = CheckNoWriteAfterFence(stores_, kSplit, fence_seq);
    EXPECT_TRUE(late.ok()) << late.ToString();
    // A direct write to the source's moved range, old epoch or new: refused with kFencedOut.
    for (Epoch e : {Epoch(1), Epoch(1000)}) {
      const Status s = stores_.sa->Write(RowKey(kRows - 1), "direct", e);
      EXPECT_EQ(s.code(), StatusCode::kFencedOut) << s.ToString();
    }
  }

  static constexpr uint64_t kRows = 20000;
  const std::string kSplit = RowKey(kRows / 2);
  ReshardDbs dbs_;
  ReshardStores stores_;
};

TEST_P(ReshardReal, LiveSplitWithFourWritersLosesAndDuplicatesNothing) {
  Writers writers(stores_, 4, kRows, Duration::Seconds(10));
  writers.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  shard::ReshardOptions options;
  options.copy_batch_rows = 2000;
  auto mover = Reshard::Start(*stores_.dir, stores_.resolver(),
                              {"live", shard::RangeId(1), kSplit, shard::ShardId(2)}, options);
  ASSERT_TRUE(mover.ok()) << mover.status().ToString();
  // Stepped, with the source held fenced for 100 ms before the final catch-up, so writers do meet
  // the fence (the cutover alone is too short for them to be sure to).
  int conflicts = 0;
  while ((*mover)->phase() != ReshardPhase::kSwitched) {
    const Result<ReshardPhase> step = (*mover)->Step();
    // kAborted: the step's transaction lost to the writers past the store's own retries (Step
    // failed here on PostgreSQL under load, its status unprinted then); the step is resumable, so
    // it is taken again, a bounded number of times. Any other status fails, printed.
    if (!step.ok() && step.status().code() == StatusCode::kAborted && ++conflicts <= 50) continue;
    ASSERT_TRUE(step.ok()) << step.status().ToString();
    if ((*mover)->phase() == ReshardPhase::kFinalCatchUp) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // writes land on shard 2 now
  ASSERT_TRUE((*mover)->Complete().ok());
  writers.Stop();
  ExpectClean(writers, (*mover)->state().fence_seq);
  ASSERT_FALSE(writers.waits().empty());
  EXPECT_GE(writers.waits().back(), 50'000'000) << "no writer met the fence: nothing was tested";
}

TEST_P(ReshardReal, MoverKilledMidCopyAndMidCutoverIsResumedByNewProcesses) {
  Writers writers(stores_, 4, kRows, Duration::Seconds(30));
  writers.Start();
  auto spawn = [&](std::vector<std::string> tail) {
    std::vector<std::string> args = {dbs_.dir_uri, dbs_.dir_table, dbs_.a_uri, dbs_.a_table,
                                     dbs_.b_uri,   dbs_.b_table,   "killed"};
    args.insert(args.end(), tail.begin(), tail.end());
    Result<std::unique_ptr<Worker>> w = Worker::Spawn(args);
    FL_ASSERT_MSG(w.ok(), w.status().ToString().c_str());
    return std::move(w).value();
  };
  auto kill = [](Worker& w) {
    w.Signal(SIGKILL);
    Result<int> status = w.Wait();
    ASSERT_TRUE(status.ok() && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
  };
  auto read_until = [](Worker& w, const std::string& want, int count) {
    for (int seen = 0;;) {
      Result<std::string> line = w.ReadLine();
      ASSERT_TRUE(line.ok()) << line.status().ToString();
      ASSERT_TRUE(line->rfind("error", 0) != 0) << *line;
      if (*line == want && ++seen == count) return;
    }
  };
  // 1. Killed at a random point of the copy (it keeps copying after its 5th batch line).
  std::unique_ptr<Worker> first = spawn({"start", kSplit, "500"});
  read_until(*first, "phase copy", 5);
  kill(*first);
  auto probe = Reshard::Resume(*stores_.dir, stores_.resolver(), "killed");
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  EXPECT_EQ((*probe)->phase(), ReshardPhase::kCopy) << "the kill missed the copy";
  // 2. Killed with the source fenced, before the final catch-up.
  std::unique_ptr<Worker> second = spawn({"resume", "-", "500", "final-catch-up"});
  read_until(*second, "paused final-catch-up", 1);
  const Status fenced = stores_.sa->Write(RowKey(kRows - 1), "direct", Epoch(1));
  EXPECT_TRUE(fenced.message().starts_with("RangeFenced:")) << fenced.ToString();
  kill(*second);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // writers wait at the fence
  // 3. Killed again after the final catch-up, before the switch.
  std::unique_ptr<Worker> third = spawn({"resume", "-", "500", "switch"});
  read_until(*third, "paused switch", 1);
  kill(*third);
  // 4. A last process finishes the switch.
  std::unique_ptr<Worker> last = spawn({"resume", "-", "500"});
  for (;;) {
    Result<std::string> line = last->ReadLine();
    ASSERT_TRUE(line.ok()) << line.status().ToString();
    ASSERT_TRUE(line->rfind("error", 0) != 0) << *line;
    if (line->rfind("switched", 0) == 0) break;
  }
  Result<int> status = last->Wait();
  ASSERT_TRUE(status.ok() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0);

  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto mover = Reshard::Resume(*stores_.dir, stores_.resolver(), "killed");
  ASSERT_TRUE(mover.ok()) << mover.status().ToString();
  ASSERT_EQ((*mover)->phase(), ReshardPhase::kSwitched);
  ASSERT_TRUE((*mover)->Complete().ok());
  writers.Stop();
  ExpectClean(writers, (*mover)->state().fence_seq);
}

std::string Name(const ::testing::TestParamInfo<std::string>& p) { return p.param; }
INSTANTIATE_TEST_SUITE_P(Stores, ReshardReal, ::testing::Values("sqlite", "postgres"), Name);

}  // namespace
}  // namespace faultline::testing
