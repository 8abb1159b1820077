// ShardStore's fenced writes and change log, and Reshard's refusal of bad input (nothing written),
// over LogStore and SQLite files.
#include <gtest/gtest.h>

#include "src/shard/reshard_test_util.h"

namespace faultline::shard {
namespace {

using testing::Key;
using testing::ShardEnv;

class ShardStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  ShardEnv env_{GetParam()};
};

TEST_P(ShardStoreTest, AcceptedWritesAreLoggedInOrderWithTheirEpoch) {
  ShardStore& a = env_.a();
  ASSERT_TRUE(a.Write("x", "1", Epoch(1)).ok());
  ASSERT_TRUE(a.Write("y", "2", Epoch(3)).ok());  // a newer epoch than the record's is fine
  ASSERT_TRUE(a.Write("x", std::nullopt, Epoch(1)).ok());
  const std::vector<LogEntry> log = env_.Log(a);
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0].seq, 1u);
  EXPECT_EQ(log[1].seq, 2u);
  EXPECT_EQ(log[2].seq, 3u);
  EXPECT_EQ(log[0].key, "x");
  EXPECT_EQ(log[0].value, "1");
  EXPECT_EQ(log[1].epoch, Epoch(3));
  EXPECT_FALSE(log[2].value.has_value());
  EXPECT_EQ(env_.Rows(a), (std::map<std::string, std::string>{{"y", "2"}}));
}

TEST_P(ShardStoreTest, TruncateLogDropsOnlyEntriesBelowThePosition) {
  ShardStore& a = env_.a();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(a.Write(Key(i), "v", Epoch(1)).ok());
  size_t dropped = 0;
  ASSERT_TRUE(RunInTransaction(a.store(), [&](Transaction& txn) -> Status {
                FL_ASSIGN_OR_RETURN(dropped, a.TruncateLog(txn, 8, 100));
                return Status::Ok();
              }).ok());
  EXPECT_EQ(dropped, 7u);
  const std::vector<LogEntry> left = env_.Log(a);
  ASSERT_EQ(left.size(), 3u);
  EXPECT_EQ(left[0].seq, 8u);
  ASSERT_TRUE(a.Write(Key(0), "w", Epoch(1)).ok());  // numbering goes on from the head
  EXPECT_EQ(env_.Log(a).back().seq, 11u);
}

TEST_P(ShardStoreTest, RefusalsWriteNothingAndSayWhy) {
  ShardStore& a = env_.a();
  ASSERT_TRUE(a.SetRange({"m", "", Epoch(5), RangeState::kServing}).ok());
  ASSERT_TRUE(a.Write("q", "v", Epoch(5)).ok());
  const auto rows = env_.Rows(a);
  const size_t log = env_.Log(a).size();

  Status stale = a.Write("q", "old", Epoch(4));
  EXPECT_EQ(stale.code(), StatusCode::kFencedOut) << stale.ToString();
  EXPECT_NE(stale.message().find("current epoch 5"), std::string_view::npos) << stale.ToString();
  EXPECT_TRUE(IsMoveRetryable(stale));

  ASSERT_TRUE(a.SetRange({"p", "r", Epoch(6), RangeState::kFenced}).ok());
  Status fenced = a.Write("q", "x", Epoch(9));
  EXPECT_EQ(fenced.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(fenced.message().starts_with("RangeFenced:")) << fenced.ToString();
  EXPECT_TRUE(IsMoveRetryable(fenced));
  EXPECT_EQ(a.Read("q", Epoch(6)).value(), "v");   // reads still served while fenced
  EXPECT_TRUE(a.Write("s", "ok", Epoch(5)).ok());  // outside the fenced part
  Status fenced_delete = a.Write("q", std::nullopt, Epoch(9));
  EXPECT_TRUE(fenced_delete.message().starts_with("RangeFenced:"));

  ASSERT_TRUE(a.SetRange({"p", "r", Epoch(6), RangeState::kMovedOut}).ok());
  EXPECT_EQ(a.Write("q", "x", Epoch(6)).code(), StatusCode::kFencedOut);
  EXPECT_EQ(a.Read("q", Epoch(6)).status().code(), StatusCode::kFencedOut);

  ASSERT_TRUE(a.SetRange({"p", "r", Epoch(6), RangeState::kIncoming}).ok());
  Status closed = a.Write("q", "x", Epoch(6));
  EXPECT_TRUE(closed.message().starts_with("RangeNotOpen:")) << closed.ToString();

  ShardStore& b = env_.b();  // owns nothing
  Status foreign = b.Write("q", "x", Epoch(6));
  EXPECT_EQ(foreign.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(foreign.message().starts_with("KeyNotInShard:"));
  EXPECT_FALSE(IsMoveRetryable(foreign));

  auto expected = rows;
  expected["s"] = "ok";
  EXPECT_EQ(env_.Rows(a), expected);
  EXPECT_EQ(env_.Log(a).size(), log + 1);
}

TEST_P(ShardStoreTest, SetRangeSplitsAndTrimsNeighbours) {
  ShardStore& a = env_.a();
  ASSERT_TRUE(a.SetRange({"c", "f", Epoch(2), RangeState::kFenced}).ok());
  ASSERT_TRUE(a.SetRange({"e", "h", Epoch(3), RangeState::kIncoming}).ok());
  const std::vector<OwnedRange> ranges = a.Ranges().value();
  const std::vector<OwnedRange> want = {
      {"", "c", Epoch(1), RangeState::kServing},
      {"c", "e", Epoch(2), RangeState::kFenced},
      {"e", "h", Epoch(3), RangeState::kIncoming},
      {"h", "", Epoch(1), RangeState::kServing},
  };
  EXPECT_EQ(ranges, want);
  EXPECT_EQ(a.SetRange({"z", "a", Epoch(1), RangeState::kServing}).status().code(),
            StatusCode::kInvalidArgument);
}

// --- Reshard bad input: refused with a Status before anything is written.

class ReshardBadInput : public ShardStoreTest {
 protected:
  void SetUp() override {
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(env_.Put(Key(i), "v").ok());
  }
  Status StartWith(ReshardSpec spec, ReshardOptions options = {}) {
    const auto a = env_.Rows(env_.a());
    const auto b_ranges = env_.b().Ranges().value();
    const Result<ShardMap> map = Directory(env_.directory_store()).Load();
    auto r = Reshard::Start(env_.directory_store(), env_.resolver(), std::move(spec), options);
    if (!r.ok()) {
      EXPECT_EQ(env_.Rows(env_.a()), a);
      EXPECT_EQ(env_.b().Ranges().value(), b_ranges);
      EXPECT_TRUE(env_.Rows(env_.b()).empty());
      const Result<ShardMap> after = Directory(env_.directory_store()).Load();
      EXPECT_EQ(after.status(), map.status());
      if (map.ok() && after.ok()) {
        EXPECT_EQ(*after, *map);
      }
      EXPECT_EQ(Reshard::Resume(env_.directory_store(), env_.resolver(), "m").status().code(),
                StatusCode::kNotFound);
    }
    return r.status();
  }
};

TEST_P(ReshardBadInput, SplitKeyOutsideTheRangeOrAtItsBegin) {
  ASSERT_TRUE(env_.Put("k", "v").ok());
  const ShardMap split = env_.Map().Split(RangeId(1), "m").value();
  ASSERT_TRUE(Directory(env_.directory_store()).CompareAndSwap(2, split).ok());
  // Range 1 is now ["", "m").
  EXPECT_EQ(StartWith({"m", RangeId(1), std::string("z"), ShardId(2)}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(StartWith({"m", RangeId(1), std::string("m"), ShardId(2)}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(StartWith({"m", RangeId(1), std::string(""), ShardId(2)}).code(),
            StatusCode::kInvalidArgument);
}

TEST_P(ReshardBadInput, UnknownShardRangeOrSameShard) {
  EXPECT_EQ(StartWith({"m", RangeId(1), std::nullopt, ShardId(9)}).code(), StatusCode::kNotFound);
  EXPECT_EQ(StartWith({"m", RangeId(77), std::nullopt, ShardId(2)}).code(), StatusCode::kNotFound);
  EXPECT_EQ(StartWith({"m", RangeId(1), std::nullopt, ShardId(1)}).code(),
            StatusCode::kFailedPrecondition);
  // Registered in the map but without a store.
  ASSERT_TRUE(Directory(env_.directory_store())
                  .Update([](const ShardMap& m) { return m.AddShard(ShardId(3)); })
                  .ok());
  EXPECT_EQ(StartWith({"m", RangeId(1), std::nullopt, ShardId(3)}).code(), StatusCode::kNotFound);
}

TEST_P(ReshardBadInput, StoresThatDisagreeWithTheMap) {
  ASSERT_TRUE(env_.b().SetRange({"k000005", "k000006", Epoch(1), RangeState::kServing}).ok());
  EXPECT_EQ(StartWith({"m", RangeId(1), std::nullopt, ShardId(2)}).code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(env_.b().SetRange({"k000005", "k000006", Epoch(1), RangeState::kMovedOut}).ok());
  ASSERT_TRUE(env_.a().SetRange({"a", "b", Epoch(1), RangeState::kFenced}).ok());
  EXPECT_EQ(StartWith({"m", RangeId(1), std::nullopt, ShardId(2)}).code(),
            StatusCode::kFailedPrecondition);
}

TEST_P(ReshardBadInput, MapsWithGapsOverlapsOrHashModeAndBadDirectories) {
  // A map with a gap or an overlap cannot be built, so it can never reach the directory.
  auto make = [](std::vector<ShardRange> ranges) {
    return ShardMap::Create(KeyMode::kRange, 1, {ShardId(1), ShardId(2)}, std::move(ranges), {}, 3)
        .status()
        .code();
  };
  EXPECT_EQ(make({{RangeId(1), Epoch(1), ShardId(1), "", "m"},
                  {RangeId(2), Epoch(1), ShardId(2), "n", ""}}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(make({{RangeId(1), Epoch(1), ShardId(1), "", "n"},
                  {RangeId(2), Epoch(1), ShardId(2), "m", ""}}),
            StatusCode::kInvalidArgument);
  // A directory whose stored map is damaged: kDataLoss, not a guess.
  ASSERT_TRUE(RunInTransaction(env_.directory_store(), [](Transaction& txn) {
                return txn.Put("faultline/shard/map", "garbage");
              }).ok());
  EXPECT_EQ(StartWith({"m", RangeId(1), std::nullopt, ShardId(2)}).code(), StatusCode::kDataLoss);
  // An uninitialised directory.
  ASSERT_TRUE(RunInTransaction(env_.directory_store(), [](Transaction& txn) {
                return txn.Delete("faultline/shard/map").status();
              }).ok());
  EXPECT_EQ(Reshard::Start(env_.directory_store(), env_.resolver(),
                           {"m", RangeId(1), std::nullopt, ShardId(2)})
                .status()
                .code(),
            StatusCode::kNotFound);
  // Hash mode.
  ASSERT_TRUE(Directory(env_.directory_store())
                  .Initialize(ShardMap::EvenHash({ShardId(1), ShardId(2)}).value())
                  .ok());
  EXPECT_EQ(Reshard::Start(env_.directory_store(), env_.resolver(),
                           {"m", RangeId(1), std::nullopt, ShardId(2)})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST_P(ReshardBadInput, BadNamesOptionsAndDuplicates) {
  EXPECT_EQ(StartWith({"", RangeId(1), std::nullopt, ShardId(2)}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(StartWith({"a/b", RangeId(1), std::nullopt, ShardId(2)}).code(),
            StatusCode::kInvalidArgument);
  ReshardOptions zero;
  zero.copy_batch_rows = 0;
  EXPECT_EQ(StartWith({"m", RangeId(1), std::nullopt, ShardId(2)}, zero).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(StartWith({"m", RangeId(1), std::nullopt, ShardId(2)}).ok());
  EXPECT_EQ(Reshard::Start(env_.directory_store(), env_.resolver(),
                           {"m", RangeId(1), std::nullopt, ShardId(2)})
                .status()
                .code(),
            StatusCode::kAlreadyExists);
}

TEST_P(ReshardBadInput, UnreachableShardStore) {
  ShardResolver down = [&](ShardId id) -> Result<ShardStore*> {
    if (id == ShardId(2)) return UnavailableError("shard 2: connection refused");
    return env_.resolver()(id);
  };
  auto r =
      Reshard::Start(env_.directory_store(), down, {"m", RangeId(1), std::nullopt, ShardId(2)});
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(Reshard::Resume(env_.directory_store(), env_.resolver(), "m").status().code(),
            StatusCode::kNotFound);
}

std::string Name(const ::testing::TestParamInfo<std::string>& p) { return p.param; }
INSTANTIATE_TEST_SUITE_P(Stores, ShardStoreTest, ::testing::Values("log", "sqlite"), Name);
INSTANTIATE_TEST_SUITE_P(Stores, ReshardBadInput, ::testing::Values("log", "sqlite"), Name);

}  // namespace
}  // namespace faultline::shard
