// File: faultline/resilience/client_throttle.h
//
// ClientThrottle: Google SRE adaptive client-side throttling ("Handling Overload"; research
// §1 and §3 item 6). Over a sliding window of recent history (default 2 minutes) the client counts
//   requests: every request the application attempted, including those this throttle rejected;
//   accepts:  requests the backend accepted (any answer that is not "overloaded, go away").
// and rejects a new request locally, before it costs the backend anything, with probability
//   p = max(0, (requests − K·accepts) / (requests + 1)).
// While the backend accepts everything, requests ≈ accepts and p = 0; when it rejects, the client
// keeps sending only about K× what is being accepted, so a dead backend sees a trickle that lets
// the client notice recovery. K = 2 (SRE's default) tolerates half the requests being refused
// before any are dropped locally; smaller K throttles more aggressively.
//
//   if (!throttle->ShouldSend(rng)) return UnavailableError("throttled locally");
//   Status s = co_await Call(...);
//   if (IsOverloadRejection(s)) {
//     throttle->RecordRejectedByBackend();
//   } else {
//     throttle->RecordAccepted();
//   }
//
// The window is `buckets` buckets of window/buckets each on the injected monotonic clock; a bucket
// older than `buckets` widths counts for nothing, so history decays in steps of one bucket width
// (the effective window is between (buckets−1) and buckets widths long). Bucket k covers clock
// times [origin + k·width, origin + (k+1)·width), origin being the clock at construction.
//
// Decision: the probability is evaluated on the counts *before* this request is added, and the
// request is rejected iff draw < p·2^64 (computed exactly in 128-bit integers), so a given
// sequence of draws gives a given sequence of decisions. Then the request is counted.
//
// Clock reads: one per ShouldSend, RecordAccepted, Counts and RejectProbability (the bucket tick).
//
// Thread-safe and lock-free: each bucket is two 64-bit words (bucket tick in the high 32 bits, its
// count in the low 32), updated by CAS, so a bucket rotation never loses or double-counts an
// update. Nothing allocates. A bucket's tick is kept modulo 2^32 widths: a bucket untouched for a
// multiple of 2^32 widths (≥ 49 days at the minimum 1 ms width) could alias; counts saturate at
// 2^32−1 per bucket.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "faultline/core/observer.h"
#include "faultline/core/random.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"

namespace faultline {

struct ClientThrottleOptions {
  // K × 1000: 2000 is SRE's K = 2. >= 1000 (K < 1 would throttle a healthy backend).
  // <= 1'000'000.
  uint32_t k_milli = 2000;
  // Length of the history. >= buckets × 1 ms, finite, <= 1 day.
  Duration window = Duration::Seconds(120);
  // Number of buckets the window is split into. 1 ..= 64.
  uint32_t buckets = 12;

  Status Validate() const;
};

struct ClientThrottleCounters {
  uint64_t sent = 0;                 // ShouldSend returned true
  uint64_t throttled = 0;            // ShouldSend returned false
  uint64_t accepted = 0;             // RecordAccepted calls
  uint64_t rejected_by_backend = 0;  // RecordRejectedByBackend calls
};

class ClientThrottle {
 public:
  // The window's counts at one instant.
  struct Snapshot {
    uint64_t requests = 0;
    uint64_t accepts = 0;
  };

  static Result<std::unique_ptr<ClientThrottle>> Create(Clock& clock,
                                                        const ClientThrottleOptions& options);
  ClientThrottle(const ClientThrottle&) = delete;
  ClientThrottle& operator=(const ClientThrottle&) = delete;

  // Decides one request with a uniform 64-bit random draw, then counts it in `requests`.
  bool ShouldSend(uint64_t random_draw);
  // Same with rng.Next() as the draw (Rng is not thread-safe: one per thread).
  bool ShouldSend(Rng& rng) { return ShouldSend(rng.Next()); }

  // The backend accepted a request (it answered, successfully or with an error not caused by
  // overload).
  void RecordAccepted();
  // The backend refused a request for overload. Counted for observation only: a refusal is simply
  // a request without an accept.
  void RecordRejectedByBackend() { rejected_by_backend_.fetch_add(1, std::memory_order_relaxed); }

  // The current window counts and rejection probability (what the next ShouldSend would use).
  Snapshot Counts();
  double RejectProbability();
  ClientThrottleCounters counters() const;
  const ClientThrottleOptions& options() const { return options_; }
  // Reports kLimiterRejected for every request ShouldSend drops (a = 2, b = the reject
  // probability × 1000 that applied; no timestamp: the bucket tick is not a reading worth
  // passing on). Attach before the throttle is shared between threads.
  ObserverSlot& observe() { return observer_; }

 private:
  ClientThrottle(Clock& clock, const ClientThrottleOptions& options);
  static constexpr uint32_t kBucketsMax = 64;

  uint64_t Tick();
  // Adds 1 to the current bucket of `words` (a requests or accepts ring).
  static void Add(std::atomic<uint64_t>* words, uint32_t buckets, uint64_t tick);
  // Sum of the buckets of `words` still inside the window at `tick`.
  static uint64_t Sum(const std::atomic<uint64_t>* words, uint32_t buckets, uint64_t tick);
  // True iff `draw` falls in the rejection region of p for `s`.
  bool Reject(const Snapshot& s, uint64_t draw) const;

  Clock& clock_;
  const ClientThrottleOptions options_;
  const MonoTime origin_;
  const int64_t bucket_ns_;
  alignas(64) std::atomic<uint64_t> requests_[kBucketsMax];
  alignas(64) std::atomic<uint64_t> accepts_[kBucketsMax];
  alignas(64) std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> throttled_{0};
  ObserverSlot observer_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> rejected_by_backend_{0};
};

}  // namespace faultline
