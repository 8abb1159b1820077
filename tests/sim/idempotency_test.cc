// Seeded tests of the `idempotency` scenario and checker unit tests on hand-built observations.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "faultline/lab/scenario.h"
#include "faultline/sim/history.h"
#include "src/lab/idempotency_observations.h"
#include "src/lab/scenarios.h"

namespace faultline::lab {
namespace {

RunResult RunSeed(std::string_view variant, uint64_t seed) {
  return RunOne("idempotency", variant, seed).value();
}

int64_t Count(const RunResult& r, const std::string& name) {
  auto it = r.violations.find(name);
  return it == r.violations.end() ? 0 : it->second;
}

std::string Describe(const RunResult& r) {
  std::string s;
  for (const auto& [name, count] : r.violations) {
    s += name + "=" + std::to_string(count) + " (" + r.violation_details.at(name) + ") ";
  }
  return s;
}

// Idempotency keys + provider keys + the inbox: no double charge, no lost charge, identical replays,
// every reused key refused — and the faults did happen: takeovers, redeliveries, mismatches, aimed
// crashes and pauses.
TEST(Idempotency, HardenedHoldsOnARangeOfSeeds) {
  double takeovers = 0, fenced = 0, redeliveries = 0, late_acks = 0, mismatches = 0, replays = 0;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    const RunResult r = RunSeed("hardened", seed);
    EXPECT_EQ(r.violation_count(), 0) << "seed " << seed << ": " << Describe(r);
    EXPECT_GT(r.metrics.at("charges"), 60) << seed;  // it did charge, not just refuse
    EXPECT_GT(r.metrics.at("crashes_aimed") + r.metrics.at("pauses_aimed"), 0) << seed;
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

// A retried request answered once, replayed identically, a reused key refused, a message acked after
// its charge: clean.
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

}  // namespace
}  // namespace faultline::lab
