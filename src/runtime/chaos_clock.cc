#include "faultline/runtime/chaos_clock.h"

#include <time.h>

#include "faultline/core/assert.h"

namespace faultline::runtime {
namespace {

int64_t ReadClock(clockid_t id) {
  timespec ts{};
  const int rc = clock_gettime(id, &ts);
  FL_ASSERT_MSG(rc == 0, "clock_gettime failed");
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

int64_t HostMonotonicNanos() { return ReadClock(CLOCK_MONOTONIC); }
int64_t HostRealtimeNanos() { return ReadClock(CLOCK_REALTIME); }

ChaosClock::ChaosClock()
    : host_boot_ns_(HostMonotonicNanos()),
      wall_base_ns_(HostRealtimeNanos()),
      t_anchor_ns_(host_boot_ns_),
      mono_anchor_ns_(host_boot_ns_),
      mono_last_ns_(host_boot_ns_) {}

int64_t ChaosClock::MonoAtLocked(int64_t t_ns) const {
  const Int128 dt = static_cast<Int128>(t_ns) - t_anchor_ns_;
  const Int128 skew = dt * drift_ppm_.load(std::memory_order_relaxed) / 1'000'000;
  return static_cast<int64_t>(mono_anchor_ns_ + dt + skew);
}

int64_t ChaosClock::NowLocked() {
  int64_t m = MonoAtLocked(HostMonotonicNanos());
  // Integer rounding across a re-anchor could step back by a nanosecond; the contract forbids it.
  if (m < mono_last_ns_) m = mono_last_ns_;
  mono_last_ns_ = m;
  return m;
}

MonoTime ChaosClock::Now() {
  std::lock_guard<std::mutex> lock(mu_);
  return MonoTime::FromNanos(NowLocked());
}

WallTime ChaosClock::WallNow() {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t mono = NowLocked();
  return WallTime::FromNanos(wall_base_ns_) + Duration::Nanos(mono - host_boot_ns_) +
         Duration::Nanos(wall_offset_ns_);
}

void ChaosClock::SetDrift(int64_t drift_ppm) {
  FL_ASSERT(drift_ppm >= -100'000 && drift_ppm <= 100'000);
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t t = HostMonotonicNanos();
    int64_t m = MonoAtLocked(t);
    if (m < mono_last_ns_) m = mono_last_ns_;
    mono_anchor_ns_ = m;
    t_anchor_ns_ = t;
    drift_ppm_.store(drift_ppm, std::memory_order_release);
  }
  std::lock_guard<std::mutex> lock(listener_mu_);
  if (listener_) listener_();
}

void ChaosClock::SetRateListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(listener_mu_);
  listener_ = std::move(listener);
}

void ChaosClock::JumpWall(Duration delta) {
  std::lock_guard<std::mutex> lock(mu_);
  wall_offset_ns_ = (Duration::Nanos(wall_offset_ns_) + delta).nanos();
}

void ChaosClock::ResetWall() {
  std::lock_guard<std::mutex> lock(mu_);
  // wall = base + (mono - boot) + offset should equal base + (t - boot).
  const int64_t t = HostMonotonicNanos();
  int64_t m = MonoAtLocked(t);
  if (m < mono_last_ns_) m = mono_last_ns_;
  mono_last_ns_ = m;
  wall_offset_ns_ = t - m;
}

Duration ChaosClock::wall_error() {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t t = HostMonotonicNanos();
  int64_t m = MonoAtLocked(t);
  if (m < mono_last_ns_) m = mono_last_ns_;
  mono_last_ns_ = m;
  // (base + (m - boot) + offset) - (base + (t - boot))
  return Duration::Nanos(m - t + wall_offset_ns_);
}

Duration ChaosClock::TrueDelayFor(Duration mono_delay) const {
  if (mono_delay <= Duration::Zero()) return Duration::Zero();
  if (mono_delay.is_infinite()) return mono_delay;
  // Ceil so a timer never fires before its monotonic deadline.
  const Int128 num = static_cast<Int128>(mono_delay.nanos()) * 1'000'000;
  const Int128 den = 1'000'000 + drift_ppm_.load(std::memory_order_acquire);
  const Int128 q = (num + den - 1) / den;
  return Duration::Nanos(q > INT64_MAX ? INT64_MAX : static_cast<int64_t>(q));
}

}  // namespace faultline::runtime
