// The broker conformance suite on SqliteQueue, and the queue's own behaviour: bad options and URIs,
// several processes' worth of clients on one file.
#include "faultline/outbox/sqlite_queue.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>

#include "faultline/outbox/open_broker.h"
#include "faultline/outbox/outbox.h"
#include "faultline/outbox/relay.h"
#include "tests/integration/idempotency_real_util.h"
#include "tests/outbox/broker_conformance.h"

namespace faultline::outbox::testing {
namespace {

const std::string& QueueDir() {
  static const std::string dir = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fl-queue-XXXXXX").string();
    FL_ASSERT(mkdtemp(tmpl.data()) != nullptr);
    std::atexit([] { std::filesystem::remove_all(QueueDir()); });
    return tmpl;
  }();
  return dir;
}

BrokerConformanceTarget SqliteQueueTarget() {
  BrokerConformanceTarget target;
  target.name = "SqliteQueue";
  target.ack_wait = Duration::Millis(400);
  target.payload_bytes_max = 4096;
  target.open = []() -> Result<std::unique_ptr<Broker>> {
    SqliteQueueOptions options;
    options.path = QueueDir() + "/queue.db";
    options.synchronous = SqliteSynchronous::kNormal;
    options.ack_wait = Duration::Millis(400);
    options.payload_bytes_max = 4096;
    FL_ASSIGN_OR_RETURN(std::unique_ptr<SqliteQueue> queue, SqliteQueue::Open(options));
    return std::unique_ptr<Broker>(std::move(queue));
  };
  return target;
}

INSTANTIATE_TEST_SUITE_P(Embedded, BrokerConformance, ::testing::Values(SqliteQueueTarget()),
                         BrokerTargetName);

TEST(SqliteQueueTest, BadOptionsAndUrisAreRefused) {
  EXPECT_EQ(SqliteQueue::Open({}).status().code(), StatusCode::kInvalidArgument);
  SqliteQueueOptions options;
  options.path = QueueDir() + "/x.db";
  options.ack_wait = Duration::Zero();
  EXPECT_EQ(SqliteQueue::Open(options).status().code(), StatusCode::kInvalidArgument);
  options.ack_wait = Duration::Seconds(1);
  options.path = "/nonexistent-dir/q.db";
  EXPECT_EQ(SqliteQueue::Open(options).status().code(), StatusCode::kUnavailable);
  for (const char* uri : {"", "sqlite:", "kafka://x", "sqlite:/tmp/q.db?fsync=1",
                          "sqlite:/tmp/q.db?ack_wait_ms=abc", "sqlite:/tmp/q.db?ack_wait_ms=0"}) {
    const Status status = OpenBroker(uri).status();
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << uri;
    EXPECT_EQ(status.message().find('\n'), std::string_view::npos);
  }
  EXPECT_EQ(OpenBroker("nats://127.0.0.1:4222").status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(OpenBroker("sqlite:" + QueueDir() + "/u.db?synchronous=normal&ack_wait_ms=50").ok());
  auto queue = OpenBroker("sqlite:" + QueueDir() + "/u.db");
  ASSERT_TRUE(queue.ok());
  EXPECT_EQ((*queue)->NewConsumer("", "").status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE((*queue)->NewConsumer("c", "orders.").ok());
  EXPECT_EQ((*queue)->NewConsumer("c", "payments.").status().code(),
            StatusCode::kFailedPrecondition);
}

TEST(SqliteQueueTest, RegisteredSchemesAreDispatched) {
  static int opened = 0;
  RegisterBrokerScheme("test://", [](std::string_view uri) -> Result<std::unique_ptr<Broker>> {
    ++opened;
    EXPECT_EQ(uri, "test://here");
    FL_ASSIGN_OR_RETURN(std::unique_ptr<SqliteQueue> queue,
                        SqliteQueue::Open(SqliteQueueOptions{.path = QueueDir() + "/scheme.db"}));
    return std::unique_ptr<Broker>(std::move(queue));
  });
  EXPECT_TRUE(OpenBroker("test://here").ok());
  EXPECT_EQ(opened, 1);
}

// A queue that cannot take the publish (another process holds its write lock past the busy
// timeout): RunOnce returns kUnavailable and the events stay in the outbox; once the lock is gone
// the same events are published, in order, once.
TEST(SqliteQueueTest, RelayKeepsEventsWhileTheQueueRefuses) {
  faultline::testing::TempDir dir;
  auto store = SqliteStore::Open({.path = dir.path() + "/app.db"}).value();
  auto outbox = Outbox::Create(*store).value();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(outbox->AppendOne(Message{"e" + std::to_string(i), "s.x", "k", "p"}).ok());
  }
  SqliteQueueOptions options{.path = dir.path() + "/queue.db", .busy_timeout_ms = 50};
  auto queue = SqliteQueue::Open(options).value();
  auto publisher = queue->NewPublisher().value();
  auto relay = Relay::Create(*store).value();

  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open(options.path.c_str(), &holder), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const Status refused = relay->RunOnce(*publisher).status();
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_EQ(relay->Poll(10).value().size(), 5u);  // kept
  sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(holder);

  EXPECT_EQ(relay->RunOnce(*publisher).value(), 5u);
  EXPECT_EQ(relay->RunOnce(*publisher).value(), 0u);
  auto consumer = queue->NewConsumer("c", "s.").value();
  std::vector<Delivery> got = consumer->Fetch(10, Duration::Millis(100)).value();
  ASSERT_EQ(got.size(), 5u);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(got[static_cast<size_t>(i)].message.id, "e" + std::to_string(i));
}

}  // namespace
}  // namespace faultline::outbox::testing
