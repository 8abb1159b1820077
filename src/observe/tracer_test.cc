// Tracer (spans, parent links, sampling, limits), the observer seam into span events, and Rpc
// carrying the trace context next to the deadline in the simulator: propagation with and without
// hooks, the schema-1 frame when no trace is active, malformed headers starting a new trace.
#include "faultline/observe/tracer.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>

#include "faultline/core/bytes.h"
#include "faultline/core/observer.h"
#include "faultline/env/frame.h"
#include "faultline/observe/span_observer.h"
#include "faultline/sim/world.h"

namespace faultline::observe {
namespace {

const AttributeValue* Attr(const SpanData& s, std::string_view key) {
  for (const Attribute& a : s.attributes) {
    if (a.key == key) return &a.value;
  }
  return nullptr;
}

TEST(TracerTest, RootAndChildSpansShareTheTraceAndLinkParents) {
  ManualClock clock;
  Rng rng(7);
  InMemorySpanSink sink;
  Tracer tracer(clock, rng, &sink, {.service_name = "svc"});
  {
    Tracer::Span root = tracer.StartSpan("root", TraceContext{});
    ASSERT_TRUE(root.recording());
    EXPECT_TRUE(root.context().valid());
    EXPECT_TRUE(root.context().sampled());
    clock.Advance(Duration::Millis(3));
    Tracer::Span child = tracer.StartSpan("child", root.context(), SpanKind::kClient);
    child.SetInt("n", 1).SetInt("n", 2).SetString("s", "x").SetBool("b", true).SetDouble("d", 1.5);
    child.AddEvent("ev", {IntAttr("k", 9)});
    clock.Advance(Duration::Millis(2));
    child.End(UnavailableError("down"));
    child.End();  // idempotent
  }
  const auto spans = sink.spans();
  ASSERT_EQ(spans.size(), 2u);
  const SpanData& child = spans[0];
  const SpanData& root = spans[1];
  EXPECT_EQ(child.trace_id, root.trace_id);
  EXPECT_EQ(child.parent_span_id, root.span_id);
  EXPECT_EQ(root.parent_span_id, SpanId{});
  EXPECT_NE(child.span_id, root.span_id);
  EXPECT_EQ(child.kind, SpanKind::kClient);
  EXPECT_EQ(child.end_unix_nano - child.start_unix_nano, 2'000'000);
  EXPECT_EQ(root.end_unix_nano - root.start_unix_nano, 5'000'000);
  EXPECT_EQ(std::get<int64_t>(*Attr(child, "n")), 2);  // set twice: replaced, not duplicated
  EXPECT_EQ(child.attributes.size(), 5u);             // n, s, b, d, faultline.status_code
  EXPECT_EQ(child.status_code, SpanStatusCode::kError);
  EXPECT_EQ(child.status_message, "UNAVAILABLE: down");
  ASSERT_EQ(child.events.size(), 1u);
  EXPECT_EQ(child.events[0].name, "ev");
  EXPECT_EQ(child.service_name, "svc");
  EXPECT_EQ(tracer.open_spans(), 0u);
}

TEST(TracerTest, UnsampledParentsPropagateWithoutRecording) {
  ManualClock clock;
  Rng rng(7);
  InMemorySpanSink sink;
  Tracer tracer(clock, rng, &sink);
  const TraceContext unsampled =
      ExtractTraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "a=b");
  ASSERT_TRUE(unsampled.valid());
  {
    Tracer::Span s = tracer.StartSpan("x", unsampled);
    EXPECT_FALSE(s.recording());
    EXPECT_EQ(s.context(), unsampled);  // handed on unchanged
    s.SetInt("ignored", 1);
  }
  EXPECT_TRUE(sink.spans().empty());
  Tracer off(clock, rng, &sink, {.sample_new_traces = false});
  EXPECT_FALSE(off.StartSpan("root", TraceContext{}).recording());
  // A sampled remote parent keeps its tracestate on the child.
  const TraceContext sampled =
      ExtractTraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=b");
  tracer.StartSpan("y", sampled).End();
  ASSERT_EQ(sink.spans().size(), 1u);
  EXPECT_EQ(sink.spans()[0].trace_state, "a=b");
  EXPECT_EQ(HexId(sink.spans()[0].trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
}

TEST(TracerTest, LimitsDropAndCount) {
  ManualClock clock;
  Rng rng(1);
  InMemorySpanSink sink;
  Tracer tracer(clock, rng, &sink,
                {.open_spans_max = 2, .attributes_per_span_max = 2, .events_per_span_max = 1});
  Tracer::Span a = tracer.StartSpan("a", {});
  Tracer::Span b = tracer.StartSpan("b", a.context());
  Tracer::Span c = tracer.StartSpan("c", b.context());
  EXPECT_FALSE(c.recording());
  EXPECT_EQ(c.context(), b.context());  // propagation survives the drop
  a.SetInt("1", 1).SetInt("2", 2).SetInt("3", 3);
  a.AddEvent("e1").AddEvent("e2");
  EXPECT_EQ(tracer.stats().spans_dropped, 1u);
  EXPECT_EQ(tracer.stats().attributes_dropped, 1u);
  EXPECT_EQ(tracer.stats().events_dropped, 1u);
}

TEST(TracerTest, ObserverEventsBecomeSpanEvents) {
  ManualClock clock;
  Rng rng(1);
  InMemorySpanSink sink;
  Tracer tracer(clock, rng, &sink);
  SpanEventObserver events(tracer);
  ObserverSlot slot;
  slot.Attach(&events, "payments");
  slot.Emit(EventKind::kRetryScheduled, clock.Now(), 2, 0, Duration::Millis(40));  // unbound
  {
    Tracer::Span s = tracer.StartSpan("call", {});
    events.Bind(s.id());
    slot.Emit(EventKind::kRetryScheduled, clock.Now(), 2, 0, Duration::Millis(40));
    slot.Emit(EventKind::kRetryBudgetDenied, clock.Now(), 3);
    events.Bind(0);
  }
  const auto spans = sink.spans();
  ASSERT_EQ(spans.size(), 1u);
  ASSERT_EQ(spans[0].events.size(), 2u);
  EXPECT_EQ(spans[0].events[0].name, "faultline.retry_scheduled");
  EXPECT_EQ(spans[0].events[0].attributes,
            (std::vector<Attribute>{StringAttr("faultline.source", "payments"),
                                    IntAttr("faultline.a", 2), IntAttr("faultline.d_ms", 40)}));
  EXPECT_EQ(spans[0].events[1].name, "faultline.retry_budget_denied");
}

// ---- Rpc in the simulator ------------------------------------------------------------------------

constexpr uint16_t kProbe = 11;
constexpr NodeId kN0(0);
constexpr NodeId kN1(1);

struct Seen {
  std::optional<RpcRequestContext> context;
  std::optional<Result<Bytes>> reply;
};

// Node 1: a traced handler that records what it was handed (and, through the frame tap, the
// schema of every request frame). Node 0: a plain caller.
class ProbeNode final : public Node {
 public:
  ProbeNode(Env& env, Seen* seen, SpanSink* sink, bool hooks)
      : env_(env), tracer_(env.clock(), env.random(), sink), rpc_(env) {
    if (hooks) rpc_.SetTraceHooks(&tracer_);
    rpc_.HandleTraced(kProbe, [seen](RpcRequestContext c, Bytes body) -> Task<Result<Bytes>> {
      seen->context = c;
      co_return body;
    });
  }
  Rpc& rpc() { return rpc_; }
  Tracer& tracer() { return tracer_; }

 private:
  Env& env_;
  Tracer tracer_;
  Rpc rpc_;
};

Task<void> CallProbe(Rpc* rpc, TraceContext parent, Seen* seen) {
  // A named body: GCC 12 rejects an initializer-list temporary inside a co_await expression.
  const Bytes body = {1, 2};
  Result<Bytes> r = co_await rpc->Call(kN1, kProbe, body, Duration::Millis(200), {}, parent);
  seen->reply.emplace(std::move(r));
}

struct ProbeWorld {
  explicit ProbeWorld(bool hooks) : world(5, Options()) {
    for (NodeId id : {kN0, kN1}) {
      world.Boot(id, [this, hooks](Env& env) {
        return std::make_unique<ProbeNode>(env, &seen, &sink, hooks);
      });
    }
  }
  static sim::WorldOptions Options() {
    sim::WorldOptions o;
    o.node_count = 2;
    return o;
  }
  ProbeNode& node(NodeId id) { return *world.node_as<ProbeNode>(id); }
  void Call(TraceContext parent) {
    world.env(kN0).Spawn(CallProbe(&node(kN0).rpc(), std::move(parent), &seen));
    world.RunFor(Duration::Seconds(1));
  }
  Seen seen;
  InMemorySpanSink sink;
  sim::World world;
};

const TraceContext kRemote =
    ExtractTraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=v1");

TEST(RpcTraceTest, WithoutHooksTheCallersContextReachesTheHandlerUnchanged) {
  ProbeWorld w(/*hooks=*/false);
  w.Call(kRemote);
  ASSERT_TRUE(w.seen.reply.has_value() && w.seen.reply->ok());
  ASSERT_TRUE(w.seen.context.has_value());
  EXPECT_EQ(w.seen.context->trace, kRemote);
  EXPECT_EQ(w.seen.context->from, kN0);
  EXPECT_TRUE(w.sink.spans().empty());
}

TEST(RpcTraceTest, WithoutAContextTheHandlerGetsNone) {
  ProbeWorld w(/*hooks=*/false);
  w.Call(TraceContext{});
  ASSERT_TRUE(w.seen.context.has_value());
  EXPECT_FALSE(w.seen.context->trace.valid());
}

TEST(RpcTraceTest, WithHooksClientAndServerSpansChainUnderTheCaller) {
  ProbeWorld w(/*hooks=*/true);
  w.Call(kRemote);
  ASSERT_TRUE(w.seen.reply.has_value() && w.seen.reply->ok());
  const auto spans = w.sink.spans();
  ASSERT_EQ(spans.size(), 2u);
  const SpanData& server = spans[0].kind == SpanKind::kServer ? spans[0] : spans[1];
  const SpanData& client = spans[0].kind == SpanKind::kClient ? spans[0] : spans[1];
  EXPECT_EQ(client.trace_id, kRemote.trace_id);
  EXPECT_EQ(client.parent_span_id, kRemote.span_id);
  EXPECT_EQ(server.trace_id, kRemote.trace_id);
  EXPECT_EQ(server.parent_span_id, client.span_id);
  EXPECT_EQ(server.trace_state, "vendor=v1");
  // The handler continues the server span.
  EXPECT_EQ(w.seen.context->trace.span_id, server.span_id);
  EXPECT_EQ(client.status_code, SpanStatusCode::kOk);
  EXPECT_EQ(std::get<int64_t>(*Attr(server, "rpc.method")), kProbe);
  EXPECT_GT(std::get<int64_t>(*Attr(server, "deadline.remaining_ms")), 0);
}

// A raw node that speaks the request wire format by hand (as an old or hostile peer would).
class RawSender final : public Node {
 public:
  explicit RawSender(Env& env) : env_(env) {
    env.transport().SetHandler([this](NodeId, const FrameView& f) {
      if (f.type == kRpcResponseType) ++replies;
    });
  }
  void SendTraced(uint64_t call_id, std::string_view traceparent, std::string_view tracestate) {
    Bytes payload;
    ByteWriter w(&payload);
    w.Varint(call_id);
    w.U16(kProbe);
    w.Varint(100'000'000);
    w.Bytes("hi");
    w.Bytes(traceparent);
    w.Bytes(tracestate);
    env_.transport().Send(kN1, kRpcRequestType, kRpcTracedSchemaVersion, payload).IgnoreError();
  }
  int replies = 0;

 private:
  Env& env_;
};

TEST(RpcTraceTest, MalformedOrOverLongTraceparentStartsANewTraceAndIsStillServed) {
  for (const std::string& bad :
       {std::string("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
        std::string("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        std::string("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        std::string(100'000, 'a'), std::string("")}) {
    Seen seen;
    InMemorySpanSink sink;
    sim::WorldOptions o;
    o.node_count = 2;
    sim::World world(3, o);
    world.Boot(kN0, [](Env& env) { return std::make_unique<RawSender>(env); });
    world.Boot(kN1, [&](Env& env) { return std::make_unique<ProbeNode>(env, &seen, &sink, true); });
    world.node_as<RawSender>(kN0)->SendTraced(42, bad, std::string(5000, 'x'));
    world.RunFor(Duration::Seconds(1));
    EXPECT_EQ(world.node_as<RawSender>(kN0)->replies, 1) << bad.substr(0, 60);
    const std::vector<SpanData> spans = sink.spans();  // a copy: keep it alive
    ASSERT_EQ(spans.size(), 1u);
    const SpanData& server = spans[0];
    EXPECT_EQ(server.parent_span_id, SpanId{});  // a new trace: a root server span
    EXPECT_NE(HexId(server.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_TRUE(server.trace_state.empty());
    ASSERT_TRUE(seen.context.has_value());
    EXPECT_EQ(seen.context->trace.trace_id, server.trace_id);
  }
}

class SchemaRecorder final : public Node {
 public:
  explicit SchemaRecorder(Env& env) {
    env.transport().SetHandler([this](NodeId, const FrameView& f) {
      if (f.type == kRpcRequestType) {
        schemas.push_back(f.schema_version);
      }
    });
  }
  std::vector<uint16_t> schemas;
};

TEST(RpcTraceTest, AnUntracedRequestIsTheSchemaOneFrameAndATracedOneIsSchemaTwo) {
  for (bool hooks : {false, true}) {
    Seen seen;
    InMemorySpanSink sink;
    sim::WorldOptions o;
    o.node_count = 2;
    sim::World world(3, o);
    world.Boot(kN0, [&](Env& env) { return std::make_unique<ProbeNode>(env, &seen, &sink, hooks); });
    world.Boot(kN1, [](Env& env) { return std::make_unique<SchemaRecorder>(env); });
    Rpc& rpc = world.node_as<ProbeNode>(kN0)->rpc();
    world.env(kN0).Spawn(CallProbe(&rpc, TraceContext{}, &seen));
    world.env(kN0).Spawn(CallProbe(&rpc, kRemote, &seen));
    world.RunFor(Duration::Millis(50));
    const auto& rec = *world.node_as<SchemaRecorder>(kN1);
    ASSERT_EQ(rec.schemas.size(), 2u);
    // With hooks a context-less call starts a new (sampled) trace, so it travels as schema 2.
    EXPECT_EQ(rec.schemas[0], hooks ? kRpcTracedSchemaVersion : kRpcSchemaVersion);
    EXPECT_EQ(rec.schemas[1], kRpcTracedSchemaVersion);
    world.RunFor(Duration::Seconds(1));  // let the calls time out before the world goes
  }
}

}  // namespace
}  // namespace faultline::observe
