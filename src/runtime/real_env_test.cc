// Unit tests for faultline/runtime/real_env.h: the executor's timer contract measured against the
// host's CLOCK_MONOTONIC (in order, never early, also under drift and a rate change mid-wait),
// Cancel and Post, ownership of spawned coroutines, Stop, and an Rpc round trip between two
// RealEnvs over the real loopback transport.
#include "faultline/runtime/real_env.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "faultline/env/rpc.h"
#include "src/runtime/runtime_test_util.h"

namespace faultline::runtime {
namespace {

using testing::OpenEnv;
using testing::PumpUntil;

struct Fired {
  int index;
  MonoTime node_deadline;
  MonoTime node_at;
  int64_t host_scheduled;
  int64_t host_at;
  Duration delay;
};

// Schedules `count` timers with pseudo-random delays in [0, 20 ms] and checks they fire in
// deadline order and never before their deadline, in node time and (scaled) in host time.
void CheckTimers(int64_t drift_ppm) {
  auto env = OpenEnv(0, testing::FreePorts(1));
  env->chaos_clock()->SetDrift(drift_ppm);
  std::vector<Fired> fired;
  Rng rng(drift_ppm + 7);
  const size_t count = 60;
  for (int i = 0; i < static_cast<int>(count); ++i) {
    const Duration delay = Duration::Micros(static_cast<int64_t>(rng.Uniform(20'001)));
    const int64_t host = HostMonotonicNanos();
    const MonoTime deadline = env->clock().Now() + delay;
    env->executor().ScheduleAfter(delay, [&fired, &env, i, deadline, host, delay] {
      fired.push_back({i, deadline, env->clock().Now(), host, HostMonotonicNanos(), delay});
    });
  }
  ASSERT_TRUE(PumpUntil({env.get()}, [&] { return fired.size() == count; }));
  for (size_t k = 0; k < fired.size(); ++k) {
    const Fired& f = fired[k];
    EXPECT_GE(f.node_at, f.node_deadline) << "timer " << f.index << " fired early in node time";
    // Host time elapsed >= the delay converted at the drifted rate (exact inverse, rounded up).
    const int64_t host_min = env->chaos_clock()->TrueDelayFor(f.delay).nanos();
    EXPECT_GE(f.host_at - f.host_scheduled, host_min - 1) << "timer " << f.index;
    if (k > 0) {
      EXPECT_GE(f.node_deadline, fired[k - 1].node_deadline) << "out of order at " << k;
    }
  }
}

TEST(RealEnvTest, TimersFireInOrderAndNeverEarly) { CheckTimers(0); }
TEST(RealEnvTest, TimersFireInOrderAndNeverEarlyUnderFastDrift) { CheckTimers(100'000); }
TEST(RealEnvTest, TimersFireInOrderAndNeverEarlyUnderSlowDrift) { CheckTimers(-100'000); }

TEST(RealEnvTest, TimerIsReArmedWhenTheClockSlowsDownMidWait) {
  auto env = OpenEnv(0, testing::FreePorts(1));
  ChaosClock& clock = *env->chaos_clock();
  clock.SetDrift(100'000);  // fast: armed for 20 ms / 1.1 of host time
  const MonoTime deadline = clock.Now() + Duration::Millis(20);
  std::optional<MonoTime> at;
  env->executor().ScheduleAfter(Duration::Millis(20), [&] { at = clock.Now(); });
  env->RunFor(Duration::Millis(2));
  clock.SetDrift(-100'000);  // now slow: at the armed instant node time is ~3 ms short
  ASSERT_TRUE(PumpUntil({env.get()}, [&] { return at.has_value(); }));
  EXPECT_GE(*at, deadline);
}

// The converse: a clock that speeds up mid-wait must bring the timer forward in host time (as in
// the simulator), not leave it armed for the old, slower rate. Slow (-10 %) then fast (+10 %)
// after ~10 ms: due after ~911 ms of host time at the new rate, versus 1111 ms as first armed.
TEST(RealEnvTest, TimerIsBroughtForwardWhenTheClockSpeedsUpMidWait) {
  auto env = OpenEnv(0, testing::FreePorts(1));
  ChaosClock& clock = *env->chaos_clock();
  clock.SetDrift(-100'000);
  const int64_t host_start = HostMonotonicNanos();
  const MonoTime deadline = clock.Now() + Duration::Seconds(1);
  std::optional<MonoTime> at;
  int64_t host_at = 0;
  env->executor().ScheduleAfter(Duration::Seconds(1), [&] {
    at = clock.Now();
    host_at = HostMonotonicNanos();
  });
  env->RunFor(Duration::Millis(10));
  std::thread([&] { clock.SetDrift(100'000); }).join();  // rate changes may come from any thread
  const int64_t host_changed = HostMonotonicNanos();
  ASSERT_TRUE(PumpUntil({env.get()}, [&] { return at.has_value(); }));
  EXPECT_GE(*at, deadline);
  // Node time left at the change was <= 1 s - 0.9 * (10 ms): at +10 % that is at most
  // (1 s - 9 ms) / 1.1 = 901 ms of host time after host_changed. 150 ms of scheduling slack stays
  // well below the 1111 ms the timer was first armed for.
  EXPECT_LT(host_at - host_changed, Duration::Millis(901 + 150).nanos());
  EXPECT_LT(host_at - host_start, Duration::Millis(1111).nanos());
}

TEST(RealEnvTest, CancelPreventsTheCallbackAndReportsWhetherItWasPending) {
  auto env = OpenEnv(0, testing::FreePorts(1));
  Executor& ex = env->executor();
  int ran = 0;
  const TimerId a = ex.ScheduleAfter(Duration::Millis(5), [&] { ran += 1; });
  const TimerId b = ex.ScheduleAfter(Duration::Millis(5), [&] { ran += 10; });
  const TimerId p = ex.Post([&] { ran += 100; });
  EXPECT_TRUE(ex.Cancel(a));
  EXPECT_FALSE(ex.Cancel(a));
  EXPECT_TRUE(ex.Cancel(p));
  EXPECT_FALSE(ex.Cancel(TimerId{}));
  // a has the same deadline as b and was scheduled first: had it survived, it would have run
  // no later than b.
  ASSERT_TRUE(PumpUntil({env.get()}, [&] { return ran >= 10; }));
  EXPECT_EQ(ran, 10);
  EXPECT_FALSE(ex.Cancel(b));  // already ran
  EXPECT_EQ(env->pending_timers(), 0u);
}

TEST(RealEnvTest, PostNeverRunsInlineAndRunsInOrder) {
  auto env = OpenEnv(0, testing::FreePorts(1));
  std::vector<int> order;
  env->executor().Post([&] {
    order.push_back(1);
    env->executor().Post([&] { order.push_back(3); });
    order.push_back(2);  // the nested Post did not run inline
  });
  env->executor().ScheduleAfter(Duration::Nanos(-1), [&] { order.push_back(10); });
  EXPECT_TRUE(order.empty());
  ASSERT_TRUE(PumpUntil({env.get()}, [&] { return order.size() >= 4; }));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 10, 3}));
}

struct Guard {
  bool* destroyed;
  ~Guard() { *destroyed = true; }
};

Task<void> SleepForever(Env* env, bool* destroyed, bool* resumed) {
  Guard g{destroyed};
  Status s = co_await Sleep(env->executor(), Duration::Seconds(3600));
  *resumed = true;
}

Task<void> SleepBriefly(Env* env, int* done) {
  Status s = co_await Sleep(env->executor(), Duration::Millis(2));
  if (s.ok()) ++*done;
}

TEST(RealEnvTest, SpawnedCoroutinesAreOwnedAndDestroyedWithTheEnv) {
  bool destroyed = false;
  bool resumed = false;
  int done = 0;
  {
    auto env = OpenEnv(0, testing::FreePorts(1));
    env->Spawn(SleepForever(env.get(), &destroyed, &resumed));
    env->Spawn(SleepBriefly(env.get(), &done));
    EXPECT_EQ(env->spawned(), 2u);
    ASSERT_TRUE(PumpUntil({env.get()}, [&] { return done == 1; }));
    EXPECT_EQ(env->spawned(), 1u);  // a finished root frees itself
    EXPECT_EQ(env->pending_timers(), 1u);
    EXPECT_FALSE(destroyed);
    env->DestroySpawned();
    EXPECT_TRUE(destroyed);
    EXPECT_EQ(env->pending_timers(), 0u);  // the awaiter cancelled its timer
    env->Spawn(SleepForever(env.get(), &destroyed, &resumed));
    destroyed = false;
  }
  EXPECT_TRUE(destroyed);  // the destructor tears the rest down
  EXPECT_FALSE(resumed);
}

TEST(RealEnvTest, StopFromAnotherThreadEndsRun) {
  auto env = OpenEnv(0, testing::FreePorts(1));
  std::atomic<int> ticks{0};
  std::function<void()> tick = [&] {
    ticks.fetch_add(1);
    env->executor().ScheduleAfter(Duration::Millis(1), [&] { tick(); });
  };
  tick();
  std::thread stopper([&] {
    while (ticks.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    env->Stop();
  });
  env->Run();  // returns only because of the Stop()
  stopper.join();
  EXPECT_GE(ticks.load(), 3);
  env->Stop();  // a Stop before Run makes the next Run return at once
  env->Run();
}

TEST(RealEnvTest, OptionsAreValidated) {
  RealEnvOptions o;
  o.self = NodeId(3);
  o.peers = {Peer{NodeId(0), 40000, false}};
  EXPECT_EQ(RealEnv::Open(o).status().code(), StatusCode::kInvalidArgument);
  o.peers = {Peer{NodeId(3), 0, false}, Peer{NodeId(4), 0, false}};
  EXPECT_EQ(RealEnv::Open(o).status().code(), StatusCode::kInvalidArgument);
}

TEST(RealEnvDeathTest, PendingTimersPastTheLimitFailLoudly) {
  RealEnvOptions o;
  o.self = NodeId(0);
  o.peers = {Peer{NodeId(0), 0, false}};
  o.pending_timers_max = 3;
  auto env = std::move(RealEnv::Open(o)).value();
  for (int i = 0; i < 3; ++i) env->executor().ScheduleAfter(Duration::Seconds(1), [] {});
  EXPECT_DEATH(env->executor().Post([] {}), "pending_timers_max exceeded");
}

TEST(RealEnvTest, NoDataDirMeansADiskThatRefuses) {
  auto env = OpenEnv(0, testing::FreePorts(1));
  const uint8_t b[1] = {1};
  EXPECT_EQ(env->disk().Write("x", 0, b).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(env->disk().List().empty());
}

constexpr uint16_t kEcho = 7;

Task<void> CallEcho(Rpc* rpc, NodeId to, Bytes request, Duration timeout,
                    std::optional<Result<Bytes>>* out) {
  Result<Bytes> r = co_await rpc->Call(to, kEcho, request, timeout);
  out->emplace(std::move(r));
}

TEST(RealEnvTest, RpcRoundTripAndTimeoutOverTheLoopbackTransport) {
  const auto ports = testing::FreePorts(2);
  auto a = OpenEnv(0, ports);
  auto b = OpenEnv(1, ports);
  Rpc client(*a);
  Rpc server(*b);
  server.Handle(kEcho, [](NodeId from, std::span<const uint8_t> req) -> Result<Bytes> {
    Bytes out = {static_cast<uint8_t>(from.value())};
    out.insert(out.end(), req.begin(), req.end());
    return out;
  });
  std::optional<Result<Bytes>> reply;
  a->Spawn(CallEcho(&client, NodeId(1), Bytes{'h', 'i'}, Duration::Seconds(2), &reply));
  ASSERT_TRUE(PumpUntil({a.get(), b.get()}, [&] { return reply.has_value(); }));
  ASSERT_TRUE(reply->ok()) << reply->status().ToString();
  EXPECT_EQ(reply->value(), (Bytes{0, 'h', 'i'}));

  // A partition (inbound rule at the server) turns the call into kDeadlineExceeded.
  ASSERT_TRUE(b->loopback().Block(NodeId(0), Direction::kInbound).ok());
  reply.reset();
  a->Spawn(CallEcho(&client, NodeId(1), Bytes{'x'}, Duration::Millis(30), &reply));
  ASSERT_TRUE(PumpUntil({a.get(), b.get()}, [&] { return reply.has_value(); }));
  EXPECT_EQ(reply->status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(client.pending_calls(), 0u);
  EXPECT_GE(b->loopback().stats().dropped_by_rule, 1u);
}

}  // namespace
}  // namespace faultline::runtime
