// The process a real Prometheus scrapes in prometheus_scrape_test.sh: a Pipeline (retry + retry
// budget + circuit breaker) in front of a backend that always fails, so the breaker trips and the
// budget throttles retries. It makes `calls` calls, writes its own tally, then serves /metrics on
// a free loopback port until killed:
//   scrape_target DIR [calls]   writes DIR/port once serving, DIR/tally (key value lines)
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "faultline/adapters/system_clock.h"
#include "faultline/observe/prometheus.h"
#include "faultline/resilience/pipeline.h"

using namespace faultline;

namespace {
volatile std::sig_atomic_t stop = 0;
void OnSignal(int) { stop = 1; }

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "scrape_target: %s: %s\n", what, r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: scrape_target DIR [calls]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int calls = argc == 3 ? std::atoi(argv[2]) : 200;
  if (calls <= 0) {
    std::fprintf(stderr, "scrape_target: calls must be > 0\n");
    return 2;
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);

  Clock& clock = SystemClock::Default();
  auto metrics = Must(observe::PrometheusObserver::Create(), "exporter");
  RetryOptions ro;
  ro.attempts_max = 3;
  ro.backoff.delay_initial = Duration::Micros(50);
  ro.backoff.delay_max = Duration::Micros(200);
  const RetryPolicy retry = Must(RetryPolicy::Create(ro), "retry policy");
  TokenRetryBudgetOptions bo;
  bo.tokens_max = 20;  // retries stop once 10 failures drained half the tokens
  auto budget = Must(TokenRetryBudget::Create(bo), "budget");
  CircuitBreakerOptions cbo;
  cbo.window_calls = 20;
  cbo.min_calls = 10;
  cbo.open_duration_min = Duration::Millis(2);
  cbo.open_duration_max = Duration::Millis(10);
  cbo.half_open_permits = 2;
  auto breaker = Must(CircuitBreaker::Create(clock, cbo), "breaker");
  breaker->observe().Attach(metrics->Instance("backend"), "backend");
  PipelineStages stages;
  stages.retry = &retry;
  stages.budget = budget.get();
  stages.breaker = breaker.get();
  Pipeline pipeline(clock, stages);
  pipeline.observe().Attach(metrics.get(), "backend");

  // The process's own tally, kept without the observer.
  long backend_calls = 0, sleeps = 0, unavailable = 0, overloaded = 0;
  for (int i = 0; i < calls; ++i) {
    const Status s = pipeline.Execute(
        Deadline::FromRemaining(clock.Now(), Duration::Seconds(1)),
        [&](Duration) {
          ++backend_calls;
          return UnavailableError("backend down");
        },
        [&](Duration d) {
          ++sleeps;
          usleep(static_cast<useconds_t>(d.nanos() / 1000));
        });
    if (s.code() == StatusCode::kUnavailable) ++unavailable;
    if (s.code() == StatusCode::kResourceExhausted) ++overloaded;
    if (i % 20 == 19) usleep(3000);  // let the open breaker reach half-open now and then
  }
  {
    std::ofstream tally(dir + "/tally");
    tally << "calls " << calls << "\nbackend_calls " << backend_calls << "\nretries " << sleeps
          << "\nunavailable " << unavailable << "\noverloaded " << overloaded
          << "\nbreaker_rejected " << breaker->counters().rejected << "\nbreaker_opened "
          << breaker->counters().opened << "\n";
  }
  const Status served = metrics->Serve("127.0.0.1:0");
  if (!served.ok()) {
    std::fprintf(stderr, "scrape_target: %s\n", served.ToString().c_str());
    return 1;
  }
  {
    std::ofstream port(dir + "/port.tmp");
    port << metrics->port() << "\n";
  }
  std::rename((dir + "/port.tmp").c_str(), (dir + "/port").c_str());
  while (stop == 0) usleep(20000);
  return 0;
}
