#include "faultline/observe/metrics.h"

#include <array>

#include "faultline/core/assert.h"

namespace faultline::observe {
namespace {

constexpr double kNs = 1e-9;
constexpr MetricType kC = MetricType::kCounter;
constexpr MetricType kG = MetricType::kGauge;

constexpr std::string_view kTransitions = "faultline_breaker_transitions_total";
constexpr std::string_view kTransitionsHelp = "Circuit breaker transitions, by target state.";
constexpr std::string_view kLeaseLost = "faultline_lease_lost_total";
constexpr std::string_view kLeaseLostHelp =
    "Leases lost: refused by the service, or expired (validity ran out).";
constexpr std::string_view kSagaSteps = "faultline_saga_steps_total";
constexpr std::string_view kSagaStepsHelp = "Saga forward step attempts recorded, by result.";
constexpr std::string_view kSagaComp = "faultline_saga_compensations_total";
constexpr std::string_view kSagaCompHelp = "Saga compensation attempts recorded, by result.";
constexpr std::string_view kShared = "faultline_single_flight_shared_total";
constexpr std::string_view kSharedHelp =
    "Single-flight calls answered without running: joined the execution in flight, or cached.";
constexpr std::string_view kCalls = "faultline_calls_total";
constexpr std::string_view kCallsHelp = "Pipeline calls completed, by final status code.";
constexpr std::string_view kDuration = "faultline_call_duration_seconds";
constexpr std::string_view kDurationHelp =
    "Pipeline call latency, retries and backoffs included (calls with a completion reading).";

std::array<CellInfo, kCellCount> MakeTable() {
  std::array<CellInfo, kCellCount> t{};
  auto set = [&t](Cell c, CellInfo info) { t[c] = info; };
  set(kBreakerToClosed, {kTransitions, kC, "to", "closed", 1, kTransitionsHelp});
  set(kBreakerToOpen, {kTransitions, kC, "to", "open", 1, kTransitionsHelp});
  set(kBreakerToHalfOpen, {kTransitions, kC, "to", "half_open", 1, kTransitionsHelp});
  set(kBreakerToForcedOpen, {kTransitions, kC, "to", "forced_open", 1, kTransitionsHelp});
  set(kBreakerToDisabled, {kTransitions, kC, "to", "disabled", 1, kTransitionsHelp});
  set(kBreakerState, {"faultline_breaker_state", kG, "", "", 1,
                      "Breaker state after its last transition: 0 closed, 1 open, 2 half-open, "
                      "3 forced open, 4 disabled."});
  set(kBreakerRejected,
      {"faultline_breaker_rejected_total", kC, "", "", 1, "Calls the breaker refused."});
  set(kRetryAttempts, {"faultline_retry_attempts_total", kC, "", "", 1,
                       "Retries scheduled (attempts after the first)."});
  set(kRetryBackoffNs, {"faultline_retry_backoff_seconds_total", kC, "", "", kNs,
                        "Backoff scheduled before retries, in seconds."});
  set(kRetryBudgetDenied, {"faultline_retry_budget_denied_total", kC, "", "", 1,
                           "Retries (and hedges) the retry budget refused."});
  set(kRetryAfterHonoured, {"faultline_retry_after_honoured_total", kC, "", "", 1,
                            "Retries delayed by the server's Retry-After / pushback."});
  set(kRetryExhausted, {"faultline_retry_exhausted_total", kC, "", "", 1,
                        "Calls that failed after making every attempt allowed."});
  set(kLimiterRejected,
      {"faultline_limiter_rejected_total", kC, "", "", 1, "Requests the rate limiter refused."});
  set(kBulkheadRejected,
      {"faultline_bulkhead_rejected_total", kC, "", "", 1, "Calls the bulkhead refused."});
  set(kAdaptiveLimit,
      {"faultline_adaptive_limit", kG, "", "", 1, "Current adaptive concurrency limit."});
  set(kAdaptiveRejected, {"faultline_adaptive_rejected_total", kC, "", "", 1,
                          "Calls the adaptive concurrency limiter refused."});
  set(kDeadlineExceeded, {"faultline_deadline_exceeded_total", kC, "", "", 1,
                          "Calls stopped because no attempt fit before the deadline."});
  set(kDeadlinePropagated, {"faultline_deadline_propagated_total", kC, "", "", 1,
                            "Deadlines handed on to a callee."});
  set(kHedgesSent, {"faultline_hedges_sent_total", kC, "", "", 1, "Hedged requests sent."});
  set(kDeadlineRefused, {"faultline_deadline_refused_total", kC, "", "", 1,
                         "Requests a server refused or stopped answering because their deadline "
                         "had passed."});
  set(kSingleFlightJoined, {kShared, kC, "how", "joined", 1, kSharedHelp});
  set(kSingleFlightCached, {kShared, kC, "how", "cached", 1, kSharedHelp});
  set(kLeaseAcquireNs, {"faultline_lease_acquire_seconds", kG, "", "", kNs,
                        "Latency of the last lease acquisition (request sent to grant held)."});
  set(kLeaseAcquired,
      {"faultline_lease_acquired_total", kC, "", "", 1, "Leases acquired (elected)."});
  set(kLeaseRenewed, {"faultline_lease_renewed_total", kC, "", "", 1, "Lease renewals."});
  set(kLeaseLostRefused, {kLeaseLost, kC, "reason", "refused", 1, kLeaseLostHelp});
  set(kLeaseLostExpired, {kLeaseLost, kC, "reason", "expired", 1, kLeaseLostHelp});
  set(kSelfFenced, {"faultline_self_fenced_total", kC, "", "", 1,
                    "Times a holder stopped acting at its lease's valid_until."});
  set(kFencingRejected, {"faultline_fencing_rejected_total", kC, "", "", 1,
                         "Writes refused for a fencing token below the highest seen."});
  set(kPhiSuspicions, {"faultline_phi_suspicions_total", kC, "", "", 1,
                       "Peers the phi accrual failure detector started suspecting."});
  set(kHlcOffsetAlarms, {"faultline_hlc_offset_alarms_total", kC, "", "", 1,
                         "Clock offset measurements beyond the tolerated offset."});
  set(kHlcOffsetNs, {"faultline_hlc_offset_seconds", kG, "", "", kNs,
                     "The last clock offset beyond the tolerated offset, in seconds."});
  set(kIdempotencyClaims,
      {"faultline_idempotency_claims_total", kC, "", "", 1, "Idempotency keys newly claimed."});
  set(kIdempotencyReplays, {"faultline_idempotency_replays_total", kC, "", "", 1,
                            "Stored responses replayed for a repeated key."});
  set(kIdempotencyTakeovers, {"faultline_idempotency_takeovers_total", kC, "", "", 1,
                              "Abandoned claims taken over after their lease ran out."});
  set(kOutboxPending, {"faultline_outbox_pending", kG, "", "", 1,
                       "Outbox events pending at the relay's last poll (at most a batch)."});
  set(kSagaStepOk, {kSagaSteps, kC, "result", "ok", 1, kSagaStepsHelp});
  set(kSagaStepFailed, {kSagaSteps, kC, "result", "failed", 1, kSagaStepsHelp});
  set(kSagaCompensationOk, {kSagaComp, kC, "result", "ok", 1, kSagaCompHelp});
  set(kSagaCompensationFailed, {kSagaComp, kC, "result", "failed", 1, kSagaCompHelp});
  set(kReshardPhase,
      {"faultline_reshard_phase", kG, "", "", 1, "Reshard phase after the last step."});
  set(kReshardSteps, {"faultline_reshard_steps_total", kC, "", "", 1, "Reshard steps taken."});
  set(kReshardRowsCopied, {"faultline_reshard_rows_copied_total", kC, "", "", 1,
                           "Rows the reshard copy steps copied to the target."});
  for (int code = 0; code <= 16; ++code) {
    set(static_cast<Cell>(kCallsFirst + code),
        {kCalls, kC, "code", StatusCodeName(static_cast<StatusCode>(code)), 1, kCallsHelp});
  }
  for (size_t i = kCallDurationBucketFirst; i <= kCallDurationSumNs + 1; ++i) {
    set(static_cast<Cell>(i), {kDuration, MetricType::kHistogram, "", "", kNs, kDurationHelp});
  }
  for (const CellInfo& info : t) FL_ASSERT(!info.metric.empty());
  return t;
}

}  // namespace

const CellInfo& DescribeCell(Cell cell) {
  static const std::array<CellInfo, kCellCount> table = MakeTable();
  FL_ASSERT(cell < kCellCount);
  return table[cell];
}

}  // namespace faultline::observe
