#include "src/lab/observations.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "faultline/core/assert.h"

namespace faultline::lab {

std::string FormatSeconds(int64_t ns) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.6f", static_cast<double>(ns) / 1e9);
  return buf;
}

std::string FormatPercent(double fraction) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.0f%%", std::floor(fraction * 100.0));
  return buf;
}

std::string FormatIds(const std::vector<uint64_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", w" : "w") + std::to_string(ids[i]);
  return s + "]";
}

std::string IdsJson(const std::vector<uint64_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

void HistoryExport::Add(int64_t process, check::OpType type, std::string_view f,
                        std::string value_json, int64_t time_ns) {
  FL_ASSERT(!value_json.empty());
  ops_.push_back(check::HistoryOp{0, process, type, std::string(f), std::move(value_json), time_ns});
}

void HistoryExport::End(int64_t process, Outcome outcome, std::string_view f,
                        std::string value_json, int64_t time_ns) {
  switch (outcome) {
    case Outcome::kPending:
      return;
    case Outcome::kOk:
      return Add(process, check::OpType::kOk, f, std::move(value_json), time_ns);
    case Outcome::kFail:
      return Add(process, check::OpType::kFail, f, std::move(value_json), time_ns);
    case Outcome::kInfo:
      return Add(process, check::OpType::kInfo, f, std::move(value_json), time_ns);
  }
}

void HistoryExport::AddRequests(const std::vector<UserRequest>& requests) {
  for (const UserRequest& r : requests) {
    const std::string v = "{\"req\":" + std::to_string(r.id) + "}";
    Add(static_cast<int64_t>(r.id), check::OpType::kInvoke, "request", v, r.invoke_ns);
    End(static_cast<int64_t>(r.id), r.outcome, "request", v, r.end_ns);
  }
}

WindowRecovery MeasureWindowRecovery(const std::vector<UserRequest>& requests, int64_t start_ns,
                                     int64_t window_ns, double healthy_ratio) {
  FL_ASSERT(window_ns > 0);
  int64_t last_invoke = start_ns;
  for (const UserRequest& r : requests) last_invoke = std::max(last_invoke, r.invoke_ns);
  const size_t windows = static_cast<size_t>((last_invoke - start_ns) / window_ns);
  WindowRecovery rec;
  rec.healthy_ratio = healthy_ratio;
  rec.ok.assign(windows, 0);
  rec.all.assign(windows, 0);
  for (const UserRequest& r : requests) {
    if (r.invoke_ns < start_ns) continue;
    const size_t w = static_cast<size_t>((r.invoke_ns - start_ns) / window_ns);
    if (w >= windows) continue;
    ++rec.all[w];
    rec.ok[w] += r.outcome == Outcome::kOk ? 1 : 0;
  }
  auto healthy = [&](size_t w) {
    return static_cast<double>(rec.ok[w]) >= healthy_ratio * static_cast<double>(rec.all[w]);
  };
  for (size_t w = 0; w < windows; ++w) rec.unhealthy_count += healthy(w) ? 0 : 1;
  rec.first_healthy = windows;
  for (size_t w = windows; w-- > 0;) {
    if (!healthy(w)) {
      rec.last_unhealthy = w;
      break;
    }
    rec.first_healthy = w;
  }
  FL_ASSERT(rec.first_healthy <= windows);
  return rec;
}

std::string DescribeLastUnhealthy(const WindowRecovery& rec, int64_t start_ns, int64_t window_ns,
                                  std::string_view window_name) {
  FL_ASSERT(rec.first_healthy > 0);
  const size_t w = rec.last_unhealthy;
  std::string s = "the last unhealthy ";
  s.append(window_name);
  s += " window, at " + FormatSeconds(start_ns + static_cast<int64_t>(w) * window_ns) + " s, was " +
       FormatPercent(static_cast<double>(rec.ok[w]) / static_cast<double>(rec.all[w])) +
       " successful (" + std::to_string(rec.ok[w]) + " of " + std::to_string(rec.all[w]) + ") < " +
       FormatPercent(rec.healthy_ratio) + "; " + std::to_string(rec.unhealthy_count) + " of " +
       std::to_string(rec.windows()) + " windows were unhealthy";
  return s;
}

check::History HistoryExport::Build() {
  std::stable_sort(ops_.begin(), ops_.end(), [](const check::HistoryOp& a, const check::HistoryOp& b) {
    return a.time_ns < b.time_ns;
  });
  check::History history;
  for (const check::HistoryOp& op : ops_) {
    history.Add(op.process, op.type, op.f, op.value, op.time_ns);
  }
  ops_.clear();
  return history;
}

}  // namespace faultline::lab
