#include "faultline/core/observer.h"

namespace faultline {

std::string_view EventKindName(EventKind kind) {
  switch (kind) {
    case EventKind::kBreakerTransition: return "breaker_transition";
    case EventKind::kBreakerRejected: return "breaker_rejected";
    case EventKind::kRetryScheduled: return "retry_scheduled";
    case EventKind::kRetryBudgetDenied: return "retry_budget_denied";
    case EventKind::kRetryAfterHonoured: return "retry_after_honoured";
    case EventKind::kRetryExhausted: return "retry_exhausted";
    case EventKind::kLimiterRejected: return "limiter_rejected";
    case EventKind::kBulkheadRejected: return "bulkhead_rejected";
    case EventKind::kAdaptiveLimit: return "adaptive_limit";
    case EventKind::kAdaptiveRejected: return "adaptive_rejected";
    case EventKind::kDeadlineExceeded: return "deadline_exceeded";
    case EventKind::kDeadlinePropagated: return "deadline_propagated";
    case EventKind::kHedgeSent: return "hedge_sent";
    case EventKind::kCallCompleted: return "call_completed";
    case EventKind::kDeadlineRefused: return "deadline_refused";
    case EventKind::kSingleFlightShared: return "single_flight_shared";
    case EventKind::kLeaseAcquired: return "lease_acquired";
    case EventKind::kLeaseRenewed: return "lease_renewed";
    case EventKind::kLeaseLost: return "lease_lost";
    case EventKind::kSelfFenced: return "self_fenced";
    case EventKind::kFencingRejected: return "fencing_rejected";
    case EventKind::kPhiSuspect: return "phi_suspect";
    case EventKind::kHlcOffsetAlarm: return "hlc_offset_alarm";
    case EventKind::kIdempotencyClaimed: return "idempotency_claimed";
    case EventKind::kIdempotencyReplayed: return "idempotency_replayed";
    case EventKind::kIdempotencyTakeover: return "idempotency_takeover";
    case EventKind::kOutboxLag: return "outbox_lag";
    case EventKind::kSagaStep: return "saga_step";
    case EventKind::kSagaCompensation: return "saga_compensation";
    case EventKind::kReshardProgress: return "reshard_progress";
  }
  return "unknown";
}

}  // namespace faultline
