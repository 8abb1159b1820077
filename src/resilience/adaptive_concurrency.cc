// AdaptiveConcurrencyLimiter: options, the three limit algorithms and the per-sample update.
// Admission is inline in the header.
#include "faultline/resilience/adaptive_concurrency.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "faultline/core/assert.h"
#include "faultline/core/options.h"
#include "faultline/core/random.h"

namespace faultline {
namespace {

constexpr uint32_t kLimitCeiling = 1u << 30;

// max(1, floor(log10(n))) on the integer part of the limit, exactly (no libm): CL's
// Log10RootFunction.
uint32_t Log10Floor1(double limit) {
  uint64_t n = limit < 1 ? 1 : static_cast<uint64_t>(limit);
  uint32_t digits = 0;
  while (n >= 10) {
    n /= 10;
    ++digits;
  }
  return std::max<uint32_t>(1, digits);
}

class AimdLimit final : public LimitAlgorithm {
 public:
  explicit AimdLimit(const AimdOptions& options) : options_(options) {}
  std::string_view name() const override { return "aimd"; }

  LimitUpdate Update(double limit, const LimitSample& sample) override {
    FL_ASSERT(limit >= 1);
    const double whole = std::floor(limit);
    double next = limit;
    if (sample.dropped || sample.rtt > options_.timeout) {
      next = std::floor(whole * options_.backoff_ratio);
    } else if (static_cast<double>(sample.inflight) * 2 >= whole) {
      next = whole + 1;
    }
    return LimitUpdate{next, options_.one_change_per_round && next != limit};
  }

 private:
  const AimdOptions options_;
};

class VegasLimit final : public LimitAlgorithm {
 public:
  explicit VegasLimit(const VegasOptions& options) : options_(options), rng_(options.probe_seed) {
    ResetProbeJitter();
  }
  std::string_view name() const override { return "vegas"; }

  LimitUpdate Update(double limit, const LimitSample& sample) override {
    FL_ASSERT(limit >= 1);
    const uint32_t lg = Log10Floor1(limit);
    // A drop carries no latency: it neither probes nor moves rtt_noload, and always decreases.
    if (sample.dropped) return Smooth(limit, limit - lg);
    const int64_t rtt = std::max<int64_t>(1, sample.rtt.nanos());
    ++probe_count_;
    if (probe_jitter_ * options_.probe_multiplier * limit <= static_cast<double>(probe_count_)) {
      ResetProbeJitter();
      probe_count_ = 0;
      rtt_noload_ns_ = rtt;
      return LimitUpdate{limit, true};
    }
    if (rtt_noload_ns_ == 0 || rtt < rtt_noload_ns_) {
      rtt_noload_ns_ = rtt;
      return LimitUpdate{limit, false};
    }
    // App-limited: far below the limit says nothing about it (no upward drift).
    if (static_cast<double>(sample.inflight) * 2 < limit) return LimitUpdate{limit, false};
    const double queue =
        std::ceil(limit * (1.0 - static_cast<double>(rtt_noload_ns_) / static_cast<double>(rtt)));
    const double alpha = static_cast<double>(options_.alpha_factor) * lg;
    const double beta = static_cast<double>(options_.beta_factor) * lg;
    if (queue <= lg) return Smooth(limit, limit + beta);  // no queueing: grow fast
    if (queue < alpha) return Smooth(limit, limit + lg);  // small queue: grow
    if (queue > beta) return Smooth(limit, limit - lg);   // queueing: shrink
    return LimitUpdate{limit, false};                     // alpha <= queue <= beta: hold
  }

  void Remeasure() override { rtt_noload_ns_ = 0; }

 private:
  LimitUpdate Smooth(double limit, double next) const {
    next = std::max(1.0, next);
    const double smoothed = (1 - options_.smoothing) * limit + options_.smoothing * next;
    return LimitUpdate{smoothed, options_.one_change_per_round && smoothed != limit};
  }
  void ResetProbeJitter() {
    probe_jitter_ = static_cast<double>(rng_.Range(500, 999)) / 1000.0;  // [0.5, 1)
  }

  const VegasOptions options_;
  Rng rng_;
  double probe_jitter_ = 1;
  uint64_t probe_count_ = 0;
  int64_t rtt_noload_ns_ = 0;
};

class Gradient2Limit final : public LimitAlgorithm {
 public:
  explicit Gradient2Limit(const Gradient2Options& options) : options_(options) {}
  std::string_view name() const override { return "gradient2"; }

  LimitUpdate Update(double limit, const LimitSample& sample) override {
    FL_ASSERT(limit >= 1);
    const double queue = static_cast<double>(options_.queue_size);
    const double s = options_.smoothing;
    if (sample.dropped) {
      return LimitUpdate{(1 - s) * limit + s * (limit * 0.5), options_.one_decrease_per_round};
    }
    const double short_rtt = static_cast<double>(std::max<int64_t>(1, sample.rtt.nanos()));
    const double long_rtt = AddLong(short_rtt);
    if (long_rtt / short_rtt > 2) long_rtt_ *= 0.95;
    if (static_cast<double>(sample.inflight) < limit / 2) return LimitUpdate{limit, false};
    const double gradient = std::clamp(options_.rtt_tolerance * long_rtt / short_rtt, 0.5, 1.0);
    return LimitUpdate{(1 - s) * limit + s * (limit * gradient + queue),
                       options_.one_decrease_per_round && gradient < 1};
  }

  void Remeasure() override {
    long_rtt_ = 0;
    long_count_ = 0;
    long_sum_ = 0;
  }

 private:
  // CL's ExpAvgMeasurement(window, warmup): returns the average including `rtt`.
  double AddLong(double rtt) {
    if (long_count_ < options_.warmup_samples) {
      ++long_count_;
      long_sum_ += rtt;
      long_rtt_ = long_sum_ / long_count_;
    } else {
      const double factor = 2.0 / (static_cast<double>(options_.long_window_samples) + 1);
      long_rtt_ = long_rtt_ * (1 - factor) + rtt * factor;
    }
    return long_rtt_;
  }

  const Gradient2Options options_;
  double long_rtt_ = 0;
  double long_sum_ = 0;
  uint32_t long_count_ = 0;
};

}  // namespace

std::unique_ptr<LimitAlgorithm> MakeAimdLimit(const AimdOptions& options) {
  return std::make_unique<AimdLimit>(options);
}
std::unique_ptr<LimitAlgorithm> MakeVegasLimit(const VegasOptions& options) {
  return std::make_unique<VegasLimit>(options);
}
std::unique_ptr<LimitAlgorithm> MakeGradient2Limit(const Gradient2Options& options) {
  return std::make_unique<Gradient2Limit>(options);
}

Status AdaptiveConcurrencyOptions::Validate() const {
  FL_CHECK_OPTION(limit_min >= 1, "limit_min must be >= 1");
  FL_CHECK_OPTION(limit_max >= limit_min && limit_max <= kLimitCeiling,
                  "limit_max must be in [limit_min, 2^30]");
  FL_CHECK_OPTION(limit_initial >= limit_min && limit_initial <= limit_max,
                  "limit_initial must be in [limit_min, limit_max]");
  FL_CHECK_OPTION(aimd.backoff_ratio >= 0.5 && aimd.backoff_ratio < 1.0,
                  "aimd.backoff_ratio must be in [0.5, 1)");
  FL_CHECK_OPTION(aimd.timeout > Duration::Zero(), "aimd.timeout must be > 0");
  FL_CHECK_OPTION(vegas.alpha_factor >= 1, "vegas.alpha_factor must be >= 1");
  FL_CHECK_OPTION(vegas.beta_factor > vegas.alpha_factor && vegas.beta_factor <= 1000,
                  "vegas.beta_factor must be in (alpha_factor, 1000]");
  FL_CHECK_OPTION(vegas.smoothing > 0 && vegas.smoothing <= 1, "vegas.smoothing must be in (0, 1]");
  FL_CHECK_OPTION(vegas.probe_multiplier >= 1, "vegas.probe_multiplier must be >= 1");
  FL_CHECK_OPTION(gradient2.smoothing > 0 && gradient2.smoothing <= 1,
                  "gradient2.smoothing must be in (0, 1]");
  FL_CHECK_OPTION(gradient2.queue_size <= (1u << 20), "gradient2.queue_size must be <= 2^20");
  FL_CHECK_OPTION(gradient2.rtt_tolerance >= 1 && gradient2.rtt_tolerance <= 1000,
                  "gradient2.rtt_tolerance must be in [1, 1000]");
  FL_CHECK_OPTION(gradient2.long_window_samples >= 1, "gradient2.long_window_samples must be >= 1");
  FL_CHECK_OPTION(gradient2.warmup_samples >= 1, "gradient2.warmup_samples must be >= 1");
  return Status::Ok();
}

Result<std::unique_ptr<AdaptiveConcurrencyLimiter>> AdaptiveConcurrencyLimiter::Create(
    Clock& clock, const AdaptiveConcurrencyOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<LimitAlgorithm> algorithm;
  switch (options.algorithm) {
    case LimitAlgorithmKind::kAimd:
      algorithm = MakeAimdLimit(options.aimd);
      break;
    case LimitAlgorithmKind::kVegas:
      algorithm = MakeVegasLimit(options.vegas);
      break;
    case LimitAlgorithmKind::kGradient2:
      algorithm = MakeGradient2Limit(options.gradient2);
      break;
  }
  if (algorithm == nullptr) return InvalidArgumentError("algorithm is not a LimitAlgorithmKind");
  return Create(clock, options, std::move(algorithm));
}

Result<std::unique_ptr<AdaptiveConcurrencyLimiter>> AdaptiveConcurrencyLimiter::Create(
    Clock& clock, const AdaptiveConcurrencyOptions& options,
    std::unique_ptr<LimitAlgorithm> algorithm) {
  FL_RETURN_IF_ERROR(options.Validate());
  if (algorithm == nullptr) return InvalidArgumentError("algorithm must not be null");
  return std::unique_ptr<AdaptiveConcurrencyLimiter>(
      new AdaptiveConcurrencyLimiter(clock, options, std::move(algorithm)));
}

AdaptiveConcurrencyLimiter::AdaptiveConcurrencyLimiter(Clock& clock,
                                                       const AdaptiveConcurrencyOptions& options,
                                                       std::unique_ptr<LimitAlgorithm> algorithm)
    : clock_(clock), options_(options), algorithm_(std::move(algorithm)) {
  std::lock_guard<std::mutex> lock(mu_);
  Publish(static_cast<double>(options.limit_initial));
}

AdaptiveConcurrencyLimiter::~AdaptiveConcurrencyLimiter() {
  FL_ASSERT_MSG(inflight_.load(std::memory_order_relaxed) == 0,
                "AdaptiveConcurrencyLimiter destroyed with calls in flight");
}

void AdaptiveConcurrencyLimiter::Publish(double estimate, MonoTime at) {
  const double lo = static_cast<double>(options_.limit_min);
  const double hi = static_cast<double>(options_.limit_max);
  // NaN from a custom algorithm keeps the old estimate rather than poisoning the limit.
  if (!(estimate == estimate)) estimate = estimate_;
  estimate_ = std::clamp(estimate, lo, hi);
  const uint32_t published = static_cast<uint32_t>(std::floor(estimate_));
  FL_ASSERT(published >= options_.limit_min && published <= options_.limit_max);
  const uint32_t previous = limit_.exchange(published, std::memory_order_relaxed);
  if (previous != published) observer_.Emit(EventKind::kAdaptiveLimit, at, published);
}

void AdaptiveConcurrencyLimiter::Complete(const Token& token, Duration rtt, Outcome outcome) {
  FL_ASSERT_MSG(token.admitted(), "completing a rejected AdaptiveConcurrencyLimiter token");
  FL_ASSERT(token.inflight() >= 1);
  const uint32_t before = inflight_.fetch_sub(1, std::memory_order_release);
  FL_ASSERT_MSG(before >= 1, "AdaptiveConcurrencyLimiter token completed twice");
  switch (outcome) {
    case Outcome::kIgnored:
      ignored_.fetch_add(1, std::memory_order_relaxed);
      return;
    case Outcome::kSuccess:
      succeeded_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Outcome::kDropped:
      dropped_.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  LimitSample sample;
  sample.rtt = outcome == Outcome::kSuccess ? std::max(rtt, Duration::Nanos(1)) : Duration::Zero();
  sample.inflight = token.inflight();
  sample.dropped = outcome == Outcome::kDropped;
  std::lock_guard<std::mutex> lock(mu_);
  if (token.epoch() != epoch_.load(std::memory_order_relaxed)) {
    stale_samples_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const LimitUpdate update = algorithm_->Update(estimate_, sample);
  Publish(update.limit, token.start() + rtt);
  if (update.new_epoch) {
    epoch_.fetch_add(1, std::memory_order_acq_rel);
    epochs_.fetch_add(1, std::memory_order_relaxed);
  }
}

void AdaptiveConcurrencyLimiter::Remeasure() {
  std::lock_guard<std::mutex> lock(mu_);
  algorithm_->Remeasure();
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  epochs_.fetch_add(1, std::memory_order_relaxed);
}

double AdaptiveConcurrencyLimiter::estimated_limit() const {
  std::lock_guard<std::mutex> lock(mu_);
  return estimate_;
}

AdaptiveConcurrencyCounters AdaptiveConcurrencyLimiter::counters() const {
  AdaptiveConcurrencyCounters c;
  c.rejected = rejected_.load(std::memory_order_relaxed);
  c.succeeded = succeeded_.load(std::memory_order_relaxed);
  c.dropped = dropped_.load(std::memory_order_relaxed);
  c.ignored = ignored_.load(std::memory_order_relaxed);
  c.stale_samples = stale_samples_.load(std::memory_order_relaxed);
  c.epochs = epochs_.load(std::memory_order_relaxed);
  // Every admitted token is either still in flight or completed exactly once.
  c.admitted = c.succeeded + c.dropped + c.ignored + inflight_.load(std::memory_order_relaxed);
  return c;
}

}  // namespace faultline
