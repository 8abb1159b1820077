// ShardMap: versions and epochs of every change, validation that rejects bad maps with the reason,
// routing, and the encoding (round trip; any corruption is kDataLoss, never a crash).
#include "faultline/shard/shard_map.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "faultline/core/crc32c.h"

namespace faultline::shard {
namespace {

const ShardId kA(1), kB(2), kC(3);

ShardMap TwoShards() {
  return ShardMap::Single(KeyMode::kRange, kA).AddShard(kB).value();  // version 2
}

TEST(ShardMap, SplitAndMoveBumpVersionAndEpochs) {
  const ShardMap v2 = TwoShards();
  ASSERT_EQ(v2.version(), 2u);
  const ShardMap v3 = v2.Split(RangeId(1), "m").value();
  ASSERT_EQ(v3.version(), 3u);
  ASSERT_EQ(v3.ranges().size(), 2u);
  EXPECT_EQ(v3.ranges()[0], (ShardRange{RangeId(1), Epoch(3), kA, "", "m"}));
  EXPECT_EQ(v3.ranges()[1], (ShardRange{RangeId(2), Epoch(3), kA, "m", ""}));
  const ShardMap v4 = v3.Move(RangeId(2), kB).value();
  EXPECT_EQ(v4.ranges()[1], (ShardRange{RangeId(2), Epoch(4), kB, "m", ""}));
  EXPECT_EQ(v4.ranges()[0].epoch, Epoch(3));  // untouched range keeps its epoch
  EXPECT_EQ(v4.RouteKey("apple"), (Route{kA, RangeId(1), Epoch(3), false}));
  EXPECT_EQ(v4.RouteKey("m"), (Route{kB, RangeId(2), Epoch(4), false}));
  EXPECT_EQ(v4.RouteKey("zebra").shard, kB);
  // The maps the changes were made from are unchanged.
  EXPECT_EQ(v3.RouteKey("zebra").shard, kA);
  EXPECT_EQ(v2.ranges().size(), 1u);
}

TEST(ShardMap, OverridesPinATenant) {
  const ShardMap m = TwoShards().AddShard(kC).value().SetOverride("hot-tenant", kC).value();
  const Route r = m.RouteTenantKey("hot-tenant", "hot-tenant/order/1");
  EXPECT_EQ(r.shard, kC);
  EXPECT_TRUE(r.by_override);
  EXPECT_EQ(r.epoch, Epoch(m.version()));
  EXPECT_EQ(m.RouteTenantKey("quiet", "quiet/order/1").shard, kA);
  EXPECT_FALSE(m.RouteTenantKey("quiet", "x").by_override);
  // Re-pinning keeps the override's id and bumps its epoch; clearing restores key routing.
  const ShardMap moved = m.SetOverride("hot-tenant", kB).value();
  const Route r2 = moved.RouteTenantKey("hot-tenant", "k");
  EXPECT_EQ(r2.range, r.range);
  EXPECT_GT(r2.epoch, r.epoch);
  EXPECT_EQ(moved.ClearOverride("hot-tenant").value().RouteTenantKey("hot-tenant", "k").shard, kA);
  EXPECT_EQ(m.SetOverride("t", ShardId(99)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.ClearOverride("nobody").status().code(), StatusCode::kNotFound);
}

TEST(ShardMap, InvalidChangesAreRejectedWithTheReason) {
  const ShardMap m = TwoShards().Split(RangeId(1), "m").value();
  Result<ShardMap> r = m.Split(RangeId(1), "q");  // range 1 is ["", "m")
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("outside"), std::string_view::npos);
  EXPECT_EQ(m.Split(RangeId(2), "m").status().code(), StatusCode::kInvalidArgument);  // = begin
  EXPECT_EQ(m.Split(RangeId(9), "x").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(m.Move(RangeId(1), ShardId(77)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Move(RangeId(1), kA).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.AddShard(kA).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(m.version(), 3u);
}

Status CreateWith(std::vector<ShardRange> ranges) {
  return ShardMap::Create(KeyMode::kRange, 5, {kA, kB}, std::move(ranges), {}, 10).status();
}

TEST(ShardMap, CreateRejectsGapsOverlapsUnknownShards) {
  auto expect = [](const Status& s, const char* reason) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << reason;
    EXPECT_NE(s.message().find(reason), std::string_view::npos) << s.ToString();
  };
  expect(CreateWith({{RangeId(1), Epoch(1), kA, "", "g"}, {RangeId(2), Epoch(1), kB, "h", ""}}),
         "gap");
  expect(CreateWith({{RangeId(1), Epoch(1), kA, "", "h"}, {RangeId(2), Epoch(1), kB, "g", ""}}),
         "overlap");
  expect(CreateWith({{RangeId(1), Epoch(1), kA, "a", ""}}), "gap before first range");
  expect(CreateWith({{RangeId(1), Epoch(1), kA, "", "g"}}), "gap after last range");
  expect(CreateWith({{RangeId(1), Epoch(1), kC, "", ""}}), "unknown shard");
  expect(CreateWith({{RangeId(1), Epoch(6), kA, "", ""}}), "epoch");
  expect(CreateWith({{RangeId(1), Epoch(1), kA, "", "g"}, {RangeId(1), Epoch(1), kB, "g", ""}}),
         "duplicate range id");
  expect(CreateWith({{RangeId(10), Epoch(1), kA, "", ""}}), "next_range_id");
  EXPECT_TRUE(
      CreateWith({{RangeId(1), Epoch(1), kA, "", "g"}, {RangeId(2), Epoch(5), kB, "g", ""}}).ok());
}

TEST(ShardMap, EvenHashRangesBalanceKeys) {
  const ShardMap m = ShardMap::EvenHash({ShardId(0), ShardId(1), ShardId(2), ShardId(3)}).value();
  EXPECT_EQ(m.mode(), KeyMode::kHash);
  std::map<ShardId, int> counts;
  for (int i = 0; i < 100'000; ++i) ++counts[m.RouteKey("k" + std::to_string(i)).shard];
  for (const auto& [s, c] : counts) EXPECT_NEAR(c, 25'000, 600) << s.value();
  // The routing key is the big-endian hash: bounds compare like the hash values.
  char buf[8];
  EXPECT_EQ(HashRoutingKey("k1", buf), HashBound(KeyHash("k1")));
}

TEST(ShardMap, CheckEpochAcceptsOnlyTheCurrentRoute) {
  const ShardMap v3 = TwoShards().Split(RangeId(1), "m").value();
  const ShardMap v4 = v3.Move(RangeId(2), kB).value();
  using Kind = EpochCheck::Kind;
  EXPECT_EQ(v4.CheckEpoch(kB, RangeId(2), Epoch(4)).kind, Kind::kOk);
  EXPECT_EQ(v4.CheckEpoch(kA, RangeId(2), Epoch(3)).kind, Kind::kEpochNotMatch);  // moved away
  EXPECT_EQ(v4.CheckEpoch(kA, RangeId(1), Epoch(1)).kind, Kind::kEpochNotMatch);  // split since
  EXPECT_EQ(v4.CheckEpoch(kA, RangeId(1), Epoch(3)).kind, Kind::kOk);
  EXPECT_EQ(v3.CheckEpoch(kA, RangeId(2), Epoch(4)).kind, Kind::kServerBehind);
  EXPECT_EQ(v3.CheckEpoch(kA, RangeId(7), Epoch(9)).kind, Kind::kServerBehind);
  const EpochCheck stale = v4.CheckEpoch(kA, RangeId(2), Epoch(3));
  EXPECT_EQ(stale.server_version, 4u);
  EXPECT_EQ(stale.ToStatus().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(stale.ToStatus().message().find("EpochNotMatch"), std::string_view::npos);
}

// A client that does not know a tenant's override routes by key; the range's epoch alone looks
// current, so the server must reject it because of the tenant.
TEST(ShardMap, CheckRouteRejectsKeyRouteOfAnOverriddenTenant) {
  const ShardMap v2 = TwoShards();
  const ShardMap v3 = v2.SetOverride("hot", kB).value();
  const Route old_route = v2.RouteTenantKey("hot", "hot/1");
  EXPECT_EQ(v3.CheckEpoch(kA, old_route.range, old_route.epoch).kind, EpochCheck::Kind::kOk);
  EXPECT_EQ(v3.CheckRoute(kA, "hot", old_route).kind, EpochCheck::Kind::kEpochNotMatch);
  EXPECT_EQ(v3.CheckRoute(kB, "hot", v3.RouteTenantKey("hot", "hot/1")).kind,
            EpochCheck::Kind::kOk);
  EXPECT_EQ(v3.CheckRoute(kA, "other", v3.RouteTenantKey("other", "other/1")).kind,
            EpochCheck::Kind::kOk);
  // Override cleared: a request still routed by the override is stale.
  const ShardMap v4 = v3.ClearOverride("hot").value();
  EXPECT_EQ(v4.CheckRoute(kB, "hot", v3.RouteTenantKey("hot", "hot/1")).kind,
            EpochCheck::Kind::kEpochNotMatch);
}

// A random history of changes (some invalid) starting from one range.
ShardMap RandomMap(const std::vector<std::tuple<uint8_t, uint8_t, std::string>>& ops,
                   KeyMode mode = KeyMode::kRange) {
  ShardMap m = ShardMap::Single(mode, ShardId(0));
  for (const auto& [kind, pick, text] : ops) {
    const ShardRange& r = m.ranges()[pick % m.ranges().size()];
    Result<ShardMap> next = InvalidArgumentError("skip");
    switch (kind % 4) {
      case 0:
        next = m.AddShard(ShardId(pick % 8));
        break;
      case 1:
        next = m.Split(r.id, mode == KeyMode::kHash ? HashBound(KeyHash(text)) : text);
        break;
      case 2:
        next = m.Move(r.id, m.shards()[pick % m.shards().size()]);
        break;
      default:
        next = m.SetOverride(text, m.shards()[pick % m.shards().size()]);
        break;
    }
    if (next.ok()) {
      RC_ASSERT(next.value().version() == m.version() + 1);
      m = std::move(next).value();
    }
  }
  return m;
}

RC_GTEST_PROP(ShardMapEncoding, RoundTrips,
              (const std::vector<std::tuple<uint8_t, uint8_t, std::string>>& ops)) {
  const ShardMap m = RandomMap(ops);
  const std::vector<uint8_t> bytes = m.Encode();
  Result<ShardMap> back = ShardMap::Decode(bytes);
  RC_ASSERT(back.ok());
  RC_ASSERT(back.value() == m);
  // Every routing key lands in exactly one range: the one RangeIndexOf names contains it.
  for (const auto& [kind, pick, text] : ops) {
    const ShardRange& r = m.ranges()[m.RangeIndexOf(text)];
    RC_ASSERT(r.begin <= text);
    RC_ASSERT(r.end.empty() || std::string_view(text) < r.end);
  }
}

// The indexed lookups (contiguous begins, hash begins, tenant table, id index) agree with the
// definitions over the plain fields, in both key modes.
RC_GTEST_PROP(ShardMap, IndexedLookupsAgreeWithDefinitions,
              (const std::vector<std::tuple<uint8_t, uint8_t, std::string>>& ops, bool hash,
               const std::vector<std::string>& keys)) {
  const KeyMode mode = hash ? KeyMode::kHash : KeyMode::kRange;
  const ShardMap m = RandomMap(ops, mode);
  RC_CLASSIFY(m.ranges().size() > 1, "split");
  RC_CLASSIFY(!m.overrides().empty(), "overrides");
  auto probe = [&](const std::string& key) {
    char buf[8];
    const std::string_view rk = hash ? HashRoutingKey(key, buf) : std::string_view(key);
    const ShardRange* expected = nullptr;
    for (const ShardRange& r : m.ranges()) {
      if (r.begin <= rk && (r.end.empty() || rk < r.end)) expected = &r;
    }
    RC_ASSERT(expected != nullptr);
    const Route route = m.RouteKey(key);
    RC_ASSERT(route == (Route{expected->shard, expected->id, expected->epoch, false}));
    RC_ASSERT(m.CheckEpoch(route.shard, route.range, route.epoch).ok());
    auto it = m.overrides().find(key);
    const Route tr = m.RouteTenantKey(key, key);
    if (it == m.overrides().end()) {
      RC_ASSERT(tr == route);
    } else {
      RC_ASSERT(tr == (Route{it->second.shard, it->second.id, it->second.epoch, true}));
      RC_ASSERT(m.CheckRoute(tr.shard, key, tr).ok());
    }
  };
  for (const std::string& key : keys) probe(key);
  for (const auto& [kind, pick, text] : ops) probe(text);
}

TEST(ShardMap, HashModeBoundsMustBeEightBytes) {
  const ShardMap m = ShardMap::Single(KeyMode::kHash, kA);
  EXPECT_EQ(m.Split(RangeId(1), "abc").status().code(), StatusCode::kInvalidArgument);
  const ShardMap split = m.Split(RangeId(1), HashBound(1ULL << 63)).value();
  EXPECT_EQ(split.ranges()[1].begin, std::string("\x80\0\0\0\0\0\0\0", 8));
}

// Fuzzing the decoder: a flipped byte, a truncation or random bytes decode to kDataLoss or to a
// map that re-encodes to exactly those bytes; never a crash, never another error code.
RC_GTEST_PROP(ShardMapEncoding, CorruptionIsDataLoss,
              (const std::vector<std::tuple<uint8_t, uint8_t, std::string>>& ops, size_t pos,
               uint8_t flip, bool truncate)) {
  std::vector<uint8_t> bytes = RandomMap(ops).Encode();
  if (truncate) {
    bytes.resize(pos % bytes.size());
  } else {
    bytes[pos % bytes.size()] ^= static_cast<uint8_t>(flip | 1);
  }
  Result<ShardMap> m = ShardMap::Decode(bytes);
  RC_ASSERT(!m.ok());
  RC_ASSERT(m.status().code() == StatusCode::kDataLoss);
}

RC_GTEST_PROP(ShardMapEncoding, RandomBytesAreDataLossOrExact,
              (const std::vector<uint8_t>& bytes)) {
  Result<ShardMap> m = ShardMap::Decode(bytes);
  if (m.ok()) {
    RC_ASSERT(m.value().Encode() == bytes);
  } else {
    RC_ASSERT(m.status().code() == StatusCode::kDataLoss);
  }
}

// Valid checksum over an invalid map (a gap) is still rejected: validation runs on decode.
TEST(ShardMapEncoding, ValidChecksumOverInvalidMapIsDataLoss) {
  const ShardMap m = TwoShards().Split(RangeId(1), "m").value();
  std::vector<uint8_t> bytes = m.Encode();
  // Change the second range's begin "m" to "n" (a gap), then fix the CRC.
  bool changed = false;
  for (size_t i = bytes.size() - 5; i > 0; --i) {
    if (bytes[i] == 'm' && bytes[i - 1] == 1) {
      bytes[i] = 'n';
      changed = true;
      break;
    }
  }
  ASSERT_TRUE(changed);
  bytes.resize(bytes.size() - 4);
  const uint32_t crc = Crc32c(bytes);
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(crc >> (8 * i)));
  Result<ShardMap> d = ShardMap::Decode(bytes);
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(d.status().message().find("gap"), std::string_view::npos) << d.status().ToString();
}

}  // namespace
}  // namespace faultline::shard
