// File: faultline/observe/tracer.h
//
// Spans: what one node did for one trace, with parent links, attributes, events and a status —
// the OpenTelemetry data model, recorded on the Env seams so it runs under the simulator (ids
// from the node's Rng, timestamps from its clock's WallNow) and in production alike.
//
//   Tracer tracer(env.clock(), env.random(), &exporter, {.service_name = "payments"});
//   rpc.SetTraceHooks(&tracer);                      // client and server spans for every call
//   Tracer::Span s = tracer.StartSpan("charge", request.trace);
//   s.SetInt("retry.attempt", 2);
//   co_await rpc.Call(peer, kCharge, body, timeout, {}, s.context());
//   s.End(status);                                   // or let it go out of scope
//
// Sampling: a span under a valid parent is recorded when the parent is sampled; a span with no
// parent starts a new trace, sampled when options.sample_new_traces. An unrecorded span still
// hands its parent's context on, so propagation never breaks.
//
// Limits (TracerOptions): open spans, attributes and events per span. Past a limit the extra
// span/attribute/event is dropped and counted (stats()); a Tracer never grows without bound.
//
// Threading: one Tracer per node, used on the node's executor only (like the Rng it draws ids
// from). The SpanSink it hands ended spans to is shared and thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "faultline/core/random.h"
#include "faultline/core/status.h"
#include "faultline/env/clock.h"
#include "faultline/env/rpc.h"
#include "faultline/env/trace_context.h"

namespace faultline::observe {

// OTLP's enums, with OTLP's integer values.
enum class SpanKind : uint8_t {
  kUnspecified = 0,
  kInternal = 1,
  kServer = 2,
  kClient = 3,
  kProducer = 4,
  kConsumer = 5
};
enum class SpanStatusCode : uint8_t { kUnset = 0, kOk = 1, kError = 2 };

using AttributeValue = std::variant<std::string, int64_t, double, bool>;
struct Attribute {
  std::string key;
  AttributeValue value;
  friend bool operator==(const Attribute&, const Attribute&) = default;
};

struct SpanEvent {
  std::string name;
  int64_t time_unix_nano = 0;
  std::vector<Attribute> attributes;
  friend bool operator==(const SpanEvent&, const SpanEvent&) = default;
};

// One ended span, as handed to a SpanSink.
struct SpanData {
  std::string service_name;  // the resource's service.name
  TraceId trace_id{};
  SpanId span_id{};
  SpanId parent_span_id{};  // all zero: a root span
  std::string trace_state;
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  int64_t start_unix_nano = 0;
  int64_t end_unix_nano = 0;
  std::vector<Attribute> attributes;
  std::vector<SpanEvent> events;
  SpanStatusCode status_code = SpanStatusCode::kUnset;
  std::string status_message;
  friend bool operator==(const SpanData&, const SpanData&) = default;
};

// Receives ended spans. Export must be thread-safe, must not block and must not throw.
class SpanSink {
 public:
  virtual ~SpanSink() = default;
  virtual void Export(SpanData span) noexcept = 0;
};

// Keeps every span (tests, the simulator).
class InMemorySpanSink final : public SpanSink {
 public:
  void Export(SpanData span) noexcept override;
  std::vector<SpanData> spans() const;
  void Clear();

 private:
  mutable std::mutex mu_;
  std::vector<SpanData> spans_;
};

struct TracerOptions {
  std::string service_name = "faultline";
  bool sample_new_traces = true;
  uint32_t open_spans_max = 10'000;
  uint32_t attributes_per_span_max = 64;
  uint32_t events_per_span_max = 64;
  Status Validate() const;
};

struct TracerStats {
  uint64_t spans_started = 0;
  uint64_t spans_ended = 0;
  uint64_t spans_dropped = 0;       // open_spans_max reached: not recorded
  uint64_t attributes_dropped = 0;  // attributes_per_span_max reached
  uint64_t events_dropped = 0;      // events_per_span_max reached
};

class Tracer final : public RpcTraceHooks {
 public:
  // A span in progress. Movable; ends (with its status so far) when destroyed. A default or
  // unrecorded Span accepts every call and does nothing.
  class Span {
   public:
    Span() = default;
    Span(Span&& other) noexcept { *this = std::move(other); }
    Span& operator=(Span&& other) noexcept;
    ~Span() { End(); }

    bool recording() const { return id_ != 0; }
    // What children and callees continue: this span's context when recording, else the parent's.
    const TraceContext& context() const { return context_; }

    Span& SetString(std::string_view key, std::string_view value);
    Span& SetInt(std::string_view key, int64_t value);
    Span& SetDouble(std::string_view key, double value);
    Span& SetBool(std::string_view key, bool value);
    Span& AddEvent(std::string_view name, std::vector<Attribute> attributes = {});
    // OK -> status OK; an error -> status ERROR with the Status as message and its code as the
    // attribute faultline.status_code.
    Span& SetStatus(const Status& status);
    void End();
    void End(const Status& status) {
      SetStatus(status);
      End();
    }
    uint64_t id() const { return id_; }

   private:
    friend class Tracer;
    Tracer* tracer_ = nullptr;
    uint64_t id_ = 0;
    TraceContext context_;
  };

  // `clock`, `random` and `sink` (nullptr: spans are discarded) must outlive the Tracer.
  Tracer(Clock& clock, Rng& random, SpanSink* sink, TracerOptions options = {});
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;
  // Open spans are dropped, not exported.
  ~Tracer() override = default;

  Span StartSpan(std::string_view name, const TraceContext& parent,
                 SpanKind kind = SpanKind::kInternal);

  // By handle (what the RpcTraceHooks and observers use); unknown handles are ignored.
  void SetAttribute(uint64_t span, std::string_view key, AttributeValue value);
  void AddEvent(uint64_t span, std::string_view name, std::vector<Attribute> attributes);
  void SetStatus(uint64_t span, const Status& status);
  void EndSpan(uint64_t span);

  const TracerStats& stats() const { return stats_; }
  size_t open_spans() const { return open_.size(); }
  const TracerOptions& options() const { return options_; }

  // RpcTraceHooks: "rpc.client"/"rpc.server" spans with rpc.method, net.peer.node and
  // deadline.remaining_ms / rpc.timeout_ms attributes.
  uint64_t StartClientSpan(const TraceContext& parent, NodeId to, uint16_t method,
                           Duration timeout, TraceContext* propagate) override;
  void EndClientSpan(uint64_t span, const Status& status) override;
  uint64_t StartServerSpan(const TraceContext& remote, NodeId from, uint16_t method,
                           Duration remaining, TraceContext* context) override;
  void EndServerSpan(uint64_t span, const Status& status) override;

 private:
  // Starts a recorded span (returns 0 and leaves *context = parent when not recorded).
  uint64_t Start(std::string_view name, const TraceContext& parent, SpanKind kind,
                 TraceContext* context);
  int64_t NowUnixNano() { return clock_.WallNow().nanos(); }
  SpanData* Find(uint64_t span);

  Clock& clock_;
  Rng& random_;
  SpanSink* sink_;
  TracerOptions options_;
  TracerStats stats_;
  uint64_t next_handle_ = 1;
  std::vector<std::pair<uint64_t, SpanData>> open_;  // by handle, unordered
};

// Attribute helpers.
inline Attribute StringAttr(std::string_view k, std::string_view v) {
  return {std::string(k), std::string(v)};
}
inline Attribute IntAttr(std::string_view k, int64_t v) { return {std::string(k), v}; }
inline Attribute BoolAttr(std::string_view k, bool v) { return {std::string(k), v}; }
inline Attribute DoubleAttr(std::string_view k, double v) { return {std::string(k), v}; }

// The spans of `spans` as an indented tree per trace ("name [service] attrs... status"), children
// in start order: how the README and the tests show a trace.
std::string RenderTraceTree(const std::vector<SpanData>& spans);

}  // namespace faultline::observe
