// File: faultline/observe/metrics.h
//
// The metric vocabulary shared by every metrics exporter: how an observer Event (core/observer.h)
// becomes updates of named series. PrometheusObserver (observe/prometheus.h) publishes these
// series over HTTP; the simulator's time-series recorder (lab) charts the same series at
// simulated time, so a lab chart and a production dashboard show the same names.
//
// A series ("cell") is one metric name plus at most one fixed label (to="open", code="OK", ...):
// every label value comes from this file, never from request data. The exporter adds one more
// label, instance_name, the name the user gave ObserverSlot::Attach. Cardinality is therefore
// bounded by (instances) × (kCellCount), with instances capped by the exporter.
//
// Units follow Prometheus conventions: counters end in _total, durations are seconds (cells hold
// nanoseconds; CellInfo::scale converts), gauges hold the last value reported.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "faultline/core/observer.h"
#include "faultline/core/status.h"

namespace faultline::observe {

enum class MetricType : uint8_t { kCounter, kGauge, kHistogram };

// Upper bounds (nanoseconds) of faultline_call_duration_seconds' buckets; +Inf is implicit.
inline constexpr std::array<int64_t, 14> kCallDurationBucketsNs = {
    500'000,     1'000'000,   2'500'000,     5'000'000,     10'000'000,
    25'000'000,  50'000'000,  100'000'000,   250'000'000,   500'000'000,
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};

// Every series. Values are int64: counts, nanoseconds, or a gauge's raw value.
enum Cell : uint16_t {
  kBreakerToClosed,
  kBreakerToOpen,
  kBreakerToHalfOpen,
  kBreakerToForcedOpen,
  kBreakerToDisabled,
  kBreakerState,  // gauge: BreakerState value of the last transition
  kBreakerRejected,
  kRetryAttempts,      // retries scheduled (attempts after the first)
  kRetryBackoffNs,     // total backoff scheduled (seconds counter)
  kRetryBudgetDenied,
  kRetryAfterHonoured,
  kRetryExhausted,
  kLimiterRejected,
  kBulkheadRejected,
  kAdaptiveLimit,  // gauge
  kAdaptiveRejected,
  kDeadlineExceeded,
  kDeadlinePropagated,
  kHedgesSent,
  kDeadlineRefused,
  kSingleFlightJoined,  // faultline_single_flight_shared_total{how="joined"}
  kSingleFlightCached,  // faultline_single_flight_shared_total{how="cached"}
  kLeaseAcquireNs,  // gauge (seconds): latency of the last acquisition
  kLeaseAcquired,
  kLeaseRenewed,
  kLeaseLostRefused,  // faultline_lease_lost_total{reason="refused"}
  kLeaseLostExpired,  // faultline_lease_lost_total{reason="expired"}
  kSelfFenced,
  kFencingRejected,
  kPhiSuspicions,
  kHlcOffsetAlarms,
  kHlcOffsetNs,  // gauge (seconds): the last offending offset
  kIdempotencyClaims,
  kIdempotencyReplays,
  kIdempotencyTakeovers,
  kOutboxPending,  // gauge
  kSagaStepOk,
  kSagaStepFailed,
  kSagaCompensationOk,
  kSagaCompensationFailed,
  kReshardPhase,  // gauge: ReshardPhase value after the last step
  kReshardSteps,
  kReshardRowsCopied,
  kCallsFirst,                                  // faultline_calls_total{code=...}: one per code
  kCallsLast = kCallsFirst + 16,                // StatusCode::kFencedOut
  kCallDurationBucketFirst,                     // non-cumulative bucket counts
  kCallDurationBucketInf = kCallDurationBucketFirst + kCallDurationBucketsNs.size(),
  kCallDurationSumNs,
  kCallDurationCount,  // derived: the sum of the bucket cells (ApplyEvent never adds to it)
  kCellCount,
};

struct CellInfo {
  std::string_view metric;  // full Prometheus name (for a histogram: the family name)
  MetricType type;
  std::string_view label_name;   // "" when the series has no fixed label
  std::string_view label_value;
  double scale;  // multiply the cell's value by this to get the published value
  std::string_view help;
};

// Description of `cell` (a histogram's bucket/sum/count cells all describe the histogram).
const CellInfo& DescribeCell(Cell cell);

// Applies `event` to a set of cells: add(cell, delta) for counters and histogram parts,
// set(cell, value) for gauges. Reads nothing but the event; allocation-free.
template <typename Add, typename Set>
inline void ApplyEvent(const Event& e, Add&& add, Set&& set) {
  switch (e.kind) {
    case EventKind::kBreakerTransition:
      if (e.b >= 0 && e.b <= 4) add(static_cast<Cell>(kBreakerToClosed + e.b), 1);
      set(kBreakerState, e.b);
      return;
    case EventKind::kBreakerRejected: add(kBreakerRejected, 1); return;
    case EventKind::kRetryScheduled:
      add(kRetryAttempts, 1);
      add(kRetryBackoffNs, e.d.nanos());
      return;
    case EventKind::kRetryBudgetDenied: add(kRetryBudgetDenied, 1); return;
    case EventKind::kRetryAfterHonoured: add(kRetryAfterHonoured, 1); return;
    case EventKind::kRetryExhausted: add(kRetryExhausted, 1); return;
    case EventKind::kLimiterRejected: add(kLimiterRejected, 1); return;
    case EventKind::kBulkheadRejected: add(kBulkheadRejected, 1); return;
    case EventKind::kAdaptiveLimit: set(kAdaptiveLimit, e.a); return;
    case EventKind::kAdaptiveRejected: add(kAdaptiveRejected, 1); return;
    case EventKind::kDeadlineExceeded: add(kDeadlineExceeded, 1); return;
    case EventKind::kDeadlinePropagated: add(kDeadlinePropagated, 1); return;
    case EventKind::kHedgeSent: add(kHedgesSent, 1); return;
    case EventKind::kDeadlineRefused: add(kDeadlineRefused, 1); return;
    case EventKind::kSingleFlightShared:
      add(e.a == 1 ? kSingleFlightCached : kSingleFlightJoined, 1);
      return;
    case EventKind::kCallCompleted: {
      if (e.a >= 0 && e.a <= 16) add(static_cast<Cell>(kCallsFirst + e.a), 1);
      if (e.b == 0) return;  // no latency measured
      const int64_t ns = e.d.nanos();
      size_t i = 0;
      while (i < kCallDurationBucketsNs.size() && ns > kCallDurationBucketsNs[i]) ++i;
      add(static_cast<Cell>(kCallDurationBucketFirst + i), 1);
      add(kCallDurationSumNs, ns);
      return;  // kCallDurationCount is the sum of the buckets: not stored twice
    }
    case EventKind::kLeaseAcquired:
      add(kLeaseAcquired, 1);
      if (e.d > Duration::Zero()) set(kLeaseAcquireNs, e.d.nanos());
      return;
    case EventKind::kLeaseRenewed: add(kLeaseRenewed, 1); return;
    case EventKind::kLeaseLost: add(e.b == 1 ? kLeaseLostRefused : kLeaseLostExpired, 1); return;
    case EventKind::kSelfFenced: add(kSelfFenced, 1); return;
    case EventKind::kFencingRejected: add(kFencingRejected, 1); return;
    case EventKind::kPhiSuspect: add(kPhiSuspicions, 1); return;
    case EventKind::kHlcOffsetAlarm:
      add(kHlcOffsetAlarms, 1);
      set(kHlcOffsetNs, e.d.nanos());
      return;
    case EventKind::kIdempotencyClaimed: add(kIdempotencyClaims, 1); return;
    case EventKind::kIdempotencyReplayed: add(kIdempotencyReplays, 1); return;
    case EventKind::kIdempotencyTakeover: add(kIdempotencyTakeovers, 1); return;
    case EventKind::kOutboxLag: set(kOutboxPending, e.a); return;
    case EventKind::kSagaStep: add(e.b == 1 ? kSagaStepOk : kSagaStepFailed, 1); return;
    case EventKind::kSagaCompensation:
      add(e.b == 1 ? kSagaCompensationOk : kSagaCompensationFailed, 1);
      return;
    case EventKind::kReshardProgress:
      set(kReshardPhase, e.a);
      add(kReshardSteps, 1);
      if (e.b > 0) add(kReshardRowsCopied, e.b);
      return;
  }
}

}  // namespace faultline::observe
