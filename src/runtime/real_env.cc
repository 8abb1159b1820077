#include "faultline/runtime/real_env.h"

#include <unistd.h>

#include <asio.hpp>
#include <chrono>
#include <optional>

#include "faultline/core/options.h"
#include "faultline/runtime/posix_disk.h"

namespace faultline::runtime {

// One pending callback. `timer` is empty for Post (delay <= 0), which runs on a later turn.
struct RealEnv::Timer {
  MonoTime deadline;
  Callback callback;
  std::optional<asio::steady_timer> timer;
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
  return Status::Ok();
}

RealEnv::RealEnv(RealEnvOptions options)
    : self_(options.self),
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
  DestroySpawned();
  timers_.clear();  // cancels the asio timers; their handlers find no entry and return
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

TimerId RealEnv::ScheduleAfter(Duration delay, Callback callback) {
  const uint64_t id = next_timer_id_++;
  auto timer = std::make_unique<Timer>();
  timer->callback = std::move(callback);
  Timer& t = *timer;
  timers_.emplace(id, std::move(timer));
  if (delay <= Duration::Zero()) {
    t.deadline = clock_->Now();
    asio::post(*io_, [this, id] { OnTimer(id); });
  } else {
    t.deadline = clock_->Now() + delay;
    t.timer.emplace(*io_);
    Arm(id, t, delay);
  }
  return TimerId{id};
}

void RealEnv::Arm(uint64_t id, Timer& timer, Duration mono_delay) {
  const Duration true_delay =
      rate_clock_ != nullptr ? rate_clock_->TrueDelayFor(mono_delay) : mono_delay;
  // Infinite (or absurd) delays are capped at ~292 years by steady_clock's range: clamp to a day
  // and let the re-check re-arm.
  const Duration capped = true_delay > Duration::Seconds(86'400) ? Duration::Seconds(86'400)
                                                                  : true_delay;
  timer.timer->expires_after(std::chrono::nanoseconds(capped.nanos()));
  timer.timer->async_wait([this, id](const asio::error_code& ec) {
    if (ec == asio::error::operation_aborted) return;
    OnTimer(id);
  });
}

void RealEnv::OnTimer(uint64_t id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;  // cancelled
  Timer& t = *it->second;
  if (t.timer) {
    const MonoTime now = clock_->Now();
    if (now < t.deadline) {
      // The clock's rate rose since arming (or steady_clock and a custom clock disagree): wait
      // for the rest, so the callback never runs before its node-monotonic deadline.
      Arm(id, t, t.deadline - now);
      return;
    }
  }
  Callback callback = std::move(t.callback);
  timers_.erase(it);
  callback();
}

bool RealEnv::Cancel(TimerId id) {
  if (!id) return false;
  auto it = timers_.find(id.value);
  if (it == timers_.end()) return false;
  timers_.erase(it);  // destroying the steady_timer cancels its wait
  return true;
}

}  // namespace faultline::runtime
