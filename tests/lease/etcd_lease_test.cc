// EtcdLeaseService on a real etcd beyond the conformance suite: LeaderElector (one leader, fail-
// over after the leader's loop stops, election while etcd's own raft leader is SIGSTOPped, the
// watch waking the successor at once), and EtcdCluster as the chaos harness drives it.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "faultline/adapters/etcd_lease.h"
#include "faultline/lease/leader_elector.h"
#include "faultline/runtime/etcd_cluster.h"
#include "faultline/runtime/real_env.h"
#include "tests/lease/etcd_test_util.h"
#include "tests/lease/lease_worlds.h"

namespace faultline::adapters {
namespace {

using etcd_test::OpenEnv;
using etcd_test::Options;
using etcd_test::RunOn;
using etcd_test::UniquePrefix;
using lease::LeaderElector;
using lease::LeaderState;
using lease::LeaseGrant;
using runtime::EtcdCluster;
using runtime::RealEnv;

// ---- LeaderElector on a real etcd: nodes with a loop thread each ----

// The host's CLOCK_MONOTONIC, the clock every RealEnv here reads.
MonoTime HostMonoNow() {
  return MonoTime::FromNanos(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count());
}

struct Transition {
  uint32_t node;
  LeaderState state;
  MonoTime at;
  FencingToken token;
};

class ElectionNode {
 public:
  ElectionNode(uint32_t id, const EtcdLeaseOptions& options, const lease::ElectorOptions& eo,
               std::mutex* mu, std::vector<Transition>* log)
      : id_(id), env_(OpenEnv(id)) {
    auto service = EtcdLeaseService::Open(*env_, NodeId(id), options);
    FL_ASSERT(service.ok());
    service_ = std::move(service).value();
    auto elector = LeaderElector::Create(*env_, *service_, eo);
    FL_ASSERT(elector.ok());
    elector_ = std::move(elector).value();
    RealEnv* env = env_.get();
    elector_->SetListener([id, env, mu, log](LeaderState s, const LeaseGrant* g) {
      std::lock_guard<std::mutex> lock(*mu);
      log->push_back(Transition{id, s, env->clock().Now(), g ? g->token : FencingToken()});
    });
    env_->Spawn(elector_->Campaign(cancel_.token()));
    thread_ = std::thread([this] { env_->Run(); });
  }
  // Stops the loop for good, like a crashed process: no revoke, no more keep-alives.
  void Crash() {
    if (!thread_.joinable()) return;
    env_->Stop();
    thread_.join();
  }
  ~ElectionNode() {
    Crash();
    env_->DestroySpawned();
    elector_.reset();
    service_.reset();
  }
  // Only after Crash(): the loop no longer runs.
  const std::optional<LeaseGrant>& grant_after_crash() const { return elector_->grant(); }
  uint32_t id() const { return id_; }

 private:
  uint32_t id_;
  std::unique_ptr<RealEnv> env_;
  std::unique_ptr<EtcdLeaseService> service_;
  std::unique_ptr<LeaderElector> elector_;
  CancelSource cancel_;
  std::thread thread_;
};

class Election {
 public:
  static constexpr Duration kTtl = Duration::Seconds(1);

  Election(std::vector<std::string> endpoints, size_t nodes, const char* test) {
    const EtcdLeaseOptions options = Options(std::move(endpoints), UniquePrefix(test));
    lease::ElectorOptions eo;
    eo.ttl = kTtl;
    eo.retry_min = Duration::Millis(250);
    for (size_t i = 0; i < nodes; ++i) {
      nodes_.push_back(
          std::make_unique<ElectionNode>(static_cast<uint32_t>(i + 1), options, eo, &mu_, &log_));
    }
  }
  // The node (1-based id) that is leader now according to the transitions, if exactly one is.
  std::optional<Transition> WaitLeader(uint32_t not_node, Duration limit) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::nanoseconds(limit.nanos());
    while (std::chrono::steady_clock::now() < end) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        std::map<uint32_t, Transition> last;
        for (const Transition& t : log_) last[t.node] = t;
        for (const auto& [node, t] : last) {
          if (node != not_node && t.state == LeaderState::kLeader) return t;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return std::nullopt;
  }
  size_t LeadersNow() {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<uint32_t, LeaderState> last;
    for (const Transition& t : log_) last[t.node] = t.state;
    size_t n = 0;
    for (const auto& [node, s] : last) n += s == LeaderState::kLeader ? 1 : 0;
    return n;
  }
  ElectionNode& node(uint32_t id) { return *nodes_[id - 1]; }

 private:
  std::mutex mu_;
  std::vector<Transition> log_;
  std::vector<std::unique_ptr<ElectionNode>> nodes_;
};

TEST(EtcdElectionTest, ElectsOneLeaderAndFailsOverWhenTheLeadersLoopStops) {
  runtime::EtcdClusterOptions co;
  co.members = 3;
  auto cluster = EtcdCluster::Start(co);
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  Election election((*cluster)->endpoints(), 3, "failover");
  std::optional<Transition> first = election.WaitLeader(0, Duration::Seconds(5));
  ASSERT_TRUE(first.has_value());
  // Past the first grant's validity (valid_until <= sent_at + ttl <= first->at + ttl) the leader
  // still leads only if its renewals (every ttl/3) worked: wait just that long, not longer.
  const MonoTime first_validity_over = first->at + Election::kTtl + Duration::Millis(100);
  while (HostMonoNow() < first_validity_over) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(election.LeadersNow(), 1u);
  std::optional<Transition> still = election.WaitLeader(0, Duration::Seconds(1));
  ASSERT_TRUE(still.has_value());
  EXPECT_EQ(still->node, first->node) << "leadership moved without a fault";

  election.node(first->node).Crash();
  const std::optional<LeaseGrant>& old = election.node(first->node).grant_after_crash();
  ASSERT_TRUE(old.has_value());
  std::optional<Transition> next = election.WaitLeader(first->node, Duration::Seconds(6));
  ASSERT_TRUE(next.has_value()) << "no new leader";
  EXPECT_GT(next->token, first->token);
  // Never two able to act at once: the successor's term starts after the crashed leader's
  // validity ended (one host CLOCK_MONOTONIC behind every RealEnv here).
  EXPECT_GE(next->at, old->valid_until);
  std::printf("failover: leader %u's validity ended at +%.0f ms, node %u elected at +%.0f ms\n",
              first->node, static_cast<double>((old->valid_until - first->at).nanos()) / 1e6,
              next->node, static_cast<double>((next->at - first->at).nanos()) / 1e6);
}

TEST(EtcdElectionTest, StillElectsWhileEtcdsRaftLeaderIsStopped) {
  runtime::EtcdClusterOptions co;
  co.members = 3;
  auto cluster = EtcdCluster::Start(co);
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  Election election((*cluster)->endpoints(), 3, "raft-leader-stopped");
  std::optional<Transition> first = election.WaitLeader(0, Duration::Seconds(5));
  ASSERT_TRUE(first.has_value());
  Result<size_t> raft_leader = (*cluster)->LeaderIndex();
  ASSERT_TRUE(raft_leader.ok()) << raft_leader.status().ToString();
  ASSERT_TRUE((*cluster)->Pause(*raft_leader).ok());
  election.node(first->node).Crash();
  const std::optional<LeaseGrant>& old = election.node(first->node).grant_after_crash();
  ASSERT_TRUE(old.has_value());
  // etcd elects a new raft leader (~1 s) and extends every lease by its election timeout; the
  // crashed holder's lease then expires and a candidate takes over.
  std::optional<Transition> next = election.WaitLeader(first->node, Duration::Seconds(10));
  ASSERT_TRUE(next.has_value()) << "no leader while etcd member " << *raft_leader << " is stopped";
  EXPECT_GT(next->token, first->token);
  EXPECT_GE(next->at, old->valid_until);
  Result<size_t> new_raft_leader = (*cluster)->LeaderIndex();
  ASSERT_TRUE(new_raft_leader.ok()) << new_raft_leader.status().ToString();
  EXPECT_NE(*new_raft_leader, *raft_leader);
  EXPECT_TRUE((*cluster)->Resume(*raft_leader).ok());
}

TEST(EtcdElectionTest, TheWatchWakesTheSuccessorLongBeforeTheRetryPeriod) {
  auto cluster = lease_conformance::SharedEtcdCluster(1);
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  auto env = OpenEnv(1);
  const EtcdLeaseOptions options = Options((*cluster)->endpoints(), UniquePrefix("watch"));
  auto a_service = EtcdLeaseService::Open(*env, NodeId(1), options);
  auto b_service = EtcdLeaseService::Open(*env, NodeId(2), options);
  ASSERT_TRUE(a_service.ok() && b_service.ok());
  lease::ElectorOptions eo;
  eo.ttl = Duration::Seconds(2);
  eo.retry_min = Duration::Seconds(5);  // polling alone would take 5..10 s
  auto a = LeaderElector::Create(*env, **a_service, eo);
  auto b = LeaderElector::Create(*env, **b_service, eo);
  ASSERT_TRUE(a.ok() && b.ok());
  CancelSource stop;
  env->Spawn((*a)->Campaign(stop.token()));
  for (int i = 0; i < 2000 && (*a)->state() != LeaderState::kLeader; ++i) {
    env->RunFor(Duration::Millis(1));
  }
  ASSERT_EQ((*a)->state(), LeaderState::kLeader);
  env->Spawn((*b)->Campaign(stop.token()));
  env->RunFor(Duration::Millis(300));  // b tried, found a, and is waiting on the watch
  ASSERT_EQ((*b)->state(), LeaderState::kFollower);
  ASSERT_GE((*b)->stats().attempts, 1u);
  const MonoTime resigned = env->clock().Now();
  env->Spawn((*a)->Resign());
  while ((*b)->state() != LeaderState::kLeader && env->clock().Now() - resigned < Duration::Seconds(4)) {
    env->RunFor(Duration::Millis(1));
  }
  ASSERT_EQ((*b)->state(), LeaderState::kLeader);
  const Duration took = env->clock().Now() - resigned;
  EXPECT_LT(took, Duration::Millis(500)) << "the successor waited for its retry period";
  EXPECT_EQ((*b)->stats().attempts, 2u);
  std::printf("successor elected %.1f ms after the leader resigned (retry_min 5 s)\n",
              static_cast<double>(took.nanos()) / 1e6);
  stop.Cancel();
  env->RunFor(Duration::Millis(200));
  env->DestroySpawned();
}

// lease_service.h: the holder is a node id. A restarted process of the holder's node (a new
// service, no memory of the grant) takes its unexpired lease back under the same token, and the
// lease it takes back is the key's: revoking it frees the name.
TEST(EtcdLeaseServiceTest, ARestartedHolderTakesItsLeaseBackUnderTheSameToken) {
  auto cluster = lease_conformance::SharedEtcdCluster(1);
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  auto env = OpenEnv(1);
  const EtcdLeaseOptions options = Options((*cluster)->endpoints(), UniquePrefix("restart"));
  auto before = EtcdLeaseService::Open(*env, NodeId(1), options);
  auto after = EtcdLeaseService::Open(*env, NodeId(1), options);
  auto other = EtcdLeaseService::Open(*env, NodeId(2), options);
  ASSERT_TRUE(before.ok() && after.ok() && other.ok());
  auto first = RunOn(*env, (*before)->Acquire("x", Duration::Seconds(2)));
  ASSERT_TRUE(first.has_value() && first->ok()) << (first ? first->status().ToString() : "hung");
  const MonoTime sent_no_earlier = env->clock().Now();
  auto again = RunOn(*env, (*after)->Acquire("x", Duration::Seconds(2)));
  ASSERT_TRUE(again.has_value() && again->ok()) << (again ? again->status().ToString() : "hung");
  EXPECT_EQ((*again)->token, (*first)->token);
  EXPECT_EQ((*again)->holder, NodeId(1));
  EXPECT_GE((*again)->sent_at, sent_no_earlier);
  EXPECT_EQ((*after)->LeaseIdOf(**again), (*before)->LeaseIdOf(**first));
  auto blocked = RunOn(*env, (*other)->Acquire("x", Duration::Seconds(2)));
  ASSERT_TRUE(blocked.has_value());
  EXPECT_EQ(blocked->status().code(), StatusCode::kAlreadyExists) << blocked->status().ToString();
  auto revoked = RunOn(*env, (*after)->Revoke(**again));
  ASSERT_TRUE(revoked.has_value() && revoked->ok());
  auto read = RunOn(*env, (*other)->Read("x"));
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->status().code(), StatusCode::kNotFound) << read->status().ToString();
  auto next = RunOn(*env, (*other)->Acquire("x", Duration::Seconds(2)));
  ASSERT_TRUE(next.has_value() && next->ok());
  EXPECT_GT((*next)->token, (*first)->token);
  env->DestroySpawned();
}

// ---- EtcdCluster itself (the chaos harness drives members through it) ----

uint32_t ProcessUid(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) == 0) return static_cast<uint32_t>(std::stoul(line.substr(4)));
  }
  return UINT32_MAX;
}

TEST(EtcdClusterTest, MembersRunAsTheirUidsAndSurviveKillRestartAndPause) {
  runtime::EtcdClusterOptions co;
  co.members = 3;
  co.uids = {0, 20001, 20002};
  auto started = EtcdCluster::Start(co);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  EtcdCluster& cluster = **started;
  const std::string dir = cluster.dir();
  EXPECT_EQ(ProcessUid(cluster.pid(0)), getuid());
  EXPECT_EQ(ProcessUid(cluster.pid(1)), 20001u);
  EXPECT_EQ(ProcessUid(cluster.pid(2)), 20002u);
  EXPECT_EQ(cluster.uid(1), 20001u);
  Result<size_t> leader = cluster.LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status().ToString();
  const size_t follower = (*leader + 1) % 3;
  ASSERT_TRUE(cluster.Kill(follower).ok());
  EXPECT_FALSE(cluster.running(follower));
  EXPECT_EQ(cluster.Kill(follower).code(), StatusCode::kFailedPrecondition);
  const Status restarted = cluster.Restart(follower);
  ASSERT_TRUE(restarted.ok()) << restarted.ToString();
  EXPECT_EQ(ProcessUid(cluster.pid(follower)), cluster.uid(follower) == 0 ? getuid() : cluster.uid(follower));
  EXPECT_EQ(cluster.Restart(follower).code(), StatusCode::kFailedPrecondition);
  // The raft leader stopped: the other two elect one of themselves.
  ASSERT_TRUE(cluster.Pause(*leader).ok());
  EXPECT_TRUE(cluster.paused(*leader));
  std::optional<size_t> next;
  for (int i = 0; i < 100 && !next.has_value(); ++i) {
    Result<size_t> l = cluster.LeaderIndex();
    if (l.ok() && *l != *leader) next = *l;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(next.has_value()) << "no new raft leader while member " << *leader << " is stopped";
  ASSERT_TRUE(cluster.Resume(*leader).ok());
  EXPECT_TRUE(cluster.WaitHealthy(*leader, Duration::Seconds(10)).ok());
  started->reset();
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(EtcdClusterTest, BadOptionsAndAMissingBinaryAreClearErrors) {
  runtime::EtcdClusterOptions co;
  co.members = 0;
  EXPECT_EQ(EtcdCluster::Start(co).status().code(), StatusCode::kInvalidArgument);
  co.members = 8;
  EXPECT_NE(co.Validate().message().find("members"), std::string::npos);
  co.members = 3;
  co.uids = {1, 2};
  EXPECT_NE(co.Validate().message().find("uids"), std::string::npos);
  co.uids.clear();
  co.election_timeout = Duration::Millis(100);
  EXPECT_NE(co.Validate().message().find("election_timeout"), std::string::npos);
  co.election_timeout = Duration::Millis(500);
  co.binary = "/nonexistent/etcd";
  auto started = EtcdCluster::Start(co);
  EXPECT_EQ(started.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(started.status().message().find("/nonexistent/etcd"), std::string::npos);
}

}  // namespace
}  // namespace faultline::adapters
