// Unit, property and simulation tests for faultline/time/interval_clock.h: the interval contains
// true time under bounded drift, wall steps and honest re-syncs; its width grows exactly as
// documented; commit wait never returns before earliest > t; and the read uncertainty interval
// restarts with a fixed limit (a sliding limit livelocks).
#include "faultline/time/interval_clock.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "faultline/sim/clock.h"
#include "faultline/sim/scheduler.h"
#include "faultline/sim/world.h"

namespace faultline {
namespace {

IntervalClockOptions Opts(Duration error_at_sync, int64_t ppm, Duration error_max) {
  IntervalClockOptions o;
  o.error_at_sync = error_at_sync;
  o.drift_ppm_bound = ppm;
  o.error_max = error_max;
  return o;
}

std::unique_ptr<IntervalClock> Make(Clock& clock, IntervalClockOptions o) {
  auto r = IntervalClock::Create(clock, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

// The drift term exactly as documented: ceil(elapsed · ρ / (1e6 − ρ)).
Duration Drift(Duration elapsed, int64_t ppm) {
  const Int128 num = static_cast<Int128>(elapsed.nanos()) * ppm;
  const Int128 den = 1'000'000 - ppm;
  return Duration::Nanos(static_cast<int64_t>((num + den - 1) / den));
}

const WallTime kRef = WallTime::FromNanos(1'800'000'000'000'000'000);

TEST(IntervalClockTest, UnavailableBeforeTheFirstSyncAndOptionsAreValidated) {
  // An unsynchronised node knows nothing about true time: Now() must say so instead of returning
  // its wall clock with a made-up error, and After/Before must answer the conservative "no".
  ManualClock clock;
  auto ic = Make(clock, IntervalClockOptions{});
  EXPECT_EQ(ic->Now().status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(ic->After(WallTime::Min()));
  EXPECT_FALSE(ic->Before(WallTime::Max()));
  EXPECT_EQ(ic->CommitWaitDuration(kRef).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(IntervalClock::Create(clock, Opts(Duration::Zero(), -1, Duration::Seconds(1)))
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      IntervalClock::Create(clock, Opts(Duration::Zero(), 200, Duration::Zero())).status().code(),
      StatusCode::kInvalidArgument);
}

TEST(IntervalClockTest, WidthGrowsLinearlyWithMonotonicTimeSinceSync) {
  // TrueTime's ε: error at sync plus the drift bound times the time since sync. The exact value
  // matters: too small breaks commit-wait safety, too large wastes latency.
  constexpr int64_t kPpm = 200;
  ManualClock clock;
  auto ic = Make(clock, Opts(Duration::Micros(100), kPpm, Duration::Seconds(1)));
  ASSERT_TRUE(ic->Sync(kRef, Duration::Millis(1)).ok());
  const Duration e0 = Duration::Millis(1) + Duration::Micros(100);
  for (int k = 0; k <= 5; ++k) {
    const Duration elapsed = Duration::Seconds(k);
    const TimeInterval now = *ic->Now();
    const Duration half = e0 + Drift(elapsed, kPpm);
    EXPECT_EQ(now.earliest, kRef + elapsed - half) << k;
    EXPECT_EQ(now.latest, kRef + elapsed + half) << k;
    // ~200 µs of extra half-width per second.
    EXPECT_NEAR(static_cast<double>((now.width() / 2 - e0).nanos()), 200'040.0 * k, 1.0);
    clock.Advance(Duration::Seconds(1));
  }
}

TEST(IntervalClockTest, SyncResetsTheWidthAndRecentresTheInterval) {
  // A fresh reference replaces the accumulated drift allowance; without that, ε would grow
  // forever and commit waits with it.
  ManualClock clock;
  auto ic = Make(clock, Opts(Duration::Zero(), 200, Duration::Seconds(1)));
  ASSERT_TRUE(ic->Sync(kRef, Duration::Millis(1)).ok());
  clock.Advance(Duration::Seconds(30));
  const TimeInterval wide = *ic->Now();
  EXPECT_EQ(wide.width(), (Duration::Millis(1) + Drift(Duration::Seconds(30), 200)) * 2);
  const WallTime ref2 = kRef + Duration::Seconds(30) + Duration::Micros(300);
  ASSERT_TRUE(ic->Sync(ref2, Duration::Micros(500)).ok());
  const TimeInterval fresh = *ic->Now();
  EXPECT_EQ(fresh.width(), Duration::Millis(1));
  EXPECT_EQ(fresh.earliest, ref2 - Duration::Micros(500));
}

TEST(IntervalClockTest, LocalWallClockStepDoesNotMoveTheInterval) {
  // The interval is carried on the monotonic clock: an NTP step or an operator's `date -s` on the
  // local wall clock must not move earliest/latest (or commit wait would end early).
  ManualClock clock;
  auto ic = Make(clock, Opts(Duration::Zero(), 200, Duration::Seconds(1)));
  ASSERT_TRUE(ic->Sync(kRef, Duration::Millis(1)).ok());
  clock.Advance(Duration::Seconds(1));
  const TimeInterval before = *ic->Now();
  clock.SetWall(clock.WallNow() + Duration::Seconds(3600));
  EXPECT_EQ(ic->Now()->earliest, before.earliest);
  clock.SetWall(clock.WallNow() - Duration::Seconds(7200));
  EXPECT_EQ(ic->Now()->latest, before.latest);
}

TEST(IntervalClockTest, TooUncertainIsUnavailableUntilTheNextSync) {
  // Past error_max the node must stop serving clock-dependent operations (Spanner servers evict
  // themselves when ε is too large), and a good sync brings it back.
  ManualClock clock;
  auto ic = Make(clock, Opts(Duration::Zero(), 500, Duration::Millis(10)));
  ASSERT_TRUE(ic->Sync(kRef, Duration::Millis(5)).ok());
  clock.Advance(Duration::Seconds(9));  // 5 ms + 4.5 ms
  EXPECT_TRUE(ic->Now().ok());
  clock.Advance(Duration::Seconds(2));  // 5 ms + 5.5 ms
  EXPECT_EQ(ic->Now().status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(ic->After(WallTime::Min()));
  ASSERT_TRUE(ic->Sync(kRef + Duration::Seconds(11), Duration::Millis(1)).ok());
  EXPECT_TRUE(ic->Now().ok());
}

TEST(IntervalClockTest, SyncRefusesUselessAndFalsetickerReferences) {
  // A reference too uncertain to use is refused, and so is one that contradicts the current valid
  // interval: both cannot contain true time, and the one already trusted is kept.
  ManualClock clock;
  auto ic = Make(clock, Opts(Duration::Micros(100), 200, Duration::Millis(100)));
  EXPECT_EQ(ic->Sync(kRef, Duration::Millis(-1)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ic->Sync(kRef, Duration::Millis(100)).code(), StatusCode::kOutOfRange);
  ASSERT_TRUE(ic->Sync(kRef, Duration::Millis(1)).ok());
  const TimeInterval before = *ic->Now();
  EXPECT_EQ(ic->Sync(kRef + Duration::Seconds(5), Duration::Millis(1)).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(ic->Now()->earliest, before.earliest);
  // Overlapping (honest but less precise) references are accepted.
  EXPECT_TRUE(ic->Sync(kRef + Duration::Millis(2), Duration::Millis(2)).ok());
}

// A drift rate at either bound or anywhere between (the bounds are where soundness is tight).
int64_t GenDrift(int64_t ppm) {
  switch (*rc::gen::inRange(0, 3)) {
    case 0:
      return -ppm;
    case 1:
      return ppm;
    default:
      return *rc::gen::inRange<int64_t>(-ppm, ppm + 1);
  }
}

RC_GTEST_PROP(IntervalClockProps, TrueTimeIsAlwaysInsideTheInterval, ()) {
  // The TrueTime contract under the simulator's clock model: true time stays inside
  // [earliest, latest] whatever the drift (changing, but within the bound), wall steps, honest
  // re-syncs (references off by up to their stated error, often by exactly it) and gaps between
  // them, as long as the interval is available. No error_at_sync slack hides a wrong drift term.
  constexpr int64_t kPpm = 200;
  Rng rng(1);
  sim::Scheduler scheduler(&rng, nullptr);
  sim::SimClock sim_clock(&scheduler, Duration::Seconds(*rc::gen::inRange(1, 1000)),
                          Duration::Millis(*rc::gen::inRange(-500, 500)), GenDrift(kPpm));
  auto ic = Make(sim_clock, Opts(Duration::Zero(), kPpm, Duration::Seconds(1)));
  auto true_wall = [&] {
    return WallTime::FromNanos(sim::kSimEpochUnixNs) + Duration::Nanos(scheduler.now().nanos());
  };
  const auto steps = *rc::gen::inRange(1, 60);
  for (int i = 0; i < steps; ++i) {
    const int action = *rc::gen::inRange(0, 6);
    if (action == 0) {
      const Duration err = Duration::Micros(*rc::gen::inRange(0, 300));
      const int sign = *rc::gen::inRange(-1, 2);
      const Duration lie =
          sign != 0 ? err * sign
                    : Duration::Nanos(*rc::gen::inRange<int64_t>(-err.nanos(), err.nanos() + 1));
      RC_ASSERT(ic->Sync(true_wall() + lie, err).ok());
    } else if (action == 1) {
      sim_clock.SetDrift(GenDrift(kPpm));
    } else if (action == 2) {
      sim_clock.JumpWall(Duration::Seconds(*rc::gen::inRange(-100, 100)));
    } else {
      scheduler.AdvanceTo(scheduler.now() + Duration::Millis(*rc::gen::inRange(0, 600'000)));
    }
    Result<TimeInterval> now = ic->Now();
    if (now.ok()) {
      RC_ASSERT(now->Contains(true_wall()));
    }
  }
}

TEST(IntervalClockTest, DriftAllowanceUsesRhoOverOneMinusRhoForASlowOscillator) {
  // A clock running slow by exactly ρ measures elapsed·(1 − ρ/1e6) of monotonic time; the true
  // elapsed time is mono/(1 − ρ/1e6), so the allowance must be mono·ρ/(1e6 − ρ). The naive
  // mono·ρ/1e6 falls short by mono·ρ²/1e12 (0.4 µs at 200 ppm over 1000 s) and true time leaves
  // the interval when the reference was off by its full error in the same direction.
  constexpr int64_t kPpm = 200;
  Rng rng(1);
  sim::Scheduler scheduler(&rng, nullptr);
  sim::SimClock sim_clock(&scheduler, Duration::Seconds(1), Duration::Zero(), -kPpm);
  auto ic = Make(sim_clock, Opts(Duration::Zero(), kPpm, Duration::Seconds(1)));
  const Duration err = Duration::Micros(100);
  const WallTime truth0 = WallTime::FromNanos(sim::kSimEpochUnixNs);
  ASSERT_TRUE(ic->Sync(truth0 - err, err).ok());
  scheduler.AdvanceTo(scheduler.now() + Duration::Seconds(1000));
  const WallTime truth = truth0 + Duration::Seconds(1000);
  const TimeInterval now = *ic->Now();
  EXPECT_GE(now.latest, truth);
  EXPECT_LT(now.latest - truth, Duration::Micros(1));  // and not much slack either
}

RC_GTEST_PROP(IntervalClockProps, CommitWaitDurationIsTheExactBoundary, ()) {
  // CommitWaitDuration(t) must be the least monotonic wait after which earliest > t: one
  // nanosecond less and After(t) is still false (waiting longer than needed costs latency, less
  // than needed breaks external consistency).
  ManualClock clock;
  const auto ppm = *rc::gen::inRange<int64_t>(0, 2000);
  auto ic = Make(clock, Opts(Duration::Zero(), ppm, Duration::Seconds(100)));
  RC_ASSERT(ic->Sync(kRef, Duration::Micros(*rc::gen::inRange(0, 10'000))).ok());
  clock.Advance(Duration::Millis(*rc::gen::inRange(0, 5000)));
  const TimeInterval now = *ic->Now();
  const WallTime t = now.earliest + Duration::Micros(*rc::gen::inRange(-1000, 60'000));
  const Duration wait = *ic->CommitWaitDuration(t);
  if (wait == Duration::Zero()) {
    RC_ASSERT(ic->After(t));
    return;
  }
  RC_ASSERT(!ic->After(t));
  clock.Advance(wait - Duration::Nanos(1));
  RC_ASSERT(!ic->After(t));
  clock.Advance(Duration::Nanos(1));
  RC_ASSERT(ic->After(t));
}

// ---- Commit wait on a simulated node ----

struct WaitProbe {
  std::optional<Status> status;
  Duration waited;
  bool after_at_return = false;
  WallTime earliest_at_return;
};

Task<void> DoCommitWait(IntervalClock* ic, Env* env, WallTime t, WaitProbe* probe,
                        CancelToken token = {}) {
  const MonoTime start = env->clock().Now();
  Status s = co_await ic->CommitWait(env->executor(), t, token);
  probe->waited = env->clock().Now() - start;
  probe->after_at_return = ic->After(t);
  Result<TimeInterval> now = ic->Now();
  if (now.ok()) probe->earliest_at_return = now->earliest;
  probe->status = std::move(s);
}

struct SimFixture {
  sim::World world{7, sim::WorldOptions::Nodes(1)};
  Env* env = nullptr;
  SimFixture() {
    world.Boot(NodeId(0), [](Env&) { return std::make_unique<sim::Node>(); });
    env = &world.env(NodeId(0));
  }
  WallTime TrueWall() const {
    return WallTime::FromNanos(sim::kSimEpochUnixNs) + Duration::Nanos(world.now().nanos());
  }
};

TEST(IntervalClockTest, CommitWaitWaitsAboutTwoEpsilonAndReturnsOnlyAfterEarliestPassesT) {
  // Spanner's commit wait: with s = Now().latest, waiting until After(s) takes ~2ε. The wait must
  // never end before earliest > s (that is the whole safety argument), and should not take much
  // longer either.
  SimFixture f;
  auto ic = Make(f.env->clock(), Opts(Duration::Zero(), 200, Duration::Seconds(1)));
  f.world.RunFor(Duration::Seconds(1));
  const Duration eps = Duration::Millis(3);
  ASSERT_TRUE(ic->Sync(f.TrueWall(), eps).ok());
  const WallTime s = ic->Now()->latest;
  WaitProbe probe;
  f.env->Spawn(DoCommitWait(ic.get(), f.env, s, &probe));
  f.world.RunFor(Duration::Seconds(1));
  ASSERT_TRUE(probe.status.has_value());
  EXPECT_TRUE(probe.status->ok()) << probe.status->ToString();
  EXPECT_TRUE(probe.after_at_return);
  EXPECT_GT(probe.earliest_at_return, s);
  EXPECT_GE(probe.waited, eps * 2);
  EXPECT_LE(probe.waited, eps * 2 + Duration::Micros(10));  // 2ε·ρ ≈ 1.2 µs of drift allowance
}

TEST(IntervalClockTest, CommitWaitRechecksAfterWakingWhenASyncMovedEarliestBack) {
  // Sleeps are monotonic and the interval can move while the waiter sleeps: an honest but less
  // precise re-sync moves earliest back. Regression for a commit wait that trusts its first
  // computed duration: it would wake while earliest <= s and acknowledge too early.
  SimFixture f;
  auto ic = Make(f.env->clock(), Opts(Duration::Zero(), 200, Duration::Seconds(1)));
  f.world.RunFor(Duration::Seconds(1));
  ASSERT_TRUE(ic->Sync(f.TrueWall(), Duration::Millis(1)).ok());
  const WallTime s = ic->Now()->latest;  // true + 1 ms
  WaitProbe probe;
  f.env->Spawn(DoCommitWait(ic.get(), f.env, s, &probe));
  // Half-way through the first sleep (~2 ms), an honest reference with twice the error arrives.
  f.world.Schedule(Duration::Millis(1),
                   [&] { ASSERT_TRUE(ic->Sync(f.TrueWall(), Duration::Millis(2)).ok()); });
  f.world.RunFor(Duration::Seconds(1));
  ASSERT_TRUE(probe.status.has_value());
  EXPECT_TRUE(probe.status->ok()) << probe.status->ToString();
  EXPECT_TRUE(probe.after_at_return);
  EXPECT_GT(probe.earliest_at_return, s);
  // earliest = true − 2 ms must pass true_at_start + 1 ms: about 3 ms in all, not 2.
  EXPECT_GE(probe.waited, Duration::Millis(3) - Duration::Micros(5));
}

TEST(IntervalClockTest, CommitWaitFailsFastWhenUncertaintyWouldExceedErrorMaxAndHonoursCancel) {
  // Waiting for a timestamp so far ahead that ε would pass error_max first can never succeed;
  // say so at once instead of sleeping. A cancelled waiter returns kCancelled.
  SimFixture f;
  auto ic = Make(f.env->clock(), Opts(Duration::Zero(), 200, Duration::Millis(2)));
  f.world.RunFor(Duration::Seconds(1));
  ASSERT_TRUE(ic->Sync(f.TrueWall(), Duration::Micros(1500)).ok());
  WaitProbe far;
  f.env->Spawn(DoCommitWait(ic.get(), f.env, ic->Now()->latest + Duration::Seconds(10), &far));
  f.world.RunFor(Duration::Millis(1));
  ASSERT_TRUE(far.status.has_value());
  EXPECT_EQ(far.status->code(), StatusCode::kUnavailable);
  EXPECT_EQ(far.waited, Duration::Zero());

  CancelSource cancel;
  WaitProbe cancelled;
  f.env->Spawn(DoCommitWait(ic.get(), f.env, ic->Now()->latest, &cancelled, cancel.token()));
  cancel.Cancel();
  f.world.RunFor(Duration::Millis(10));
  ASSERT_TRUE(cancelled.status.has_value());
  EXPECT_EQ(cancelled.status->code(), StatusCode::kCancelled);
}

TEST(IntervalClockTest, ConcurrentSyncAndNowAreRaceFreeAndAlwaysContainTrueTime) {
  // IntervalClock is documented thread-safe: a sync daemon thread and request threads race on it.
  // Under TSan this must report nothing; in every build each reader's interval must contain the
  // true time of the moment it read (true(mono) = base + mono on this manual clock).
  ManualClock clock;
  auto ic = Make(clock, Opts(Duration::Zero(), 200, Duration::Seconds(1)));
  const WallTime base = kRef;
  ASSERT_TRUE(ic->Sync(base + Duration::Nanos(clock.Now().nanos()), Duration::Millis(1)).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> violations{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_acquire)) {
        const MonoTime m1 = clock.Now();
        Result<TimeInterval> now = ic->Now();
        const MonoTime m2 = clock.Now();
        if (!now.ok() || now->earliest > base + Duration::Nanos(m2.nanos()) ||
            now->latest < base + Duration::Nanos(m1.nanos())) {
          violations.fetch_add(1);
        }
      }
    });
  }
  for (int i = 0; i < 2000; ++i) {
    clock.Advance(Duration::Micros(50));
    const Duration err = Duration::Micros(500 + (i % 7) * 100);
    ASSERT_TRUE(ic->Sync(base + Duration::Nanos(clock.Now().nanos()), err).ok());
  }
  stop.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();
  EXPECT_EQ(violations.load(), 0);
}

// ---- Uncertainty interval ----

TEST(UncertaintyIntervalTest, ClassifiesVisibleUncertainAndFutureValues) {
  // CockroachDB's rule: <= read_ts visible; (read_ts, read_ts + max_offset] uncertain (the writer's
  // clock may have been ahead, so it may precede the read in real time); beyond, ignorable.
  const WallTime read = kRef;
  const UncertaintyInterval u = UncertaintyInterval::ForRead(read, Duration::Millis(500));
  EXPECT_EQ(u.limit, read + Duration::Millis(500));
  using V = UncertaintyInterval::Visibility;
  EXPECT_EQ(u.Classify(read).visibility, V::kVisible);
  EXPECT_EQ(u.Classify(read - Duration::Seconds(1)).visibility, V::kVisible);
  const auto c = u.Classify(read + Duration::Nanos(1));
  EXPECT_EQ(c.visibility, V::kUncertain);
  EXPECT_EQ(c.restart_ts, read + Duration::Nanos(2));
  EXPECT_EQ(u.Classify(u.limit).visibility, V::kUncertain);
  EXPECT_EQ(u.Classify(u.limit + Duration::Nanos(1)).visibility, V::kFuture);
  EXPECT_FALSE(u.empty());
}

TEST(UncertaintyIntervalTest, RestartKeepsTheLimitFixedSoAChasingWriterCannotLivelockTheRead) {
  // Regression for a sliding limit: if a restart recomputed limit = new read_ts + max_offset, a
  // writer whose clock runs ahead and keeps writing just above the reader's timestamp would force
  // restarts forever. With the limit fixed at the first attempt, restarts are bounded by
  // max_offset / step and then every newer write is simply in the future.
  const Duration max_offset = Duration::Millis(500);
  const Duration step = Duration::Millis(100);
  using V = UncertaintyInterval::Visibility;

  auto run = [&](bool sliding) {
    UncertaintyInterval u = UncertaintyInterval::ForRead(kRef, max_offset);
    int restarts = 0;
    for (; restarts < 1000; ++restarts) {
      const WallTime value_ts = u.read_ts + step;  // the chasing writer's next value
      const auto c = u.Classify(value_ts);
      if (c.visibility != V::kUncertain) break;
      const UncertaintyInterval next = u.RestartAbove(value_ts);
      EXPECT_EQ(next.limit, u.limit);
      EXPECT_EQ(next.read_ts, c.restart_ts);
      u = sliding ? UncertaintyInterval::ForRead(next.read_ts, max_offset) : next;
    }
    return restarts;
  };
  EXPECT_EQ(run(/*sliding=*/false), 4);  // read_ts climbs by 100 ms + 1 ns until limit is passed
  EXPECT_EQ(run(/*sliding=*/true), 1000);
}

RC_GTEST_PROP(UncertaintyIntervalProps, RestartsAreBoundedAndTheLimitNeverMoves, ()) {
  // Whatever values a read meets, every restart raises read_ts strictly, keeps the limit, and the
  // number of restarts is at most the number of distinct uncertain values.
  const UncertaintyInterval start =
      UncertaintyInterval::ForRead(kRef, Duration::Micros(*rc::gen::inRange(0, 1000)));
  std::vector<int64_t> offsets =
      *rc::gen::container<std::vector<int64_t>>(rc::gen::inRange<int64_t>(-2000, 2000));
  UncertaintyInterval u = start;
  int restarts = 0;
  bool again = true;
  while (again) {
    again = false;
    for (int64_t off : offsets) {
      const WallTime v = kRef + Duration::Micros(off);
      if (u.Classify(v).visibility == UncertaintyInterval::Visibility::kUncertain) {
        const UncertaintyInterval next = u.RestartAbove(v);
        RC_ASSERT(next.read_ts > u.read_ts);
        RC_ASSERT(next.limit == start.limit);
        u = next;
        ++restarts;
        again = true;
        break;
      }
    }
  }
  RC_ASSERT(static_cast<size_t>(restarts) <= offsets.size());
}

}  // namespace
}  // namespace faultline
