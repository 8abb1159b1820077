// File: faultline/observe/span_observer.h
//
// The observer seam (faultline/core/observer.h) into a trace: every event a primitive emits while
// a span is bound becomes an event of that span ("faultline.retry_scheduled", ...) with the
// event's fields as attributes (faultline.source, faultline.a, faultline.b, faultline.d_ms).
//
//   SpanEventObserver events(tracer);
//   breaker.observe().Attach(&events, "payments");
//   Tracer::Span call = tracer.StartSpan("charge", parent);
//   events.Bind(call.id());  ...  events.Bind(0);
//
// Threading: like the Tracer, on the node's executor only (the primitives it is attached to must
// be driven from there); OnEvent with no span bound is a no-op. Never blocks, never allocates when
// unbound.
#pragma once

#include <cstdint>

#include "faultline/core/observer.h"
#include "faultline/observe/tracer.h"

namespace faultline::observe {

class SpanEventObserver final : public Observer {
 public:
  explicit SpanEventObserver(Tracer& tracer) : tracer_(tracer) {}
  // The span events go to (a Tracer::Span's id(); 0 unbinds).
  void Bind(uint64_t span) { span_ = span; }
  uint64_t bound() const { return span_; }
  void OnEvent(const Event& event) noexcept override;

 private:
  Tracer& tracer_;
  uint64_t span_ = 0;
};

}  // namespace faultline::observe
