// Unit tests for faultline/sim/scheduler.h: the simulator's event queue. Ordering by time and the
// seed-controlled order of simultaneous events are what make a run both realistic and replayable;
// Cancel semantics are what timers and crash teardown rely on. (Allocation-free steady state is
// covered by bench/, not here.)
#include "faultline/sim/scheduler.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <set>
#include <vector>

namespace faultline::sim {
namespace {

SimTime At(int64_t ns) { return SimTime::FromNanos(ns); }

// Runs every pending event; returns how many ran.
int RunAll(Scheduler& s) {
  int n = 0;
  while (EventId id = s.PopNext(SimTime::Max())) {
    s.Run(id);
    ++n;
  }
  return n;
}

TEST(SchedulerTest, EventsRunInTimeOrderAndNowFollows) {
  // Events scheduled out of order must run sorted by time, with now() equal to each event's time
  // while it runs.
  Rng rng(1);
  Scheduler s(&rng, nullptr);
  std::vector<int64_t> ran;
  const int64_t times[] = {50, 10, 40, 30, 20, 10'000, 0, 5};
  for (int64_t t : times) {
    s.At(At(t), EventOwner{}, [&s, &ran, t] {
      EXPECT_EQ(s.now().nanos(), t);
      ran.push_back(t);
    });
  }
  EXPECT_EQ(s.pending(), 8u);
  EXPECT_EQ(RunAll(s), 8);
  EXPECT_EQ(ran, (std::vector<int64_t>{0, 5, 10, 20, 30, 40, 50, 10'000}));
  EXPECT_EQ(s.pending(), 0u);
  EXPECT_EQ(s.executed(), 8u);
}

TEST(SchedulerTest, EventsInThePastRunNowNotBeforeNow) {
  // Time never goes backwards: an event scheduled before now() runs at now().
  Rng rng(1);
  Scheduler s(&rng, nullptr);
  s.AdvanceTo(At(1000));
  int64_t seen = -1;
  s.At(At(10), EventOwner{}, [&] { seen = s.now().nanos(); });
  RunAll(s);
  EXPECT_EQ(seen, 1000);
  s.AdvanceTo(At(500));  // AdvanceTo never moves backwards either
  EXPECT_EQ(s.now().nanos(), 1000);
}

TEST(SchedulerTest, EventsScheduledWhileRunningAreOrderedToo) {
  // Callbacks schedule more events (timers arming timers); they must interleave correctly with
  // those already queued, including ones due at the same instant.
  Rng rng(2);
  Scheduler s(&rng, nullptr);
  std::vector<int> ran;
  s.At(At(10), EventOwner{}, [&] {
    ran.push_back(10);
    s.At(At(15), EventOwner{}, [&] { ran.push_back(15); });
    s.At(At(5), EventOwner{}, [&] { ran.push_back(11); });  // in the past: runs at 10
  });
  s.At(At(20), EventOwner{}, [&] { ran.push_back(20); });
  RunAll(s);
  EXPECT_EQ(ran, (std::vector<int>{10, 11, 15, 20}));
}

std::vector<int> SameTimeOrder(uint64_t seed) {
  Rng rng(seed, 1);
  Scheduler s(&rng, nullptr);
  std::vector<int> order;
  for (int i = 0; i < 8; ++i) s.At(At(100), EventOwner{}, [&order, i] { order.push_back(i); });
  RunAll(s);
  return order;
}

TEST(SchedulerTest, SameTimeOrderDependsOnSeedAndReplaysExactly) {
  // Simultaneous events run in a seed-chosen order: the same seed must replay the same order
  // (determinism), and different seeds must explore different interleavings (otherwise every seed
  // tests the same schedule).
  std::set<std::vector<int>> orders;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const std::vector<int> a = SameTimeOrder(seed);
    EXPECT_EQ(a, SameTimeOrder(seed)) << "seed " << seed;
    EXPECT_EQ(std::multiset<int>(a.begin(), a.end()).size(), 8u);
    orders.insert(a);
  }
  EXPECT_GE(orders.size(), 15u);
}

TEST(SchedulerTest, CancelledEventNeverRuns) {
  // Cancel must free the event so it never runs, and count it out of pending().
  Rng rng(3);
  Scheduler s(&rng, nullptr);
  bool ran_a = false, ran_b = false;
  const EventId a = s.At(At(10), EventOwner{}, [&] { ran_a = true; });
  s.At(At(20), EventOwner{}, [&] { ran_b = true; });
  EXPECT_TRUE(s.IsPending(a));
  EXPECT_TRUE(s.Cancel(a));
  EXPECT_FALSE(s.IsPending(a));
  EXPECT_EQ(s.pending(), 1u);
  EXPECT_FALSE(s.Cancel(a));  // twice: false
  EXPECT_EQ(RunAll(s), 1);
  EXPECT_FALSE(ran_a);
  EXPECT_TRUE(ran_b);
  EXPECT_FALSE(s.Cancel(EventId{}));  // the zero id is "no event"
}

TEST(SchedulerTest, CancelOfAnEventThatRanReturnsFalse) {
  // A timer id kept after its callback ran must not be cancellable (Executor::Cancel's contract).
  Rng rng(4);
  Scheduler s(&rng, nullptr);
  const EventId a = s.At(At(1), EventOwner{}, [] {});
  RunAll(s);
  EXPECT_FALSE(s.IsPending(a));
  EXPECT_FALSE(s.Cancel(a));
}

TEST(SchedulerTest, CancelFromInsideItsOwnCallbackReturnsFalse) {
  // While an event runs it is no longer pending; cancelling itself must be a harmless false.
  Rng rng(4);
  Scheduler s(&rng, nullptr);
  EventId self;
  bool result = true;
  self = s.At(At(1), EventOwner{}, [&] { result = s.Cancel(self); });
  RunAll(s);
  EXPECT_FALSE(result);
}

TEST(SchedulerTest, StaleIdDoesNotCancelTheEventThatReusedItsSlot) {
  // Slots are reused; the generation in the id must stop a stale id (of an event that ran or was
  // cancelled) from cancelling the new occupant of the same slot.
  Rng rng(5);
  Scheduler s(&rng, nullptr);
  const EventId old_ran = s.At(At(1), EventOwner{}, [] {});
  RunAll(s);
  bool ran_new = false;
  const EventId fresh = s.At(At(2), EventOwner{}, [&] { ran_new = true; });
  EXPECT_EQ(static_cast<uint32_t>(old_ran.value), static_cast<uint32_t>(fresh.value))
      << "expected the slot to be reused";
  EXPECT_NE(old_ran.value, fresh.value);
  EXPECT_FALSE(s.Cancel(old_ran));
  EXPECT_TRUE(s.IsPending(fresh));

  const EventId cancelled = s.At(At(3), EventOwner{}, [] {});
  ASSERT_TRUE(s.Cancel(cancelled));
  bool ran_newer = false;
  s.At(At(3), EventOwner{}, [&] { ran_newer = true; });
  EXPECT_FALSE(s.Cancel(cancelled));
  RunAll(s);
  EXPECT_TRUE(ran_new);
  EXPECT_TRUE(ran_newer);
}

TEST(SchedulerTest, PopNextRespectsTheLimitAndOwnersAreKept) {
  // PopNext(limit) must not return events after `limit` (RunUntil relies on it), and must hand
  // back the owner recorded at scheduling (the World routes node events by it).
  Rng rng(6);
  Scheduler s(&rng, nullptr);
  s.At(At(10), EventOwner{3, 7}, [] {});
  s.At(At(30), EventOwner{}, [] {});
  const EventId first = s.PopNext(At(20));
  ASSERT_TRUE(first);
  EXPECT_EQ(s.owner(first).node, 3u);
  EXPECT_EQ(s.owner(first).incarnation, 7u);
  s.Run(first);
  EXPECT_FALSE(s.PopNext(At(20)));
  EXPECT_EQ(s.now().nanos(), 10);
  const EventId second = s.PopNext(At(30));
  ASSERT_TRUE(second);
  EXPECT_EQ(s.owner(second).node, EventOwner::kWorld);
  s.Drop(second);
  EXPECT_EQ(s.pending(), 0u);
  EXPECT_FALSE(s.PopNext(SimTime::Max()));
}

TEST(SchedulerTest, RequeueKeepsTheIdValidAndRunsLater) {
  // A parked event (paused node) is requeued with its id intact: still cancellable, runs once.
  Rng rng(7);
  Scheduler s(&rng, nullptr);
  int runs = 0;
  const EventId id = s.At(At(10), EventOwner{1, 0}, [&] { ++runs; });
  const EventId popped = s.PopNext(SimTime::Max());
  ASSERT_EQ(popped.value, id.value);
  s.Requeue(popped, At(50));
  EXPECT_TRUE(s.IsPending(id));
  EXPECT_FALSE(s.PopNext(At(49)));
  const EventId again = s.PopNext(SimTime::Max());
  ASSERT_EQ(again.value, id.value);
  EXPECT_EQ(s.now().nanos(), 50);
  s.Run(again);
  EXPECT_EQ(runs, 1);

  const EventId other = s.At(At(60), EventOwner{1, 0}, [&] { ++runs; });
  s.Requeue(s.PopNext(SimTime::Max()), At(70));
  EXPECT_TRUE(s.Cancel(other));
  EXPECT_EQ(RunAll(s), 0);
  EXPECT_EQ(runs, 1);
}

TEST(SchedulerTest, DeterminismHashCoversPoppedEvents) {
  // The hash sink must change with every popped event and be identical across replays.
  auto run = [](uint64_t seed) {
    Rng rng(seed, 1);
    uint64_t hash = 0;
    Scheduler s(&rng, &hash);
    for (int i = 0; i < 10; ++i) s.At(At(i % 3), EventOwner{}, [] {});
    std::vector<uint64_t> trail;
    while (EventId id = s.PopNext(SimTime::Max())) {
      trail.push_back(hash);
      s.Run(id);
    }
    return trail;
  };
  const auto a = run(1);
  EXPECT_EQ(a, run(1));
  EXPECT_EQ(std::set<uint64_t>(a.begin(), a.end()).size(), a.size());
}

// State of the model test, captured by pointer so each callback fits the 48-byte inline slot.
struct ModelState {
  explicit ModelState(uint64_t seed) : rng(seed, 1), ops(seed, 2), s(&rng, nullptr) {}
  Rng rng;
  Rng ops;
  Scheduler s;
  std::map<uint64_t, int64_t> live;  // event id -> due time
  std::vector<uint64_t> ids;         // index -> event id (filled right after At returns)
  std::set<uint64_t> ran;
  int64_t last = 0;
  bool ok = true;

  void Schedule(int depth) {
    const int64_t t = s.now().nanos() + static_cast<int64_t>(ops.Uniform(100));
    const size_t index = ids.size();
    ids.push_back(0);
    ModelState* self = this;
    const EventId id =
        s.At(At(t), EventOwner{}, [self, t, index, depth] { self->Ran(t, index, depth); });
    ids[index] = id.value;
    live[id.value] = t;
  }
  void Ran(int64_t t, size_t index, int depth) {
    ok = ok && s.now().nanos() == t && t >= last && live.erase(ids[index]) == 1 &&
         ran.insert(ids[index]).second;
    last = t;
    if (depth < 2 && ops.Chance({1, 3})) Schedule(depth + 1);
  }
};

RC_GTEST_PROP(SchedulerProperty, MatchesAReferenceModelUnderRandomScheduleAndCancel,
              (uint64_t seed)) {
  // Against a std::map model: random schedules (including from inside callbacks) and random
  // cancels; exactly the uncancelled events run, each once, in non-decreasing time order, at their
  // due time.
  ModelState m(seed);
  const int n = static_cast<int>(m.ops.Uniform(200)) + 1;
  for (int i = 0; i < n; ++i) m.Schedule(0);
  std::vector<uint64_t> scheduled;
  for (const auto& [id, t] : m.live) scheduled.push_back(id);
  for (uint64_t id : scheduled) {
    if (m.ops.Chance({1, 4})) {
      RC_ASSERT(m.s.Cancel(EventId{id}));
      m.live.erase(id);
    }
  }
  RunAll(m.s);
  RC_ASSERT(m.ok);
  RC_ASSERT(m.live.empty());
  RC_ASSERT(m.s.pending() == 0u);
}

}  // namespace
}  // namespace faultline::sim
