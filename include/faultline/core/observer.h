// File: faultline/core/observer.h
//
// The observer seam: how a primitive tells the outside what it decided — a breaker tripped, a
// retry was scheduled or refused by the budget, a limiter shed a call, a lease was lost, a
// fencing token was refused. Exporters (Prometheus, OTLP tracing, the simulator's time series)
// implement Observer; the primitives know nothing about them and link no exporter library.
//
//   faultline::CircuitBreaker breaker(clock, options);
//   breaker.observe().Attach(&metrics, "payments");   // instance name: a bounded label value
//
// Cost when nothing listens: one load and a predicted-not-taken branch per decision point
// (Emit tests the pointer before building the Event). Primitives emit only on decisions, never
// per clock read, and never allocate to emit.
//
// Contract for implementations of Observer:
//   - OnEvent may be called from any thread that drives the primitive, concurrently: it must be
//     thread-safe, must not block, must not throw, and must not call back into the primitive.
//   - The Event and the string_views in it are valid only during the call: copy what you keep.
//   - Under the simulator OnEvent runs inside node code: it must not read a real clock or do I/O
//     (the simulator's recorder reads the world's time itself).
#pragma once

#include <cstdint>
#include <string_view>

#include "faultline/core/time.h"

namespace faultline {

// What happened. Fields of Event used by each kind are listed beside it; unused fields are 0.
enum class EventKind : uint16_t {
  // ---- resilience ----
  kBreakerTransition = 1,  // a = from state, b = to state (CircuitBreaker's enum values)
  kBreakerRejected,        // a call refused while open / half-open full
  kRetryScheduled,         // a = attempt number about to run (2 = first retry), d = backoff chosen
  kRetryBudgetDenied,      // a = attempt number that was refused
  kRetryAfterHonoured,     // a = attempt about to run, d = the pushback that replaced the backoff
  kRetryExhausted,         // a = attempts made; b = the last StatusCode (0 if not known)
  kLimiterRejected,        // rate limiter refused (d = wait it would have needed, if known;
                           // a = 1: a keyed limiter's key table was full; a = 2: a client
                           // throttle dropped the request locally, b = reject probability × 1000)
  kBulkheadRejected,       // a = in-flight at the time
  kAdaptiveLimit,          // a = new concurrency limit (emitted when it changes)
  kAdaptiveRejected,       // a = in-flight, b = limit
  kDeadlineExceeded,       // a = attempts made, d = how late (0 if unknown)
  kDeadlinePropagated,     // d = remaining budget handed to the callee
  kHedgeSent,              // a = hedge number (1 = first extra request), d = delay since first
  kCallCompleted,          // a = StatusCode; b = 1 when d is the measured latency of the whole
                           // call, 0 when no completion reading existed (d = 0 then)
  kDeadlineRefused,        // a server dropped expired work: a = method; b = 0 refused on
                           // arrival, 1 reply dropped after the handler ran late (d = how late)
  kSingleFlightShared,     // a call got a result it did not run: a = 0 joined the execution in
                           // flight for its key, a = 1 answered from the cache
  // ---- leases and fencing ----
  kLeaseAcquired = 100,  // a = token, d = acquire latency (0 if not measured)
  kLeaseRenewed,         // a = token
  kLeaseLost,            // a = token; b = 1 when the service said so, 0 when validity ran out
  kSelfFenced,           // a = token: the holder stopped acting at its valid_until
  kFencingRejected,      // a = token offered, b = highest seen (0 if not known)
  kPhiSuspect,           // a = peer node id, b = phi × 1000
  kHlcOffsetAlarm,       // a = peer node id, d = offset observed
  // ---- idempotency, outbox, sagas, resharding ----
  kIdempotencyClaimed = 200,  // a new key claimed (a = attempt)
  kIdempotencyReplayed,       // a stored result returned
  kIdempotencyTakeover,       // an abandoned claim taken over (a = the new attempt)
  kOutboxLag,                 // a = rows pending, d = age of the oldest (0 if not known)
  kSagaStep,                  // a = step index, b = 1 ok / 0 failed
  kSagaCompensation,          // a = step index compensated, b = 1 ok / 0 failed
  kReshardProgress,           // a = phase (ReshardPhase), b = rows copied by this step (kCopy)
};

// Stable snake_case name of a kind ("breaker_transition", ...): used as the metric/span name stem.
std::string_view EventKindName(EventKind kind);

struct Event {
  EventKind kind = EventKind::kBreakerTransition;
  std::string_view source;  // the instance name given to Attach ("" when none)
  MonoTime at;              // the primitive's own clock reading when it had one; MonoTime() if not
  int64_t a = 0;
  int64_t b = 0;
  Duration d;
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void OnEvent(const Event& event) noexcept = 0;
  // Called once by ObserverSlot::Attach: the observer the slot will call for instance `name`.
  // An exporter that keeps per-instance state returns that instance's own observer here, so the
  // per-event path does no name lookup. The result must live as long as this observer.
  virtual Observer* Bind(std::string_view name) { (void)name; return this; }
};

// What a primitive embeds (one per instance): the attached observer and the instance's name.
// Attach before the primitive is shared between threads; not thread-safe against concurrent Emit.
class ObserverSlot {
 public:
  // `observer` (nullptr detaches) must outlive the primitive. `name` is copied into a fixed
  // buffer (truncated at kNameMax bytes) so emitting never allocates. The slot calls
  // observer->Bind(name) once and emits to what it returns.
  void Attach(Observer* observer, std::string_view name = {}) {
    const size_t n = name.size() < kNameMax ? name.size() : kNameMax;
    for (size_t i = 0; i < n; ++i) name_[i] = name[i];
    name_size_ = static_cast<uint8_t>(n);
    observer_ = observer == nullptr ? nullptr : observer->Bind(this->name());
  }
  bool attached() const { return observer_ != nullptr; }
  std::string_view name() const { return {name_, name_size_}; }

  void Emit(EventKind kind, MonoTime at, int64_t a = 0, int64_t b = 0,
            Duration d = Duration()) const {
    if (observer_ == nullptr) [[likely]] return;
    EmitAttached(kind, at, a, b, d);
  }

  static constexpr size_t kNameMax = 63;

 private:
  // Out of line and cold: a detached Emit inlines to a load, a compare and a not-taken branch,
  // and the primitives' fast paths keep their size.
  [[gnu::noinline, gnu::cold]] void EmitAttached(EventKind kind, MonoTime at, int64_t a, int64_t b,
                                                 Duration d) const {
    observer_->OnEvent(Event{kind, name(), at, a, b, d});
  }

  Observer* observer_ = nullptr;
  uint8_t name_size_ = 0;
  char name_[kNameMax] = {};
};

}  // namespace faultline
