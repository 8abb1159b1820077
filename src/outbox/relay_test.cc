#include "faultline/outbox/relay.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "faultline/lease/fence.h"
#include "src/outbox/test_util.h"

namespace faultline::outbox {
namespace {

using testing::Event;
using testing::MemoryPublisher;
using testing::Must;
using testing::MustOk;
using testing::SimStoreEnv;

void Fill(Outbox& outbox, int events, int keys) {
  for (int i = 0; i < events; ++i) {
    MustOk(outbox
               .AppendOne(Event("e" + std::to_string(i), "k" + std::to_string(i % keys),
                                std::to_string(i)))
               .status());
  }
}

// Per key, the payloads (event numbers) must be increasing in publish order.
void ExpectPerKeyOrder(const std::vector<Message>& published) {
  std::map<std::string, int> last;
  for (const Message& m : published) {
    auto [it, fresh] = last.emplace(m.key, std::stoi(m.payload));
    if (!fresh) {
      EXPECT_LT(it->second, std::stoi(m.payload)) << "key " << m.key;
      it->second = std::stoi(m.payload);
    }
  }
}

TEST(RelayTest, PublishesInBatchesInSeqOrderAndDeletes) {
  SimStoreEnv env;
  auto outbox = Must(Outbox::Create(*env.store));
  Fill(*outbox, 25, 3);
  auto relay = Must(Relay::Create(*env.store, {}, RelayOptions{.batch_max = 10}));
  MemoryPublisher broker;
  EXPECT_EQ(Must(relay->RunOnce(broker)), 10u);
  EXPECT_EQ(Must(relay->RunOnce(broker)), 10u);
  EXPECT_EQ(Must(relay->RunOnce(broker)), 5u);
  EXPECT_EQ(Must(relay->RunOnce(broker)), 0u);
  ASSERT_EQ(broker.stored.size(), 25u);
  for (int i = 0; i < 25; ++i) EXPECT_EQ(broker.stored[i].id, "e" + std::to_string(i));
  // Only the counter is left.
  const auto left = env.Dump();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left.begin()->first, internal::CounterKey("outbox/"));
  EXPECT_EQ(relay->stats().marked, 25u);
}

// A broker that refuses or is unreachable: RunOnce returns its status, the events stay, and the
// next RunOnce publishes them. Nothing lost, nothing reordered.
TEST(RelayTest, BrokerFailureKeepsTheEvents) {
  SimStoreEnv env;
  auto outbox = Must(Outbox::Create(*env.store));
  Fill(*outbox, 8, 2);
  auto relay = Must(Relay::Create(*env.store, {}, RelayOptions{.batch_max = 5}));
  MemoryPublisher broker;
  broker.fail = UnavailableError("broker: connection refused");
  EXPECT_EQ(relay->RunOnce(broker).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(relay->RunOnce(broker).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(relay->stats().publish_errors, 2u);
  EXPECT_EQ(env.Dump().size(), 9u);
  broker.fail = Status::Ok();
  EXPECT_EQ(Must(relay->RunOnce(broker)), 5u);
  EXPECT_EQ(Must(relay->RunOnce(broker)), 3u);
  ASSERT_EQ(broker.stored.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(broker.stored[i].id, "e" + std::to_string(i));
}

// S3: the relay crashes after Publish and before MarkPublished (and the store loses power). The
// restarted relay publishes the same events again, with the same ids: the broker stores each once.
TEST(RelayTest, CrashAfterPublishBeforeMarkRepublishesTheSameIds) {
  SimStoreEnv env;
  auto outbox = Must(Outbox::Create(*env.store));
  Fill(*outbox, 6, 2);
  MemoryPublisher broker;
  {
    auto relay = Must(Relay::Create(*env.store, {}, RelayOptions{.batch_max = 4}));
    std::vector<OutboxRecord> records = Must(relay->Poll(4));
    std::vector<Message> batch;
    for (const OutboxRecord& r : records) batch.push_back(r.message);
    MustOk(broker.Publish(batch));
  }  // crash: never marked
  env.CrashAndReopen();
  auto relay = Must(Relay::Create(*env.store, {}, RelayOptions{.batch_max = 4}));
  while (Must(relay->RunOnce(broker)) > 0) {
  }
  EXPECT_EQ(broker.calls, 10u);  // 4 republished
  ASSERT_EQ(broker.stored.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(broker.stored[i].id, "e" + std::to_string(i));
}

TEST(RelayTest, PartitionedRelaysEachTakeTheirKeysInOrder) {
  SimStoreEnv env;
  auto outbox = Must(Outbox::Create(*env.store));
  Fill(*outbox, 300, 17);
  constexpr uint32_t kRelays = 3;
  std::vector<std::unique_ptr<Relay>> relays;
  std::vector<MemoryPublisher> brokers(kRelays);
  for (uint32_t i = 0; i < kRelays; ++i) {
    relays.push_back(Must(Relay::Create(
        *env.store, {}, RelayOptions{.batch_max = 7, .partition = i, .partitions = kRelays})));
  }
  // Interleave the relays' rounds.
  for (bool any = true; any;) {
    any = false;
    for (uint32_t i = 0; i < kRelays; ++i) any |= Must(relays[i]->RunOnce(brokers[i])) > 0;
  }
  size_t total = 0;
  std::map<std::string, uint32_t> owner;
  for (uint32_t i = 0; i < kRelays; ++i) {
    EXPECT_GT(brokers[i].stored.size(), 0u);
    total += brokers[i].stored.size();
    ExpectPerKeyOrder(brokers[i].stored);
    for (const Message& m : brokers[i].stored) {
      EXPECT_EQ(internal::KeyHash(m.key) % kRelays, i);
      auto [it, fresh] = owner.emplace(m.key, i);
      EXPECT_EQ(it->second, i) << "key " << m.key << " published by two relays";
    }
  }
  EXPECT_EQ(total, 300u);
  EXPECT_EQ(env.Dump().size(), 1u);
}

// A fenced singleton: marks carry the leader's token through the store. A deposed relay (lower
// token) may still publish (duplicates, absorbed downstream), but its marks are refused and delete
// nothing; a relay whose TokenSource says "not leader" does not even poll.
TEST(RelayTest, DeposedRelaysMarksAreRefused) {
  SimStoreEnv env;
  auto outbox = Must(Outbox::Create(*env.store));
  Fill(*outbox, 4, 1);
  std::optional<FencingToken> token_a = FencingToken(1);
  std::optional<FencingToken> token_b;
  auto a =
      Must(Relay::Create(*env.store, {}, RelayOptions{.batch_max = 2}, [&] { return token_a; }));
  auto b =
      Must(Relay::Create(*env.store, {}, RelayOptions{.batch_max = 2}, [&] { return token_b; }));
  MemoryPublisher broker;
  EXPECT_EQ(b->RunOnce(broker).status().code(), StatusCode::kFencedOut);
  EXPECT_EQ(broker.calls, 0u);
  EXPECT_EQ(Must(a->RunOnce(broker)), 2u);

  std::vector<OutboxRecord> stale = Must(a->Poll(2));  // A polls, then pauses
  token_b = FencingToken(2);                           // B is elected
  EXPECT_EQ(Must(b->RunOnce(broker)), 2u);
  const auto before = env.Dump();
  EXPECT_EQ(a->MarkPublished(stale).code(), StatusCode::kFencedOut);
  EXPECT_EQ(env.Dump(), before);
  EXPECT_EQ(Must(lease::FencedStore(*env.store, "outbox-relay").Highest()), FencingToken(2));
  token_a.reset();  // A learns it lost the lease
  EXPECT_EQ(a->RunOnce(broker).status().code(), StatusCode::kFencedOut);
  EXPECT_EQ(broker.stored.size(), 4u);
}

TEST(RelayTest, MarksMustBeAPrefixOfTheLastPoll) {
  SimStoreEnv env;
  auto outbox = Must(Outbox::Create(*env.store));
  Fill(*outbox, 3, 1);
  auto relay = Must(Relay::Create(*env.store));
  std::vector<OutboxRecord> records = Must(relay->Poll(3));
  EXPECT_EQ(relay->MarkPublished(std::span(records).subspan(1)).code(),
            StatusCode::kInvalidArgument);
  MustOk(relay->MarkPublished(std::span(records).first(1)));
  MustOk(relay->MarkPublished(std::span(records).subspan(1, 1)));
  std::vector<OutboxRecord> rest = Must(relay->Poll(3));
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].message.id, "e2");
  EXPECT_EQ(relay->Poll(0).status().code(), StatusCode::kInvalidArgument);
}

TEST(RelayTest, InvalidOptionsAreRefused) {
  SimStoreEnv env;
  EXPECT_EQ(Relay::Create(*env.store, {}, RelayOptions{.batch_max = 0}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      Relay::Create(*env.store, {}, RelayOptions{.partition = 2, .partitions = 2}).status().code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(Relay::Create(nullptr).status().code(), StatusCode::kInvalidArgument);
}

// Producers and the relay interleaved at random, with power losses: every committed event is
// published exactly once to the (de-duplicating) broker, in commit order, and no rolled-back one.
TEST(RelayTest, RandomInterleavingWithCrashesLosesNothing) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SimStoreEnv env(seed);
    Rng rng(seed * 7919);
    MemoryPublisher broker;
    std::vector<std::string> committed;
    int next = 0;
    for (int step = 0; step < 200; ++step) {
      auto outbox = Must(Outbox::Create(*env.store));
      const uint64_t dice = rng.Uniform(10);
      if (dice < 5) {
        const std::string id = "e" + std::to_string(next++);
        std::unique_ptr<Transaction> txn = Must(env.store->Begin());
        MustOk(outbox->Append(*txn, Event(id, "k" + std::to_string(rng.Uniform(4)))).status());
        if (dice == 0) {
          txn->Rollback();
        } else {
          MustOk(txn->Commit());
          committed.push_back(id);
        }
      } else if (dice < 9) {
        auto relay = Must(Relay::Create(*env.store, {}, RelayOptions{.batch_max = 3}));
        MustOk(relay->RunOnce(broker).status());
      } else {
        env.CrashAndReopen();
      }
    }
    auto relay = Must(Relay::Create(*env.store));
    while (Must(relay->RunOnce(broker)) > 0) {
    }
    ASSERT_EQ(broker.stored.size(), committed.size()) << "seed " << seed;
    for (size_t i = 0; i < committed.size(); ++i) {
      EXPECT_EQ(broker.stored[i].id, committed[i]) << "seed " << seed;
    }
  }
}

}  // namespace
}  // namespace faultline::outbox
