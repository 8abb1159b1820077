// File: faultline/resilience/internal/striped_counters.h
//
// Not part of the API (included by public headers whose inline hot paths count with it).
// Statistics counters in 16 per-thread stripes, shared by the breaker, the rate limiters
// and the bulkhead. An increment is a relaxed load+store on the calling thread's own cache line
// (no read-modify-write, no sharing), so counting costs a hot path almost nothing. Exact with up
// to 16 threads using one instance; beyond that, threads sharing a stripe may lose increments.
// Decisions never read these counters: they are for observation only.
#pragma once

#include <atomic>
#include <cstdint>

namespace faultline::resilience_internal {

inline constexpr uint32_t kStripes = 16;

// Round-robin stripe assignment, 1-based (0 means "not assigned yet").
uint32_t AssignStripe();

// This thread's stripe: assigned on first use, then a single TLS read.
inline uint32_t ThreadStripe() {
  static thread_local uint32_t stripe_plus_one __attribute__((tls_model("initial-exec"))) = 0;
  if (__builtin_expect(stripe_plus_one == 0, 0)) stripe_plus_one = AssignStripe();
  return stripe_plus_one - 1;
}

template <uint32_t kCounters>
class StripedCounters {
 public:
  StripedCounters() {
    for (Stripe& s : stripes_) {
      for (std::atomic<uint64_t>& v : s.v) v.store(0, std::memory_order_relaxed);
    }
  }
  StripedCounters(const StripedCounters&) = delete;
  StripedCounters& operator=(const StripedCounters&) = delete;

  void Bump(uint32_t c) {
    std::atomic<uint64_t>& v = stripes_[ThreadStripe()].v[c];
    v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  uint64_t Sum(uint32_t c) const {
    uint64_t sum = 0;
    for (const Stripe& s : stripes_) sum += s.v[c].load(std::memory_order_relaxed);
    return sum;
  }

 private:
  struct alignas(64) Stripe {
    std::atomic<uint64_t> v[kCounters];
  };
  Stripe stripes_[kStripes];
};

}  // namespace faultline::resilience_internal
