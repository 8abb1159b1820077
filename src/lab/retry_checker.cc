// The retry-amplification checker. From the history alone it measures:
//   db_amplification    database attempts per failed user request (the seed's 3 x 3 x 3 = 27)
//   db_peak_load_per_s  the busiest 100 ms of database attempts, per second
//   recovery_s          from the blip's end until every later 500 ms window of user requests
//                       succeeds at >= 90% (requests still pending at the end count as failed)
// and counts a violation when amplification exceeds 1.5 ("retry-amplification") or the system has
// not recovered 10 s after the blip ends ("not-recovered").
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

constexpr int64_t kBucketNs = 100'000'000;
constexpr int64_t kWindowNs = 500'000'000;
constexpr double kHealthyRatio = 0.9;
constexpr double kRecoveryLimitS = 10.0;
constexpr double kAmplificationMax = 1.5;

struct Request {
  int64_t invoke_ns = 0;
  bool done = false;
  bool ok = false;
  int64_t db_attempts = 0;
};

}  // namespace

void CheckRetryHistory(const sim::History& history, RunResult* result) {
  std::map<uint64_t, Request> requests;
  std::map<int64_t, int64_t> db_buckets;
  int64_t blip_start = -1;
  int64_t blip_end = -1;
  int64_t last_invoke = 0;
  for (const sim::HistoryOp& op : history.ops()) {
    if (op.f == "blip-start") blip_start = op.time_ns;
    if (op.f == "blip-end") blip_end = op.time_ns;
    if (op.f != "request" && op.f != "db-attempt") continue;
    const nlohmann::json v = nlohmann::json::parse(op.value, nullptr, false);
    FL_ASSERT_MSG(!v.is_discarded(), "history value is not JSON");
    Request& r = requests[v.at("req").get<uint64_t>()];
    if (op.f == "db-attempt") {
      ++r.db_attempts;
      ++db_buckets[op.time_ns / kBucketNs];
    } else if (op.type == sim::OpType::kInvoke) {
      r.invoke_ns = op.time_ns;
      last_invoke = std::max(last_invoke, op.time_ns);
    } else {
      r.done = true;
      r.ok = op.type == sim::OpType::kOk;
    }
  }
  FL_ASSERT_MSG(blip_start >= 0 && blip_end > blip_start, "history lacks the blip");

  int64_t failed = 0;
  int64_t failed_attempts = 0;
  for (const auto& [id, r] : requests) {
    if (r.done && r.ok) continue;
    ++failed;
    failed_attempts += r.db_attempts;
  }
  const double amplification =
      failed == 0 ? 0.0 : static_cast<double>(failed_attempts) / static_cast<double>(failed);
  int64_t peak = 0;
  for (const auto& [bucket, n] : db_buckets) peak = std::max(peak, n);

  // Success ratio per 500 ms window of invocations from the blip's end to the last invocation.
  const int64_t windows = (last_invoke - blip_end) / kWindowNs + 1;
  std::vector<int64_t> ok(std::max<int64_t>(windows, 1), 0);
  std::vector<int64_t> all(ok.size(), 0);
  for (const auto& [id, r] : requests) {
    if (r.invoke_ns < blip_end) continue;
    const size_t w = static_cast<size_t>((r.invoke_ns - blip_end) / kWindowNs);
    if (w >= all.size()) continue;
    ++all[w];
    ok[w] += r.done && r.ok ? 1 : 0;
  }
  // The earliest window after which every window is healthy.
  size_t recovered = all.size();
  for (size_t w = all.size(); w-- > 0;) {
    const bool healthy = all[w] == 0 || static_cast<double>(ok[w]) >= kHealthyRatio * static_cast<double>(all[w]);
    if (!healthy) break;
    recovered = w;
  }
  const double recovery_s = recovered == all.size()
                                ? static_cast<double>(all.size()) * kWindowNs / 1e9
                                : static_cast<double>(recovered) * kWindowNs / 1e9;

  if (amplification > kAmplificationMax) result->Violate("retry-amplification");
  if (recovered == all.size() || recovery_s > kRecoveryLimitS) result->Violate("not-recovered");
  result->metrics["db_amplification"] = amplification;
  result->metrics["db_peak_load_per_s"] = static_cast<double>(peak) * 1e9 / kBucketNs;
  result->metrics["recovery_s"] = recovery_s;
  result->metrics["requests"] = static_cast<double>(requests.size());
  result->metrics["requests_failed"] = static_cast<double>(failed);
}

}  // namespace faultline::lab
