// File: faultline/runtime/real_env.h
//
// RealEnv: one node's Env as a real process — the production implementation of the seams every
// node is written against, so the very node classes that run in sim::World run unchanged here.
//
//   seam        simulator (sim::World)            RealEnv
//   clock()     SimClock over simulated time      ChaosClock over CLOCK_MONOTONIC (or yours)
//   executor()  the World's event queue           one single-threaded asio::io_context
//   transport() sim::Network                      LoopbackTransport (UDP on 127.0.0.1)
//   disk()      SimDisk                           PosixDisk on data_dir (or NoDisk)
//   random()    Rng(seed, node stream)            Rng(seed)
//   Spawn()     TaskSet of the Process            TaskSet owned by the RealEnv
//
// Executor contract in production: ScheduleAfter(delay) records the node-monotonic deadline
// clock().Now() + max(delay, 0) in one ordered queue; one asio::steady_timer is armed for the
// earliest deadline, converted to host time through ChaosClock::TrueDelayFor (the remaining delay
// itself when the clock is not a ChaosClock). On wake-up every entry whose deadline is <=
// clock().Now() and that existed when the wake-up began runs, in (deadline, scheduling order) —
// the simulator's order, posts included — and the steady_timer is re-armed for the next one. A
// timer therefore never runs before its node-monotonic deadline, even when the drift changed
// while it waited (a slower clock just means a re-arm; it may run late, as any OS timer). A
// ChaosClock rate change re-arms the wake-up at the new rate, so a faster clock brings timers
// forward in host time as it does in the simulator.
// delay <= 0 (and Post) runs on a later turn of the loop, never inline: what a callback schedules
// waits at least for the next wake-up, after pending I/O has been polled.
// Callbacks run one at a time on the thread inside Run()/RunFor().
//
// Lifetime: spawned coroutines are owned by the RealEnv. DestroySpawned() (also run first by the
// destructor) destroys every suspended one — the same teardown as a crash in the simulator: frames
// destroyed, awaiters cancel their timers, nothing resumed. A harness that owns a node object whose
// members those coroutines reference calls DestroySpawned(), then destroys the node, then the
// RealEnv. Pending timers and posted callbacks are dropped, never run, when the RealEnv dies.
//
// Threading: everything but Stop() (and the transport's rule/stats calls) belongs to the loop's
// thread. One RealEnv per process is the intended use; several in one process (tests, benchmarks)
// work as long as each is driven by one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "faultline/core/random.h"
#include "faultline/env/env.h"
#include "faultline/runtime/chaos_clock.h"
#include "faultline/runtime/loopback_transport.h"

namespace faultline::runtime {

struct RealEnvOptions {
  NodeId self;
  // Every node this one may talk to, self included (its port is bound; 0 = ephemeral).
  std::vector<Peer> peers;
  // PosixDisk root (created if missing); empty = NoDisk, which refuses every call (kUnavailable).
  std::string data_dir;
  // random()'s seed; 0 = derive one from the pid and CLOCK_MONOTONIC (not reproducible).
  uint64_t seed = 0;
  // The node's clock; default (nullptr) = a ChaosClock owned by the RealEnv. Must outlive it.
  Clock* clock = nullptr;
  LoopbackOptions transport;
  // Timers plus posted callbacks pending at once. Going past it is a programmer error (a timer
  // leak, a livelock of re-posting callbacks) and fails loudly, like the simulator's events_max.
  uint32_t pending_timers_max = 1'000'000;
  Status Validate() const;
};

class RealEnv final : public Env, private Executor {
 public:
  static Result<std::unique_ptr<RealEnv>> Open(RealEnvOptions options);
  ~RealEnv() override;
  RealEnv(const RealEnv&) = delete;
  RealEnv& operator=(const RealEnv&) = delete;

  // Env
  NodeId self() const override { return self_; }
  Clock& clock() override { return *clock_; }
  Executor& executor() override { return *this; }
  Transport& transport() override;
  Disk& disk() override { return *disk_; }
  Rng& random() override { return rng_; }
  void Spawn(Task<void> task) override;

  // Runs the loop on the calling thread until Stop(). Idle time is spent blocked in epoll.
  void Run();
  // Runs the loop for `d` of host time (or until Stop()), then returns.
  void RunFor(Duration d);
  // Makes Run()/RunFor() return after the current callback; a Stop() before Run() makes the next
  // Run() return at once. Thread-safe (e.g. from a signal-handling thread or another node's loop).
  void Stop();

  // Runs `fn` on the loop's thread on a later turn; the one call, besides Stop(), that any thread
  // may make. Blocking clients (EtcdLeaseService's HTTP worker) run on threads of their own and
  // hand their results back through it. `fn` runs outside the timer queue (in the order asio
  // dequeues handlers), only while Run()/RunFor() runs; it is dropped, never run, when the RealEnv
  // is destroyed first. The caller must stop posting before the RealEnv is destroyed.
  void PostFromAnyThread(std::function<void()> fn);

  // Destroys every spawned coroutine still suspended (see Lifetime above).
  void DestroySpawned();
  size_t spawned() const { return tasks_.size(); }
  // Timers and posted callbacks not yet run or cancelled.
  size_t pending_timers() const { return timers_.size(); }

  // For harness-side additions on the same loop (a control socket, signal sets).
  asio::io_context& io() { return *io_; }
  LoopbackTransport& loopback() { return *transport_; }
  // The owned ChaosClock, or nullptr when options.clock was given.
  ChaosClock* chaos_clock() { return chaos_clock_.get(); }

 private:
  struct Wakeup;
  explicit RealEnv(RealEnvOptions options);

  // Executor
  TimerId ScheduleAfter(Duration delay, Callback callback) override;
  bool Cancel(TimerId id) override;

  // Arms the wake-up for the earliest deadline (or disarms it when none is left).
  void Rearm();
  void OnWakeup();
  // Queues one OnWakeup on the io_context (at most one outstanding).
  void Kick();

  NodeId self_;
  uint32_t pending_timers_max_;
  // Destroyed last: timers and the transport's socket are registered with it.
  std::unique_ptr<asio::io_context> io_;
  std::unique_ptr<ChaosClock> chaos_clock_;
  Clock* clock_ = nullptr;
  ChaosClock* rate_clock_ = nullptr;  // clock_ when it is a ChaosClock (for TrueDelayFor)
  std::unique_ptr<LoopbackTransport> transport_;
  std::unique_ptr<Disk> disk_;
  Rng rng_;
  uint64_t next_timer_id_ = 1;
  // Timers and posts by (node-monotonic deadline ns, id); deadline_of_ finds them for Cancel.
  std::map<std::pair<int64_t, uint64_t>, Callback> timers_;
  std::unordered_map<uint64_t, int64_t> deadline_of_;
  bool kick_pending_ = false;
  // The deadline the steady_timer is armed for (INT64_MIN: not armed), so an unchanged earliest
  // deadline costs no timer syscall.
  int64_t armed_ns_ = INT64_MIN;
  std::unique_ptr<Wakeup> wakeup_;
  std::atomic<bool> stop_requested_{false};
  struct WorkGuard;
  std::unique_ptr<WorkGuard> work_;
  TaskSet tasks_;  // declared last: destroyed first (the destructor also clears it explicitly)
};

}  // namespace faultline::runtime
