// EtcdLeaseService beyond the conformance suite: LeaderElector on a real etcd (one leader, fail-
// over after the leader's loop stops, election while etcd's own raft leader is SIGSTOPped, the
// watch waking the successor at once), and bad answers from a scripted fake etcd (garbage JSON,
// hangs, refused endpoints, a compacted watch, a lease lost while a keep-alive is in flight).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "faultline/adapters/etcd_lease.h"
#include "faultline/lease/leader_elector.h"
#include "faultline/runtime/etcd_cluster.h"
#include "faultline/runtime/real_env.h"
#include "faultline/sim/world.h"
#include "src/adapters/etcd_http.h"
#include "tests/lease/fake_http_server.h"
#include "tests/lease/lease_worlds.h"

namespace faultline::adapters {
namespace {

using Json = nlohmann::json;
using lease::LeaderElector;
using lease::LeaderState;
using lease::LeaseGrant;
using lease::LeaseInfo;
using runtime::EtcdCluster;
using runtime::RealEnv;

std::unique_ptr<RealEnv> OpenEnv(uint32_t self) {
  runtime::RealEnvOptions o;
  o.self = NodeId(self);
  o.peers = {runtime::Peer{NodeId(self), 0, false}};
  auto env = RealEnv::Open(o);
  FL_ASSERT(env.ok());
  return std::move(env).value();
}

EtcdLeaseOptions Options(std::vector<std::string> endpoints, const std::string& prefix) {
  EtcdLeaseOptions o;
  o.endpoints = std::move(endpoints);
  o.key_prefix = prefix;
  o.request_timeout = Duration::Millis(300);
  o.connect_timeout = Duration::Millis(100);
  return o;
}

std::string UniquePrefix(const char* test) {
  static int n = 0;
  return std::string("/etcd-lease-test/") + std::to_string(getpid()) + "/" + test + "/" +
         std::to_string(n++) + "/";
}

template <typename T>
Task<void> Capture(Task<T> task, std::shared_ptr<std::optional<T>> out) {
  T value = co_await std::move(task);
  out->emplace(std::move(value));
}

// Runs `task` on `env` (driven by this thread) until it finishes or `limit` passes.
template <typename T>
std::optional<T> RunOn(RealEnv& env, Task<T> task, Duration limit = Duration::Seconds(10)) {
  auto out = std::make_shared<std::optional<T>>();
  env.Spawn(Capture(std::move(task), out));
  const MonoTime end = env.clock().Now() + limit;
  while (!out->has_value() && env.clock().Now() < end) env.RunFor(Duration::Millis(1));
  return *out;
}

// ---- LeaderElector on a real etcd: nodes with a loop thread each ----

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
  Election(std::vector<std::string> endpoints, size_t nodes, const char* test) {
    const EtcdLeaseOptions options = Options(std::move(endpoints), UniquePrefix(test));
    lease::ElectorOptions eo;
    eo.ttl = Duration::Seconds(1);
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
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // several renewals
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

// ---- A scripted etcd for bad answers ----

class FakeEtcd {
 public:
  enum class KeepAliveMode { kNormal, kNoTtl, kHang };
  FakeEtcd() {
    auto server = testing::FakeHttpServer::Start(
        [this](const std::string& path, const std::string& body) { return Handle(path, body); });
    FL_ASSERT(server.ok());
    server_ = std::move(server).value();
  }
  std::string url() const { return server_->url(); }
  void set_keepalive(KeepAliveMode m) {
    std::lock_guard<std::mutex> lock(mu_);
    keepalive_ = m;
  }
  void set_compact_next_watch() {
    std::lock_guard<std::mutex> lock(mu_);
    compact_next_watch_ = true;
  }
  size_t Count(const std::string& path) const {
    size_t n = 0;
    for (const auto& [p, b] : server_->requests()) n += p == path ? 1 : 0;
    return n;
  }

 private:
  Json Header() { return Json{{"revision", std::to_string(revision_)}, {"member_id", "1"}}; }
  testing::FakeHttpAnswer Ok(const Json& j) { return testing::FakeHttpAnswer{200, j.dump()}; }

  testing::FakeHttpAnswer Handle(const std::string& path, const std::string& body) {
    std::lock_guard<std::mutex> lock(mu_);
    const Json req = Json::parse(body, nullptr, false);
    if (path == "/v3/lease/grant") {
      ++lease_;
      Json r = {{"header", Header()}, {"ID", std::to_string(lease_)}, {"TTL", req["TTL"]}};
      return Ok(r);
    }
    if (path == "/v3/kv/txn") {
      const std::string key = req["compare"][0]["key"];
      if (kv_.count(key) == 0) {
        ++revision_;
        kv_[key] = {req["success"][0]["request_put"]["value"], revision_,
                    std::stoll(req["success"][0]["request_put"]["lease"].get<std::string>())};
        return Ok(Json{{"header", Header()}, {"succeeded", true}});
      }
      return Ok(Json{{"header", Header()}});
    }
    if (path == "/v3/kv/range") {
      const std::string key = req["key"];
      Json r = {{"header", Header()}};
      if (kv_.count(key) != 0) {
        const Entry& e = kv_[key];
        r["kvs"] = Json::array({Json{{"key", key},
                                     {"value", e.value},
                                     {"create_revision", std::to_string(e.create)},
                                     {"lease", std::to_string(e.lease)}}});
        r["count"] = "1";
      }
      return Ok(r);
    }
    if (path == "/v3/lease/keepalive") {
      Json result = {{"header", Header()}, {"ID", req["ID"]}};
      if (keepalive_ == KeepAliveMode::kHang) return testing::FakeHttpAnswer{200, "", {}, true};
      if (keepalive_ == KeepAliveMode::kNormal) result["TTL"] = "1";
      return Ok(Json{{"result", result}});
    }
    if (path == "/v3/lease/revoke") {
      const int64_t id = std::stoll(req["ID"].get<std::string>());
      for (auto it = kv_.begin(); it != kv_.end();) {
        it = it->second.lease == id ? kv_.erase(it) : std::next(it);
      }
      ++revision_;
      return Ok(Json{{"header", Header()}});
    }
    if (path == "/v3/watch") {
      testing::FakeHttpAnswer a;
      a.body = Json{{"result", {{"header", Header()}, {"created", true}}}}.dump() + "\n";
      if (compact_next_watch_) {
        compact_next_watch_ = false;
        a.body += Json{{"result",
                        {{"header", Header()}, {"compact_revision", "3"}, {"canceled", true}}}}
                      .dump() +
                  "\n";
        kv_.clear();  // meanwhile the holder's key went
        ++revision_;
      }
      a.hold = Duration::Seconds(5);
      return a;
    }
    return testing::FakeHttpAnswer{404, "{\"error\":\"not found\",\"code\":5}"};
  }

  struct Entry {
    std::string value;
    int64_t create = 0;
    int64_t lease = 0;
  };
  mutable std::mutex mu_;
  int64_t revision_ = 1;
  int64_t lease_ = 100;
  std::map<std::string, Entry> kv_;
  KeepAliveMode keepalive_ = KeepAliveMode::kNormal;
  bool compact_next_watch_ = false;
  std::unique_ptr<testing::FakeHttpServer> server_;
};

TEST(EtcdBadInputTest, GarbageJsonIsAClearUnavailableNeverACrash) {
  for (const std::string garbage : {"not json{", "[1,2,3]", "{\"header\": 5}", "{\"ID\": {}}", ""}) {
    auto server = testing::FakeHttpServer::Start(
        [&](const std::string&, const std::string&) { return testing::FakeHttpAnswer{200, garbage}; });
    ASSERT_TRUE(server.ok());
    auto env = OpenEnv(1);
    auto service = EtcdLeaseService::Open(*env, NodeId(1), Options({(*server)->url()}, "/g/"));
    ASSERT_TRUE(service.ok());
    auto grant = RunOn(*env, (*service)->Acquire("x", Duration::Seconds(1)));
    ASSERT_TRUE(grant.has_value());
    EXPECT_EQ(grant->status().code(), StatusCode::kUnavailable) << garbage;
    EXPECT_NE(grant->status().message().find("malformed"), std::string::npos)
        << garbage << ": " << grant->status().ToString();
    auto info = RunOn(*env, (*service)->Read("x"));
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->status().code(), StatusCode::kUnavailable) << info->status().ToString();
    env->DestroySpawned();
  }
}

TEST(EtcdBadInputTest, HangingAndRefusingEndpointsGiveUnavailableWithinTheTimeouts) {
  auto hang = testing::FakeHttpServer::Start([](const std::string&, const std::string&) {
    return testing::FakeHttpAnswer{200, "", {}, /*hang=*/true};
  });
  ASSERT_TRUE(hang.ok());
  // A port nothing listens on: bind, read the port, close.
  auto closed = testing::FakeHttpServer::Start(
      [](const std::string&, const std::string&) { return testing::FakeHttpAnswer{}; });
  ASSERT_TRUE(closed.ok());
  const std::string refused = (*closed)->url();
  closed->reset();
  auto env = OpenEnv(1);
  auto service = EtcdLeaseService::Open(*env, NodeId(1), Options({(*hang)->url(), refused}, "/h/"));
  ASSERT_TRUE(service.ok());
  const MonoTime start = env->clock().Now();
  auto grant = RunOn(*env, (*service)->Acquire("x", Duration::Seconds(1)));
  const Duration took = env->clock().Now() - start;
  ASSERT_TRUE(grant.has_value());
  EXPECT_EQ(grant->status().code(), StatusCode::kUnavailable) << grant->status().ToString();
  // One request timeout on the hanging endpoint plus a refused connect (and the same for the
  // best-effort revoke is not reached: the grant itself failed).
  EXPECT_LT(took, Duration::Millis(1500));
  EXPECT_GE((*service)->stats().endpoint_failures, 2u);
  env->DestroySpawned();
}

TEST(EtcdBadInputTest, AnEndpointThatFailsIsSkippedForTheNextOne) {
  FakeEtcd etcd;
  auto broken = testing::FakeHttpServer::Start([](const std::string&, const std::string&) {
    return testing::FakeHttpAnswer{503, "{\"error\":\"etcdserver: no leader\",\"code\":14}"};
  });
  ASSERT_TRUE(broken.ok());
  auto env = OpenEnv(1);
  auto service =
      EtcdLeaseService::Open(*env, NodeId(1), Options({(*broken)->url(), etcd.url()}, "/s/"));
  ASSERT_TRUE(service.ok());
  auto grant = RunOn(*env, (*service)->Acquire("x", Duration::Seconds(1)));
  ASSERT_TRUE(grant.has_value() && grant->ok()) << grant->status().ToString();
  auto info = RunOn(*env, (*service)->Read("x"));
  ASSERT_TRUE(info.has_value() && info->ok());
  EXPECT_EQ(info->value().holder, NodeId(1));
  EXPECT_EQ(info->value().token, grant->value().token);
  env->DestroySpawned();
}

TEST(EtcdBadInputTest, ACompactedWatchRevisionIsReadAgainNotTakenAsARelease) {
  FakeEtcd etcd;
  auto env = OpenEnv(1);
  auto holder = EtcdLeaseService::Open(*env, NodeId(1), Options({etcd.url()}, "/c/"));
  auto waiter = EtcdLeaseService::Open(*env, NodeId(2), Options({etcd.url()}, "/c/"));
  ASSERT_TRUE(holder.ok() && waiter.ok());
  auto grant = RunOn(*env, (*holder)->Acquire("x", Duration::Seconds(1)));
  ASSERT_TRUE(grant.has_value() && grant->ok());
  // Without a compaction the watch (created, then nothing) runs to its deadline.
  auto held = RunOn(*env, (*waiter)->WaitReleased("x", Duration::Millis(200), CancelToken()));
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->code(), StatusCode::kDeadlineExceeded) << held->ToString();
  // A compacted answer makes the waiter read again; the key is gone by then: released.
  etcd.set_compact_next_watch();
  const size_t ranges_before = etcd.Count("/v3/kv/range");
  auto woke = RunOn(*env, (*waiter)->WaitReleased("x", Duration::Seconds(3), CancelToken()));
  ASSERT_TRUE(woke.has_value());
  EXPECT_TRUE(woke->ok()) << woke->ToString();
  EXPECT_EQ((*waiter)->stats().watch_compactions, 1u);
  EXPECT_EQ(etcd.Count("/v3/kv/range"), ranges_before + 2);
  env->DestroySpawned();
}

TEST(EtcdBadInputTest, ALeaseLostWhileAKeepAliveIsInFlightFencesTheHolder) {
  FakeEtcd etcd;
  auto env = OpenEnv(1);
  auto service = EtcdLeaseService::Open(*env, NodeId(1), Options({etcd.url()}, "/l/"));
  ASSERT_TRUE(service.ok());
  lease::ElectorOptions eo;
  eo.ttl = Duration::Seconds(1);
  auto elector = LeaderElector::Create(*env, **service, eo);
  ASSERT_TRUE(elector.ok());
  std::vector<LeaderState> states;
  (*elector)->SetListener([&](LeaderState s, const LeaseGrant*) { states.push_back(s); });
  CancelSource stop;
  env->Spawn((*elector)->Campaign(stop.token()));
  for (int i = 0; i < 2000 && (*elector)->state() != LeaderState::kLeader; ++i) {
    env->RunFor(Duration::Millis(1));
  }
  ASSERT_EQ((*elector)->state(), LeaderState::kLeader);
  const size_t txns = etcd.Count("/v3/kv/txn");
  // The lease expires in etcd while the next keep-alive is on its way: the answer has no TTL.
  etcd.set_keepalive(FakeEtcd::KeepAliveMode::kNoTtl);
  for (int i = 0; i < 2000 && (*elector)->state() == LeaderState::kLeader; ++i) {
    env->RunFor(Duration::Millis(1));
  }
  EXPECT_EQ((*elector)->state(), LeaderState::kLost);
  EXPECT_FALSE((*elector)->CanAct());
  EXPECT_EQ(states, (std::vector<LeaderState>{LeaderState::kLeader, LeaderState::kLost}));
  // Nothing was written under the lost lease; the service revoked it (best effort).
  EXPECT_EQ(etcd.Count("/v3/kv/txn"), txns);
  EXPECT_GE(etcd.Count("/v3/lease/revoke"), 1u);
  stop.Cancel();
  env->RunFor(Duration::Millis(50));
  env->DestroySpawned();
}

TEST(EtcdBadInputTest, AKeepAliveThatHangsPastValidityNeverExtendsIt) {
  FakeEtcd etcd;
  auto env = OpenEnv(1);
  auto service = EtcdLeaseService::Open(*env, NodeId(1), Options({etcd.url()}, "/k/"));
  ASSERT_TRUE(service.ok());
  auto grant = RunOn(*env, (*service)->Acquire("x", Duration::Millis(400)));
  ASSERT_TRUE(grant.has_value() && grant->ok());
  etcd.set_keepalive(FakeEtcd::KeepAliveMode::kHang);
  auto renewed = RunOn(*env, (*service)->KeepAlive(grant->value()));
  ASSERT_TRUE(renewed.has_value());
  EXPECT_EQ(renewed->status().code(), StatusCode::kUnavailable) << renewed->status().ToString();
  // Past validity now: the next keep-alive fails locally, without asking etcd.
  env->RunFor(grant->value().valid_until - env->clock().Now() + Duration::Millis(1));
  const size_t keepalives = etcd.Count("/v3/lease/keepalive");
  auto late = RunOn(*env, (*service)->KeepAlive(grant->value()));
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->status().code(), StatusCode::kFailedPrecondition) << late->status().ToString();
  EXPECT_EQ(etcd.Count("/v3/lease/keepalive"), keepalives);
  env->DestroySpawned();
}

TEST(EtcdLeaseOptionsTest, ValidateNamesTheBound) {
  auto check = [](const std::function<void(EtcdLeaseOptions&)>& mutate, const char* text) {
    EtcdLeaseOptions o;
    o.endpoints = {"http://127.0.0.1:2379"};
    mutate(o);
    const Status s = o.Validate();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(s.message().find(text), std::string::npos) << s.ToString();
  };
  check([](EtcdLeaseOptions& o) { o.endpoints.clear(); }, "endpoints");
  check([](EtcdLeaseOptions& o) { o.endpoints = {"https://x:1"}; }, "http://");
  check([](EtcdLeaseOptions& o) { o.endpoints = {"http://x:1/v3"}; }, "path");
  check([](EtcdLeaseOptions& o) { o.endpoints.assign(17, "http://x:1"); }, "16");
  check([](EtcdLeaseOptions& o) { o.request_timeout = Duration::Zero(); }, "request_timeout");
  check([](EtcdLeaseOptions& o) { o.request_timeout = Duration::Seconds(61); }, "request_timeout");
  check([](EtcdLeaseOptions& o) { o.connect_timeout = Duration::Seconds(2); }, "connect_timeout");
  check([](EtcdLeaseOptions& o) { o.drift_ppm_max = -1; }, "drift_ppm_max");
  check([](EtcdLeaseOptions& o) { o.margin = Duration::Seconds(11); }, "margin");
  check([](EtcdLeaseOptions& o) { o.key_prefix.assign(300, 'k'); }, "key_prefix");
  EtcdLeaseOptions good;
  good.endpoints = {"http://127.0.0.1:2379"};
  EXPECT_TRUE(good.Validate().ok());
  // Outside a RealEnv the caller must say how to reach the loop.
  sim::World world(1, sim::WorldOptions::Nodes(1));
  Env* sim_env = nullptr;
  world.Boot(NodeId(0), [&](Env& env) {
    sim_env = &env;
    return std::make_unique<sim::Node>();
  });
  ASSERT_NE(sim_env, nullptr);
  auto opened = EtcdLeaseService::Open(*sim_env, NodeId(0), good);
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(opened.status().message().find("post_to_loop"), std::string::npos);
}

TEST(EtcdLeaseServiceTest, NamesAndTtlsAreCheckedBeforeAnyRequest) {
  FakeEtcd etcd;
  auto env = OpenEnv(1);
  auto service = EtcdLeaseService::Open(*env, NodeId(1), Options({etcd.url()}, "/n/"));
  ASSERT_TRUE(service.ok());
  auto empty = RunOn(*env, (*service)->Acquire("", Duration::Seconds(1)));
  EXPECT_EQ(empty->status().code(), StatusCode::kInvalidArgument);
  auto huge = RunOn(*env, (*service)->Read(std::string(600, 'n')));
  EXPECT_EQ(huge->status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(etcd.Count("/v3/lease/grant") + etcd.Count("/v3/kv/range"), 0u);
  // A sub-second ttl asks etcd for one whole second; validity still counts the requested ttl.
  auto grant = RunOn(*env, (*service)->Acquire("short", Duration::Millis(300)));
  ASSERT_TRUE(grant.has_value() && grant->ok()) << grant->status().ToString();
  EXPECT_LE(grant->value().valid_until, grant->value().sent_at + Duration::Millis(300));
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

TEST(EtcdHttpTest, Base64RoundTripsAndRejectsGarbage) {
  using etcd_internal::Base64Decode;
  using etcd_internal::Base64Encode;
  for (const std::string s : {"", "a", "ab", "abc", "abcd", "/faultline/lease/leader"}) {
    std::string back;
    ASSERT_TRUE(Base64Decode(Base64Encode(s), &back)) << s;
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(Base64Encode("leader"), "bGVhZGVy");
  std::string out;
  EXPECT_FALSE(Base64Decode("abc", &out));
  EXPECT_FALSE(Base64Decode("ab=c", &out));
  EXPECT_FALSE(Base64Decode("a!cd", &out));
}

}  // namespace
}  // namespace faultline::adapters
