// Load-based split detection with a ManualClock and a seeded Rng: uniform load yields a balanced
// split key, a single hot key is reported as such (no split), and nothing happens below the QPS
// threshold or before the 10 s recording period.
#include "faultline/shard/load_split.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace faultline::shard {
namespace {

std::string Key(uint64_t i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "k%06llu", static_cast<unsigned long long>(i));
  return buf;
}

// Drives `qps` requests per second for `seconds`, keys from `pick`.
template <typename Pick>
void Drive(ManualClock& clock, LoadSplitDecider& decider, int qps, int seconds, Pick pick) {
  const Duration gap = Duration::Nanos(1'000'000'000 / qps);
  for (int i = 0; i < qps * seconds; ++i) {
    decider.Record(pick());
    clock.Advance(gap);
  }
}

TEST(LoadSplit, UniformLoadYieldsABalancedSplitKey) {
  ManualClock clock;
  Rng rng(42);
  Rng keys(43);
  LoadSplitDecider decider(clock, rng);
  Drive(clock, decider, 3000, 12, [&] { return Key(keys.Uniform(100'000)); });
  EXPECT_GE(decider.last_qps(), 2500u);
  const LoadSplitDecider::Decision d = decider.Poll();
  ASSERT_EQ(d.kind, LoadSplitDecider::Decision::Kind::kSplit);
  // |L-R|/(L+R) < 0.25 over uniform keys puts the key between the 37.5% and 62.5% quantiles
  // (the counts are sampled, so allow a little beyond).
  std::printf("split key %s\n", d.key.c_str());
  EXPECT_GE(d.key, Key(35'000));
  EXPECT_LE(d.key, Key(65'000));
}

TEST(LoadSplit, SingleHotKeyIsReportedNotSplit) {
  ManualClock clock;
  Rng rng(1);
  LoadSplitDecider decider(clock, rng);
  Drive(clock, decider, 3000, 12, [] { return std::string("tenant-7/counter"); });
  const LoadSplitDecider::Decision d = decider.Poll();
  EXPECT_EQ(d.kind, LoadSplitDecider::Decision::Kind::kHotKey);
  EXPECT_EQ(d.key, "tenant-7/counter");
}

// 90% of requests on one key, 10% spread: no key balances the load (the hot key takes all the
// weight on one side), and the reservoir is dominated by the hot key.
TEST(LoadSplit, DominantKeyIsHotNotSplit) {
  ManualClock clock;
  Rng rng(5);
  Rng keys(6);
  LoadSplitDecider decider(clock, rng);
  Drive(clock, decider, 3000, 12, [&] {
    return keys.Uniform(100) < 95 ? std::string("k050000") : Key(keys.Uniform(100'000));
  });
  EXPECT_EQ(decider.Poll().kind, LoadSplitDecider::Decision::Kind::kHotKey);
}

TEST(LoadSplit, NothingBeforeTenSecondsOrBelowThreshold) {
  ManualClock clock;
  Rng rng(2);
  Rng keys(3);
  LoadSplitDecider decider(clock, rng);
  Drive(clock, decider, 3000, 9, [&] { return Key(keys.Uniform(100'000)); });
  EXPECT_TRUE(decider.finding());
  EXPECT_EQ(decider.Poll().kind, LoadSplitDecider::Decision::Kind::kNone);  // < 10 s recorded

  // The rate drops below 2500/s: the finder is discarded and no split is proposed.
  Drive(clock, decider, 1000, 15, [&] { return Key(keys.Uniform(100'000)); });
  EXPECT_FALSE(decider.finding());
  EXPECT_EQ(decider.Poll().kind, LoadSplitDecider::Decision::Kind::kNone);
}

// A stall of the range's traffic (no request for 3 s: a pause, a clogged link) is one long low
// window. By default it discards the finder; with low_windows_tolerated the finder survives it and
// reports on time, and a range that keeps reading low is still dropped.
TEST(LoadSplit, ToleratedLowWindowsKeepTheFinderThroughAStall) {
  for (const uint32_t tolerated : {0u, 2u}) {
    ManualClock clock;
    Rng rng(7);
    LoadSplitOptions options;
    options.low_windows_tolerated = tolerated;
    LoadSplitDecider decider(clock, rng, options);
    const auto hot = [] { return std::string("tenant-7/counter"); };
    Drive(clock, decider, 3000, 6, hot);
    clock.Advance(Duration::Seconds(3));  // the stall
    Drive(clock, decider, 3000, 3, hot);  // 11 s after the finder started, 8 s of it recorded
    if (tolerated == 0) {
      EXPECT_EQ(decider.Poll().kind, LoadSplitDecider::Decision::Kind::kNone);
    } else {
      EXPECT_EQ(decider.Poll().kind, LoadSplitDecider::Decision::Kind::kHotKey);
    }
    Drive(clock, decider, 100, 5, hot);  // cooled down: low window after low window
    EXPECT_FALSE(decider.finding()) << tolerated;
  }
}

// Scans spanning every sample: a split anywhere would cut most of them (contained >= 50%).
TEST(LoadSplit, SpanningScansPreventASplit) {
  LoadSplitOptions options;
  LoadSplitFinder finder(MonoTime::FromNanos(0), options);
  Rng rng(9);
  Rng keys(10);
  for (int i = 0; i < 5000; ++i) {
    const std::string start = Key(keys.Uniform(100));
    finder.Record(start, "k999999", rng);
  }
  EXPECT_TRUE(finder.Ready(MonoTime::FromNanos(0) + Duration::Seconds(10)));
  EXPECT_FALSE(finder.Ready(MonoTime::FromNanos(0) + Duration::Seconds(9)));
  EXPECT_FALSE(finder.Key().has_value());
}

// Finder counters: a request before a sample counts left, at or after it right, strictly around it
// contained.
TEST(LoadSplit, FinderCountsLeftRightContained) {
  LoadSplitFinder finder(MonoTime::FromNanos(0), LoadSplitOptions{});
  Rng rng(1);
  for (size_t i = 0; i < LoadSplitFinder::kSampleSize; ++i) finder.Record("m", "", rng);
  // From now on each request is sampled with probability 20/count; count the ones that were not.
  uint64_t before = 0;
  for (size_t i = 0; i < LoadSplitFinder::kSampleSize; ++i) before += finder.sample(i).left;
  ASSERT_EQ(before, 0u);
  for (int i = 0; i < 1000; ++i) finder.Record("a", "", rng);
  for (int i = 0; i < 1000; ++i) finder.Record("a", "z", rng);
  for (size_t i = 0; i < LoadSplitFinder::kSampleSize; ++i) {
    const auto& s = finder.sample(i);
    if (s.key == "m") {
      EXPECT_GT(s.left, 0u);
      EXPECT_GT(s.contained, 0u);
      EXPECT_EQ(s.right, 0u);
    }
  }
}

TEST(LoadSplit, SameSeedSameKey) {
  auto run = [](uint64_t seed) {
    ManualClock clock;
    Rng rng(seed);
    Rng keys(99);
    LoadSplitDecider decider(clock, rng);
    Drive(clock, decider, 3000, 11, [&] { return Key(keys.Uniform(100'000)); });
    return decider.Poll().key;
  };
  EXPECT_EQ(run(11), run(11));
}

}  // namespace
}  // namespace faultline::shard
