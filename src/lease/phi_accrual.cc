#include "faultline/lease/phi_accrual.h"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <string>
#include <utility>

#include "faultline/core/assert.h"
#include "faultline/core/options.h"
#include "faultline/core/random.h"

namespace faultline::lease {
namespace {

// Akka's logistic approximation of the normal CDF: z(y) = y (kA + kB y²).
constexpr double kA = 1.5976;
constexpr double kB = 0.070566;
constexpr double kLn10 = 2.302585092994046;
// Past this |z|, log1p(e^-|z|) < 2^-57 |z|: adding it no longer changes the double.
constexpr double kTailNegligible = 40.0;

constexpr double ZOf(double y) { return y * (kA + kB * y * y); }

// Bisection over the bit patterns of positive doubles (ordered like their bits): the smallest
// x in [lo, hi] with pred(x), given pred(hi) and pred monotone.
template <typename Pred>
double BisectBits(double lo, double hi, Pred pred) {
  uint64_t lo_bits = std::bit_cast<uint64_t>(lo);
  uint64_t hi_bits = std::bit_cast<uint64_t>(hi);
  FL_ASSERT(lo > 0 && lo < hi && pred(hi));
  while (hi_bits - lo_bits > 1) {
    const uint64_t mid = lo_bits + (hi_bits - lo_bits) / 2;
    if (pred(std::bit_cast<double>(mid))) {
      hi_bits = mid;
    } else {
      lo_bits = mid;
    }
  }
  return std::bit_cast<double>(hi_bits);
}

}  // namespace

Status PhiAccrualOptions::Validate() const {
  // Written as !(in range) so that a NaN threshold fails too.
  FL_CHECK_OPTION(threshold >= kPhiThresholdMin && threshold <= kPhiThresholdMax,
                  "threshold must be in [1, 100]");
  FL_CHECK_OPTION(window_max >= 2 && window_max <= kPhiWindowMax,
                  "window_max must be in [2, 65536]");
  FL_CHECK_OPTION(min_std > Duration::Zero() && min_std <= kPhiIntervalMax,
                  "min_std must be in (0, kPhiIntervalMax]");
  FL_CHECK_OPTION(acceptable_pause >= Duration::Zero() && acceptable_pause <= kPhiIntervalMax,
                  "acceptable_pause must be in [0, kPhiIntervalMax]");
  // Half the cap, so that the bootstrap interval estimate * 5/4 is within it.
  FL_CHECK_OPTION(first_heartbeat_estimate > Duration::Zero() &&
                      first_heartbeat_estimate <= kPhiIntervalMax / 2,
                  "first_heartbeat_estimate must be in (0, kPhiIntervalMax / 2]");
  return Status::Ok();
}

// --- PhiAccrualDetector --------------------------------------------------------------------------

// The y at which phi(y) = threshold, with IEEE-exact operations only (DeterministicLog and
// bisection), so that it is bit-identical on every platform:
//   phi = log10(1 + e^z) = T  <=>  z* = ln(10^T - 1) = c + ln(1 - e^-c),  c = T ln 10,
// then y* solves y (kA + kB y²) = z* (z is increasing in y).
double PhiAccrualDetector::SuspicionY(double threshold) {
  FL_ASSERT(threshold >= kPhiThresholdMin && threshold <= kPhiThresholdMax);
  const double c = threshold * kLn10;
  // e^-c = 10^-T in [1e-100, 0.1]: the smallest x whose log reaches -c.
  const double x = BisectBits(1e-300, 1.0, [c](double v) { return DeterministicLog(v) >= -c; });
  FL_ASSERT(x > 0 && x < 0.5);
  const double z_star = c + DeterministicLog(1.0 - x);
  // z* >= ln 9 > 0, so y* > 0; z(64) > 18000 > z* for T <= 100.
  FL_ASSERT(z_star > 2.0 && ZOf(64.0) > z_star);
  const double y_star = BisectBits(1e-3, 64.0, [z_star](double y) { return ZOf(y) >= z_star; });
  FL_ASSERT(y_star > 1e-3 && y_star < 64.0);
  return y_star;
}

Result<std::unique_ptr<PhiAccrualDetector>> PhiAccrualDetector::Create(
    const PhiAccrualOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<PhiAccrualDetector>(
      new PhiAccrualDetector(options, SuspicionY(options.threshold)));
}

PhiAccrualDetector::PhiAccrualDetector(const PhiAccrualOptions& options, double suspicion_y)
    : options_(options), suspicion_y_(suspicion_y), window_(new int64_t[options.window_max]) {
  FL_ASSERT(options_.Validate().ok());
  FL_ASSERT(suspicion_y_ > 0);
  // Akka's bootstrap: two intervals around the estimate, so mean = estimate, std = estimate / 4.
  const int64_t estimate_ns = options_.first_heartbeat_estimate.nanos();
  Record(estimate_ns - estimate_ns / 4);
  Record(estimate_ns + estimate_ns / 4);
  FL_ASSERT(count_ == 2);
  Refresh();
}

void PhiAccrualDetector::Heartbeat(MonoTime now) {
  if (!has_heartbeat_) {
    has_heartbeat_ = true;
    last_heartbeat_ = now;
    ++stats_.heartbeats;
    Refresh();
    return;
  }
  if (now <= last_heartbeat_) {
    ++stats_.stale_heartbeats;
    return;
  }
  // Decided before the update: this heartbeat ends a suspicion, so its interval was an outage,
  // not a sample of the peer's rhythm.
  const bool was_suspected = Suspect(now);
  const int64_t interval_ns = std::min((now - last_heartbeat_).nanos(), kPhiIntervalMax.nanos());
  FL_ASSERT(interval_ns > 0);
  last_heartbeat_ = now;
  ++stats_.heartbeats;
  if (was_suspected) {
    ++stats_.intervals_skipped;
  } else {
    Record(interval_ns);
  }
  Refresh();
  FL_ASSERT(suspect_after_ > last_heartbeat_);
}

void PhiAccrualDetector::Record(int64_t interval_ns) {
  FL_ASSERT(interval_ns >= 0 && interval_ns <= kPhiIntervalMax.nanos());
  const uint64_t v = static_cast<uint64_t>(interval_ns);
  if (count_ == options_.window_max) {
    const uint64_t old = static_cast<uint64_t>(window_[head_]);
    FL_ASSERT(sum_ns_ >= old && sum_sq_ns_ >= static_cast<UInt128>(old) * old);
    sum_ns_ -= old;
    sum_sq_ns_ -= static_cast<UInt128>(old) * old;
  } else {
    ++count_;
  }
  window_[head_] = interval_ns;
  head_ = head_ + 1 == options_.window_max ? 0 : head_ + 1;
  sum_ns_ += v;
  sum_sq_ns_ += static_cast<UInt128>(v) * v;
  FL_ASSERT(count_ >= 1 && count_ <= options_.window_max);
}

void PhiAccrualDetector::Refresh() {
  FL_ASSERT(count_ >= 1);
  // Exact in 128 bits: n <= 2^16 and intervals <= 2^47, so sum <= 2^63, sum² and n·sum_sq <= 2^126.
  const UInt128 n = count_;
  const UInt128 n_sum_sq = n * sum_sq_ns_;
  const UInt128 sum_squared = sum_ns_ * sum_ns_;
  FL_ASSERT(n_sum_sq >= sum_squared);  // Cauchy-Schwarz: the variance is never negative
  const double n_f = static_cast<double>(count_);
  mean_ns_ = static_cast<double>(sum_ns_) / n_f;
  std_ns_ = std::sqrt(static_cast<double>(n_sum_sq - sum_squared) / (n_f * n_f));
  mean_eff_ns_ = mean_ns_ + static_cast<double>(options_.acceptable_pause.nanos());
  std_eff_ns_ = std::max(std_ns_, static_cast<double>(options_.min_std.nanos()));
  FL_ASSERT(std_eff_ns_ > 0 && mean_eff_ns_ >= 0);
  if (!has_heartbeat_) return;
  // phi > threshold  <=>  y > y*  <=>  Δt > mean + y* · std.  Δt is an integer, so Δt > gap
  // <=> Δt > floor(gap). gap < 2^54: mean_eff <= 2^48 ns, std_eff <= 2^47 ns, y* < 64.
  const double gap_ns = std::floor(mean_eff_ns_ + suspicion_y_ * std_eff_ns_);
  FL_ASSERT(gap_ns >= 0 && gap_ns < 9.0e18);
  suspect_after_ = last_heartbeat_ + Duration::Nanos(static_cast<int64_t>(gap_ns));
}

double PhiAccrualDetector::Phi(MonoTime now) const {
  if (!has_heartbeat_) return 0.0;
  const int64_t dt_ns = std::max<int64_t>((now - last_heartbeat_).nanos(), 0);
  const double y = (static_cast<double>(dt_ns) - mean_eff_ns_) / std_eff_ns_;
  // phi = softplus(z) / ln 10 = (max(z, 0) + log1p(e^-|z|)) / ln 10: never overflows, and both
  // terms move monotonically with y (|z| is computed from |y| so the rounding is monotone too).
  const double abs_y = std::fabs(y);
  const double abs_z = abs_y * (kA + kB * abs_y * abs_y);
  const double tail = abs_z > kTailNegligible ? 0.0 : std::log1p(std::exp(-abs_z));
  return (y > 0 ? abs_z + tail : tail) / kLn10;
}

// --- LocalPauseGuard -----------------------------------------------------------------------------

LocalPauseGuard::LocalPauseGuard(Duration pause_threshold, Duration quiet)
    : pause_threshold_(pause_threshold), quiet_(quiet) {
  FL_ASSERT_MSG(pause_threshold_ > Duration::Zero(), "pause_threshold must be > 0");
  FL_ASSERT_MSG(quiet_ >= Duration::Zero(), "quiet must be >= 0");
}

void LocalPauseGuard::Tick(MonoTime now) {
  if (!ticked_) {
    ticked_ = true;
    last_tick_ = now;
    return;
  }
  if (now <= last_tick_) return;
  const Duration gap = now - last_tick_;
  longest_gap_ = std::max(longest_gap_, gap);
  if (gap > pause_threshold_) {
    // Every silence measured across the stall is this node's, not its peers'.
    ++pauses_;
    quiet_until_ = now + quiet_;
  }
  last_tick_ = now;
  FL_ASSERT(quiet_until_ <= last_tick_ + quiet_);
}

bool LocalPauseGuard::MayConvict(MonoTime now) const {
  // Still stalled, or resumed but not yet ticked: the caller cannot know yet how long it slept.
  if (ticked_ && now - last_tick_ > pause_threshold_) return false;
  return now >= quiet_until_;
}

// --- FailureDetector -----------------------------------------------------------------------------

Status FailureDetectorOptions::Validate() const {
  if (Status s = phi.Validate(); !s.ok()) {
    return InvalidArgumentError("phi." + std::string(s.message()));
  }
  FL_CHECK_OPTION(pause_threshold > Duration::Zero() && pause_threshold <= kPhiIntervalMax,
                  "pause_threshold must be in (0, kPhiIntervalMax]");
  FL_CHECK_OPTION(quiet >= Duration::Zero() && quiet <= kPhiIntervalMax,
                  "quiet must be in [0, kPhiIntervalMax]");
  FL_CHECK_OPTION(peers_max >= 1 && peers_max <= (1u << 20), "peers_max must be in [1, 2^20]");
  return Status::Ok();
}

Result<std::unique_ptr<FailureDetector>> FailureDetector::Create(
    const FailureDetectorOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<FailureDetector>(
      new FailureDetector(options, PhiAccrualDetector::SuspicionY(options.phi.threshold)));
}

Result<std::unique_ptr<FailureDetector>> FailureDetector::Create(const PhiAccrualOptions& phi,
                                                                 Duration pause_threshold) {
  FailureDetectorOptions options;
  options.phi = phi;
  options.pause_threshold = pause_threshold;
  options.quiet = pause_threshold;
  return Create(options);
}

FailureDetector::FailureDetector(const FailureDetectorOptions& options, double suspicion_y)
    : options_(options), suspicion_y_(suspicion_y), guard_(options.pause_threshold, options.quiet) {
  FL_ASSERT(options_.Validate().ok());
}

Status FailureDetector::Heartbeat(NodeId peer, MonoTime now) {
  auto it = detectors_.find(peer);
  if (it == detectors_.end()) {
    if (detectors_.size() >= options_.peers_max) {
      return ResourceExhaustedError("failure detector tracks peers_max peers already");
    }
    it = detectors_
             .emplace(peer, std::unique_ptr<PhiAccrualDetector>(
                                new PhiAccrualDetector(options_.phi, suspicion_y_)))
             .first;
  }
  it->second->Heartbeat(now);
  it->second->suspicion_reported_ = false;
  FL_ASSERT(detectors_.size() <= options_.peers_max);
  return Status::Ok();
}

double FailureDetector::Phi(NodeId peer, MonoTime now) const {
  const PhiAccrualDetector* d = detector(peer);
  return d == nullptr ? 0.0 : d->Phi(now);
}

bool FailureDetector::Suspect(NodeId peer, MonoTime now) const {
  const PhiAccrualDetector* d = detector(peer);
  const bool suspect = d != nullptr && d->Suspect(now) && guard_.MayConvict(now);
  if (suspect && observer_.attached() && !d->suspicion_reported_) {
    d->suspicion_reported_ = true;
    const double phi = std::min(d->Phi(now), 1e12);
    observer_.Emit(EventKind::kPhiSuspect, now, static_cast<int64_t>(peer.value()),
                   static_cast<int64_t>(phi * 1000.0));
  }
  return suspect;
}

bool FailureDetector::Remove(NodeId peer) { return detectors_.erase(peer) > 0; }

const PhiAccrualDetector* FailureDetector::detector(NodeId peer) const {
  const auto it = detectors_.find(peer);
  return it == detectors_.end() ? nullptr : it->second.get();
}

}  // namespace faultline::lease
