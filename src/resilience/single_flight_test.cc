// Unit tests for faultline/resilience/single_flight.h, run as coroutines on a simulated node
// (sim::World) so that time is simulated and a crash really destroys the node's coroutines: one
// execution for N waiters, error and cancellation fan-out (no waiter may hang: Go issues #33519,
// #52557), per-waiter cancellation that never cancels shared work others still wait for, the TTL
// cache (hits, expiry, errors not cached, LRU bound), Forget, and teardown under ASan.
#include "faultline/resilience/single_flight.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/env/env.h"
#include "faultline/sim/world.h"

namespace faultline {
namespace {

using sim::World;
using Flight = SingleFlight<std::string, int>;
using Outcome = std::optional<Result<int>>;

constexpr NodeId kN0(0);
constexpr Duration kMs = Duration::Millis(1);
constexpr Duration Ms(int64_t n) { return Duration::Millis(n); }

std::unique_ptr<World> MakeWorld() {
  auto world = std::make_unique<World>(1, sim::WorldOptions::Nodes(1));
  world->Boot(kN0, [](Env&) { return std::make_unique<sim::Node>(); });
  return world;
}

SingleFlightOptions Opts(Duration ttl = Duration::Zero(), uint32_t keys_max = 16) {
  SingleFlightOptions o;
  o.ttl = ttl;
  o.keys_max = keys_max;
  return o;
}

std::unique_ptr<Flight> MakeFlight(Env& env, const SingleFlightOptions& o) {
  auto r = Flight::Create(env.executor(), env.clock(), o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

// The shared work: sleeps `delay` on the shared token (or on `external` when set), then returns
// `fail` or the execution number (1 for the first execution, 2 for the second, ...).
struct Work {
  Duration delay = Ms(10);
  Status fail;
  CancelToken external;
  int executions = 0;
  int saw_cancel = 0;
};

Task<Result<int>> Compute(Executor& ex, Work* w, CancelToken token) {
  const int n = ++w->executions;
  if (w->delay > Duration::Zero()) {
    Status s = co_await Sleep(ex, w->delay, w->external.can_be_cancelled() ? w->external : token);
    if (!s.ok()) {
      ++w->saw_cancel;
      co_return s;
    }
  }
  if (!w->fail.ok()) co_return w->fail;
  co_return n;
}

Task<void> Caller(Flight* f, Executor* ex, Work* w, std::string key, CancelToken token,
                  Outcome* out) {
  *out = co_await f->Do(
      std::move(key), [ex, w](CancelToken t) { return Compute(*ex, w, std::move(t)); },
      std::move(token));
}

void Spawn(Env& env, Flight* f, Work* w, const std::string& key, Outcome* out,
           CancelToken token = {}) {
  env.Spawn(Caller(f, &env.executor(), w, key, std::move(token), out));
}

TEST(SingleFlightTest, CreateRejectsInvalidOptionsNamingTheField) {
  // A negative ttl or an unbounded key count must be refused before any object exists.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  SingleFlightOptions o;
  o.ttl = -kMs;
  EXPECT_NE(Flight::Create(env.executor(), env.clock(), o).status().message().find("ttl"),
            std::string_view::npos);
  o = SingleFlightOptions();
  o.keys_max = 0;
  EXPECT_NE(Flight::Create(env.executor(), env.clock(), o).status().message().find("keys_max"),
            std::string_view::npos);
  o = SingleFlightOptions();
  o.inflight_keys_max = (1u << 20) + 1;
  EXPECT_NE(
      Flight::Create(env.executor(), env.clock(), o).status().message().find("inflight_keys_max"),
      std::string_view::npos);
}

TEST(SingleFlightTest, ConcurrentCallersOfOneKeyShareOneExecution) {
  // Five concurrent Do("a") calls must run fn once and all get its value; another key runs apart.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto flight = MakeFlight(env, Opts());
  Work wa;
  Work wb;
  Outcome out[5];
  Outcome out_b;
  for (auto& o : out) Spawn(env, flight.get(), &wa, "a", &o);
  Spawn(env, flight.get(), &wb, "b", &out_b);
  EXPECT_EQ(flight->inflight_keys(), 2u);
  EXPECT_EQ(flight->waiters("a"), 5u);
  world->RunFor(Ms(20));
  EXPECT_EQ(wa.executions, 1);
  EXPECT_EQ(wb.executions, 1);
  for (auto& o : out) {
    ASSERT_TRUE(o.has_value());
    ASSERT_TRUE(o->ok());
    EXPECT_EQ(o->value(), 1);
  }
  ASSERT_TRUE(out_b.has_value() && out_b->ok());
  EXPECT_EQ(flight->counters().executions, 2u);
  EXPECT_EQ(flight->counters().joined, 4u);
  EXPECT_EQ(flight->inflight_keys(), 0u);
}

class SharedEvents final : public Observer {
 public:
  void OnEvent(const Event& e) noexcept override {
    if (e.kind == EventKind::kSingleFlightShared) (e.a == 1 ? cached : joined) += 1;
    else ++other;
  }
  int joined = 0, cached = 0, other = 0;
};

TEST(SingleFlightTest, ReportsEveryCallAnsweredWithoutRunning) {
  // Three callers join one execution (2 joins); after it, a cached answer (1 cache hit); the
  // runs themselves report nothing.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto flight = MakeFlight(env, Opts(Ms(100)));
  SharedEvents events;
  flight->observe().Attach(&events, "flight");
  Work w;
  Outcome out[3];
  for (auto& o : out) Spawn(env, flight.get(), &w, "k", &o);
  world->RunFor(Ms(20));
  Outcome later;
  Spawn(env, flight.get(), &w, "k", &later);
  world->RunFor(Ms(1));
  ASSERT_TRUE(later.has_value() && later->ok());
  EXPECT_EQ(w.executions, 1);
  EXPECT_EQ(events.joined, 2);
  EXPECT_EQ(events.cached, 1);
  EXPECT_EQ(events.other, 0);
  EXPECT_EQ(flight->counters().joined, 2u);
  EXPECT_EQ(flight->counters().cache_hits, 1u);
}

TEST(SingleFlightTest, AnErrorReachesEveryWaiterAndIsNeverCached) {
  // The shared error must complete all waiters (none may hang) and, unlike a success, must not be
  // served from the cache: the next call executes again.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto flight = MakeFlight(env, Opts(Duration::Seconds(1)));
  Work w;
  w.fail = UnavailableError("backend down");
  Outcome out[3];
  for (auto& o : out) Spawn(env, flight.get(), &w, "k", &o);
  world->RunFor(Ms(20));
  for (auto& o : out) {
    ASSERT_TRUE(o.has_value());
    EXPECT_EQ(o->status().code(), StatusCode::kUnavailable);
  }
  EXPECT_EQ(flight->cached_keys(), 0u);
  EXPECT_EQ(flight->counters().errors, 1u);
  w.fail = Status::Ok();
  Outcome again;
  Spawn(env, flight.get(), &w, "k", &again);
  world->RunFor(Ms(20));
  EXPECT_EQ(w.executions, 2);
  ASSERT_TRUE(again.has_value() && again->ok());
  EXPECT_EQ(again->value(), 2);
}

TEST(SingleFlightTest, CancellationOfTheSharedWorkCompletesEveryWaiter) {
  // If the work itself is cancelled (here by an external source it listens to) its kCancelled is
  // fanned out: every waiter finishes, none hangs.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto flight = MakeFlight(env, Opts());
  CancelSource external;
  Work w;
  w.delay = Duration::Seconds(10);
  w.external = external.token();
  Outcome out[3];
  for (auto& o : out) Spawn(env, flight.get(), &w, "k", &o);
  world->RunFor(Ms(5));
  external.Cancel();
  world->RunFor(kMs);
  for (auto& o : out) {
    ASSERT_TRUE(o.has_value());
    EXPECT_EQ(o->status().code(), StatusCode::kCancelled);
  }
  EXPECT_EQ(flight->inflight_keys(), 0u);
}

TEST(SingleFlightTest, OneWaiterCancellingLeavesAloneWithoutCancellingSharedWork) {
  // A waiter's own token returns kCancelled to that waiter only, at once; the work keeps running
  // for the others, who still get the value when it finishes.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto flight = MakeFlight(env, Opts());
  Work w;
  CancelSource mine;
  Outcome first;
  Outcome others[2];
  Spawn(env, flight.get(), &w, "k", &first, mine.token());  // the starter leaves
  for (auto& o : others) Spawn(env, flight.get(), &w, "k", &o);
  world->RunFor(Ms(5));
  mine.Cancel();
  EXPECT_FALSE(first.has_value());  // resumed on a later turn, never inside Cancel()
  world->RunFor(kMs);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->status().code(), StatusCode::kCancelled);
  EXPECT_FALSE(others[0].has_value());
  EXPECT_EQ(flight->waiters("k"), 2u);
  world->RunFor(Ms(10));
  for (auto& o : others) {
    ASSERT_TRUE(o.has_value() && o->ok());
    EXPECT_EQ(o->value(), 1);
  }
  EXPECT_EQ(w.executions, 1);
  EXPECT_EQ(w.saw_cancel, 0);
  EXPECT_EQ(flight->counters().waiters_cancelled, 1u);
  EXPECT_EQ(flight->counters().abandoned, 0u);
}

TEST(SingleFlightTest, LastWaiterLeavingCancelsTheSharedWorkAndTheKeyStartsAfresh) {
  // When every waiter has left, nobody wants the result: the work is cancelled through its token,
  // forgotten, and the next Do() for the key executes anew instead of joining a dying call.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto flight = MakeFlight(env, Opts(Duration::Seconds(1)));
  Work w;
  CancelSource a;
  CancelSource b;
  Outcome oa;
  Outcome ob;
  Spawn(env, flight.get(), &w, "k", &oa, a.token());
  Spawn(env, flight.get(), &w, "k", &ob, b.token());
  world->RunFor(Ms(3));
  a.Cancel();
  world->RunFor(kMs);
  EXPECT_EQ(w.saw_cancel, 0);  // b still waits
  b.Cancel();
  world->RunFor(kMs);
  EXPECT_EQ(oa->status().code(), StatusCode::kCancelled);
  EXPECT_EQ(ob->status().code(), StatusCode::kCancelled);
  EXPECT_EQ(w.saw_cancel, 1);
  EXPECT_EQ(flight->inflight_keys(), 0u);
  EXPECT_EQ(flight->counters().abandoned, 1u);
  Outcome fresh;
  Spawn(env, flight.get(), &w, "k", &fresh);
  world->RunFor(Ms(20));
  ASSERT_TRUE(fresh.has_value() && fresh->ok());
  EXPECT_EQ(fresh->value(), 2);
  EXPECT_EQ(flight->cached_keys(), 1u);  // the abandoned execution cached nothing; this one did
}

TEST(SingleFlightTest, AlreadyCancelledCallerReturnsAtOnceWithoutExecuting) {
  // A caller whose token is cancelled before Do() must not start work nobody will wait for.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto flight = MakeFlight(env, Opts());
  Work w;
  CancelSource s;
  s.Cancel();
  Outcome o;
  Spawn(env, flight.get(), &w, "k", &o, s.token());
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->status().code(), StatusCode::kCancelled);
  EXPECT_EQ(w.executions, 0);
}

TEST(SingleFlightTest, TtlCacheServesSuccessesWithoutSuspendingUntilExpiry) {
  // A success is cached for ttl from its completion (node-monotonic clock): a hit returns inside
  // Spawn (no suspension, no execution); at completion + ttl the entry has expired.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto flight = MakeFlight(env, Opts(Ms(100)));
  Work w;
  Outcome o1;
  Spawn(env, flight.get(), &w, "k", &o1);  // completes at 10 ms: cached until 110 ms
  world->RunFor(Ms(50));
  ASSERT_TRUE(o1.has_value() && o1->ok());
  Outcome hit;
  Spawn(env, flight.get(), &w, "k", &hit);
  ASSERT_TRUE(hit.has_value() && hit->ok());
  EXPECT_EQ(hit->value(), 1);
  EXPECT_EQ(flight->counters().cache_hits, 1u);
  // The node's clock is not the world's (offset, drift): wait well past 110 ms of it.
  world->RunFor(Ms(70));
  Outcome after;
  Spawn(env, flight.get(), &w, "k", &after);
  EXPECT_FALSE(after.has_value());  // a miss: executes
  world->RunFor(Ms(20));
  ASSERT_TRUE(after.has_value() && after->ok());
  EXPECT_EQ(after->value(), 2);
  EXPECT_EQ(flight->counters().expired, 1u);
}

TEST(SingleFlightTest, CacheHoldsAtMostKeysMaxAndEvictsTheLeastRecentlyUsed) {
  // keys_max bounds memory: with 2 slots, touching "a" makes "b" the LRU victim when "c" arrives.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto flight = MakeFlight(env, Opts(Duration::Seconds(10), 2));
  Work wa, wb, wc;
  Outcome o;
  Spawn(env, flight.get(), &wa, "a", &o);
  world->RunFor(Ms(20));
  Spawn(env, flight.get(), &wb, "b", &o);
  world->RunFor(Ms(20));
  Spawn(env, flight.get(), &wa, "a", &o);  // hit: "a" becomes most recent
  EXPECT_EQ(flight->counters().cache_hits, 1u);
  Spawn(env, flight.get(), &wc, "c", &o);
  world->RunFor(Ms(20));
  EXPECT_EQ(flight->cached_keys(), 2u);
  EXPECT_EQ(flight->counters().evicted, 1u);
  Spawn(env, flight.get(), &wa, "a", &o);
  EXPECT_EQ(flight->counters().cache_hits, 2u);
  Spawn(env, flight.get(), &wb, "b", &o);
  world->RunFor(Ms(20));
  EXPECT_EQ(wa.executions, 1);
  EXPECT_EQ(wb.executions, 2);
  EXPECT_EQ(wc.executions, 1);
}

TEST(SingleFlightTest, ForgetDropsTheCacheAndDetachesTheInflightExecution) {
  // Go's Forget: later calls start a new execution instead of joining; waiters of the detached one
  // still get its result, which is not cached (it may be the stale value Forget was called for).
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto flight = MakeFlight(env, Opts(Duration::Seconds(10)));
  Work w;
  Outcome old_waiter;
  Spawn(env, flight.get(), &w, "k", &old_waiter);
  world->RunFor(Ms(2));
  flight->Forget("k");
  EXPECT_EQ(flight->inflight_keys(), 0u);
  Outcome new_waiter;
  Spawn(env, flight.get(), &w, "k", &new_waiter);
  world->RunFor(Ms(20));
  EXPECT_EQ(w.executions, 2);
  EXPECT_EQ(old_waiter->value(), 1);
  EXPECT_EQ(new_waiter->value(), 2);
  Outcome cached;
  Spawn(env, flight.get(), &w, "k", &cached);
  EXPECT_EQ(cached->value(), 2);
  flight->Forget("k");
  EXPECT_EQ(flight->cached_keys(), 0u);
}

TEST(SingleFlightTest, DistinctInflightKeysAreBounded) {
  // inflight_keys_max is a bound, not a queue: a new key beyond it fails at once with
  // kResourceExhausted, while joining an executing key still works.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  SingleFlightOptions o = Opts();
  o.inflight_keys_max = 1;
  auto flight = MakeFlight(env, o);
  Work w;
  Outcome a1, a2, b;
  Spawn(env, flight.get(), &w, "a", &a1);
  Spawn(env, flight.get(), &w, "b", &b);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->status().code(), StatusCode::kResourceExhausted);
  Spawn(env, flight.get(), &w, "a", &a2);
  world->RunFor(Ms(20));
  EXPECT_TRUE(a1->ok() && a2->ok());
  EXPECT_EQ(flight->counters().overflow, 1u);
}

TEST(SingleFlightTest, WorkThatFinishesWithoutSuspendingStillServesItsCaller) {
  // fn may complete inside Do() before any waiter is linked; the caller must get the value.
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto flight = MakeFlight(env, Opts());
  Work w;
  w.delay = Duration::Zero();
  Outcome o;
  Spawn(env, flight.get(), &w, "k", &o);
  ASSERT_TRUE(o.has_value() && o->ok());
  EXPECT_EQ(o->value(), 1);
  EXPECT_EQ(flight->inflight_keys(), 0u);
}

TEST(SingleFlightTest, DestroyingTheSingleFlightCompletesItsWaitersWithCancelled) {
  // Destroying the owner destroys the in-flight work; its waiters must complete (kCancelled) on a
  // later turn rather than hang or touch freed memory (ASan).
  auto world = MakeWorld();
  Env& env = world->env(kN0);
  auto flight = MakeFlight(env, Opts());
  Work w;
  Outcome out[2];
  for (auto& o : out) Spawn(env, flight.get(), &w, "k", &o);
  world->RunFor(Ms(3));
  flight.reset();
  world->RunFor(kMs);
  for (auto& o : out) {
    ASSERT_TRUE(o.has_value());
    EXPECT_EQ(o->status().code(), StatusCode::kCancelled);
  }
}

// A node that owns a SingleFlight and three callers of one key, for the crash test.
class FlightNode final : public sim::Node {
 public:
  FlightNode(Env& env, Work* work, std::vector<Outcome>* outs)
      : env_(env),
        work_(work),
        outs_(outs),
        flight_(Flight::Create(env.executor(), env.clock(), Opts(Duration::Seconds(1))).value()) {}
  void Start() override {
    for (auto& o : *outs_) Spawn(env_, flight_.get(), work_, "k", &o);
  }

 private:
  Env& env_;
  Work* work_;
  std::vector<Outcome>* outs_;
  std::unique_ptr<Flight> flight_;
};

TEST(SingleFlightTest, CrashMidFlightTearsDownWorkAndWaitersWithoutLeaksOrResumes) {
  // A crash destroys the node's coroutines and the node (with its SingleFlight) in whatever order
  // the simulator chooses; nothing may be resumed afterwards or leak (ASan), and a restarted node
  // works from scratch.
  Work work;
  work.delay = Ms(50);
  std::vector<Outcome> outs(3);
  World world(3, sim::WorldOptions::Nodes(1));
  world.Boot(kN0, [&](Env& env) { return std::make_unique<FlightNode>(env, &work, &outs); });
  world.RunFor(Ms(10));
  world.Crash(kN0);
  world.RunFor(Ms(100));
  for (auto& o : outs) EXPECT_FALSE(o.has_value());
  EXPECT_EQ(work.executions, 1);
  world.Restart(kN0);
  world.RunFor(Ms(100));
  EXPECT_EQ(work.executions, 2);
  for (auto& o : outs) {
    ASSERT_TRUE(o.has_value() && o->ok());
    EXPECT_EQ(o->value(), 2);
  }
}

}  // namespace
}  // namespace faultline
