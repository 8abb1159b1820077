// What observing costs on the pipeline's success path (total timeout + retry + budget + breaker +
// bulkhead around an empty call, as in pipeline_bench.cc):
//   BM_PipelineNoObserver           no observer attached (compare with main's
//                                   BM_PipelineSuccessPath: target within 1 ns)
//   BM_PipelinePrometheus           every stage attached to a PrometheusObserver (Attach binds
//                                   the slot to the instance: no lookup per event); the pipeline
//                                   reports kCallCompleted with the breaker's latency: a
//                                   calls_total cell, a histogram bucket and its sum
//   BM_PipelinePrometheusBound      the same attached through PrometheusObserver::Instance
// Target: prometheus <= 10 ns over none. Each with ManualClock (/manual) and steady_clock
// (/steady); single thread and two threads. Plus the bare costs: a detached ObserverSlot::Emit
// and one event into a PrometheusObserver, bound (through a slot) and by name (OnEvent called
// on the exporter itself: a scan of the known names).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>

#include "bench/bench_clocks.h"
#include "bench/pipeline_parts.h"
#include "faultline/observe/prometheus.h"
#include "faultline/resilience/pipeline.h"

namespace faultline {
namespace {

using bench::ClockKind;

enum class Attach { kNone, kPrometheus, kBound };

struct Parts : bench::PipelineParts {
  Parts(Clock& c, Attach attach) : PipelineParts(c) {
    metrics = std::move(observe::PrometheusObserver::Create()).value();
    pipeline = std::make_unique<Pipeline>(Make());
    if (attach == Attach::kNone) return;
    Observer* o_ = attach == Attach::kBound ? metrics->Instance("backend")
                                             : static_cast<Observer*>(metrics.get());
    pipeline->observe().Attach(o_, "backend");
    breaker->observe().Attach(o_, "backend");
    bulkhead->observe().Attach(o_, "backend");
  }
  std::unique_ptr<observe::PrometheusObserver> metrics;
  std::unique_ptr<Pipeline> pipeline;
};

template <Attach kAttach>
void BM_ObservedPipeline(benchmark::State& state, ClockKind kind) {
  Parts& parts = bench::PerClock<Parts>(kind, [](Clock& c) { return new Parts(c, kAttach); });
  Pipeline& p = *parts.pipeline;
  for (auto _ : state) {
    Status s = p.ExecuteWithTimeout(Duration::Seconds(1), [](Duration) { return Status::Ok(); },
                                    [](Duration) {});
    benchmark::DoNotOptimize(s);
  }
  if (parts.breaker->state() != BreakerState::kClosed) state.SkipWithError("breaker left Closed");
  if (kAttach != Attach::kNone &&
      parts.metrics->Value("backend", observe::kCallsFirst) < state.iterations()) {
    state.SkipWithError("calls were not counted");
  }
}

void BM_PipelineNoObserver(benchmark::State& state, ClockKind kind) {
  BM_ObservedPipeline<Attach::kNone>(state, kind);
}
void BM_PipelinePrometheus(benchmark::State& state, ClockKind kind) {
  BM_ObservedPipeline<Attach::kPrometheus>(state, kind);
}
void BM_PipelinePrometheusBound(benchmark::State& state, ClockKind kind) {
  BM_ObservedPipeline<Attach::kBound>(state, kind);
}

#define FL_OBSERVED(fn)                                                  \
  BENCHMARK_CAPTURE(fn, manual, ClockKind::kManual)                      \
      ->Threads(1)                                                       \
      ->Threads(2)                                                       \
      ->UseRealTime();                                                   \
  BENCHMARK_CAPTURE(fn, steady, ClockKind::kSteady)->Threads(1)->Threads(2)->UseRealTime()

FL_OBSERVED(BM_PipelineNoObserver);
FL_OBSERVED(BM_PipelinePrometheus);
FL_OBSERVED(BM_PipelinePrometheusBound);

void BM_DetachedEmit(benchmark::State& state) {
  ObserverSlot slot;
  benchmark::DoNotOptimize(&slot);
  for (auto _ : state) {
    slot.Emit(EventKind::kRetryScheduled, MonoTime(), 2, 0, Duration::Millis(1));
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_DetachedEmit);

void BM_PrometheusOnEvent(benchmark::State& state) {
  static observe::PrometheusObserver* metrics =
      std::move(observe::PrometheusObserver::Create()).value().release();
  ObserverSlot slot;
  slot.Attach(metrics, "backend");
  for (auto _ : state) {
    slot.Emit(EventKind::kCallCompleted, MonoTime(), 0, 1, Duration::Micros(3));
  }
}
BENCHMARK(BM_PrometheusOnEvent)->Threads(1)->Threads(2)->UseRealTime();

void BM_PrometheusOnEventByName(benchmark::State& state) {
  static observe::PrometheusObserver* metrics = [] {
    observe::PrometheusObserver* m =
        std::move(observe::PrometheusObserver::Create()).value().release();
    for (const char* name : {"orders", "payments", "ledger"}) m->Instance(name);
    return m;
  }();
  const Event e{EventKind::kCallCompleted, "backend", MonoTime(), 0, 1, Duration::Micros(3)};
  for (auto _ : state) metrics->OnEvent(e);
}
BENCHMARK(BM_PrometheusOnEventByName);

}  // namespace
}  // namespace faultline
BENCHMARK_MAIN();
