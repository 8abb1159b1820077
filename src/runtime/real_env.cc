#include "faultline/runtime/real_env.h"

#include <unistd.h>

#include <algorithm>
#include <asio.hpp>
#include <chrono>

#include "faultline/core/options.h"
#include "faultline/runtime/posix_disk.h"

namespace faultline::runtime {

// The one steady_timer armed for the earliest deadline.
struct RealEnv::Wakeup {
  explicit Wakeup(asio::io_context& io) : timer(io) {}
  asio::steady_timer timer;
};

struct RealEnv::WorkGuard {
  explicit WorkGuard(asio::io_context& io) : guard(asio::make_work_guard(io)) {}
  asio::executor_work_guard<asio::io_context::executor_type> guard;
};

Status RealEnvOptions::Validate() const {
  FL_RETURN_IF_ERROR(transport.Validate());
  bool has_self = false;
  for (const Peer& p : peers) has_self = has_self || p.id == self;
  FL_CHECK_OPTION(has_self, "peers must contain self");
  FL_CHECK_OPTION(pending_timers_max > 0, "pending_timers_max must be > 0");
  return Status::Ok();
}

RealEnv::RealEnv(RealEnvOptions options)
    : self_(options.self),
      pending_timers_max_(options.pending_timers_max),
      io_(std::make_unique<asio::io_context>(1)),
      rng_(options.seed != 0 ? options.seed
                             : HashMix(static_cast<uint64_t>(::getpid()),
                                       static_cast<uint64_t>(HostMonotonicNanos()))) {
  if (options.clock != nullptr) {
    clock_ = options.clock;
    rate_clock_ = dynamic_cast<ChaosClock*>(options.clock);
  } else {
    chaos_clock_ = std::make_unique<ChaosClock>();
    clock_ = chaos_clock_.get();
    rate_clock_ = chaos_clock_.get();
  }
  work_ = std::make_unique<WorkGuard>(*io_);
  wakeup_ = std::make_unique<Wakeup>(*io_);
  if (rate_clock_ != nullptr) {
    // A rate change (from any thread) re-arms the wake-up at the new rate on the loop's thread.
    // Without it a faster clock would leave timers armed for the old, longer host span: they would
    // run late in node time and blunt the fault.
    rate_clock_->SetRateListener([this] {
      asio::post(*io_, [this] {
        armed_ns_ = INT64_MIN;
        Rearm();
      });
    });
  }
}

Result<std::unique_ptr<RealEnv>> RealEnv::Open(RealEnvOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<RealEnv> env(new RealEnv(options));
  FL_ASSIGN_OR_RETURN(env->transport_, LoopbackTransport::Open(*env->io_, options.self,
                                                               options.peers, options.transport));
  if (options.data_dir.empty()) {
    env->disk_ = std::make_unique<NoDisk>();
  } else {
    FL_ASSIGN_OR_RETURN(env->disk_, PosixDisk::Open(options.data_dir));
  }
  return env;
}

RealEnv::~RealEnv() {
  if (rate_clock_ != nullptr) rate_clock_->SetRateListener(nullptr);
  DestroySpawned();
  timers_.clear();
  deadline_of_.clear();
  wakeup_.reset();  // cancels the pending wait; its handler sees operation_aborted
  transport_.reset();
  work_.reset();
  io_.reset();  // drops every handler still queued without running it
}

Transport& RealEnv::transport() { return *transport_; }

void RealEnv::Spawn(Task<void> task) { tasks_.Spawn(std::move(task)); }

void RealEnv::DestroySpawned() { tasks_.DestroyAll(); }

void RealEnv::Run() {
  io_->restart();
  if (stop_requested_.exchange(false)) return;
  io_->run();
  stop_requested_.store(false);
}

void RealEnv::RunFor(Duration d) {
  io_->restart();
  if (stop_requested_.exchange(false)) return;
  io_->run_for(std::chrono::nanoseconds(d.nanos()));
  stop_requested_.store(false);
}

void RealEnv::Stop() {
  stop_requested_.store(true);
  io_->stop();
}

void RealEnv::PostFromAnyThread(std::function<void()> fn) {
  FL_ASSERT(fn != nullptr);
  asio::post(*io_, std::move(fn));
}

TimerId RealEnv::ScheduleAfter(Duration delay, Callback callback) {
  FL_ASSERT_MSG(timers_.size() < pending_timers_max_, "pending_timers_max exceeded: a timer leak?");
  const uint64_t id = next_timer_id_++;
  const int64_t deadline = (clock_->Now() + std::max(delay, Duration::Zero())).nanos();
  const bool earliest = timers_.empty() || deadline < timers_.begin()->first.first;
  timers_.emplace(std::make_pair(deadline, id), std::move(callback));
  deadline_of_.emplace(id, deadline);
  if (delay <= Duration::Zero()) {
    Kick();
  } else if (earliest) {
    Rearm();
  }
  return TimerId{id};
}

bool RealEnv::Cancel(TimerId id) {
  if (!id) return false;
  auto it = deadline_of_.find(id.value);
  if (it == deadline_of_.end()) return false;
  timers_.erase(std::make_pair(it->second, id.value));
  deadline_of_.erase(it);
  // The wake-up may now be early; it finds nothing due and re-arms. No syscall on the hot
  // schedule-then-cancel path of RPC timeouts.
  return true;
}

void RealEnv::Kick() {
  if (kick_pending_) return;
  kick_pending_ = true;
  asio::post(*io_, [this] {
    kick_pending_ = false;
    OnWakeup();
  });
}

void RealEnv::Rearm() {
  asio::steady_timer& timer = wakeup_->timer;
  if (timers_.empty()) {
    if (armed_ns_ != INT64_MIN) timer.cancel();
    armed_ns_ = INT64_MIN;
    return;
  }
  const int64_t deadline = timers_.begin()->first.first;
  if (deadline == armed_ns_) return;  // already armed for it
  const Duration mono_delay = MonoTime::FromNanos(deadline) - clock_->Now();
  if (mono_delay <= Duration::Zero()) {
    Kick();  // already due: the next turn, without a timer syscall
    return;
  }
  Duration true_delay = rate_clock_ != nullptr ? rate_clock_->TrueDelayFor(mono_delay) : mono_delay;
  // steady_clock's range ends in ~292 years; far deadlines wake up daily and re-arm.
  true_delay = std::min(true_delay, Duration::Seconds(86'400));
  timer.expires_after(std::chrono::nanoseconds(true_delay.nanos()));  // cancels the old wait
  armed_ns_ = deadline;
  timer.async_wait([this](const asio::error_code& ec) {
    if (ec == asio::error::operation_aborted) return;
    armed_ns_ = INT64_MIN;
    OnWakeup();
  });
}

void RealEnv::OnWakeup() {
  const int64_t now = clock_->Now().nanos();
  // Entries scheduled from here on (ids >= first_new) wait for a later turn, even when already
  // due: Post never runs inline, and a callback that keeps re-posting cannot starve I/O.
  const uint64_t first_new = next_timer_id_;
  // Runs every due entry in (deadline, id) order. Callbacks may schedule or cancel: the queue is
  // re-read each time.
  auto it = timers_.begin();
  while (it != timers_.end() && it->first.first <= now) {
    if (it->first.second >= first_new) {
      ++it;
      continue;
    }
    const uint64_t id = it->first.second;
    Callback callback = std::move(it->second);
    timers_.erase(it);
    deadline_of_.erase(id);
    callback();
    it = timers_.begin();
  }
  Rearm();
}

}  // namespace faultline::runtime
