// The pipeline's success path (total timeout + retry + budget + breaker + bulkhead around an empty
// call, as in pipeline_bench.cc) with tracing off and on, side by side, per clock (/manual,
// /steady, /coarse; single-threaded: a Tracer belongs to one node's executor):
//   untraced         the pipeline call alone (the reference);
//   traced/discard   + a recorded call span and one attempt span (with the attributes TracedRetry
//                    records: attempt number, attempt timeout, deadline remaining, backoff), ended
//                    into a sink that drops them: the cost of recording;
//   traced/otlp      the same spans handed to an OtlpExporter (bounded queue, exporter thread
//                    writing OTLP JSON to /dev/null): what a call path pays with export on.
//                    `dropped` counts spans the queue refused while the thread was busy.
// Also the trace context's parse and format, per header.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>

#include "bench/bench_clocks.h"
#include "bench/pipeline_parts.h"
#include "faultline/env/trace_context.h"
#include "faultline/observe/otlp.h"
#include "faultline/observe/tracer.h"
#include "faultline/resilience/pipeline.h"

namespace faultline {
namespace {

using bench::ClockKind;
using bench::PipelineParts;


class DiscardSink final : public observe::SpanSink {
 public:
  void Export(observe::SpanData span) noexcept override { benchmark::DoNotOptimize(span); }
};

enum class Mode { kUntraced, kDiscard, kOtlp };

void BM_PipelineTracing(benchmark::State& state, ClockKind kind, Mode mode) {
  PipelineParts& parts = bench::PerClock<PipelineParts>(kind, [](Clock& c) { return new PipelineParts(c); });
  Pipeline p = parts.Make();
  Rng rng(42);
  DiscardSink discard;
  std::unique_ptr<observe::OtlpExporter> otlp;
  if (mode == Mode::kOtlp) {
    observe::OtlpExporterOptions o;
    o.file_path = "/dev/null";
    otlp = std::move(observe::OtlpExporter::Create(o)).value();
  }
  observe::SpanSink* sink = mode == Mode::kOtlp ? static_cast<observe::SpanSink*>(otlp.get())
                                                : static_cast<observe::SpanSink*>(&discard);
  observe::Tracer tracer(parts.clock, rng, sink, {.service_name = "bench"});
  const TraceContext none;
  for (auto _ : state) {
    if (mode == Mode::kUntraced) {
      Status s = p.ExecuteWithTimeout(Duration::Seconds(1), [](Duration) { return Status::Ok(); },
                                      [](Duration) {});
      benchmark::DoNotOptimize(s);
      continue;
    }
    observe::Tracer::Span call = tracer.StartSpan("call", none);
    Status s = p.ExecuteWithTimeout(
        Duration::Seconds(1),
        [&](Duration attempt_timeout) {
          observe::Tracer::Span a = tracer.StartSpan("retry.attempt", call.context());
          a.SetInt("retry.attempt", 1)
              .SetInt("retry.attempt_timeout_ms", attempt_timeout.nanos() / 1'000'000)
              .SetInt("deadline.remaining_ms", attempt_timeout.nanos() / 1'000'000)
              .SetInt("retry.backoff_ms", 0);
          a.End(Status::Ok());
          return Status::Ok();
        },
        [](Duration) {});
    call.End(s);
  }
  if (otlp) {
    state.counters["dropped"] = benchmark::Counter(
        static_cast<double>(otlp->stats().dropped_queue_full) /
        static_cast<double>(2 * state.iterations()));
  }
}

#define FL_TRACE_BENCH(clock_name, clock_kind)                                                 \
  BENCHMARK_CAPTURE(BM_PipelineTracing, untraced_##clock_name, clock_kind, Mode::kUntraced)    \
      ->UseRealTime();                                                                         \
  BENCHMARK_CAPTURE(BM_PipelineTracing, traced_discard_##clock_name, clock_kind, Mode::kDiscard) \
      ->UseRealTime();                                                                         \
  BENCHMARK_CAPTURE(BM_PipelineTracing, traced_otlp_##clock_name, clock_kind, Mode::kOtlp)     \
      ->UseRealTime()

FL_TRACE_BENCH(manual, ClockKind::kManual);
FL_TRACE_BENCH(steady, ClockKind::kSteady);
FL_TRACE_BENCH(coarse, ClockKind::kCoarse);

void BM_ParseTraceparent(benchmark::State& state) {
  const std::string header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  for (auto _ : state) benchmark::DoNotOptimize(ExtractTraceContext(header, ""));
}
BENCHMARK(BM_ParseTraceparent);

void BM_FormatTraceparent(benchmark::State& state) {
  const TraceContext c =
      ExtractTraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "");
  for (auto _ : state) benchmark::DoNotOptimize(FormatTraceparent(c.trace_id, c.span_id, c.flags));
}
BENCHMARK(BM_FormatTraceparent);

}  // namespace
}  // namespace faultline
namespace faultline {
namespace {

// The exporter thread's cost: OTLP JSON for a batch of 512 recorded spans (like the traced call's
// attempt span), reported per span.
void BM_EncodeOtlpJsonPerSpan(benchmark::State& state) {
  ManualClock clock;
  Rng rng(1);
  observe::InMemorySpanSink sink;
  observe::Tracer tracer(clock, rng, &sink, {.service_name = "bench"});
  for (int i = 0; i < 512; ++i) {
    observe::Tracer::Span a = tracer.StartSpan("retry.attempt", {});
    a.SetInt("retry.attempt", 1).SetInt("retry.attempt_timeout_ms", 1000);
    a.SetInt("deadline.remaining_ms", 1000).SetInt("retry.backoff_ms", 0);
    a.End(Status::Ok());
  }
  const std::vector<observe::SpanData> spans = sink.spans();
  for (auto _ : state) benchmark::DoNotOptimize(observe::EncodeOtlpJson(spans));
  state.SetItemsProcessed(state.iterations() * 512);
}
BENCHMARK(BM_EncodeOtlpJsonPerSpan);

}  // namespace
}  // namespace faultline

BENCHMARK_MAIN();
