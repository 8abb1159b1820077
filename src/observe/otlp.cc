#include "faultline/observe/otlp.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "faultline/core/options.h"

namespace faultline::observe {
namespace {

// A direct writer (no JSON DOM): the exporter thread encodes every span, and building an
// nlohmann::json tree per span cost about 7 us.
void AppendEscaped(std::string_view v, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20) {
          *out += "\\u00";
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(ch);  // UTF-8 passes through; invalid bytes are the caller's
        }
    }
  }
  out->push_back('"');
}

void AppendAttrValue(const AttributeValue& v, std::string* out) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    *out += "{\"stringValue\":";
    AppendEscaped(*s, out);
    out->push_back('}');
  } else if (const auto* i = std::get_if<int64_t>(&v)) {
    *out += "{\"intValue\":\"" + std::to_string(*i) + "\"}";
  } else if (const auto* d = std::get_if<double>(&v)) {
    if (std::isfinite(*d)) {
      char buf[40];
      std::snprintf(buf, sizeof(buf), "%.17g", *d);
      *out += std::string("{\"doubleValue\":") + buf + "}";
    } else {  // OTLP/JSON spells non-finite doubles as strings
      *out += std::isnan(*d) ? "{\"doubleValue\":\"NaN\"}"
              : *d > 0       ? "{\"doubleValue\":\"Infinity\"}"
                             : "{\"doubleValue\":\"-Infinity\"}";
    }
  } else {
    *out += std::get<bool>(v) ? "{\"boolValue\":true}" : "{\"boolValue\":false}";
  }
}

void AppendAttributes(const std::vector<Attribute>& attrs, std::string* out) {
  *out += "\"attributes\":[";
  for (size_t i = 0; i < attrs.size(); ++i) {
    if (i > 0) out->push_back(',');
    *out += "{\"key\":";
    AppendEscaped(attrs[i].key, out);
    *out += ",\"value\":";
    AppendAttrValue(attrs[i].value, out);
    out->push_back('}');
  }
  out->push_back(']');
}

void AppendSpan(const SpanData& s, std::string* out) {
  *out += "{\"traceId\":\"" + HexId(s.trace_id) + "\",\"spanId\":\"" + HexId(s.span_id) + "\"";
  if (s.parent_span_id != SpanId{}) *out += ",\"parentSpanId\":\"" + HexId(s.parent_span_id) + "\"";
  if (!s.trace_state.empty()) {
    *out += ",\"traceState\":";
    AppendEscaped(s.trace_state, out);
  }
  *out += ",\"name\":";
  AppendEscaped(s.name, out);
  *out += ",\"kind\":" + std::to_string(static_cast<int>(s.kind));
  *out += ",\"startTimeUnixNano\":\"" + std::to_string(s.start_unix_nano) + "\"";
  *out += ",\"endTimeUnixNano\":\"" + std::to_string(s.end_unix_nano) + "\",";
  AppendAttributes(s.attributes, out);
  if (!s.events.empty()) {
    *out += ",\"events\":[";
    for (size_t i = 0; i < s.events.size(); ++i) {
      if (i > 0) out->push_back(',');
      *out += "{\"timeUnixNano\":\"" + std::to_string(s.events[i].time_unix_nano) + "\",\"name\":";
      AppendEscaped(s.events[i].name, out);
      out->push_back(',');
      AppendAttributes(s.events[i].attributes, out);
      out->push_back('}');
    }
    out->push_back(']');
  }
  *out += ",\"status\":{\"code\":" + std::to_string(static_cast<int>(s.status_code));
  if (!s.status_message.empty()) {
    *out += ",\"message\":";
    AppendEscaped(s.status_message, out);
  }
  *out += "}}";
}

std::once_flag curl_init_once;

size_t DiscardBody(char*, size_t size, size_t n, void*) { return size * n; }

}  // namespace

std::string EncodeOtlpJson(const std::vector<SpanData>& spans) {
  std::map<std::string_view, std::vector<const SpanData*>> by_service;  // ordered: stable output
  for (const SpanData& s : spans) by_service[s.service_name].push_back(&s);
  std::string out;
  out.reserve(64 + spans.size() * 512);
  out += "{\"resourceSpans\":[";
  bool first_resource = true;
  for (const auto& [service, list] : by_service) {
    if (!first_resource) out.push_back(',');
    first_resource = false;
    out += "{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":";
    AppendEscaped(service, &out);
    out += "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"faultline\"},\"spans\":[";
    for (size_t i = 0; i < list.size(); ++i) {
      if (i > 0) out.push_back(',');
      AppendSpan(*list[i], &out);
    }
    out += "]}]}";
  }
  out += "]}";
  return out;
}

Status OtlpExporterOptions::Validate() const {
  FL_CHECK_OPTION(endpoint.empty() != file_path.empty(),
                  "exactly one of endpoint and file_path must be set");
  FL_CHECK_OPTION(endpoint.empty() || endpoint.rfind("http://", 0) == 0 ||
                      endpoint.rfind("https://", 0) == 0,
                  "endpoint must be an http:// or https:// URL");
  FL_CHECK_OPTION(queue_spans_max > 0, "queue_spans_max must be > 0");
  FL_CHECK_OPTION(batch_spans_max > 0, "batch_spans_max must be > 0");
  FL_CHECK_OPTION(flush_interval > Duration::Zero(), "flush_interval must be > 0");
  FL_CHECK_OPTION(request_timeout > Duration::Zero(), "request_timeout must be > 0");
  FL_CHECK_OPTION(connect_timeout > Duration::Zero(), "connect_timeout must be > 0");
  return Status::Ok();
}

Result<OtlpExporterOptions> OtlpExporterOptionsFromEnv(
    const std::function<const char*(const char*)>& getenv) {
  auto get = [&](const char* name) -> std::string {
    const char* v = getenv ? getenv(name) : std::getenv(name);
    return v != nullptr ? std::string(v) : std::string();
  };
  OtlpExporterOptions o;
  if (std::string url = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); !url.empty()) {
    o.endpoint = std::move(url);
  } else if (std::string base = get("OTEL_EXPORTER_OTLP_ENDPOINT"); !base.empty()) {
    while (!base.empty() && base.back() == '/') base.pop_back();
    o.endpoint = base + "/v1/traces";
  } else if (std::string file = get("FAULTLINE_OTLP_FILE"); !file.empty()) {
    o.file_path = std::move(file);
  } else {
    return NotFoundError("no OTLP endpoint or file configured");
  }
  if (Status s = o.Validate(); !s.ok()) return s;
  return o;
}

Result<std::unique_ptr<OtlpExporter>> OtlpExporter::Create(OtlpExporterOptions options) {
  if (Status s = options.Validate(); !s.ok()) return s;
  if (!options.file_path.empty()) {
    std::FILE* f = std::fopen(options.file_path.c_str(), "a");
    if (f == nullptr) return UnavailableError("cannot open trace file " + options.file_path);
    std::fclose(f);
  }
  std::unique_ptr<OtlpExporter> e(new OtlpExporter(std::move(options)));
  if (!e->options_.endpoint.empty()) {
    std::call_once(curl_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    e->curl_ = curl_easy_init();
    if (e->curl_ == nullptr) return UnavailableError("curl_easy_init failed");
  }
  e->thread_ = std::thread([p = e.get()] { p->Loop(); });
  return e;
}

OtlpExporter::OtlpExporter(OtlpExporterOptions options) : options_(std::move(options)) {}

OtlpExporter::~OtlpExporter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

void OtlpExporter::Export(SpanData span) noexcept {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= options_.queue_spans_max) {
      ++stats_.dropped_queue_full;
      return;
    }
    queue_.push_back(std::move(span));
    ++enqueued_;
    wake = queue_.size() >= options_.batch_spans_max;
  }
  if (wake) wake_.notify_one();
}

bool OtlpExporter::Flush(Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = enqueued_;
  flush_target_ = std::max(flush_target_, target);
  wake_.notify_one();
  return progress_.wait_for(lock, std::chrono::nanoseconds(timeout.nanos()),
                            [&] { return settled_ >= target; });
}

OtlpExporterStats OtlpExporter::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void OtlpExporter::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait_for(lock, std::chrono::nanoseconds(options_.flush_interval.nanos()), [&] {
      return stop_ || queue_.size() >= options_.batch_spans_max || settled_ < flush_target_;
    });
    if (queue_.empty()) {
      if (stop_) return;
      continue;
    }
    std::vector<SpanData> batch;
    while (!queue_.empty() && batch.size() < options_.batch_spans_max) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();  // never hold the lock Export() takes while talking to the collector
    const bool ok = Send(EncodeOtlpJson(batch));
    lock.lock();
    ++stats_.requests;
    (ok ? stats_.exported : stats_.dropped_send_failed) += batch.size();
    settled_ += batch.size();
    if (!ok && stop_) {
      // Shutting down and the collector is failing: do not hold the process one timeout per batch.
      stats_.dropped_send_failed += queue_.size();
      settled_ += queue_.size();
      queue_.clear();
    }
    progress_.notify_all();
  }
}

bool OtlpExporter::Send(const std::string& body) {
  if (!options_.file_path.empty()) {
    std::FILE* f = std::fopen(options_.file_path.c_str(), "a");
    if (f == nullptr) return false;
    const bool ok = std::fwrite(body.data(), 1, body.size(), f) == body.size() &&
                    std::fputc('\n', f) != EOF;
    return std::fclose(f) == 0 && ok;
  }
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, options_.endpoint.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout.nanos() / 1000000));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.nanos() / 1000000));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, DiscardBody);
  const CURLcode rc = curl_easy_perform(c);
  long http = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
  curl_slist_free_all(headers);
  return rc == CURLE_OK && http >= 200 && http < 300;
}

}  // namespace faultline::observe
