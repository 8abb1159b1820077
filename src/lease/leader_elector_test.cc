// Tests for faultline/lease/leader_elector.h: the Curator states (leader, suspended, lost), the
// self-fencing timer, renewal cadence, randomised retry spacing, cancel and resign, on a sim::World
// against a scripted LeaseService. Clocks have no drift, so node-monotonic time advances with true
// time and the expected instants below are exact.
#include "faultline/lease/leader_elector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "faultline/env/cancel.h"
#include "faultline/env/env.h"
#include "faultline/env/task.h"
#include "faultline/sim/world.h"

namespace faultline::lease {
namespace {

using State = LeaderState;

constexpr Duration kTtl = Duration::Seconds(3);  // default renew_interval: 1 s
constexpr Duration kRetryMin = Duration::Millis(100);
constexpr NodeId kN0(0);

ElectorOptions Options(Duration renew_interval = Duration::Zero()) {
  ElectorOptions o;
  o.name = "leader";
  o.ttl = kTtl;
  o.renew_interval = renew_interval;
  o.retry_min = kRetryMin;
  return o;
}

sim::WorldOptions NoDrift(uint32_t nodes) {
  sim::WorldOptions o = sim::WorldOptions::Nodes(nodes);
  o.clocks.drift_ppm_max = 0;
  return o;
}

// A lease table shared by the fakes of several nodes: one live holder at a time, expiry on true
// time, increasing tokens. It plays the quorum of a real LeaseService.
struct SharedLeaseTable {
  const sim::World* world = nullptr;
  bool held = false;
  NodeId holder;
  FencingToken token;
  sim::SimTime expires;
  bool Live() const { return held && world->now() < expires; }
};

// A LeaseService that answers from a script. Each call takes the next scripted code (kOk: success)
// or, once the script is used up, the default; it completes after the configured delay of the
// node's monotonic time (zero: at once, without suspending). Grants are valid for exactly ttl from
// the call. With a table, successes also obey the table (kAlreadyExists / kFailedPrecondition).
class FakeLeaseService final : public LeaseService {
 public:
  explicit FakeLeaseService(Env& env) : env_(env) {}

  std::deque<StatusCode> acquire_script;
  StatusCode acquire_default = StatusCode::kOk;
  std::deque<StatusCode> keepalive_script;
  StatusCode keepalive_default = StatusCode::kOk;
  Duration acquire_delay = Duration::Zero();
  Duration keepalive_delay = Duration::Zero();
  SharedLeaseTable* table = nullptr;

  std::vector<MonoTime> acquire_calls;
  std::vector<MonoTime> keepalive_calls;
  std::vector<FencingToken> revoked;
  uint64_t next_token = 100;

  Task<Result<LeaseGrant>> Acquire(std::string name, Duration ttl) override {
    const MonoTime sent = env_.clock().Now();
    acquire_calls.push_back(sent);
    StatusCode code = Next(acquire_script, acquire_default);
    if (acquire_delay > Duration::Zero()) {
      const Status slept = co_await Sleep(env_.executor(), acquire_delay);
      slept.IgnoreError();
    }
    if (code == StatusCode::kOk && table != nullptr && table->Live()) {
      code = StatusCode::kAlreadyExists;
    }
    if (code != StatusCode::kOk) co_return Status(code, "scripted Acquire failure");
    LeaseGrant grant;
    grant.name = std::move(name);
    grant.holder = env_.self();
    grant.token = FencingToken(next_token++);
    grant.ttl = ttl;
    grant.sent_at = sent;
    grant.valid_until = sent + ttl;
    if (table != nullptr) {
      grant.token = FencingToken(table->token.value() + 1);
      table->held = true;
      table->holder = env_.self();
      table->token = grant.token;
      table->expires = table->world->now() + ttl;
    }
    co_return grant;
  }

  Task<Result<LeaseGrant>> KeepAlive(LeaseGrant grant) override {
    const MonoTime sent = env_.clock().Now();
    keepalive_calls.push_back(sent);
    StatusCode code = Next(keepalive_script, keepalive_default);
    if (keepalive_delay > Duration::Zero()) {
      const Status slept = co_await Sleep(env_.executor(), keepalive_delay);
      slept.IgnoreError();
    }
    if (code == StatusCode::kOk && table != nullptr &&
        !(table->Live() && table->holder == env_.self() && table->token == grant.token)) {
      code = StatusCode::kFailedPrecondition;
    }
    if (code != StatusCode::kOk) co_return Status(code, "scripted KeepAlive failure");
    grant.sent_at = sent;
    grant.valid_until = sent + grant.ttl;
    if (table != nullptr) table->expires = table->world->now() + grant.ttl;
    co_return grant;
  }

  Task<Status> Revoke(LeaseGrant grant) override {
    revoked.push_back(grant.token);
    if (table != nullptr && table->held && table->token == grant.token) table->held = false;
    co_return Status::Ok();
  }

  Task<Result<LeaseInfo>> Read(std::string) override {
    ++reads;
    if (table == nullptr || !table->Live()) co_return NotFoundError("no live holder");
    co_return LeaseInfo{table->holder, table->token};
  }
  uint64_t reads = 0;

 private:
  static StatusCode Next(std::deque<StatusCode>& script, StatusCode fallback) {
    if (script.empty()) return fallback;
    const StatusCode code = script.front();
    script.pop_front();
    return code;
  }
  Env& env_;
};

// A node that owns a fake service and an elector and records every transition.
class ElectorNode final : public sim::Node {
 public:
  ElectorNode(Env& env, const ElectorOptions& options) : service(env), env_(env) {
    Result<std::unique_ptr<LeaderElector>> created = LeaderElector::Create(env, service, options);
    FL_ASSERT(created.ok());
    elector = std::move(created).value();
    elector->SetListener([this](LeaderState state, const LeaseGrant* grant) {
      // Called after the change: the elector already reports it.
      EXPECT_EQ(elector->state(), state);
      EXPECT_EQ(grant != nullptr, state == State::kLeader || state == State::kSuspended);
      transitions.push_back(state);
      transition_times.push_back(env_.clock().Now());
      transition_tokens.push_back(grant != nullptr ? grant->token : FencingToken());
    });
  }

  void StartCampaign() { env_.Spawn(RunCampaign()); }
  void StartResign() { env_.Spawn(elector->Resign()); }
  MonoTime now() { return env_.clock().Now(); }

  FakeLeaseService service;
  std::unique_ptr<LeaderElector> elector;
  CancelSource cancel;
  std::vector<State> transitions;
  std::vector<MonoTime> transition_times;
  std::vector<FencingToken> transition_tokens;
  int campaigns_finished = 0;

 private:
  Task<void> RunCampaign() {
    co_await elector->Campaign(cancel.token());
    ++campaigns_finished;
  }
  Env& env_;
};

struct Cluster {
  explicit Cluster(const ElectorOptions& options, uint32_t nodes = 1, uint64_t seed = 7)
      : world(seed, NoDrift(nodes)) {
    for (uint32_t i = 0; i < nodes; ++i) {
      world.Boot(NodeId(i),
                 [options](Env& env) { return std::make_unique<ElectorNode>(env, options); });
    }
  }
  ElectorNode& node(uint32_t i = 0) {
    ElectorNode* n = world.node_as<ElectorNode>(NodeId(i));
    FL_ASSERT(n != nullptr);
    return *n;
  }
  sim::World world;
};

std::vector<State> Seq(std::initializer_list<State> states) { return states; }

// Wraps an Env and counts the timers scheduled through it that have neither run nor been
// cancelled: what a destroyed object would leave behind.
class TrackingEnv final : public Env {
 public:
  explicit TrackingEnv(Env& base) : base_(base), executor_(base.executor()) {}
  NodeId self() const override { return base_.self(); }
  Clock& clock() override { return base_.clock(); }
  Executor& executor() override { return executor_; }
  Transport& transport() override { return base_.transport(); }
  Disk& disk() override { return base_.disk(); }
  Rng& random() override { return base_.random(); }
  void Spawn(Task<void> task) override { base_.Spawn(std::move(task)); }
  size_t pending_timers() const { return executor_.pending.size(); }

 private:
  struct TrackingExecutor final : public Executor {
    explicit TrackingExecutor(Executor& b) : base(b) {}
    TimerId ScheduleAfter(Duration delay, Callback callback) override {
      const uint64_t id = next_id++;
      const TimerId base_id = base.ScheduleAfter(delay, [this, id] {
        auto it = pending.find(id);
        FL_ASSERT(it != pending.end());
        Callback run = std::move(it->second.callback);
        pending.erase(it);
        run();
      });
      pending.emplace(id, Entry{base_id, std::move(callback)});
      return TimerId{id};
    }
    bool Cancel(TimerId id) override {
      auto it = pending.find(id.value);
      if (it == pending.end()) return false;
      base.Cancel(it->second.base_id);
      pending.erase(it);
      return true;
    }
    struct Entry {
      TimerId base_id;
      Callback callback;
    };
    Executor& base;
    uint64_t next_id = 1;
    std::map<uint64_t, Entry> pending;
  };
  Env& base_;
  TrackingExecutor executor_;
};

// --- Leading ------------------------------------------------------------------------------------

TEST(LeaderElectorTest, ElectedThenRenewsEveryRenewIntervalAndStaysLeader) {
  // The lease is renewed every ttl / 3 by default (or every renew_interval when set), and each
  // renewal moves the fence: the leader is still leading long after the first grant's 3 s.
  for (const Duration renew : {Duration::Zero(), Duration::Millis(500)}) {
    SCOPED_TRACE(renew.millis());
    const Duration every = renew == Duration::Zero() ? Duration::Seconds(1) : renew;
    Cluster c(Options(renew));
    ElectorNode& n = c.node();
    const MonoTime start = n.now();
    n.StartCampaign();  // the fake answers at once: elected inside Spawn
    ASSERT_EQ(n.elector->state(), State::kLeader);
    EXPECT_TRUE(n.elector->CanAct());
    const FencingToken token = n.elector->token();
    EXPECT_EQ(token, FencingToken(100));

    c.world.RunFor(Duration::Millis(9500));
    const size_t renewals = static_cast<size_t>(Duration::Millis(9500).nanos() / every.nanos());
    ASSERT_EQ(n.service.keepalive_calls.size(), renewals);
    for (size_t i = 0; i < renewals; ++i) {
      EXPECT_EQ(n.service.keepalive_calls[i], start + every * static_cast<int64_t>(i + 1)) << i;
    }
    EXPECT_EQ(n.transitions, Seq({State::kLeader}));
    EXPECT_TRUE(n.elector->CanAct());
    EXPECT_EQ(n.elector->token(), token);
    EXPECT_EQ(n.elector->grant()->valid_until,
              start + every * static_cast<int64_t>(renewals) + kTtl);
    EXPECT_EQ(n.service.acquire_calls.size(), 1u);
    EXPECT_EQ(n.elector->stats().attempts, 1u);
    EXPECT_EQ(n.elector->stats().elected, 1u);
    EXPECT_EQ(n.elector->stats().renewals, renewals);
    EXPECT_EQ(n.elector->stats().renewal_failures, 0u);
    EXPECT_EQ(n.campaigns_finished, 0);
  }
}

TEST(LeaderElectorTest, LeaseAcquiredReportsTheAcquireLatency) {
  // The acquire round takes 30 ms of simulated time: kLeaseAcquired carries it (the grant's
  // sent_at to the reading that accepted the reply), timed at that reading.
  struct Acquired final : Observer {
    void OnEvent(const Event& e) noexcept override {
      if (e.kind == EventKind::kLeaseAcquired) seen.push_back(e);
    }
    std::vector<Event> seen;
  } acquired;
  Cluster c(Options());
  ElectorNode& n = c.node();
  n.elector->observe().Attach(&acquired, "leader");
  n.service.acquire_delay = Duration::Millis(30);
  n.StartCampaign();
  c.world.RunFor(Duration::Millis(100));
  ASSERT_EQ(n.elector->state(), State::kLeader);
  ASSERT_EQ(acquired.seen.size(), 1u);
  EXPECT_EQ(acquired.seen[0].a, 100);
  EXPECT_EQ(acquired.seen[0].d, Duration::Millis(30));
  EXPECT_EQ(acquired.seen[0].at, n.service.acquire_calls[0] + Duration::Millis(30));
}

TEST(LeaderElectorTest, TransientKeepAliveFailureSuspendsAndCanActIsFalseWhileGrantIsValid) {
  // Curator's SUSPENDED (CURATOR-460): a keep-alive without a quorum does not mean the lease is
  // gone, but a leader that cannot confirm it must stop acting at once, not at valid_until.
  for (const StatusCode code : {StatusCode::kUnavailable, StatusCode::kDeadlineExceeded}) {
    SCOPED_TRACE(static_cast<int>(code));
    Cluster c(Options());
    ElectorNode& n = c.node();
    const MonoTime start = n.now();
    n.service.keepalive_default = code;
    n.StartCampaign();
    c.world.RunFor(Duration::Seconds(1));  // the first keep-alive, at 1 s, fails

    ASSERT_EQ(n.elector->state(), State::kSuspended);
    EXPECT_FALSE(n.elector->CanAct());
    ASSERT_TRUE(n.elector->grant().has_value());
    EXPECT_TRUE(n.elector->grant()->Valid(n.now()));  // the lease itself is still valid
    EXPECT_EQ(n.elector->grant()->valid_until, start + kTtl);
    EXPECT_EQ(n.elector->token(), FencingToken(100));
    EXPECT_EQ(n.transitions, Seq({State::kLeader, State::kSuspended}));
    EXPECT_EQ(n.elector->stats().suspensions, 1u);
    EXPECT_EQ(n.elector->stats().renewal_failures, 1u);

    // While suspended it retries every min(retry_min, renew_interval) = 100 ms, staying suspended.
    c.world.RunFor(Duration::Millis(250));
    EXPECT_EQ(n.service.keepalive_calls.size(), 3u);
    EXPECT_EQ(n.service.keepalive_calls.back(), start + Duration::Millis(1200));
    EXPECT_EQ(n.elector->state(), State::kSuspended);
    EXPECT_FALSE(n.elector->CanAct());
    EXPECT_EQ(n.elector->stats().suspensions, 1u);  // one suspension, three failures
    EXPECT_EQ(n.elector->stats().renewal_failures, 3u);
  }
}

TEST(LeaderElectorTest, SuccessfulKeepAliveAfterSuspensionRestoresLeaderAndMovesTheFence) {
  // Recovery: the first successful retry makes it leader again with the same token and re-arms
  // the fence at the *new* valid_until. When it is suspended again later, it is lost at that new
  // instant (4.1 s), not at the first grant's (3 s).
  Cluster c(Options());
  ElectorNode& n = c.node();
  const MonoTime start = n.now();
  n.service.keepalive_script = {StatusCode::kUnavailable, StatusCode::kOk};
  n.service.keepalive_default = StatusCode::kUnavailable;
  n.StartCampaign();

  c.world.RunFor(Duration::Millis(1100));
  ASSERT_EQ(n.elector->state(), State::kLeader);
  EXPECT_TRUE(n.elector->CanAct());
  EXPECT_EQ(n.elector->token(), FencingToken(100));
  EXPECT_EQ(n.elector->grant()->valid_until, start + Duration::Millis(4100));
  EXPECT_EQ(n.elector->stats().elected, 1u);  // a recovery is not a new election
  EXPECT_EQ(n.elector->stats().renewals, 1u);

  c.world.RunFor(Duration::Seconds(5));
  EXPECT_EQ(n.transitions, Seq({State::kLeader, State::kSuspended, State::kLeader,
                                State::kSuspended, State::kLost}));
  ASSERT_EQ(n.transition_times.size(), 5u);
  EXPECT_EQ(n.transition_times[1], start + Duration::Seconds(1));
  EXPECT_EQ(n.transition_times[2], start + Duration::Millis(1100));
  EXPECT_EQ(n.transition_times[3], start + Duration::Millis(2100));
  EXPECT_EQ(n.transition_times[4], start + Duration::Millis(4100));
}

TEST(LeaderElectorTest, SuspendedUntilValidUntilIsLostAndCampaignReturns) {
  // No keep-alive ever succeeds: at valid_until the self-fencing timer makes it kLost, the grant is
  // cleared and Campaign returns; kLost is final for the campaign (no new Acquire).
  Cluster c(Options());
  ElectorNode& n = c.node();
  const MonoTime start = n.now();
  n.service.keepalive_default = StatusCode::kUnavailable;
  n.StartCampaign();

  c.world.RunFor(kTtl - Duration::Millis(1));
  EXPECT_EQ(n.elector->state(), State::kSuspended);
  EXPECT_EQ(n.campaigns_finished, 0);
  EXPECT_EQ(n.service.keepalive_calls.size(), 20u);  // 1.0 s, 1.1 s, ..., 2.9 s

  c.world.RunFor(Duration::Millis(1));
  EXPECT_EQ(n.elector->state(), State::kLost);
  EXPECT_EQ(n.transition_times.back(), start + kTtl);
  EXPECT_FALSE(n.elector->grant().has_value());
  EXPECT_EQ(n.elector->token(), FencingToken());
  EXPECT_FALSE(n.elector->CanAct());
  EXPECT_EQ(n.campaigns_finished, 1);
  EXPECT_EQ(n.elector->stats().losses, 1u);

  c.world.RunFor(Duration::Seconds(10));
  EXPECT_EQ(n.transitions, Seq({State::kLeader, State::kSuspended, State::kLost}));
  EXPECT_EQ(n.service.keepalive_calls.size(), 20u);
  EXPECT_EQ(n.service.acquire_calls.size(), 1u);
  EXPECT_TRUE(n.service.revoked.empty());
}

TEST(LeaderElectorTest, LostCampaignReturnsAtValidUntilNotAtTheNextRetry) {
  // With retry_min = 70 ms the suspended retries fall at 1.07 s, ..., 2.96 s, and the next would be
  // 3.03 s: the campaign must still return at valid_until (3 s), so that a caller waiting on it can
  // start a new one without a stale delay.
  ElectorOptions options = Options();
  options.retry_min = Duration::Millis(70);
  Cluster c(options);
  ElectorNode& n = c.node();
  n.service.keepalive_default = StatusCode::kUnavailable;
  n.StartCampaign();
  c.world.RunFor(kTtl);
  EXPECT_EQ(n.elector->state(), State::kLost);
  EXPECT_EQ(n.campaigns_finished, 1);
  EXPECT_EQ(n.service.keepalive_calls.size(), 29u);  // 1 s, then 28 retries
}

TEST(LeaderElectorTest, DefinitiveKeepAliveFailureIsLostAtOnce) {
  // kFailedPrecondition means the validity passed or another holder took the name: there is
  // nothing to wait for, so it is lost at 1 s although its own grant ran until 3 s. An error the
  // elector does not know (kInternal) is treated the same way: giving up early is safe.
  for (const StatusCode code : {StatusCode::kFailedPrecondition, StatusCode::kInternal}) {
    SCOPED_TRACE(static_cast<int>(code));
    Cluster c(Options());
    ElectorNode& n = c.node();
    const MonoTime start = n.now();
    n.service.keepalive_script = {code};
    n.StartCampaign();
    c.world.RunFor(Duration::Seconds(1));

    EXPECT_EQ(n.elector->state(), State::kLost);
    EXPECT_EQ(n.transitions, Seq({State::kLeader, State::kLost}));
    EXPECT_EQ(n.transition_times.back(), start + Duration::Seconds(1));
    EXPECT_FALSE(n.elector->grant().has_value());
    EXPECT_FALSE(n.elector->CanAct());
    EXPECT_EQ(n.campaigns_finished, 1);

    c.world.RunFor(Duration::Seconds(5));
    EXPECT_EQ(n.service.keepalive_calls.size(), 1u);
    EXPECT_EQ(n.service.acquire_calls.size(), 1u);
    EXPECT_EQ(n.transitions.size(), 2u);
  }
}

// --- Time: pauses and late replies -------------------------------------------------------------

TEST(LeaderElectorTest, PausedPastValidUntilCannotActOnResumeBeforeTheFenceRuns) {
  // A GC pause or SIGSTOP longer than the lease: on resume nothing of the node has run yet, so the
  // state still says kLeader, but CanAct() reads the clock and refuses. Then the elector fences
  // itself without sending a keep-alive for the lapsed grant.
  Cluster c(Options());
  ElectorNode& n = c.node();
  n.StartCampaign();
  c.world.RunFor(Duration::Millis(500));
  ASSERT_TRUE(n.elector->CanAct());

  c.world.Pause(kN0);
  c.world.RunFor(Duration::Seconds(5));
  c.world.Resume(kN0);
  EXPECT_EQ(n.elector->state(), State::kLeader);  // its timers have not run yet
  EXPECT_FALSE(n.elector->CanAct());

  c.world.RunFor(Duration::Millis(1));
  EXPECT_EQ(n.elector->state(), State::kLost);
  EXPECT_EQ(n.campaigns_finished, 1);
  EXPECT_TRUE(n.service.keepalive_calls.empty());
  EXPECT_EQ(n.transitions, Seq({State::kLeader, State::kLost}));
}

TEST(LeaderElectorTest, SuccessfulKeepAliveReplyArrivingAfterValidUntilIsIgnored) {
  // The keep-alive sent at 1 s succeeds (its grant would run to 4 s) but the node is paused from
  // 1.2 s to 3.5 s, so the reply is handled after the old grant's valid_until (3 s) and before
  // the fence timer runs. Adopting it would let kLeader outlive valid_until; it must be lost.
  Cluster c(Options());
  ElectorNode& n = c.node();
  n.service.keepalive_delay = Duration::Millis(500);
  n.StartCampaign();
  c.world.RunFor(Duration::Millis(1200));
  ASSERT_EQ(n.service.keepalive_calls.size(), 1u);

  c.world.Pause(kN0);
  c.world.RunFor(Duration::Millis(2300));
  c.world.Resume(kN0);
  c.world.RunFor(Duration::Millis(1));

  EXPECT_EQ(n.elector->state(), State::kLost);
  EXPECT_EQ(n.transitions, Seq({State::kLeader, State::kLost}));
  EXPECT_EQ(n.elector->stats().renewals, 0u);
  EXPECT_EQ(n.campaigns_finished, 1);
}

TEST(LeaderElectorTest, FenceFiresWhileKeepAliveIsInFlightAndTheLateReplyIsIgnored) {
  // A keep-alive that takes 2.5 s (sent at 1 s): the fence at 3 s makes it lost while the round is
  // in flight; the success at 3.5 s changes nothing, and only then does Campaign return.
  Cluster c(Options());
  ElectorNode& n = c.node();
  const MonoTime start = n.now();
  n.service.keepalive_delay = Duration::Millis(2500);
  n.StartCampaign();

  c.world.RunFor(kTtl);
  EXPECT_EQ(n.elector->state(), State::kLost);
  EXPECT_EQ(n.transition_times.back(), start + kTtl);
  EXPECT_EQ(n.campaigns_finished, 0);  // still awaiting the round

  c.world.RunFor(Duration::Seconds(1));
  EXPECT_EQ(n.elector->state(), State::kLost);
  EXPECT_EQ(n.transitions, Seq({State::kLeader, State::kLost}));
  EXPECT_EQ(n.elector->stats().renewals, 0u);
  EXPECT_EQ(n.campaigns_finished, 1);
}

TEST(LeaderElectorTest, AcquireReplyArrivingAfterItsValidityIsNotLeadership) {
  // The first Acquire answers after 3.5 s, past the grant's own valid_until (3 s): it is worth
  // nothing and the candidate tries again; the second grant (token 101) makes it leader.
  Cluster c(Options());
  ElectorNode& n = c.node();
  n.service.acquire_delay = Duration::Millis(3500);
  n.StartCampaign();
  c.world.RunFor(Duration::Millis(100));
  n.service.acquire_delay = Duration::Zero();

  c.world.RunFor(Duration::Millis(3400));
  EXPECT_EQ(n.elector->state(), State::kFollower);
  EXPECT_TRUE(n.transitions.empty());

  c.world.RunFor(kRetryMin * 2);
  ASSERT_EQ(n.elector->state(), State::kLeader);
  EXPECT_EQ(n.elector->token(), FencingToken(101));
  EXPECT_EQ(n.elector->stats().attempts, 2u);
}

// --- Campaigning --------------------------------------------------------------------------------

TEST(LeaderElectorTest, RetriesAreSpacedUniformlyInRetryMinToTwiceRetryMin) {
  // Raft's randomised [T, 2T) (etcd #10483): every gap between attempts lies in [100, 200) ms, the
  // gaps really spread over that range, and two candidates do not retry in lockstep.
  Cluster c(Options(), 2);
  c.node(0).service.acquire_default = StatusCode::kAlreadyExists;
  c.node(1).service.acquire_default = StatusCode::kUnavailable;
  c.node(0).StartCampaign();
  c.node(1).StartCampaign();
  c.world.RunFor(Duration::Seconds(60));

  std::vector<std::vector<Duration>> gaps(2);
  for (uint32_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    const std::vector<MonoTime>& calls = c.node(i).service.acquire_calls;
    ASSERT_GE(calls.size(), 300u);
    EXPECT_EQ(c.node(i).elector->stats().attempts, calls.size());
    for (size_t k = 1; k < calls.size(); ++k) gaps[i].push_back(calls[k] - calls[k - 1]);
    Duration total;
    for (const Duration g : gaps[i]) {
      ASSERT_GE(g, kRetryMin);
      ASSERT_LT(g, kRetryMin * 2);
      total += g;
    }
    EXPECT_LT(*std::min_element(gaps[i].begin(), gaps[i].end()), Duration::Millis(105));
    EXPECT_GT(*std::max_element(gaps[i].begin(), gaps[i].end()), Duration::Millis(195));
    const Duration mean = total / static_cast<int64_t>(gaps[i].size());
    EXPECT_GT(mean, Duration::Millis(140));
    EXPECT_LT(mean, Duration::Millis(160));
    EXPECT_EQ(c.node(i).elector->state(), State::kFollower);
    EXPECT_TRUE(c.node(i).transitions.empty());
  }
  const std::vector<Duration> head0(gaps[0].begin(), gaps[0].begin() + 10);
  const std::vector<Duration> head1(gaps[1].begin(), gaps[1].begin() + 10);
  EXPECT_NE(head0, head1);
}

TEST(LeaderElectorTest, CancelStopsACampaignThatHasNotWon) {
  // Cancelling wakes the retry sleep: Campaign returns on the next turn and no Acquire follows.
  Cluster c(Options());
  ElectorNode& n = c.node();
  n.service.acquire_default = StatusCode::kAlreadyExists;
  n.StartCampaign();
  c.world.RunFor(Duration::Seconds(1));
  const size_t attempts = n.service.acquire_calls.size();
  ASSERT_GE(attempts, 5u);

  n.cancel.Cancel();
  c.world.RunFor(Duration::Millis(1));
  EXPECT_EQ(n.campaigns_finished, 1);
  c.world.RunFor(Duration::Seconds(5));
  EXPECT_EQ(n.service.acquire_calls.size(), attempts);
  EXPECT_EQ(n.elector->state(), State::kFollower);
  EXPECT_TRUE(n.transitions.empty());
  EXPECT_TRUE(n.service.revoked.empty());
}

TEST(LeaderElectorTest, ClosedCampaignGateSkipsAttemptsUntilItOpens) {
  // A follower that sees a healthy leader does not run rounds against it; once the gate opens
  // (the leader is suspected) the campaign resumes and wins.
  Cluster c(Options());
  ElectorNode& n = c.node();
  bool open = false;
  n.elector->SetCampaignGate([&open] { return open; });
  n.StartCampaign();
  c.world.RunFor(Duration::Seconds(3));
  EXPECT_TRUE(n.service.acquire_calls.empty());
  EXPECT_GE(n.elector->stats().gated, 5u);
  EXPECT_EQ(n.elector->state(), State::kFollower);
  open = true;
  c.world.RunFor(Duration::Seconds(1));
  EXPECT_EQ(n.service.acquire_calls.size(), 1u);
  EXPECT_EQ(n.elector->state(), State::kLeader);
}

TEST(LeaderElectorTest, ObserveReturnsEachNewerHolderInTokenOrderAndStopsOnCancel) {
  // An observer on node 1 sees node 0 elected, then, after node 0 steps down and node 2 takes
  // over, the newer holder; it never returns an older or the same token twice.
  Cluster c(Options(), 3);
  SharedLeaseTable table;
  table.world = &c.world;
  for (uint32_t i = 0; i < 3; ++i) c.node(i).service.table = &table;
  std::vector<LeaseInfo> seen;
  bool cancelled = false;
  CancelSource stop;
  ElectorNode& observer = c.node(1);
  auto observe = [&](FencingToken after) -> Task<void> {
    while (true) {
      Result<LeaseInfo> info =
          co_await observer.elector->Observe(after, Duration::Millis(50), stop.token());
      if (!info.ok()) {
        cancelled = info.status().code() == StatusCode::kCancelled;
        co_return;
      }
      seen.push_back(*info);
      after = info->token;
    }
  };
  c.world.env(NodeId(1)).Spawn(observe(FencingToken()));
  c.node(0).StartCampaign();
  c.world.RunFor(Duration::Seconds(1));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].holder, NodeId(0));
  c.node(0).cancel.Cancel();  // steps down and revokes
  c.node(2).StartCampaign();
  c.world.RunFor(Duration::Seconds(2));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].holder, NodeId(2));
  EXPECT_GT(seen[1].token, seen[0].token);
  stop.Cancel();
  c.world.RunFor(Duration::Millis(100));
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(seen.size(), 2u);
}

TEST(LeaderElectorTest, CancelWhileLeadingRevokesAndReturnsToFollower) {
  // A cancelled leader steps down cleanly: kFollower, the lease revoked (free at once for the next
  // candidate), no more keep-alives, and no kLost later from a forgotten fence timer.
  Cluster c(Options());
  ElectorNode& n = c.node();
  n.StartCampaign();
  c.world.RunFor(Duration::Millis(1500));
  ASSERT_EQ(n.elector->state(), State::kLeader);

  n.cancel.Cancel();
  c.world.RunFor(Duration::Millis(1));
  EXPECT_EQ(n.elector->state(), State::kFollower);
  EXPECT_FALSE(n.elector->CanAct());
  EXPECT_FALSE(n.elector->grant().has_value());
  EXPECT_EQ(n.service.revoked, std::vector<FencingToken>{FencingToken(100)});
  EXPECT_EQ(n.campaigns_finished, 1);

  c.world.RunFor(Duration::Seconds(10));
  EXPECT_EQ(n.transitions, Seq({State::kLeader, State::kFollower}));
  EXPECT_EQ(n.service.keepalive_calls.size(), 1u);
  EXPECT_EQ(n.service.acquire_calls.size(), 1u);
  EXPECT_EQ(n.elector->stats().losses, 0u);
}

TEST(LeaderElectorTest, CampaignWithAnAlreadyCancelledTokenReturnsWithoutAcquiring) {
  Cluster c(Options());
  ElectorNode& n = c.node();
  n.cancel.Cancel();
  n.StartCampaign();
  EXPECT_EQ(n.campaigns_finished, 1);
  EXPECT_TRUE(n.service.acquire_calls.empty());
  EXPECT_EQ(n.elector->state(), State::kFollower);
}

TEST(LeaderElectorTest, ResignRevokesReturnsToFollowerAndAllowsANewCampaign) {
  // Resign is immediate (CanAct false before the revoke is even answered), stops the campaign and
  // cancels the fence; a later Campaign starts afresh and wins with a new token.
  Cluster c(Options());
  ElectorNode& n = c.node();
  n.StartCampaign();
  c.world.RunFor(Duration::Millis(1500));
  ASSERT_EQ(n.elector->state(), State::kLeader);

  n.StartResign();
  EXPECT_EQ(n.elector->state(), State::kFollower);
  EXPECT_FALSE(n.elector->CanAct());
  EXPECT_FALSE(n.elector->grant().has_value());
  EXPECT_EQ(n.service.revoked, std::vector<FencingToken>{FencingToken(100)});
  c.world.RunFor(Duration::Millis(1));
  EXPECT_EQ(n.campaigns_finished, 1);

  c.world.RunFor(Duration::Seconds(10));
  EXPECT_EQ(n.transitions, Seq({State::kLeader, State::kFollower}));
  EXPECT_EQ(n.service.keepalive_calls.size(), 1u);
  EXPECT_EQ(n.service.acquire_calls.size(), 1u);
  EXPECT_EQ(n.elector->stats().losses, 0u);

  n.StartCampaign();
  EXPECT_EQ(n.elector->state(), State::kLeader);
  EXPECT_EQ(n.elector->token(), FencingToken(101));
}

TEST(LeaderElectorTest, ResignDuringAnInFlightAcquireReleasesTheLateGrant) {
  // The Acquire was sent before Resign and is granted after it: nobody will lead with that lease,
  // so it is revoked at once rather than left to block other candidates for a whole TTL.
  Cluster c(Options());
  ElectorNode& n = c.node();
  n.service.acquire_delay = Duration::Millis(100);
  n.StartCampaign();
  c.world.RunFor(Duration::Millis(50));
  n.StartResign();
  EXPECT_TRUE(n.service.revoked.empty());

  c.world.RunFor(Duration::Millis(100));
  EXPECT_EQ(n.service.revoked, std::vector<FencingToken>{FencingToken(100)});
  EXPECT_EQ(n.campaigns_finished, 1);
  EXPECT_EQ(n.elector->state(), State::kFollower);
  EXPECT_TRUE(n.transitions.empty());
}

TEST(LeaderElectorTest, ListenerSeesTheExactSequenceOfTransitions) {
  // leader → suspended → leader → lost (kFailedPrecondition); a new campaign: follower → leader
  // with a new token; resign: follower. Each call comes after the change (checked in the listener:
  // state() already equals the new state; grant non-null exactly in kLeader / kSuspended).
  Cluster c(Options());
  ElectorNode& n = c.node();
  const MonoTime start = n.now();
  n.service.keepalive_script = {StatusCode::kUnavailable, StatusCode::kOk,
                                StatusCode::kFailedPrecondition};
  n.StartCampaign();
  c.world.RunFor(Duration::Seconds(3));
  ASSERT_EQ(n.campaigns_finished, 1);

  n.cancel = CancelSource();
  n.StartCampaign();
  n.StartResign();
  c.world.RunFor(Duration::Millis(1));

  EXPECT_EQ(n.transitions, Seq({State::kLeader, State::kSuspended, State::kLeader, State::kLost,
                                State::kFollower, State::kLeader, State::kFollower}));
  const FencingToken none;
  EXPECT_EQ(n.transition_tokens,
            (std::vector<FencingToken>{FencingToken(100), FencingToken(100), FencingToken(100),
                                       none, none, FencingToken(101), none}));
  const Duration ms = Duration::Millis(1);
  EXPECT_EQ(n.transition_times,
            (std::vector<MonoTime>{start, start + ms * 1000, start + ms * 1100, start + ms * 2100,
                                   start + ms * 3000, start + ms * 3000, start + ms * 3000}));
  EXPECT_EQ(n.campaigns_finished, 2);
}

// --- Options -------------------------------------------------------------------------------------

TEST(LeaderElectorTest, InvalidOptionsAreRejectedNamingTheField) {
  // Invalid options never build an elector, and the error starts with the offending field.
  sim::World world(1, NoDrift(1));
  world.Boot(kN0, [](Env&) { return std::make_unique<sim::Node>(); });
  FakeLeaseService service(world.env(kN0));
  struct Case {
    const char* field;
    ElectorOptions options;
  };
  std::vector<Case> cases;
  auto add = [&](const char* field, auto mutate) {
    ElectorOptions o = Options();
    mutate(o);
    cases.push_back(Case{field, o});
  };
  add("ttl", [](ElectorOptions& o) { o.ttl = LeaseLimits::kTtlMin - Duration::Nanos(1); });
  add("ttl", [](ElectorOptions& o) { o.ttl = LeaseLimits::kTtlMax + Duration::Nanos(1); });
  add("ttl", [](ElectorOptions& o) { o.ttl = Duration::Zero(); });
  add("renew_interval", [](ElectorOptions& o) { o.renew_interval = o.ttl; });
  add("renew_interval", [](ElectorOptions& o) { o.renew_interval = o.ttl * 2; });
  add("renew_interval", [](ElectorOptions& o) { o.renew_interval = -Duration::Millis(1); });
  add("retry_min", [](ElectorOptions& o) { o.retry_min = Duration::Zero(); });
  add("retry_min", [](ElectorOptions& o) { o.retry_min = -Duration::Millis(1); });
  add("name", [](ElectorOptions& o) { o.name.clear(); });
  for (const Case& k : cases) {
    const Status s = k.options.Validate();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << k.field;
    EXPECT_EQ(s.message().substr(0, std::string_view(k.field).size()), k.field) << s.ToString();
    Result<std::unique_ptr<LeaderElector>> created =
        LeaderElector::Create(world.env(kN0), service, k.options);
    EXPECT_EQ(created.status().code(), StatusCode::kInvalidArgument) << k.field;
  }
  // The boundaries themselves are valid.
  ElectorOptions edge = Options();
  edge.ttl = LeaseLimits::kTtlMin;
  edge.renew_interval = edge.ttl - Duration::Nanos(1);
  edge.retry_min = Duration::Nanos(1);
  EXPECT_TRUE(edge.Validate().ok()) << edge.Validate().ToString();
  edge.ttl = LeaseLimits::kTtlMax;
  EXPECT_TRUE(edge.Validate().ok()) << edge.Validate().ToString();
  EXPECT_TRUE(ElectorOptions().Validate().ok());
}

// --- Teardown and several nodes ------------------------------------------------------------------

TEST(LeaderElectorTest, DestroyedElectorLeavesNoTimerBehind) {
  // A crash destroys the node's coroutines, then its objects. Afterwards nothing the elector or its
  // Campaign scheduled may still be pending: a fence timer left behind would run on freed memory.
  sim::World world(3, NoDrift(1));
  world.Boot(kN0, [](Env&) { return std::make_unique<sim::Node>(); });
  TrackingEnv env(world.env(kN0));
  FakeLeaseService service(world.env(kN0));
  service.keepalive_delay = Duration::Millis(500);
  Result<std::unique_ptr<LeaderElector>> created = LeaderElector::Create(env, service, Options());
  ASSERT_TRUE(created.ok());
  std::unique_ptr<LeaderElector> elector = std::move(created).value();
  {
    TaskSet tasks;
    tasks.Spawn(elector->Campaign(CancelToken()));
    EXPECT_EQ(env.pending_timers(), 2u);   // the fence and the renewal sleep
    world.RunFor(Duration::Millis(1200));  // a keep-alive is in flight
    ASSERT_EQ(elector->state(), State::kLeader);
    ASSERT_EQ(service.keepalive_calls.size(), 1u);
    EXPECT_EQ(env.pending_timers(), 1u);  // the fence
  }
  // The coroutines are torn down; the fence belongs to the elector and is still armed.
  EXPECT_EQ(env.pending_timers(), 1u);
  elector.reset();
  EXPECT_EQ(env.pending_timers(), 0u);
  world.RunFor(Duration::Seconds(10));
}

TEST(LeaderElectorTest, ThreeNodesNeverActTogetherAcrossAPausedLeaderAndACrash) {
  // Three candidates over one lease table. The leader is paused past its lease; another is elected
  // (with a higher token) and, on resume, the old leader can no longer act and is lost. Then the
  // new leader crashes and the third takes over. At no checked instant do two nodes CanAct().
  Cluster c(Options(), 3, 11);
  SharedLeaseTable table;
  table.world = &c.world;
  for (uint32_t i = 0; i < 3; ++i) {
    c.node(i).service.table = &table;
    c.node(i).StartCampaign();
  }
  int acting_max = 0;
  int checks = 0;
  auto count_acting = [&c] {
    int acting = 0;
    for (uint32_t i = 0; i < 3; ++i) {
      sim::Node* n = c.world.node(NodeId(i));
      if (n != nullptr && static_cast<ElectorNode*>(n)->elector->CanAct()) ++acting;
    }
    return acting;
  };
  for (int64_t t = 0; t < 30'000; t += 5) {
    c.world.Schedule(Duration::Millis(t), [&] {
      acting_max = std::max(acting_max, count_acting());
      ++checks;
    });
  }
  auto leader = [&c]() -> int {
    int found = -1;
    for (uint32_t i = 0; i < 3; ++i) {
      sim::Node* n = c.world.node(NodeId(i));
      if (n == nullptr) continue;
      if (static_cast<ElectorNode*>(n)->elector->state() != State::kLeader) continue;
      EXPECT_EQ(found, -1) << "two nodes in kLeader";
      found = static_cast<int>(i);
    }
    return found;
  };

  c.world.RunFor(Duration::Seconds(5));
  const int first = leader();
  ASSERT_GE(first, 0);
  const FencingToken first_token = c.node(static_cast<uint32_t>(first)).elector->token();

  c.world.Pause(NodeId(static_cast<uint32_t>(first)));
  c.world.RunFor(Duration::Seconds(6));
  c.world.Resume(NodeId(static_cast<uint32_t>(first)));
  EXPECT_FALSE(c.node(static_cast<uint32_t>(first)).elector->CanAct());
  EXPECT_LE(count_acting(), 1);
  c.world.RunFor(Duration::Millis(1));
  EXPECT_EQ(c.node(static_cast<uint32_t>(first)).elector->state(), State::kLost);
  const int second = leader();
  ASSERT_GE(second, 0);
  ASSERT_NE(second, first);
  const FencingToken second_token = c.node(static_cast<uint32_t>(second)).elector->token();
  EXPECT_GT(second_token, first_token);

  c.world.Crash(NodeId(static_cast<uint32_t>(second)));
  c.world.RunFor(Duration::Seconds(6));
  const int third = leader();
  ASSERT_GE(third, 0);
  EXPECT_NE(third, first);  // its campaign ended with kLost
  EXPECT_NE(third, second);
  EXPECT_GT(c.node(static_cast<uint32_t>(third)).elector->token(), second_token);

  c.world.RunFor(Duration::Seconds(15));
  EXPECT_EQ(checks, 6000);
  EXPECT_EQ(acting_max, 1);
}

}  // namespace
}  // namespace faultline::lease
