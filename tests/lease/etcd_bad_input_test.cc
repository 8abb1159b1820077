// EtcdLeaseService against a scripted fake etcd: garbage JSON, hangs, refused and failing
// endpoints, a compacted watch revision, a lease lost while a keep-alive is in flight, options and
// names checked before any request.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "faultline/adapters/etcd_lease.h"
#include "faultline/lease/leader_elector.h"
#include "faultline/runtime/real_env.h"
#include "faultline/sim/world.h"
#include "src/adapters/etcd_http.h"
#include "tests/lease/etcd_test_util.h"
#include "tests/lease/fake_http_server.h"

namespace faultline::adapters {
namespace {

using etcd_test::OpenEnv;
using etcd_test::Options;
using etcd_test::RunOn;
using Json = nlohmann::json;
using lease::LeaderElector;
using lease::LeaderState;
using lease::LeaseGrant;
using runtime::RealEnv;

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

TEST(EtcdBadInputTest, ACancelledWaitEndsTheWatchAtOnce) {
  FakeEtcd etcd;
  auto env = OpenEnv(1);
  auto holder = EtcdLeaseService::Open(*env, NodeId(1), Options({etcd.url()}, "/w/"));
  auto waiter = EtcdLeaseService::Open(*env, NodeId(2), Options({etcd.url()}, "/w/"));
  ASSERT_TRUE(holder.ok() && waiter.ok());
  auto grant = RunOn(*env, (*holder)->Acquire("x", Duration::Seconds(1)));
  ASSERT_TRUE(grant.has_value() && grant->ok());
  CancelSource cancel;
  env->executor().ScheduleAfter(Duration::Millis(50), [&cancel] { cancel.Cancel(); });
  const MonoTime start = env->clock().Now();
  auto waited = RunOn(*env, (*waiter)->WaitReleased("x", Duration::Seconds(5), cancel.token()));
  ASSERT_TRUE(waited.has_value());
  EXPECT_EQ(waited->code(), StatusCode::kCancelled) << waited->ToString();
  EXPECT_LT(env->clock().Now() - start, Duration::Millis(1000));
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
