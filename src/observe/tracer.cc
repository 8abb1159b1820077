#include "faultline/observe/tracer.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "faultline/core/options.h"

namespace faultline::observe {

void InMemorySpanSink::Export(SpanData span) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  spans_.push_back(std::move(span));
}

std::vector<SpanData> InMemorySpanSink::spans() const {
  std::lock_guard<std::mutex> lock(mu_);
  return spans_;
}

void InMemorySpanSink::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  spans_.clear();
}

Status TracerOptions::Validate() const {
  FL_CHECK_OPTION(open_spans_max > 0, "open_spans_max must be > 0");
  FL_CHECK_OPTION(!service_name.empty(), "service_name must not be empty");
  return Status::Ok();
}

// ---- Span -----------------------------------------------------------------------------------------

Tracer::Span& Tracer::Span::operator=(Span&& other) noexcept {
  if (this != &other) {
    End();
    tracer_ = other.tracer_;
    id_ = other.id_;
    context_ = std::move(other.context_);
    other.tracer_ = nullptr;
    other.id_ = 0;
  }
  return *this;
}

Tracer::Span& Tracer::Span::SetString(std::string_view key, std::string_view value) {
  if (id_ != 0) tracer_->SetAttribute(id_, key, std::string(value));
  return *this;
}
Tracer::Span& Tracer::Span::SetInt(std::string_view key, int64_t value) {
  if (id_ != 0) tracer_->SetAttribute(id_, key, value);
  return *this;
}
Tracer::Span& Tracer::Span::SetDouble(std::string_view key, double value) {
  if (id_ != 0) tracer_->SetAttribute(id_, key, value);
  return *this;
}
Tracer::Span& Tracer::Span::SetBool(std::string_view key, bool value) {
  if (id_ != 0) tracer_->SetAttribute(id_, key, value);
  return *this;
}
Tracer::Span& Tracer::Span::AddEvent(std::string_view name, std::vector<Attribute> attributes) {
  if (id_ != 0) tracer_->AddEvent(id_, name, std::move(attributes));
  return *this;
}
Tracer::Span& Tracer::Span::SetStatus(const Status& status) {
  if (id_ != 0) tracer_->SetStatus(id_, status);
  return *this;
}
void Tracer::Span::End() {
  if (id_ != 0) tracer_->EndSpan(id_);
  id_ = 0;
}

// ---- Tracer ---------------------------------------------------------------------------------------

Tracer::Tracer(Clock& clock, Rng& random, SpanSink* sink, TracerOptions options)
    : clock_(clock), random_(random), sink_(sink), options_(std::move(options)) {
  FL_ASSERT(options_.Validate().ok());
}

uint64_t Tracer::Start(std::string_view name, const TraceContext& parent, SpanKind kind,
                       TraceContext* context) {
  *context = parent;
  const bool recorded = parent.valid() ? parent.sampled() : options_.sample_new_traces;
  if (!recorded) return 0;
  if (open_.size() >= options_.open_spans_max) {
    ++stats_.spans_dropped;
    return 0;
  }
  SpanData d;
  d.service_name = options_.service_name;
  if (parent.valid()) {
    d.trace_id = parent.trace_id;
    d.parent_span_id = parent.span_id;
    d.trace_state = FormatTracestate(parent.tracestate);
  } else {
    do {
      const uint64_t hi = random_.Next();
      const uint64_t lo = random_.Next();
      for (int i = 0; i < 8; ++i) {
        d.trace_id[i] = static_cast<uint8_t>(hi >> (56 - 8 * i));
        d.trace_id[8 + i] = static_cast<uint8_t>(lo >> (56 - 8 * i));
      }
    } while (d.trace_id == TraceId{});
    context->flags = kTraceFlagSampled;
    context->tracestate.clear();
  }
  uint64_t sid = 0;
  while (sid == 0) sid = random_.Next();
  for (int i = 0; i < 8; ++i) d.span_id[i] = static_cast<uint8_t>(sid >> (56 - 8 * i));
  d.name = std::string(name);
  d.attributes.reserve(8);  // one allocation for the usual handful of attributes
  d.kind = kind;
  d.start_unix_nano = NowUnixNano();
  context->trace_id = d.trace_id;
  context->span_id = d.span_id;
  const uint64_t handle = next_handle_++;
  open_.emplace_back(handle, std::move(d));
  ++stats_.spans_started;
  return handle;
}

Tracer::Span Tracer::StartSpan(std::string_view name, const TraceContext& parent, SpanKind kind) {
  Span s;
  s.tracer_ = this;
  s.id_ = Start(name, parent, kind, &s.context_);
  return s;
}

SpanData* Tracer::Find(uint64_t span) {
  // Open spans are few (the nesting depth, plus calls in flight): a scan from the newest wins.
  for (size_t i = open_.size(); i > 0; --i) {
    if (open_[i - 1].first == span) return &open_[i - 1].second;
  }
  return nullptr;
}

void Tracer::SetAttribute(uint64_t span, std::string_view key, AttributeValue value) {
  SpanData* d = Find(span);
  if (d == nullptr) return;
  std::vector<Attribute>& attrs = d->attributes;
  for (Attribute& a : attrs) {
    if (a.key == key) {
      a.value = std::move(value);
      return;
    }
  }
  if (attrs.size() >= options_.attributes_per_span_max) {
    ++stats_.attributes_dropped;
    return;
  }
  attrs.push_back(Attribute{std::string(key), std::move(value)});
}

void Tracer::AddEvent(uint64_t span, std::string_view name, std::vector<Attribute> attributes) {
  SpanData* d = Find(span);
  if (d == nullptr) return;
  if (d->events.size() >= options_.events_per_span_max) {
    ++stats_.events_dropped;
    return;
  }
  d->events.push_back(SpanEvent{std::string(name), NowUnixNano(), std::move(attributes)});
}

void Tracer::SetStatus(uint64_t span, const Status& status) {
  SpanData* d = Find(span);
  if (d == nullptr) return;
  if (status.ok()) {
    d->status_code = SpanStatusCode::kOk;
    d->status_message.clear();
    return;
  }
  d->status_code = SpanStatusCode::kError;
  d->status_message = status.ToString();
  SetAttribute(span, "faultline.status_code", static_cast<int64_t>(status.code()));
}

void Tracer::EndSpan(uint64_t span) {
  size_t i = open_.size();
  while (i > 0 && open_[i - 1].first != span) --i;
  if (i == 0) return;
  SpanData d = std::move(open_[i - 1].second);
  if (i != open_.size()) open_[i - 1] = std::move(open_.back());
  open_.pop_back();
  d.end_unix_nano = std::max(NowUnixNano(), d.start_unix_nano);
  ++stats_.spans_ended;
  if (sink_ != nullptr) sink_->Export(std::move(d));
}

uint64_t Tracer::StartClientSpan(const TraceContext& parent, NodeId to, uint16_t method,
                                 Duration timeout, TraceContext* propagate) {
  const uint64_t h = Start("rpc.client", parent, SpanKind::kClient, propagate);
  SetAttribute(h, "rpc.method", static_cast<int64_t>(method));
  SetAttribute(h, "net.peer.node", static_cast<int64_t>(to.value()));
  SetAttribute(h, "rpc.timeout_ms", timeout.nanos() / 1'000'000);
  return h;
}

void Tracer::EndClientSpan(uint64_t span, const Status& status) {
  SetStatus(span, status);
  if (status.code() == StatusCode::kDeadlineExceeded) SetAttribute(span, "deadline.exceeded", true);
  EndSpan(span);
}

uint64_t Tracer::StartServerSpan(const TraceContext& remote, NodeId from, uint16_t method,
                                 Duration remaining, TraceContext* context) {
  const uint64_t h = Start("rpc.server", remote, SpanKind::kServer, context);
  SetAttribute(h, "rpc.method", static_cast<int64_t>(method));
  SetAttribute(h, "net.peer.node", static_cast<int64_t>(from.value()));
  SetAttribute(h, "deadline.remaining_ms", remaining.nanos() / 1'000'000);
  return h;
}

void Tracer::EndServerSpan(uint64_t span, const Status& status) { EndClientSpan(span, status); }

// ---- RenderTraceTree ------------------------------------------------------------------------------

namespace {

std::string AttrText(const AttributeValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", *d);
    return buf;
  }
  return std::get<bool>(v) ? "true" : "false";
}

void RenderSpan(const std::vector<SpanData>& spans, size_t index,
                const std::multimap<SpanId, size_t>& children, int64_t t0, int depth,
                std::string* out) {
  const SpanData& s = spans[index];
  out->append(static_cast<size_t>(2 * depth), ' ');
  char head[160];
  std::snprintf(head, sizeof(head), "%s [%s] +%lldms %lldms", s.name.c_str(),
                s.service_name.c_str(), static_cast<long long>((s.start_unix_nano - t0) / 1000000),
                static_cast<long long>((s.end_unix_nano - s.start_unix_nano) / 1000000));
  *out += head;
  for (const Attribute& a : s.attributes) {
    if (a.key == "faultline.status_code") continue;
    *out += ' ' + a.key + '=' + AttrText(a.value);
  }
  if (s.status_code == SpanStatusCode::kError) *out += "  ERROR " + s.status_message;
  if (s.status_code == SpanStatusCode::kOk) *out += "  OK";
  *out += '\n';
  for (const SpanEvent& e : s.events) {
    out->append(static_cast<size_t>(2 * depth + 4), ' ');
    *out += "* " + e.name;
    for (const Attribute& a : e.attributes) *out += ' ' + a.key + '=' + AttrText(a.value);
    *out += '\n';
  }
  std::vector<size_t> kids;
  for (auto [it, end] = children.equal_range(s.span_id); it != end; ++it) kids.push_back(it->second);
  std::stable_sort(kids.begin(), kids.end(), [&](size_t a, size_t b) {
    return spans[a].start_unix_nano < spans[b].start_unix_nano;
  });
  for (size_t k : kids) RenderSpan(spans, k, children, t0, depth + 1, out);
}

}  // namespace

std::string RenderTraceTree(const std::vector<SpanData>& spans) {
  std::multimap<SpanId, size_t> children;
  std::map<SpanId, size_t> by_id;
  for (size_t i = 0; i < spans.size(); ++i) by_id.emplace(spans[i].span_id, i);
  std::vector<size_t> roots;
  for (size_t i = 0; i < spans.size(); ++i) {
    if (spans[i].parent_span_id == SpanId{} || by_id.count(spans[i].parent_span_id) == 0) {
      roots.push_back(i);
    } else {
      children.emplace(spans[i].parent_span_id, i);
    }
  }
  std::stable_sort(roots.begin(), roots.end(), [&](size_t a, size_t b) {
    return spans[a].start_unix_nano < spans[b].start_unix_nano;
  });
  std::string out;
  for (size_t r : roots) {
    out += "trace " + HexId(spans[r].trace_id) + "\n";
    RenderSpan(spans, r, children, spans[r].start_unix_nano, 1, &out);
  }
  return out;
}

}  // namespace faultline::observe
