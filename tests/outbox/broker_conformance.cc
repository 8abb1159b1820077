// The broker contract (faultline/outbox/broker.h) as tests; see broker_conformance.h.
#include "tests/outbox/broker_conformance.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <vector>

namespace faultline::outbox::testing {
namespace {

using SteadyClock = std::chrono::steady_clock;

template <typename T>
T Must(Result<T> result) {
  FL_ASSERT_MSG(result.ok(), result.status().ToString().c_str());
  return std::move(result).value();
}

// Digits and letters only: valid in a JetStream subject token and durable name.
std::string Nonce() {
  static std::atomic<uint64_t> counter{0};
  const auto now = SteadyClock::now().time_since_epoch().count();
  return "n" + std::to_string(getpid()) + "x" + std::to_string(counter++) + "x" +
         std::to_string(static_cast<uint64_t>(now) % 1000000000);
}

class Fixture {
 public:
  explicit Fixture(const BrokerConformanceTarget& target)
      : target_(target), nonce_(Nonce()), broker_(Must(target.open())) {}

  std::string Subject(const std::string& leaf) const {
    return target_.subject_root + nonce_ + "." + leaf;
  }
  std::string Prefix() const { return target_.subject_root + nonce_ + "."; }
  std::string Durable(const std::string& name) const { return name + nonce_; }
  Message Msg(const std::string& id, const std::string& leaf = "a", std::string key = "k") const {
    return Message{nonce_ + "-" + id, Subject(leaf), std::move(key), "payload of " + id};
  }
  Broker& broker() { return *broker_; }
  void Reopen() {
    broker_.reset();
    broker_ = Must(target_.open());
  }
  Duration ack_wait() const { return target_.ack_wait; }

 private:
  const BrokerConformanceTarget& target_;
  std::string nonce_;
  std::unique_ptr<Broker> broker_;
};

// Fetches until `n` deliveries arrived or `timeout` passed.
std::vector<Delivery> FetchN(Consumer& consumer, size_t n, Duration timeout) {
  std::vector<Delivery> out;
  const auto deadline = SteadyClock::now() + std::chrono::nanoseconds(timeout.nanos());
  while (out.size() < n && SteadyClock::now() < deadline) {
    std::vector<Delivery> got = Must(consumer.Fetch(n - out.size(), Duration::Millis(100)));
    for (Delivery& d : got) out.push_back(std::move(d));
  }
  return out;
}

// FetchN, acking every delivery at once (so that nothing comes back after ack-wait).
std::vector<Delivery> FetchAcking(Consumer& consumer, size_t n, Duration timeout) {
  std::vector<Delivery> out;
  const auto deadline = SteadyClock::now() + std::chrono::nanoseconds(timeout.nanos());
  while (out.size() < n && SteadyClock::now() < deadline) {
    std::vector<Delivery> got = Must(consumer.Fetch(n - out.size(), Duration::Millis(100)));
    for (Delivery& d : got) {
      EXPECT_TRUE(consumer.Ack(d).ok());
      out.push_back(std::move(d));
    }
  }
  return out;
}

void Publish(Broker& broker, const std::vector<Message>& batch) {
  auto publisher = Must(broker.NewPublisher());
  const Status status = publisher->Publish(batch);
  ASSERT_TRUE(status.ok()) << status.ToString();
}

TEST_P(BrokerConformance, FirstDeliveriesComeInPublishOrder) {
  Fixture f(GetParam());
  std::vector<Message> all;
  for (int i = 0; i < 12; ++i)
    all.push_back(f.Msg(std::to_string(i), "a", "k" + std::to_string(i % 3)));
  auto consumer = Must(f.broker().NewConsumer(f.Durable("order"), f.Prefix()));
  Publish(f.broker(), std::vector<Message>(all.begin(), all.begin() + 5));
  Publish(f.broker(), std::vector<Message>(all.begin() + 5, all.end()));
  std::vector<Delivery> got = FetchN(*consumer, all.size(), Duration::Seconds(10));
  ASSERT_EQ(got.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(got[i].message, all[i]) << i;
    EXPECT_EQ(got[i].delivery, 1u);
    if (i > 0) {
      EXPECT_GT(got[i].stream_seq, got[i - 1].stream_seq);
    }
    ASSERT_TRUE(consumer->Ack(got[i]).ok());
  }
  EXPECT_TRUE(Must(consumer->Fetch(10, Duration::Millis(200))).empty());
}

TEST_P(BrokerConformance, RepublishedIdsAreAcknowledgedAndStoredOnce) {
  Fixture f(GetParam());
  auto consumer = Must(f.broker().NewConsumer(f.Durable("dedup"), f.Prefix()));
  Publish(f.broker(), {f.Msg("a"), f.Msg("b")});
  Publish(f.broker(), {f.Msg("b"), f.Msg("c"), f.Msg("a")});  // a relay republishing a batch
  std::vector<Delivery> got = FetchAcking(*consumer, 4, Duration::Seconds(2));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].message.id, f.Msg("a").id);
  EXPECT_EQ(got[1].message.id, f.Msg("b").id);
  EXPECT_EQ(got[2].message.id, f.Msg("c").id);
}

TEST_P(BrokerConformance, NakRedeliversWithACountedDelivery) {
  Fixture f(GetParam());
  auto consumer = Must(f.broker().NewConsumer(f.Durable("nak"), f.Prefix()));
  Publish(f.broker(), {f.Msg("x")});
  std::vector<Delivery> first = FetchN(*consumer, 1, Duration::Seconds(10));
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(consumer->Nak(first[0]).ok());
  std::vector<Delivery> again = FetchN(*consumer, 1, Duration::Seconds(10));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].message, first[0].message);
  EXPECT_EQ(again[0].stream_seq, first[0].stream_seq);
  EXPECT_EQ(again[0].delivery, 2u);
  ASSERT_TRUE(consumer->Ack(again[0]).ok());
  EXPECT_TRUE(FetchN(*consumer, 1, f.ack_wait() + Duration::Millis(300)).empty());
}

// Not acked within ack-wait: delivered again. The late ack of the first delivery still settles the
// message (acks name the message, nats-server #4786).
TEST_P(BrokerConformance, UnackedMessagesComeBackAfterAckWait) {
  Fixture f(GetParam());
  auto consumer = Must(f.broker().NewConsumer(f.Durable("wait"), f.Prefix()));
  Publish(f.broker(), {f.Msg("y")});
  std::vector<Delivery> first = FetchN(*consumer, 1, Duration::Seconds(10));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(Must(consumer->Fetch(1, f.ack_wait() / 4)).empty()) << "redelivered before ack-wait";
  std::vector<Delivery> again = FetchN(*consumer, 1, f.ack_wait() * 4);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].message, first[0].message);
  EXPECT_GE(again[0].delivery, 2u);
  ASSERT_TRUE(consumer->Ack(first[0]).ok());
  EXPECT_TRUE(FetchN(*consumer, 1, f.ack_wait() * 2).empty()) << "a late ack did not settle it";
}

// A durable consumer reopened through a new client resumes: acked messages never come back, the
// unacked one and the not yet fetched ones do.
TEST_P(BrokerConformance, DurableConsumerResumesAfterReopen) {
  Fixture f(GetParam());
  std::vector<Message> all;
  for (int i = 0; i < 5; ++i) all.push_back(f.Msg(std::to_string(i)));
  std::set<std::string> acked;
  {
    auto consumer = Must(f.broker().NewConsumer(f.Durable("resume"), f.Prefix()));
    Publish(f.broker(), all);
    std::vector<Delivery> got = FetchN(*consumer, 3, Duration::Seconds(10));
    ASSERT_EQ(got.size(), 3u);
    for (int i : {0, 2}) {
      ASSERT_TRUE(consumer->Ack(got[static_cast<size_t>(i)]).ok());
      acked.insert(got[static_cast<size_t>(i)].message.id);
    }
  }
  f.Reopen();
  auto consumer = Must(f.broker().NewConsumer(f.Durable("resume"), f.Prefix()));
  std::vector<Delivery> rest = FetchN(*consumer, 3, f.ack_wait() * 4 + Duration::Seconds(2));
  std::set<std::string> ids;
  for (const Delivery& d : rest) {
    EXPECT_EQ(acked.count(d.message.id), 0u) << d.message.id << " was acked, yet came back";
    ids.insert(d.message.id);
    ASSERT_TRUE(consumer->Ack(d).ok());
  }
  EXPECT_EQ(ids, (std::set<std::string>{all[1].id, all[3].id, all[4].id}));
}

TEST_P(BrokerConformance, ConsumersSeeOnlyTheirSubjectsAndEachSeesAll) {
  Fixture f(GetParam());
  auto orders_a = Must(f.broker().NewConsumer(f.Durable("ordersa"), f.Prefix() + "orders"));
  auto orders_b = Must(f.broker().NewConsumer(f.Durable("ordersb"), f.Prefix() + "orders"));
  auto payments = Must(f.broker().NewConsumer(f.Durable("payments"), f.Prefix() + "payments"));
  Publish(f.broker(), {f.Msg("o1", "orders"), f.Msg("p1", "payments"), f.Msg("o2", "orders")});
  for (Consumer* c : {orders_a.get(), orders_b.get()}) {
    std::vector<Delivery> got = FetchAcking(*c, 3, Duration::Seconds(2));
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].message.id, f.Msg("o1").id);
    EXPECT_EQ(got[1].message.id, f.Msg("o2").id);
  }
  std::vector<Delivery> got = FetchAcking(*payments, 3, Duration::Seconds(2));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.id, f.Msg("p1").id);
}

// kInvalidArgument for a malformed message, and nothing of its batch is stored.
TEST_P(BrokerConformance, MalformedMessagesAreRefusedWithTheirBatch) {
  Fixture f(GetParam());
  auto consumer = Must(f.broker().NewConsumer(f.Durable("bad"), f.Prefix()));
  auto publisher = Must(f.broker().NewPublisher());
  Message big = f.Msg("big");
  big.payload.assign(GetParam().payload_bytes_max + 1, 'x');
  Message no_subject = f.Msg("nosubject");
  no_subject.subject.clear();
  Message long_id = f.Msg("longid");
  long_id.id.assign(256, 'i');
  for (const Message& bad : {big, no_subject, long_id, Message{"", f.Subject("a"), "k", "p"}}) {
    const std::vector<Message> batch = {f.Msg("good-" + std::to_string(bad.payload.size())), bad};
    EXPECT_EQ(publisher->Publish(batch).code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(FetchN(*consumer, 1, Duration::Millis(500)).empty());
  EXPECT_TRUE(publisher->Publish(std::vector<Message>{f.Msg("ok")}).ok());
  EXPECT_EQ(FetchN(*consumer, 1, Duration::Seconds(10)).size(), 1u);
}

TEST_P(BrokerConformance, PublishedMessagesSurviveARestart) {
  Fixture f(GetParam());
  auto consumer = Must(f.broker().NewConsumer(f.Durable("restart"), f.Prefix()));
  Publish(f.broker(), {f.Msg("r1"), f.Msg("r2")});
  consumer.reset();
  if (GetParam().restart) {
    const Status restarted = GetParam().restart();
    ASSERT_TRUE(restarted.ok()) << restarted.ToString();
  }
  f.Reopen();
  consumer = Must(f.broker().NewConsumer(f.Durable("restart"), f.Prefix()));
  Publish(f.broker(), {f.Msg("r2"), f.Msg("r3")});
  std::vector<Delivery> got = FetchAcking(*consumer, 4, Duration::Seconds(3));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].message.id, f.Msg("r1").id);
  EXPECT_EQ(got[1].message.id, f.Msg("r2").id);
  EXPECT_EQ(got[2].message.id, f.Msg("r3").id);
}

}  // namespace
}  // namespace faultline::outbox::testing
