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

void HistoryExport::Add(int64_t process, sim::OpType type, std::string_view f,
                        std::string value_json, int64_t time_ns) {
  FL_ASSERT(!value_json.empty());
  ops_.push_back(sim::HistoryOp{0, process, type, std::string(f), std::move(value_json), time_ns});
}

void HistoryExport::End(int64_t process, Outcome outcome, std::string_view f,
                        std::string value_json, int64_t time_ns) {
  switch (outcome) {
    case Outcome::kPending:
      return;
    case Outcome::kOk:
      return Add(process, sim::OpType::kOk, f, std::move(value_json), time_ns);
    case Outcome::kFail:
      return Add(process, sim::OpType::kFail, f, std::move(value_json), time_ns);
    case Outcome::kInfo:
      return Add(process, sim::OpType::kInfo, f, std::move(value_json), time_ns);
  }
}

sim::History HistoryExport::Build() {
  std::stable_sort(ops_.begin(), ops_.end(), [](const sim::HistoryOp& a, const sim::HistoryOp& b) {
    return a.time_ns < b.time_ns;
  });
  sim::History history;
  for (const sim::HistoryOp& op : ops_) {
    history.Add(op.process, op.type, op.f, op.value, op.time_ns);
  }
  ops_.clear();
  return history;
}

}  // namespace faultline::lab
