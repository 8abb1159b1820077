// Unit and simulation tests for faultline/time/offset_monitor.h: the NTP-style estimate, the
// CockroachDB health rule (ambiguous ⇒ healthy, exactly half ⇒ fence, no peers ⇒ healthy,
// stale ⇒ ignored), and the ClockPinger in a simulated cluster where one node's wall clock jumps.
#include "faultline/time/offset_monitor.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <memory>
#include <optional>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/sim/partition.h"
#include "faultline/sim/world.h"

namespace faultline {
namespace {

constexpr Duration kMaxOffset = Duration::Millis(500);  // tolerated: 400 ms

OffsetMonitorOptions MonitorOpts(Duration ttl = Duration::Seconds(10)) {
  OffsetMonitorOptions o;
  o.max_offset = kMaxOffset;
  o.measurement_ttl = ttl;
  return o;
}

std::unique_ptr<OffsetMonitor> MakeMonitor(Clock& clock, OffsetMonitorOptions o = MonitorOpts()) {
  auto r = OffsetMonitor::Create(clock, o);
  EXPECT_TRUE(r.ok());
  return std::move(r).value();
}

OffsetMeasurement M(Duration offset, Duration uncertainty, MonoTime at) {
  return OffsetMeasurement{offset, uncertainty, at};
}

TEST(OffsetMonitorTest, EstimateIsTheNtpMidpointWithHalfTheRoundTripAsUncertainty) {
  // offset = tr − (t0 + t1)/2, uncertainty = RTT/2: the peer's reading happened somewhere in the
  // round trip, and the midpoint is the least-biased guess.
  const MonoTime m0 = MonoTime::FromNanos(1'000'000);
  const WallTime t0 = WallTime::FromNanos(5'000'000'000);
  const Duration rtt = Duration::Millis(10);
  const WallTime t1 = t0 + rtt;
  const WallTime tr = t0 + Duration::Millis(5) + Duration::Millis(120);  // peer 120 ms ahead
  const OffsetMeasurement m = *OffsetMonitor::Estimate(m0, tr, m0 + rtt, t1);
  EXPECT_EQ(m.offset, Duration::Millis(120));
  EXPECT_EQ(m.uncertainty, Duration::Millis(5));
  EXPECT_EQ(m.measured_at, m0 + rtt);
  // Odd RTT: the uncertainty rounds up, never under-states.
  const OffsetMeasurement odd = *OffsetMonitor::Estimate(m0, tr, m0 + Duration::Nanos(3), t1);
  EXPECT_EQ(odd.uncertainty, Duration::Nanos(2));
  EXPECT_EQ(OffsetMonitor::Estimate(m0 + rtt, tr, m0, t1).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(OffsetMonitorTest, EstimateMeasuresRttOnTheMonotonicClockAcrossAWallStep) {
  // If the local wall clock steps back 1 h during the exchange, (t1 − t0) would be a negative
  // "RTT" and the midpoint garbage. The monotonic RTT keeps the uncertainty right, and the offset
  // describes the clock as it is after the step, the one this node keeps using.
  const MonoTime m0 = MonoTime::FromNanos(0);
  const Duration rtt = Duration::Millis(2);
  const WallTime t1 = WallTime::FromNanos(9'000'000'000'000);  // after the step
  const WallTime tr = t1 - Duration::Millis(1) + Duration::Seconds(3600);
  const OffsetMeasurement m = *OffsetMonitor::Estimate(m0, tr, m0 + rtt, t1);
  EXPECT_EQ(m.uncertainty, Duration::Millis(1));
  EXPECT_EQ(m.offset, Duration::Seconds(3600));
}

TEST(OffsetMonitorTest, AmbiguousMeasurementCountsAsHealthy) {
  // CockroachDB's isHealthy: when the tolerated offset (0.8 · max_offset = 400 ms) lies inside
  // offset ± uncertainty, the peer gets the benefit of the doubt. Only a measurement whose lower
  // bound is beyond 400 ms counts against this node.
  const Duration tol = Duration::Millis(400);
  const MonoTime at;
  EXPECT_TRUE(OffsetMonitor::IsWithin(M(Duration::Millis(450), Duration::Millis(60), at), tol));
  EXPECT_TRUE(OffsetMonitor::IsWithin(M(Duration::Millis(-450), Duration::Millis(50), at), tol));
  EXPECT_FALSE(OffsetMonitor::IsWithin(M(Duration::Millis(450), Duration::Millis(49), at), tol));
  EXPECT_TRUE(OffsetMonitor::IsWithin(M(Duration::Millis(400), Duration::Zero(), at), tol));
  EXPECT_FALSE(OffsetMonitor::IsWithin(
      M(Duration::Millis(-400) - Duration::Nanos(1), Duration::Zero(), at), tol));

  // In the monitor: two peers far but ambiguous, one clearly fine → healthy.
  ManualClock clock(MonoTime::FromNanos(1'000'000'000));
  auto mon = MakeMonitor(clock);
  const MonoTime now = clock.Now();
  ASSERT_TRUE(mon->Record(NodeId(1), M(Duration::Millis(700), Duration::Millis(350), now)).ok());
  ASSERT_TRUE(mon->Record(NodeId(2), M(Duration::Millis(-700), Duration::Millis(300), now)).ok());
  ASSERT_TRUE(mon->Record(NodeId(3), M(Duration::Millis(900), Duration::Millis(100), now)).ok());
  EXPECT_TRUE(mon->Check().ok()) << mon->Check().ToString();
  EXPECT_EQ(mon->Summarize().within_peers, 2u);
}

TEST(OffsetMonitorTest, AtMostHalfOfFreshPeersWithinFencesAndExactlyHalfCounts) {
  // The self-fencing rule is "healthy ≤ fresh/2 ⇒ fence" (CockroachDB's healthyOffsetCount <=
  // numClocks/2). The boundary matters: exactly half within must fence, since the node cannot
  // tell whether it is in the good half.
  ManualClock clock(MonoTime::FromNanos(1'000'000'000));
  const MonoTime now = clock.Now();
  const Duration good = Duration::Millis(10);
  const Duration bad = Duration::Millis(900);
  const Duration u = Duration::Millis(1);
  {
    auto mon = MakeMonitor(clock);
    for (uint32_t p = 1; p <= 4; ++p) {
      ASSERT_TRUE(mon->Record(NodeId(p), M(p <= 2 ? good : bad, u, now)).ok());
    }
    const Status s = mon->Check();
    EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);  // 2 of 4
    EXPECT_NE(s.message().find("clock offset"), std::string_view::npos);
    EXPECT_FALSE(mon->Healthy());
    ASSERT_TRUE(mon->Record(NodeId(3), M(good, u, now)).ok());
    EXPECT_TRUE(mon->Healthy());  // 3 of 4
  }
  {
    auto mon = MakeMonitor(clock);
    ASSERT_TRUE(mon->Record(NodeId(1), M(good, u, now)).ok());
    ASSERT_TRUE(mon->Record(NodeId(2), M(-bad, u, now)).ok());
    EXPECT_FALSE(mon->Healthy());  // 1 of 2
    ASSERT_TRUE(mon->Record(NodeId(3), M(good, u, now)).ok());
    EXPECT_TRUE(mon->Healthy());  // 2 of 3
  }
  {
    auto mon = MakeMonitor(clock);
    ASSERT_TRUE(mon->Record(NodeId(1), M(bad, u, now)).ok());
    EXPECT_FALSE(mon->Healthy());  // 0 of 1
  }
}

TEST(OffsetMonitorTest, NoFreshPeersIsHealthyAndStaleMeasurementsAreIgnored) {
  // A node alone (booting, or cut off) has nothing to compare with and stays healthy rather than
  // fencing a whole cluster at startup. A measurement older than the TTL no longer counts: an
  // old reading says nothing about the clocks now.
  ManualClock clock(MonoTime::FromNanos(1'000'000'000));
  auto mon = MakeMonitor(clock, MonitorOpts(Duration::Seconds(3)));
  EXPECT_TRUE(mon->Healthy());
  ASSERT_TRUE(mon->Record(NodeId(1), M(Duration::Seconds(2), Duration::Zero(), clock.Now())).ok());
  EXPECT_FALSE(mon->Healthy());
  clock.Advance(Duration::Seconds(3));
  EXPECT_FALSE(mon->Healthy());  // exactly at the TTL: still fresh
  ASSERT_TRUE(mon->Latest(NodeId(1)).has_value());
  clock.Advance(Duration::Nanos(1));
  EXPECT_TRUE(mon->Healthy());
  EXPECT_FALSE(mon->Latest(NodeId(1)).has_value());
  EXPECT_EQ(mon->Summarize().fresh_peers, 0u);
}

TEST(OffsetMonitorTest, OnlyTheLatestMeasurementPerPeerCounts) {
  // Replies can be reordered by the network: an older measurement arriving late must not
  // overwrite a newer one, or a fixed clock could keep a node fenced (or a broken one healthy).
  ManualClock clock(MonoTime::FromNanos(1'000'000'000));
  auto mon = MakeMonitor(clock);
  const MonoTime t1 = clock.Now();
  clock.Advance(Duration::Millis(100));
  const MonoTime t2 = clock.Now();
  ASSERT_TRUE(mon->Record(NodeId(1), M(Duration::Millis(5), Duration::Zero(), t2)).ok());
  ASSERT_TRUE(mon->Record(NodeId(1), M(Duration::Seconds(5), Duration::Zero(), t1)).ok());
  EXPECT_EQ(mon->Latest(NodeId(1))->offset, Duration::Millis(5));
  EXPECT_TRUE(mon->Healthy());
  mon->Forget(NodeId(1));
  EXPECT_EQ(mon->Summarize().fresh_peers, 0u);
}

TEST(OffsetMonitorTest, RecordRejectsBadInputAndPeersBeyondTheLimit) {
  // Limits and input checks: negative uncertainty and future timestamps are caller bugs reported
  // as kInvalidArgument; the peer table is bounded.
  ManualClock clock(MonoTime::FromNanos(1'000'000'000));
  OffsetMonitorOptions o = MonitorOpts();
  o.peers_max = 2;
  auto mon = MakeMonitor(clock, o);
  const MonoTime now = clock.Now();
  EXPECT_EQ(mon->Record(NodeId(1), M(Duration::Zero(), Duration::Nanos(-1), now)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(mon->Record(NodeId(1), M(Duration::Zero(), Duration::Zero(), now + Duration::Nanos(1)))
                .code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(mon->Record(NodeId(1), M(Duration::Zero(), Duration::Zero(), now)).ok());
  ASSERT_TRUE(mon->Record(NodeId(2), M(Duration::Zero(), Duration::Zero(), now)).ok());
  EXPECT_EQ(mon->Record(NodeId(3), M(Duration::Zero(), Duration::Zero(), now)).code(),
            StatusCode::kResourceExhausted);
  EXPECT_TRUE(mon->Record(NodeId(2), M(Duration::Zero(), Duration::Zero(), now)).ok());
  o.max_offset = Duration::Zero();
  EXPECT_EQ(OffsetMonitor::Create(clock, o).status().code(), StatusCode::kInvalidArgument);
}

RC_GTEST_PROP(OffsetMonitorProps, CheckFencesExactlyWhenAtMostHalfOfFreshPeersAreWithin, ()) {
  // The rule against a direct model over random peers, offsets, uncertainties and ages.
  ManualClock clock(MonoTime::FromNanos(100'000'000'000));
  auto mon = MakeMonitor(clock, MonitorOpts(Duration::Seconds(5)));
  const auto peers = *rc::gen::inRange<uint32_t>(0, 12);
  uint32_t fresh = 0;
  uint32_t within = 0;
  for (uint32_t p = 0; p < peers; ++p) {
    const Duration offset = Duration::Millis(*rc::gen::inRange(-1000, 1000));
    const Duration unc = Duration::Millis(*rc::gen::inRange(0, 200));
    const Duration age = Duration::Millis(*rc::gen::inRange(0, 10'000));
    RC_ASSERT(mon->Record(NodeId(p), M(offset, unc, clock.Now() - age)).ok());
    if (age <= Duration::Seconds(5)) {
      ++fresh;
      const Duration abs = offset < Duration::Zero() ? -offset : offset;
      if (abs - unc <= Duration::Millis(400)) ++within;
    }
  }
  const bool expect_healthy = fresh == 0 || 2 * within > fresh;
  RC_ASSERT(mon->Healthy() == expect_healthy);
  RC_ASSERT(mon->Summarize().fresh_peers == fresh);
  RC_ASSERT(mon->Summarize().within_peers == within);
}

// ---- ClockPinger in the simulator ----

constexpr Duration kPingInterval = Duration::Millis(200);

class ClockNode final : public sim::Node {
 public:
  ClockNode(Env& env, uint32_t nodes) : rpc_(env) {
    monitor_ = MakeMonitor(env.clock(), MonitorOpts(kPingInterval * 5));
    std::vector<NodeId> peers;
    for (uint32_t i = 0; i < nodes; ++i) {
      if (NodeId(i) != env.self()) peers.push_back(NodeId(i));
    }
    ClockPingerOptions po;
    po.interval = kPingInterval;
    po.timeout = Duration::Millis(100);
    auto p = ClockPinger::Create(env, rpc_, *monitor_, peers, po);
    EXPECT_TRUE(p.ok());
    pinger_ = std::move(p).value();
  }
  void Start() override { pinger_->Start(); }
  OffsetMonitor& monitor() { return *monitor_; }
  ClockPinger& pinger() { return *pinger_; }

 private:
  Rpc rpc_;
  std::unique_ptr<OffsetMonitor> monitor_;
  std::unique_ptr<ClockPinger> pinger_;  // last: its loops die before the Rpc they await
};

struct Cluster {
  sim::World world;
  explicit Cluster(uint32_t n, uint64_t seed = 11) : world(seed, sim::WorldOptions::Nodes(n)) {
    for (uint32_t i = 0; i < n; ++i) {
      world.Boot(NodeId(i), [n](Env& env) { return std::make_unique<ClockNode>(env, n); });
    }
  }
  OffsetMonitor& monitor(uint32_t i) { return world.node_as<ClockNode>(NodeId(i))->monitor(); }
};

TEST(ClockPingerSimTest, JumpedNodeFencesWithinTwoPingIntervalsWhileOthersStayHealthy) {
  // The target from the research notes: the offset alarm fires within 2 heartbeats. Five nodes
  // with the simulator's default clock errors (±50 ms, ±100 ppm) are healthy; then node 2's wall
  // clock jumps 1 s ahead. Node 2 sees all 4 peers ~1 s away and must fence within two ping
  // intervals; the others see 3 of 4 peers within and must never fence.
  for (uint64_t seed : {1, 2, 3}) {
    Cluster c(5, seed);
    c.world.RunFor(Duration::Seconds(2));
    for (uint32_t i = 0; i < 5; ++i) {
      ASSERT_TRUE(c.monitor(i).Check().ok()) << i << ": " << c.monitor(i).Check().ToString();
      ASSERT_EQ(c.monitor(i).Summarize().fresh_peers, 4u);
    }
    const Duration jump_at = c.world.elapsed();
    c.world.clock(NodeId(2)).JumpWall(Duration::Seconds(1));
    std::optional<Duration> fenced_after;
    bool others_fenced = false;
    for (int tick = 1; tick <= 300; ++tick) {  // 3 s in 10 ms steps
      c.world.RunFor(Duration::Millis(10));
      if (!fenced_after && !c.monitor(2).Healthy()) fenced_after = c.world.elapsed() - jump_at;
      for (uint32_t i : {0u, 1u, 3u, 4u}) others_fenced |= !c.monitor(i).Healthy();
    }
    ASSERT_TRUE(fenced_after.has_value()) << seed;
    EXPECT_LE(*fenced_after, kPingInterval * 2) << seed;
    EXPECT_FALSE(c.monitor(2).Healthy()) << seed;  // stays fenced while the clock is wrong
    EXPECT_FALSE(others_fenced) << seed;
    EXPECT_GT(c.world.node_as<ClockNode>(NodeId(0))->pinger().pings_ok(), 50u);

    // Fixing the clock lifts the fence within the same bound.
    c.world.clock(NodeId(2)).ResetWall();
    c.world.RunFor(kPingInterval * 2);
    EXPECT_TRUE(c.monitor(2).Healthy()) << seed << ": " << c.monitor(2).Check().ToString();
  }
}

TEST(ClockPingerSimTest, ThreeNodeClusterWithOneBadClockFencesEveryNode) {
  // A documented consequence of "exactly half ⇒ fence" (CockroachDB has it too): with 3 nodes,
  // each good node sees 1 of its 2 peers within, which is exactly half, so it fences as well.
  // One bad clock can take a 3-node cluster down; 5 nodes are needed to single it out.
  Cluster c(3);
  c.world.RunFor(Duration::Seconds(2));
  for (uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(c.monitor(i).Healthy());
  c.world.clock(NodeId(0)).JumpWall(-Duration::Seconds(2));
  c.world.RunFor(kPingInterval * 2);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_FALSE(c.monitor(i).Healthy()) << i;
}

TEST(ClockPingerSimTest, IsolatedNodeLosesItsFreshPeersAndThePeersForgetIt) {
  // Measurements expire: after a partition isolates node 4 for longer than the TTL, the others
  // no longer count it (they stay healthy on 3 fresh peers) and node 4, with no fresh peer, is
  // healthy by the documented "alone cannot tell" rule, even with a bad clock.
  Cluster c(5);
  c.world.RunFor(Duration::Seconds(2));
  sim::Grudge grudge(5);
  for (uint32_t i = 0; i < 4; ++i) grudge.BlockBoth(4, i);
  c.world.network().Partition(grudge);
  c.world.clock(NodeId(4)).JumpWall(Duration::Seconds(5));
  c.world.RunFor(kPingInterval * 7);  // TTL is 5 intervals
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(c.monitor(i).Healthy()) << i;
    EXPECT_EQ(c.monitor(i).Summarize().fresh_peers, 3u) << i;
  }
  EXPECT_EQ(c.monitor(4).Summarize().fresh_peers, 0u);
  EXPECT_TRUE(c.monitor(4).Healthy());
  EXPECT_GT(c.world.node_as<ClockNode>(NodeId(4))->pinger().pings_failed(), 0u);
  // Healing brings the bad clock back into view and node 4 fences.
  c.world.network().Heal();
  c.world.RunFor(kPingInterval * 2);
  EXPECT_FALSE(c.monitor(4).Healthy());
}

TEST(ClockPingerSimTest, PingHandlerRefusesAnUnknownVersion) {
  // The ping reply format is versioned; a request from a newer protocol gets kUnimplemented
  // instead of a reply the caller would misparse.
  sim::World world(5, sim::WorldOptions::Nodes(2));
  struct RpcNode final : sim::Node {
    explicit RpcNode(Env& env) : rpc(env) { ServeClockPings(rpc, env.clock()); }
    Rpc rpc;
  };
  for (uint32_t i = 0; i < 2; ++i) {
    world.Boot(NodeId(i), [](Env& env) { return std::make_unique<RpcNode>(env); });
  }
  std::optional<Result<Bytes>> bad;
  std::optional<Result<Bytes>> good;
  auto call = [](Rpc* rpc, uint8_t version, std::optional<Result<Bytes>>* out) -> Task<void> {
    const uint8_t req[1] = {version};
    Result<Bytes> r = co_await rpc->Call(NodeId(1), kClockPingMethod, req, Duration::Millis(100));
    out->emplace(std::move(r));
  };
  Rpc* rpc = &world.node_as<RpcNode>(NodeId(0))->rpc;
  world.env(NodeId(0)).Spawn(call(rpc, 99, &bad));
  world.env(NodeId(0)).Spawn(call(rpc, kClockPingVersion, &good));
  world.RunFor(Duration::Millis(200));
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status().code(), StatusCode::kUnimplemented);
  ASSERT_TRUE(good.has_value() && good->ok());
  EXPECT_EQ((*good)->size(), 9u);
}

}  // namespace
}  // namespace faultline
