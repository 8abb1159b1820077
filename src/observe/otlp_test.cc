// OTLP/HTTP JSON export: the encoding rules, delivery to a loopback receiver, to a file, and the
// promise that a hung, refusing or failing collector never blocks Export() (drops are counted).
#include "faultline/observe/otlp.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <thread>

#include "src/observe/otlp_test_util.h"

namespace faultline::observe {
namespace {

using testing::HttpReceiver;
using testing::OtlpJsonProblems;

SpanData SampleSpan(int i) {
  SpanData s;
  s.service_name = i % 2 ? "svc-b" : "svc-a";
  s.trace_id = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
  s.span_id = {0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, static_cast<uint8_t>(i + 1)};
  if (i > 0) s.parent_span_id = {0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0x01};
  s.name = "span-" + std::to_string(i);
  s.kind = i % 2 ? SpanKind::kServer : SpanKind::kClient;
  s.start_unix_nano = 1'700'000'000'123'456'789 + i;
  s.end_unix_nano = s.start_unix_nano + 1000;
  s.attributes = {StringAttr("s", "x\"y"), IntAttr("i", -42), DoubleAttr("d", 0.5),
                  BoolAttr("b", true), IntAttr("big", INT64_MAX)};
  s.events = {SpanEvent{"ev", s.start_unix_nano + 5, {IntAttr("n", 1)}}};
  s.status_code = i % 2 ? SpanStatusCode::kError : SpanStatusCode::kOk;
  if (i % 2) s.status_message = "UNAVAILABLE: down";
  return s;
}

TEST(OtlpJsonTest, EncodingFollowsTheOtlpJsonRules) {
  const std::string text = EncodeOtlpJson({SampleSpan(0), SampleSpan(1), SampleSpan(2)});
  const auto doc = nlohmann::json::parse(text);
  EXPECT_TRUE(OtlpJsonProblems(doc).empty()) << OtlpJsonProblems(doc)[0];
  ASSERT_EQ(doc["resourceSpans"].size(), 2u);  // one per service.name
  const auto& a = doc["resourceSpans"][0];
  EXPECT_EQ(a["resource"]["attributes"][0]["key"], "service.name");
  EXPECT_EQ(a["resource"]["attributes"][0]["value"]["stringValue"], "svc-a");
  const auto& root = a["scopeSpans"][0]["spans"][0];
  EXPECT_EQ(root["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");  // hex, not base64
  EXPECT_EQ(root["spanId"], "00f067aa0ba90201");
  EXPECT_FALSE(root.contains("parentSpanId"));  // a root span has none
  EXPECT_EQ(root["kind"], 3);                   // SPAN_KIND_CLIENT as an integer
  EXPECT_EQ(root["startTimeUnixNano"], "1700000000123456789");  // decimal string, exact
  EXPECT_EQ(root["endTimeUnixNano"], "1700000000123457789");
  EXPECT_EQ(root["attributes"][1]["value"]["intValue"], "-42");
  EXPECT_EQ(root["attributes"][4]["value"]["intValue"], "9223372036854775807");
  EXPECT_EQ(root["attributes"][2]["value"]["doubleValue"], 0.5);
  EXPECT_EQ(root["attributes"][3]["value"]["boolValue"], true);
  EXPECT_EQ(root["attributes"][0]["value"]["stringValue"], "x\"y");
  EXPECT_EQ(root["status"]["code"], 1);
  EXPECT_EQ(root["events"][0]["timeUnixNano"], "1700000000123456794");
  const auto& child = doc["resourceSpans"][1]["scopeSpans"][0]["spans"][0];
  EXPECT_EQ(child["parentSpanId"], "00f067aa0ba90201");
  EXPECT_EQ(child["status"]["code"], 2);
  EXPECT_EQ(child["status"]["message"], "UNAVAILABLE: down");
}

TEST(OtlpJsonTest, StringsAreEscapedAndNumbersExact) {
  SpanData s = SampleSpan(0);
  const std::string tricky = std::string("q\"b\\n\nt\tc\x01\x1f ") + "\xc3\xa9";
  s.name = tricky;
  s.status_message = tricky;
  s.attributes = {StringAttr(tricky, tricky), DoubleAttr("third", 1.0 / 3.0),
                  DoubleAttr("nan", std::nan("")), DoubleAttr("inf", -HUGE_VAL),
                  IntAttr("min", INT64_MIN)};
  const auto doc = nlohmann::json::parse(EncodeOtlpJson({s}));
  EXPECT_TRUE(OtlpJsonProblems(doc).empty()) << OtlpJsonProblems(doc)[0];
  const auto& span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
  EXPECT_EQ(span["name"], tricky);
  EXPECT_EQ(span["status"]["message"], tricky);
  EXPECT_EQ(span["attributes"][0]["key"], tricky);
  EXPECT_EQ(span["attributes"][0]["value"]["stringValue"], tricky);
  EXPECT_EQ(span["attributes"][1]["value"]["doubleValue"].get<double>(), 1.0 / 3.0);
  EXPECT_EQ(span["attributes"][2]["value"]["doubleValue"], "NaN");
  EXPECT_EQ(span["attributes"][3]["value"]["doubleValue"], "-Infinity");
  EXPECT_EQ(span["attributes"][4]["value"]["intValue"], "-9223372036854775808");
}

TEST(OtlpJsonTest, TheCheckerCatchesViolations) {
  // The checker the receiver tests rely on must fail on each broken rule.
  auto doc = nlohmann::json::parse(EncodeOtlpJson({SampleSpan(1)}));
  auto& span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
  for (auto mutate : std::vector<std::function<void(nlohmann::json&)>>{
           [](auto& s) { s["traceId"] = "S/kvNXezTaajzpKdDg5HNg=="; },  // base64
           [](auto& s) { s["spanId"] = "00F067AA0BA90202"; },
           [](auto& s) { s["startTimeUnixNano"] = 1700000000123456789LL; },
           [](auto& s) { s["kind"] = "SPAN_KIND_SERVER"; },
           [](auto& s) { s["attributes"][1]["value"]["intValue"] = -42; },
           [](auto& s) { s["start_time_unix_nano"] = "1"; },
           [](auto& s) { s["status"] = nlohmann::json::object(); },
       }) {
    auto copy = span;
    mutate(copy);
    auto d = doc;
    d["resourceSpans"][0]["scopeSpans"][0]["spans"][0] = copy;
    EXPECT_FALSE(OtlpJsonProblems(d).empty()) << copy.dump();
  }
}

OtlpExporterOptions ToUrl(const std::string& url) {
  OtlpExporterOptions o;
  o.endpoint = url;
  o.request_timeout = Duration::Millis(300);
  o.connect_timeout = Duration::Millis(200);
  o.flush_interval = Duration::Millis(20);
  return o;
}

TEST(OtlpExporterTest, PostsToTheCollector) {
  HttpReceiver receiver;
  auto exporter = OtlpExporter::Create(ToUrl(receiver.url())).value();
  for (int i = 0; i < 5; ++i) exporter->Export(SampleSpan(i));
  ASSERT_TRUE(exporter->Flush(Duration::Seconds(5)));
  EXPECT_EQ(exporter->stats().exported, 5u);
  const auto requests = receiver.requests();
  ASSERT_FALSE(requests.empty());
  size_t spans = 0;
  for (const auto& r : requests) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/v1/traces");
    EXPECT_EQ(r.content_type, "application/json");
    const auto doc = nlohmann::json::parse(r.body);
    EXPECT_TRUE(OtlpJsonProblems(doc).empty());
    spans += testing::FlattenOtlp(doc).size();
  }
  EXPECT_EQ(spans, 5u);
}

// Export() is called from every node's thread at once (run under TSan by ./run sanitize).
TEST(OtlpExporterTest, ConcurrentExportFromManyThreadsDeliversEverySpan) {
  HttpReceiver receiver;
  OtlpExporterOptions o = ToUrl(receiver.url());
  o.queue_spans_max = 4 * 250;
  auto exporter = OtlpExporter::Create(o).value();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&exporter] {
      for (int i = 0; i < 250; ++i) exporter->Export(SampleSpan(i % 3));
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(exporter->Flush(Duration::Seconds(10)));
  EXPECT_EQ(exporter->stats().exported, 1000u);
  size_t spans = 0;
  for (const auto& r : receiver.requests()) spans += testing::FlattenOtlp(nlohmann::json::parse(r.body)).size();
  EXPECT_EQ(spans, 1000u);
}

TEST(OtlpExporterTest, WritesOneRequestPerLineToAFile) {
  char path[] = "/tmp/faultline-otlp-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    OtlpExporterOptions o;
    o.file_path = path;
    o.batch_spans_max = 2;
    auto exporter = OtlpExporter::Create(o).value();
    for (int i = 0; i < 5; ++i) exporter->Export(SampleSpan(i));
    ASSERT_TRUE(exporter->Flush(Duration::Seconds(5)));
    EXPECT_EQ(exporter->stats().exported, 5u);
  }
  std::ifstream in(path);
  std::string line;
  size_t lines = 0;
  size_t spans = 0;
  while (std::getline(in, line)) {
    ++lines;
    const auto doc = nlohmann::json::parse(line);
    EXPECT_TRUE(OtlpJsonProblems(doc).empty());
    spans += testing::FlattenOtlp(doc).size();
  }
  EXPECT_EQ(spans, 5u);
  EXPECT_GE(lines, 3u);  // batches of at most 2
  std::remove(path);
}

TEST(OtlpExporterTest, OptionsFromTheOpenTelemetryEnvironment) {
  auto env = [](std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const char* name) -> const char* {
      static thread_local std::string value;
      auto it = vars.find(name);
      if (it == vars.end()) return nullptr;
      value = it->second;
      return value.c_str();
    };
  };
  EXPECT_EQ(OtlpExporterOptionsFromEnv(env({})).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(OtlpExporterOptionsFromEnv(env({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"}}))
                ->endpoint,
            "http://c:4318/v1/traces");
  EXPECT_EQ(OtlpExporterOptionsFromEnv(env({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"},
                                            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t/x"}}))
                ->endpoint,
            "http://t/x");
  EXPECT_EQ(OtlpExporterOptionsFromEnv(env({{"FAULTLINE_OTLP_FILE", "/tmp/t.json"}}))->file_path,
            "/tmp/t.json");
  EXPECT_EQ(OtlpExporterOptionsFromEnv(env({{"OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318"}}))
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(OtlpExporterTest, BadOptionsAreRefused) {
  EXPECT_EQ(OtlpExporter::Create({}).status().code(), StatusCode::kInvalidArgument);
  OtlpExporterOptions both = ToUrl("http://127.0.0.1:1/v1/traces");
  both.file_path = "/tmp/x";
  EXPECT_EQ(OtlpExporter::Create(both).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OtlpExporter::Create(ToUrl("ftp://x")).status().code(), StatusCode::kInvalidArgument);
  OtlpExporterOptions file;
  file.file_path = "/nonexistent-dir/trace.json";
  EXPECT_EQ(OtlpExporter::Create(file).status().code(), StatusCode::kUnavailable);
}

// Export() calls against a collector that never answers: each must return at once (no I/O on the
// caller's thread), the queue bound holds, and the overflow is counted.
int64_t WorstExportNanos(OtlpExporter& exporter, int n) {
  int64_t worst = 0;
  for (int i = 0; i < n; ++i) {
    SpanData s = SampleSpan(i % 3);
    const auto t0 = std::chrono::steady_clock::now();
    exporter.Export(std::move(s));
    const auto t1 = std::chrono::steady_clock::now();
    worst = std::max<int64_t>(worst, std::chrono::nanoseconds(t1 - t0).count());
  }
  return worst;
}

TEST(OtlpExporterTest, AHungCollectorNeverBlocksExportAndDropsAreCounted) {
  HttpReceiver hung(HttpReceiver::Mode::kHang);
  OtlpExporterOptions o = ToUrl(hung.url());
  o.queue_spans_max = 100;
  o.batch_spans_max = 10;
  o.request_timeout = Duration::Seconds(2);
  auto exporter = OtlpExporter::Create(o).value();
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t worst = WorstExportNanos(*exporter, 5000);
  const auto took = std::chrono::steady_clock::now() - t0;
  // 5000 exports while the collector holds the first request for 2 s: far less than one timeout.
  EXPECT_LT(took, std::chrono::milliseconds(500));
  EXPECT_LT(worst, 50'000'000) << "one Export() took " << worst << " ns";
  const OtlpExporterStats s = exporter->stats();
  EXPECT_GE(s.dropped_queue_full, 5000u - 100u - 10u);  // queue bound + one in-flight batch
  EXPECT_EQ(s.exported, 0u);
  // The exporter did reach it (its first request is held open by the receiver).
  for (int i = 0; i < 150 && hung.requests().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(hung.requests().size(), 1u);
}

TEST(OtlpExporterTest, ARefusingCollectorCountsFailedSendsAndNeverBlocks) {
  uint16_t port = 0;
  {
    HttpReceiver closed;  // a port that was free a moment ago, then closed: connections refused
    port = closed.port();
  }
  auto exporter =
      OtlpExporter::Create(ToUrl("http://127.0.0.1:" + std::to_string(port) + "/v1/traces"))
          .value();
  const int64_t worst = WorstExportNanos(*exporter, 200);
  EXPECT_LT(worst, 50'000'000);
  ASSERT_TRUE(exporter->Flush(Duration::Seconds(10)));
  const OtlpExporterStats s = exporter->stats();
  EXPECT_EQ(s.exported, 0u);
  EXPECT_EQ(s.dropped_send_failed + s.dropped_queue_full, 200u);
  EXPECT_GT(s.dropped_send_failed, 0u);
}

TEST(OtlpExporterTest, ACollectorAnswering500CountsTheBatchAsDropped) {
  HttpReceiver failing(HttpReceiver::Mode::kError);
  auto exporter = OtlpExporter::Create(ToUrl(failing.url())).value();
  for (int i = 0; i < 3; ++i) exporter->Export(SampleSpan(i));
  ASSERT_TRUE(exporter->Flush(Duration::Seconds(5)));
  EXPECT_EQ(exporter->stats().dropped_send_failed, 3u);
  EXPECT_EQ(exporter->stats().exported, 0u);
}

}  // namespace
}  // namespace faultline::observe
