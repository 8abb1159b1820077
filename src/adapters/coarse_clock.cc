#include "faultline/adapters/coarse_clock.h"

#include <time.h>

#include "faultline/core/options.h"

namespace faultline {

namespace {

int64_t Read(int id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The resolution of clock `id`, or a negative value when the clock is not available.
int64_t Resolution(int id) {
  timespec res{};
  timespec now{};
  if (clock_getres(id, &res) != 0 || clock_gettime(id, &now) != 0) return -1;
  return static_cast<int64_t>(res.tv_sec) * 1'000'000'000 + res.tv_nsec;
}

}  // namespace

Status CoarseClockOptions::Validate() const {
  FL_CHECK_OPTION(error_max > Duration::Zero(), "error_max must be > 0");
  return Status::Ok();
}

Result<std::unique_ptr<CoarseClock>> CoarseClock::Create(const CoarseClockOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  const int64_t coarse = Resolution(CLOCK_MONOTONIC_COARSE);
  const int64_t wall_coarse = Resolution(CLOCK_REALTIME_COARSE);
  // Two ticks: see "Error bound" in the header.
  if (coarse > 0 && wall_coarse > 0 && 2 * coarse <= options.error_max.nanos()) {
    return std::unique_ptr<CoarseClock>(new CoarseClock(CLOCK_MONOTONIC_COARSE,
                                                        CLOCK_REALTIME_COARSE, Source::kCoarse,
                                                        Duration::Nanos(2 * coarse)));
  }
  const int64_t precise = Resolution(CLOCK_MONOTONIC);
  return std::unique_ptr<CoarseClock>(new CoarseClock(CLOCK_MONOTONIC, CLOCK_REALTIME,
                                                      Source::kPrecise,
                                                      Duration::Nanos(precise > 0 ? precise : 1)));
}

CoarseClock& CoarseClock::Default() {
  static CoarseClock* clock = Create().value().release();
  return *clock;
}

CoarseClock::CoarseClock(int mono_id, int wall_id, Source source, Duration error_bound)
    : mono_id_(mono_id), wall_id_(wall_id), source_(source), error_bound_(error_bound) {}

MonoTime CoarseClock::Now() {
  const int64_t t = Read(mono_id_);
  int64_t high = high_water_ns_.load(std::memory_order_relaxed);
  // Within a tick every reader sees t == high: no write, the line stays shared between cores.
  while (t > high) {
    if (high_water_ns_.compare_exchange_weak(high, t, std::memory_order_relaxed,
                                             std::memory_order_relaxed)) {
      return MonoTime::FromNanos(t);
    }
  }
  return MonoTime::FromNanos(high);
}

WallTime CoarseClock::WallNow() { return WallTime::FromNanos(Read(wall_id_)); }

}  // namespace faultline
