// NatsBroker against a real nats-server (a child of this test, see nats_test_server.h): the
// JetStream specifics the broker conformance suite cannot express — de-duplication by Nats-Msg-Id
// across a kill -9 and restart, durable consumers resuming after a restart, a broker that refuses
// or disappears returning a Status and working again on the next call — and the NATS mapping's
// input checks. nats-server missing is a failure, never a skip.
#include "faultline/adapters/nats_broker.h"

#include <gtest/gtest.h>
#include <nats/nats.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "faultline/adapters/sqlite_store.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/idempotency/inbox.h"
#include "faultline/outbox/open_broker.h"
#include "faultline/outbox/outbox.h"
#include "faultline/outbox/relay.h"
#include "tests/integration/nats_test_server.h"

namespace faultline {
namespace {

using outbox::Delivery;
using outbox::Message;
using testing::NatsTestServer;

std::unique_ptr<NatsTestServer> StartServer() {
  auto server = NatsTestServer::Start();
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

NatsBrokerOptions Options(const NatsTestServer& server) {
  NatsBrokerOptions options;
  options.url = server.url();
  options.ack_wait = Duration::Seconds(1);
  options.publish_ack_timeout = Duration::Seconds(2);
  options.request_timeout = Duration::Seconds(2);
  return options;
}

std::unique_ptr<NatsBroker> MakeBroker(const NatsBrokerOptions& options) {
  auto broker = NatsBroker::Create(options);
  EXPECT_TRUE(broker.ok()) << broker.status().ToString();
  return broker.ok() ? std::move(broker).value() : nullptr;
}

std::vector<Message> Messages(int from, int to, std::string_view subject = "orders.created") {
  std::vector<Message> out;
  for (int i = from; i < to; ++i) {
    out.push_back(Message{"evt-" + std::to_string(i), std::string(subject),
                          "key-" + std::to_string(i % 3), "payload " + std::to_string(i)});
  }
  return out;
}

// Fetches until `want` deliveries arrived or `wait` passed; acks each when `ack`.
std::vector<Delivery> Drain(outbox::Consumer& consumer, size_t want, bool ack,
                            std::chrono::milliseconds wait = std::chrono::seconds(10)) {
  std::vector<Delivery> got;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
    auto batch = consumer.Fetch(want - got.size(), Duration::Millis(200));
    if (!batch.ok()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    for (Delivery& d : batch.value()) {
      if (ack) {
        EXPECT_TRUE(consumer.Ack(d).ok());
      }
      got.push_back(std::move(d));
    }
  }
  return got;
}

// Nothing more arrives within `wait`.
bool Quiet(outbox::Consumer& consumer, Duration wait) {
  auto batch = consumer.Fetch(100, wait);
  return batch.ok() && batch.value().empty();
}

TEST(NatsBrokerTest, PublishFetchAckCarriesEveryFieldAndBinaryBytes) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto broker = MakeBroker(Options(*server));
  ASSERT_NE(broker, nullptr);
  auto publisher = broker->NewPublisher();
  ASSERT_TRUE(publisher.ok()) << publisher.status().ToString();
  // Ids and keys with bytes a header line cannot carry raw; a payload with NULs.
  std::vector<Message> batch = {
      Message{"id with spaces\r\n%41", "a.b", std::string("k\0\xff", 3), std::string("p\0q", 3)},
      Message{"plain", "a.c", "", ""},
  };
  ASSERT_TRUE(publisher.value()->Publish(batch).ok());
  auto consumer = broker->NewConsumer("c1", "");
  ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
  std::vector<Delivery> got = Drain(*consumer.value(), 2, /*ack=*/true);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].message, batch[0]);
  EXPECT_EQ(got[1].message, batch[1]);
  EXPECT_LT(got[0].stream_seq, got[1].stream_seq);
  EXPECT_EQ(got[0].delivery, 1u);
  EXPECT_TRUE(Quiet(*consumer.value(), Duration::Millis(1500)))  // acked: not redelivered
      << "an acked message came back after ack_wait";
}

TEST(NatsBrokerTest, SameIdIsStoredOnceAndTheDuplicatePublishSucceeds) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto broker = MakeBroker(Options(*server));
  ASSERT_NE(broker, nullptr);
  auto publisher = broker->NewPublisher().value();
  ASSERT_TRUE(publisher->Publish(Messages(0, 5)).ok());
  ASSERT_TRUE(publisher->Publish(Messages(0, 5)).ok());  // all duplicates: still ok
  ASSERT_TRUE(publisher->Publish(Messages(3, 8)).ok());  // 3, 4 duplicates; 5..7 new
  auto consumer = broker->NewConsumer("c1", "").value();
  std::vector<Delivery> got = Drain(*consumer, 100, true, std::chrono::milliseconds(1500));
  ASSERT_EQ(got.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(got[i].message.id, "evt-" + std::to_string(i));
}

TEST(NatsBrokerTest, DeduplicationSurvivesKill9AndRestart) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto broker = MakeBroker(Options(*server));
  ASSERT_NE(broker, nullptr);
  auto publisher = broker->NewPublisher().value();
  ASSERT_TRUE(publisher->Publish(Messages(0, 200)).ok());
  ASSERT_TRUE(server->Kill().ok());
  // The broker is gone: a Status, not a crash, and not ok.
  Status down = publisher->Publish(Messages(200, 210));
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  ASSERT_TRUE(server->Restart().ok());
  // A relay that crashed after publishing and before marking republishes everything: every
  // message acked before the kill is recognised as a duplicate. The same publisher reconnects.
  ASSERT_TRUE(publisher->Publish(Messages(0, 210)).ok());
  auto consumer = broker->NewConsumer("c1", "").value();
  std::vector<Delivery> got = Drain(*consumer, 1000, true, std::chrono::milliseconds(3000));
  ASSERT_EQ(got.size(), 210u);
  std::set<std::string> ids;
  for (const Delivery& d : got) ids.insert(d.message.id);
  EXPECT_EQ(ids.size(), 210u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].message.id, "evt-" + std::to_string(i)) << "stored out of order at " << i;
  }
}

// Acked before the restart: settled for good (SIGTERM flushes the consumer's state). Fetched and
// unacked: redelivered after the restart with a higher delivery count. Never fetched: delivered.
TEST(NatsBrokerTest, DurableConsumerResumesAfterServerRestart) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto broker = MakeBroker(Options(*server));
  ASSERT_NE(broker, nullptr);
  ASSERT_TRUE(broker->NewPublisher().value()->Publish(Messages(0, 30)).ok());
  {
    auto consumer = broker->NewConsumer("resume", "").value();
    ASSERT_EQ(Drain(*consumer, 10, /*ack=*/true).size(), 10u);
    ASSERT_EQ(Drain(*consumer, 10, /*ack=*/false).size(), 10u);
  }  // closed, not unsubscribed: the durable consumer stays on the server
  ASSERT_TRUE(server->Stop().ok());
  ASSERT_TRUE(server->Restart().ok());
  auto consumer = broker->NewConsumer("resume", "").value();
  std::vector<Delivery> got = Drain(*consumer, 20, true, std::chrono::seconds(15));
  ASSERT_EQ(got.size(), 20u);
  std::map<std::string, uint32_t> delivery_of;
  for (const Delivery& d : got) delivery_of[d.message.id] = d.delivery;
  for (int i = 10; i < 30; ++i) {
    const std::string id = "evt-" + std::to_string(i);
    ASSERT_TRUE(delivery_of.count(id)) << id << " was lost";
    EXPECT_EQ(delivery_of[id], i < 20 ? 2u : 1u) << id;
  }
  EXPECT_TRUE(Quiet(*consumer, Duration::Millis(1500)));
}

// After kill -9 the consumer may see acked messages again (its ack state is flushed
// asynchronously), but nothing is lost and nothing published is missing.
TEST(NatsBrokerTest, ConsumerLosesNothingAcrossKill9) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto broker = MakeBroker(Options(*server));
  ASSERT_NE(broker, nullptr);
  ASSERT_TRUE(broker->NewPublisher().value()->Publish(Messages(0, 100)).ok());
  auto consumer = broker->NewConsumer("k9", "").value();
  ASSERT_EQ(Drain(*consumer, 40, /*ack=*/true).size(), 40u);
  ASSERT_TRUE(server->Kill().ok());
  auto down = consumer->Fetch(10, Duration::Millis(200));
  EXPECT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status().ToString();
  ASSERT_TRUE(server->Restart().ok());
  std::set<std::string> ids;
  for (const Delivery& d : Drain(*consumer, 100, true, std::chrono::seconds(5))) {
    ids.insert(d.message.id);
  }
  for (int i = 40; i < 100; ++i) EXPECT_TRUE(ids.count("evt-" + std::to_string(i))) << i;
}

// A reader that never acks (a read-back check): past consumer_held_max the oldest deliveries are
// let go (their Ack is then kFailedPrecondition; they come back after ack_wait), and the reader
// still gets every message.
TEST(NatsBrokerTest, AReaderThatNeverAcksGetsEverythingAndHoldsABoundedNumber) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  NatsBrokerOptions options = Options(*server);
  options.ack_wait = Duration::Seconds(60);
  options.fetch_max = 100;
  options.consumer_held_max = 150;
  auto broker = MakeBroker(options);
  ASSERT_NE(broker, nullptr);
  auto publisher = broker->NewPublisher().value();
  for (int i = 0; i < 3000; i += 500) ASSERT_TRUE(publisher->Publish(Messages(i, i + 500)).ok());
  auto consumer = broker->NewConsumer("reader", "").value();
  std::vector<Delivery> got = Drain(*consumer, 3000, /*ack=*/false, std::chrono::seconds(20));
  ASSERT_EQ(got.size(), 3000u);
  for (int i = 0; i < 3000; ++i) EXPECT_EQ(got[i].message.id, "evt-" + std::to_string(i));
  EXPECT_EQ(consumer->Ack(got[0]).code(), StatusCode::kFailedPrecondition);  // let go
  EXPECT_TRUE(consumer->Ack(got[2999]).ok());                                // still held
}

TEST(NatsBrokerTest, NakRedeliversAtOnceWithTheNextDeliveryCount) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  NatsBrokerOptions options = Options(*server);
  options.ack_wait = Duration::Seconds(30);  // a redelivery within the test can only be the Nak
  auto broker = MakeBroker(options);
  ASSERT_NE(broker, nullptr);
  ASSERT_TRUE(broker->NewPublisher().value()->Publish(Messages(0, 1)).ok());
  auto consumer = broker->NewConsumer("nak", "").value();
  std::vector<Delivery> first = Drain(*consumer, 1, false);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(consumer->Nak(first[0]).ok());
  EXPECT_EQ(consumer->Ack(first[0]).code(), StatusCode::kFailedPrecondition);  // settled
  std::vector<Delivery> again = Drain(*consumer, 1, true, std::chrono::seconds(3));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].message, first[0].message);
  EXPECT_EQ(again[0].stream_seq, first[0].stream_seq);
  EXPECT_EQ(again[0].delivery, 2u);
}

TEST(NatsBrokerTest, PrefixSelectsBySubjectStartAndConsumersAreIndependent) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto broker = MakeBroker(Options(*server));
  ASSERT_NE(broker, nullptr);
  std::vector<Message> batch = {
      Message{"1", "orders.eu.1", "", ""}, Message{"2", "orders.us", "", ""},
      Message{"3", "orders.europe", "", ""}, Message{"4", "payments.eu", "", ""}};
  ASSERT_TRUE(broker->NewPublisher().value()->Publish(batch).ok());
  auto eu = broker->NewConsumer("eu", "orders.eu").value();
  auto all = broker->NewConsumer("all", "").value();
  std::vector<std::string> eu_ids, all_ids;
  for (const Delivery& d : Drain(*eu, 10, true, std::chrono::milliseconds(1500))) {
    eu_ids.push_back(d.message.id);
  }
  for (const Delivery& d : Drain(*all, 10, true, std::chrono::milliseconds(1500))) {
    all_ids.push_back(d.message.id);
  }
  EXPECT_EQ(eu_ids, (std::vector<std::string>{"1", "3"}));
  EXPECT_EQ(all_ids, (std::vector<std::string>{"1", "2", "3", "4"}));
}

TEST(NatsBrokerTest, UnreachableBrokerIsUnavailableAndAPublisherRecoversOnTheNextCall) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  NatsBrokerOptions options = Options(*server);
  auto broker = MakeBroker(options);
  ASSERT_NE(broker, nullptr);
  auto publisher = broker->NewPublisher().value();
  auto consumer = broker->NewConsumer("c", "").value();
  ASSERT_TRUE(server->Stop().ok());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(publisher->Publish(Messages(0, 3)).code(), StatusCode::kUnavailable);
  EXPECT_EQ(publisher->Publish(Messages(0, 3)).code(),
            StatusCode::kUnavailable);  // reconnect fails
  EXPECT_EQ(consumer->Fetch(5, Duration::Millis(100)).status().code(), StatusCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(broker->NewPublisher().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(NatsBroker::Create(options).status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(server->Restart().ok());
  EXPECT_TRUE(publisher->Publish(Messages(0, 3)).ok());
  EXPECT_EQ(Drain(*consumer, 3, true).size(), 3u);
}

// A server that refuses: the stream deleted behind the publisher's back (nothing captures the
// subject any more), or a stream of the same name made with other settings.
TEST(NatsBrokerTest, RefusalsAreStatusesNotCrashes) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  NatsBrokerOptions options = Options(*server);
  auto broker = MakeBroker(options);
  ASSERT_NE(broker, nullptr);
  auto publisher = broker->NewPublisher().value();
  ASSERT_TRUE(publisher->Publish(Messages(0, 2)).ok());
  {
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    ASSERT_EQ(natsConnection_ConnectTo(&nc, server->url().c_str()), NATS_OK);
    ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
    ASSERT_EQ(js_DeleteStream(js, options.stream.c_str(), nullptr, nullptr), NATS_OK);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
  Status refused = publisher->Publish(Messages(2, 4));
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  NatsBrokerOptions other = options;
  other.duplicate_window = Duration::Seconds(30);
  ASSERT_TRUE(NatsBroker::Create(other).ok());  // creates it afresh with a 30 s window
  EXPECT_EQ(NatsBroker::Create(options).status().code(), StatusCode::kFailedPrecondition);
  NatsBrokerOptions overlap = options;
  overlap.stream = "OTHER";  // same subjects as the existing stream: the server refuses
  Status overlapping = NatsBroker::Create(overlap).status();
  EXPECT_FALSE(overlapping.ok());
  EXPECT_NE(overlapping.message().find("nats"), std::string::npos) << overlapping.ToString();
}

// A stream that refuses almost every message: each refusal is an ack callback on libnats' thread,
// and AwaitAcks returns at the first, while the others are still being handled. The publisher
// must neither count them into its next batch nor free what they write to under them (the
// publisher is destroyed right after a refused batch here, many times; run under ASan this
// catches a callback writing to freed memory).
TEST(NatsBrokerTest, RefusalCallbacksNeverOutliveWhatTheyWrite) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  NatsBrokerOptions options = Options(*server);
  {
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    ASSERT_EQ(natsConnection_ConnectTo(&nc, server->url().c_str()), NATS_OK);
    ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
    const std::string subjects = options.subject_namespace + ">";
    const char* subject_list[1] = {subjects.c_str()};
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = options.stream.c_str();
    cfg.Subjects = subject_list;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Duplicates = options.duplicate_window.nanos();
    cfg.MaxMsgs = 1;
    cfg.Discard = js_DiscardNew;  // a full stream refuses new messages
    jsStreamInfo* info = nullptr;
    ASSERT_EQ(js_AddStream(&info, js, &cfg, nullptr, nullptr), NATS_OK);
    jsStreamInfo_Destroy(info);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
  auto broker = MakeBroker(options);
  ASSERT_NE(broker, nullptr);
  for (int round = 0; round < 20; ++round) {
    auto publisher = broker->NewPublisher().value();
    for (int batch = 0; batch < 2; ++batch) {
      const int from = (round * 2 + batch) * 3000;
      const Status refused = publisher->Publish(Messages(from, from + 3000));
      ASSERT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
      // "nats: N of 3000 publishes refused: ...": only this batch's refusals are counted.
      const std::string text(refused.message());
      const size_t of = text.find(" of 3000 publishes refused");
      ASSERT_NE(of, std::string::npos) << text;
      const int counted = std::stoi(text.substr(text.find(": ") + 2));
      EXPECT_GE(counted, 1) << text;
      EXPECT_LE(counted, 3000) << text;
    }
  }  // each publisher destroyed right after a refused batch
}

TEST(NatsBrokerTest, MalformedInputIsInvalidArgumentAndNothingIsSent) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  NatsBrokerOptions options = Options(*server);
  options.payload_bytes_max = 100;
  auto broker = MakeBroker(options);
  ASSERT_NE(broker, nullptr);
  auto publisher = broker->NewPublisher().value();
  const std::vector<Message> bad = {
      Message{"", "a", "", ""},    Message{std::string(256, 'x'), "a", "", ""},
      Message{"i", "", "", ""},    Message{"i", "a b", "", ""},
      Message{"i", "a.*", "", ""}, Message{"i", "a..b", "", ""},
      Message{"i", "a.", "", ""},  Message{"i", "a", "", std::string(101, 'p')},
  };
  for (const Message& m : bad) {
    std::vector<Message> batch = {Message{"good", "a", "", ""}, m};
    EXPECT_EQ(publisher->Publish(batch).code(), StatusCode::kInvalidArgument)
        << "id=" << m.id.substr(0, 10) << " subject=" << m.subject;
  }
  auto consumer = broker->NewConsumer("c", "").value();
  EXPECT_TRUE(Quiet(*consumer, Duration::Millis(300))) << "part of a rejected batch was sent";
  EXPECT_EQ(consumer->Fetch(0, Duration::Millis(1)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(broker->NewConsumer("a.b", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(broker->NewConsumer("", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(broker->NewConsumer("c", "a>").status().code(), StatusCode::kInvalidArgument);
}

TEST(NatsBrokerTest, UriAndOptionsAreChecked) {
  EXPECT_TRUE(ParseNatsUri("nats://127.0.0.1:4222").ok());
  auto parsed = ParseNatsUri("nats://h:1?stream=S1&namespace=ev.");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed.value().url, "nats://h:1");
  EXPECT_EQ(parsed.value().stream, "S1");
  EXPECT_EQ(parsed.value().subject_namespace, "ev.");
  for (const char* bad :
       {"", "nats://", "http://h:1", "nats://h:1?bogus=1", "nats://h:1?stream=a.b",
        "nats://h:1?namespace=ev", "nats://h:1?namespace=e*."}) {
    EXPECT_EQ(ParseNatsUri(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  NatsBrokerOptions options;
  options.duplicate_window = Duration::Millis(10);
  EXPECT_EQ(NatsBroker::Create(options).status().code(), StatusCode::kInvalidArgument);
}

TEST(NatsBrokerTest, OpenNatsBrokerFromAUri) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto broker = OpenNatsBroker(server->url() + "?stream=URI_STREAM&namespace=ev.");
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  auto publisher = broker.value()->NewPublisher();
  ASSERT_TRUE(publisher.ok());
  EXPECT_TRUE(publisher.value()->Publish(Messages(0, 2)).ok());
  EXPECT_EQ(OpenNatsBroker("nats://127.0.0.1:1?stream=bad.name").status().code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(server->Stop().ok());
  EXPECT_EQ(OpenNatsBroker(server->url()).status().code(), StatusCode::kUnavailable);
}

// The README's NATS example ("Outbox and sagas in your own service"): an order service appends
// its event in the transaction that changes the order; its relay publishes the outbox to JetStream
// through OpenBroker("nats://..."); a billing service applies each event once through its inbox.
TEST(NatsBrokerTest, ReadmeExampleOutboxToJetStreamToInbox) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  char dir_template[] = "/tmp/flnats-example-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string nats_uri = server->url() + "?stream=ORDERS&namespace=orders.";
  outbox::RegisterBrokerScheme("nats://", OpenNatsBroker);

// [readme-nats-example]
  // The order service: the event commits with the order, or neither does.
  auto orders = SqliteStore::Open({.path = dir + "/orders.db"}).value();
  auto outbox = outbox::Outbox::Create(*orders).value();
  const Status placed = RunInTransaction(*orders, [&](Transaction& txn) -> Status {
    FL_RETURN_IF_ERROR(txn.Put("order/42", "placed"));
    outbox::Message event{.id = "order-42-placed",
                          .subject = "placed",
                          .key = "order/42",
                          .payload = R"({"total":1999})"};
    return outbox->Append(txn, event).status();
  });
  ASSERT_TRUE(placed.ok()) << placed.ToString();

  // Its relay (in production: a loop under a fenced leader, see relay.h).
  auto broker = outbox::OpenBroker(nats_uri).value();
  auto publisher = broker->NewPublisher().value();
  auto relay = outbox::Relay::Create(*orders).value();
  ASSERT_EQ(relay->RunOnce(*publisher).value(), 1u);  // published, acked, deleted

  // The billing service: a durable consumer; the effect and the inbox record commit together.
  auto billing = SqliteStore::Open({.path = dir + "/billing.db"}).value();
  auto inbox = idempotency::Inbox::Create(*billing, SystemClock::Default(), "billing").value();
  auto consumer = broker->NewConsumer("billing", "placed").value();
  int applied = 0;
  for (int round = 0; round < 20 && applied == 0; ++round) {
    std::vector<outbox::Delivery> batch = consumer->Fetch(64, Duration::Millis(500)).value();
    for (const outbox::Delivery& d : batch) {
      auto fresh = inbox->Process(d.message.id, [&](Transaction& txn) {
        return txn.Put("invoice/" + d.message.key, d.message.payload);
      });
      if (!fresh.ok()) continue;         // not acked: redelivered after ack_wait
      applied += fresh.value() ? 1 : 0;  // false: a duplicate, already applied
      consumer->Ack(d).IgnoreError();    // a lost ack only means a redelivery
    }
  }
  EXPECT_EQ(applied, 1);
// [readme-nats-example]
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace faultline
