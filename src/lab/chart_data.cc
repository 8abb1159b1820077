#include "src/lab/chart_data.h"

#include <algorithm>
#include <map>
#include <utility>

namespace faultline::lab {
namespace {

std::string NodeName(NodeId node) { return "n" + std::to_string(node.value()); }

// The fault an action opens (its span name and target); empty name for actions that end one.
FaultSpan Opened(const sim::FaultAction& a) {
  FaultSpan f;
  f.start_ns = a.at.nanos();
  switch (a.kind) {
    case sim::FaultKind::kPartition:
      f.name = "partition";
      f.target = std::string(sim::PartitionShapeName(a.shape));
      break;
    case sim::FaultKind::kCrash:
      f.name = "crash";
      f.target = NodeName(a.node);
      break;
    case sim::FaultKind::kPause:
      f.name = "pause";
      f.target = NodeName(a.node);
      break;
    case sim::FaultKind::kClockJump:
      f.name = "clock jump " + std::to_string(a.amount / 1'000'000) + " ms";
      f.target = NodeName(a.node);
      break;
    case sim::FaultKind::kClockStrobe:
      f.name = "clock strobe " + std::to_string(a.amount / 1'000'000) + " ms";
      f.target = NodeName(a.node);
      break;
    case sim::FaultKind::kClockDrift:
      f.name = "clock drift " + std::to_string(a.amount) + " ppm";
      f.target = NodeName(a.node);
      break;
    case sim::FaultKind::kLinkFaults:
      f.name = "lossy links";
      f.target = "all links";
      break;
    case sim::FaultKind::kClog:
      f.name = "clog";
      f.target = NodeName(a.node);
      break;
    default:
      break;
  }
  return f;
}

// The key of the open span an action closes ("" when it closes none).
std::string ClosesKey(const sim::FaultAction& a) {
  switch (a.kind) {
    case sim::FaultKind::kHeal:
      return "partition";
    case sim::FaultKind::kRestart:
      return "crash/" + NodeName(a.node);
    case sim::FaultKind::kResume:
      return "pause/" + NodeName(a.node);
    case sim::FaultKind::kClockReset:
      return "clock/" + NodeName(a.node);
    case sim::FaultKind::kLinkRepair:
      return "link";
    default:
      return "";
  }
}

std::string OpensKey(const sim::FaultAction& a) {
  switch (a.kind) {
    case sim::FaultKind::kPartition:
      return "partition";
    case sim::FaultKind::kCrash:
      return "crash/" + NodeName(a.node);
    case sim::FaultKind::kPause:
      return "pause/" + NodeName(a.node);
    case sim::FaultKind::kClockJump:
    case sim::FaultKind::kClockStrobe:
      return "clock/" + NodeName(a.node);
    case sim::FaultKind::kClockDrift:
      return "drift/" + NodeName(a.node);
    case sim::FaultKind::kLinkFaults:
      return "link";
    default:
      return "";
  }
}

}  // namespace

std::vector<FaultSpan> FaultSpans(const std::vector<sim::FaultAction>& schedule, int64_t end_ns) {
  std::vector<FaultSpan> spans;
  std::multimap<std::string, size_t> open;  // key -> index into spans
  auto close = [&](std::multimap<std::string, size_t>::iterator it, int64_t at) {
    spans[it->second].end_ns = std::max(spans[it->second].start_ns, at);
    return open.erase(it);
  };
  for (const sim::FaultAction& a : schedule) {
    const int64_t at = a.at.nanos();
    if (at > end_ns) break;
    if (a.kind == sim::FaultKind::kHealAll) {
      for (auto it = open.begin(); it != open.end();) it = close(it, at);
      continue;
    }
    const std::string closes = ClosesKey(a);
    if (!closes.empty()) {
      auto it = open.find(closes);
      if (it != open.end()) close(it, at);
      continue;
    }
    FaultSpan f = Opened(a);
    if (f.name.empty()) continue;
    if (a.kind == sim::FaultKind::kClog) {
      f.end_ns = std::min(end_ns, at + a.length.nanos());
      spans.push_back(std::move(f));
      continue;
    }
    const std::string key = OpensKey(a);
    // A new drift replaces the node's previous one.
    if (a.kind == sim::FaultKind::kClockDrift) {
      auto it = open.find(key);
      if (it != open.end()) close(it, at);
    }
    f.end_ns = end_ns;
    spans.push_back(std::move(f));
    open.emplace(key, spans.size() - 1);
  }
  return spans;
}

Series RateSeries(std::string name, const std::vector<int64_t>& times_ns, int64_t window_ns,
                  int64_t end_ns) {
  FL_ASSERT(window_ns > 0);
  Series s;
  s.name = std::move(name);
  s.unit = "per second";
  const size_t windows = static_cast<size_t>(std::max<int64_t>(0, end_ns) / window_ns) + 1;
  std::vector<int64_t> counts(windows, 0);
  for (int64_t t : times_ns) {
    if (t < 0 || t > end_ns) continue;
    ++counts[std::min(windows - 1, static_cast<size_t>(t / window_ns))];
  }
  const double per_second = 1e9 / static_cast<double>(window_ns);
  s.points.reserve(windows);
  for (size_t i = 0; i < windows; ++i) {
    s.points.emplace_back(static_cast<int64_t>(i) * window_ns,
                          static_cast<double>(counts[i]) * per_second);
  }
  return s;
}

Series CumulativeSeries(std::string name, std::string unit, std::vector<int64_t> times_ns,
                        int64_t end_ns, size_t max_points) {
  FL_ASSERT(max_points >= 2);
  Series s;
  s.name = std::move(name);
  s.unit = std::move(unit);
  std::sort(times_ns.begin(), times_ns.end());
  s.points.emplace_back(0, 0.0);
  double count = 0;
  for (int64_t t : times_ns) {
    count += 1;
    if (s.points.back().first == t || s.points.size() >= max_points) {
      s.points.back().second = count;
    } else {
      s.points.emplace_back(t, count);
    }
  }
  if (s.points.back().first < end_ns) s.points.emplace_back(end_ns, count);
  return s;
}

}  // namespace faultline::lab
