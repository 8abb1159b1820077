// File: faultline/shard/load_split.h
//
// Hot-range detection and load-based split keys, after CockroachDB's split.Finder/Decider
// (pkg/kv/kvserver/split):
//
//   LoadSplitFinder  a reservoir of 20 sampled request start keys (reservoir sampling with the
//                    injected Rng), each with counters: `left` (requests that start before it),
//                    `right` (that start at or after it) and `contained` (spans strictly around it,
//                    which a split there would cut). Key() is valid once Ready: at least 10 s since
//                    the finder started; it picks, among samples with left+right+contained >= 100,
//                    those with |L-R|/(L+R) < 0.25 and contained/(L+R+C) < 0.5, the one with the
//                    lowest sum of those two ratios. A split at key K makes [begin, K) and [K,
//                    end).
//   LoadSplitDecider per-range requests-per-second counter; once a full window's rate reaches
//                    qps_threshold it starts a finder; when the rate drops below for more than
//                    low_windows_tolerated windows in a row, the finder is discarded (0, the
//                    default, is CockroachDB's rule: at the first low window). Poll() reports kSplit with the key, or kHotKey when no key
//                    qualifies and one key fills at least hot_key_fraction of the reservoir: a
//                    single hot key cannot be split away, so the caller should throttle or isolate
//                    its tenant instead of splitting again and again.
//
// Comparisons are done in integers (4|L-R| < L+R, 2C < L+R+C), so the choice is exact; time comes
// from the Clock and randomness from the Rng, so a simulation replays bit for bit.
//
// Thread safety: none; one decider per range, driven by the range's owner.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "faultline/core/random.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"

namespace faultline::shard {

struct LoadSplitOptions {
  Duration record_duration = Duration::Seconds(10);  // finder runs at least this long
  uint64_t min_counter = 100;                        // a sample needs this many counted requests
  uint64_t qps_threshold = 2500;                     // kv.range_split.load_qps_threshold
  Duration qps_window = Duration::Seconds(1);
  uint32_t hot_key_percent = 80;  // reservoir share of one key reported as kHotKey
  // Consecutive windows below qps_threshold a running finder survives. A window rolls only when a
  // request arrives, so a stall of the range's traffic (a pause, a clogged link, a restart of the
  // reader) is one long low window: tolerating a few keeps a hot range's finder through a stall
  // instead of starting it over, while a range that really cooled down keeps reading low and is
  // still dropped.
  uint32_t low_windows_tolerated = 0;
};

class LoadSplitFinder {
 public:
  static constexpr size_t kSampleSize = 20;
  struct Sample {
    std::string key;
    uint64_t left = 0;
    uint64_t right = 0;
    uint64_t contained = 0;
  };

  LoadSplitFinder(MonoTime start, const LoadSplitOptions& options);
  // A request over [start, end); an empty `end` is a point request at `start`.
  void Record(std::string_view start, std::string_view end, Rng& rng);
  bool Ready(MonoTime now) const { return now - start_ >= options_.record_duration; }
  // The split key (only meaningful once Ready), or nullopt when no sample qualifies.
  std::optional<std::string> Key() const;
  // The most frequent sampled key and how many of the filled samples hold it.
  std::pair<std::string, size_t> PopularKey() const;

  uint64_t count() const { return count_; }
  size_t samples_filled() const { return count_ < kSampleSize ? count_ : kSampleSize; }
  const Sample& sample(size_t i) const { return samples_[i]; }

 private:
  MonoTime start_;
  LoadSplitOptions options_;
  uint64_t count_ = 0;
  std::array<Sample, kSampleSize> samples_;
};

class LoadSplitDecider {
 public:
  struct Decision {
    enum class Kind : uint8_t { kNone, kSplit, kHotKey };
    Kind kind = Kind::kNone;
    std::string key;  // the split key, or the hot key
  };

  // `clock` and `rng` must outlive the decider.
  LoadSplitDecider(Clock& clock, Rng& rng, LoadSplitOptions options = {});

  void Record(std::string_view start, std::string_view end = {});
  // kSplit or kHotKey once the finder is Ready; kNone before. Does not reset anything: after a
  // split the caller makes new deciders for the two halves.
  Decision Poll() const;

  // The rate measured over the last complete window (requests per second).
  uint64_t last_qps() const { return last_qps_; }
  bool finding() const { return finder_.has_value(); }

 private:
  void RollWindow(MonoTime now);
  Clock* clock_;
  Rng* rng_;
  LoadSplitOptions options_;
  MonoTime window_start_;
  uint64_t window_count_ = 0;
  uint32_t low_windows_ = 0;  // consecutive windows below the threshold
  uint64_t last_qps_ = 0;
  std::optional<LoadSplitFinder> finder_;
};

}  // namespace faultline::shard
