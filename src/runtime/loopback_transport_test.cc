// Unit tests for faultline/runtime/loopback_transport.h over real UDP sockets on 127.0.0.1:
// frames cross intact or not at all (with the kernel's own drop count closing the books), corrupt
// and unknown-sender datagrams are counted and never handed over, and drop rules act in the
// direction asked.
#include "faultline/runtime/loopback_transport.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "src/runtime/runtime_test_util.h"

namespace faultline::runtime {
namespace {

using Bytes = std::vector<uint8_t>;

using testing::FreePorts;
using testing::OpenEnv;
using testing::PumpUntil;
using testing::RawUdp;

// The payload of message `seq`: its length and bytes are functions of seq alone.
Bytes PayloadFor(uint32_t seq) {
  uint64_t state = seq;
  const size_t len = 8 + SplitMix64(state) % 1400;
  Bytes out(len);
  for (size_t i = 0; i < len; ++i) out[i] = static_cast<uint8_t>(SplitMix64(state));
  out[0] = static_cast<uint8_t>(seq);
  out[1] = static_cast<uint8_t>(seq >> 8);
  out[2] = static_cast<uint8_t>(seq >> 16);
  out[3] = static_cast<uint8_t>(seq >> 24);
  return out;
}

// The kernel's receive-buffer drop count for the UDP socket bound to 127.0.0.1:port
// (/proc/net/udp, last column), so "sent = delivered + dropped" can be checked exactly.
uint64_t KernelDrops(uint16_t port) {
  std::ifstream in("/proc/net/udp");
  std::string line;
  char want[16];
  std::snprintf(want, sizeof(want), "0100007F:%04X", port);
  while (std::getline(in, line)) {
    if (line.find(want) == std::string::npos) continue;
    std::istringstream fields(line);
    std::string field, last;
    while (fields >> field) last = field;
    return std::stoull(last);
  }
  return 0;
}

TEST(LoopbackTransportTest, FramesArriveIntactOrAreDroppedAcrossTwoThreads) {
  const auto ports = FreePorts(2);
  auto a = OpenEnv(0, ports);
  auto b = OpenEnv(1, ports);
  constexpr uint32_t kMessages = 5000;
  std::atomic<uint32_t> delivered{0};
  std::atomic<uint32_t> damaged{0};
  b->transport().SetHandler([&](NodeId from, const FrameView& f) {
    uint32_t seq = 0;
    if (f.payload.size() >= 4) {
      seq = f.payload[0] | f.payload[1] << 8 | f.payload[2] << 16 | uint32_t{f.payload[3]} << 24;
    }
    const Bytes want = PayloadFor(seq);
    const bool ok = from == NodeId(0) && f.type == 42 && f.schema_version == 3 &&
                    Bytes(f.payload.begin(), f.payload.end()) == want;
    (ok ? delivered : damaged).fetch_add(1);
  });
  std::thread receiver([&] { b->Run(); });

  // Paced sender: bursts of 32 every 200 us while at most 256 are unaccounted for (neither
  // delivered nor dropped by the kernel), so a descheduled receiver does not lose most of them.
  uint32_t next = 0;
  std::function<void()> burst = [&] {
    const auto accounted = [&] {
      return delivered.load() + damaged.load() + KernelDrops(ports[1]);
    };
    for (int i = 0; i < 32 && next < kMessages && next - accounted() < 256; ++i, ++next) {
      const Bytes p = PayloadFor(next);
      ASSERT_TRUE(a->transport().Send(NodeId(1), 42, 3, p).ok());
    }
    if (next < kMessages) a->executor().ScheduleAfter(Duration::Micros(200), [&] { burst(); });
  };
  burst();
  ASSERT_TRUE(PumpUntil(
      {a.get()}, [&] { return next == kMessages; }, Duration::Seconds(8)));
  const TransportStats sa = a->loopback().stats();
  const uint64_t handed_to_kernel = sa.sent;
  EXPECT_EQ(sa.sent + sa.dropped_buffer_full, kMessages);
  // Every datagram handed to the kernel is either delivered intact or counted as a kernel drop.
  const int64_t end = HostMonotonicNanos() + Duration::Seconds(5).nanos();
  while (delivered.load() + damaged.load() + KernelDrops(ports[1]) < handed_to_kernel &&
         HostMonotonicNanos() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  b->Stop();
  receiver.join();
  EXPECT_EQ(damaged.load(), 0u);
  EXPECT_EQ(b->loopback().stats().dropped_corrupt, 0u);
  EXPECT_EQ(delivered.load() + KernelDrops(ports[1]), handed_to_kernel);
  EXPECT_GE(delivered.load(), kMessages / 2) << "too few delivered to mean anything";
  std::printf("delivered %u of %u (kernel drops %llu, send buffer full %llu)\n", delivered.load(),
              kMessages, static_cast<unsigned long long>(KernelDrops(ports[1])),
              static_cast<unsigned long long>(sa.dropped_buffer_full));
}

TEST(LoopbackTransportTest, CorruptAndUnknownDatagramsAreCountedAndNeverHandedOver) {
  const auto ports = FreePorts(1);
  RawUdp registered;  // a peer's port, driven by hand
  RawUdp stranger;    // in nobody's table
  auto b = OpenEnv(0, ports, {Peer{NodeId(9), registered.port(), false}});
  std::vector<Bytes> seen;
  b->transport().SetHandler([&](NodeId from, const FrameView& f) {
    EXPECT_EQ(from, NodeId(9));
    seen.emplace_back(f.payload.begin(), f.payload.end());
  });
  const Bytes payload = {'i', 'n', 't', 'a', 'c', 't'};
  Bytes good;
  ASSERT_TRUE(EncodeFrame(5, 1, payload, &good).ok());

  uint64_t corrupt = 0;
  Rng rng(99);
  // Sends one bad datagram; every 64, lets the loop drain so no kernel buffer ever overflows.
  const auto send_bad = [&](const Bytes& bytes) {
    registered.SendTo(ports[0], bytes);
    ++corrupt;
    if (corrupt % 64 == 0) {
      ASSERT_TRUE(
          PumpUntil({b.get()}, [&] { return b->loopback().stats().dropped_corrupt == corrupt; }));
    }
  };
  // Every single-bit flip of a valid frame (CRC-32C catches them all), truncations, an extended
  // frame, random garbage and an empty datagram.
  for (size_t bit = 0; bit < good.size() * 8; ++bit) {
    Bytes flipped = good;
    flipped[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    send_bad(flipped);
  }
  for (size_t len = 0; len < good.size(); ++len) {
    send_bad(Bytes(good.begin(), good.begin() + static_cast<long>(len)));
  }
  Bytes longer = good;
  longer.push_back(0);
  send_bad(longer);
  for (int i = 0; i < 50; ++i) {
    Bytes junk(1 + rng.Uniform(200));
    for (auto& x : junk) x = static_cast<uint8_t>(rng.Next());
    send_bad(junk);
  }
  registered.SendTo(ports[0], good);
  for (int i = 0; i < 5; ++i) stranger.SendTo(ports[0], good);

  const auto settled = [&] {
    const TransportStats s = b->loopback().stats();
    return s.dropped_corrupt == corrupt && s.dropped_unknown_sender == 5 && s.received == 1;
  };
  ASSERT_TRUE(PumpUntil({b.get()}, settled)) << b->loopback().stats().dropped_corrupt;
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], payload);
}

TEST(LoopbackTransportTest, DropRulesActInTheDirectionAsked) {
  const auto ports = FreePorts(2);
  auto a = OpenEnv(0, ports);
  auto b = OpenEnv(1, ports);
  int at_a = 0, at_b = 0;
  a->transport().SetHandler([&](NodeId, const FrameView&) { ++at_a; });
  b->transport().SetHandler([&](NodeId, const FrameView&) { ++at_b; });
  const Bytes p = {1, 2, 3};
  // One message each way; pumps until both are accounted for: delivered, or dropped by a rule
  // (counted at the sender for outbound rules, at the receiver for inbound ones).
  const auto exchange = [&](int* want_a, int* want_b) {
    const int a0 = at_a, b0 = at_b;
    const auto rule_drops = [&] {
      return a->loopback().stats().dropped_by_rule + b->loopback().stats().dropped_by_rule;
    };
    const uint64_t d0 = rule_drops();
    ASSERT_TRUE(a->transport().Send(NodeId(1), 1, 1, p).ok());
    ASSERT_TRUE(b->transport().Send(NodeId(0), 1, 1, p).ok());
    ASSERT_TRUE(PumpUntil({a.get(), b.get()}, [&] {
      return static_cast<uint64_t>(at_a - a0 + at_b - b0) + (rule_drops() - d0) == 2;
    }));
    *want_a = at_a - a0;
    *want_b = at_b - b0;
  };
  int got_a = 0, got_b = 0;
  exchange(&got_a, &got_b);
  EXPECT_EQ(got_a, 1);
  EXPECT_EQ(got_b, 1);

  ASSERT_TRUE(a->loopback().Block(NodeId(1), Direction::kOutbound).ok());
  EXPECT_TRUE(a->loopback().blocked(NodeId(1), Direction::kOutbound));
  EXPECT_FALSE(a->loopback().blocked(NodeId(1), Direction::kInbound));
  exchange(&got_a, &got_b);
  EXPECT_EQ(got_a, 1);  // b -> a still flows
  EXPECT_EQ(got_b, 0);  // a -> b dropped at a's send
  EXPECT_EQ(a->loopback().stats().dropped_by_rule, 1u);

  ASSERT_TRUE(a->loopback().Unblock(NodeId(1)).ok());
  ASSERT_TRUE(a->loopback().Block(NodeId(1), Direction::kInbound).ok());
  exchange(&got_a, &got_b);
  EXPECT_EQ(got_a, 0);  // b -> a dropped on arrival at a
  EXPECT_EQ(got_b, 1);
  EXPECT_EQ(a->loopback().stats().dropped_by_rule, 2u);
  EXPECT_EQ(b->loopback().stats().sent, 3u);  // b's send was not refused: the drop is a's

  ASSERT_TRUE(a->loopback().Block(NodeId(1), Direction::kBoth).ok());
  exchange(&got_a, &got_b);
  EXPECT_EQ(got_a + got_b, 0);
  a->loopback().HealAll();
  exchange(&got_a, &got_b);
  EXPECT_EQ(got_a + got_b, 2);

  EXPECT_EQ(a->loopback().Block(NodeId(77), Direction::kBoth).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a->transport().Send(NodeId(77), 1, 1, p).code(), StatusCode::kInvalidArgument);
  const Bytes huge(70'000);
  EXPECT_EQ(a->transport().Send(NodeId(1), 1, 1, huge).code(), StatusCode::kInvalidArgument);
}

TEST(LoopbackTransportTest, NeverBlockedPeerIgnoresRules) {
  const auto ports = FreePorts(2);
  auto a = OpenEnv(0, {ports[0]}, {Peer{NodeId(5), ports[1], true}});  // 5: the harness
  ASSERT_TRUE(a->loopback().Block(NodeId(5), Direction::kBoth).ok());
  EXPECT_FALSE(a->loopback().blocked(NodeId(5), Direction::kOutbound));
  EXPECT_FALSE(a->loopback().blocked(NodeId(5), Direction::kInbound));
}

TEST(LoopbackTransportTest, BindConflictIsAStatusNotACrash) {
  RawUdp taken;
  RealEnvOptions o;
  o.self = NodeId(0);
  o.peers = {Peer{NodeId(0), taken.port(), false}};
  auto env = RealEnv::Open(o);
  EXPECT_EQ(env.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace faultline::runtime
