// Unit, property and concurrency tests for faultline/time/hlc.h: the hybrid logical clock's exact
// update rules (Kulkarni et al.), its max_offset guard, clock-jump detection, logical overflow,
// restart monotonicity through HlcPersistence, and lock-free thread safety. Every test drives the
// clock through an injected Clock (ManualClock, a scripted clock, or the simulator's SimClock), so
// physical time is exact and reproducible.
#include "faultline/time/hlc.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/core/crc32c.h"
#include "faultline/core/random.h"
#include "faultline/sim/disk.h"
#include "faultline/sim/world.h"

namespace faultline {
namespace {

constexpr int64_t kBaseWallUs = 1'700'000'000'000'000;  // ManualClock's default wall start

WallTime WallUs(int64_t us) { return WallTime::FromNanos(us * 1000); }
uint64_t WallToUs(WallTime t) { return static_cast<uint64_t>(t.nanos() / 1000); }
HlcTimestamp Ts(uint64_t physical_us, uint64_t logical) {
  return HlcTimestamp::FromParts(physical_us, logical);
}

std::unique_ptr<Hlc> MakeHlc(Clock& clock, Duration max_offset = Duration::Millis(500)) {
  HlcOptions options;
  options.max_offset = max_offset;
  Result<std::unique_ptr<Hlc>> hlc = Hlc::Create(clock, std::move(options));
  FL_ASSERT(hlc.ok());
  return std::move(hlc).value();
}

// ---- HlcTimestamp / HlcStamp ----

TEST(HlcTimestampTest, PackingIsPhysicalMicrosHigh52LogicalLow12) {
  // The layout is YugabyteDB's (micros << 12 | logical) and is what goes on the wire and to disk;
  // pin it, and that comparing packed values is comparing (l, c) lexicographically.
  const HlcTimestamp t = Ts(1'700'000'000'000'000, 7);
  EXPECT_EQ(t.raw(), (uint64_t{1'700'000'000'000'000} << 12) | 7);
  EXPECT_EQ(t.physical_us(), 1'700'000'000'000'000u);
  EXPECT_EQ(t.logical(), 7u);
  EXPECT_LT(Ts(5, 4095), Ts(6, 0));
  EXPECT_LT(Ts(5, 1), Ts(5, 2));
  EXPECT_EQ(Ts(5, 4095).raw() + 1, Ts(6, 0).raw());  // the carry rule is "raw + 1"
  EXPECT_EQ(HlcTimestamp::Min().raw(), 0u);
  EXPECT_EQ(HlcTimestamp::Max().physical_us(), HlcTimestamp::kPhysicalMaxUs);
  EXPECT_EQ(HlcTimestamp::Max().logical(), HlcTimestamp::kLogicalMax);
  EXPECT_EQ(HlcTimestamp(), HlcTimestamp::Min());
  EXPECT_EQ(t.ToString(), "1700000000000000.7");
}

TEST(HlcTimestampTest, WallTimeConversionFloorsToMicrosAndSaturates) {
  // The HLC's pt is floor(wall / 1 µs); a wall clock before 1970 or past the 52-bit range must
  // not wrap into a small or garbage physical part.
  EXPECT_EQ(HlcTimestamp::FromWallTime(WallTime::FromNanos(5'999)), Ts(5, 0));
  EXPECT_EQ(HlcTimestamp::FromWallTime(WallTime::FromNanos(-1)), HlcTimestamp::Min());
  EXPECT_EQ(HlcTimestamp::FromWallTime(WallTime::Max()).physical_us(),
            HlcTimestamp::kPhysicalMaxUs);
  EXPECT_EQ(Ts(42, 9).ToWallTime(), WallTime::FromNanos(42'000));
  EXPECT_EQ(HlcTimestamp::FromWallTime(Ts(42, 0).ToWallTime()), Ts(42, 0));
}

TEST(HlcStampTest, TotalOrderBreaksTimestampTiesByNodeId) {
  // Two nodes can issue the same HlcTimestamp; (ts, node) must still order them, and the
  // timestamp must dominate the node id.
  const HlcStamp a{Ts(10, 1), NodeId(2)};
  const HlcStamp b{Ts(10, 1), NodeId(3)};
  const HlcStamp c{Ts(10, 2), NodeId(0)};
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_LT(a, c);
  EXPECT_EQ(a, (HlcStamp{Ts(10, 1), NodeId(2)}));
}

TEST(HlcOptionsTest, ValidateRejectsOffsetsOutsideLimits) {
  // max_offset is compared in whole microseconds and capped (CockroachDB caps at 5 s); an invalid
  // value must never build a clock.
  ManualClock clock;
  for (Duration bad : {Duration::Zero(), Duration::Nanos(999), Duration::Nanos(1'500),
                       Duration::Seconds(5) + Duration::Micros(1), -Duration::Millis(1)}) {
    HlcOptions options;
    options.max_offset = bad;
    EXPECT_EQ(options.Validate().code(), StatusCode::kInvalidArgument) << bad.nanos();
    EXPECT_FALSE(Hlc::Create(clock, options).ok());
  }
  HlcOptions ok;
  ok.max_offset = Duration::Micros(1);
  EXPECT_TRUE(ok.Validate().ok());
  ok.max_offset = HlcOptions::kMaxOffsetMax;
  EXPECT_TRUE(ok.Validate().ok());
}

// ---- The rules ----

TEST(HlcTest, CockroachDbTestVector) {
  // CockroachDB's TestHLCClock (pkg/util/hlc/hlc_test.go), maxOffset 1000 ns, physical time in ns.
  // Mapping: their ns are our µs (wall = Unix epoch + N µs), so maxOffset 1000 ns -> 1000 µs.
  // Their recv step is Now(); Update(m); Now() where Update only ratchets; the paper's receive
  // event that our Update() implements is exactly "ratchet, then tick", so each recv step here is
  // Now(); Update(m) and Update's result is their final Now(). A wrong case of the receive rule or
  // a naive "l + 1" implementation diverges on one of these rows.
  ManualClock clock(MonoTime::FromNanos(0), WallUs(5));
  auto hlc = MakeHlc(clock, Duration::Micros(1000));
  struct Step {
    int64_t wall_us;
    bool recv;
    HlcTimestamp input;
    HlcTimestamp expected;
  };
  const Step steps[] = {
      {5, false, {}, Ts(5, 0)},
      {6, false, {}, Ts(6, 0)},
      {10, true, Ts(10, 5), Ts(10, 6)},
      {7, false, {}, Ts(10, 7)},            // the physical clock jumps back
      {8, true, Ts(10, 4), Ts(10, 9)},      // wall parts tie, the local logical wins
      {10, true, Ts(10, 99), Ts(10, 100)},  // wall parts tie, the remote logical wins
      {11, true, Ts(10, 31), Ts(11, 1)},    // the physical clock caught up and takes over
      {11, false, {}, Ts(11, 2)},
  };
  for (size_t i = 0; i < std::size(steps); ++i) {
    const Step& s = steps[i];
    clock.SetWall(WallUs(s.wall_us));
    HlcTimestamp got;
    if (s.recv) {
      const HlcTimestamp previous = hlc->Now();
      Result<HlcTimestamp> r = hlc->Update(s.input);
      ASSERT_TRUE(r.ok()) << i << ": " << r.status().ToString();
      got = *r;
      EXPECT_GT(got, previous) << i << ": clock not updated";
    } else {
      got = hlc->Now();
    }
    EXPECT_EQ(got, s.expected) << "step " << i << ": got " << got.ToString();
    EXPECT_EQ(hlc->current(), got);
  }
  EXPECT_EQ(hlc->remote_rejections(), 0u);
  EXPECT_EQ(hlc->logical_overflows(), 0u);
}

TEST(HlcTest, RemoteTooFarAheadIsRejectedAndLeavesClockUntouched) {
  // CockroachDB's UpdateAndCheckMaxOffset: a remote more than max_offset ahead of the local
  // physical clock is untrustworthy; accepting it would drag this node's clock (and every node it
  // talks to) away from real time. Exactly max_offset ahead is still accepted.
  ManualClock clock;
  auto hlc = MakeHlc(clock);  // max_offset 500 ms
  const HlcTimestamp before = hlc->Now();
  const uint64_t pt = WallToUs(clock.WallNow());
  const HlcTimestamp too_far = Ts(pt + 500'000 + 1, 0);
  Result<HlcTimestamp> rejected = hlc->Update(too_far);
  EXPECT_EQ(rejected.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(hlc->current(), before);
  EXPECT_EQ(hlc->Observe(too_far).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(hlc->current(), before);
  EXPECT_EQ(hlc->remote_rejections(), 2u);

  Result<HlcTimestamp> at_bound = hlc->Update(Ts(pt + 500'000, 7));
  ASSERT_TRUE(at_bound.ok()) << at_bound.status().ToString();
  EXPECT_EQ(*at_bound, Ts(pt + 500'000, 8));
  EXPECT_TRUE(hlc->Observe(Ts(pt + 500'000, 9)).ok());
  EXPECT_EQ(hlc->current(), Ts(pt + 500'000, 9));
  EXPECT_EQ(hlc->Now(), Ts(pt + 500'000, 10));
  EXPECT_EQ(hlc->remote_rejections(), 2u);
}

TEST(HlcTest, ObserveRatchetsWithoutTickingAndStaleRemoteIsANoOp) {
  // Observe is CockroachDB's Update: it moves the clock to max(current, remote) and issues no
  // timestamp, so Observe then Now equals the paper's receive event (Update). A stale remote must
  // change nothing (the CAS-free fast path).
  ManualClock clock(MonoTime::FromNanos(0), WallUs(100));
  auto a = MakeHlc(clock, Duration::Micros(1000));
  auto b = MakeHlc(clock, Duration::Micros(1000));
  EXPECT_EQ(a->Now(), Ts(100, 0));
  EXPECT_EQ(b->Now(), Ts(100, 0));
  ASSERT_TRUE(a->Observe(Ts(150, 3)).ok());
  EXPECT_EQ(a->current(), Ts(150, 3));
  const Result<HlcTimestamp> received = b->Update(Ts(150, 3));
  ASSERT_TRUE(received.ok());
  EXPECT_EQ(a->Now(), *received);
  ASSERT_TRUE(a->Observe(Ts(120, 9)).ok());  // stale
  EXPECT_EQ(a->current(), Ts(150, 4));
}

TEST(HlcTest, BackwardJumpKeepsMonotoneByTickingLogicalAndIsCounted) {
  // An NTP step back must not make the HLC go back: l holds and c ticks until pt catches up. A
  // step back of more than max_offset / 10 (50 ms here) is counted; exactly 50 ms is not.
  ManualClock clock;
  auto hlc = MakeHlc(clock);
  const HlcTimestamp t0 = hlc->Now();
  clock.SetWall(clock.WallNow() - Duration::Millis(50));
  const HlcTimestamp t1 = hlc->Now();
  EXPECT_EQ(t1, Ts(t0.physical_us(), 1));
  EXPECT_EQ(hlc->backward_jumps(), 0u);
  clock.SetWall(clock.WallNow() - Duration::Millis(50) - Duration::Micros(1));
  const HlcTimestamp t2 = hlc->Now();
  EXPECT_EQ(t2, Ts(t0.physical_us(), 2));
  EXPECT_EQ(hlc->backward_jumps(), 1u);
  EXPECT_EQ(hlc->forward_jump_alarms(), 0u);
  // Catching up with real time (mono and wall advance together) is not a jump.
  clock.Advance(Duration::Millis(200));
  const HlcTimestamp t3 = hlc->Now();
  EXPECT_EQ(t3, Ts(WallToUs(clock.WallNow()), 0));
  EXPECT_GT(t3.physical_us(), t0.physical_us());
  EXPECT_EQ(hlc->backward_jumps(), 1u);
  EXPECT_EQ(hlc->forward_jump_alarms(), 0u);
}

TEST(HlcTest, ForwardJumpAlarmFiresAtHalfMaxOffsetNotBelow) {
  // A forward step of the wall clock (not matched by the monotonic clock) of >= max_offset / 2
  // makes this node's timestamps leap ahead of its peers: CockroachDB fatals on it (opt-in). The
  // alarm must fire at exactly 250 ms (max_offset 500 ms) and not at 250 ms - 1 µs, and must not
  // fire when real time passes (mono and wall both advance, however far).
  ManualClock clock;
  std::vector<HlcAlarm> alarms;
  HlcOptions options;
  options.on_alarm = [&alarms](const HlcAlarm& a) { alarms.push_back(a); };
  auto hlc = std::move(Hlc::Create(clock, options)).value();
  hlc->Now();
  clock.Advance(Duration::Seconds(10));
  hlc->Now();
  EXPECT_EQ(hlc->forward_jump_alarms(), 0u);
  clock.SetWall(clock.WallNow() + Duration::Millis(250) - Duration::Micros(1));
  hlc->Now();
  EXPECT_EQ(hlc->forward_jump_alarms(), 0u);
  clock.SetWall(clock.WallNow() + Duration::Millis(250));
  const HlcTimestamp after = hlc->Now();
  EXPECT_EQ(after, Ts(WallToUs(clock.WallNow()), 0));  // the HLC follows the new wall time
  EXPECT_EQ(hlc->forward_jump_alarms(), 1u);
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms[0].kind, HlcAlarmKind::kForwardJump);
  EXPECT_EQ(alarms[0].jump, Duration::Millis(250));
  EXPECT_EQ(HlcAlarmKindName(alarms[0].kind), "forward_jump");
  // Jump detection also runs for receive events and PhysicalNow.
  clock.SetWall(clock.WallNow() + Duration::Millis(300));
  EXPECT_EQ(hlc->PhysicalNow(), Ts(WallToUs(clock.WallNow()), 0));
  EXPECT_EQ(hlc->forward_jump_alarms(), 2u);
}

// A clock that replays scripted (mono, wall) readings: to model a thread descheduled between the
// HLC's monotonic and wall-clock reads.
class ScriptedClock final : public Clock {
 public:
  std::deque<int64_t> mono_ns;
  std::deque<int64_t> wall_ns;
  MonoTime Now() override { return MonoTime::FromNanos(Pop(mono_ns)); }
  WallTime WallNow() override { return WallTime::FromNanos(Pop(wall_ns)); }

 private:
  static int64_t Pop(std::deque<int64_t>& q) {
    FL_ASSERT(!q.empty());
    const int64_t v = q.front();
    if (q.size() > 1) q.pop_front();  // the last value repeats
    return v;
  }
};

TEST(HlcTest, PreemptionBetweenClockReadsIsNotAForwardJump) {
  // A reading is mono then wall. A thread descheduled for 400 ms between the two sees wall - mono
  // 400 ms larger than it is: without confirmation that is a false forward-jump alarm (and on the
  // next clean reading a false backward jump). The suspicious reading is re-taken as mono, wall,
  // mono; if that one is preempted too (the sandwich is wide), it is not used for detection.
  ScriptedClock clock;
  const int64_t w = kBaseWallUs * 1000;
  const int64_t p = Duration::Millis(400).nanos();
  const int64_t us = 1000;
  // Create: (mono, wall). Now 1: clean pair. Now 2: pair preempted, confirmation clean.
  // Now 3: pair preempted, confirmation preempted again. Now 4: clean pair.
  clock.mono_ns = {0, 0, 0, p, p, p, 2 * p, 3 * p, 3 * p + us};
  clock.wall_ns = {w, w, w + p, w + p, w + 2 * p, w + 3 * p, w + 3 * p + us};
  auto hlc = MakeHlc(clock);
  EXPECT_EQ(hlc->Now(), Ts(static_cast<uint64_t>(kBaseWallUs), 0));
  EXPECT_EQ(hlc->Now(), Ts(static_cast<uint64_t>(kBaseWallUs) + 400'000, 0));
  EXPECT_EQ(hlc->Now(), Ts(static_cast<uint64_t>(kBaseWallUs) + 1'200'000, 0));
  EXPECT_EQ(hlc->Now(), Ts(static_cast<uint64_t>(kBaseWallUs) + 1'200'001, 0));
  EXPECT_EQ(hlc->forward_jump_alarms(), 0u);
  EXPECT_EQ(hlc->backward_jumps(), 0u);
  // A real step is still caught through the same path.
  clock.mono_ns = {3 * p + 2 * us};
  clock.wall_ns = {w + 3 * p + 2 * us + Duration::Millis(300).nanos()};
  hlc->Now();
  EXPECT_EQ(hlc->forward_jump_alarms(), 1u);
}

TEST(HlcTest, LogicalOverflowCarriesIntoPhysicalAndIsReported) {
  // With the physical clock stuck, 4096 events in one microsecond exhaust the 12-bit counter; the
  // next must carry to (l + 1 µs, 0) — still larger than everything before — and be reported,
  // both for local events and for a receive of a remote whose counter is at 4095.
  ManualClock clock(MonoTime::FromNanos(0), WallUs(1000));
  std::vector<HlcAlarm> alarms;
  HlcOptions options;
  options.max_offset = Duration::Millis(1);
  options.on_alarm = [&alarms](const HlcAlarm& a) { alarms.push_back(a); };
  auto hlc = std::move(Hlc::Create(clock, options)).value();
  HlcTimestamp last = hlc->Now();
  EXPECT_EQ(last, Ts(1000, 0));
  for (int i = 1; i <= 4095; ++i) {
    const HlcTimestamp t = hlc->Now();
    ASSERT_GT(t, last);
    last = t;
  }
  EXPECT_EQ(last, Ts(1000, 4095));
  EXPECT_EQ(hlc->logical_overflows(), 0u);
  EXPECT_EQ(hlc->Now(), Ts(1001, 0));
  EXPECT_EQ(hlc->logical_overflows(), 1u);
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms[0].kind, HlcAlarmKind::kLogicalOverflow);
  EXPECT_EQ(alarms[0].ts, Ts(1001, 0));

  Result<HlcTimestamp> r = hlc->Update(Ts(1005, 4095));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, Ts(1006, 0));
  EXPECT_EQ(hlc->logical_overflows(), 2u);
}

// The paper's rules written out literally over (l, c), plus the documented carry: the oracle for
// the packed CAS implementation.
struct ModelHlc {
  uint64_t l = 0;
  uint64_t c = 0;
  void Carry() {
    if (c > HlcTimestamp::kLogicalMax) {
      ++l;
      c = 0;
    }
  }
  HlcTimestamp Send(uint64_t pt) {
    const uint64_t l_old = l;
    l = std::max(l_old, pt);
    c = (l == l_old) ? c + 1 : 0;
    Carry();
    return Ts(l, c);
  }
  HlcTimestamp Receive(HlcTimestamp m, uint64_t pt) {
    const uint64_t l_old = l;
    const uint64_t lm = m.physical_us();
    const uint64_t cm = m.logical();
    l = std::max({l_old, lm, pt});
    if (l == l_old && l == lm) {
      c = std::max(c, cm) + 1;
    } else if (l == l_old) {
      c = c + 1;
    } else if (l == lm) {
      c = cm + 1;
    } else {
      c = 0;
    }
    Carry();
    return Ts(l, c);
  }
};

RC_GTEST_PROP(HlcProperty, MatchesThePapersRulesOnRandomEventSequences, ()) {
  // Random sends, receives (remote near the local clock, logical counters near 0 and near 4095 to
  // hit the carry), wall-clock steps both ways and rejected remotes: after every event the packed
  // lock-free clock must equal the literal (l, c) model.
  const uint64_t base = 1'000'000;
  ManualClock clock(MonoTime::FromNanos(0), WallUs(static_cast<int64_t>(base)));
  auto hlc = MakeHlc(clock, Duration::Micros(20));
  ModelHlc model;
  uint64_t wall = base;
  const int n = *rc::gen::inRange(1, 400);
  for (int i = 0; i < n; ++i) {
    switch (*rc::gen::inRange(0, 5)) {
      case 0:
        wall += *rc::gen::inRange<uint64_t>(0, 4);
        clock.SetWall(WallUs(static_cast<int64_t>(wall)));
        break;
      case 1:
        wall -= *rc::gen::inRange<uint64_t>(0, 30);
        clock.SetWall(WallUs(static_cast<int64_t>(wall)));
        break;
      case 2:
        RC_ASSERT(hlc->Now() == model.Send(wall));
        break;
      default: {
        const uint64_t lm = wall + *rc::gen::inRange<uint64_t>(0, 50) - 25;
        const uint64_t counters[] = {0, 1, 7, 4094, 4095};
        const uint64_t cm = counters[*rc::gen::inRange<size_t>(0, std::size(counters))];
        Result<HlcTimestamp> r = hlc->Update(Ts(lm, cm));
        if (lm > wall + 20) {
          RC_ASSERT(r.status().code() == StatusCode::kFailedPrecondition);
        } else {
          RC_ASSERT(r.ok());
          RC_ASSERT(*r == model.Receive(Ts(lm, cm), wall));
        }
        break;
      }
    }
    RC_ASSERT(hlc->current() == Ts(model.l, model.c));
  }
}

// One simulated node for the multi-node property: its own clock, HLC and vector clock.
struct SimNode {
  std::unique_ptr<ManualClock> clock;
  std::unique_ptr<Hlc> hlc;
  std::vector<uint32_t> vc;
  HlcTimestamp last;
};
struct Event {
  HlcStamp stamp;
  std::vector<uint32_t> vc;
};
struct Message {
  uint32_t to;
  HlcTimestamp ts;
  std::vector<uint32_t> vc;
};

RC_GTEST_PROP(HlcProperty, CausalityBoundsAndMonotonicityAcrossExchangingNodes, ()) {
  // Three nodes whose wall clocks stay within ±max_offset/2 of true time (so pairwise skew is
  // within max_offset) exchange messages while true time advances and wall clocks step both ways.
  // Checked on every event: strictly increasing per node; l >= pt; l - pt <= max_offset (+1 µs per
  // logical overflow, which a run this short never has); no remote rejected. At the end, against
  // vector clocks: e happened-before f implies ts(e) < ts(f), and (ts, node) is unique.
  constexpr uint32_t kNodes = 3;
  constexpr int64_t kEpsUs = 1000;
  std::vector<SimNode> nodes(kNodes);
  int64_t true_us = kBaseWallUs;
  for (SimNode& node : nodes) {
    node.clock = std::make_unique<ManualClock>(MonoTime::FromNanos(0), WallUs(true_us));
    node.hlc = MakeHlc(*node.clock, Duration::Micros(kEpsUs));
    node.vc.assign(kNodes, 0);
  }
  std::vector<Event> events;
  std::vector<Message> in_flight;
  uint64_t overflows = 0;
  auto record = [&](uint32_t i, HlcTimestamp ts) {
    SimNode& node = nodes[i];
    const uint64_t pt = WallToUs(node.clock->WallNow());
    RC_ASSERT(ts > node.last);
    RC_ASSERT(ts.physical_us() >= pt);
    RC_ASSERT(ts.physical_us() - pt <= static_cast<uint64_t>(kEpsUs) + overflows);
    node.last = ts;
    events.push_back(Event{HlcStamp{ts, NodeId(i)}, node.vc});
  };
  const int n = *rc::gen::inRange(1, 250);
  for (int step = 0; step < n; ++step) {
    const uint32_t i = *rc::gen::inRange<uint32_t>(0, kNodes);
    SimNode& node = nodes[i];
    switch (*rc::gen::inRange(0, 6)) {
      case 0: {  // true time passes: every clock advances together
        const int64_t d = *rc::gen::inRange<int64_t>(0, 300);
        true_us += d;
        for (SimNode& other : nodes) other.clock->Advance(Duration::Micros(d));
        break;
      }
      case 1: {  // node i's wall clock steps to a new offset within ±eps/2 (either direction)
        const int64_t offset = *rc::gen::inRange<int64_t>(-kEpsUs / 2, kEpsUs / 2 + 1);
        node.clock->SetWall(WallUs(true_us + offset));
        break;
      }
      case 2:  // local event
        node.vc[i]++;
        record(i, node.hlc->Now());
        break;
      case 3: {  // send
        node.vc[i]++;
        const HlcTimestamp ts = node.hlc->Now();
        record(i, ts);
        in_flight.push_back(Message{*rc::gen::inRange<uint32_t>(0, kNodes), ts, node.vc});
        break;
      }
      default: {  // deliver a random in-flight message
        if (in_flight.empty()) break;
        const size_t k = *rc::gen::inRange<size_t>(0, in_flight.size());
        const Message m = in_flight[k];
        in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(k));
        SimNode& dst = nodes[m.to];
        Result<HlcTimestamp> r = dst.hlc->Update(m.ts);
        RC_ASSERT(r.ok());
        RC_ASSERT(*r > m.ts);
        for (uint32_t j = 0; j < kNodes; ++j) dst.vc[j] = std::max(dst.vc[j], m.vc[j]);
        dst.vc[m.to]++;
        record(m.to, *r);
        break;
      }
    }
    overflows = 0;
    for (SimNode& s : nodes) overflows += s.hlc->logical_overflows();
  }
  auto happened_before = [](const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
    bool strictly = false;
    for (size_t j = 0; j < a.size(); ++j) {
      if (a[j] > b[j]) return false;
      strictly = strictly || a[j] < b[j];
    }
    return strictly;
  };
  for (const Event& e : events) {
    for (const Event& f : events) {
      if (happened_before(e.vc, f.vc)) RC_ASSERT(e.stamp.ts < f.stamp.ts);
    }
  }
  std::vector<HlcStamp> stamps;
  for (const Event& e : events) stamps.push_back(e.stamp);
  std::sort(stamps.begin(), stamps.end());
  RC_ASSERT(std::adjacent_find(stamps.begin(), stamps.end()) == stamps.end());
  for (SimNode& s : nodes) RC_ASSERT(s.hlc->remote_rejections() == 0u);
}

// Shared state of the simulator-driven test; world events capture only a pointer to it (the
// scheduler stores callbacks inline in 48 bytes).
struct SimHarness {
  explicit SimHarness(uint64_t seed) : world(seed, sim::WorldOptions::Nodes(3)) {
    for (uint32_t i = 0; i < 3; ++i) hlcs.push_back(MakeHlc(world.clock(NodeId(i))));
  }
  void Check(uint32_t i, HlcTimestamp ts) {
    const uint64_t pt = HlcTimestamp::FromWallTime(world.clock(NodeId(i)).WallNow()).physical_us();
    if (!(ts > last[i]) || ts.physical_us() < pt) ++failures;
    last[i] = ts;
  }
  void Send() {
    Rng& rng = world.rng(sim::Stream::kWorkload);
    const uint32_t from = static_cast<uint32_t>(rng.Uniform(3));
    const uint32_t to = static_cast<uint32_t>(rng.Uniform(3));
    const HlcTimestamp sent = hlcs[from]->Now();
    Check(from, sent);
    world.Schedule(rng.Range(Duration::Micros(100), Duration::Millis(30)),
                   [this, to, sent] { Receive(to, sent); });
  }
  void Receive(uint32_t to, HlcTimestamp sent) {
    Result<HlcTimestamp> r = hlcs[to]->Update(sent);
    if (!r.ok() || !(*r > sent)) {
      ++failures;
      return;
    }
    Check(to, *r);
  }
  sim::World world;
  std::vector<std::unique_ptr<Hlc>> hlcs;
  HlcTimestamp last[3];
  uint64_t failures = 0;
};

TEST(HlcSimTest, SimulatedClocksWithDriftOffsetsAndJumps) {
  // The simulator's per-node clocks (±50 ms offsets, ±100 ppm drift) with message delays, and a
  // nemesis that steps one node's wall clock forward 300 ms and later back 300 ms: every receive
  // is accepted (skew stays within max_offset 500 ms), every node's timestamps strictly increase
  // and stay >= its physical clock, receives order after sends, and the forward step raises
  // exactly one alarm while the backward step is counted once — drift alone raises nothing.
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SimHarness h(seed);
    for (int k = 0; k < 400; ++k) h.world.Schedule(Duration::Millis(k * 5), [&h] { h.Send(); });
    h.world.Schedule(Duration::Millis(600),
                     [&h] { h.world.clock(NodeId(1)).JumpWall(Duration::Millis(300)); });
    h.world.Schedule(Duration::Millis(1300),
                     [&h] { h.world.clock(NodeId(1)).JumpWall(-Duration::Millis(300)); });
    h.world.RunFor(Duration::Seconds(3));
    EXPECT_EQ(h.failures, 0u) << "seed " << seed;
    EXPECT_EQ(h.hlcs[1]->forward_jump_alarms(), 1u) << "seed " << seed;
    EXPECT_EQ(h.hlcs[1]->backward_jumps(), 1u) << "seed " << seed;
    for (uint32_t i = 0; i < 3; ++i) {
      EXPECT_EQ(h.hlcs[i]->remote_rejections(), 0u) << "seed " << seed;
      if (i != 1) {
        EXPECT_EQ(h.hlcs[i]->forward_jump_alarms(), 0u) << "seed " << seed;
        EXPECT_EQ(h.hlcs[i]->backward_jumps(), 0u) << "seed " << seed;
      }
    }
  }
}

// ---- Restart monotonicity (HlcPersistence) ----

constexpr char kBoundFile[] = "hlc.bound";

HlcOptions DefaultOptions() { return HlcOptions(); }

TEST(HlcPersistenceTest, RestartIsMonotoneAcrossCrashWithTheWallClockBehind) {
  // The HLC's state is in memory: after a crash, a node whose wall clock now reads 10 s behind
  // (and whose last timestamps were pushed ahead by a peer) would issue smaller timestamps than
  // before the crash. With the persisted bound on a SimDisk that lost every unsynced byte, Now()
  // after Recover must exceed everything issued before. A fresh clock without the bound does go
  // backwards here, so the check can fail.
  Rng rng(7);
  sim::SimDisk disk(&rng);
  ManualClock clock;
  HlcTimestamp max_issued;
  {
    HlcPersistence persistence(&disk, kBoundFile);
    auto hlc = std::move(Hlc::Recover(clock, DefaultOptions(), persistence, Duration::Millis(500)))
                   .value();
    for (int i = 0; i < 100; ++i) {
      clock.Advance(Duration::Millis(1));
      max_issued = hlc->Now();
      if (i % 20 == 0) {
        ASSERT_TRUE(hlc->ReserveUpTo(persistence, Duration::Millis(500)).ok());
      }
    }
    const uint64_t pt = WallToUs(clock.WallNow());
    Result<HlcTimestamp> pushed = hlc->Update(Ts(pt + 400'000, 3));
    ASSERT_TRUE(pushed.ok());
    max_issued = *pushed;
    EXPECT_EQ(hlc->upper_bound_exceeded(), 0u);
    EXPECT_GE(hlc->reserved_physical_us(), max_issued.physical_us());
  }
  disk.Crash();
  clock.SetWall(clock.WallNow() - Duration::Seconds(10));
  EXPECT_LT(MakeHlc(clock)->Now(), max_issued);  // what happens without the bound

  HlcPersistence persistence(&disk, kBoundFile);
  Result<std::unique_ptr<Hlc>> recovered =
      Hlc::Recover(clock, DefaultOptions(), persistence, Duration::Millis(500));
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_GT((*recovered)->Now(), max_issued);
  EXPECT_EQ((*recovered)->upper_bound_exceeded(), 0u);
}

TEST(HlcPersistenceTest, RestartExceedsATimestampIssuedExactlyAtTheBound) {
  // The bound is a physical part P, and before the crash the clock may have issued (P, c) for any
  // c (a peer pushed it to P, then events ticked c). After restart the clock must start above
  // (P, 4095), not at (P, 0).
  Rng rng(11);
  sim::SimDisk disk(&rng);
  ManualClock clock;
  HlcTimestamp at_bound;
  {
    HlcPersistence persistence(&disk, kBoundFile);
    auto hlc = std::move(Hlc::Recover(clock, DefaultOptions(), persistence, Duration::Millis(200)))
                   .value();
    const uint64_t bound = hlc->reserved_physical_us();
    ASSERT_TRUE(hlc->Observe(Ts(bound, 4000)).ok());
    at_bound = hlc->Now();
    ASSERT_EQ(at_bound, Ts(bound, 4001));
    EXPECT_EQ(hlc->upper_bound_exceeded(), 0u);
  }
  disk.Crash();
  HlcPersistence persistence(&disk, kBoundFile);
  auto hlc =
      std::move(Hlc::Recover(clock, DefaultOptions(), persistence, Duration::Millis(200))).value();
  EXPECT_EQ(hlc->Now(), Ts(at_bound.physical_us() + 1, 0));
}

// Appends one persistence slot with a correct CRC but the given magic and version.
std::vector<uint8_t> CraftSlot(uint32_t magic, uint8_t version, uint64_t sequence,
                               uint64_t bound_us) {
  std::vector<uint8_t> slot;
  ByteWriter w(&slot);
  w.U32(magic);
  w.U8(version);
  w.U64(sequence);
  w.U64(bound_us);
  w.U32(Crc32c(slot));
  slot.resize(HlcPersistence::kSlotBytes, 0);
  return slot;
}

TEST(HlcPersistenceTest, TornOrCorruptBoundFileIsDataLossNotACrash) {
  // The bound file comes from a disk that tears writes and rots bits: every malformed shape must
  // come back as a Status (kDataLoss) from Load and Recover, never an assertion or a guess; a
  // single bad slot falls back to the other one.
  Rng rng(3);
  sim::SimDisk disk(&rng);
  ManualClock clock;
  auto write_file = [&](const std::vector<uint8_t>& bytes) {
    if (disk.Size(kBoundFile).ok()) {
      ASSERT_TRUE(disk.Remove(kBoundFile).ok());
    }
    ASSERT_TRUE(disk.Write(kBoundFile, 0, bytes).ok());
    ASSERT_TRUE(disk.Sync(kBoundFile).ok());
  };
  auto load = [&]() { return HlcPersistence(&disk, kBoundFile).Load(); };
  auto expect_data_loss = [&](const char* what) {
    EXPECT_EQ(load().status().code(), StatusCode::kDataLoss) << what;
    HlcPersistence persistence(&disk, kBoundFile);
    Result<std::unique_ptr<Hlc>> r =
        Hlc::Recover(clock, DefaultOptions(), persistence, Duration::Millis(100));
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << what;
  };

  write_file({});
  expect_data_loss("empty file");
  write_file(std::vector<uint8_t>(64, 0xAB));
  expect_data_loss("garbage");
  write_file(CraftSlot(0x42484c46, 2, 1, 1000));
  expect_data_loss("unknown version");
  write_file(CraftSlot(0xdeadbeef, 1, 1, 1000));
  expect_data_loss("wrong magic");
  write_file(CraftSlot(0x42484c46, 1, 1, 0));
  expect_data_loss("zero bound");

  // Two good stores fill both slots; damage one, then both.
  ASSERT_TRUE(disk.Remove(kBoundFile).ok());
  {
    HlcPersistence p(&disk, kBoundFile);
    ASSERT_TRUE(p.Store(1000).ok());
    ASSERT_TRUE(p.Store(2000).ok());
  }
  ASSERT_EQ(*load(), 2000u);
  std::vector<uint8_t> good = *disk.ReadAll(kBoundFile);
  ASSERT_EQ(good.size(), 2 * HlcPersistence::kSlotBytes);
  std::vector<uint8_t> one_bad = good;
  one_bad[HlcPersistence::kSlotBytes + 10] ^= 0x01;  // the newer slot (sequence 2 is in slot 1)
  write_file(one_bad);
  EXPECT_EQ(*load(), 1000u);
  std::vector<uint8_t> both_bad = one_bad;
  both_bad[10] ^= 0x40;
  write_file(both_bad);
  expect_data_loss("both slots corrupt");
  write_file(std::vector<uint8_t>(good.begin(), good.begin() + 20));
  expect_data_loss("truncated inside the first slot");
  write_file(std::vector<uint8_t>(good.begin(), good.begin() + 40));
  EXPECT_EQ(*load(), 1000u);  // the second slot cut short, the first intact
}

// A disk whose Sync can be made to fail without syncing: a crash between write and fsync.
class SyncFailingDisk final : public Disk {
 public:
  explicit SyncFailingDisk(sim::SimDisk* disk) : disk_(disk) {}
  bool fail_sync = false;
  Status Write(std::string_view f, uint64_t off, std::span<const uint8_t> d) override {
    return disk_->Write(f, off, d);
  }
  Result<size_t> Read(std::string_view f, uint64_t off, std::span<uint8_t> out) override {
    return disk_->Read(f, off, out);
  }
  Result<uint64_t> Size(std::string_view f) override { return disk_->Size(f); }
  Status Truncate(std::string_view f, uint64_t size) override { return disk_->Truncate(f, size); }
  Status Sync(std::string_view f) override {
    if (fail_sync) return UnavailableError("injected fsync failure");
    return disk_->Sync(f);
  }
  Status Remove(std::string_view f) override { return disk_->Remove(f); }
  std::vector<std::string> List() override { return disk_->List(); }

 private:
  sim::SimDisk* disk_;
};

TEST(HlcPersistenceTest, TornReservationKeepsThePreviousBoundInForce) {
  // A reservation whose fsync fails is not published, and a crash may then tear its slot. The
  // other slot must still hold the previous bound, which is the one that was in force: Load
  // returns it (or the new one if the write happened to survive whole), never kDataLoss. Across
  // seeds at least one crash must actually tear, or this test would prove nothing.
  int torn_seen = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Rng rng(seed);
    sim::SimDiskOptions disk_options;
    disk_options.unsynced_survives = Ratio{1, 1};
    disk_options.torn_write = Ratio{1, 1};
    sim::SimDisk sim_disk(&rng, disk_options);
    SyncFailingDisk disk(&sim_disk);
    ManualClock clock;
    HlcPersistence persistence(&disk, kBoundFile);
    auto hlc = std::move(Hlc::Recover(clock, DefaultOptions(), persistence, Duration::Millis(100)))
                   .value();
    ASSERT_TRUE(hlc->ReserveUpTo(persistence, Duration::Millis(100)).ok());
    const uint64_t in_force = hlc->reserved_physical_us();
    clock.Advance(Duration::Millis(50));
    disk.fail_sync = true;
    EXPECT_EQ(hlc->ReserveUpTo(persistence, Duration::Millis(100)).code(),
              StatusCode::kUnavailable);
    EXPECT_EQ(hlc->reserved_physical_us(), in_force);
    const uint64_t attempted = WallToUs(clock.WallNow()) + 100'000;
    sim_disk.Crash();
    disk.fail_sync = false;
    Result<uint64_t> loaded = HlcPersistence(&disk, kBoundFile).Load();
    ASSERT_TRUE(loaded.ok()) << "seed " << seed << ": " << loaded.status().ToString();
    EXPECT_TRUE(*loaded == in_force || *loaded == attempted) << "seed " << seed;
    if (*loaded == in_force) ++torn_seen;
  }
  EXPECT_GT(torn_seen, 0);
}

TEST(HlcPersistenceTest, IssuingPastTheReservedBoundIsCountedAndReservationsNeverShrink) {
  // If the owner stops renewing the reservation, the clock keeps issuing (monotonicity first) but
  // every timestamp past the durable bound is a restart-monotonicity risk and must be reported.
  // A later, shorter window must not lower the bound: timestamps up to it may exist.
  Rng rng(5);
  sim::SimDisk disk(&rng);
  ManualClock clock;
  std::vector<HlcAlarmKind> alarms;
  HlcOptions options;
  options.on_alarm = [&alarms](const HlcAlarm& a) { alarms.push_back(a.kind); };
  HlcPersistence persistence(&disk, kBoundFile);
  auto hlc = std::move(Hlc::Recover(clock, options, persistence, Duration::Millis(100))).value();
  EXPECT_EQ(hlc->reserved_physical_us(), WallToUs(clock.WallNow()) + 100'000);
  clock.Advance(Duration::Millis(100));
  hlc->Now();
  EXPECT_EQ(hlc->upper_bound_exceeded(), 0u);  // exactly at the bound
  clock.Advance(Duration::Micros(1));
  hlc->Now();
  EXPECT_EQ(hlc->upper_bound_exceeded(), 1u);
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms[0], HlcAlarmKind::kUpperBoundExceeded);
  ASSERT_TRUE(hlc->ReserveUpTo(persistence, Duration::Seconds(1)).ok());
  const uint64_t big = hlc->reserved_physical_us();
  ASSERT_TRUE(hlc->ReserveUpTo(persistence, Duration::Micros(1)).ok());
  EXPECT_EQ(hlc->reserved_physical_us(), big);
  EXPECT_EQ(*HlcPersistence(&disk, kBoundFile).Load(), big);
  EXPECT_EQ(hlc->ReserveUpTo(persistence, Duration::Zero()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(hlc->ReserveUpTo(persistence, Duration::Seconds(3601)).code(),
            StatusCode::kInvalidArgument);
  hlc->Now();
  EXPECT_EQ(hlc->upper_bound_exceeded(), 1u);
}

TEST(HlcPersistenceTest, DiskErrorsAreReturnedNotHidden) {
  // An EIO on write or fsync must surface from Recover and ReserveUpTo as the disk's Status
  // (kUnavailable) — a clock that silently failed to reserve would break restart monotonicity.
  Rng rng(9);
  sim::SimDiskOptions disk_options;
  disk_options.io_error = Ratio{1, 1};
  sim::SimDisk disk(&rng, disk_options);
  ManualClock clock;
  HlcPersistence persistence(&disk, kBoundFile);
  EXPECT_EQ(
      Hlc::Recover(clock, DefaultOptions(), persistence, Duration::Millis(100)).status().code(),
      StatusCode::kUnavailable);
  auto hlc = MakeHlc(clock);
  EXPECT_EQ(hlc->ReserveUpTo(persistence, Duration::Millis(100)).code(), StatusCode::kUnavailable);
  EXPECT_EQ(hlc->reserved_physical_us(), HlcTimestamp::kPhysicalMaxUs);  // none in force
}

RC_GTEST_PROP(HlcPersistenceProperty, RestartMonotoneUnderCrashesAndDiskFaults, ()) {
  // Cycles of recover, events (time passing, wall clock steps back by up to 5 s, remotes pushing
  // the clock ahead), periodic reservations and a power loss, on a disk with EIO, lost and torn
  // unsynced writes. Whenever no timestamp was issued past the durable bound before a crash, the
  // first timestamp after recovery exceeds every one before it. Recover returns kDataLoss only
  // if no reservation had ever succeeded (then the operator's fallback, remedy (b), removes it).
  const uint64_t seed = *rc::gen::arbitrary<uint64_t>();
  Rng rng(seed);
  sim::SimDiskOptions disk_options;
  disk_options.unsynced_survives = Ratio::Percent(50);
  disk_options.torn_write = Ratio::Percent(50);
  disk_options.io_error = Ratio::Percent(20);
  sim::SimDisk disk(&rng, disk_options);
  ManualClock clock;
  HlcTimestamp max_issued;
  bool ever_reserved = false;
  bool exceeded = false;
  const int cycles = *rc::gen::inRange(1, 6);
  for (int cycle = 0; cycle < cycles; ++cycle) {
    HlcPersistence persistence(&disk, kBoundFile);
    std::unique_ptr<Hlc> hlc;
    for (int attempt = 0; attempt < 100 && !hlc; ++attempt) {
      Result<std::unique_ptr<Hlc>> r =
          Hlc::Recover(clock, DefaultOptions(), persistence, Duration::Millis(300));
      if (r.ok()) {
        hlc = std::move(r).value();
      } else if (r.status().code() == StatusCode::kDataLoss) {
        RC_ASSERT(!ever_reserved);
        RC_ASSERT(disk.Remove(kBoundFile).ok());
      } else {
        RC_ASSERT(r.status().code() == StatusCode::kUnavailable);
      }
    }
    RC_ASSERT(hlc != nullptr);
    ever_reserved = true;
    const HlcTimestamp first = hlc->Now();
    if (!exceeded) RC_ASSERT(first > max_issued);
    max_issued = first;
    const int events = *rc::gen::inRange(1, 60);
    for (int e = 0; e < events; ++e) {
      switch (*rc::gen::inRange(0, 5)) {
        case 0:
          clock.Advance(Duration::Micros(*rc::gen::inRange<int64_t>(0, 100'000)));
          break;
        case 1:
          clock.SetWall(clock.WallNow() -
                        Duration::Micros(*rc::gen::inRange<int64_t>(0, 5'000'000)));
          break;
        case 2: {
          const uint64_t pt = WallToUs(clock.WallNow());
          Result<HlcTimestamp> r = hlc->Update(Ts(pt + *rc::gen::inRange<uint64_t>(0, 500'001), 0));
          RC_ASSERT(r.ok());
          max_issued = std::max(max_issued, *r);
          break;
        }
        case 3:
          hlc->ReserveUpTo(persistence, Duration::Millis(300)).IgnoreError();  // EIO is fine
          break;
        default:
          max_issued = std::max(max_issued, hlc->Now());
          break;
      }
    }
    exceeded = hlc->upper_bound_exceeded() > 0;
    hlc.reset();
    disk.Crash();
  }
}

// ---- Concurrency (run under TSan by ./run sanitize) ----

TEST(HlcConcurrent, FourThreadsNowUpdateObserveAreUniqueAndPerThreadMonotone) {
  // Four threads share one Hlc and one ManualClock: Now, Update with a stale remote (the newest
  // timestamp any thread published) and with an advancing one (ahead of it), and Observe, while
  // one thread advances the clock and steps it back and forth by 60 ms. The CAS loop must make
  // every issued timestamp unique across threads and strictly increasing within each thread, and
  // the clock must end >= everything issued or observed.
  ManualClock clock;
  auto hlc = MakeHlc(clock);
  constexpr int kThreads = 4;
  constexpr int kOps = 20'000;
  std::atomic<uint64_t> mailbox{0};
  std::atomic<uint64_t> max_observed{0};
  std::atomic<uint64_t> failures{0};
  std::vector<std::vector<HlcTimestamp>> issued(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<HlcTimestamp>& mine = issued[t];
      mine.reserve(kOps);
      for (int i = 0; i < kOps; ++i) {
        if (t == 0 && i % 16 == 0) clock.Advance(Duration::Micros(1));
        if (t == 0 && i % 2048 == 0) {
          const Duration step = (i / 2048) % 2 == 0 ? -Duration::Millis(60) : Duration::Millis(60);
          clock.SetWall(clock.WallNow() + step);
        }
        const HlcTimestamp remote = HlcTimestamp::FromRaw(mailbox.load(std::memory_order_relaxed));
        switch ((i + t) % 4) {
          case 0:
          case 1:
            mine.push_back(hlc->Now());
            mailbox.store(mine.back().raw(), std::memory_order_relaxed);
            break;
          case 2: {
            const HlcTimestamp ahead = HlcTimestamp::FromRaw(remote.raw() + (uint64_t{3} << 12));
            Result<HlcTimestamp> r = hlc->Update(i % 8 < 4 ? remote : ahead);
            if (!r.ok() || *r <= remote) {
              failures.fetch_add(1);
              break;
            }
            mine.push_back(*r);
            break;
          }
          default: {
            const HlcTimestamp ahead = HlcTimestamp::FromRaw(remote.raw() + 5);
            if (!hlc->Observe(ahead).ok()) failures.fetch_add(1);
            uint64_t seen = max_observed.load(std::memory_order_relaxed);
            while (ahead.raw() > seen && !max_observed.compare_exchange_weak(
                                             seen, ahead.raw(), std::memory_order_relaxed)) {
            }
            break;
          }
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0u);
  std::vector<HlcTimestamp> all;
  for (const auto& mine : issued) {
    for (size_t i = 1; i < mine.size(); ++i) ASSERT_LT(mine[i - 1], mine[i]) << i;
    all.insert(all.end(), mine.begin(), mine.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "duplicate timestamp";
  EXPECT_GE(hlc->current(), all.back());
  EXPECT_GE(hlc->current().raw(), max_observed.load());
  EXPECT_GT(hlc->backward_jumps(), 0u);
}

TEST(HlcConcurrent, TwoThreadsObserveRatchetsToTheMaximum) {
  // Concurrent Observe calls race on the same CAS; the clock must end at exactly the largest
  // remote observed (no lost update, no overshoot), and a Now() afterwards is just above it.
  ManualClock clock;
  auto hlc = MakeHlc(clock);
  const uint64_t base = HlcTimestamp::FromWallTime(clock.WallNow()).raw();
  constexpr uint64_t kSteps = 50'000;
  std::atomic<uint64_t> failures{0};
  auto run = [&](uint64_t parity) {
    for (uint64_t i = parity; i < kSteps; i += 2) {
      if (!hlc->Observe(HlcTimestamp::FromRaw(base + i)).ok()) failures.fetch_add(1);
    }
  };
  std::thread a(run, 0);
  std::thread b(run, 1);
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0u);
  EXPECT_EQ(hlc->current().raw(), base + kSteps - 1);
  EXPECT_EQ(hlc->Now().raw(), base + kSteps);
}

}  // namespace
}  // namespace faultline
