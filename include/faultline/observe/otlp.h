// File: faultline/observe/otlp.h
//
// OTLP/HTTP JSON export of spans (OpenTelemetry protocol, JSON encoding of
// ExportTraceServiceRequest), to a collector (POST {endpoint}, normally .../v1/traces,
// Content-Type: application/json) or appended to a file (one request per line, the OTLP "file"
// convention).
//
// Encoding, exactly as OTLP/JSON requires:
//   {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":..}}]},
//     "scopeSpans":[{"scope":{"name":"faultline"},"spans":[{
//       "traceId":"<32 lowercase hex>","spanId":"<16 hex>","parentSpanId":"<16 hex>" (absent at
//       a root),"traceState":"..." (when set),"name":"...","kind":<int>,
//       "startTimeUnixNano":"<decimal string>","endTimeUnixNano":"<decimal string>",
//       "attributes":[{"key":"..","value":{"stringValue":".."|"intValue":"<decimal string>"|
//                                          "doubleValue":<number>|"boolValue":<bool>}}],
//       "events":[{"timeUnixNano":"..","name":"..","attributes":[..]}],
//       "status":{"code":<int>,"message":".."}}]}]}]}
// lowerCamelCase field names, ids as hex (not base64), 64-bit integers as decimal strings, enums
// as integers. One resourceSpans per service.name.
//
// OtlpExporter: Export() only appends to a bounded queue under a mutex (never I/O, never waits
// for the collector); one exporter thread batches and sends. A full queue drops the span and
// counts it; a failed POST (refused, timed out, non-2xx) drops its batch and counts the spans.
// So a slow, hung or unreachable collector never blocks or slows a call path.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/observe/tracer.h"

namespace faultline::observe {

// One ExportTraceServiceRequest as OTLP JSON.
std::string EncodeOtlpJson(const std::vector<SpanData>& spans);

struct OtlpExporterOptions {
  // Collector URL, e.g. "http://127.0.0.1:4318/v1/traces". Exactly one of endpoint / file_path.
  std::string endpoint;
  // File to append to (one JSON request per line); created if missing.
  std::string file_path;
  // Spans waiting to be sent; beyond it Export() drops (counted in dropped_queue_full).
  uint32_t queue_spans_max = 2048;
  // Spans per request.
  uint32_t batch_spans_max = 512;
  // A partial batch is sent after waiting this long.
  Duration flush_interval = Duration::Millis(200);
  // Whole-request and connect timeouts for the collector.
  Duration request_timeout = Duration::Seconds(2);
  Duration connect_timeout = Duration::Millis(500);
  Status Validate() const;
};

// Options from the environment, by OpenTelemetry's conventions: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// (the URL as given), else OTEL_EXPORTER_OTLP_ENDPOINT (a base URL: "/v1/traces" is appended),
// else FAULTLINE_OTLP_FILE (a file path). kNotFound when none is set: tracing stays off.
// `getenv` is std::getenv unless a test supplies its own.
Result<OtlpExporterOptions> OtlpExporterOptionsFromEnv(
    const std::function<const char*(const char*)>& getenv = {});

struct OtlpExporterStats {
  uint64_t exported = 0;            // spans the collector accepted / written to the file
  uint64_t dropped_queue_full = 0;  // spans refused by Export()
  uint64_t dropped_send_failed = 0;  // spans of batches the collector or file did not take
  uint64_t requests = 0;             // requests attempted
};

class OtlpExporter final : public SpanSink {
 public:
  // Starts the exporter thread. kInvalidArgument for bad options; kUnavailable if the file cannot
  // be opened.
  static Result<std::unique_ptr<OtlpExporter>> Create(OtlpExporterOptions options);
  // Sends what is queued, then stops the thread; once a send fails during shutdown the rest is
  // dropped, so this waits at most about one request_timeout for a dead collector.
  ~OtlpExporter() override;
  OtlpExporter(const OtlpExporter&) = delete;
  OtlpExporter& operator=(const OtlpExporter&) = delete;

  void Export(SpanData span) noexcept override;
  // Waits until everything queued before the call has been sent (or dropped), at most `timeout`
  // of real time. False on timeout.
  bool Flush(Duration timeout);
  OtlpExporterStats stats() const;

 private:
  explicit OtlpExporter(OtlpExporterOptions options);
  void Loop();
  bool Send(const std::string& body);

  OtlpExporterOptions options_;
  mutable std::mutex mu_;
  std::condition_variable wake_;      // the exporter thread: work or stop
  std::condition_variable progress_;  // Flush(): a batch finished
  std::deque<SpanData> queue_;
  uint64_t enqueued_ = 0;  // spans ever accepted
  uint64_t settled_ = 0;   // spans ever sent or dropped after acceptance
  uint64_t flush_target_ = 0;  // Flush(): send now until settled_ reaches it
  bool stop_ = false;
  OtlpExporterStats stats_;
  void* curl_ = nullptr;  // CURL*, used by the exporter thread only
  std::thread thread_;
};

}  // namespace faultline::observe
