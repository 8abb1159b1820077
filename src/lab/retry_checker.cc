// The retry-amplification checker: amplification, peak database load and recovery, from the typed
// observations alone (see retry_check.h).
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "faultline/lab/scenario.h"
#include "src/lab/retry_check.h"

namespace faultline::lab {
namespace {

constexpr int64_t kBucketNs = 100'000'000;
constexpr int64_t kWindowNs = 500'000'000;
constexpr double kHealthyRatio = 0.9;
constexpr double kRecoveryLimitS = 10.0;
constexpr double kAmplificationMax = 1.5;

bool Succeeded(const UserRequest& r) { return r.outcome == Outcome::kOk; }

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

  const WindowRecovery rec =
      MeasureWindowRecovery(obs.requests, obs.blip_end_ns, kWindowNs, kHealthyRatio);
  const bool never = rec.never();
  const double recovery_s = static_cast<double>(rec.first_healthy) * kWindowNs / 1e9;

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
               : "recovered " + FormatSeconds(static_cast<int64_t>(rec.first_healthy) * kWindowNs) +
                     " s after the blip's end > 10 s: ") +
            DescribeLastUnhealthy(rec, obs.blip_end_ns, kWindowNs, "500 ms"));
  }
  result->metrics["db_amplification"] = amplification;
  result->metrics["db_peak_load_per_s"] = static_cast<double>(peak) * 1e9 / kBucketNs;
  result->metrics["recovery_s"] = recovery_s;
  result->metrics["requests"] = static_cast<double>(obs.requests.size());
  result->metrics["requests_failed"] = static_cast<double>(failed);
}

check::History RetryHistory(const RetryObservations& obs) {
  HistoryExport out;
  out.AddRequests(obs.requests);
  for (const DbAttempt& a : obs.db_attempts) {
    out.Add(-1, check::OpType::kInfo, "db-attempt", "{\"req\":" + std::to_string(a.request) + "}",
            a.time_ns);
  }
  out.Add(-2, check::OpType::kInfo, "blip-start", "null", obs.blip_start_ns);
  out.Add(-2, check::OpType::kInfo, "blip-end", "null", obs.blip_end_ns);
  return out.Build();
}

}  // namespace faultline::lab
