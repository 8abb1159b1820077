// Seeded tests of the `idempotency` scenario and checker unit tests on hand-built observations.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/env/task.h"
#include "faultline/lab/scenario.h"
#include "faultline/sim/history.h"
#include "faultline/sim/world.h"
#include "src/lab/idempotency_broker.h"
#include "src/lab/idempotency_observations.h"
#include "src/lab/scenarios.h"
#include "tests/sim/scenario_test_util.h"

namespace faultline::lab {
namespace {

RunResult RunSeed(std::string_view variant, uint64_t seed) {
  return RunOne("idempotency", variant, seed).value();
}

// Idempotency keys + provider keys + the inbox: no double charge, no lost charge, identical
// replays, reused keys refused. And the faults did happen: takeovers, fencing, redeliveries, late
// acks, mismatches, aimed crashes and pauses, broker crashes.
TEST(Idempotency, HardenedHoldsOnARangeOfSeeds) {
  double takeovers = 0, fenced = 0, redeliveries = 0, late_acks = 0, mismatches = 0, replays = 0;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    const RunResult r = RunSeed("hardened", seed);
    EXPECT_EQ(r.violation_count(), 0) << "seed " << seed << ": " << Describe(r);
    EXPECT_GT(r.metrics.at("charges"), 60) << seed;  // it did charge, not just refuse
    EXPECT_GT(r.metrics.at("crashes_aimed") + r.metrics.at("pauses_aimed"), 0) << seed;
    EXPECT_GT(r.metrics.at("broker_crashes"), 0) << seed;
    EXPECT_EQ(r.metrics.at("unacked_messages"), 0) << seed;  // the quiet phase drains the stream
    takeovers += r.metrics.at("takeovers");
    fenced += r.metrics.at("fenced");
    redeliveries += r.metrics.at("redeliveries");
    late_acks += r.metrics.at("late_acks");
    mismatches += r.metrics.at("mismatches");
    replays += r.metrics.at("replays");
  }
  EXPECT_GT(takeovers, 30);
  EXPECT_GT(fenced, 0);
  EXPECT_GT(redeliveries, 300);
  EXPECT_GT(late_acks, 0);
  EXPECT_GT(mismatches, 30);
  EXPECT_GT(replays, 30);
}

// Check-then-act: a retry or a redelivery during a slow charge, or after a crash between the charge
// and the mark, charges the card again; a reused key replays another request's answer.
TEST(Idempotency, NaiveDoubleCharges) {
  const RunResult first = RunSeed("naive", 1);
  EXPECT_GT(Count(first, "double-charge"), 0) << Describe(first);
  EXPECT_NE(first.violation_details.at("double-charge").find("charged"), std::string::npos);
  int double_charged = 0;
  int reuse_missed = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    const RunResult r = RunSeed("naive", seed);
    double_charged += Count(r, "double-charge") > 0;
    reuse_missed += Count(r, "key-reuse-not-reported") > 0;
    EXPECT_EQ(r.metrics.at("mismatches"), 0) << seed;  // no fingerprints: never a 422
  }
  EXPECT_GE(double_charged, 9);
  EXPECT_GE(reuse_missed, 5);
}

TEST(Idempotency, SameSeedSameRun) {
  for (const char* variant : {"naive", "hardened"}) {
    sim::History h1, h2;
    const std::vector<VariantSpec> variants = IdempotencyScenario()->variants();
    RunContext ctx;
    ctx.seed = 42;
    ctx.variant = FindVariant(variants, variant);
    ASSERT_NE(ctx.variant, nullptr);
    ctx.history_out = &h1;
    const RunResult a = IdempotencyScenario()->Run(ctx);
    ctx.history_out = &h2;
    const RunResult b = IdempotencyScenario()->Run(ctx);
    EXPECT_EQ(a.hash, b.hash) << variant;
    EXPECT_EQ(a.events, b.events) << variant;
    EXPECT_EQ(a.metrics, b.metrics) << variant;
    EXPECT_EQ(a.violations, b.violations) << variant;
    ASSERT_EQ(h1.size(), h2.size()) << variant;
    EXPECT_GT(h1.size(), 100u) << variant;  // the clients' ops are exported
    for (size_t i = 0; i < h1.size(); ++i) {
      EXPECT_EQ(h1.ops()[i].value, h2.ops()[i].value) << variant << " op " << i;
    }
    EXPECT_NE(a.hash, RunSeed(variant, 43).hash) << variant;
  }
}

// ---- the checker on hand-built observations ----

constexpr int64_t kMs = 1'000'000;

ProviderCharge Charge(const std::string& payment, const std::string& id, int64_t ms,
                      uint32_t node) {
  return ProviderCharge{payment, id, 100, ms * kMs, node, ""};
}

ClientAnswer Answer(const std::string& key, const std::string& payment, int64_t first_ms,
                    int64_t ms, uint32_t attempt, ClientAnswerKind kind,
                    const std::string& body = "") {
  ClientAnswer a;
  a.client = 0;
  a.key = key;
  a.payment = payment;
  a.request = "POST /v1/charges payment=" + payment + "&amount=100";
  a.first_invoke_ns = first_ms * kMs;
  a.time_ns = ms * kMs;
  a.attempt = attempt;
  a.kind = kind;
  a.body = body;
  return a;
}

RunResult Judge(const IdempotencyObservations& obs) {
  RunResult r;
  CheckIdempotency(obs, &r);
  return r;
}

// A retried request answered once, replayed identically, a reused key refused, a message acked
// after its charge: clean.
IdempotencyObservations CleanRecord() {
  IdempotencyObservations obs;
  obs.charges.push_back(Charge("p1", "ch1", 120, 0));
  obs.charges.push_back(Charge("mp1", "ch2", 300, 1));
  obs.answers.push_back(Answer("k1", "p1", 100, 500, 1, ClientAnswerKind::kTimeout));
  obs.answers.push_back(Answer("k1", "p1", 100, 600, 2, ClientAnswerKind::kInProgress));
  obs.answers.push_back(Answer("k1", "p1", 100, 900, 3, ClientAnswerKind::kCharged, "{ch1}"));
  obs.answers.push_back(Answer("k1", "p1", 100, 1200, 4, ClientAnswerKind::kCharged, "{ch1}"));
  obs.answers.push_back(Answer("k1", "p7", 2000, 2100, 1, ClientAnswerKind::kMismatch));
  obs.acks.push_back(BrokerAck{"m1", "mp1", 1, 1, 2, 800 * kMs});
  obs.counters.messages_published = 1;
  return obs;
}

TEST(IdempotencyChecker, CleanRecordIsClean) {
  const RunResult r = Judge(CleanRecord());
  EXPECT_EQ(r.violation_count(), 0) << Describe(r);
  EXPECT_EQ(r.metrics.at("charges"), 2);
  EXPECT_EQ(r.metrics.at("double_charges"), 0);
  EXPECT_EQ(r.metrics.at("lost_charges"), 0);
  EXPECT_EQ(r.metrics.at("mismatches"), 1);
  EXPECT_EQ(r.metrics.at("unacked_messages"), 0);
}

TEST(IdempotencyChecker, DoubleCharge) {
  IdempotencyObservations obs = CleanRecord();
  obs.charges.push_back(Charge("p1", "ch9", 3950, 1));
  obs.charges.push_back(Charge("p1", "ch10", 4000, 0));
  const RunResult r = Judge(obs);
  EXPECT_EQ(Count(r, "double-charge"), 2);
  EXPECT_EQ(r.violation_count(), 2);
  EXPECT_EQ(r.violation_details.at("double-charge"),
            "payment p1 charged 3 times, expected once (0.120 s by n0 as ch1, 3.950 s by n1 as "
            "ch9, 4.000 s by n0 as ch10)");
  EXPECT_EQ(r.metrics.at("double_charged_payments"), 1);
}

TEST(IdempotencyChecker, LostChargeAnsweredToClient) {
  IdempotencyObservations obs = CleanRecord();
  obs.charges.erase(obs.charges.begin());  // p1 never charged
  const RunResult r = Judge(obs);
  EXPECT_EQ(Count(r, "lost-charge"), 1);  // two 200s for p1, one lost payment
  EXPECT_NE(r.violation_details.at("lost-charge").find("payment p1 answered 200"),
            std::string::npos);
  EXPECT_EQ(r.metrics.at("lost_charges"), 1);
}

TEST(IdempotencyChecker, LostChargeAckedToBroker) {
  IdempotencyObservations obs = CleanRecord();
  obs.acks.push_back(BrokerAck{"m2", "mp2", 0, 1, 1, 900 * kMs});
  const RunResult r = Judge(obs);
  EXPECT_EQ(Count(r, "lost-charge"), 1);
  EXPECT_NE(r.violation_details.at("lost-charge").find("message m2 (payment mp2) acked by n0"),
            std::string::npos);
}

TEST(IdempotencyChecker, ResponseDiffersBetweenRetries) {
  IdempotencyObservations obs = CleanRecord();
  obs.answers[3].body = "{ch2}";
  const RunResult r = Judge(obs);
  EXPECT_EQ(Count(r, "response-differs"), 1);
  EXPECT_EQ(r.violation_count(), 1);
  EXPECT_NE(r.violation_details.at("response-differs").find("expected the first answer '{ch1}'"),
            std::string::npos);
}

TEST(IdempotencyChecker, KeyReuseNotReported) {
  IdempotencyObservations obs = CleanRecord();
  obs.answers[4].kind = ClientAnswerKind::kCharged;  // the reuse got the old request's answer
  obs.answers[4].body = "{ch1}";
  const RunResult r = Judge(obs);
  EXPECT_EQ(Count(r, "key-reuse-not-reported"), 1);
  EXPECT_EQ(r.violation_count(), 1);  // judged as a reuse, not as a lost charge of p7
  EXPECT_NE(r.violation_details.at("key-reuse-not-reported").find("expected 422 mismatch"),
            std::string::npos);
}

TEST(IdempotencyChecker, FalseMismatch) {
  IdempotencyObservations obs = CleanRecord();
  obs.answers[1].kind = ClientAnswerKind::kMismatch;  // the key's own request refused
  const RunResult r = Judge(obs);
  EXPECT_EQ(Count(r, "false-mismatch"), 1);
  EXPECT_EQ(r.violation_count(), 1);
}

// The owner of a key is the request sent first, whatever order the answers arrived in.
TEST(IdempotencyChecker, KeyOwnerIsTheEarliestRequest) {
  IdempotencyObservations obs;
  obs.charges.push_back(Charge("p1", "ch1", 120, 0));
  obs.answers.push_back(Answer("k1", "p2", 2000, 2100, 1, ClientAnswerKind::kMismatch));
  obs.answers.push_back(Answer("k1", "p1", 100, 3000, 9, ClientAnswerKind::kCharged, "{ch1}"));
  EXPECT_EQ(Judge(obs).violation_count(), 0);
}

// The owner never reached the server (every attempt timed out or was refused, nothing charged):
// to the server the reuse is the first request under the key, and its 200 is no violation.
TEST(IdempotencyChecker, ReuseOfAKeyTheServerNeverRecorded) {
  IdempotencyObservations obs;
  obs.charges.push_back(Charge("p2", "ch1", 2050, 0));
  obs.answers.push_back(Answer("k1", "p1", 100, 500, 1, ClientAnswerKind::kTimeout));
  obs.answers.push_back(Answer("k1", "p1", 100, 600, 2, ClientAnswerKind::kRefused));
  obs.answers.push_back(Answer("k1", "p2", 2000, 2100, 1, ClientAnswerKind::kCharged, "{ch1}"));
  EXPECT_EQ(Judge(obs).violation_count(), 0);
  // ... but once the owner's payment was charged, the server had recorded the key.
  obs.charges.insert(obs.charges.begin(), Charge("p1", "ch0", 300, 1));
  const RunResult r = Judge(obs);
  EXPECT_EQ(Count(r, "key-reuse-not-reported"), 1) << Describe(r);
  EXPECT_NE(r.violation_details.at("key-reuse-not-reported").find("recorded under it by 0.300 s"),
            std::string::npos);
  // A reuse's 200 is judged as a reuse, not also as a lost charge of its own payment.
  obs.charges.pop_back();
  EXPECT_EQ(Judge(obs).violation_count(), 1);
}

// ---- the broker: JetStream's delivery and ack semantics ----

class ConsumerNode final : public sim::Node {
 public:
  explicit ConsumerNode(Env& env) : rpc(env) {}
  Rpc rpc;
};

class IdempotencyBrokerTest : public ::testing::Test {
 protected:
  void Boot(Ratio duplicate) {
    world_ = std::make_unique<sim::World>(7, sim::WorldOptions::Nodes(3));
    sim::World* w = world_.get();
    IdempotencyObservations* o = &obs_;
    world_->Boot(NodeId(0), [w, o, duplicate](Env& env) -> std::unique_ptr<sim::Node> {
      return std::make_unique<BrokerNode>(env, w, o, BrokerOptions{kAckWait, duplicate});
    });
    for (uint32_t i = 1; i <= 2; ++i) {
      world_->Boot(NodeId(i), [](Env& env) { return std::make_unique<ConsumerNode>(env); });
    }
  }

  void Publish(const std::string& id) {
    sim::World* w = world_.get();
    auto message = std::make_shared<BrokerMessage>(BrokerMessage{id, "pay-" + id, 100});
    world_->env(NodeId(0)).executor().Post([w, message] {
      EXPECT_TRUE(w->node_as<BrokerNode>(NodeId(0))->Publish(*message).ok());
    });
    world_->RunFor(Duration::Millis(1));
  }

  static Task<void> DoCall(Rpc* rpc, uint16_t method, Bytes request,
                           std::optional<Result<Bytes>>* out) {
    out->emplace(co_await rpc->Call(NodeId(0), method, request, Duration::Millis(100)));
  }

  Result<Bytes> Call(uint32_t from, uint16_t method, Bytes request) {
    std::optional<Result<Bytes>> out;
    Rpc* rpc = &world_->node_as<ConsumerNode>(NodeId(from))->rpc;
    world_->env(NodeId(from)).Spawn(DoCall(rpc, method, std::move(request), &out));
    world_->RunFor(Duration::Millis(20));
    FL_ASSERT(out.has_value());
    return std::move(*out);
  }

  // The delivery fetched by `from`, or nullopt when the broker had none for it.
  std::optional<BrokerDelivery> Fetch(uint32_t from) {
    Result<Bytes> r = Call(from, kBrokerFetch, {});
    EXPECT_TRUE(r.ok());
    if (!r.ok() || r->empty() || (*r)[0] == 0) return std::nullopt;
    Result<BrokerDelivery> d =
        DecodeDelivery(std::span<const uint8_t>(r->data() + 1, r->size() - 1));
    EXPECT_TRUE(d.ok());
    return d.ok() ? std::optional<BrokerDelivery>(*d) : std::nullopt;
  }

  Status Settle(uint32_t from, uint16_t method, const BrokerDelivery& d) {
    Bytes req;
    ByteWriter w(&req);
    w.U64(d.seq);
    w.U32(d.delivery);
    return Call(from, method, std::move(req)).status();
  }

  static constexpr Duration kAckWait = Duration::Millis(300);
  IdempotencyObservations obs_;
  std::unique_ptr<sim::World> world_;
};

// Redelivery after ack-wait to the other consumer; a nak from the superseded delivery does not
// pull the message back; the first consumer's late ack is accepted and settles the redelivery
// (nats-server #4786); a settled message is never delivered again.
TEST_F(IdempotencyBrokerTest, RedeliveryAndLateAck) {
  Boot(Ratio::Zero());
  Publish("m1");
  const std::optional<BrokerDelivery> first = Fetch(1);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->seq, 1u);
  EXPECT_EQ(first->delivery, 1u);
  EXPECT_EQ(first->message.payment, "pay-m1");
  EXPECT_FALSE(Fetch(2).has_value());  // in flight, within ack-wait
  world_->RunFor(kAckWait);
  const std::optional<BrokerDelivery> second = Fetch(2);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->seq, 1u);
  EXPECT_EQ(second->delivery, 2u);
  EXPECT_EQ(obs_.counters.redeliveries, 1);
  ASSERT_TRUE(Settle(1, kBrokerNak, *first).ok());
  EXPECT_FALSE(Fetch(1).has_value());  // the superseded delivery's nak was ignored
  ASSERT_TRUE(Settle(1, kBrokerAck, *first).ok());
  ASSERT_EQ(obs_.acks.size(), 1u);
  EXPECT_EQ(obs_.acks[0].consumer, 1u);
  EXPECT_EQ(obs_.acks[0].ack_delivery, 1u);
  EXPECT_EQ(obs_.acks[0].deliveries, 2u);
  EXPECT_EQ(obs_.counters.late_acks, 1);
  world_->RunFor(kAckWait * 2);
  EXPECT_FALSE(Fetch(2).has_value());  // settled by the late ack: never redelivered
  ASSERT_TRUE(Settle(2, kBrokerAck, *second).ok());  // acks are idempotent
  EXPECT_EQ(obs_.acks.size(), 1u);
}

// The stream survives a crash: an acked message stays settled, one in flight is available again
// at once, and a duplicate publish of a message it already has is ignored.
TEST_F(IdempotencyBrokerTest, CrashKeepsTheStream) {
  Boot(Ratio::Zero());
  Publish("m1");
  Publish("m2");
  const std::optional<BrokerDelivery> m1 = Fetch(1);
  ASSERT_TRUE(m1.has_value());
  ASSERT_TRUE(Settle(1, kBrokerAck, *m1).ok());
  const std::optional<BrokerDelivery> m2 = Fetch(1);
  ASSERT_TRUE(m2.has_value());
  EXPECT_EQ(m2->message.id, "m2");
  world_->Crash(NodeId(0));
  world_->Restart(NodeId(0));
  world_->RunFor(Duration::Millis(1));
  Publish("m2");  // the publisher retries: deduplicated by message id
  EXPECT_EQ(obs_.counters.messages_published, 2);
  const std::optional<BrokerDelivery> again = Fetch(2);  // no ack-wait to sit out
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->message.id, "m2");
  EXPECT_EQ(again->delivery, 2u);
  EXPECT_FALSE(Fetch(2).has_value());  // m1 stays acked
}

TEST_F(IdempotencyBrokerTest, DuplicateDeliveryWithinAckWait) {
  Boot(Ratio::Percent(100));
  Publish("m1");
  const std::optional<BrokerDelivery> first = Fetch(1);
  ASSERT_TRUE(first.has_value());
  const std::optional<BrokerDelivery> dup = Fetch(2);
  ASSERT_TRUE(dup.has_value());
  EXPECT_EQ(dup->seq, first->seq);
  EXPECT_EQ(dup->delivery, 2u);
  EXPECT_EQ(obs_.counters.duplicate_deliveries, 1);
  EXPECT_EQ(Call(1, kBrokerAck, Bytes{1, 2}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace faultline::lab
