// Rpc's deadline events (observe()): a call that times out, a deadline handed to an async
// handler, and expired work the server refuses or stops answering, each with the fields the
// header promises, on the simulated network.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/core/observer.h"
#include "faultline/env/rpc.h"
#include "faultline/sim/partition.h"
#include "faultline/sim/world.h"
#include "src/core/observer_test_util.h"

namespace faultline {
namespace {

constexpr NodeId kClient(0);
constexpr NodeId kServer(1);
constexpr uint16_t kSync = 3;
constexpr uint16_t kAsync = 4;

using testing::Seen;
using Events = testing::Recorder;

// Serves kSync (replies at once) and kAsync (replies after `work` of server time); reports to
// `events` as `name`.
class ObservedNode final : public sim::Node {
 public:
  ObservedNode(Env& env, Events* events, std::string_view name, Duration work)
      : env_(env), rpc_(env) {
    rpc_.observe().Attach(events, name);
    rpc_.Handle(kSync, [](NodeId, std::span<const uint8_t>) -> Result<Bytes> { return Bytes{}; });
    rpc_.HandleAsync(kAsync, [this, work](NodeId, Bytes req, MonoTime) {
      return Work(req, work);
    });
  }
  Rpc& rpc() { return rpc_; }
  Env& env() { return env_; }

 private:
  Task<Result<Bytes>> Work(Bytes req, Duration work) {
    const Status s = co_await Sleep(env_.executor(), work);
    if (!s.ok()) co_return s;
    co_return req;
  }
  Env& env_;
  Rpc rpc_;
};

struct Pair {
  explicit Pair(Duration work) : world(1, Options()) {
    world.Boot(kClient, [this](Env& env) {
      return std::make_unique<ObservedNode>(env, &client, "client", Duration::Zero());
    });
    world.Boot(kServer, [this, work](Env& env) {
      return std::make_unique<ObservedNode>(env, &server, "server", work);
    });
  }
  static sim::WorldOptions Options() {
    sim::WorldOptions o;
    o.node_count = 2;
    return o;
  }
  void Call(uint16_t method, Duration timeout, std::optional<Result<Bytes>>* out) {
    ObservedNode* node = world.node_as<ObservedNode>(kClient);
    node->env().Spawn(DoCall(&node->rpc(), method, timeout, out));
  }
  // One call, run to its end (1 s of simulated time): its outcome's code.
  StatusCode CallCode(uint16_t method, Duration timeout) {
    std::optional<Result<Bytes>> out;
    Call(method, timeout, &out);
    world.RunFor(Duration::Seconds(1));
    EXPECT_TRUE(out.has_value());
    return out.has_value() ? out->status().code() : StatusCode::kUnknown;
  }
  static Task<void> DoCall(Rpc* rpc, uint16_t method, Duration timeout,
                           std::optional<Result<Bytes>>* out) {
    const Bytes body(1, 'x');
    Result<Bytes> r = co_await rpc->Call(kServer, method, body, timeout);
    out->emplace(std::move(r));
  }
  Events client, server;
  sim::World world;
};

TEST(RpcObserve, TimedOutCallReportsDeadlineExceededWithItsTimeout) {
  Pair p(Duration::Zero());
  sim::Grudge grudge(2);
  grudge.BlockBoth(0, 1);
  p.world.network().Partition(grudge);
  ASSERT_EQ(p.CallCode(kSync, Duration::Millis(250)), StatusCode::kDeadlineExceeded);
  ASSERT_EQ(p.client.events.size(), 1u);
  const Seen& e = p.client.events[0];
  EXPECT_EQ(e.kind, EventKind::kDeadlineExceeded);
  EXPECT_EQ(e.source, "client");
  EXPECT_EQ(e.a, 1);
  EXPECT_EQ(e.d, Duration::Millis(250));
  EXPECT_EQ(e.at, MonoTime());  // the timer path reads no clock
  EXPECT_TRUE(p.server.events.empty());
}

TEST(RpcObserve, AnsweredCallsReportNothingOnTheClient) {
  Pair p(Duration::Millis(10));
  std::optional<Result<Bytes>> sync_reply;
  std::optional<Result<Bytes>> async_reply;
  p.Call(kSync, Duration::Millis(100), &sync_reply);
  p.Call(kAsync, Duration::Millis(100), &async_reply);
  p.world.RunFor(Duration::Seconds(1));
  ASSERT_TRUE(sync_reply.has_value() && sync_reply->ok());
  ASSERT_TRUE(async_reply.has_value() && async_reply->ok());
  EXPECT_TRUE(p.client.events.empty());
  // The sync handler gets no deadline: only the async request reports one.
  ASSERT_EQ(p.server.events.size(), 1u);
  EXPECT_EQ(p.server.events[0].kind, EventKind::kDeadlinePropagated);
}

TEST(RpcObserve, AsyncHandlerReportsTheDeadlineItWasHanded) {
  Pair p(Duration::Millis(5));
  ASSERT_EQ(p.CallCode(kAsync, Duration::Millis(730)), StatusCode::kOk);
  ASSERT_EQ(p.server.events.size(), 1u);
  const Seen& e = p.server.events[0];
  EXPECT_EQ(e.kind, EventKind::kDeadlinePropagated);
  EXPECT_EQ(e.source, "server");
  EXPECT_EQ(e.a, kAsync);
  EXPECT_EQ(e.d, Duration::Millis(730));  // the simulated network adds no clock skew
  EXPECT_NE(e.at, MonoTime());            // timed at the arrival reading
}

TEST(RpcObserve, HandlerThatOverranTheDeadlineReportsTheDroppedReply) {
  Pair p(Duration::Millis(300));
  EXPECT_EQ(p.CallCode(kAsync, Duration::Millis(100)), StatusCode::kDeadlineExceeded);
  ASSERT_EQ(p.server.events.size(), 2u);
  EXPECT_EQ(p.server.events[0].kind, EventKind::kDeadlinePropagated);
  const Seen& e = p.server.events[1];
  EXPECT_EQ(e.kind, EventKind::kDeadlineRefused);
  EXPECT_EQ(e.a, kAsync);
  EXPECT_EQ(e.b, 1);
  EXPECT_EQ(e.d, Duration::Millis(200));  // 300 ms of work against a 100 ms budget
  EXPECT_EQ(e.at - p.server.events[0].at, Duration::Millis(300));
  ASSERT_EQ(p.client.events.size(), 1u);
  EXPECT_EQ(p.client.events[0].kind, EventKind::kDeadlineExceeded);
}

TEST(RpcObserve, RequestArrivingWithNoTimeLeftIsReportedRefused) {
  Pair p(Duration::Zero());
  // The wire layout (rpc.cc): varint call_id, u16 method, varint remaining_ns, bytes body.
  for (const uint16_t method : {kSync, kAsync}) {
    Bytes payload;
    ByteWriter w(&payload);
    w.Varint(77);
    w.U16(method);
    w.Varint(0);
    w.Bytes("late");
    Env& env = p.world.node_as<ObservedNode>(kClient)->env();
    ASSERT_TRUE(env.transport().Send(kServer, kRpcRequestType, kRpcSchemaVersion, payload).ok());
  }
  p.world.RunFor(Duration::Millis(100));
  ASSERT_EQ(p.server.events.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(p.server.events[i].kind, EventKind::kDeadlineRefused);
    EXPECT_EQ(p.server.events[i].a, i == 0 ? kSync : kAsync);
    EXPECT_EQ(p.server.events[i].b, 0);
  }
}

}  // namespace
}  // namespace faultline
