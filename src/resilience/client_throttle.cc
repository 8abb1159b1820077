// ClientThrottle: the SRE adaptive-throttling decision over lock-free time buckets.
#include "faultline/resilience/client_throttle.h"

#include "faultline/core/assert.h"
#include "faultline/core/options.h"

namespace faultline {
namespace {

constexpr uint64_t kCountMask = 0xffff'ffffULL;

uint32_t TickOf(uint64_t word) { return static_cast<uint32_t>(word >> 32); }
uint64_t CountOf(uint64_t word) { return word & kCountMask; }
uint64_t Word(uint32_t tick, uint64_t count) { return (static_cast<uint64_t>(tick) << 32) | count; }

}  // namespace

Status ClientThrottleOptions::Validate() const {
  FL_CHECK_OPTION(k_milli >= 1000 && k_milli <= 1'000'000, "k_milli must be in [1000, 1000000]");
  FL_CHECK_OPTION(buckets >= 1 && buckets <= 64, "buckets must be in [1, 64]");
  FL_CHECK_OPTION(window <= Duration::Seconds(86400), "window must be <= 1 day");
  FL_CHECK_OPTION(window >= Duration::Millis(1) * static_cast<int64_t>(buckets),
                  "window must be >= buckets x 1 ms");
  return Status::Ok();
}

Result<std::unique_ptr<ClientThrottle>> ClientThrottle::Create(
    Clock& clock, const ClientThrottleOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<ClientThrottle>(new ClientThrottle(clock, options));
}

ClientThrottle::ClientThrottle(Clock& clock, const ClientThrottleOptions& options)
    : clock_(clock),
      options_(options),
      origin_(clock.Now()),
      bucket_ns_(options.window.nanos() / options.buckets) {
  FL_ASSERT(bucket_ns_ >= 1'000'000);
  for (uint32_t i = 0; i < kBucketsMax; ++i) {
    requests_[i].store(0, std::memory_order_relaxed);
    accepts_[i].store(0, std::memory_order_relaxed);
  }
}

uint64_t ClientThrottle::Tick() {
  const Duration since = clock_.Now() - origin_;
  FL_ASSERT_MSG(since >= Duration::Zero(), "ClientThrottle clock went backwards");
  return static_cast<uint64_t>(since.nanos() / bucket_ns_);
}

void ClientThrottle::Add(std::atomic<uint64_t>* words, uint32_t buckets, uint64_t tick) {
  const uint32_t t32 = static_cast<uint32_t>(tick);
  std::atomic<uint64_t>& slot = words[tick % buckets];
  uint64_t w = slot.load(std::memory_order_relaxed);
  uint64_t next = 0;
  do {
    if (TickOf(w) == t32) {
      if (CountOf(w) == kCountMask) return;  // saturated
      next = w + 1;
    } else if (static_cast<int32_t>(t32 - TickOf(w)) < 0) {
      // This caller stalled for a whole window after reading the clock; its bucket is gone.
      return;
    } else {
      next = Word(t32, 1);  // the slot held an expired bucket: start ours
    }
  } while (
      !slot.compare_exchange_weak(w, next, std::memory_order_relaxed, std::memory_order_relaxed));
}

uint64_t ClientThrottle::Sum(const std::atomic<uint64_t>* words, uint32_t buckets, uint64_t tick) {
  const uint32_t t32 = static_cast<uint32_t>(tick);
  uint64_t sum = 0;
  for (uint32_t i = 0; i < buckets; ++i) {
    const uint64_t w = words[i].load(std::memory_order_relaxed);
    if (static_cast<uint32_t>(t32 - TickOf(w)) < buckets) sum += CountOf(w);
  }
  return sum;
}

bool ClientThrottle::Reject(const Snapshot& s, uint64_t draw) const {
  // p = (R − K·A)/(R + 1), K = k_milli/1000. draw < p·2^64  ⇔  draw·(R+1)·1000 < (1000R −
  // k·A)·2^64.
  const UInt128 excess_milli = static_cast<UInt128>(s.requests) * 1000;
  const UInt128 allowed_milli = static_cast<UInt128>(s.accepts) * options_.k_milli;
  if (excess_milli <= allowed_milli) return false;
  const UInt128 lhs = static_cast<UInt128>(draw) * (static_cast<UInt128>(s.requests) + 1) * 1000;
  const UInt128 rhs = (excess_milli - allowed_milli) << 64;
  return lhs < rhs;
}

bool ClientThrottle::ShouldSend(uint64_t random_draw) {
  const uint64_t tick = Tick();
  Snapshot s;
  s.requests = Sum(requests_, options_.buckets, tick);
  s.accepts = Sum(accepts_, options_.buckets, tick);
  const bool reject = Reject(s, random_draw);
  Add(requests_, options_.buckets, tick);
  (reject ? throttled_ : sent_).fetch_add(1, std::memory_order_relaxed);
  if (reject && observer_.attached()) [[unlikely]] {
    const double excess = static_cast<double>(s.requests) -
                          static_cast<double>(options_.k_milli) / 1000.0 *
                              static_cast<double>(s.accepts);
    const double p = excess / (static_cast<double>(s.requests) + 1);
    observer_.Emit(EventKind::kLimiterRejected, MonoTime(), 2, static_cast<int64_t>(p * 1000));
  }
  return !reject;
}

void ClientThrottle::RecordAccepted() {
  Add(accepts_, options_.buckets, Tick());
  accepted_.fetch_add(1, std::memory_order_relaxed);
}

ClientThrottle::Snapshot ClientThrottle::Counts() {
  const uint64_t tick = Tick();
  Snapshot s;
  s.requests = Sum(requests_, options_.buckets, tick);
  s.accepts = Sum(accepts_, options_.buckets, tick);
  return s;
}

double ClientThrottle::RejectProbability() {
  const Snapshot s = Counts();
  const double excess = static_cast<double>(s.requests) - static_cast<double>(options_.k_milli) /
                                                              1000.0 *
                                                              static_cast<double>(s.accepts);
  if (excess <= 0) return 0;
  return excess / (static_cast<double>(s.requests) + 1);
}

ClientThrottleCounters ClientThrottle::counters() const {
  ClientThrottleCounters c;
  c.sent = sent_.load(std::memory_order_relaxed);
  c.throttled = throttled_.load(std::memory_order_relaxed);
  c.accepted = accepted_.load(std::memory_order_relaxed);
  c.rejected_by_backend = rejected_by_backend_.load(std::memory_order_relaxed);
  return c;
}

}  // namespace faultline
