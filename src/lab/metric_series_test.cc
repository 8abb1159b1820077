// MetricSeriesRecorder: events become the exporter's series at the world's time, sampled at
// kResolutionNs, with their final values in the run's metrics.
#include "src/lab/metric_series.h"

#include <gtest/gtest.h>

namespace faultline::lab {
namespace {

class FakeTime final : public TrueTime {
 public:
  int64_t NowNs() const override { return now; }
  int64_t now = 0;
};

Event Ev(EventKind kind, std::string_view source, int64_t a = 0, int64_t b = 0,
         Duration d = Duration()) {
  return Event{kind, source, MonoTime(), a, b, d};
}

TEST(MetricSeries, RecordsTheExportersSeriesAtWorldTime) {
  FakeTime time;
  MetricSeriesRecorder rec;
  rec.SetTime(&time);
  time.now = 1'000'000'000;
  rec.OnEvent(Ev(EventKind::kRetryScheduled, "client", 2, 0, Duration::Millis(100)));
  time.now += 1'000'000;  // within the resolution: replaces the last point's value
  rec.OnEvent(Ev(EventKind::kRetryScheduled, "client", 2, 0, Duration::Millis(100)));
  time.now = 2'000'000'000;
  rec.OnEvent(Ev(EventKind::kRetryScheduled, "client", 3, 0, Duration::Millis(200)));
  rec.OnEvent(Ev(EventKind::kAdaptiveLimit, "limiter", 12));
  rec.OnEvent(Ev(EventKind::kCallCompleted, "client", 0, 1, Duration::Millis(5)));
  EXPECT_EQ(rec.Value("client", observe::kRetryAttempts), 3);
  EXPECT_EQ(rec.Value("client", observe::kRetryBackoffNs), Duration::Millis(400).nanos());

  RunResult result;
  rec.AddTo(3'000'000'000, &result);
  const std::string attempts = "faultline_retry_attempts_total{instance_name=\"client\"}";
  EXPECT_EQ(result.metrics.at(attempts), 3);
  EXPECT_EQ(result.metrics.at("faultline_adaptive_limit{instance_name=\"limiter\"}"), 12);
  EXPECT_DOUBLE_EQ(
      result.metrics.at("faultline_retry_backoff_seconds_total{instance_name=\"client\"}"), 0.4);
  EXPECT_EQ(result.metrics.at("faultline_calls_total{instance_name=\"client\",code=\"OK\"}"), 1);
  const Series* s = nullptr;
  for (const Series& x : result.series) {
    if (x.name == attempts) s = &x;
  }
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->unit, "events (cumulative)");
  // 0 at time 0, 2 at 1 s (two events 1 ms apart merged), 3 at 2 s, held to the end.
  const std::vector<std::pair<int64_t, double>> want = {
      {0, 0}, {1'000'000'000, 2}, {2'000'000'000, 3}, {3'000'000'000, 3}};
  EXPECT_EQ(s->points, want);
  // Histogram buckets are not charted.
  for (const Series& x : result.series) {
    EXPECT_EQ(x.name.find("faultline_call_duration_seconds"), std::string::npos) << x.name;
  }
}

}  // namespace
}  // namespace faultline::lab
