// Unit tests for faultline/env/task.h and faultline/env/cancel.h: Task<T>, TaskSet, Sleep and
// CancelSource, run on a sim::World so that time is simulated and a crash is a real crash (the
// node's coroutines are destroyed). Run under ASan to check crash teardown neither leaks nor
// touches freed frames.
#include "faultline/env/task.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "faultline/env/cancel.h"
#include "faultline/env/env.h"
#include "faultline/sim/world.h"

namespace faultline {
namespace {

using sim::World;

constexpr NodeId kN0(0);

sim::WorldOptions WithNodes(uint32_t nodes) {
  sim::WorldOptions options;
  options.node_count = nodes;
  return options;
}

// A world with booted nodes that run no code of their own; tests spawn coroutines on them.
std::unique_ptr<World> MakeWorld(uint32_t nodes = 1, uint64_t seed = 1) {
  auto world = std::make_unique<World>(seed, WithNodes(nodes));
  for (uint32_t i = 0; i < nodes; ++i) {
    world->Boot(NodeId(i), [](Env&) { return std::make_unique<sim::Node>(); });
  }
  return world;
}

// Sets *flag when destroyed: observes that a coroutine frame was torn down.
struct DestroyFlag {
  bool* flag;
  explicit DestroyFlag(bool* f) : flag(f) {}
  DestroyFlag(const DestroyFlag&) = delete;
  DestroyFlag& operator=(const DestroyFlag&) = delete;
  ~DestroyFlag() { *flag = true; }
};

// --- Task values -------------------------------------------------------------------------------

Task<int> Double(int x) { co_return 2 * x; }

Task<std::string> Describe(int x) {
  const int a = co_await Double(x);
  const int b = co_await Double(a);
  co_return "value=" + std::to_string(b);
}

Task<Result<int>> Checked(int x) {
  if (x < 0) co_return InvalidArgumentError("negative");
  co_return co_await Double(x);
}

Task<std::unique_ptr<int>> Boxed(int x) { co_return std::make_unique<int>(x); }

Task<void> CollectValues(std::string* text, Result<int>* ok, Result<int>* err, int* boxed) {
  *text = co_await Describe(3);
  *ok = co_await Checked(5);
  *err = co_await Checked(-1);
  std::unique_ptr<int> p = co_await Boxed(9);
  *boxed = *p;
}

TEST(TaskTest, NestedTaskValuesPropagate) {
  // Values (plain, Result with an error, move-only) must flow up through nested co_awaits
  // unchanged. Nothing here suspends, so the whole chain completes inside Spawn.
  auto world = MakeWorld();
  std::string text;
  Result<int> ok = InternalError("unset");
  Result<int> err = InternalError("unset");
  int boxed = 0;
  world->env(kN0).Spawn(CollectValues(&text, &ok, &err, &boxed));
  EXPECT_EQ(text, "value=12");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 10);
  EXPECT_EQ(err.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(boxed, 9);
}

Task<void> SetFlag(bool* flag) {
  *flag = true;
  co_return;
}

TEST(TaskTest, TasksAreLazyAndUnstartedTasksNeverRun) {
  // A Task must not start until awaited or spawned; destroying an unstarted Task frees it without
  // running its body (ASan checks the frame is freed).
  auto world = MakeWorld();
  bool ran = false;
  {
    Task<void> t = SetFlag(&ran);
    EXPECT_TRUE(t.valid());
    EXPECT_FALSE(t.done());
    EXPECT_FALSE(ran);
  }
  EXPECT_FALSE(ran);
  Task<void> t = SetFlag(&ran);
  Task<void> moved = std::move(t);
  EXPECT_FALSE(t.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  world->env(kN0).Spawn(std::move(moved));
  EXPECT_TRUE(ran);
}

Task<void> SleepThenMark(Executor& ex, Duration d, int* stage) {
  *stage = 1;
  Status s = co_await Sleep(ex, d);
  EXPECT_TRUE(s.ok());
  *stage = 2;
}

TEST(TaskTest, SpawnRunsUntilFirstSuspensionThenContinuesOnTheExecutor) {
  // Env::Spawn runs the body up to its first suspension before returning; the rest runs later
  // from the event loop, and the finished root is freed from its TaskSet.
  auto world = MakeWorld();
  int stage = 0;
  world->env(kN0).Spawn(SleepThenMark(world->env(kN0).executor(), Duration::Millis(5), &stage));
  EXPECT_EQ(stage, 1);
  world->RunFor(Duration::Millis(10));
  EXPECT_EQ(stage, 2);
}

TEST(TaskTest, YieldResumesOnALaterTurnNeverInline) {
  // Sleep(0) / Yield must not resume inside the caller's stack: other ready callbacks get to run.
  auto world = MakeWorld();
  int stage = 0;
  world->env(kN0).Spawn(SleepThenMark(world->env(kN0).executor(), Duration::Zero(), &stage));
  EXPECT_EQ(stage, 1);
  EXPECT_TRUE(world->Step());
  EXPECT_EQ(stage, 2);
}

// --- Sleep and time ----------------------------------------------------------------------------

Task<void> TimedSleep(Env& env, Duration d, MonoTime* before, MonoTime* after) {
  *before = env.clock().Now();
  Status s = co_await Sleep(env.executor(), d);
  EXPECT_TRUE(s.ok());
  *after = env.clock().Now();
}

TEST(TaskTest, SleepAdvancesNodeMonotonicTimeByAtLeastTheDelay) {
  // Sleep(d) promises d of the node's own monotonic time, whatever the node's clock drift: a lease
  // or timeout computed from it would otherwise expire early. Checked at the drift extremes.
  for (int64_t drift : {int64_t{-100'000}, int64_t{0}, int64_t{37}, int64_t{100'000}}) {
    auto world = MakeWorld();
    world->clock(kN0).SetDrift(drift);
    for (Duration d :
         {Duration::Nanos(1), Duration::Micros(999), Duration::Millis(250), Duration::Seconds(3)}) {
      MonoTime before, after;
      world->env(kN0).Spawn(TimedSleep(world->env(kN0), d, &before, &after));
      world->RunFor(Duration::Seconds(5));
      EXPECT_GE(after - before, d) << "drift " << drift << " delay " << d.nanos();
      // And not absurdly late: within the rate error plus rounding.
      EXPECT_LE(after - before, d + d / 5 + Duration::Nanos(2)) << drift;
    }
  }
}

Task<void> CancellableSleep(Env& env, Duration d, CancelToken token, Status* out, Duration* slept,
                            int* resumes) {
  const MonoTime start = env.clock().Now();
  *out = co_await Sleep(env.executor(), d, std::move(token));
  *slept = env.clock().Now() - start;
  ++*resumes;
}

TEST(TaskTest, CancelWakesSleeperEarlyAndItsTimerNeverFires) {
  // Cancellation must wake the sleeper promptly with kCancelled, resume it exactly once, and leave
  // no timer behind: a stray timer would later resume a finished (freed) coroutine.
  auto world = MakeWorld();
  CancelSource source;
  Status status;
  Duration slept;
  int resumes = 0;
  world->env(kN0).Spawn(CancellableSleep(world->env(kN0), Duration::Seconds(10), source.token(),
                                         &status, &slept, &resumes));
  world->Schedule(Duration::Seconds(1), [&source] { source.Cancel(); });
  world->RunFor(Duration::Seconds(30));
  EXPECT_EQ(status.code(), StatusCode::kCancelled);
  EXPECT_EQ(resumes, 1);
  EXPECT_LT(slept, Duration::Seconds(2));
  EXPECT_FALSE(world->Step()) << "an event survived the cancelled sleep";
  source.Cancel();  // a second Cancel is a no-op
  EXPECT_TRUE(source.cancelled());
}

TEST(TaskTest, SleepWithAlreadyCancelledTokenReturnsImmediately) {
  // A token cancelled before the await must not suspend at all (no timer is armed).
  auto world = MakeWorld();
  CancelSource source;
  source.Cancel();
  Status status;
  Duration slept = Duration::Infinite();
  int resumes = 0;
  world->env(kN0).Spawn(CancellableSleep(world->env(kN0), Duration::Seconds(10), source.token(),
                                         &status, &slept, &resumes));
  EXPECT_EQ(status.code(), StatusCode::kCancelled);
  EXPECT_EQ(resumes, 1);
  EXPECT_EQ(slept, Duration::Zero());
  EXPECT_FALSE(world->Step());
}

TEST(TaskTest, CancelAfterSleepFinishedIsHarmless) {
  // Once the sleep completed normally its cancel registration must be gone: cancelling later must
  // not touch the (destroyed) awaiter.
  auto world = MakeWorld();
  CancelSource source;
  Status status = InternalError("unset");
  Duration slept;
  int resumes = 0;
  world->env(kN0).Spawn(CancellableSleep(world->env(kN0), Duration::Millis(1), source.token(),
                                         &status, &slept, &resumes));
  world->RunFor(Duration::Millis(5));
  EXPECT_TRUE(status.ok());
  source.Cancel();
  world->RunFor(Duration::Millis(5));
  EXPECT_EQ(resumes, 1);
  EXPECT_TRUE(status.ok());
}

TEST(TaskTest, OneCancelWakesEverySleeperOnTheToken) {
  // One source fans out to every registered awaiter.
  auto world = MakeWorld();
  CancelSource source;
  Status s1, s2;
  Duration d1, d2;
  int resumes = 0;
  Env& env = world->env(kN0);
  env.Spawn(CancellableSleep(env, Duration::Seconds(5), source.token(), &s1, &d1, &resumes));
  env.Spawn(CancellableSleep(env, Duration::Seconds(7), source.token(), &s2, &d2, &resumes));
  world->Schedule(Duration::Millis(10), [&source] { source.Cancel(); });
  world->RunFor(Duration::Seconds(10));
  EXPECT_EQ(s1.code(), StatusCode::kCancelled);
  EXPECT_EQ(s2.code(), StatusCode::kCancelled);
  EXPECT_EQ(resumes, 2);
}

TEST(CancelTest, TokensObserveTheirSourceAndRegistrationsRunOnce) {
  // Default tokens are never cancelled; registrations run once, in order, and unregistered ones
  // never run; registering on a cancelled token returns 0 without running.
  CancelToken none;
  EXPECT_FALSE(none.cancelled());
  EXPECT_FALSE(none.can_be_cancelled());
  EXPECT_EQ(none.Register([] {}), 0u);

  CancelSource source;
  CancelToken t = source.token();
  EXPECT_TRUE(t.can_be_cancelled());
  std::vector<int> order;
  const uint64_t a = t.Register([&order] { order.push_back(1); });
  const uint64_t b = t.Register([&order] { order.push_back(2); });
  const uint64_t c = t.Register([&order] { order.push_back(3); });
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  t.Unregister(b);
  t.Unregister(0);  // no-op
  source.Cancel();
  source.Cancel();
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(order, (std::vector<int>{1, 3}));
  EXPECT_EQ(t.Register([&order] { order.push_back(4); }), 0u);
  EXPECT_EQ(order.size(), 2u);
  (void)c;
}

// --- crashes -----------------------------------------------------------------------------------

Task<void> Inner(Executor& ex, bool* inner_destroyed, bool* resumed) {
  DestroyFlag flag(inner_destroyed);
  Status s = co_await Sleep(ex, Duration::Seconds(100));
  (void)s;
  *resumed = true;
}

Task<void> Outer(Executor& ex, bool* outer_destroyed, bool* inner_destroyed, bool* resumed) {
  DestroyFlag flag(outer_destroyed);
  co_await Inner(ex, inner_destroyed, resumed);
  *resumed = true;
}

TEST(TaskTest, CrashDestroysSuspendedCoroutinesWithoutResumingThem) {
  // A crash must tear down every suspended frame of the node (locals' destructors run: nothing
  // leaks, checked by ASan/LSan) and must never resume them, not even when their timers come due.
  auto world = MakeWorld();
  bool outer_destroyed = false, inner_destroyed = false, resumed = false;
  world->env(kN0).Spawn(
      Outer(world->env(kN0).executor(), &outer_destroyed, &inner_destroyed, &resumed));
  world->RunFor(Duration::Seconds(1));
  EXPECT_FALSE(outer_destroyed);
  world->Crash(kN0);
  EXPECT_TRUE(outer_destroyed);
  EXPECT_TRUE(inner_destroyed);
  EXPECT_FALSE(resumed);
  world->Restart(kN0);
  world->RunFor(Duration::Seconds(200));
  EXPECT_FALSE(resumed);
}

TEST(TaskTest, CrashBetweenCancelAndWakeupDoesNotResume) {
  // Cancel posts the wake-up to a later turn; a crash in between must destroy the sleeper and its
  // posted wake-up together (ASan catches a wake-up that resumes a freed frame).
  auto world = MakeWorld();
  CancelSource source;
  Status status = InternalError("unset");
  Duration slept;
  int resumes = 0;
  world->env(kN0).Spawn(CancellableSleep(world->env(kN0), Duration::Seconds(10), source.token(),
                                         &status, &slept, &resumes));
  World* w = world.get();
  world->Schedule(Duration::Seconds(1), [w, &source] {
    source.Cancel();
    w->Crash(kN0);
  });
  world->RunFor(Duration::Seconds(20));
  EXPECT_EQ(resumes, 0);
  EXPECT_EQ(status.code(), StatusCode::kInternal);
}

TEST(TaskSetTest, FinishedRootsFreeThemselvesAndDestroyAllTearsDownTheRest) {
  // TaskSet owns detached roots: a finished root must leave the set at once (no unbounded growth),
  // and DestroyAll must destroy suspended ones without resuming them.
  auto world = MakeWorld();
  Executor& ex = world->env(kN0).executor();
  TaskSet set;
  bool ran = false;
  set.Spawn(SetFlag(&ran));
  EXPECT_TRUE(ran);
  EXPECT_EQ(set.size(), 0u);
  set.Spawn(Task<void>());  // an empty task is ignored
  EXPECT_EQ(set.size(), 0u);

  int stage_a = 0, stage_b = 0;
  set.Spawn(SleepThenMark(ex, Duration::Millis(1), &stage_a));
  bool destroyed = false, resumed = false;
  set.Spawn(Inner(ex, &destroyed, &resumed));
  EXPECT_EQ(set.size(), 2u);
  world->RunFor(Duration::Millis(2));
  EXPECT_EQ(stage_a, 2);
  EXPECT_EQ(set.size(), 1u);
  set.DestroyAll();
  EXPECT_EQ(set.size(), 0u);
  EXPECT_TRUE(destroyed);
  EXPECT_FALSE(resumed);
  world->RunFor(Duration::Seconds(200));
  EXPECT_FALSE(resumed);
  (void)stage_b;
}

TEST(TaskSetTest, DestructorDestroysSuspendedRoots) {
  // Dropping a TaskSet (e.g. with its owner) must free suspended roots.
  auto world = MakeWorld();
  bool destroyed = false, resumed = false;
  {
    TaskSet set;
    set.Spawn(Inner(world->env(kN0).executor(), &destroyed, &resumed));
  }
  EXPECT_TRUE(destroyed);
  world->RunFor(Duration::Seconds(200));
  EXPECT_FALSE(resumed);
}

// --- deep chains -------------------------------------------------------------------------------

Task<int> One() { co_return 1; }

Task<void> SumSequential(int n, int64_t* out) {
  int64_t sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await One();
  *out = sum;
}

Task<int64_t> Depth(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await Depth(n - 1);
}

Task<void> DepthRoot(int n, int64_t* out) { *out = co_await Depth(n); }

TEST(TaskTest, ManySequentialReadyAwaitsRunInConstantStack) {
  // Regression: awaiting a Task relied on symmetric transfer being a tail call, which GCC does not
  // do at -O0 (the dev preset) nor reliably at -O1 (the asan preset): every ready await nested two
  // native frames and a loop of ~50'000 awaits overflowed the 8 MiB stack. A loop of 1'000'000
  // ready awaits must run in constant stack, like an ordinary loop of calls.
  auto world = MakeWorld();
  int64_t sum = 0;
  world->env(kN0).Spawn(SumSequential(1'000'000, &sum));
  EXPECT_EQ(sum, 1'000'000);
}

TEST(TaskTest, RecursiveAwaitChainsPropagateThroughManyLevels) {
  // A 10'000-deep recursion of awaits (depth like ordinary recursion, which the header documents)
  // returns the right value through every level.
  auto world = MakeWorld();
  int64_t depth = 0;
  world->env(kN0).Spawn(DepthRoot(10'000, &depth));
  EXPECT_EQ(depth, 10'000);
}

Task<void> SleepyLoop(Executor& ex, int n, int* done) {
  for (int i = 0; i < n; ++i) {
    const int64_t one = co_await One();  // ready
    EXPECT_EQ(one, 1);
    Task<int64_t> sleeper = [](Executor& e) -> Task<int64_t> {
      Status s = co_await Sleep(e, Duration::Micros(1));
      co_return s.ok() ? 1 : 0;
    }(ex);
    *done += static_cast<int>(co_await sleeper);  // suspends, resumes by symmetric transfer
  }
}

TEST(TaskTest, MixedReadyAndSuspendingAwaitsResumeCorrectly) {
  // Ready children continue their awaiter inline; suspending children resume it when they finish.
  // Mixing both in one loop must deliver every value exactly once.
  auto world = MakeWorld();
  int done = 0;
  world->env(kN0).Spawn(SleepyLoop(world->env(kN0).executor(), 1000, &done));
  world->RunFor(Duration::Seconds(1));
  EXPECT_EQ(done, 1000);
}

Task<void> SleepChain(Executor& ex, int n, int* done) {
  for (int i = 0; i < n; ++i) {
    Status s = co_await Yield(ex);
    if (!s.ok()) co_return;
  }
  ++*done;
}

TEST(TaskTest, ManyYieldsResumeFromTheEventLoop) {
  // Resumption from the executor (not symmetric transfer) for many turns: every turn is an event.
  auto world = MakeWorld();
  int done = 0;
  world->env(kN0).Spawn(SleepChain(world->env(kN0).executor(), 10'000, &done));
  EXPECT_EQ(done, 0);
  world->RunFor(Duration::Seconds(1));
  EXPECT_EQ(done, 1);
}

}  // namespace
}  // namespace faultline
namespace faultline {
namespace {

// GCC 12 builds a coroutine whose first statement is `if (!(co_await Sleep(...)).ok()) co_return;`
// that never gets past it (see Sleep in env/task.h); the form every coroutine here uses holds the
// status in a local first. This pins that form, as a coroutine's first statement, on a node.
int first_statement_wakeups = 0;
class FirstStatementSleeper final : public Node {
 public:
  explicit FirstStatementSleeper(Env& env) : env_(env) {}
  void Start() override {
    env_.Spawn(Fixed());
    env_.Spawn(Drawn());
  }

 private:
  Task<void> Fixed() {
    const Status slept = co_await Sleep(env_.executor(), Duration::Millis(10));
    if (!slept.ok()) co_return;
    ++first_statement_wakeups;
  }
  Task<void> Drawn() {
    const Status slept = co_await Sleep(env_.executor(), env_.random().Exponential(Duration::Millis(10)));
    if (!slept.ok()) co_return;
    ++first_statement_wakeups;
  }
  Env& env_;
};

TEST(TaskTest, SleepAsACoroutinesFirstStatementWakesIt) {
  World w(1, WithNodes(1));
  w.Boot(kN0, [](Env& e) { return std::make_unique<FirstStatementSleeper>(e); });
  w.RunFor(Duration::Seconds(1));
  EXPECT_EQ(first_statement_wakeups, 2);
}

}  // namespace
}  // namespace faultline
