#include "faultline/sim/clock.h"

#include "faultline/core/assert.h"

namespace faultline::sim {

SimClock::SimClock(const Scheduler* scheduler, Duration mono_base, Duration wall_offset,
                   int64_t drift_ppm)
    : scheduler_(scheduler), wall_offset_(wall_offset) {
  FL_ASSERT(scheduler != nullptr);
  FL_ASSERT(drift_ppm >= -100'000 && drift_ppm <= 100'000);
  t_anchor_ns_ = scheduler_->now().nanos();
  mono_anchor_ns_ = mono_base.nanos();
  drift_ppm_ = drift_ppm;
}

int64_t SimClock::MonoAt(int64_t t_ns) const {
  const Int128 dt = static_cast<Int128>(t_ns) - t_anchor_ns_;
  const Int128 skew = dt * drift_ppm_ / 1'000'000;
  return static_cast<int64_t>(mono_anchor_ns_ + dt + skew);
}

MonoTime SimClock::Now() {
  int64_t m = MonoAt(scheduler_->now().nanos());
  // Integer rounding across a re-anchor could step back by a nanosecond; the contract forbids it.
  if (m < mono_last_ns_) m = mono_last_ns_;
  mono_last_ns_ = m;
  return MonoTime::FromNanos(m);
}

WallTime SimClock::WallNow() {
  const int64_t mono = Now().nanos();
  Duration offset = wall_offset_;
  const SimTime t = scheduler_->now();
  if (t < strobe_until_ && strobe_period_ > Duration::Zero()) {
    const int64_t phase = (t - strobe_start_).nanos() / strobe_period_.nanos();
    if (phase % 2 == 1) offset += strobe_delta_;
  }
  return WallTime::FromNanos(kSimEpochUnixNs) + Duration::Nanos(mono) + offset;
}

void SimClock::SetDrift(int64_t drift_ppm) {
  FL_ASSERT(drift_ppm >= -100'000 && drift_ppm <= 100'000);
  const int64_t t = scheduler_->now().nanos();
  mono_anchor_ns_ = MonoAt(t);
  t_anchor_ns_ = t;
  drift_ppm_ = drift_ppm;
}

void SimClock::Strobe(Duration delta, Duration period, SimTime until) {
  FL_ASSERT(period > Duration::Zero());
  strobe_delta_ = delta;
  strobe_period_ = period;
  strobe_start_ = scheduler_->now();
  strobe_until_ = until;
}

Duration SimClock::wall_error() {
  const WallTime truth = WallTime::FromNanos(kSimEpochUnixNs) +
                         Duration::Nanos(scheduler_->now().nanos());
  return WallNow() - truth;
}

void SimClock::ResetWall(Duration residual) {
  strobe_until_ = SimTime();
  // wall = epoch + mono + offset should equal epoch + t + residual.
  const int64_t mono = Now().nanos();
  wall_offset_ = Duration::Nanos(scheduler_->now().nanos() - mono) + residual;
}

Duration SimClock::TrueDelayFor(Duration mono_delay) const {
  if (mono_delay <= Duration::Zero()) return Duration::Zero();
  if (mono_delay.is_infinite()) return mono_delay;
  // Ceil so a timer never fires before its monotonic deadline.
  const Int128 num = static_cast<Int128>(mono_delay.nanos()) * 1'000'000;
  const Int128 den = 1'000'000 + drift_ppm_;
  const Int128 q = (num + den - 1) / den;
  return Duration::Nanos(q > INT64_MAX ? INT64_MAX : static_cast<int64_t>(q));
}

}  // namespace faultline::sim
