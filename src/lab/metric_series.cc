#include "src/lab/metric_series.h"

#include "faultline/core/assert.h"

namespace faultline::lab {

std::string SeriesName(const std::string& instance, observe::Cell cell) {
  const observe::CellInfo& info = observe::DescribeCell(cell);
  std::string name(info.metric);
  name += "{instance_name=\"" + instance + "\"";
  if (!info.label_name.empty()) {
    name += ",";
    name += info.label_name;
    name += "=\"";
    name += info.label_value;
    name += "\"";
  }
  name += "}";
  return name;
}

void MetricSeriesRecorder::OnEvent(const Event& event) noexcept {
  FL_ASSERT_MSG(time_ != nullptr, "MetricSeriesRecorder: SetTime before the run");
  const std::string instance(event.source.empty() ? "default" : event.source);
  observe::ApplyEvent(
      event,
      [&](observe::Cell c, int64_t delta) {
        if (c < observe::kCallDurationBucketFirst) Record(instance, c, delta, false);
      },
      [&](observe::Cell c, int64_t value) { Record(instance, c, value, true); });
}

void MetricSeriesRecorder::Record(const std::string& instance, observe::Cell cell, int64_t value,
                                  bool set) {
  const int64_t now = time_->NowNs();
  Track& t = tracks_[{instance, static_cast<uint16_t>(cell)}];
  if (t.points.empty()) t.points.emplace_back(0, 0);  // every series starts at 0 at time 0
  t.value = set ? value : t.value + value;
  if (now - t.points.back().first < kResolutionNs && t.points.size() > 1) {
    t.points.back().second = t.value;
  } else {
    t.points.emplace_back(now, t.value);
  }
}

void MetricSeriesRecorder::AddTo(int64_t end_ns, RunResult* result) const {
  for (const auto& [key, track] : tracks_) {
    const auto cell = static_cast<observe::Cell>(key.second);
    const observe::CellInfo& info = observe::DescribeCell(cell);
    Series s;
    s.name = SeriesName(key.first, cell);
    s.unit = info.type == observe::MetricType::kCounter ? "events (cumulative)"
                                                        : std::string(info.metric);
    for (const auto& [t, v] : track.points) {
      s.points.emplace_back(t, static_cast<double>(v) * info.scale);
    }
    if (s.points.back().first < end_ns) {
      s.points.emplace_back(end_ns, static_cast<double>(track.value) * info.scale);
    }
    result->metrics[s.name] = static_cast<double>(track.value) * info.scale;
    result->series.push_back(std::move(s));
  }
}

int64_t MetricSeriesRecorder::Value(const std::string& instance, observe::Cell cell) const {
  const auto it = tracks_.find({instance, static_cast<uint16_t>(cell)});
  return it == tracks_.end() ? 0 : it->second.value;
}

}  // namespace faultline::lab
