// Reshard step by step over LogStore and SQLite files: each phase's effect, writes interleaved
// between steps (the catch-up and the fence), a mover restarted after every single step, splits,
// Reverse at each stage, Complete, verify catching a divergence, and ShardClient's buffering.
#include <gtest/gtest.h>

#include "faultline/core/random.h"
#include "src/shard/reshard_test_util.h"

namespace faultline::shard {
namespace {

using testing::Key;
using testing::ShardEnv;
using P = ReshardPhase;

class ReshardTest : public ::testing::TestWithParam<std::string> {
 protected:
  ReshardOptions SmallBatches() {
    ReshardOptions o;
    o.copy_batch_rows = 37;
    o.log_batch = 11;
    o.verify_batch = 29;
    o.catch_up_lag_max = 5;
    return o;
  }
  void Fill(int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(env_.Put(Key(i), "v" + std::to_string(i)).ok());
      model_[Key(i)] = "v" + std::to_string(i);
    }
  }
  // A few client writes through the current map (puts and deletes), mirrored in the model.
  void Churn(int n) {
    for (int i = 0; i < n; ++i) {
      const std::string key = Key(static_cast<int>(rng_.Next() % 400));
      if (rng_.Next() % 4 == 0) {
        ASSERT_TRUE(env_.Put(key, std::nullopt).ok());
        model_.erase(key);
      } else {
        const std::string value = "w" + std::to_string(++writes_);
        ASSERT_TRUE(env_.Put(key, value).ok()) << key;
        model_[key] = value;
      }
    }
  }
  // Every key of the model (and no other) readable through the current map.
  void ExpectModel() {
    for (int i = 0; i < 400; ++i) {
      const auto it = model_.find(Key(i));
      const std::optional<std::string> want =
          it == model_.end() ? std::nullopt : std::optional<std::string>(it->second);
      ASSERT_EQ(env_.Get(Key(i)), want) << Key(i);
    }
  }
  std::unique_ptr<Reshard> StartMove(std::optional<std::string> split, ReshardOptions o) {
    auto r = Reshard::Start(env_.directory_store(), env_.resolver(),
                            {"move", RangeId(1), std::move(split), ShardId(2)}, o);
    FL_ASSERT_MSG(r.ok(), r.status().ToString().c_str());
    return std::move(r).value();
  }

  ShardEnv env_{GetParam()};
  Rng rng_{42};
  std::map<std::string, std::string> model_;
  int writes_ = 0;
};

TEST_P(ReshardTest, PhasesInOrderWithWritesBetweenEverySteps) {
  Fill(300);
  std::unique_ptr<Reshard> mover = StartMove(std::nullopt, SmallBatches());
  std::vector<P> seen = {mover->phase()};
  while (mover->phase() != P::kSwitched) {
    const P before = mover->phase();
    if (before < P::kFence) Churn(3);  // clients keep writing until the fence
    if (before == P::kFinalCatchUp || before == P::kSwitch) {
      // The source refuses writes between the fence and the switch: retryable, nothing written.
      const Status s = env_.a().Write(Key(1), "late", Epoch(1));
      EXPECT_TRUE(s.message().starts_with("RangeFenced:")) << s.ToString();
    }
    Result<P> p = mover->Step();
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    if (*p != seen.back()) seen.push_back(*p);
  }
  EXPECT_EQ(seen, (std::vector<P>{P::kCopy, P::kCatchUp, P::kVerify, P::kFence, P::kFinalCatchUp,
                                  P::kSwitch, P::kSwitched}));
  const ShardMap map = env_.Map();
  EXPECT_EQ(map.RouteKey(Key(1)).shard, ShardId(2));
  EXPECT_EQ(map.version(), 3u);
  EXPECT_EQ(mover->state().new_epoch, Epoch(3));
  ExpectModel();
  // The source: stale writers get kFencedOut with the new epoch; no write was accepted after the
  // fence (the log holds nothing at or above the fence head).
  const Status stale = env_.a().Write(Key(1), "stale", Epoch(1));
  EXPECT_EQ(stale.code(), StatusCode::kFencedOut);
  EXPECT_NE(stale.message().find("current epoch 3"), std::string_view::npos);
  EXPECT_TRUE(env_.Log(env_.a(), mover->state().fence_seq).empty());
  Churn(50);  // now on the target
  ExpectModel();
  ASSERT_TRUE(mover->Complete().ok());
  EXPECT_EQ(mover->phase(), P::kComplete);
  EXPECT_TRUE(env_.Rows(env_.a()).empty());
  ExpectModel();
}

TEST_P(ReshardTest, ProgressEventsCountTheRowsEachCopyStepCopied) {
  Fill(300);
  std::unique_ptr<Reshard> mover = StartMove(std::nullopt, SmallBatches());
  struct Progress final : Observer {
    void OnEvent(const Event& e) noexcept override {
      if (e.kind == EventKind::kReshardProgress) steps.push_back({e.a, e.b});
    }
    std::vector<std::pair<int64_t, int64_t>> steps;  // (phase after, rows copied)
  } progress;
  mover->observe().Attach(&progress, "move");
  std::vector<int64_t> copy_rows;  // b of the steps taken in kCopy
  while (mover->phase() != P::kSwitched) {
    const P before = mover->phase();
    ASSERT_TRUE(mover->Step().ok());
    ASSERT_FALSE(progress.steps.empty());
    if (before == P::kCopy) {
      copy_rows.push_back(progress.steps.back().second);
    } else {
      EXPECT_EQ(progress.steps.back().second, 0) << static_cast<int>(before);
    }
  }
  // 300 rows in batches of 37: eight full steps, then the last 4 (which ends the copy).
  std::vector<int64_t> want(8, 37);
  want.push_back(4);
  EXPECT_EQ(copy_rows, want);
}

TEST_P(ReshardTest, AMoverRestartedAfterEveryStepEndsTheSame) {
  Fill(250);
  StartMove(std::nullopt, SmallBatches());
  int restarts = 0;
  for (;;) {
    auto mover = Reshard::Resume(env_.directory_store(), env_.resolver(), "move", SmallBatches());
    ASSERT_TRUE(mover.ok()) << mover.status().ToString();
    if ((*mover)->phase() == P::kSwitched) break;
    if ((*mover)->phase() < P::kFence) Churn(2);
    ASSERT_TRUE((*mover)->Step().ok());
    ++restarts;
  }
  // 250 rows in copy batches of 37 (7 steps) and verify batches of 29 (9), then catch-up, fence,
  // final catch-up and switch: every one of them ran in a freshly resumed mover.
  EXPECT_GE(restarts, 7 + 9 + 4);
  ExpectModel();
  EXPECT_EQ(env_.Rows(env_.b()), model_);
}

TEST_P(ReshardTest, RepeatingAStepsSideEffectsIsHarmless) {
  // A crash after a step's store writes but before its phase record: run the phase action twice.
  Fill(100);
  std::unique_ptr<Reshard> mover = StartMove(std::nullopt, SmallBatches());
  while (mover->phase() != P::kSwitched) {
    const P before = mover->phase();
    auto twin = Reshard::Resume(env_.directory_store(), env_.resolver(), "move", SmallBatches());
    ASSERT_TRUE(mover->Step().ok());
    if (before == P::kFence || before == P::kSwitch) {
      ASSERT_TRUE((*twin)->Step().ok());  // the same phase again, from the old record
      mover = std::move(twin).value();
    }
  }
  ExpectModel();
  EXPECT_EQ(env_.Map().version(), 3u);  // one switch, not two
}

TEST_P(ReshardTest, SplitMovesOnlyTheUpperPart) {
  Fill(200);
  std::unique_ptr<Reshard> mover = StartMove(Key(120), SmallBatches());
  ASSERT_TRUE(mover->Run().ok());
  const ShardMap map = env_.Map();
  ASSERT_EQ(map.ranges().size(), 2u);
  EXPECT_EQ(map.ranges()[0].shard, ShardId(1));
  EXPECT_EQ(map.ranges()[1].begin, Key(120));
  EXPECT_EQ(map.ranges()[1].shard, ShardId(2));
  EXPECT_EQ(env_.Rows(env_.b()).size(), 80u);
  EXPECT_TRUE(env_.a().Write(Key(5), "left stays", Epoch(1)).ok());  // an old-epoch client: fine
  model_[Key(5)] = "left stays";
  Churn(40);
  ASSERT_TRUE(mover->Complete().ok());
  EXPECT_EQ(env_.Rows(env_.a()).rbegin()->first < Key(120), true);
  ExpectModel();
}

TEST_P(ReshardTest, ReverseBeforeTheFenceDropsTheCopy) {
  Fill(150);
  std::unique_ptr<Reshard> mover = StartMove(std::nullopt, SmallBatches());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(mover->Step().ok());
  ASSERT_FALSE(env_.Rows(env_.b()).empty());
  ASSERT_TRUE(mover->Reverse().ok());
  EXPECT_EQ(mover->phase(), P::kReversed);
  EXPECT_TRUE(env_.Rows(env_.b()).empty());
  EXPECT_TRUE(env_.b().Ranges().value().empty());
  EXPECT_EQ(env_.Map().version(), 2u);
  Churn(30);
  ExpectModel();
}

TEST_P(ReshardTest, ReverseAfterTheFenceUnfencesTheSource) {
  Fill(150);
  std::unique_ptr<Reshard> mover = StartMove(std::nullopt, SmallBatches());
  while (mover->phase() != P::kFinalCatchUp) ASSERT_TRUE(mover->Step().ok());
  ASSERT_FALSE(env_.Put(Key(3), "x").ok());  // fenced
  ASSERT_TRUE(mover->Reverse().ok());
  Churn(30);
  ExpectModel();
  EXPECT_EQ(env_.Map().version(), 2u);
}

TEST_P(ReshardTest, ReverseAfterTheSwitchKeepsTheTargetsWrites) {
  Fill(150);
  std::unique_ptr<Reshard> mover = StartMove(Key(50), SmallBatches());
  ASSERT_TRUE(mover->Run().ok());
  Churn(60);                        // accepted by the target
  ASSERT_TRUE(mover->Step().ok());  // one batch of reverse replication; the rest at the fence
  ASSERT_TRUE(mover->Reverse().ok());
  EXPECT_EQ(mover->phase(), P::kReversed);
  const ShardMap map = env_.Map();
  EXPECT_EQ(map.RouteKey(Key(100)).shard, ShardId(1));
  EXPECT_EQ(map.version(), 5u);  // split + move, then move back
  EXPECT_EQ(env_.b().Write(Key(100), "x", map.RouteKey(Key(100)).epoch).code(),
            StatusCode::kFencedOut);
  EXPECT_TRUE(env_.Rows(env_.b()).empty());
  ExpectModel();
  Churn(30);
  ExpectModel();
  EXPECT_EQ(mover->Complete().code(), StatusCode::kFailedPrecondition);
}

TEST_P(ReshardTest, VerifyCatchesADivergentTarget) {
  Fill(100);
  std::unique_ptr<Reshard> mover = StartMove(std::nullopt, SmallBatches());
  while (mover->phase() != P::kVerify) ASSERT_TRUE(mover->Step().ok());
  ASSERT_TRUE(RunInTransaction(env_.b().store(), [&](Transaction& txn) {
                return env_.b().ApplyRow(txn, Key(70), std::string("corrupted"));
              }).ok());
  Status s;
  while (s.ok() && mover->phase() == P::kVerify) s = mover->Step().status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_NE(s.message().find(Key(70)), std::string_view::npos);
  EXPECT_EQ(mover->phase(), P::kVerify);
  EXPECT_EQ(env_.Map().version(), 2u);  // nothing switched
  EXPECT_TRUE(env_.Put(Key(1), "still writable").ok());
}

// The client meets the fence; its pause is when the mover runs (the `sleep` of the client drives
// the mover, so the whole exchange is deterministic).
TEST_P(ReshardTest, ShardClientBuffersWritesAcrossTheCutover) {
  Fill(60);
  std::unique_ptr<Reshard> mover = StartMove(std::nullopt, SmallBatches());
  while (mover->phase() != P::kFinalCatchUp) ASSERT_TRUE(mover->Step().ok());
  struct FakeClock : Clock {
    MonoTime now = MonoTime::FromNanos(0);
    MonoTime Now() override { return now; }
    WallTime WallNow() override { return WallTime::FromNanos(now.nanos()); }
  } clock;
  Directory directory(env_.directory_store());
  int sleeps = 0;
  ShardClient client(directory, env_.resolver(), clock,
                     [&](Duration d) {
                       clock.now += d;
                       ++sleeps;
                       ASSERT_TRUE(mover->Step().ok());
                     },
                     {Duration::Seconds(10), Duration::Millis(1)});
  ASSERT_TRUE(client.Init().ok());
  ASSERT_TRUE(client.Write(Key(7), "through the fence").ok());
  EXPECT_GT(sleeps, 0);
  EXPECT_EQ(client.last_wait(), Duration::Millis(sleeps));
  EXPECT_EQ(client.last_route().shard, ShardId(2));
  EXPECT_EQ(mover->phase(), P::kSwitched);
  EXPECT_EQ(client.Read(Key(7)).value(), "through the fence");

  // A fence that outlasts the buffer window: the write gives up with the retryable status.
  ShardClient impatient(directory, env_.resolver(), clock, [&](Duration d) { clock.now += d; },
                        {Duration::Millis(20), Duration::Millis(1)});
  ASSERT_TRUE(impatient.Init().ok());
  ASSERT_TRUE(env_.b().SetRange({"", "", Epoch(3), RangeState::kFenced}).ok());
  const Status s = impatient.Write(Key(7), "never");
  EXPECT_TRUE(IsMoveRetryable(s)) << s.ToString();
  EXPECT_GE(impatient.last_wait(), Duration::Millis(20));
}

std::string Name(const ::testing::TestParamInfo<std::string>& p) { return p.param; }
INSTANTIATE_TEST_SUITE_P(Stores, ReshardTest, ::testing::Values("log", "sqlite"), Name);

}  // namespace
}  // namespace faultline::shard
