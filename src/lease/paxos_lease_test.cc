// Tests for faultline/lease/paxos_lease.h and lease_service.h: the PaxosLease majority lease
// service in the simulator (five nodes, each an acceptor and a client). The contract of
// lease_service.h is checked case by case (tokens, renewals, revoke, lock-delay, partitions,
// restarts, bad input), then as a property: under a random nemesis with drifting clocks, at most
// one node ever holds a valid grant, tokens increase from holder to holder, and after the faults
// heal someone holds the lease again within a bound.
#include "faultline/lease/paxos_lease.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/sim/nemesis.h"
#include "faultline/sim/partition.h"
#include "faultline/sim/world.h"

namespace faultline::lease {
namespace {

namespace pli = paxos_lease_internal;

constexpr Duration kTtl = Duration::Millis(300);
constexpr char kName[] = "leader";

PaxosLeaseOptions Opts(uint32_t nodes = 5) {
  PaxosLeaseOptions o;
  for (uint32_t i = 0; i < nodes; ++i) o.acceptors.push_back(NodeId(i));
  o.drift_ppm_max = 1000;
  o.margin = Duration::Millis(5);
  o.round_timeout = Duration::Millis(30);
  o.lock_delay = Duration::Zero();
  o.restart_quiet = kTtl + Duration::Millis(20);
  return o;
}

// A replica: one Rpc shared by an acceptor and a client. The safety workload keeps its current
// grant here, where the world-level probe can see it.
class LeaseNode final : public sim::Node {
 public:
  LeaseNode(Env& env, const PaxosLeaseOptions& options, bool restarted, bool campaign)
      : env_(env), rpc_(env), campaign_(campaign) {
    auto acceptor = PaxosLeaseAcceptor::Create(env, rpc_, options, restarted);
    acceptor_status_ = acceptor.status();
    if (acceptor.ok()) acceptor_ = std::move(acceptor).value();
    auto client = PaxosLeaseClient::Create(env, rpc_, options);
    FL_ASSERT(client.ok());
    client_ = std::move(client).value();
  }
  void Start() override;

  Env& env() { return env_; }
  Rpc& rpc() { return rpc_; }
  PaxosLeaseClient& client() { return *client_; }
  void DropClient() { client_.reset(); }
  PaxosLeaseAcceptor* acceptor() { return acceptor_.get(); }
  const Status& acceptor_status() const { return acceptor_status_; }

  std::optional<LeaseGrant> grant;
  std::function<void(const LeaseGrant&)> on_grant;

 private:
  Env& env_;
  Rpc rpc_;  // first: outlives the acceptor and the client
  bool campaign_;
  Status acceptor_status_;
  std::unique_ptr<PaxosLeaseAcceptor> acceptor_;
  std::unique_ptr<PaxosLeaseClient> client_;
};

Task<void> Campaign(LeaseNode* node);

template <typename T>
Task<void> Capture(Task<T> task, std::shared_ptr<std::optional<T>> out) {
  T value = co_await std::move(task);
  out->emplace(std::move(value));
}

Task<Result<Bytes>> RawCall(Rpc* rpc, NodeId to, uint16_t method, Bytes request) {
  Result<Bytes> reply = co_await rpc->Call(to, method, request, Duration::Millis(50));
  co_return reply;
}

struct Cluster {
  sim::World world;
  PaxosLeaseOptions options;
  bool campaign = false;
  std::function<void(const LeaseGrant&)> on_grant;
  int create_failures = 0;

  explicit Cluster(uint64_t seed, PaxosLeaseOptions o = Opts(),
                   sim::WorldOptions wo = sim::WorldOptions::Nodes(5), bool campaign_in = false)
      : world(seed, wo), options(std::move(o)), campaign(campaign_in) {
    for (uint32_t i = 0; i < world.node_count(); ++i) {
      world.Boot(NodeId(i), [this](Env& env) {
        const bool restarted = world.incarnation(env.self()) > 0;
        auto node = std::make_unique<LeaseNode>(env, options, restarted, campaign);
        node->on_grant = on_grant;
        if (!node->acceptor_status().ok()) ++create_failures;
        return node;
      });
    }
  }
  Cluster(const Cluster&) = delete;

  LeaseNode& node(uint32_t i) { return *world.node_as<LeaseNode>(NodeId(i)); }
  PaxosLeaseClient& client(uint32_t i) { return node(i).client(); }

  // Runs `task` on node i until it finishes (or `limit` passes: an empty optional).
  template <typename T>
  std::optional<T> Await(uint32_t i, Task<T> task, Duration limit = Duration::Seconds(2)) {
    auto out = std::make_shared<std::optional<T>>();
    world.env(NodeId(i)).Spawn(Capture(std::move(task), out));
    const sim::SimTime end = world.now() + limit;
    while (!out->has_value() && world.now() < end) world.RunFor(Duration::Micros(100));
    return *out;
  }
  Result<LeaseGrant> Acquire(uint32_t i, std::string name = kName, Duration ttl = kTtl) {
    auto r = Await(i, client(i).Acquire(std::move(name), ttl));
    if (!r.has_value()) return UnknownError();
    return std::move(*r);
  }
  Result<LeaseGrant> KeepAlive(uint32_t i, const LeaseGrant& grant) {
    auto r = Await(i, client(i).KeepAlive(grant));
    if (!r.has_value()) return UnknownError();
    return std::move(*r);
  }
  Status Revoke(uint32_t i, const LeaseGrant& grant) {
    auto r = Await(i, client(i).Revoke(grant));
    if (!r.has_value()) return UnknownError();
    return std::move(*r);
  }
  Result<LeaseInfo> Read(uint32_t i, std::string name = kName) {
    auto r = Await(i, client(i).Read(std::move(name)));
    if (!r.has_value()) return UnknownError();
    return std::move(*r);
  }
  // Sends a hand-made request from node `from` to acceptor `to`.
  Result<Bytes> Raw(uint32_t from, uint32_t to, pli::Method method, const pli::Request& req) {
    Bytes bytes = pli::EncodeRequest(method, req);
    const auto m = static_cast<uint16_t>(options.method_base + static_cast<uint16_t>(method));
    auto r = Await(from, RawCall(&node(from).rpc(), NodeId(to), m, std::move(bytes)));
    if (!r.has_value()) return UnknownError();
    return std::move(*r);
  }
  Result<pli::Reply> Prepare(uint32_t from, uint32_t to, uint64_t ballot, std::string name = "a") {
    pli::Request req;
    req.name = std::move(name);
    req.ballot = ballot;
    FL_ASSIGN_OR_RETURN(Bytes bytes, Raw(from, to, pli::Method::kPrepare, req));
    return pli::DecodeReply(bytes);
  }
  uint64_t Sent() { return world.network().stats().sent; }

  static Status UnknownError() { return Status(StatusCode::kUnknown, "did not finish"); }
};

bool Contains(const Status& s, std::string_view text) {
  return s.message().find(text) != std::string_view::npos;
}

// ---- LeaseService helpers ----

TEST(LeaseServiceTest, ValidateTtlRejectsOutOfRangeTtlsNamingTheBound) {
  // Absurd TTLs are bad input, not a lease that expires at once or lives for a week.
  EXPECT_EQ(ValidateTtl(Duration::Zero()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateTtl(Duration::Millis(-5)).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(ValidateTtl(Duration::Millis(9)), "kTtlMin"));
  EXPECT_TRUE(ValidateTtl(LeaseLimits::kTtlMin).ok());
  EXPECT_TRUE(ValidateTtl(LeaseLimits::kTtlMax).ok());
  EXPECT_TRUE(Contains(ValidateTtl(LeaseLimits::kTtlMax + Duration::Nanos(1)), "kTtlMax"));
  EXPECT_EQ(ValidateTtl(Duration::Infinite()).code(), StatusCode::kInvalidArgument);
}

TEST(LeaseServiceTest, ValidUntilShrinksTtlByDriftAndMarginAndNeverPrecedesTheSend) {
  // valid_until = t_send + ttl·(1 − ρ) − margin: 1 s at 1000 ppm and 50 ms margin is 949 ms. The
  // drift share rounds up (never overstate validity), and bad bounds only shorten it.
  const MonoTime t = MonoTime::FromNanos(5'000'000'000);
  EXPECT_EQ(LeaseValidUntil(t, Duration::Seconds(1), 1000, Duration::Millis(50)),
            t + Duration::Millis(949));
  EXPECT_EQ(LeaseValidUntil(t, Duration::Nanos(1000), 1, Duration::Zero()),
            t + Duration::Nanos(999));
  EXPECT_EQ(LeaseValidUntil(t, Duration::Millis(10), 0, Duration::Millis(50)), t);
  EXPECT_EQ(LeaseValidUntil(t, Duration::Millis(-10), 0, Duration::Zero()), t);
  EXPECT_EQ(LeaseValidUntil(t, Duration::Seconds(1), -500, Duration::Millis(-7)),
            t + Duration::Seconds(1));
  EXPECT_EQ(LeaseValidUntil(MonoTime::Max() - Duration::Seconds(1), Duration::Seconds(3600), 0,
                            Duration::Zero()),
            MonoTime::Max());
}

// ---- Grants, renewals, revokes ----

TEST(PaxosLeaseTest, UncontendedAcquireGrantsTheBallotAsTokenAndExcludesOthersUntilExpiry) {
  // The first grant's token is its ballot (round 1 of node 0). While it lives, another node is
  // refused with kAlreadyExists naming the holder; once the TTL passes without renewal, the next
  // holder's token is strictly larger.
  Cluster c(1);
  const MonoTime before = c.node(0).env().clock().Now();
  Result<LeaseGrant> g = c.Acquire(0);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->token, FencingToken(MakeBallot(1, NodeId(0))));
  EXPECT_EQ(g->holder, NodeId(0));
  EXPECT_EQ(g->name, kName);
  EXPECT_GE(g->sent_at, before);
  EXPECT_EQ(g->valid_until, LeaseValidUntil(g->sent_at, kTtl, 1000, Duration::Millis(5)));
  EXPECT_TRUE(g->Valid(c.node(0).env().clock().Now()));

  Result<LeaseGrant> other = c.Acquire(1);
  EXPECT_EQ(other.status().code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(Contains(other.status(), "node 0")) << other.status().ToString();
  Result<LeaseInfo> info = c.Read(3);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->holder, NodeId(0));
  EXPECT_EQ(info->token, g->token);

  c.world.RunFor(kTtl);
  EXPECT_EQ(c.Read(3).status().code(), StatusCode::kNotFound);
  Result<LeaseGrant> next = c.Acquire(1);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_GT(next->token, g->token);
  EXPECT_EQ(c.node(2).acceptor()->stats().expiries, 1u);
}

TEST(PaxosLeaseTest, AcquireRetriedByTheHolderKeepsItsToken) {
  // An Acquire whose reply was lost is retried by the same node: it finds its own live value and
  // renews it under the same token instead of refusing itself with kAlreadyExists.
  Cluster c(2);
  Result<LeaseGrant> g = c.Acquire(0);
  ASSERT_TRUE(g.ok());
  Result<LeaseGrant> again = c.Acquire(0);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->token, g->token);
  EXPECT_GT(again->valid_until, g->valid_until);
  EXPECT_EQ(c.Acquire(4).status().code(), StatusCode::kAlreadyExists);
}

TEST(PaxosLeaseTest, CandidatesPollingAHeldNameDoNotOutBallotTheHolder) {
  // Four candidates try to acquire while node 0 holds the lease. Each acceptor refuses them
  // without promising, so the promise stays at the holder's ballot: every renewal goes through
  // at the first ballot, and a re-acquire by the holder keeps its token.
  Cluster c(11);
  Result<LeaseGrant> g = c.Acquire(0);
  ASSERT_TRUE(g.ok());
  LeaseGrant held = *g;
  for (int i = 0; i < 12; ++i) {
    for (uint32_t n = 1; n < 5; ++n) {
      Result<LeaseGrant> other = c.Acquire(n);
      EXPECT_EQ(other.status().code(), StatusCode::kAlreadyExists) << other.status().ToString();
      EXPECT_TRUE(Contains(other.status(), "node 0")) << other.status().ToString();
    }
    Result<LeaseGrant> renewed = c.KeepAlive(0, held);
    ASSERT_TRUE(renewed.ok()) << i << ": " << renewed.status().ToString();
    held = *renewed;
  }
  uint64_t refusals = 0;
  for (uint32_t n = 0; n < 5; ++n) refusals += c.node(n).acceptor()->stats().held_refusals;
  EXPECT_GE(refusals, 12u * 4u * 3u);  // every candidate refused by at least a majority
  // No candidate's promise sits above the holder's accepted value: its re-acquire (a retry after
  // a lost reply) keeps the token.
  Result<LeaseGrant> again = c.Acquire(0);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->token, g->token);
}

TEST(PaxosLeaseTest, ForgedGrantsWithTokensFromTheFutureAreRefused) {
  // A grant whose token no acceptor ever granted (a forged or corrupted sequencer, here from the
  // "future") neither renews the real lease nor revokes it.
  Cluster c(12);
  Result<LeaseGrant> g = c.Acquire(0);
  ASSERT_TRUE(g.ok());
  LeaseGrant forged = *g;
  forged.token = FencingToken(g->token.value() + (uint64_t{1} << 40));
  Result<LeaseGrant> renewed = c.KeepAlive(0, forged);
  EXPECT_EQ(renewed.status().code(), StatusCode::kFailedPrecondition) << renewed.status().ToString();
  const Status revoked = c.Revoke(0, forged);
  revoked.IgnoreError();
  // The real lease is untouched: still held under the real token.
  EXPECT_EQ(c.Acquire(3).status().code(), StatusCode::kAlreadyExists);
  Result<LeaseInfo> info = c.Read(2);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->token, g->token);
  // And a proposal whose token exceeds its own ballot is rejected outright by the acceptor.
  pli::Request req;
  req.name = kName;
  req.ballot = MakeBallot(1, NodeId(1));
  req.holder = NodeId(1);
  req.token = FencingToken(MakeBallot(1u << 30, NodeId(1)));
  req.ttl = kTtl;
  Result<Bytes> raw = c.Raw(1, 2, pli::Method::kPropose, req);
  EXPECT_EQ(raw.status().code(), StatusCode::kInvalidArgument) << raw.status().ToString();
}

TEST(PaxosLeaseTest, KeepAliveKeepsTheTokenAndExtendsValidity) {
  // Renewing every ttl/3 holds the name for many TTLs under one token while others are refused.
  Cluster c(3);
  Result<LeaseGrant> g = c.Acquire(0);
  ASSERT_TRUE(g.ok());
  LeaseGrant held = *g;
  for (int i = 0; i < 10; ++i) {
    c.world.RunFor(kTtl / 3);
    Result<LeaseGrant> renewed = c.KeepAlive(0, held);
    ASSERT_TRUE(renewed.ok()) << i << ": " << renewed.status().ToString();
    EXPECT_EQ(renewed->token, g->token);
    EXPECT_GT(renewed->sent_at, held.sent_at);
    EXPECT_GT(renewed->valid_until, held.valid_until);
    held = *renewed;
    EXPECT_EQ(c.Acquire(1 + i % 4).status().code(), StatusCode::kAlreadyExists);
  }
  EXPECT_GT(c.world.elapsed(), kTtl * 3);
}

TEST(PaxosLeaseTest, KeepAliveAfterValidityFailsLocallyAndAfterExpiryEverywhereFailsToo) {
  // An expired grant is never silently re-granted: past valid_until KeepAlive fails with
  // kFailedPrecondition without a message; and a grant whose value has expired at every acceptor
  // (here faked by a grant that claims more validity than it has) is refused by the acceptors'
  // answers.
  Cluster c(4);
  Result<LeaseGrant> g = c.Acquire(0);
  ASSERT_TRUE(g.ok());
  c.world.RunFor(g->valid_until - c.node(0).env().clock().Now() + Duration::Millis(1));
  const uint64_t sent = c.Sent();
  Result<LeaseGrant> late = c.KeepAlive(0, *g);
  EXPECT_EQ(late.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.Sent(), sent);

  c.world.RunFor(kTtl);
  LeaseGrant forged = *g;
  forged.valid_until = c.node(0).env().clock().Now() + Duration::Seconds(1);
  Result<LeaseGrant> revived = c.KeepAlive(0, forged);
  EXPECT_EQ(revived.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(revived.status(), "expired")) << revived.status().ToString();
  EXPECT_GT(c.Sent(), sent);
}

TEST(PaxosLeaseTest, RevokeFreesTheNameAtOnceButAbnormalExpiryStartsLockDelay) {
  // Revoke is a clean release: another node acquires immediately. A lease that merely expires
  // puts the name in lock-delay: Acquire is kUnavailable until lock_delay has passed.
  PaxosLeaseOptions o = Opts();
  o.lock_delay = Duration::Millis(400);
  Cluster c(5, o);
  Result<LeaseGrant> g = c.Acquire(0);
  ASSERT_TRUE(g.ok());
  ASSERT_TRUE(c.Revoke(0, *g).ok());
  Result<LeaseGrant> next = c.Acquire(1);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_GT(next->token, g->token);

  c.world.RunFor(kTtl);  // node 1 neither renews nor revokes
  Result<LeaseGrant> delayed = c.Acquire(2);
  EXPECT_EQ(delayed.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(delayed.status(), "lock-delay")) << delayed.status().ToString();
  c.world.RunFor(Duration::Millis(300));
  EXPECT_EQ(c.Acquire(2).status().code(), StatusCode::kUnavailable);
  c.world.RunFor(Duration::Millis(110));
  Result<LeaseGrant> after = c.Acquire(2);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_GT(after->token, next->token);
  EXPECT_GE(c.node(3).acceptor()->stats().revokes, 1u);
}

TEST(PaxosLeaseTest, DestroyingTheClientMidCallAbandonsTheCallAndItsFanOut) {
  // A client destroyed while an Acquire waits for its majority: the per-acceptor calls are torn
  // down with it (nothing left registered on the Rpc) and the waiting call is never resumed into
  // freed memory; the node's acceptor keeps serving the others.
  Cluster c(15);
  auto out = std::make_shared<std::optional<Result<LeaseGrant>>>();
  c.world.env(NodeId(0)).Spawn(Capture(c.client(0).Acquire(kName, kTtl), out));
  c.world.RunFor(Duration::Micros(200));  // the prepares are in flight
  ASSERT_GT(c.node(0).rpc().pending_calls(), 0u);
  c.node(0).DropClient();
  EXPECT_EQ(c.node(0).rpc().pending_calls(), 0u);
  c.world.RunFor(Duration::Millis(100));
  EXPECT_FALSE(out->has_value());
  EXPECT_TRUE(c.Acquire(1).ok());
}

// ---- Partitions ----

sim::Grudge Split(const std::vector<uint32_t>& minority) {
  sim::Grudge grudge(5);
  for (uint32_t a : minority) {
    for (uint32_t b = 0; b < 5; ++b) {
      if (std::find(minority.begin(), minority.end(), b) == minority.end()) grudge.BlockBoth(a, b);
    }
  }
  return grudge;
}

TEST(PaxosLeaseTest, MinorityCannotAcquireOrReadWhileTheMajorityCan) {
  // Two nodes cut off from three: their acceptors are no majority, so Acquire and Read are
  // kUnavailable there, while the majority side grants the lease.
  Cluster c(6);
  c.world.network().Partition(Split({0, 1}));
  EXPECT_EQ(c.Acquire(0).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(c.Read(1).status().code(), StatusCode::kUnavailable);
  Result<LeaseGrant> g = c.Acquire(3);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  c.world.network().Heal();
  EXPECT_EQ(c.Acquire(0).status().code(), StatusCode::kAlreadyExists);
}

TEST(PaxosLeaseTest, HolderCutOffIsInvalidBeforeAnotherNodeAcquires) {
  // The holder lands in a minority: its renewals fail (kUnavailable while still valid) and it
  // fences itself at valid_until, strictly before the majority's acceptors let the name go.
  Cluster c(7);
  Result<LeaseGrant> g = c.Acquire(0);
  ASSERT_TRUE(g.ok());
  c.world.network().Partition(Split({0}));
  EXPECT_EQ(c.KeepAlive(0, *g).status().code(), StatusCode::kUnavailable);
  std::optional<LeaseGrant> taken;
  while (!taken.has_value() && c.world.elapsed() < Duration::Seconds(3)) {
    Result<LeaseGrant> r = c.Acquire(2);
    if (r.ok()) {
      taken = *r;
      break;
    }
    EXPECT_EQ(r.status().code(), StatusCode::kAlreadyExists);
    c.world.RunFor(Duration::Millis(5));
  }
  ASSERT_TRUE(taken.has_value());
  EXPECT_FALSE(g->Valid(c.node(0).env().clock().Now()));
  EXPECT_GT(taken->token, g->token);
}

TEST(PaxosLeaseTest, StaleProposeRevivedByTheNetworkCannotRegressTheToken) {
  // Regression for the naive "own live value ⇒ reuse its token" rule: node 0's Propose to
  // acceptor 4 is held in the network while node 0's lease expires and node 1 takes the name;
  // released late, it revives (node 0, t1) on acceptor 4. Node 0 then acquires through a majority
  // containing acceptor 4: it must take a fresh token above node 1's, not reuse t1.
  Cluster c(8);
  c.world.network().Hold(0, 4);
  c.world.network().Hold(1, 4);
  Result<LeaseGrant> first = c.Acquire(0);
  ASSERT_TRUE(first.ok());
  c.world.RunFor(kTtl);
  Result<LeaseGrant> second = c.Acquire(1);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_GT(second->token, first->token);
  c.world.RunFor(kTtl - Duration::Millis(40));
  c.world.network().Release(0, 4);  // the stale prepare and propose of node 0 arrive now
  c.world.RunFor(Duration::Millis(50));
  sim::Grudge grudge(5);
  grudge.BlockBoth(0, 1);
  grudge.BlockBoth(0, 3);
  c.world.network().Partition(grudge);  // node 0 reaches acceptors 0, 2 and 4 only
  Result<LeaseGrant> third = c.Acquire(0);
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_GT(third->token, second->token);
}

TEST(PaxosLeaseTest, LosingProposalsLeftOnAMinorityDoNotKeepCandidatesOutForATtl) {
  // Two candidates dueling: each one's Propose lost to the other's higher ballot everywhere but on
  // its own acceptor, where it stays live for a TTL. A majority of promises (acceptors 0, 1, 3, 4
  // for node 1) proves nobody else can act, so node 1 must win now; it used to take the minority's
  // refusal from acceptor 2 for a lease and give up with kAlreadyExists, and node 2 likewise,
  // until both leftovers expired. (The old rule gave the same grant whenever the refusal merely
  // arrived after the third promise: proceeding reaches no state the old code could not.)
  Cluster c(9);
  for (const uint32_t n : {1u, 2u}) {
    pli::Request req;
    req.name = kName;
    req.ballot = MakeBallot(5 + n, NodeId(n));
    req.holder = NodeId(n);
    req.token = FencingToken(req.ballot);
    req.ttl = kTtl;
    ASSERT_TRUE(c.Raw(n, n, pli::Method::kPrepare, req).ok());
    Result<Bytes> accepted = c.Raw(n, n, pli::Method::kPropose, req);
    ASSERT_TRUE(accepted.ok());
    ASSERT_TRUE(pli::DecodeReply(*accepted)->ok);
  }
  Result<LeaseGrant> won = c.Acquire(1);
  ASSERT_TRUE(won.ok()) << won.status().ToString();
  EXPECT_EQ(won->holder, NodeId(1));
  // A real lease still keeps everyone else out: it is live on a majority.
  Result<LeaseGrant> other = c.Acquire(3);
  EXPECT_EQ(other.status().code(), StatusCode::kAlreadyExists) << other.status().ToString();
}

TEST(PaxosLeaseTest, RevokeNamingABallotReleasesOnlyTheValueAcceptedAtThatBallot) {
  // An Acquire withdraws its lost proposal by ballot: a withdrawal that arrives late must not
  // release a later proposal of the same holder and token, accepted at a higher ballot.
  Cluster c(10);
  pli::Request req;
  req.name = kName;
  req.holder = NodeId(1);
  req.ttl = kTtl;
  req.token = FencingToken(MakeBallot(3, NodeId(1)));
  for (const uint64_t round : {3u, 4u}) {
    req.ballot = MakeBallot(round, NodeId(1));
    ASSERT_TRUE(c.Raw(1, 0, pli::Method::kPropose, req).ok());
  }
  req.ballot = MakeBallot(3, NodeId(1));  // the late withdrawal of the first proposal
  Result<Bytes> stale = c.Raw(1, 0, pli::Method::kRevoke, req);
  ASSERT_TRUE(stale.ok());
  EXPECT_TRUE(pli::DecodeReply(*stale)->live);
  req.ballot = MakeBallot(4, NodeId(1));
  Result<Bytes> current = c.Raw(1, 0, pli::Method::kRevoke, req);
  ASSERT_TRUE(current.ok());
  EXPECT_FALSE(pli::DecodeReply(*current)->live);
  // A ballot that is not the sender's is refused.
  req.ballot = MakeBallot(4, NodeId(2));
  EXPECT_EQ(c.Raw(1, 0, pli::Method::kRevoke, req).status().code(), StatusCode::kInvalidArgument);
}

// ---- Restarts and the promise file ----

TEST(PaxosLeaseTest, RestartedAcceptorIsQuietThenStillRefusesOldBallots) {
  // Promises are durable: after a crash and the quiet period, the acceptor still rejects a
  // ballot below the one it promised before the crash. During the quiet period it answers
  // nothing useful (kUnavailable), and the cluster still grants leases around it.
  Cluster c(9);
  const uint64_t high = MakeBallot(7, NodeId(1));
  Result<pli::Reply> p = c.Prepare(1, 2, high);
  ASSERT_TRUE(p.ok() && p->ok);
  c.world.Crash(NodeId(2));
  c.world.Restart(NodeId(2));
  ASSERT_TRUE(c.node(2).acceptor_status().ok());
  Result<pli::Reply> quiet = c.Prepare(1, 2, MakeBallot(9, NodeId(1)));
  EXPECT_EQ(quiet.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(c.node(2).acceptor()->stats().ignored_quiet, 1u);
  EXPECT_TRUE(c.Acquire(3).ok());

  c.world.RunFor(c.options.restart_quiet);
  Result<pli::Reply> old = c.Prepare(1, 2, MakeBallot(5, NodeId(1)));
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_FALSE(old->ok);
  EXPECT_EQ(old->promised, high);
  Result<pli::Reply> newer = c.Prepare(1, 2, MakeBallot(8, NodeId(1)));
  ASSERT_TRUE(newer.ok());
  EXPECT_TRUE(newer->ok);
  EXPECT_EQ(newer->promised, high);
}

TEST(PaxosLeaseTest, RestartQuietKeepsAForgetfulAcceptorFromGrantingASecondHolder) {
  // PaxosLease §4: accepted values live only in memory. Node 0's lease is accepted by exactly
  // acceptors 0, 1 and 2; acceptor 2 then crashes and restarts, having forgotten it. Node 3, which
  // reaches only acceptors 2, 3 and 4, must not get the name while node 0's grant is valid: the
  // restarted acceptor stays quiet. With restart_quiet = 0 the same schedule grants a second
  // holder, which is why the quiet period exists.
  for (bool quiet : {true, false}) {
    PaxosLeaseOptions o = Opts();
    if (!quiet) o.restart_quiet = Duration::Zero();
    Cluster c(60, o);
    c.world.network().Partition(Split({3, 4}));
    Result<LeaseGrant> g = c.Acquire(0);
    ASSERT_TRUE(g.ok());
    c.world.Crash(NodeId(2));
    c.world.Restart(NodeId(2));
    c.world.network().Partition(Split({0, 1}));
    Result<LeaseGrant> second = c.Acquire(3);
    const bool first_valid = g->Valid(c.node(0).env().clock().Now());
    ASSERT_TRUE(first_valid);
    if (quiet) {
      EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
    } else {
      EXPECT_TRUE(second.ok()) << "expected the unsafe configuration to grant a second holder";
    }
  }
}

// Two promises for "a" on acceptor 0 (ballots of rounds 3 and 9 of node 1), then a crash:
// returns the promise file and the sizes after each promise.
struct PromiseFile {
  std::string name;
  uint64_t after_first = 0;
  uint64_t after_second = 0;
};
PromiseFile TwoPromisesThenCrash(Cluster& c) {
  PromiseFile f;
  f.name = c.options.file;
  EXPECT_TRUE(c.Prepare(1, 0, MakeBallot(3, NodeId(1))).ok());
  f.after_first = *c.world.disk(NodeId(0)).Size(f.name);
  EXPECT_TRUE(c.Prepare(1, 0, MakeBallot(9, NodeId(1))).ok());
  f.after_second = *c.world.disk(NodeId(0)).Size(f.name);
  EXPECT_GT(f.after_second, f.after_first);
  c.world.Crash(NodeId(0));
  return f;
}

TEST(PaxosLeaseTest, TornTailOfThePromiseFileIsDroppedAndEarlierPromisesHold) {
  // A record cut short at the end of the file is a write that never completed: the acceptor
  // starts without it, keeping every complete promise before it.
  // Cuts inside the last record's frame header and inside its body.
  for (uint64_t frac : {1u, 2u, 3u}) {
    Cluster d(10 + frac);
    const PromiseFile g = TwoPromisesThenCrash(d);
    const uint64_t cut = g.after_first + (g.after_second - g.after_first) * frac / 4;
    ASSERT_TRUE(d.world.disk(NodeId(0)).Truncate(g.name, cut).ok());
    ASSERT_TRUE(d.world.disk(NodeId(0)).Sync(g.name).ok());
    d.world.Restart(NodeId(0));
    ASSERT_TRUE(d.node(0).acceptor_status().ok()) << d.node(0).acceptor_status().ToString();
    d.world.RunFor(d.options.restart_quiet);
    Result<pli::Reply> old = d.Prepare(1, 0, MakeBallot(2, NodeId(1)));
    ASSERT_TRUE(old.ok());
    EXPECT_FALSE(old->ok);
    EXPECT_EQ(old->promised, MakeBallot(3, NodeId(1)));
  }
}

TEST(PaxosLeaseTest, TornCompactionBesideTheSealedFileIsIgnored) {
  // A crash during compaction leaves the new snapshot unsealed next to the old, complete file:
  // the acceptor loads the sealed one and every promise in it.
  Cluster c(14);
  const PromiseFile f = TwoPromisesThenCrash(c);
  sim::SimDisk& disk = c.world.disk(NodeId(0));
  Result<Bytes> bytes = disk.ReadAll(f.name);
  ASSERT_TRUE(bytes.ok());
  const Bytes prefix(bytes->begin(), bytes->begin() + 30);  // header, part of the seal
  ASSERT_TRUE(disk.Write(f.name + ".alt", 0, prefix).ok());
  ASSERT_TRUE(disk.Sync(f.name + ".alt").ok());
  c.world.Restart(NodeId(0));
  ASSERT_TRUE(c.node(0).acceptor_status().ok()) << c.node(0).acceptor_status().ToString();
  EXPECT_EQ(disk.List().size(), 1u);
  c.world.RunFor(c.options.restart_quiet);
  Result<pli::Reply> old = c.Prepare(1, 0, MakeBallot(8, NodeId(1)));
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->ok);
  EXPECT_EQ(old->promised, MakeBallot(9, NodeId(1)));
}

TEST(PaxosLeaseTest, CorruptPromiseFileIsDataLossAtCreate) {
  // A complete record that fails its checksum cannot be told apart from a lost promise: the
  // acceptor refuses to start (kDataLoss) rather than risk promising a ballot twice.
  for (int where = 0; where < 3; ++where) {
    Cluster c(20 + where);
    const PromiseFile f = TwoPromisesThenCrash(c);
    sim::SimDisk& disk = c.world.disk(NodeId(0));
    const uint64_t offset = where == 0 ? 14 : where == 1 ? f.after_first - 2 : f.after_second - 2;
    std::vector<uint8_t> byte(1);
    ASSERT_TRUE(disk.Read(f.name, offset, byte).ok());
    byte[0] ^= 0x10;
    ASSERT_TRUE(disk.Write(f.name, offset, byte).ok());
    ASSERT_TRUE(disk.Sync(f.name).ok());
    c.world.Restart(NodeId(0));
    EXPECT_EQ(c.node(0).acceptor_status().code(), StatusCode::kDataLoss) << where;
    EXPECT_EQ(c.node(0).acceptor(), nullptr);
  }
}

Task<void> PrepareMany(Rpc* rpc, NodeId to, uint16_t method, int count, int* done) {
  for (int i = 1; i <= count; ++i) {
    pli::Request req;
    req.name = "n" + std::to_string(i % 7);
    req.ballot = MakeBallot(static_cast<uint64_t>(i), NodeId(1));
    Bytes bytes = pli::EncodeRequest(pli::Method::kPrepare, req);
    Result<Bytes> reply = co_await rpc->Call(to, method, bytes, Duration::Millis(50));
    if (reply.ok()) ++*done;
  }
}

TEST(PaxosLeaseTest, PromiseFileIsCompactedAndSurvivesRestartAfterCompaction) {
  // The promise log is bounded: after kCompactRecordsMin appends it is rewritten as a snapshot
  // (in the other file). Every promise survives that and a restart.
  Cluster c(30);
  const int count = static_cast<int>(PaxosLeaseLimits::kCompactRecordsMin) * 2 + 100;
  int done = 0;
  const auto method = static_cast<uint16_t>(c.options.method_base);
  c.world.env(NodeId(1)).Spawn(PrepareMany(&c.node(1).rpc(), NodeId(0), method, count, &done));
  c.world.RunFor(Duration::Seconds(20));
  ASSERT_EQ(done, count);
  sim::SimDisk& disk = c.world.disk(NodeId(0));
  const std::vector<std::string> files = disk.List();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_LT(*disk.Size(files[0]), 40'000u);  // ~30 bytes a record, at most ~1100 records
  c.world.Crash(NodeId(0));
  c.world.Restart(NodeId(0));
  ASSERT_TRUE(c.node(0).acceptor_status().ok());
  c.world.RunFor(c.options.restart_quiet);
  for (int k = 0; k < 7; ++k) {
    const int last = count - ((count - k) % 7);  // the last i with i % 7 == k
    Result<pli::Reply> r = c.Prepare(1, 0, MakeBallot(static_cast<uint64_t>(last), NodeId(1)),
                                     std::string("n").append(std::to_string(k)));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->ok) << k;
    EXPECT_EQ(r->promised, MakeBallot(static_cast<uint64_t>(last), NodeId(1))) << k;
  }
}

// ---- Bad input ----

TEST(PaxosLeaseTest, AbsurdTtlsAndNamesAreInvalidArgumentsAndSendNothing) {
  // Bad input is refused before any message is sent.
  PaxosLeaseOptions o = Opts();
  o.margin = Duration::Millis(20);
  Cluster c(40, o);
  const uint64_t sent = c.Sent();
  for (Duration ttl :
       {Duration::Zero(), Duration::Millis(-100), Duration::Millis(5), Duration::Seconds(7200)}) {
    EXPECT_EQ(c.Acquire(0, kName, ttl).status().code(), StatusCode::kInvalidArgument)
        << ttl.nanos();
  }
  EXPECT_EQ(c.Acquire(0, "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.Acquire(0, std::string(PaxosLeaseLimits::kNameBytesMax + 1, 'x')).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(c.Read(0, "").status().code(), StatusCode::kInvalidArgument);
  // In range, but nothing is left after the margin: a lease that is never valid is refused.
  EXPECT_TRUE(Contains(c.Acquire(0, kName, Duration::Millis(15)).status(), "margin"));
  EXPECT_EQ(c.Sent(), sent);
}

TEST(PaxosLeaseTest, InvalidOptionsAreRejectedNamingTheField) {
  // Each invalid field is refused by Validate and by both Create functions, and the message
  // names the field.
  struct Case {
    const char* field;
    void (*mutate)(PaxosLeaseOptions&);
  };
  const Case cases[] = {
      {"acceptors", [](PaxosLeaseOptions& o) { o.acceptors.clear(); }},
      {"duplicates", [](PaxosLeaseOptions& o) { o.acceptors.push_back(NodeId(2)); }},
      {"16 bits", [](PaxosLeaseOptions& o) { o.acceptors.push_back(NodeId(70000)); }},
      {"drift_ppm_max", [](PaxosLeaseOptions& o) { o.drift_ppm_max = -1; }},
      {"drift_ppm_max", [](PaxosLeaseOptions& o) { o.drift_ppm_max = 100'001; }},
      {"margin", [](PaxosLeaseOptions& o) { o.margin = Duration::Nanos(-1); }},
      {"round_timeout", [](PaxosLeaseOptions& o) { o.round_timeout = Duration::Zero(); }},
      {"lock_delay", [](PaxosLeaseOptions& o) { o.lock_delay = Duration::Millis(-1); }},
      {"restart_quiet", [](PaxosLeaseOptions& o) { o.restart_quiet = Duration::Millis(-1); }},
      {"method_base", [](PaxosLeaseOptions& o) { o.method_base = 0xFFFE; }},
      {"file", [](PaxosLeaseOptions& o) { o.file.clear(); }},
  };
  EXPECT_TRUE(Opts().Validate().ok());
  sim::World world(41, sim::WorldOptions::Nodes(1));
  struct Bare final : sim::Node {
    explicit Bare(Env& env) : rpc(env) {}
    Rpc rpc;
  };
  world.Boot(NodeId(0), [](Env& env) { return std::make_unique<Bare>(env); });
  Env& env = world.env(NodeId(0));
  Rpc& rpc = world.node_as<Bare>(NodeId(0))->rpc;
  for (const Case& k : cases) {
    PaxosLeaseOptions o = Opts();
    k.mutate(o);
    const Status s = o.Validate();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << k.field;
    EXPECT_TRUE(Contains(s, k.field)) << k.field << ": " << s.ToString();
    EXPECT_EQ(PaxosLeaseAcceptor::Create(env, rpc, o, false).status().code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(PaxosLeaseClient::Create(env, rpc, o).status().code(), StatusCode::kInvalidArgument);
  }
}

// ---- Wire format ----

TEST(PaxosLeaseTest, GarbageRequestsGetAnErrorReplyAndTheAcceptorCarriesOn) {
  // Random bytes on every acceptor method: an error reply (kInvalidArgument), never a crash or
  // a promise; afterwards the acceptor still serves well-formed requests.
  Cluster c(50);
  Rng rng(50, 1);
  int errors = 0;
  for (int i = 0; i < 300; ++i) {
    Bytes junk(rng.Uniform(40));
    for (uint8_t& b : junk) b = static_cast<uint8_t>(rng.Next());
    if (!junk.empty() && rng.Chance(Ratio::Percent(50))) junk[0] = pli::kWireVersion;
    const auto method = static_cast<uint16_t>(c.options.method_base + rng.Uniform(4));
    auto r = c.Await(1, RawCall(&c.node(1).rpc(), NodeId(0), method, std::move(junk)));
    ASSERT_TRUE(r.has_value());
    if (!r->ok()) {
      EXPECT_EQ(r->status().code(), StatusCode::kInvalidArgument) << r->status().ToString();
      ++errors;
    }
  }
  EXPECT_GT(errors, 250);
  Result<pli::Reply> p = c.Prepare(1, 0, MakeBallot(1, NodeId(1)));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->ok);
  // A well-formed request whose ballot belongs to another node is refused too.
  EXPECT_EQ(c.Prepare(1, 0, MakeBallot(2, NodeId(3))).status().code(),
            StatusCode::kInvalidArgument);
}

RC_GTEST_PROP(PaxosLeaseCodecProps, DecodersAreTotalOnRandomBytes, (std::vector<uint8_t> bytes)) {
  // Whatever arrives, decoding returns a value or kInvalidArgument; a decoded value re-encodes
  // to something that decodes to the same value.
  for (uint16_t m = 0; m < pli::kMethodCount; ++m) {
    const auto method = static_cast<pli::Method>(m);
    Result<pli::Request> req = pli::DecodeRequest(method, bytes);
    if (req.ok()) {
      RC_ASSERT(*pli::DecodeRequest(method, pli::EncodeRequest(method, *req)) == *req);
    } else {
      RC_ASSERT(req.status().code() == StatusCode::kInvalidArgument);
    }
  }
  Result<pli::Reply> reply = pli::DecodeReply(bytes);
  if (reply.ok()) {
    RC_ASSERT(*pli::DecodeReply(pli::EncodeReply(*reply)) == *reply);
  } else {
    RC_ASSERT(reply.status().code() == StatusCode::kInvalidArgument);
  }
}

RC_GTEST_PROP(PaxosLeaseCodecProps, RequestsAndRepliesRoundTrip, ()) {
  pli::Request req;
  req.name = *rc::gen::container<std::string>(
      *rc::gen::inRange<size_t>(1, PaxosLeaseLimits::kNameBytesMax + 1),
      rc::gen::arbitrary<char>());
  req.ballot = *rc::gen::inRange<uint64_t>(1, UINT64_MAX);
  req.holder = NodeId(*rc::gen::arbitrary<uint32_t>());
  req.token = FencingToken(*rc::gen::inRange<uint64_t>(1, UINT64_MAX));
  req.ttl = Duration::Millis(*rc::gen::inRange<int64_t>(10, 3'600'000));
  pli::Request prepare;
  prepare.name = req.name;
  prepare.ballot = req.ballot;
  RC_ASSERT(*pli::DecodeRequest(pli::Method::kPrepare,
                                pli::EncodeRequest(pli::Method::kPrepare, prepare)) == prepare);
  RC_ASSERT(*pli::DecodeRequest(pli::Method::kPropose,
                                pli::EncodeRequest(pli::Method::kPropose, req)) == req);
  // Truncating a request anywhere is malformed, never a shorter valid request.
  const Bytes full = pli::EncodeRequest(pli::Method::kPropose, req);
  const size_t cut = *rc::gen::inRange<size_t>(0, full.size());
  const Bytes shorter(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
  RC_ASSERT(pli::DecodeRequest(pli::Method::kPropose, shorter).status().code() ==
            StatusCode::kInvalidArgument);

  pli::Reply reply;
  reply.ok = *rc::gen::arbitrary<bool>();
  reply.promised = *rc::gen::arbitrary<uint64_t>();
  reply.has_accepted = *rc::gen::arbitrary<bool>();
  if (reply.has_accepted) {
    reply.accepted_ballot = req.ballot;
    reply.holder = req.holder;
    reply.token = req.token;
    reply.live = *rc::gen::arbitrary<bool>();
    reply.lock_delay = !reply.live && *rc::gen::arbitrary<bool>();
  }
  RC_ASSERT(*pli::DecodeReply(pli::EncodeReply(reply)) == reply);
}

// ---- Safety and liveness under a random nemesis ----

// Acquire; while holding, renew every ttl/3 until a renewal is refused or validity runs out.
Task<void> Campaign(LeaseNode* node) {
  Env& env = node->env();
  for (;;) {
    const MonoTime now = env.clock().Now();
    if (!node->grant.has_value() || !node->grant->Valid(now)) {
      node->grant.reset();
      Result<LeaseGrant> r = co_await node->client().Acquire(kName, kTtl);
      if (r.ok()) {
        node->grant = *r;
        if (node->on_grant) node->on_grant(*r);
        continue;
      }
      // Someone holds it: look again in about a quarter TTL. Otherwise retry soon.
      const Duration base =
          r.status().code() == StatusCode::kAlreadyExists ? kTtl / 4 : Duration::Millis(10);
      const Duration jitter = Duration::Millis(static_cast<int64_t>(env.random().Uniform(40)));
      (co_await Sleep(env.executor(), base + jitter)).IgnoreError();
      continue;
    }
    (co_await Sleep(env.executor(), kTtl / 3)).IgnoreError();
    if (!node->grant.has_value() || !node->grant->Valid(env.clock().Now())) continue;
    Result<LeaseGrant> r = co_await node->client().KeepAlive(*node->grant);
    if (r.ok()) {
      FL_ASSERT(r->token == node->grant->token);
      node->grant = *r;
    } else if (r.status().code() == StatusCode::kFailedPrecondition) {
      node->grant.reset();
    }
  }
}

void LeaseNode::Start() {
  if (campaign_) env_.Spawn(Campaign(this));
}

struct SafetyRun {
  uint64_t seed;
  int grants = 0;
  int holder_changes = 0;
  std::vector<std::string> violations;
  std::optional<NodeId> last_holder;
  FencingToken last_token;
  std::optional<Duration> held_after_heal;
  int gaps_after_heal = 0;  // probes after heal + bound that saw no valid holder
};

TEST(PaxosLeaseSafetyTest, AtMostOneValidHolderAndIncreasingTokensUnderRandomFaults) {
  // Fifty seeds of five nodes all campaigning for one name, under a drawn nemesis (partitions,
  // flapping, crashes with restarts, pauses, drift up to ±500 ppm, message loss, duplication,
  // reordering, clogs). Every millisecond a probe checks that no two nodes hold a grant valid on
  // their own clocks; every grant checks that the token increased since the last other holder.
  // After HealAll, some node must hold the lease within max(ttl, restart_quiet) plus a few
  // rounds and a backoff.
  sim::NemesisOptions nemesis;
  nemesis.start = Duration::Millis(500);
  nemesis.duration = Duration::Seconds(8);
  nemesis.interval_mean = Duration::Millis(200);
  nemesis.fault_length_min = Duration::Millis(50);
  nemesis.fault_length_max = Duration::Millis(1200);
  nemesis.drift_ppm_max = 500;
  ASSERT_TRUE(nemesis.Validate().ok());
  const Duration heal_at = nemesis.start + nemesis.duration;
  const Duration liveness_bound =
      std::max(kTtl, Opts().restart_quiet) + kTtl / 2 + Duration::Millis(4 * 30 + 50);
  int total_grants = 0;
  int total_changes = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    sim::WorldOptions wo = sim::WorldOptions::Nodes(5);
    wo.disk.unsynced_survives = Ratio::Percent(50);
    Cluster c(seed, Opts(), wo, /*campaign=*/true);
    SafetyRun run;
    run.seed = seed;
    c.on_grant = [&run, &c](const LeaseGrant& g) {
      ++run.grants;
      if (run.last_holder.has_value() && *run.last_holder != g.holder) {
        ++run.holder_changes;
        if (g.token <= run.last_token) {
          run.violations.push_back("token " + std::to_string(g.token.value()) + " of node " +
                                   std::to_string(g.holder.value()) + " not above " +
                                   std::to_string(run.last_token.value()) + " at " +
                                   std::to_string(c.world.elapsed().millis()) + " ms");
        }
      } else if (run.last_holder.has_value() && g.token < run.last_token) {
        run.violations.push_back("same holder's token went down");
      }
      run.last_holder = g.holder;
      run.last_token = g.token;
    };
    // The cluster booted before on_grant was set: restart nothing, just hand it to the nodes.
    for (uint32_t i = 0; i < 5; ++i) c.node(i).on_grant = c.on_grant;
    Rng drift(seed, 77);
    for (uint32_t i = 0; i < 5; ++i) c.world.clock(NodeId(i)).SetDrift(drift.Range(-500, 500));
    // Install keeps a pointer: the schedule must outlive the run.
    const std::vector<sim::FaultAction> schedule =
        sim::Nemesis::Draw(nemesis, 5, c.world.rng(sim::Stream::kNemesis));
    sim::Nemesis::Install(c.world, schedule, nemesis);

    std::function<void()> probe = [&] {
      int valid = 0;
      std::string who;
      for (uint32_t i = 0; i < 5; ++i) {
        if (c.world.state(NodeId(i)) == sim::ProcessState::kDown) continue;
        LeaseNode& n = c.node(i);
        if (n.grant.has_value() && n.grant->Valid(c.world.clock(NodeId(i)).Now())) {
          ++valid;
          who += " n" + std::to_string(i) + "/t" + std::to_string(n.grant->token.value());
        }
      }
      if (valid > 1 && run.violations.size() < 5) {
        run.violations.push_back(std::to_string(valid) + " valid holders at " +
                                 std::to_string(c.world.elapsed().micros()) + " us:" + who);
      }
      if (valid > 0 && !run.held_after_heal.has_value() && c.world.elapsed() >= heal_at) {
        run.held_after_heal = c.world.elapsed() - heal_at;
      }
      if (valid == 0 && c.world.elapsed() >= heal_at + liveness_bound) ++run.gaps_after_heal;
      c.world.Schedule(Duration::Millis(1), [&probe] { probe(); });
    };
    c.world.Schedule(Duration::Millis(1), [&probe] { probe(); });
    c.world.RunFor(heal_at + Duration::Seconds(1));

    EXPECT_TRUE(run.violations.empty()) << "seed " << seed << ": " << run.violations.front();
    EXPECT_EQ(c.create_failures, 0) << "seed " << seed;
    ASSERT_TRUE(run.held_after_heal.has_value()) << "seed " << seed;
    EXPECT_LE(*run.held_after_heal, liveness_bound) << "seed " << seed;
    EXPECT_EQ(run.gaps_after_heal, 0) << "seed " << seed;
    total_grants += run.grants;
    total_changes += run.holder_changes;
  }
  // The property is not vacuous: the faults moved the lease around many times.
  EXPECT_GT(total_grants, 200);
  EXPECT_GT(total_changes, 100);
}

}  // namespace
}  // namespace faultline::lease
