#include "faultline/shard/load_split.h"

#include <algorithm>

#include "faultline/core/assert.h"

namespace faultline::shard {

LoadSplitFinder::LoadSplitFinder(MonoTime start, const LoadSplitOptions& options)
    : start_(start), options_(options) {}

void LoadSplitFinder::Record(std::string_view start, std::string_view end, Rng& rng) {
  const uint64_t count = count_++;
  size_t idx;
  if (count < kSampleSize) {
    idx = static_cast<size_t>(count);
  } else {
    const uint64_t draw = rng.Uniform(count);
    if (draw >= kSampleSize) {
      // Not sampled: count this request against every sample.
      for (Sample& s : samples_) {
        const std::string_view key = s.key;
        if (!end.empty() && start < key && key < end) {
          ++s.contained;
        } else if (start < key) {
          ++s.left;
        } else {
          ++s.right;
        }
      }
      return;
    }
    idx = static_cast<size_t>(draw);
  }
  // Sampled: it replaces a reservoir slot, counters fresh (CockroachDB samples the start key).
  samples_[idx] = Sample{std::string(start), 0, 0, 0};
}

std::optional<std::string> LoadSplitFinder::Key() const {
  int best = -1;
  double best_score = 2.0;
  for (size_t i = 0; i < samples_filled(); ++i) {
    const Sample& s = samples_[i];
    const uint64_t lr = s.left + s.right;
    const uint64_t total = lr + s.contained;
    if (total < options_.min_counter || lr == 0) continue;
    const uint64_t diff = s.left > s.right ? s.left - s.right : s.right - s.left;
    // balance |L-R|/(L+R) < 0.25 and contained/total < 0.5, in integers.
    if (4 * diff >= lr || 2 * s.contained >= total) continue;
    const double score = static_cast<double>(diff) / static_cast<double>(lr) +
                         static_cast<double>(s.contained) / static_cast<double>(total);
    if (score < best_score) {
      best = static_cast<int>(i);
      best_score = score;
    }
  }
  if (best < 0) return std::nullopt;
  return samples_[static_cast<size_t>(best)].key;
}

std::pair<std::string, size_t> LoadSplitFinder::PopularKey() const {
  const size_t n = samples_filled();
  size_t best = 0, best_count = 0;
  for (size_t i = 0; i < n; ++i) {
    size_t c = 0;
    for (size_t j = 0; j < n; ++j) c += samples_[j].key == samples_[i].key ? 1 : 0;
    if (c > best_count) {
      best = i;
      best_count = c;
    }
  }
  if (n == 0) return {std::string(), 0};
  return {samples_[best].key, best_count};
}

LoadSplitDecider::LoadSplitDecider(Clock& clock, Rng& rng, LoadSplitOptions options)
    : clock_(&clock), rng_(&rng), options_(options), window_start_(clock.Now()) {
  FL_ASSERT(options_.qps_window > Duration::Zero());
  FL_ASSERT(options_.hot_key_percent >= 1 && options_.hot_key_percent <= 100);
}

void LoadSplitDecider::RollWindow(MonoTime now) {
  const Duration elapsed = now - window_start_;
  if (elapsed < options_.qps_window) return;
  // Requests per second over the window that just ended (an idle gap counts as its full length).
  last_qps_ = static_cast<uint64_t>(static_cast<UInt128>(window_count_) * 1'000'000'000ULL /
                                    static_cast<uint64_t>(elapsed.nanos()));
  window_start_ = now;
  window_count_ = 0;
  if (last_qps_ >= options_.qps_threshold) {
    low_windows_ = 0;
    if (!finder_.has_value()) finder_.emplace(now, options_);
  } else if (++low_windows_ > options_.low_windows_tolerated) {
    finder_.reset();
  }
}

void LoadSplitDecider::Record(std::string_view start, std::string_view end) {
  RollWindow(clock_->Now());
  ++window_count_;
  if (finder_.has_value()) finder_->Record(start, end, *rng_);
}

LoadSplitDecider::Decision LoadSplitDecider::Poll() const {
  if (!finder_.has_value() || !finder_->Ready(clock_->Now())) return {};
  if (std::optional<std::string> key = finder_->Key()) {
    return {Decision::Kind::kSplit, std::move(*key)};
  }
  auto [key, count] = finder_->PopularKey();
  if (count > 0 && count * 100 >= options_.hot_key_percent * LoadSplitFinder::kSampleSize) {
    return {Decision::Kind::kHotKey, std::move(key)};
  }
  return {};
}

}  // namespace faultline::shard
