// Tests for faultline/resilience/bulkhead.h. TryAcquire and RAII release on plain threads; the
// async queue on a sim::World node (simulated time, zero clock drift so waits are exact): FIFO
// hand-off, the exact queue_wait_max timeout, immediate refusal when the queue is full,
// cancellation, and crashes that destroy waiting or just-granted coroutines without leaking a
// slot. BulkheadConcurrent runs under TSan in ./run sanitize.
#include "faultline/resilience/bulkhead.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "faultline/core/random.h"
#include "faultline/env/cancel.h"
#include "faultline/env/env.h"
#include "faultline/env/task.h"
#include "faultline/sim/world.h"

namespace faultline {
namespace {

constexpr NodeId kN0(0);
constexpr NodeId kN1(1);

std::unique_ptr<Bulkhead> MakeBulkhead(uint32_t concurrency, uint32_t depth, Duration wait) {
  BulkheadOptions o;
  o.concurrency_max = concurrency;
  o.queue_depth_max = depth;
  o.queue_wait_max = wait;
  auto r = Bulkhead::Create(o);
  FL_ASSERT_MSG(r.ok(), "test options must be valid");
  return std::move(r).value();
}

// Two booted nodes with exact clocks (no drift, no offset) running no code of their own.
std::unique_ptr<sim::World> MakeWorld() {
  sim::WorldOptions o;
  o.node_count = 2;
  o.clocks.drift_ppm_max = 0;
  o.clocks.offset_max = Duration::Zero();
  auto world = std::make_unique<sim::World>(7, o);
  for (uint32_t i = 0; i < 2; ++i) {
    world->Boot(NodeId(i), [](Env&) { return std::make_unique<sim::Node>(); });
  }
  return world;
}

struct Got {
  bool done = false;
  StatusCode code = StatusCode::kUnknown;
  Duration waited;
};

// Acquires (recording the outcome and how long it waited), holds the slot for `hold`, releases it
// when the frame ends.
Task<void> AcquireAndHold(Env& env, Bulkhead& bulkhead, Duration hold, Got* got,
                          std::vector<int>* order = nullptr, int id = 0, CancelToken token = {}) {
  const MonoTime start = env.clock().Now();
  Result<BulkheadPermit> permit = co_await bulkhead.Acquire(env.executor(), std::move(token));
  got->done = true;
  got->code = permit.status().code();
  got->waited = env.clock().Now() - start;
  if (!permit.ok()) co_return;
  if (order != nullptr) order->push_back(id);
  if (hold > Duration::Zero()) {
    Status slept = co_await Sleep(env.executor(), hold);
    EXPECT_TRUE(slept.ok());
  }
}

TEST(BulkheadOptionsTest, InvalidOptionsAreRejectedNamingTheField) {
  // Invalid limits must never build a bulkhead, and the error must name the field.
  struct Case {
    const char* field;
    BulkheadOptions options;
  };
  BulkheadOptions zero;
  zero.concurrency_max = 0;
  BulkheadOptions deep;
  deep.queue_depth_max = (1u << 20) + 1;
  BulkheadOptions negative;
  negative.queue_wait_max = Duration::Nanos(-1);
  BulkheadOptions forever;
  forever.queue_wait_max = Duration::Infinite();
  for (const Case& c : {Case{"concurrency_max", zero}, Case{"queue_depth_max", deep},
                        Case{"queue_wait_max", negative}, Case{"queue_wait_max", forever}}) {
    auto r = Bulkhead::Create(c.options);
    ASSERT_FALSE(r.ok()) << c.field;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(c.field), std::string::npos)
        << r.status().ToString();
  }
  EXPECT_TRUE(BulkheadOptions().Validate().ok());
}

TEST(BulkheadTest, TryAcquireBoundsCallsInFlightAndPermitsReleaseExactlyOnce) {
  // At most concurrency_max permits exist; destroying, moving and explicitly releasing a permit
  // each give its slot back exactly once.
  auto b = MakeBulkhead(2, 0, Duration::Zero());
  BulkheadPermit p1 = b->TryAcquire();
  BulkheadPermit p2 = b->TryAcquire();
  ASSERT_TRUE(p1 && p2);
  EXPECT_FALSE(b->TryAcquire());
  EXPECT_EQ(b->in_use(), 2u);
  {
    BulkheadPermit moved = std::move(p1);
    EXPECT_FALSE(p1.held());  // NOLINT(bugprone-use-after-move): checking the moved-from state
    EXPECT_EQ(b->in_use(), 2u);
  }
  EXPECT_EQ(b->in_use(), 1u);
  p2.Release();
  p2.Release();
  EXPECT_EQ(b->in_use(), 0u);
  BulkheadPermit p3 = b->TryAcquire();
  p3 = b->TryAcquire();  // move-assignment releases the old slot first
  EXPECT_EQ(b->in_use(), 1u);
  p3 = BulkheadPermit();
  EXPECT_EQ(b->in_use(), 0u);
  const BulkheadCounters c = b->counters();
  EXPECT_EQ(c.acquired, 4u);
  EXPECT_EQ(c.rejected, 1u);
}

TEST(BulkheadTest, WaitersGetReleasedSlotsInFifoOrder) {
  // A released slot goes to the oldest waiter: four callers on one slot run one after another in
  // arrival order, each waiting exactly as long as those before it held the slot.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto b = MakeBulkhead(1, 3, Duration::Seconds(1));
  std::vector<int> order;
  Got got[4];
  for (int i = 0; i < 4; ++i)
    env.Spawn(AcquireAndHold(env, *b, Duration::Millis(100), &got[i], &order, i));
  EXPECT_EQ(b->queued(), 3u);
  world->RunFor(Duration::Seconds(1));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(got[i].code, StatusCode::kOk) << i;
    EXPECT_EQ(got[i].waited, Duration::Millis(100) * i) << i;
  }
  EXPECT_EQ(b->in_use(), 0u);
  EXPECT_EQ(b->counters().handed_off, 3u);
}

TEST(BulkheadTest, WaiterTimesOutAtExactlyQueueWaitMax) {
  // A waiter that gets no slot resumes with kDeadlineExceeded after exactly queue_wait_max of
  // node-monotonic time, leaves the queue, and the holder's later release frees the slot.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto b = MakeBulkhead(1, 1, Duration::Millis(50));
  Got holder, waiter;
  env.Spawn(AcquireAndHold(env, *b, Duration::Seconds(1), &holder));
  env.Spawn(AcquireAndHold(env, *b, Duration::Zero(), &waiter));
  world->RunFor(Duration::Millis(50) - Duration::Nanos(1));
  EXPECT_FALSE(waiter.done);
  world->RunFor(Duration::Nanos(1));
  ASSERT_TRUE(waiter.done);
  EXPECT_EQ(waiter.code, StatusCode::kDeadlineExceeded);
  EXPECT_EQ(waiter.waited, Duration::Millis(50));
  EXPECT_EQ(b->queued(), 0u);
  EXPECT_EQ(b->in_use(), 1u);
  world->RunFor(Duration::Seconds(2));
  EXPECT_EQ(b->in_use(), 0u);
  EXPECT_EQ(b->counters().timed_out, 1u);
}

TEST(BulkheadTest, FullQueueOrNoQueueRefusesAtOnce) {
  // Shedding must be immediate: with the queue full (or no queue, or no wait allowed) Acquire
  // completes without suspending, with kResourceExhausted (or kDeadlineExceeded for a zero wait).
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto b = MakeBulkhead(1, 1, Duration::Seconds(1));
  Got holder, queued, refused;
  env.Spawn(AcquireAndHold(env, *b, Duration::Seconds(5), &holder));
  env.Spawn(AcquireAndHold(env, *b, Duration::Zero(), &queued));
  env.Spawn(AcquireAndHold(env, *b, Duration::Zero(), &refused));
  EXPECT_FALSE(queued.done);
  ASSERT_TRUE(refused.done);
  EXPECT_EQ(refused.code, StatusCode::kResourceExhausted);
  EXPECT_EQ(b->counters().queue_full, 1u);

  auto no_queue = MakeBulkhead(1, 0, Duration::Seconds(1));
  auto no_wait = MakeBulkhead(1, 4, Duration::Zero());
  BulkheadPermit a = no_queue->TryAcquire();
  BulkheadPermit c = no_wait->TryAcquire();
  Got shed, late;
  env.Spawn(AcquireAndHold(env, *no_queue, Duration::Zero(), &shed));
  env.Spawn(AcquireAndHold(env, *no_wait, Duration::Zero(), &late));
  EXPECT_EQ(shed.code, StatusCode::kResourceExhausted);
  EXPECT_EQ(late.code, StatusCode::kDeadlineExceeded);
  world->RunFor(Duration::Seconds(10));
}

TEST(BulkheadTest, HandedOffSlotCannotBeStolenByTryAcquire) {
  // Between a release and the waiter's resumption (a later executor turn) the slot already
  // belongs to the waiter: a TryAcquire in that gap must fail, or the waiter would starve.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto b = MakeBulkhead(1, 1, Duration::Seconds(1));
  BulkheadPermit held = b->TryAcquire();
  Got waiter;
  env.Spawn(AcquireAndHold(env, *b, Duration::Millis(10), &waiter));
  held.Release();
  EXPECT_FALSE(waiter.done);  // resumes on a later turn, not inside Release()
  EXPECT_EQ(b->in_use(), 1u);
  EXPECT_FALSE(b->TryAcquire());
  world->RunFor(Duration::Millis(20));
  EXPECT_EQ(waiter.code, StatusCode::kOk);
  EXPECT_EQ(waiter.waited, Duration::Zero());
  EXPECT_EQ(b->in_use(), 0u);
}

TEST(BulkheadTest, CancelledWaiterLeavesTheQueueAndNeverGetsASlot) {
  // Cancelling a waiter resumes it (later turn) with kCancelled and removes it from the queue, so
  // the next release frees the slot instead of handing it to a caller that left. A token
  // cancelled before the call fails at once.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto b = MakeBulkhead(1, 2, Duration::Seconds(1));
  BulkheadPermit held = b->TryAcquire();
  CancelSource source;
  Got waiter;
  env.Spawn(AcquireAndHold(env, *b, Duration::Zero(), &waiter, nullptr, 0, source.token()));
  EXPECT_EQ(b->queued(), 1u);
  source.Cancel();
  EXPECT_EQ(b->queued(), 0u);
  EXPECT_FALSE(waiter.done);
  world->RunFor(Duration::Millis(1));
  EXPECT_EQ(waiter.code, StatusCode::kCancelled);
  held.Release();
  EXPECT_EQ(b->in_use(), 0u);

  Got early;
  env.Spawn(AcquireAndHold(env, *b, Duration::Zero(), &early, nullptr, 0, source.token()));
  EXPECT_EQ(early.code, StatusCode::kCancelled);
  EXPECT_EQ(b->counters().cancelled, 2u);
  world->RunFor(Duration::Seconds(2));  // the cancelled waiter's timer must not fire into it
}

TEST(BulkheadTest, CrashDestroyingAWaitingOrJustGrantedCoroutineNeverLeaksASlot) {
  // A crash destroys coroutine frames. A queued waiter must unlink itself; a waiter that was
  // granted a slot but had not resumed yet must give the slot back (else the bulkhead shrinks by
  // one slot per crash).
  auto world = MakeWorld();
  auto b = MakeBulkhead(1, 4, Duration::Seconds(1));
  BulkheadPermit held = b->TryAcquire();
  Got queued_then_crashed;
  world->env(kN0).Spawn(
      AcquireAndHold(world->env(kN0), *b, Duration::Zero(), &queued_then_crashed));
  EXPECT_EQ(b->queued(), 1u);
  world->Crash(kN0);
  EXPECT_EQ(b->queued(), 0u);
  EXPECT_FALSE(queued_then_crashed.done);

  Got granted_then_crashed;
  world->env(kN1).Spawn(
      AcquireAndHold(world->env(kN1), *b, Duration::Zero(), &granted_then_crashed));
  held.Release();  // handed to the node-1 waiter; its resumption is posted, not run
  EXPECT_EQ(b->in_use(), 1u);
  world->Crash(kN1);
  EXPECT_FALSE(granted_then_crashed.done);
  EXPECT_EQ(b->in_use(), 0u);
  world->RunFor(Duration::Seconds(2));
  EXPECT_TRUE(b->TryAcquire());
}

TEST(BulkheadConcurrent, FourThreadsNeverExceedConcurrencyMax) {
  // Racing TryAcquire/release on one bulkhead: never more than concurrency_max permits alive at
  // once, every slot returned at the end, and the counters add up.
  auto b = MakeBulkhead(3, 0, Duration::Zero());
  std::atomic<int> alive{0};
  std::atomic<int> violations{0};
  auto worker = [&](uint64_t seed) {
    Rng rng(seed);
    for (int i = 0; i < 50'000; ++i) {
      BulkheadPermit p = b->TryAcquire();
      if (!p) continue;
      if (alive.fetch_add(1) + 1 > 3) violations.fetch_add(1);
      if (rng.Uniform(4) == 0) std::this_thread::yield();
      alive.fetch_sub(1);
    }
  };
  std::vector<std::thread> threads;
  for (uint64_t s = 1; s <= 4; ++s) threads.emplace_back(worker, s);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(b->in_use(), 0u);
  const BulkheadCounters c = b->counters();
  EXPECT_EQ(c.acquired + c.rejected, 200'000u);
  EXPECT_GT(c.acquired, 0u);
}

}  // namespace
}  // namespace faultline
