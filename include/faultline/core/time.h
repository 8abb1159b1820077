// File: faultline/core/time.h
//
// Nanosecond time types. All three are int64 nanoseconds in strong types so that a monotonic
// instant can never be passed where a wall-clock instant or a duration is expected.
//
// - Duration: a signed span of time.
// - MonoTime: an instant on one node's monotonic clock. Only comparable with instants of the same
//   node's clock; never goes backwards.
// - WallTime: an instant on one node's wall clock (nanoseconds since the Unix epoch as that node
//   believes it). May jump backwards.
//
// Arithmetic saturates at the int64 range instead of overflowing: a deadline of "forever" plus a
// delay stays "forever".
#pragma once

#include <compare>
#include <cstdint>
#include <limits>

namespace faultline {

// 128-bit integers for exact intermediate products (drift, rate conversions).
__extension__ typedef __int128 Int128;
__extension__ typedef unsigned __int128 UInt128;

namespace time_internal {
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t SatAdd(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kMax : kMin;
  return r;
}
constexpr int64_t SatSub(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_sub_overflow(a, b, &r)) return b < 0 ? kMax : kMin;
  return r;
}
constexpr int64_t SatMul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return ((a < 0) != (b < 0)) ? kMin : kMax;
  return r;
}
}  // namespace time_internal

class Duration {
 public:
  constexpr Duration() = default;
  static constexpr Duration Nanos(int64_t ns) { return Duration(ns); }
  static constexpr Duration Micros(int64_t us) { return Duration(time_internal::SatMul(us, 1000)); }
  static constexpr Duration Millis(int64_t ms) {
    return Duration(time_internal::SatMul(ms, 1000000));
  }
  static constexpr Duration Seconds(int64_t s) {
    return Duration(time_internal::SatMul(s, 1000000000));
  }
  static constexpr Duration Zero() { return Duration(0); }
  static constexpr Duration Infinite() { return Duration(time_internal::kMax); }

  constexpr int64_t nanos() const { return ns_; }
  constexpr int64_t micros() const { return ns_ / 1000; }
  constexpr int64_t millis() const { return ns_ / 1000000; }
  constexpr double seconds_f() const { return static_cast<double>(ns_) / 1e9; }
  constexpr bool is_infinite() const { return ns_ == time_internal::kMax; }

  constexpr Duration operator+(Duration o) const { return Duration(time_internal::SatAdd(ns_, o.ns_)); }
  constexpr Duration operator-(Duration o) const { return Duration(time_internal::SatSub(ns_, o.ns_)); }
  constexpr Duration operator*(int64_t k) const { return Duration(time_internal::SatMul(ns_, k)); }
  // INT64_MIN / -1 overflows; it saturates like every other operation. k must not be 0.
  constexpr Duration operator/(int64_t k) const { return k == -1 ? -*this : Duration(ns_ / k); }
  constexpr Duration operator-() const { return Duration(time_internal::SatSub(0, ns_)); }
  constexpr Duration& operator+=(Duration o) { return *this = *this + o; }
  constexpr Duration& operator-=(Duration o) { return *this = *this - o; }
  constexpr auto operator<=>(const Duration&) const = default;

 private:
  constexpr explicit Duration(int64_t ns) : ns_(ns) {}
  int64_t ns_ = 0;
};

// Instant<Tag>: a point on one timeline (Tag names the timeline). MonoTime and WallTime are
// instants; the simulator's true time is another.
template <typename Tag>
class Instant {
 public:
  constexpr Instant() = default;
  static constexpr Instant FromNanos(int64_t ns) { return Instant(ns); }
  static constexpr Instant Max() { return Instant(time_internal::kMax); }
  static constexpr Instant Min() { return Instant(time_internal::kMin); }
  constexpr int64_t nanos() const { return ns_; }

  constexpr Instant operator+(Duration d) const { return Instant(time_internal::SatAdd(ns_, d.nanos())); }
  constexpr Instant operator-(Duration d) const { return Instant(time_internal::SatSub(ns_, d.nanos())); }
  constexpr Duration operator-(Instant o) const { return Duration::Nanos(time_internal::SatSub(ns_, o.ns_)); }
  constexpr Instant& operator+=(Duration d) { return *this = *this + d; }
  constexpr auto operator<=>(const Instant&) const = default;

 private:
  constexpr explicit Instant(int64_t ns) : ns_(ns) {}
  int64_t ns_ = 0;
};
struct MonoTag {};
struct WallTag {};

using MonoTime = Instant<MonoTag>;
using WallTime = Instant<WallTag>;

}  // namespace faultline
