// The broker conformance suite (tests/outbox/broker_conformance.h) on NatsBroker, against one
// nats-server started for this test binary (a child process, see nats_test_server.h; a missing
// nats-server fails every test). Its restart hook stops the server with SIGTERM and starts it
// again on the same store directory and port.
#include <gtest/gtest.h>

#include <memory>
#include <mutex>

#include "faultline/adapters/nats_broker.h"
#include "tests/integration/nats_test_server.h"
#include "tests/outbox/broker_conformance.h"

namespace faultline::outbox::testing {
namespace {

// Started on first use, stopped when the process exits (static destruction).
Result<faultline::testing::NatsTestServer*> SharedServer() {
  static std::mutex mu;
  static std::unique_ptr<faultline::testing::NatsTestServer> server;
  static Status failure;
  std::lock_guard<std::mutex> lock(mu);
  if (server == nullptr && failure.ok()) {
    auto started = faultline::testing::NatsTestServer::Start();
    if (started.ok()) {
      server = std::move(started).value();
    } else {
      failure = started.status();
    }
  }
  if (!failure.ok()) return failure;
  return server.get();
}

BrokerConformanceTarget NatsTarget() {
  BrokerConformanceTarget target;
  target.name = "NatsJetStream";
  target.ack_wait = Duration::Millis(500);
  target.subject_root = "conformance.";
  target.payload_bytes_max = 64 * 1024;
  target.open = []() -> Result<std::unique_ptr<Broker>> {
    FL_ASSIGN_OR_RETURN(faultline::testing::NatsTestServer * server, SharedServer());
    NatsBrokerOptions options;
    options.url = server->url();
    options.ack_wait = Duration::Millis(500);
    options.payload_bytes_max = 64 * 1024;
    FL_ASSIGN_OR_RETURN(std::unique_ptr<NatsBroker> broker, NatsBroker::Create(options));
    return std::unique_ptr<Broker>(std::move(broker));
  };
  target.restart = []() -> Status {
    FL_ASSIGN_OR_RETURN(faultline::testing::NatsTestServer * server, SharedServer());
    FL_RETURN_IF_ERROR(server->Stop());
    return server->Restart();
  };
  return target;
}

INSTANTIATE_TEST_SUITE_P(Nats, BrokerConformance, ::testing::Values(NatsTarget()),
                         BrokerTargetName);

}  // namespace
}  // namespace faultline::outbox::testing
