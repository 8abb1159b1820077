// PrometheusObserver: events become the documented series with instance_name, the exposition is
// valid text format, per-thread cells add up, the instance cap holds, and /metrics is served on
// loopback.
#include "faultline/observe/prometheus.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

namespace faultline::observe {
namespace {

Event Ev(EventKind kind, std::string_view source, int64_t a = 0, int64_t b = 0,
         Duration d = Duration()) {
  return Event{kind, source, MonoTime(), a, b, d};
}

bool Contains(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(Prometheus, EventsBecomeNamedSeries) {
  auto m = std::move(PrometheusObserver::Create()).value();
  m->OnEvent(Ev(EventKind::kBreakerTransition, "payments", 0, 1));
  m->OnEvent(Ev(EventKind::kBreakerRejected, "payments"));
  m->OnEvent(Ev(EventKind::kRetryScheduled, "payments", 2, 0, Duration::Millis(250)));
  m->OnEvent(Ev(EventKind::kRetryBudgetDenied, "payments", 3));
  m->OnEvent(Ev(EventKind::kLeaseLost, "leader", 7, 0));
  m->OnEvent(Ev(EventKind::kCallCompleted, "payments", 14, 1, Duration::Millis(3)));
  m->OnEvent(Ev(EventKind::kCallCompleted, "payments", 0, 0));  // no latency measured
  const std::string text = m->Render();
  EXPECT_TRUE(Contains(text, "# TYPE faultline_breaker_transitions_total counter")) << text;
  EXPECT_TRUE(Contains(text, "faultline_breaker_transitions_total{instance_name=\"payments\","
                             "to=\"open\"} 1"))
      << text;
  EXPECT_TRUE(Contains(text, "faultline_breaker_state{instance_name=\"payments\"} 1")) << text;
  EXPECT_TRUE(Contains(text, "faultline_breaker_rejected_total{instance_name=\"payments\"} 1"));
  EXPECT_TRUE(Contains(text, "faultline_retry_attempts_total{instance_name=\"payments\"} 1"));
  EXPECT_TRUE(Contains(text, "faultline_retry_backoff_seconds_total{instance_name=\"payments\"} "
                             "0.25"));
  EXPECT_TRUE(Contains(text, "faultline_retry_budget_denied_total{instance_name=\"payments\"} 1"));
  EXPECT_TRUE(Contains(text, "faultline_lease_lost_total{instance_name=\"leader\","
                             "reason=\"expired\"} 1"));
  EXPECT_TRUE(Contains(text, "faultline_calls_total{instance_name=\"payments\","
                             "code=\"UNAVAILABLE\"} 1"))
      << text;
  EXPECT_TRUE(Contains(text, "faultline_calls_total{instance_name=\"payments\",code=\"OK\"} 1"));
  // The histogram has the one measured call, in the 5 ms bucket and every bucket above.
  EXPECT_TRUE(Contains(text, "# TYPE faultline_call_duration_seconds histogram"));
  EXPECT_TRUE(Contains(text, "faultline_call_duration_seconds_count{instance_name=\"payments\"} 1"));
  EXPECT_TRUE(Contains(text, "faultline_call_duration_seconds_bucket{instance_name=\"payments\","
                             "le=\"0.0025\"} 0"))
      << text;
  EXPECT_TRUE(Contains(text, "faultline_call_duration_seconds_bucket{instance_name=\"payments\","
                             "le=\"0.005\"} 1"));
  EXPECT_TRUE(Contains(text, "faultline_call_duration_seconds_bucket{instance_name=\"payments\","
                             "le=\"+Inf\"} 1"));
  // Counters at zero are not published.
  EXPECT_FALSE(Contains(text, "faultline_hedges_sent_total{"));
  EXPECT_EQ(m->Value("payments", kRetryAttempts), 1);
  EXPECT_EQ(m->Value("payments", kCallDurationSumNs), Duration::Millis(3).nanos());
}

TEST(Prometheus, DeadlineSingleFlightLeaseAndReshardSeries) {
  auto m = std::move(PrometheusObserver::Create()).value();
  m->OnEvent(Ev(EventKind::kDeadlineRefused, "rpc", 4, 0));
  m->OnEvent(Ev(EventKind::kDeadlineRefused, "rpc", 4, 1, Duration::Millis(200)));
  m->OnEvent(Ev(EventKind::kSingleFlightShared, "flight", 0));
  m->OnEvent(Ev(EventKind::kSingleFlightShared, "flight", 0));
  m->OnEvent(Ev(EventKind::kSingleFlightShared, "flight", 1));
  m->OnEvent(Ev(EventKind::kLeaseAcquired, "leader", 9, 0, Duration::Millis(40)));
  m->OnEvent(Ev(EventKind::kReshardProgress, "mover", 0, 20000));
  m->OnEvent(Ev(EventKind::kReshardProgress, "mover", 1, 1234));
  m->OnEvent(Ev(EventKind::kReshardProgress, "mover", 2, 0));
  const std::string text = m->Render();
  EXPECT_TRUE(Contains(text, "faultline_deadline_refused_total{instance_name=\"rpc\"} 2")) << text;
  EXPECT_TRUE(Contains(text, "# TYPE faultline_single_flight_shared_total counter"));
  EXPECT_TRUE(Contains(text, "faultline_single_flight_shared_total{instance_name=\"flight\","
                             "how=\"joined\"} 2"))
      << text;
  EXPECT_TRUE(Contains(text, "faultline_single_flight_shared_total{instance_name=\"flight\","
                             "how=\"cached\"} 1"));
  EXPECT_TRUE(Contains(text, "faultline_lease_acquire_seconds{instance_name=\"leader\"} 0.04"))
      << text;
  EXPECT_TRUE(Contains(text, "faultline_reshard_rows_copied_total{instance_name=\"mover\"} 21234"))
      << text;
  EXPECT_TRUE(Contains(text, "faultline_reshard_steps_total{instance_name=\"mover\"} 3"));
}

TEST(Prometheus, ThreadsAddUpBeyondTheirOwnShards) {
  auto m = std::move(PrometheusObserver::Create()).value();
  Observer* bound = m->Instance("hot");
  constexpr int kThreads = PrometheusObserver::kThreadShards + 4;  // some share the atomic cell
  constexpr int kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const Event e = Ev(EventKind::kBreakerRejected, "hot");
        if (t % 2 == 0) {
          bound->OnEvent(e);
        } else {
          m->OnEvent(e);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(m->Value("hot", kBreakerRejected), int64_t{kThreads} * kEach);
}

TEST(Prometheus, InstanceNamesAreCapped) {
  PrometheusOptions o;
  o.instances_max = 2;
  auto m = std::move(PrometheusObserver::Create(o)).value();
  for (const char* name : {"a", "b", "c", "d", "a"}) {
    m->OnEvent(Ev(EventKind::kHedgeSent, name, 1));
  }
  EXPECT_EQ(m->Value("a", kHedgesSent), 2);
  EXPECT_EQ(m->Value("b", kHedgesSent), 1);
  EXPECT_EQ(m->Value("c", kHedgesSent), 0);
  EXPECT_EQ(m->Value("_other", kHedgesSent), 2);
  EXPECT_TRUE(Contains(m->Render(), "faultline_hedges_sent_total{instance_name=\"_other\"} 2"));
  o.instances_max = 0;
  EXPECT_EQ(PrometheusObserver::Create(o).status().code(), StatusCode::kInvalidArgument);
}

// GET over a plain socket: the Exposer answers on the loopback port it reports.
std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n = 0;
      while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

TEST(Prometheus, ServesMetricsOnLoopback) {
  auto m = std::move(PrometheusObserver::Create()).value();
  EXPECT_EQ(m->port(), 0);
  ASSERT_TRUE(m->Serve("127.0.0.1:0").ok());
  EXPECT_EQ(m->Serve("127.0.0.1:0").code(), StatusCode::kFailedPrecondition);
  const int port = m->port();
  ASSERT_GT(port, 0);
  m->OnEvent(Ev(EventKind::kFencingRejected, "store", 3, 5));
  const std::string reply = HttpGet(port, "/metrics");
  EXPECT_TRUE(Contains(reply, "200 OK")) << reply;
  EXPECT_TRUE(Contains(reply, "faultline_fencing_rejected_total{instance_name=\"store\"} 1"))
      << reply;
  // A second exporter cannot bind the same port.
  auto other = std::move(PrometheusObserver::Create()).value();
  EXPECT_EQ(other->Serve("127.0.0.1:" + std::to_string(port)).code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace faultline::observe
