#include "faultline/resilience/backoff.h"

#include <cmath>

#include "faultline/core/options.h"

namespace faultline {
namespace {

// multiplier^n by squaring: IEEE multiplications in a fixed order, so bit-identical everywhere.
// multiplier >= 1, so the result is >= 1 and at worst +inf (never NaN).
double PowBySquaring(double multiplier, uint64_t n) {
  double result = 1.0;
  double base = multiplier;
  while (n != 0) {
    if ((n & 1) != 0) result *= base;
    base *= base;
    n >>= 1;
  }
  return result;
}

}  // namespace

std::string_view JitterName(Jitter jitter) {
  switch (jitter) {
    case Jitter::kNone: return "none";
    case Jitter::kFull: return "full";
    case Jitter::kEqual: return "equal";
    case Jitter::kDecorrelated: return "decorrelated";
  }
  return "unknown";
}

Status BackoffOptions::Validate() const {
  FL_CHECK_OPTION(delay_initial > Duration::Zero(), "delay_initial must be > 0");
  FL_CHECK_OPTION(delay_max >= delay_initial, "delay_max must be >= delay_initial");
  FL_CHECK_OPTION(std::isfinite(multiplier) && multiplier >= 1.0,
                  "multiplier must be finite and >= 1");
  FL_CHECK_OPTION(jitter == Jitter::kNone || jitter == Jitter::kFull || jitter == Jitter::kEqual ||
                      jitter == Jitter::kDecorrelated,
                  "jitter must be one of kNone, kFull, kEqual, kDecorrelated");
  return Status::Ok();
}

Result<Backoff> Backoff::Create(const BackoffOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return Backoff(options);
}

Backoff::Backoff(const BackoffOptions& options) : options_(options) {
  const double cap = static_cast<double>(options_.delay_max.nanos());
  const double base = static_cast<double>(options_.delay_initial.nanos());
  auto reaches_cap = [&](uint64_t n) { return base * PowBySquaring(options_.multiplier, n) >= cap; };
  if (reaches_cap(0)) {
    capped_from_ = 0;
  } else if (options_.multiplier > 1.0) {
    // Smallest n with base·m^n >= cap. m > 1 is at least 1 + 2^-52, and (1 + 2^-52)^(2^62)
    // overflows to +inf, so the doubling search ends by 2^62.
    uint64_t hi = 1;
    while (!reaches_cap(hi)) hi *= 2;
    uint64_t lo = hi / 2;  // !reaches_cap(lo): lo is 0 or a value the loop rejected
    while (hi - lo > 1) {
      const uint64_t mid = lo + (hi - lo) / 2;
      if (reaches_cap(mid)) {
        hi = mid;
      } else {
        lo = mid;
      }
    }
    capped_from_ = hi;
  }  // else multiplier == 1 and base < cap: never capped
  for (uint64_t n = 0; n < kTableSize; ++n) {
    ceiling_ns_[n] = n >= capped_from_ ? options_.delay_max.nanos() : CeilingSlow(n).nanos();
    FL_ASSERT(ceiling_ns_[n] >= options_.delay_initial.nanos());
    FL_ASSERT(ceiling_ns_[n] <= options_.delay_max.nanos());
  }
}

Duration Backoff::CeilingSlow(uint64_t retry) const {
  if (retry >= capped_from_) return options_.delay_max;
  const double raw =
      static_cast<double>(options_.delay_initial.nanos()) * PowBySquaring(options_.multiplier, retry);
  // raw < delay_max <= INT64_MAX here (retry is below the first capped index), but rounding of a
  // non-monotone power could still land on it: clamp before converting.
  if (!(raw < static_cast<double>(options_.delay_max.nanos()))) return options_.delay_max;
  const int64_t ns = static_cast<int64_t>(raw);
  return Duration::Nanos(ns < options_.delay_initial.nanos() ? options_.delay_initial.nanos() : ns);
}

}  // namespace faultline
