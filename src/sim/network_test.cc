// Unit tests for faultline/sim/network.h (SimNetwork) and faultline/sim/partition.h (Grudge).
// Each link fault is switched on alone and its effect checked exactly; then the process-level
// interactions (paused and crashed receivers) are checked through a World.
#include "faultline/sim/network.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "faultline/sim/partition.h"
#include "faultline/sim/world.h"

namespace faultline::sim {
namespace {

struct Delivery {
  uint32_t from;
  uint32_t to;
  std::string payload;
  int64_t at_ns;
};

// A SimNetwork on its own scheduler, recording every delivered frame.
class NetFixture {
 public:
  NetFixture(uint32_t nodes, const LinkOptions& links, uint64_t seed = 1)
      : sched_rng_(seed, 1),
        net_rng_(seed, 2),
        scheduler_(&sched_rng_, nullptr),
        net_(nodes, &scheduler_, &net_rng_, links) {
    net_.set_receiver([this](uint32_t from, uint32_t to, const FrameView& f) {
      EXPECT_EQ(f.type, 0x0101);
      got.push_back(
          {from, to, std::string(f.payload.begin(), f.payload.end()), scheduler_.now().nanos()});
    });
  }

  void Send(uint32_t from, uint32_t to, std::string_view payload) {
    const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
    ASSERT_TRUE(net_.Send(from, to, 0x0101, 1, std::span<const uint8_t>(p, payload.size())).ok());
  }
  void RunUntil(Duration t) {
    while (EventId id = scheduler_.PopNext(SimTime::FromNanos(t.nanos()))) scheduler_.Run(id);
    scheduler_.AdvanceTo(SimTime::FromNanos(t.nanos()));
  }
  // Runs until no event is left; time stays at the last event.
  void RunAll() {
    while (EventId id = scheduler_.PopNext(SimTime::Max())) scheduler_.Run(id);
  }
  int64_t now_ns() const { return scheduler_.now().nanos(); }
  SimNetwork& net() { return net_; }

  std::vector<Delivery> got;

 private:
  Rng sched_rng_;
  Rng net_rng_;
  Scheduler scheduler_;
  SimNetwork net_;
};

LinkOptions Latency(Duration min, Duration extra) {
  LinkOptions o;
  o.latency_min = min;
  o.latency_mean_extra = extra;
  return o;
}

TEST(SimNetworkTest, LatencyStaysWithinItsBounds) {
  // Each message takes latency_min plus an exponential extra truncated at 20 means; the extra's
  // mean must be roughly the configured one. A message to oneself takes exactly latency_min.
  const Duration min = Duration::Millis(1);
  const Duration extra = Duration::Millis(2);
  NetFixture f(2, Latency(min, extra));
  std::map<std::string, int64_t> sent_at;
  for (int i = 0; i < 2000; ++i) {
    const std::string p = std::to_string(i);
    sent_at[p] = f.now_ns();
    f.Send(0, 1, p);
    f.RunUntil(Duration::Nanos(f.now_ns()) + Duration::Millis(100));
  }
  ASSERT_EQ(f.got.size(), 2000u);
  double extra_sum = 0;
  for (const Delivery& d : f.got) {
    const int64_t latency = d.at_ns - sent_at[d.payload];
    ASSERT_GE(latency, min.nanos());
    ASSERT_LE(latency, (min + extra * 20).nanos());
    extra_sum += static_cast<double>(latency - min.nanos());
  }
  EXPECT_NEAR(extra_sum / 2000 / static_cast<double>(extra.nanos()), 1.0, 0.1);

  f.got.clear();
  const int64_t t0 = f.now_ns();
  f.Send(1, 1, "self");
  f.RunAll();
  ASSERT_EQ(f.got.size(), 1u);
  EXPECT_EQ(f.got[0].at_ns - t0, min.nanos());
}

std::vector<std::string> SendBursts(NetFixture& f, int bursts, int per_burst) {
  std::vector<std::string> sent;
  for (int b = 0; b < bursts; ++b) {
    for (int i = 0; i < per_burst; ++i) {
      sent.push_back(std::to_string(b) + "." + std::to_string(i));
      f.Send(0, 1, sent.back());
    }
    f.RunUntil(Duration::Nanos(f.now_ns()) + Duration::Micros(b % 3 == 0 ? 1 : 300));
  }
  f.RunAll();
  return sent;
}

std::vector<std::string> Payloads(const std::vector<Delivery>& got) {
  std::vector<std::string> out;
  for (const Delivery& d : got) out.push_back(d.payload);
  return out;
}

TEST(SimNetworkTest, LinkIsFifoWhenReorderIsZero) {
  // Regression: with reorder = 0 a message that drew a shorter latency was delivered at exactly
  // the previous message's delivery time, and the scheduler's random tiebreak then let it overtake
  // half of the time. Bursts of messages (same instant, or closer than the latency jitter) must
  // arrive in send order, with random and with constant latency.
  for (const LinkOptions& links : {Latency(Duration::Micros(500), Duration::Micros(500)),
                                   Latency(Duration::Micros(500), Duration::Zero())}) {
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      NetFixture f(2, links, seed);
      const std::vector<std::string> sent = SendBursts(f, 50, 20);
      EXPECT_EQ(Payloads(f.got), sent) << "seed " << seed;
    }
  }
}

TEST(SimNetworkTest, ReorderLetsMessagesOvertake) {
  // The converse: with reorder = 1 the same bursts do arrive out of order (so the FIFO test above
  // is able to see reordering), and nothing is lost.
  LinkOptions links;
  links.reorder = {1, 1};
  NetFixture f(2, links);
  const std::vector<std::string> sent = SendBursts(f, 50, 20);
  const std::vector<std::string> got = Payloads(f.got);
  EXPECT_NE(got, sent);
  EXPECT_EQ(std::multiset<std::string>(got.begin(), got.end()),
            std::multiset<std::string>(sent.begin(), sent.end()));
}

TEST(SimNetworkTest, TotalLossDropsEverythingButSelfSends) {
  // loss = 1 drops every message on the link (counted), while a node's messages to itself are
  // exempt from faults.
  LinkOptions links;
  links.loss = {1, 1};
  NetFixture f(2, links);
  for (int i = 0; i < 100; ++i) f.Send(0, 1, "x");
  f.Send(0, 0, "self");
  f.RunAll();
  ASSERT_EQ(f.got.size(), 1u);
  EXPECT_EQ(f.got[0].payload, "self");
  EXPECT_EQ(f.net().stats().dropped_loss, 100u);
  EXPECT_EQ(f.net().stats().sent, 101u);
  EXPECT_EQ(f.net().stats().delivered, 1u);
}

TEST(SimNetworkTest, TotalDuplicationDeliversEveryMessageTwice) {
  // duplicate = 1: every message arrives exactly twice (protocols must be idempotent).
  LinkOptions links;
  links.duplicate = {1, 1};
  NetFixture f(2, links);
  for (int i = 0; i < 50; ++i) f.Send(0, 1, std::to_string(i));
  f.RunAll();
  std::map<std::string, int> count;
  for (const Delivery& d : f.got) ++count[d.payload];
  ASSERT_EQ(count.size(), 50u);
  for (const auto& [p, c] : count) EXPECT_EQ(c, 2) << p;
  EXPECT_EQ(f.net().stats().duplicated, 50u);
  EXPECT_EQ(f.net().stats().delivered, 100u);
}

TEST(SimNetworkTest, TotalCorruptionIsRejectedByTheDecoder) {
  // corrupt = 1 flips one bit per frame; the receiver's frame decoder must refuse every one, so no
  // corrupted payload ever reaches node code.
  LinkOptions links;
  links.corrupt = {1, 1};
  NetFixture f(2, links);
  for (int i = 0; i < 200; ++i) f.Send(0, 1, "payload-" + std::to_string(i));
  f.RunAll();
  EXPECT_TRUE(f.got.empty());
  EXPECT_EQ(f.net().stats().corrupted, 200u);
  EXPECT_EQ(f.net().stats().rejected, 200u);
  EXPECT_EQ(f.net().stats().delivered, 0u);
}

TEST(SimNetworkTest, PerLinkOptionsApplyToThatDirectedLinkOnly) {
  // SetLink configures one direction: loss on 0->1 must not touch 1->0 or 0->2.
  NetFixture f(3, LinkOptions{});
  LinkOptions lossy;
  lossy.loss = {1, 1};
  f.net().SetLink(0, 1, lossy);
  EXPECT_EQ(f.net().link(0, 1).loss.numerator, 1u);
  EXPECT_EQ(f.net().link(1, 0).loss.numerator, 0u);
  f.Send(0, 1, "a");
  f.Send(1, 0, "b");
  f.Send(0, 2, "c");
  f.RunAll();
  const std::vector<std::string> got = Payloads(f.got);
  EXPECT_EQ(std::multiset<std::string>(got.begin(), got.end()),
            (std::multiset<std::string>{"b", "c"}));
}

TEST(SimNetworkTest, SendRejectsUnknownNodesAndOversizedPayloads) {
  // Local misuse is the only error Send reports; nothing is counted as sent.
  NetFixture f(2, LinkOptions{});
  const std::vector<uint8_t> small(4);
  const std::vector<uint8_t> big(f.net().frame_limits().payload_bytes_max + 1);
  EXPECT_EQ(f.net().Send(0, 2, 1, 1, small).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.net().Send(2, 0, 1, 1, small).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.net().Send(0, 1, 1, 1, big).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.net().stats().sent, 0u);
}

// --- partitions --------------------------------------------------------------------------------

TEST(GrudgeTest, ShapesHaveTheirDocumentedStructureForFiveNodes) {
  // For n = 5 each shape must cut exactly the links its name promises, for many shuffles.
  constexpr uint32_t n = 5;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Rng rng(seed);
    {
      // Halves: sides of 2 and 3, every cross link cut both ways, nothing inside a side.
      const Grudge g = Grudge::Make(PartitionShape::kHalves, n, rng);
      EXPECT_EQ(g.blocked_links(), 12u);
      std::vector<int> side(n, -1);
      side[0] = 0;
      for (uint32_t j = 1; j < n; ++j) side[j] = g.blocked(0, j) ? 1 : 0;
      int size0 = 0;
      for (uint32_t i = 0; i < n; ++i) {
        size0 += side[i] == 0 ? 1 : 0;
        for (uint32_t j = 0; j < n; ++j) {
          EXPECT_EQ(g.blocked(i, j), side[i] != side[j]) << i << "->" << j;
        }
      }
      EXPECT_TRUE(size0 == 2 || size0 == 3);
    }
    {
      // IsolateOne: one node cut from all four others both ways (8 links), the rest intact.
      const Grudge g = Grudge::Make(PartitionShape::kIsolateOne, n, rng);
      EXPECT_EQ(g.blocked_links(), 8u);
      int isolated = 0;
      for (uint32_t i = 0; i < n; ++i) {
        int out = 0, in = 0;
        for (uint32_t j = 0; j < n; ++j) {
          out += g.blocked(i, j) ? 1 : 0;
          in += g.blocked(j, i) ? 1 : 0;
        }
        if (out == 4 && in == 4) {
          ++isolated;
        } else {
          EXPECT_TRUE(out == 1 && in == 1);
        }
      }
      EXPECT_EQ(isolated, 1);
    }
    {
      // Bridge: one node talks to everyone; the other four form two pairs cut from each other.
      const Grudge g = Grudge::Make(PartitionShape::kBridge, n, rng);
      EXPECT_EQ(g.blocked_links(), 8u);
      int bridges = 0;
      for (uint32_t i = 0; i < n; ++i) {
        int cut = 0;
        for (uint32_t j = 0; j < n; ++j) cut += (g.blocked(i, j) || g.blocked(j, i)) ? 1 : 0;
        if (cut == 0) {
          ++bridges;
        } else {
          EXPECT_EQ(cut, 2) << "node " << i;
        }
        for (uint32_t j = 0; j < n; ++j) EXPECT_EQ(g.blocked(i, j), g.blocked(j, i));
      }
      EXPECT_EQ(bridges, 1);
    }
    {
      // MajoritiesRing: each node reaches (and hears) exactly 3 of 5 including itself, and no two
      // nodes see the same majority.
      const Grudge g = Grudge::Make(PartitionShape::kMajoritiesRing, n, rng);
      std::set<std::vector<bool>> views;
      for (uint32_t i = 0; i < n; ++i) {
        std::vector<bool> view(n);
        int reach = 0;
        for (uint32_t j = 0; j < n; ++j) {
          view[j] = !g.blocked(i, j);
          reach += view[j] ? 1 : 0;
          EXPECT_EQ(g.blocked(i, j), g.blocked(j, i));
        }
        EXPECT_EQ(reach, 3) << "node " << i;
        EXPECT_TRUE(view[i]);
        views.insert(view);
      }
      EXPECT_EQ(views.size(), n);
    }
    {
      // OneWay: one node hears nobody but everybody hears it; nothing else is cut.
      const Grudge g = Grudge::Make(PartitionShape::kOneWay, n, rng);
      EXPECT_EQ(g.blocked_links(), 4u);
      int deaf = 0;
      for (uint32_t i = 0; i < n; ++i) {
        int in = 0, out = 0;
        for (uint32_t j = 0; j < n; ++j) {
          in += g.blocked(j, i) ? 1 : 0;
          out += g.blocked(i, j) ? 1 : 0;
        }
        if (in == 4) {
          ++deaf;
          EXPECT_EQ(out, 0);
        }
      }
      EXPECT_EQ(deaf, 1);
    }
  }
}

TEST(GrudgeTest, MakeIsDeterministicAndDescribeNamesTheCuts) {
  // The same nemesis draw must give the same grudge (replay), and Describe is what traces print.
  Rng a(3), b(3);
  const Grudge ga = Grudge::Make(PartitionShape::kHalves, 5, a);
  const Grudge gb = Grudge::Make(PartitionShape::kHalves, 5, b);
  EXPECT_EQ(ga.Describe(), gb.Describe());
  EXPECT_EQ(Grudge(3).Describe(), "none");
  Grudge g(3);
  g.Block(0, 2);
  g.Block(1, 2);
  g.Block(1, 1);  // self links are never cut
  EXPECT_EQ(g.Describe(), "2<-x{0,1}");
  EXPECT_EQ(g.blocked_links(), 2u);
  EXPECT_STREQ(PartitionShapeName(PartitionShape::kMajoritiesRing), "majorities-ring");
}

TEST(SimNetworkTest, PartitionBlocksExactlyTheGrudgesLinks) {
  // For every shape: after Partition(grudge), a message from i to j arrives iff the grudge does not
  // block (i, j); self-sends always arrive; Heal restores every link.
  constexpr uint32_t n = 5;
  for (int s = 0; s < kPartitionShapeCount; ++s) {
    NetFixture f(n, LinkOptions{}, 10 + s);
    Rng rng(s);
    const Grudge g = Grudge::Make(static_cast<PartitionShape>(s), n, rng);
    f.net().Partition(g);
    for (uint32_t i = 0; i < n; ++i) {
      for (uint32_t j = 0; j < n; ++j) {
        EXPECT_EQ(f.net().blocked(i, j), g.blocked(i, j));
        f.Send(i, j, std::to_string(i) + ">" + std::to_string(j));
      }
    }
    f.RunAll();
    std::set<std::pair<uint32_t, uint32_t>> arrived;
    for (const Delivery& d : f.got) arrived.insert({d.from, d.to});
    for (uint32_t i = 0; i < n; ++i) {
      for (uint32_t j = 0; j < n; ++j) {
        EXPECT_EQ(arrived.count({i, j}) == 1, !g.blocked(i, j))
            << PartitionShapeName(static_cast<PartitionShape>(s)) << " " << i << "->" << j;
      }
    }
    EXPECT_EQ(f.net().stats().dropped_partition, g.blocked_links());

    f.got.clear();
    f.net().Heal();
    for (uint32_t i = 0; i < n; ++i) {
      for (uint32_t j = 0; j < n; ++j) f.Send(i, j, "healed");
    }
    f.RunAll();
    EXPECT_EQ(f.got.size(), size_t{n} * n);
  }
}

TEST(SimNetworkTest, ClogDelaysUntilTheClogLifts) {
  // A clogged link holds messages until the clog ends, then delivers them (in order); other links
  // and the reverse direction are unaffected, and later sends are normal again.
  NetFixture f(3, Latency(Duration::Millis(1), Duration::Zero()));
  const Duration until = Duration::Seconds(1);
  f.net().Clog(0, 1, SimTime::FromNanos(until.nanos()));
  f.Send(0, 1, "c1");
  f.Send(0, 1, "c2");
  f.Send(1, 0, "reverse");
  f.Send(0, 2, "other");
  f.RunAll();
  ASSERT_EQ(f.got.size(), 4u);
  std::map<std::string, int64_t> at;
  for (const Delivery& d : f.got) at[d.payload] = d.at_ns;
  EXPECT_EQ(at["reverse"], Duration::Millis(1).nanos());
  EXPECT_EQ(at["other"], Duration::Millis(1).nanos());
  EXPECT_GE(at["c1"], until.nanos());
  EXPECT_GE(at["c2"], at["c1"]);
  EXPECT_LT(at["c1"], (until + Duration::Millis(2)).nanos());
  EXPECT_EQ(Payloads(f.got).back(), "c2");

  f.got.clear();
  const int64_t t = f.now_ns();
  f.Send(0, 1, "after");
  f.RunAll();
  ASSERT_EQ(f.got.size(), 1u);
  EXPECT_EQ(f.got[0].at_ns - t, Duration::Millis(1).nanos());
}

TEST(SimNetworkTest, HeldMessagesWaitForRelease) {
  // Hold keeps messages in flight indefinitely; Release sends them on, in order.
  NetFixture f(2, LinkOptions{});
  f.net().Hold(0, 1);
  f.Send(0, 1, "h1");
  f.Send(0, 1, "h2");
  f.Send(1, 0, "free");
  f.RunUntil(Duration::Seconds(100));
  EXPECT_EQ(Payloads(f.got), std::vector<std::string>{"free"});
  f.got.clear();
  f.net().Release(0, 1);
  f.RunAll();
  EXPECT_EQ(Payloads(f.got), (std::vector<std::string>{"h1", "h2"}));
  for (const Delivery& d : f.got) EXPECT_GT(d.at_ns, Duration::Seconds(100).nanos());
}

TEST(SimNetworkTest, ClearFaultsEndsEveryNetworkFault) {
  // ClearFaults heals, unclogs, releases held messages and resets link options to the defaults.
  const LinkOptions defaults = Latency(Duration::Millis(1), Duration::Zero());
  NetFixture f(3, defaults);
  Grudge g(3);
  g.BlockBoth(0, 2);
  f.net().Partition(g);
  f.net().Clog(1, 2, SimTime::FromNanos(Duration::Seconds(1000).nanos()));
  f.net().Hold(2, 1);
  f.Send(2, 1, "held");
  LinkOptions lossy = defaults;
  lossy.loss = {1, 1};
  f.net().SetAllLinks(lossy);
  f.net().ClearFaults(defaults);
  f.Send(0, 2, "was-partitioned");
  f.Send(1, 2, "was-clogged");
  f.Send(0, 1, "was-lossy");
  f.RunAll();
  std::multiset<std::string> got;
  for (const Delivery& d : f.got) {
    got.insert(d.payload);
    EXPECT_LE(d.at_ns, Duration::Millis(1).nanos());
  }
  EXPECT_EQ(got,
            (std::multiset<std::string>{"held", "was-partitioned", "was-clogged", "was-lossy"}));
}

// --- receivers that are paused or crashed (through a World) ----------------------------------

class Recorder final : public Node {
 public:
  Recorder(Env& env, std::vector<std::string>* log) {
    env.transport().SetHandler([log](NodeId, const FrameView& f) {
      log->emplace_back(f.payload.begin(), f.payload.end());
    });
  }
};

WorldOptions TwoNodes() {
  WorldOptions o;
  o.node_count = 2;
  return o;
}

void Send(World& w, NodeId from, NodeId to, std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  ASSERT_TRUE(w.env(from).transport().Send(to, 1, 1, std::span<const uint8_t>(p, s.size())).ok());
}

TEST(SimNetworkTest, MessagesToAPausedNodeWaitAndArriveInOrderAfterResume) {
  // A paused process (SIGSTOP) does not read its socket: messages wait and are all delivered, in
  // arrival order, once it resumes.
  World world(1, TwoNodes());
  std::vector<std::string> log0, log1;
  world.Boot(NodeId(0), [&log0](Env& env) { return std::make_unique<Recorder>(env, &log0); });
  world.Boot(NodeId(1), [&log1](Env& env) { return std::make_unique<Recorder>(env, &log1); });
  world.Pause(NodeId(1));
  for (int i = 0; i < 10; ++i) {
    Send(world, NodeId(0), NodeId(1), std::string("m").append(std::to_string(i)));
    world.RunFor(Duration::Millis(1));
  }
  world.RunFor(Duration::Seconds(5));
  EXPECT_TRUE(log1.empty());
  world.Resume(NodeId(1));
  world.RunFor(Duration::Millis(1));
  std::vector<std::string> expected;
  for (int i = 0; i < 10; ++i) expected.push_back(std::string("m").append(std::to_string(i)));
  EXPECT_EQ(log1, expected);
  EXPECT_EQ(world.network().stats().dropped_down, 0u);
}

TEST(SimNetworkTest, MessagesToACrashedNodeAreDropped) {
  // Messages in flight to, or sent to, a crashed process are lost and counted as dropped_down;
  // after a restart new messages arrive again.
  World world(1, TwoNodes());
  std::vector<std::string> log0, log1;
  world.Boot(NodeId(0), [&log0](Env& env) { return std::make_unique<Recorder>(env, &log0); });
  world.Boot(NodeId(1), [&log1](Env& env) { return std::make_unique<Recorder>(env, &log1); });
  Send(world, NodeId(0), NodeId(1), "in-flight");
  world.Crash(NodeId(1));
  Send(world, NodeId(0), NodeId(1), "to-dead");
  world.RunFor(Duration::Seconds(1));
  EXPECT_TRUE(log1.empty());
  EXPECT_EQ(world.network().stats().dropped_down, 2u);
  world.Restart(NodeId(1));
  Send(world, NodeId(0), NodeId(1), "after-restart");
  world.RunFor(Duration::Seconds(1));
  EXPECT_EQ(log1, std::vector<std::string>{"after-restart"});
}

TEST(SimNetworkTest, PausedThenCrashedNodeLosesItsWaitingMessages) {
  // Messages parked at a paused node are lost (and counted) when it crashes instead of resuming.
  World world(1, TwoNodes());
  std::vector<std::string> log0, log1;
  world.Boot(NodeId(0), [&log0](Env& env) { return std::make_unique<Recorder>(env, &log0); });
  world.Boot(NodeId(1), [&log1](Env& env) { return std::make_unique<Recorder>(env, &log1); });
  world.Pause(NodeId(1));
  Send(world, NodeId(0), NodeId(1), "a");
  Send(world, NodeId(0), NodeId(1), "b");
  world.RunFor(Duration::Seconds(1));
  world.Crash(NodeId(1));
  world.RunFor(Duration::Seconds(1));
  EXPECT_EQ(world.network().stats().dropped_down, 2u);
  world.Restart(NodeId(1));
  world.RunFor(Duration::Seconds(1));
  EXPECT_TRUE(log1.empty());
}

}  // namespace
}  // namespace faultline::sim
