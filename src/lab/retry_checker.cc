// The retry-amplification checker: amplification, peak database load and recovery, from the typed
// observations alone (see retry_check.h).
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "src/lab/retry_check.h"

namespace faultline::lab {
namespace {

constexpr int64_t kBucketNs = 100'000'000;
constexpr int64_t kWindowNs = 500'000'000;
constexpr double kHealthyRatio = 0.9;
constexpr double kRecoveryLimitS = 10.0;
constexpr double kAmplificationMax = 1.5;

bool Succeeded(const UserRequest& r) { return r.outcome == Outcome::kOk; }

// Success counts per 500 ms window of invocations, from the blip's end to the last invocation,
// and the earliest window after which every window is healthy.
struct Recovery {
  std::vector<int64_t> ok;
  std::vector<int64_t> all;
  size_t recovered = 0;  // == all.size(): never
  size_t unhealthy = 0;  // when recovered > 0: the last unhealthy window
  size_t unhealthy_count = 0;
};

bool Healthy(int64_t ok, int64_t all) {
  return all == 0 || static_cast<double>(ok) >= kHealthyRatio * static_cast<double>(all);
}

Recovery MeasureRecovery(const RetryObservations& obs) {
  int64_t last_invoke = 0;
  for (const UserRequest& r : obs.requests) last_invoke = std::max(last_invoke, r.invoke_ns);
  // Only complete windows are judged: the window the end of the arrivals cuts short holds a
  // handful of requests (backpressure seed 3307's held one), and one shed or still-pending request
  // there reads as a 0% window. Every complete window holds ~250 requests at 500/s.
  const int64_t windows = (last_invoke - obs.blip_end_ns) / kWindowNs;
  Recovery rec;
  rec.ok.assign(static_cast<size_t>(std::max<int64_t>(windows, 1)), 0);
  rec.all.assign(rec.ok.size(), 0);
  for (const UserRequest& r : obs.requests) {
    if (r.invoke_ns < obs.blip_end_ns) continue;
    const size_t w = static_cast<size_t>((r.invoke_ns - obs.blip_end_ns) / kWindowNs);
    if (w >= rec.all.size()) continue;
    ++rec.all[w];
    rec.ok[w] += Succeeded(r) ? 1 : 0;
  }
  for (size_t w = 0; w < rec.all.size(); ++w) {
    rec.unhealthy_count += Healthy(rec.ok[w], rec.all[w]) ? 0 : 1;
  }
  rec.recovered = rec.all.size();
  for (size_t w = rec.all.size(); w-- > 0;) {
    if (!Healthy(rec.ok[w], rec.all[w])) {
      rec.unhealthy = w;
      break;
    }
    rec.recovered = w;
  }
  return rec;
}

// "the last unhealthy 500 ms window, at 14.500000 s, was 41% successful (20 of 49) < 90%; 3 of 30
// windows were unhealthy"
std::string DescribeUnhealthy(const Recovery& rec, int64_t blip_end_ns) {
  const size_t w = rec.unhealthy;
  return "the last unhealthy 500 ms window, at " +
         FormatSeconds(blip_end_ns + static_cast<int64_t>(w) * kWindowNs) + " s, was " +
         FormatPercent(static_cast<double>(rec.ok[w]) / static_cast<double>(rec.all[w])) +
         " successful (" + std::to_string(rec.ok[w]) + " of " + std::to_string(rec.all[w]) +
         ") < 90%; " + std::to_string(rec.unhealthy_count) + " of " +
         std::to_string(rec.all.size()) + " windows were unhealthy";
}

}  // namespace

void CheckRetryHistory(const RetryObservations& obs, RunResult* result) {
  FL_ASSERT_MSG(obs.blip_start_ns >= 0 && obs.blip_end_ns > obs.blip_start_ns,
                "observations lack the blip");
  std::map<uint64_t, int64_t> attempts_by_request;
  std::map<int64_t, int64_t> db_buckets;
  for (const DbAttempt& a : obs.db_attempts) {
    ++attempts_by_request[a.request];
    ++db_buckets[a.time_ns / kBucketNs];
  }
  int64_t failed = 0;
  int64_t failed_attempts = 0;
  for (const UserRequest& r : obs.requests) {
    if (Succeeded(r)) continue;
    ++failed;
    if (auto it = attempts_by_request.find(r.id); it != attempts_by_request.end()) {
      failed_attempts += it->second;
    }
  }
  const double amplification =
      failed == 0 ? 0.0 : static_cast<double>(failed_attempts) / static_cast<double>(failed);
  int64_t peak = 0;
  for (const auto& [bucket, n] : db_buckets) peak = std::max(peak, n);

  const Recovery rec = MeasureRecovery(obs);
  const bool never = rec.recovered == rec.all.size();
  const double recovery_s = static_cast<double>(rec.recovered) * kWindowNs / 1e9;

  if (amplification > kAmplificationMax) {
    char buf[160];
    std::snprintf(buf, sizeof(buf),
                  "%.1f database attempts per failed request > %.1f (%lld attempts for %lld failed "
                  "requests)",
                  amplification, kAmplificationMax, static_cast<long long>(failed_attempts),
                  static_cast<long long>(failed));
    result->Violate("retry-amplification", 1, buf);
  }
  if (never || recovery_s > kRecoveryLimitS) {
    result->Violate(
        "not-recovered", 1,
        (never ? std::string("never recovered after the blip: ")
               : "recovered " + FormatSeconds(static_cast<int64_t>(rec.recovered) * kWindowNs) +
                     " s after the blip's end > 10 s: ") +
            DescribeUnhealthy(rec, obs.blip_end_ns));
  }
  result->metrics["db_amplification"] = amplification;
  result->metrics["db_peak_load_per_s"] = static_cast<double>(peak) * 1e9 / kBucketNs;
  result->metrics["recovery_s"] = recovery_s;
  result->metrics["requests"] = static_cast<double>(obs.requests.size());
  result->metrics["requests_failed"] = static_cast<double>(failed);
}

sim::History RetryHistory(const RetryObservations& obs) {
  HistoryExport out;
  for (const UserRequest& r : obs.requests) {
    const std::string v = "{\"req\":" + std::to_string(r.id) + "}";
    out.Add(static_cast<int64_t>(r.id), sim::OpType::kInvoke, "request", v, r.invoke_ns);
    out.End(static_cast<int64_t>(r.id), r.outcome, "request", v, r.end_ns);
  }
  for (const DbAttempt& a : obs.db_attempts) {
    out.Add(-1, sim::OpType::kInfo, "db-attempt", "{\"req\":" + std::to_string(a.request) + "}",
            a.time_ns);
  }
  out.Add(-2, sim::OpType::kInfo, "blip-start", "null", obs.blip_start_ns);
  out.Add(-2, sim::OpType::kInfo, "blip-end", "null", obs.blip_end_ns);
  return out.Build();
}

}  // namespace faultline::lab
