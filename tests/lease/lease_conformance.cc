#include "tests/lease/lease_conformance.h"

#include <optional>
#include <utility>

namespace faultline::lease_conformance {
namespace {

using lease::LeaseGrant;
using lease::LeaseInfo;

template <typename T>
Task<void> Capture(Task<T> task, std::shared_ptr<std::optional<T>> out) {
  T value = co_await std::move(task);
  out->emplace(std::move(value));
}

template <typename T>
T RunCall(LeaseWorld& world, size_t i, Task<T> task) {
  auto out = std::make_shared<std::optional<T>>();
  if (!world.RunTask(i, Capture(std::move(task), out), world.CallLimit()) || !out->has_value()) {
    return T(DeadlineExceededError("the call did not finish within CallLimit()"));
  }
  return std::move(**out);
}

bool Contains(const Status& s, const std::string& text) {
  return std::string(s.message()).find(text) != std::string::npos;
}

std::string NodeText(NodeId id) { return "node " + std::to_string(id.value()); }

}  // namespace

std::string LeaseConformanceParamName(
    const ::testing::TestParamInfo<LeaseConformanceParam>& info) {
  return info.param.name;
}

void LeaseConformanceTest::SetUp() {
  Result<std::unique_ptr<LeaseWorld>> made = GetParam().make();
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  world_ = std::move(made).value();
  ASSERT_GE(world_->clients(), 2u);
}

void LeaseConformanceTest::TearDown() { world_.reset(); }

Result<LeaseGrant> LeaseConformanceTest::Acquire(size_t i, const std::string& name, Duration ttl) {
  return RunCall(*world_, i, world_->service(i).Acquire(name, ttl));
}
Result<LeaseGrant> LeaseConformanceTest::KeepAlive(size_t i, const LeaseGrant& grant) {
  return RunCall(*world_, i, world_->service(i).KeepAlive(grant));
}
Status LeaseConformanceTest::Revoke(size_t i, const LeaseGrant& grant) {
  return RunCall(*world_, i, world_->service(i).Revoke(grant));
}
Result<LeaseInfo> LeaseConformanceTest::Read(size_t i, const std::string& name) {
  return RunCall(*world_, i, world_->service(i).Read(name));
}

TEST_P(LeaseConformanceTest, AcquireIsExclusiveAndTheLoserLearnsTheHolder) {
  const Duration ttl = world().Ttl();
  const MonoTime before = world().Now(0);
  Result<LeaseGrant> a = Acquire(0, "exclusive", ttl);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->name, "exclusive");
  EXPECT_EQ(a->holder, world().id(0));
  EXPECT_EQ(a->ttl, ttl);
  EXPECT_GT(a->token, FencingToken());
  EXPECT_GE(a->sent_at, before);
  EXPECT_TRUE(a->Valid(world().Now(0)));
  Result<LeaseGrant> b = Acquire(1, "exclusive", ttl);
  EXPECT_EQ(b.status().code(), StatusCode::kAlreadyExists) << b.status().ToString();
  EXPECT_TRUE(Contains(b.status(), NodeText(world().id(0)))) << b.status().ToString();
  // Another name is independent.
  Result<LeaseGrant> other = Acquire(1, "exclusive-other", ttl);
  EXPECT_TRUE(other.ok()) << other.status().ToString();
}

TEST_P(LeaseConformanceTest, TokensStrictlyIncreaseFromHolderToHolder) {
  const Duration ttl = world().Ttl();
  FencingToken last;
  for (int round = 0; round < 4; ++round) {
    const size_t who = static_cast<size_t>(round) % 2;
    Result<LeaseGrant> g = Acquire(who, "tokens", ttl);
    ASSERT_TRUE(g.ok()) << round << ": " << g.status().ToString();
    EXPECT_GT(g->token, last) << round;
    last = g->token;
    ASSERT_TRUE(Revoke(who, *g).ok());
  }
}

TEST_P(LeaseConformanceTest, RenewalKeepsTheTokenAndMovesValidityToTheRenewalsSendTime) {
  const Duration ttl = world().Ttl();
  Result<LeaseGrant> g = Acquire(0, "renew", ttl);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  world().Advance(ttl / 4);
  const MonoTime before = world().Now(0);
  Result<LeaseGrant> r = KeepAlive(0, *g);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->token, g->token);
  EXPECT_EQ(r->holder, g->holder);
  EXPECT_GE(r->sent_at, before);
  EXPECT_GT(r->valid_until, g->valid_until);
  EXPECT_LE(r->valid_until, r->sent_at + ttl);
  // Renewed past the first grant's validity: still held by client 0.
  while (world().Now(0) < g->valid_until + ttl / 10) {
    Result<LeaseGrant> again = KeepAlive(0, *r);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    r = std::move(again);
    world().Advance(ttl / 4);
  }
  EXPECT_EQ(Acquire(1, "renew", ttl).status().code(), StatusCode::kAlreadyExists);
  Result<LeaseInfo> info = Read(1, "renew");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->token, g->token);
}

// lease_service.h: Acquire by the holder renews under the same token, never kAlreadyExists naming
// the caller; the old grant stays renewable and a revoke of either frees the name.
TEST_P(LeaseConformanceTest, AcquireByTheHolderRenewsUnderTheSameToken) {
  const Duration ttl = world().Ttl();
  Result<LeaseGrant> g = Acquire(0, "again", ttl);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  world().Advance(ttl / 4);
  const MonoTime before = world().Now(0);
  Result<LeaseGrant> again = Acquire(0, "again", ttl);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->token, g->token);
  EXPECT_EQ(again->holder, world().id(0));
  EXPECT_EQ(again->name, "again");
  EXPECT_GE(again->sent_at, before);
  EXPECT_GT(again->valid_until, g->valid_until);
  EXPECT_LE(again->valid_until, again->sent_at + ttl);
  EXPECT_TRUE(again->Valid(world().Now(0)));
  // Still one holder, under the one token.
  Result<LeaseGrant> other = Acquire(1, "again", ttl);
  EXPECT_EQ(other.status().code(), StatusCode::kAlreadyExists) << other.status().ToString();
  EXPECT_TRUE(Contains(other.status(), NodeText(world().id(0)))) << other.status().ToString();
  Result<LeaseInfo> info = Read(1, "again");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->holder, world().id(0));
  EXPECT_EQ(info->token, g->token);
  // The first grant and the second are one lease: renewing the first works, and the name is still
  // held past the first grant's validity.
  Result<LeaseGrant> renewed = KeepAlive(0, *g);
  ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
  EXPECT_EQ(renewed->token, g->token);
  world().Advance(g->valid_until - world().Now(0) + ttl / 10);
  EXPECT_EQ(Acquire(1, "again", ttl).status().code(), StatusCode::kAlreadyExists);
  // Revoking it frees the name at once, for a higher token.
  ASSERT_TRUE(Revoke(0, *renewed).ok());
  EXPECT_EQ(Read(1, "again").status().code(), StatusCode::kNotFound);
  Result<LeaseGrant> next = Acquire(1, "again", ttl);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_GT(next->token, g->token);
}

TEST_P(LeaseConformanceTest, KeepAliveAfterValidityPassedFails) {
  const Duration ttl = world().Ttl();
  Result<LeaseGrant> g = Acquire(0, "late", ttl);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  world().Advance(g->valid_until - world().Now(0) + Duration::Millis(1));
  ASSERT_FALSE(g->Valid(world().Now(0)));
  Result<LeaseGrant> r = KeepAlive(0, *g);
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().ToString();
}

TEST_P(LeaseConformanceTest, RevokeFreesTheNameAtOnce) {
  const Duration ttl = world().Ttl();
  Result<LeaseGrant> g = Acquire(0, "revoke", ttl);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_TRUE(Revoke(0, *g).ok());
  EXPECT_EQ(Read(1, "revoke").status().code(), StatusCode::kNotFound);
  Result<LeaseGrant> next = Acquire(1, "revoke", ttl);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_GT(next->token, g->token);
  // The old holder cannot renew what it released.
  EXPECT_FALSE(KeepAlive(0, *g).ok());
}

TEST_P(LeaseConformanceTest, ReadNamesTheLiveHolderOrNotFound) {
  const Duration ttl = world().Ttl();
  EXPECT_EQ(Read(0, "read").status().code(), StatusCode::kNotFound);
  Result<LeaseGrant> g = Acquire(1, "read", ttl);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  for (size_t i = 0; i < 2; ++i) {
    Result<LeaseInfo> info = Read(i, "read");
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->holder, world().id(1));
    EXPECT_EQ(info->token, g->token);
  }
}

TEST_P(LeaseConformanceTest, TtlOutsideTheBoundsIsRejectedNamingTheBound) {
  for (const Duration bad : {Duration::Zero(), Duration::Millis(-5), Duration::Millis(9),
                             Duration::Seconds(3601)}) {
    Result<LeaseGrant> g = Acquire(0, "bounds", bad);
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument) << bad.nanos();
    EXPECT_TRUE(Contains(g.status(), "ttl")) << g.status().ToString();
  }
  EXPECT_EQ(Read(1, "bounds").status().code(), StatusCode::kNotFound);
}

TEST_P(LeaseConformanceTest, ExpiryFreesTheNameWithinTheServicesBound) {
  const Duration ttl = world().Ttl();
  // Client 1's clock before the grant was sent: the lease cannot expire before ttl has passed
  // after that on any clock running within the worlds' drift (< 1 %) of client 1's.
  const MonoTime other_before = world().Now(1);
  Result<LeaseGrant> g = Acquire(0, "expiry", ttl);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  // Never early: still held just before the holder's validity ends.
  world().Advance(g->valid_until - world().Now(0) - ttl / 10);
  EXPECT_EQ(Acquire(1, "expiry", ttl).status().code(), StatusCode::kAlreadyExists);
  // Free by the bound (on the holder's clock).
  const MonoTime bound = g->sent_at + world().ExpiryBound(ttl);
  Result<LeaseGrant> next = AlreadyExistsError("not tried");
  while (!next.ok() && world().Now(0) < bound) {
    next = Acquire(1, "expiry", ttl);
    if (!next.ok()) world().Advance(ttl / 10);
  }
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_GT(next->token, g->token);
  EXPECT_GE(next->sent_at, other_before + ttl - ttl / 100) << "expired before ttl";
}

TEST_P(LeaseConformanceTest, ValidityIsComputedFromTheSendTimeSoASlowReplyShortensIt) {
  const Duration ttl = world().Ttl();
  const Duration slow = world().SlowReply();
  ASSERT_LT(slow, ttl);
  world().SetReplyDelay(0, slow);
  const MonoTime sent_no_later = world().Now(0);
  Result<LeaseGrant> g = Acquire(0, "slow", ttl);
  const MonoTime received = world().Now(0);
  world().SetReplyDelay(0, Duration::Zero());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_LE(g->sent_at, sent_no_later + Duration::Millis(1));
  EXPECT_GE(received - g->sent_at, slow);
  // valid_until counts from the send, never from the (late) reply.
  EXPECT_LE(g->valid_until, g->sent_at + ttl);
  EXPECT_LE(g->valid_until - received, ttl - slow);
}

}  // namespace faultline::lease_conformance
