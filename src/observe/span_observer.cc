#include "faultline/observe/span_observer.h"

#include <string>

namespace faultline::observe {

void SpanEventObserver::OnEvent(const Event& event) noexcept {
  if (span_ == 0) return;
  std::vector<Attribute> attrs;
  if (!event.source.empty()) attrs.push_back(StringAttr("faultline.source", event.source));
  if (event.a != 0) attrs.push_back(IntAttr("faultline.a", event.a));
  if (event.b != 0) attrs.push_back(IntAttr("faultline.b", event.b));
  if (event.d != Duration()) attrs.push_back(IntAttr("faultline.d_ms", event.d.nanos() / 1'000'000));
  tracer_.AddEvent(span_, "faultline." + std::string(EventKindName(event.kind)), std::move(attrs));
}

}  // namespace faultline::observe
