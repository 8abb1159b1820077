// Unit tests for faultline/sim/world.h: process lifecycle (boot, crash, restart, pause, resume),
// timers across those transitions, HealAll, and determinism of whole runs (same seed, same
// events, same hash), which is the property every other simulation test depends on.
#include "faultline/sim/world.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "faultline/env/task.h"
#include "faultline/sim/nemesis.h"

namespace faultline::sim {
namespace {

WorldOptions Nodes(uint32_t n) {
  WorldOptions o;
  o.node_count = n;
  return o;
}

// Counts lifecycle calls and arms one timer per boot; records which incarnation's timers fire.
struct Log {
  int constructed = 0;
  int started = 0;
  int destroyed = 0;
  std::vector<std::string> fired;
};

class TimerNode final : public Node {
 public:
  TimerNode(Env& env, Log* log, uint32_t incarnation, Duration delay)
      : env_(env), log_(log), incarnation_(incarnation), delay_(delay) {
    ++log_->constructed;
  }
  ~TimerNode() override { ++log_->destroyed; }
  void Start() override {
    ++log_->started;
    Log* log = log_;
    const uint32_t inc = incarnation_;
    env_.executor().ScheduleAfter(
        delay_, [log, inc] { log->fired.push_back("incarnation " + std::to_string(inc)); });
  }

 private:
  Env& env_;
  Log* log_;
  uint32_t incarnation_;
  Duration delay_;
};

NodeFactory TimerFactory(World& world, NodeId id, Log* log, Duration delay) {
  World* w = &world;
  return [w, id, log, delay](Env& env) {
    return std::make_unique<TimerNode>(env, log, w->incarnation(id), delay);
  };
}

std::unique_ptr<Node> Plain(Env&) { return std::make_unique<Node>(); }

TEST(WorldTest, LifecycleStatesAndIncarnations) {
  // Boot builds the node and calls Start once; Crash destroys it (state down, new incarnation);
  // Restart builds a fresh one from the same factory; Pause/Resume toggle without rebuilding.
  // Transitions that do not apply are no-ops.
  World world(1, Nodes(2));
  Log log;
  const NodeId n(0);
  EXPECT_EQ(world.state(n), ProcessState::kDown);
  EXPECT_EQ(world.node(n), nullptr);
  world.Boot(n, TimerFactory(world, n, &log, Duration::Seconds(1000)));
  EXPECT_EQ(world.state(n), ProcessState::kUp);
  EXPECT_NE(world.node(n), nullptr);
  EXPECT_EQ(log.constructed, 1);
  EXPECT_EQ(log.started, 1);
  EXPECT_EQ(world.incarnation(n), 0u);

  world.Pause(n);
  EXPECT_EQ(world.state(n), ProcessState::kPaused);
  world.Pause(n);    // no-op
  world.Restart(n);  // no-op: not down
  EXPECT_EQ(log.constructed, 1);
  world.Resume(n);
  EXPECT_EQ(world.state(n), ProcessState::kUp);

  world.Crash(n);
  EXPECT_EQ(world.state(n), ProcessState::kDown);
  EXPECT_EQ(world.node(n), nullptr);
  EXPECT_EQ(log.destroyed, 1);
  EXPECT_EQ(world.incarnation(n), 1u);
  world.Crash(n);  // no-op
  world.Pause(n);  // no-op while down
  world.Resume(n);
  EXPECT_EQ(world.state(n), ProcessState::kDown);
  EXPECT_EQ(world.incarnation(n), 1u);

  world.Restart(n);
  EXPECT_EQ(world.state(n), ProcessState::kUp);
  EXPECT_EQ(log.constructed, 2);
  EXPECT_EQ(log.started, 2);
  EXPECT_EQ(world.state(NodeId(1)), ProcessState::kDown);  // untouched neighbour
}

TEST(WorldTest, TimersOfACrashedIncarnationNeverFire) {
  // A crash drops the process's pending timers: neither while it is down nor after a restart may a
  // timer armed by the previous incarnation run (it would call into a destroyed node).
  World world(1, Nodes(1));
  Log log;
  const NodeId n(0);
  world.Boot(n, TimerFactory(world, n, &log, Duration::Seconds(1)));
  world.RunFor(Duration::Millis(500));
  world.Crash(n);
  world.RunFor(Duration::Millis(100));
  world.Restart(n);  // this incarnation arms a timer at +1 s
  world.RunFor(Duration::Seconds(5));
  EXPECT_EQ(log.fired, std::vector<std::string>{"incarnation 1"});
}

TEST(WorldTest, PausedNodeTimersRunAfterResumeInOrderWhileItsClockKeptRunning) {
  // A paused process (SIGSTOP) runs nothing; its timers that came due wait and then run in their
  // original order after Resume. Its clock keeps running meanwhile, so on resume the node observes
  // the whole pause on its monotonic clock. World events are never paused.
  World world(7, Nodes(1));
  const NodeId n(0);
  world.Boot(n, Plain);
  Env& env = world.env(n);
  struct Fired {
    int index;
    MonoTime mono;
  };
  std::vector<Fired> fired;
  const MonoTime armed = env.clock().Now();
  for (int i = 0; i < 5; ++i) {
    env.executor().ScheduleAfter(Duration::Millis(10 * (i + 1)), [&fired, &env, i] {
      fired.push_back({i, env.clock().Now()});
    });
  }
  world.RunFor(Duration::Millis(25));
  ASSERT_EQ(fired.size(), 2u);
  world.Pause(n);
  bool world_event_ran = false;
  world.Schedule(Duration::Millis(10), [&world_event_ran] { world_event_ran = true; });
  world.RunFor(Duration::Seconds(2));
  EXPECT_TRUE(world_event_ran);
  EXPECT_EQ(fired.size(), 2u);
  world.Resume(n);
  world.RunFor(Duration::Millis(1));
  ASSERT_EQ(fired.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(fired[i].index, i);
  // The late timers observe the pause: at least ~2 s of the node's own monotonic time passed.
  EXPECT_GE(fired[2].mono - armed, Duration::Millis(1999));
}

TEST(WorldTest, ExecutorCancelAndPostSemantics) {
  // Node timers: Cancel stops a pending one (true), is false for one that ran or for the zero id;
  // Post runs on a later turn, never inline.
  World world(1, Nodes(1));
  world.Boot(NodeId(0), Plain);
  Executor& ex = world.env(NodeId(0)).executor();
  int runs = 0;
  const TimerId cancelled = ex.ScheduleAfter(Duration::Millis(5), [&runs] { runs += 100; });
  const TimerId ran = ex.ScheduleAfter(Duration::Millis(1), [&runs] { ++runs; });
  const TimerId posted = ex.Post([&runs] { runs += 10; });
  EXPECT_TRUE(static_cast<bool>(posted));
  EXPECT_EQ(runs, 0);
  EXPECT_TRUE(ex.Cancel(cancelled));
  world.RunFor(Duration::Seconds(1));
  EXPECT_EQ(runs, 11);
  EXPECT_FALSE(ex.Cancel(ran));
  EXPECT_FALSE(ex.Cancel(cancelled));
  EXPECT_FALSE(ex.Cancel(TimerId{}));
}

TEST(WorldTest, RunUntilAdvancesTimeAndStepReportsAnEmptyQueue) {
  // RunUntil moves time to `until` even with nothing to do; Step is false on an empty queue;
  // cancelled world events never run.
  World world(1, Nodes(1));
  EXPECT_FALSE(world.Step());
  world.RunFor(Duration::Seconds(3));
  EXPECT_EQ(world.now().nanos(), Duration::Seconds(3).nanos());
  EXPECT_EQ(world.elapsed(), Duration::Seconds(3));
  bool ran = false;
  const EventId id = world.Schedule(Duration::Seconds(1), [&ran] { ran = true; });
  EXPECT_TRUE(world.Cancel(id));
  world.RunFor(Duration::Seconds(2));
  EXPECT_FALSE(ran);
  world.ScheduleAt(SimTime::FromNanos(Duration::Seconds(6).nanos()), [&ran] { ran = true; });
  EXPECT_TRUE(world.Step());
  EXPECT_TRUE(ran);
  EXPECT_EQ(world.now().nanos(), Duration::Seconds(6).nanos());
}

TEST(WorldTest, CrashAppliesPowerLossToTheNodesDisk) {
  // The disk outlives the process: after a crash and restart the node sees its synced files and
  // loses unsynced ones.
  World world(1, Nodes(1));
  const NodeId n(0);
  world.Boot(n, Plain);
  Disk& disk = world.env(n).disk();
  const std::vector<uint8_t> data = {1, 2, 3};
  ASSERT_TRUE(disk.Write("synced", 0, data).ok());
  ASSERT_TRUE(disk.Sync("synced").ok());
  ASSERT_TRUE(disk.Write("unsynced", 0, data).ok());
  world.Crash(n);
  world.Restart(n);
  EXPECT_EQ(world.env(n).disk().List(), std::vector<std::string>{"synced"});
  EXPECT_EQ(&world.disk(n), &world.env(n).disk());
}

Task<void> SleepForever(Executor& ex, bool* destroyed) {
  struct Flag {
    bool* f;
    ~Flag() { *f = true; }
  } flag{destroyed};
  Status s = co_await Sleep(ex, Duration::Seconds(1'000'000));
  (void)s;
}

class SpawningNode final : public Node {
 public:
  SpawningNode(Env& env, bool* destroyed) { env.Spawn(SleepForever(env.executor(), destroyed)); }
};

TEST(WorldTest, CrashDestroysCoroutinesSpawnedDuringBoot) {
  // Node code may spawn from its constructor (while booting); a crash must destroy those too.
  World world(1, Nodes(1));
  bool destroyed = false;
  world.Boot(NodeId(0),
             [&destroyed](Env& env) { return std::make_unique<SpawningNode>(env, &destroyed); });
  world.RunFor(Duration::Seconds(1));
  EXPECT_FALSE(destroyed);
  world.Crash(NodeId(0));
  EXPECT_TRUE(destroyed);
}

TEST(WorldTest, HealAllEndsEveryFault) {
  // HealAll is the start of the liveness phase: crashed processes restart, paused ones resume,
  // partitions heal, held messages are released and wall clocks step back to true time.
  World world(3, Nodes(4));
  Log log;
  for (uint32_t i = 0; i < 4; ++i) {
    world.Boot(NodeId(i), TimerFactory(world, NodeId(i), &log, Duration::Seconds(1000)));
  }
  world.RunFor(Duration::Seconds(1));
  world.Crash(NodeId(1));
  world.Pause(NodeId(2));
  Grudge g(4);
  g.BlockBoth(2, 3);
  world.network().Partition(g);
  world.network().Hold(3, 0);
  const std::vector<uint8_t> payload = {7};
  ASSERT_TRUE(world.env(NodeId(3)).transport().Send(NodeId(0), 1, 1, payload).ok());
  world.clock(NodeId(3)).JumpWall(Duration::Seconds(-40));
  world.clock(NodeId(0)).Strobe(Duration::Seconds(1), Duration::Millis(1),
                                world.now() + Duration::Seconds(100));
  world.RunFor(Duration::Seconds(1));

  world.HealAll();
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(world.state(NodeId(i)), ProcessState::kUp) << i;
    EXPECT_EQ(world.clock(NodeId(i)).wall_error(), Duration::Zero()) << i;
    for (uint32_t j = 0; j < 4; ++j) EXPECT_FALSE(world.network().blocked(i, j));
  }
  EXPECT_EQ(world.incarnation(NodeId(1)), 1u);
  const uint64_t delivered = world.network().stats().delivered;
  world.RunFor(Duration::Millis(20));
  EXPECT_EQ(world.clock(NodeId(0)).wall_error().nanos() / 1'000'000, 0);  // strobe is over
  EXPECT_EQ(world.network().stats().delivered, delivered + 1);            // held message arrived
}

TEST(WorldDeathTest, EventsMaxStopsALivelock) {
  // A run that keeps generating events forever must hit the events_max guard and fail loudly.
  WorldOptions o = Nodes(1);
  o.events_max = 100;
  EXPECT_DEATH(
      {
        World world(1, o);
        struct Loop {
          static void Arm(World* wp) {
            wp->Schedule(Duration::Nanos(1), [wp] { Arm(wp); });
          }
        };
        Loop::Arm(&world);
        world.RunFor(Duration::Seconds(1));
      },
      "events_max");
}

// --- determinism -------------------------------------------------------------------------------

// Workload node: a coroutine sends random messages to random peers at random intervals; received
// messages are sometimes echoed back and sometimes appended to disk (and sometimes synced).
class Chatter final : public Node {
 public:
  explicit Chatter(Env& env) : env_(env) {
    env_.transport().SetHandler([this](NodeId from, const FrameView& f) { OnMessage(from, f); });
  }
  void Start() override { env_.Spawn(Loop(&env_)); }

 private:
  static Task<void> Loop(Env* env) {
    const uint32_t peers = 5;
    for (;;) {
      Status s =
          co_await Sleep(env->executor(), Duration::Micros(env->random().Range(100, 20'000)));
      if (!s.ok()) co_return;
      const NodeId to(static_cast<uint32_t>(env->random().Uniform(peers)));
      std::vector<uint8_t> payload(env->random().Uniform(64));
      for (auto& b : payload) b = static_cast<uint8_t>(env->random().Next());
      env->transport().Send(to, 2, 1, payload).IgnoreError();
    }
  }
  void OnMessage(NodeId from, const FrameView& f) {
    const uint64_t r = env_.random().Uniform(4);
    if (r == 0 && f.type == 2) {
      env_.transport().Send(from, 3, 1, f.payload).IgnoreError();
    } else if (r == 1) {
      env_.disk().Append("log", f.payload).IgnoreError();
      if (env_.random().Chance({1, 3})) env_.disk().Sync("log").IgnoreError();
    }
  }
  Env& env_;
};

struct RunResult {
  uint64_t hash;
  uint64_t events;
  std::vector<uint64_t> event_hashes;
  NetworkStats stats;
};

RunResult RunWorkload(uint64_t seed) {
  WorldOptions o = Nodes(5);
  o.links.loss = Ratio::Percent(5);
  o.links.duplicate = Ratio::Percent(5);
  o.links.reorder = Ratio::Percent(10);
  o.links.corrupt = Ratio::Percent(2);
  o.disk.unsynced_survives = Ratio::Percent(30);
  World world(seed, o);
  RunResult r;
  world.set_event_hashes(&r.event_hashes);
  for (uint32_t i = 0; i < 5; ++i) {
    world.Boot(NodeId(i), [](Env& env) { return std::make_unique<Chatter>(env); });
  }
  NemesisOptions nemesis;
  nemesis.start = Duration::Millis(100);
  nemesis.duration = Duration::Seconds(4);
  nemesis.interval_mean = Duration::Millis(200);
  const std::vector<FaultAction> schedule = Nemesis::Draw(nemesis, 5, world.rng(Stream::kNemesis));
  Nemesis::Install(world, schedule, nemesis);
  world.RunFor(Duration::Seconds(5));
  r.hash = world.hash();
  r.events = world.events_executed();
  r.stats = world.network().stats();
  return r;
}

TEST(WorldTest, SameSeedReplaysEventForEventAndOtherSeedsDiverge) {
  // The simulator's core promise: a seed replays the same run. Two worlds with the same seed and a
  // non-trivial workload (lossy, duplicating, reordering, corrupting links; crashes, pauses,
  // partitions, clock faults from a drawn nemesis; disk writes) must agree on every event's hash;
  // different seeds must produce different runs.
  const RunResult a = RunWorkload(42);
  const RunResult b = RunWorkload(42);
  EXPECT_GT(a.events, 2000u);
  EXPECT_GT(a.stats.delivered, 1000u);
  EXPECT_GT(a.stats.dropped_loss + a.stats.dropped_partition + a.stats.dropped_down, 0u);
  EXPECT_GT(a.stats.rejected, 0u);
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.events, b.events);
  ASSERT_EQ(a.event_hashes.size(), b.event_hashes.size());
  for (size_t i = 0; i < a.event_hashes.size(); ++i) {
    ASSERT_EQ(a.event_hashes[i], b.event_hashes[i]) << "first divergence at event " << i;
  }
  const RunResult c = RunWorkload(43);
  EXPECT_NE(a.hash, c.hash);
  EXPECT_NE(a.event_hashes, c.event_hashes);
}

}  // namespace
}  // namespace faultline::sim
