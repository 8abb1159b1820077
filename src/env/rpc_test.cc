// Unit tests for faultline/env/rpc.h: request/response over the simulated, unreliable network.
// Every outcome the header promises (reply, remote error, deadline, cancellation) is produced on
// purpose with network faults or crashes, and malformed traffic is thrown at the server.
#include "faultline/env/rpc.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/sim/partition.h"
#include "faultline/sim/world.h"

namespace faultline {
namespace {

using sim::World;

constexpr NodeId kN0(0);
constexpr NodeId kN1(1);
constexpr NodeId kN2(2);
constexpr uint16_t kEcho = 7;
constexpr uint16_t kFail = 8;
constexpr uint16_t kSlow = 9;

Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }
std::string S(const Bytes& b) { return std::string(b.begin(), b.end()); }

sim::WorldOptions WithNodes(uint32_t nodes) {
  sim::WorldOptions options;
  options.node_count = nodes;
  return options;
}

RpcOptions Limits(uint32_t pending_calls_max, uint32_t body_bytes_max) {
  RpcOptions options;
  options.pending_calls_max = pending_calls_max;
  options.body_bytes_max = body_bytes_max;
  return options;
}

using Setup = std::function<void(Rpc&, Env&)>;

// A node whose only job is to own an Rpc (built over the node's Env, as node code would).
class RpcNode final : public sim::Node {
 public:
  RpcNode(Env& env, const Setup& setup, RpcOptions options) : env_(env), rpc_(env, options) {
    if (setup) setup(rpc_, env_);
  }
  Rpc& rpc() { return rpc_; }

 private:
  Env& env_;
  Rpc rpc_;
};

// A node without Rpc that records raw frames: used to speak the wire format by hand.
class RawNode final : public sim::Node {
 public:
  struct Received {
    NodeId from;
    uint16_t type;
    Bytes payload;
  };
  explicit RawNode(Env& env) {
    env.transport().SetHandler([this](NodeId from, const FrameView& f) {
      received.push_back({from, f.type, Bytes(f.payload.begin(), f.payload.end())});
    });
  }
  std::vector<Received> received;
};

void BootRpc(World& world, NodeId id, Setup setup = nullptr, RpcOptions options = {}) {
  world.Boot(id, [setup = std::move(setup), options](Env& env) {
    return std::make_unique<RpcNode>(env, setup, options);
  });
}

void BootRaw(World& world, NodeId id) {
  world.Boot(id, [](Env& env) { return std::make_unique<RawNode>(env); });
}

Rpc& RpcOf(World& world, NodeId id) { return world.node_as<RpcNode>(id)->rpc(); }

// Records one call's outcome and when (in the caller's monotonic time) it finished.
struct CallProbe {
  std::optional<Result<Bytes>> result;
  int completions = 0;
  Duration took;
  bool destroyed = false;
};

struct ProbeGuard {
  CallProbe* probe;
  ~ProbeGuard() { probe->destroyed = true; }
};

Task<void> DoCall(Env* env, Rpc* rpc, NodeId to, uint16_t method, Bytes request, Duration timeout,
                  CancelToken token, CallProbe* probe) {
  ProbeGuard guard{probe};
  const MonoTime start = env->clock().Now();
  Result<Bytes> r = co_await rpc->Call(to, method, request, timeout, std::move(token));
  probe->took = env->clock().Now() - start;
  probe->result.emplace(std::move(r));
  ++probe->completions;
}

void StartCall(World& world, NodeId from, NodeId to, uint16_t method, std::string_view request,
               Duration timeout, CallProbe* probe, CancelToken token = {}) {
  Env& env = world.env(from);
  world.env(from).Spawn(
      DoCall(&env, &RpcOf(world, from), to, method, B(request), timeout, std::move(token), probe));
}

void EchoSetup(Rpc& rpc, Env&) {
  rpc.Handle(kEcho, [](NodeId from, std::span<const uint8_t> req) -> Result<Bytes> {
    Bytes out = B("from" + std::to_string(from.value()) + ":");
    out.insert(out.end(), req.begin(), req.end());
    return out;
  });
}

// An async handler body: replies with the request after `delay` of server time.
Task<Result<Bytes>> SlowEcho(Env* env, Bytes request, Duration delay) {
  Status s = co_await Sleep(env->executor(), delay);
  if (!s.ok()) co_return s;
  co_return request;
}

// Sync handler for kEcho that counts its invocations and replies with nothing.
Setup CountingSetup(int* handled) {
  return [handled](Rpc& rpc, Env&) {
    rpc.Handle(kEcho, [handled](NodeId, std::span<const uint8_t>) -> Result<Bytes> {
      ++*handled;
      return Bytes{};
    });
  };
}

// Async handler for kSlow that echoes after `delay`.
Setup SlowEchoSetup(Duration delay) {
  return [delay](Rpc& rpc, Env& env) {
    Env* e = &env;
    rpc.HandleAsync(kSlow, [e, delay](NodeId, Bytes req, MonoTime) {
      return SlowEcho(e, std::move(req), delay);
    });
  };
}

// Async handler for kSlow that records deadline - now at entry and replies "ok".
Task<Result<Bytes>> RecordDeadline(Env* env, MonoTime deadline, Duration* remaining_seen) {
  *remaining_seen = deadline - env->clock().Now();
  co_return B("ok");
}

Setup RecordDeadlineSetup(Duration* seen) {
  return [seen](Rpc& rpc, Env& env) {
    Env* e = &env;
    rpc.HandleAsync(kSlow, [e, seen](NodeId, Bytes, MonoTime deadline) {
      return RecordDeadline(e, deadline, seen);
    });
  };
}

// Builds a request payload by hand (the documented layout: varint call_id, u16 method, varint
// remaining_ns, bytes body).
Bytes RequestPayload(uint64_t call_id, uint16_t method, uint64_t remaining_ns,
                     std::string_view body) {
  Bytes p;
  ByteWriter w(&p);
  w.Varint(call_id);
  w.U16(method);
  w.Varint(remaining_ns);
  w.Bytes(body);
  return p;
}

TEST(RpcTest, RoundTripBetweenTwoNodes) {
  // The basic contract: the handler sees the caller's id and body, the caller gets the reply, and
  // no call stays pending afterwards.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  BootRpc(world, kN1, EchoSetup);
  CallProbe probe;
  StartCall(world, kN0, kN1, kEcho, "ping", Duration::Millis(100), &probe);
  EXPECT_EQ(RpcOf(world, kN0).pending_calls(), 1u);
  world.RunFor(Duration::Seconds(1));
  ASSERT_TRUE(probe.result.has_value());
  ASSERT_TRUE(probe.result->ok()) << probe.result->status().ToString();
  EXPECT_EQ(S(**probe.result), "from0:ping");
  EXPECT_EQ(probe.completions, 1);
  EXPECT_LT(probe.took, Duration::Millis(100));
  EXPECT_EQ(RpcOf(world, kN0).pending_calls(), 0u);
}

TEST(RpcTest, ManyConcurrentCallsEachGetTheirOwnReply) {
  // Replies are matched by call id; with latency jitter and reordering replies arrive out of
  // order, and each caller must still get the reply to its own request.
  sim::WorldOptions options = WithNodes(2);
  options.links.reorder = Ratio::Percent(50);
  World world(3, options);
  BootRpc(world, kN0);
  BootRpc(world, kN1, EchoSetup);
  std::vector<CallProbe> probes(50);
  for (size_t i = 0; i < probes.size(); ++i) {
    StartCall(world, kN0, kN1, kEcho, "req" + std::to_string(i), Duration::Seconds(1), &probes[i]);
  }
  world.RunFor(Duration::Seconds(2));
  for (size_t i = 0; i < probes.size(); ++i) {
    ASSERT_TRUE(probes[i].result.has_value()) << i;
    ASSERT_TRUE(probes[i].result->ok()) << i;
    EXPECT_EQ(S(**probes[i].result), "from0:req" + std::to_string(i));
    EXPECT_EQ(probes[i].completions, 1);
  }
}

TEST(RpcTest, HandlerErrorPropagatesWithCodeAndMessage) {
  // A remote error must arrive as the same canonical code and message (callers branch on the code:
  // retry on kUnavailable, give up on kFailedPrecondition...). Every non-ok code is checked.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  uint8_t next_code = 1;
  BootRpc(world, kN1, [&next_code](Rpc& rpc, Env&) {
    rpc.Handle(kFail, [&next_code](NodeId, std::span<const uint8_t>) -> Result<Bytes> {
      return Status(static_cast<StatusCode>(next_code), "remote says " + std::to_string(next_code));
    });
  });
  for (; next_code <= static_cast<uint8_t>(StatusCode::kFencedOut); ++next_code) {
    CallProbe probe;
    StartCall(world, kN0, kN1, kFail, "", Duration::Millis(100), &probe);
    world.RunFor(Duration::Millis(200));
    ASSERT_TRUE(probe.result.has_value());
    EXPECT_EQ(probe.result->status().code(), static_cast<StatusCode>(next_code));
    EXPECT_EQ(probe.result->status().message(), "remote says " + std::to_string(next_code));
  }
}

TEST(RpcTest, UnknownMethodIsUnimplemented) {
  // A method with no handler is answered (not ignored), so the caller fails fast.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  BootRpc(world, kN1, EchoSetup);
  CallProbe probe;
  StartCall(world, kN0, kN1, 999, "", Duration::Seconds(10), &probe);
  world.RunFor(Duration::Millis(100));
  ASSERT_TRUE(probe.result.has_value());
  EXPECT_EQ(probe.result->status().code(), StatusCode::kUnimplemented);
}

TEST(RpcTest, PartitionedLinkTimesOutWithDeadlineExceeded) {
  // No reply within the timeout -> kDeadlineExceeded, not before the timeout has elapsed on the
  // caller's clock, and the pending call is gone.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  int handled = 0;
  BootRpc(world, kN1, CountingSetup(&handled));
  sim::Grudge grudge(2);
  grudge.BlockBoth(0, 1);
  world.network().Partition(grudge);
  CallProbe probe;
  StartCall(world, kN0, kN1, kEcho, "x", Duration::Millis(250), &probe);
  world.RunFor(Duration::Seconds(1));
  ASSERT_TRUE(probe.result.has_value());
  EXPECT_EQ(probe.result->status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_GE(probe.took, Duration::Millis(250));
  EXPECT_LT(probe.took, Duration::Millis(260));
  EXPECT_EQ(handled, 0);
  EXPECT_EQ(RpcOf(world, kN0).pending_calls(), 0u);
}

TEST(RpcTest, LostRequestOrLostReplyBothTimeOut) {
  // Loss on either direction looks the same to the caller: kDeadlineExceeded. With the reply lost
  // the handler did run (the "maybe happened" outcome callers must handle).
  for (bool lose_reply : {false, true}) {
    World world(2, WithNodes(2));
    BootRpc(world, kN0);
    int handled = 0;
    BootRpc(world, kN1, CountingSetup(&handled));
    sim::LinkOptions lossy;
    lossy.loss = {1, 1};
    if (lose_reply) {
      world.network().SetLink(1, 0, lossy);
    } else {
      world.network().SetLink(0, 1, lossy);
    }
    CallProbe probe;
    StartCall(world, kN0, kN1, kEcho, "x", Duration::Millis(100), &probe);
    world.RunFor(Duration::Seconds(1));
    ASSERT_TRUE(probe.result.has_value());
    EXPECT_EQ(probe.result->status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_EQ(handled, lose_reply ? 1 : 0);
  }
}

TEST(RpcTest, DuplicatedRepliesCompleteTheCallOnce) {
  // With every message duplicated the server may run twice and the caller receives up to four
  // replies; the call must still finish exactly once and late copies must be ignored.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  BootRpc(world, kN1, EchoSetup);
  sim::LinkOptions dup;
  dup.duplicate = {1, 1};
  world.network().SetAllLinks(dup);
  CallProbe probe;
  StartCall(world, kN0, kN1, kEcho, "once", Duration::Seconds(1), &probe);
  world.RunFor(Duration::Seconds(2));
  EXPECT_EQ(probe.completions, 1);
  ASSERT_TRUE(probe.result.has_value());
  ASSERT_TRUE(probe.result->ok());
  EXPECT_EQ(S(**probe.result), "from0:once");
  EXPECT_GE(world.network().stats().duplicated, 2u);
  EXPECT_EQ(RpcOf(world, kN0).pending_calls(), 0u);
}

TEST(RpcTest, CancellationFinishesWithCancelledAndIgnoresTheLateReply) {
  // Cancelling a pending call resumes it promptly with kCancelled; the reply arriving afterwards
  // (the link is held, then released) must not complete it a second time.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  BootRpc(world, kN1, EchoSetup);
  world.network().Hold(1, 0);
  CancelSource source;
  CallProbe probe;
  StartCall(world, kN0, kN1, kEcho, "x", Duration::Seconds(10), &probe, source.token());
  world.Schedule(Duration::Millis(50), [&source] { source.Cancel(); });
  world.RunFor(Duration::Millis(100));
  ASSERT_TRUE(probe.result.has_value());
  EXPECT_EQ(probe.result->status().code(), StatusCode::kCancelled);
  EXPECT_LT(probe.took, Duration::Millis(60));
  EXPECT_EQ(RpcOf(world, kN0).pending_calls(), 0u);
  world.network().Release(1, 0);
  world.RunFor(Duration::Seconds(20));
  EXPECT_EQ(probe.completions, 1);
  EXPECT_EQ(world.network().stats().delivered, 2u);  // the request and the ignored reply
}

TEST(RpcTest, CallWithCancelledTokenOrBadTimeoutFailsWithoutSending) {
  // Calls that cannot succeed fail fast in await_ready: nothing is sent.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  BootRpc(world, kN1, EchoSetup);
  CancelSource source;
  source.Cancel();
  CallProbe cancelled, zero, negative;
  StartCall(world, kN0, kN1, kEcho, "", Duration::Seconds(1), &cancelled, source.token());
  StartCall(world, kN0, kN1, kEcho, "", Duration::Zero(), &zero);
  StartCall(world, kN0, kN1, kEcho, "", Duration::Millis(-5), &negative);
  ASSERT_TRUE(cancelled.result && zero.result && negative.result);
  EXPECT_EQ(cancelled.result->status().code(), StatusCode::kCancelled);
  EXPECT_EQ(zero.result->status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(negative.result->status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(world.network().stats().sent, 0u);
}

TEST(RpcTest, PendingCallLimitFailsFastWithResourceExhausted) {
  // Beyond pending_calls_max a call is shed immediately instead of queueing without bound.
  World world(1, WithNodes(2));
  BootRpc(world, kN0, nullptr, Limits(2, RpcOptions{}.body_bytes_max));
  BootRpc(world, kN1, EchoSetup);
  CallProbe a, b, c;
  StartCall(world, kN0, kN1, kEcho, "a", Duration::Seconds(1), &a);
  StartCall(world, kN0, kN1, kEcho, "b", Duration::Seconds(1), &b);
  StartCall(world, kN0, kN1, kEcho, "c", Duration::Seconds(1), &c);
  ASSERT_TRUE(c.result.has_value());
  EXPECT_EQ(c.result->status().code(), StatusCode::kResourceExhausted);
  world.RunFor(Duration::Seconds(1));
  EXPECT_TRUE(a.result->ok());
  EXPECT_TRUE(b.result->ok());
}

TEST(RpcTest, SendErrorIsReturnedOnALaterTurn) {
  // A local send failure (unknown destination) is the call's result, delivered asynchronously
  // like every other outcome.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  CallProbe probe;
  StartCall(world, kN0, NodeId(99), kEcho, "", Duration::Seconds(1), &probe);
  EXPECT_FALSE(probe.result.has_value());
  world.RunFor(Duration::Millis(1));
  ASSERT_TRUE(probe.result.has_value());
  EXPECT_EQ(probe.result->status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RpcOf(world, kN0).pending_calls(), 0u);
}

TEST(RpcTest, CallerCrashDestroysPendingCallCleanly) {
  // A crash of the caller destroys the coroutine suspended in Call (its destructor unregisters the
  // call and its timer; ASan checks nothing dangles) and the late reply is dropped.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  BootRpc(world, kN1, SlowEchoSetup(Duration::Millis(300)));
  CallProbe probe;
  StartCall(world, kN0, kN1, kSlow, "x", Duration::Seconds(1), &probe);
  world.RunFor(Duration::Millis(100));
  world.Crash(kN0);
  EXPECT_TRUE(probe.destroyed);
  EXPECT_FALSE(probe.result.has_value());
  world.RunFor(Duration::Seconds(2));
  EXPECT_EQ(probe.completions, 0);
  EXPECT_EQ(world.network().stats().dropped_down, 1u);  // the reply to the dead caller
}

TEST(RpcTest, StaleReplyToAPreviousIncarnationDoesNotCompleteANewCall) {
  // Regression: call ids restarted at 1 in every Rpc, so after a crash and restart a reply still in
  // flight to the old incarnation's call 1 completed the new incarnation's call 1 with the wrong
  // body. Here the old reply is held in the network across the restart; the new call goes to a
  // node that never answers in time and must end in kDeadlineExceeded, not with "stale".
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    World world(seed, WithNodes(3));
    BootRpc(world, kN0);
    BootRpc(world, kN1, [](Rpc& rpc, Env&) {
      rpc.Handle(kEcho,
                 [](NodeId, std::span<const uint8_t>) -> Result<Bytes> { return B("stale"); });
    });
    BootRpc(world, kN2);         // no handler: it answers kUnimplemented,
    world.network().Hold(2, 0);  // but that answer is held until after the new call's deadline
    world.network().Hold(1, 0);
    CallProbe old_call;
    StartCall(world, kN0, kN1, kEcho, "", Duration::Seconds(1), &old_call);
    world.RunFor(Duration::Millis(50));
    world.Crash(kN0);
    world.Restart(kN0);
    CallProbe new_call;
    StartCall(world, kN0, kN2, kEcho, "", Duration::Millis(500), &new_call);
    world.RunFor(Duration::Millis(50));
    world.network().Release(1, 0);  // the old incarnation's reply arrives now
    world.RunFor(Duration::Seconds(1));
    ASSERT_TRUE(new_call.result.has_value()) << seed;
    EXPECT_EQ(new_call.result->status().code(), StatusCode::kDeadlineExceeded)
        << "seed " << seed << ": "
        << (new_call.result->ok() ? S(**new_call.result) : new_call.result->status().ToString());
    world.network().Release(2, 0);
    world.RunFor(Duration::Seconds(1));
  }
}

TEST(RpcTest, AsyncHandlerSeesDeadlineFromCallersRemainingTime) {
  // The request carries the caller's remaining time; the server turns it into a deadline on its own
  // monotonic clock, so at handler entry deadline - now equals the caller's timeout.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  Duration seen = Duration::Zero();
  BootRpc(world, kN1, RecordDeadlineSetup(&seen));
  CallProbe probe;
  StartCall(world, kN0, kN1, kSlow, "", Duration::Millis(730), &probe);
  world.RunFor(Duration::Seconds(1));
  ASSERT_TRUE(probe.result.has_value());
  ASSERT_TRUE(probe.result->ok());
  EXPECT_EQ(S(**probe.result), "ok");
  EXPECT_EQ(seen, Duration::Millis(730));
}

Task<Result<Bytes>> Forward(Env* env, Rpc* rpc, MonoTime deadline) {
  Status s = co_await Sleep(env->executor(), Duration::Millis(30));
  if (!s.ok()) co_return s;
  // Propagate what is left of the caller's budget to the inner call.
  co_return co_await rpc->Call(kN2, kSlow, Bytes{}, deadline - env->clock().Now());
}

TEST(RpcTest, DeadlinePropagatesThroughANestedCall) {
  // A handler that spends 30 ms and then calls onward passes on only the remaining budget, so the
  // innermost server sees timeout - 30 ms (plus at most a rounding nanosecond), never more.
  World world(1, WithNodes(3));
  BootRpc(world, kN0);
  BootRpc(world, kN1, [](Rpc& rpc, Env& env) {
    Env* e = &env;
    Rpc* r = &rpc;
    rpc.HandleAsync(kSlow,
                    [e, r](NodeId, Bytes, MonoTime deadline) { return Forward(e, r, deadline); });
  });
  Duration seen = Duration::Zero();
  BootRpc(world, kN2, RecordDeadlineSetup(&seen));
  CallProbe probe;
  StartCall(world, kN0, kN1, kSlow, "", Duration::Millis(500), &probe);
  world.RunFor(Duration::Seconds(1));
  ASSERT_TRUE(probe.result.has_value());
  ASSERT_TRUE(probe.result->ok()) << probe.result->status().ToString();
  EXPECT_LE(seen, Duration::Millis(470));
  EXPECT_GE(seen, Duration::Millis(470) - Duration::Micros(10));
}

TEST(RpcTest, AsyncHandlerFinishingAfterTheDeadlineSendsNoReply) {
  // Work that overran the caller's deadline is useless to it: the server skips the reply and the
  // caller times out.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  BootRpc(world, kN1, SlowEchoSetup(Duration::Millis(300)));
  CallProbe probe;
  StartCall(world, kN0, kN1, kSlow, "x", Duration::Millis(100), &probe);
  world.RunFor(Duration::Seconds(1));
  ASSERT_TRUE(probe.result.has_value());
  EXPECT_EQ(probe.result->status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(world.network().stats().sent, 1u);  // the request only
}

TEST(RpcTest, RequestWithNoRemainingTimeIsRefused) {
  // A request whose remaining time is 0 must not run the handler; the server answers
  // kDeadlineExceeded for that call id.
  World world(1, WithNodes(2));
  BootRaw(world, kN0);
  int handled = 0;
  BootRpc(world, kN1, CountingSetup(&handled));
  const Bytes payload = RequestPayload(41, kEcho, 0, "body");
  ASSERT_TRUE(
      world.env(kN0).transport().Send(kN1, kRpcRequestType, kRpcSchemaVersion, payload).ok());
  world.RunFor(Duration::Millis(100));
  EXPECT_EQ(handled, 0);
  auto& received = world.node_as<RawNode>(kN0)->received;
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].type, kRpcResponseType);
  ByteReader r(received[0].payload);
  uint64_t call_id = 0;
  uint8_t code = 0;
  ASSERT_TRUE(r.Varint(&call_id).ok());
  ASSERT_TRUE(r.U8(&code).ok());
  EXPECT_EQ(call_id, 41u);
  EXPECT_EQ(static_cast<StatusCode>(code), StatusCode::kDeadlineExceeded);

  // The same request with time left is served.
  ASSERT_TRUE(world.env(kN0)
                  .transport()
                  .Send(kN1, kRpcRequestType, kRpcSchemaVersion, RequestPayload(42, kEcho, 1, ""))
                  .ok());
  world.RunFor(Duration::Millis(100));
  EXPECT_EQ(handled, 1);
}

TEST(RpcTest, MalformedRequestsAreDroppedWithoutReply) {
  // Garbage of the request type (truncated fields, trailing bytes, over-limit body, wrong schema)
  // must be dropped silently: no crash, no handler run, nothing sent back.
  World world(1, WithNodes(2));
  BootRaw(world, kN0);
  int handled = 0;
  BootRpc(world, kN1, CountingSetup(&handled), Limits(RpcOptions{}.pending_calls_max, 16));
  std::vector<Bytes> garbage;
  garbage.push_back({});
  garbage.push_back({0x80});                               // truncated call id
  garbage.push_back({0x01, 0x07});                         // truncated method
  garbage.push_back({0x01, 0x07, 0x00});                   // missing remaining time
  garbage.push_back({0x01, 0x07, 0x00, 0x80});             // truncated remaining time
  garbage.push_back({0x01, 0x07, 0x00, 0x05});             // missing body
  garbage.push_back({0x01, 0x07, 0x00, 0x05, 0x09, 'a'});  // body shorter than its prefix
  Bytes trailing = RequestPayload(1, kEcho, 1000, "x");
  trailing.push_back(0);
  garbage.push_back(trailing);
  garbage.push_back(RequestPayload(1, kEcho, 1000, std::string(17, 'x')));  // body over limit
  Bytes overlong(11, 0x80);
  garbage.push_back(overlong);
  for (const Bytes& g : garbage) {
    ASSERT_TRUE(world.env(kN0).transport().Send(kN1, kRpcRequestType, kRpcSchemaVersion, g).ok());
  }
  // A well-formed request in a newer schema version is not understood either.
  ASSERT_TRUE(
      world.env(kN0)
          .transport()
          .Send(kN1, kRpcRequestType, kRpcSchemaVersion + 1, RequestPayload(2, kEcho, 1000, "x"))
          .ok());
  world.RunFor(Duration::Seconds(1));
  EXPECT_EQ(handled, 0);
  EXPECT_TRUE(world.node_as<RawNode>(kN0)->received.empty());
  EXPECT_EQ(world.network().stats().sent, garbage.size() + 1);
}

TEST(RpcTest, MalformedOrForeignRepliesDoNotCompleteACall) {
  // Responses that do not parse, carry an out-of-range code, or name an unknown call id must be
  // ignored: the pending call still ends by its own deadline.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  BootRaw(world, kN1);
  CallProbe probe;
  StartCall(world, kN0, kN1, kEcho, "", Duration::Millis(300), &probe);
  std::vector<Bytes> garbage;
  garbage.push_back({});
  garbage.push_back({0x80});
  for (uint64_t id = 0; id < 64; ++id) {
    Bytes bad_code;
    ByteWriter w(&bad_code);
    w.Varint(id);
    w.U8(200);  // not a StatusCode
    w.Bytes("x");
    garbage.push_back(bad_code);
    Bytes truncated;
    ByteWriter t(&truncated);
    t.Varint(id);
    t.U8(0);
    t.Varint(5);
    garbage.push_back(truncated);
  }
  world.RunFor(Duration::Millis(10));
  for (const Bytes& g : garbage) {
    ASSERT_TRUE(world.env(kN1).transport().Send(kN0, kRpcResponseType, kRpcSchemaVersion, g).ok());
  }
  world.RunFor(Duration::Seconds(1));
  ASSERT_TRUE(probe.result.has_value());
  EXPECT_EQ(probe.result->status().code(), StatusCode::kDeadlineExceeded);
}

TEST(RpcTest, NonRpcFramesGoToTheOneWayHandler) {
  // Rpc owns the transport handler, so other message types must be forwarded, not swallowed.
  World world(1, WithNodes(2));
  BootRpc(world, kN0);
  std::vector<uint16_t> seen;
  BootRpc(world, kN1, [&seen](Rpc& rpc, Env&) {
    rpc.SetOneWayHandler([&seen](NodeId, const FrameView& f) { seen.push_back(f.type); });
  });
  ASSERT_TRUE(world.env(kN0).transport().Send(kN1, 0x0042, 1, Bytes{1, 2}).ok());
  world.RunFor(Duration::Millis(100));
  EXPECT_EQ(seen, (std::vector<uint16_t>{0x0042}));
}

RC_GTEST_PROP(RpcFuzz, ArbitraryRpcPayloadsNeverCrashTheServerOrClient,
              (const std::vector<uint8_t>& payload, bool as_reply)) {
  // Whatever bytes arrive under the RPC frame types, neither side may crash or misbehave (ASan);
  // a client with a call in flight still completes it exactly once.
  World world(4, WithNodes(2));
  BootRpc(world, kN0);
  BootRpc(world, kN1, EchoSetup);
  CallProbe probe;
  StartCall(world, kN0, kN1, kEcho, "x", Duration::Millis(100), &probe);
  const NodeId from = as_reply ? kN1 : kN0;
  const NodeId to = as_reply ? kN0 : kN1;
  RC_ASSERT(world.env(from)
                .transport()
                .Send(to, as_reply ? kRpcResponseType : kRpcRequestType, kRpcSchemaVersion, payload)
                .ok());
  world.RunFor(Duration::Seconds(1));
  RC_ASSERT(probe.completions == 1);
}

}  // namespace
}  // namespace faultline
