// End to end: a 3-hop chain A -> B -> C whose middle hop retries, on three real RealEnvs over
// loopback UDP, exporting OTLP/HTTP JSON to a receiver in the test; the same chain in the
// simulator (traces deterministic for a seed); and a 3-layer retry storm exported to a file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include "faultline/observe/otlp.h"
#include "faultline/sim/world.h"
#include "src/observe/otlp_test_util.h"
#include "src/observe/trace_chain.h"
#include "src/runtime/runtime_test_util.h"

namespace faultline::observe {
namespace {

using testing::ChainHop;
using testing::ChainNode;
using testing::JsonSpan;

RetryOptions FastRetry(uint32_t attempts) {
  RetryOptions r;
  r.attempts_max = attempts;
  r.backoff.delay_initial = Duration::Millis(10);
  r.backoff.delay_max = Duration::Millis(40);
  return r;
}

const JsonSpan* Find(const std::vector<JsonSpan>& spans, const std::string& service,
                     const std::string& name, int nth = 0) {
  for (const JsonSpan& s : spans) {
    if (s.service == service && s.name == name && nth-- == 0) return &s;
  }
  return nullptr;
}

TEST(TraceChainTest, ThreeHopsOnRealEnvsWithARetryInTheMiddleMakeOneTrace) {
  testing::HttpReceiver receiver;
  OtlpExporterOptions eo;
  eo.endpoint = receiver.url();
  eo.flush_interval = Duration::Millis(20);
  auto exporter = OtlpExporter::Create(eo).value();

  const std::vector<uint16_t> ports = runtime::testing::FreePorts(3);
  std::vector<std::unique_ptr<runtime::RealEnv>> envs;
  for (uint32_t i = 0; i < 3; ++i) envs.push_back(runtime::testing::OpenEnv(i, ports));
  auto a = std::make_unique<ChainNode>(*envs[0], exporter.get(), ChainHop{.next = NodeId(1)});
  auto b = std::make_unique<ChainNode>(*envs[1], exporter.get(),
                                       ChainHop{.next = NodeId(2), .retry = FastRetry(3)});
  auto c = std::make_unique<ChainNode>(*envs[2], exporter.get(), ChainHop{.leaf_failures = 1});

  std::optional<Result<Bytes>> out;
  envs[0]->Spawn(a->Request(Duration::Seconds(3), &out));
  const bool done = runtime::testing::PumpUntil({envs[0].get(), envs[1].get(), envs[2].get()},
                                               [&] { return out.has_value(); });
  for (auto& e : envs) e->DestroySpawned();
  ASSERT_TRUE(done);
  ASSERT_TRUE(out->ok()) << out->status().ToString();
  EXPECT_EQ(c->leaf_requests(), 2u);  // failed once, retried once
  a.reset();
  b.reset();
  c.reset();
  ASSERT_TRUE(exporter->Flush(Duration::Seconds(5)));
  EXPECT_EQ(exporter->stats().dropped_queue_full + exporter->stats().dropped_send_failed, 0u);

  std::vector<JsonSpan> spans;
  for (const testing::HttpRequest& r : receiver.requests()) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/v1/traces");
    EXPECT_EQ(r.content_type, "application/json");
    const auto doc = nlohmann::json::parse(r.body);
    const auto problems = testing::OtlpJsonProblems(doc);
    EXPECT_TRUE(problems.empty()) << problems[0];
    for (JsonSpan& s : testing::FlattenOtlp(doc)) spans.push_back(std::move(s));
  }
  // client.request + rpc.client on A; rpc.server, the retry loop, 2 attempts and 2 rpc.client on
  // B; 2 rpc.server on C.
  ASSERT_EQ(spans.size(), 10u);
  std::set<std::string> trace_ids;
  std::map<std::string, const JsonSpan*> by_id;
  for (const JsonSpan& s : spans) {
    trace_ids.insert(s.trace_id);
    by_id[s.span_id] = &s;
  }
  EXPECT_EQ(trace_ids.size(), 1u) << "one trace id across all spans";
  EXPECT_EQ(by_id.size(), 10u) << "span ids are unique";
  for (const JsonSpan& s : spans) {
    if (s.name == "client.request") {
      EXPECT_TRUE(s.parent_span_id.empty());
    } else {
      EXPECT_EQ(by_id.count(s.parent_span_id), 1u) << s.name << " has a dangling parent";
    }
  }
  const JsonSpan* root = Find(spans, "node-0", "client.request");
  const JsonSpan* a_client = Find(spans, "node-0", "rpc.client");
  const JsonSpan* b_server = Find(spans, "node-1", "rpc.server");
  const JsonSpan* b_retry = Find(spans, "node-1", "retry 1->2");
  ASSERT_TRUE(root && a_client && b_server && b_retry);
  EXPECT_EQ(a_client->parent_span_id, root->span_id);
  EXPECT_EQ(a_client->kind, 3);
  EXPECT_EQ(b_server->parent_span_id, a_client->span_id);
  EXPECT_EQ(b_server->kind, 2);
  EXPECT_EQ(b_retry->parent_span_id, b_server->span_id);
  EXPECT_EQ(b_retry->attributes["retry.attempts"], "2");
  EXPECT_EQ(b_retry->attributes["retry.stop_reason"], "succeeded");
  for (int n = 0; n < 2; ++n) {
    const JsonSpan* attempt = Find(spans, "node-1", "retry.attempt", n);
    const JsonSpan* b_client = Find(spans, "node-1", "rpc.client", n);
    const JsonSpan* c_server = Find(spans, "node-2", "rpc.server", n);
    ASSERT_TRUE(attempt && b_client && c_server);
    EXPECT_EQ(attempt->parent_span_id, b_retry->span_id);
    EXPECT_EQ(attempt->attributes["retry.attempt"], std::to_string(n + 1));
    EXPECT_EQ(b_client->parent_span_id, attempt->span_id);
    EXPECT_EQ(c_server->parent_span_id, b_client->span_id);
    EXPECT_TRUE(attempt->attributes.contains("deadline.remaining_ms"));
  }
  const JsonSpan* first = Find(spans, "node-1", "retry.attempt", 0);
  const JsonSpan* second = Find(spans, "node-1", "retry.attempt", 1);
  EXPECT_EQ(first->status, 2);
  EXPECT_EQ(first->attributes["retry.decision"], "retry");
  EXPECT_EQ(first->attributes["retry.backoff_ms"], "0");
  EXPECT_EQ(second->status, 1);
  EXPECT_EQ(second->attributes["retry.decision"], "stop");
  EXPECT_EQ(second->attributes["retry.backoff_ms"], first->attributes["retry.next_backoff_ms"]);
  EXPECT_EQ(Find(spans, "node-2", "rpc.server", 0)->status, 2);
  EXPECT_EQ(Find(spans, "node-2", "rpc.server", 1)->status, 1);
}

// ---- the simulator -------------------------------------------------------------------------------

struct SimChain {
  // hops[i] for node i; node 0 sends one request with `deadline`.
  SimChain(uint64_t seed, std::vector<ChainHop> hops, Duration deadline, Duration run) {
    sim::WorldOptions o;
    o.node_count = static_cast<uint32_t>(hops.size());
    sim::World world(seed, o);
    for (uint32_t i = 0; i < hops.size(); ++i) {
      world.Boot(NodeId(i), [this, hop = hops[i]](Env& env) {
        return std::make_unique<ChainNode>(env, &sink, hop);
      });
    }
    world.env(NodeId(0)).Spawn(
        world.node_as<ChainNode>(NodeId(0))->Request(deadline, &result));
    world.RunFor(run);
    leaf_requests = world.node_as<ChainNode>(NodeId(static_cast<uint32_t>(hops.size() - 1)))
                        ->leaf_requests();
    spans = sink.spans();
  }
  InMemorySpanSink sink;
  std::optional<Result<Bytes>> result;
  std::vector<SpanData> spans;
  uint32_t leaf_requests = 0;
};

std::vector<ChainHop> MiddleRetry() {
  return {ChainHop{.next = NodeId(1)}, ChainHop{.next = NodeId(2), .retry = FastRetry(3)},
          ChainHop{.leaf_failures = 1}};
}

TEST(TraceChainTest, SimulatedTracesAreDeterministicForASeed) {
  const SimChain one(11, MiddleRetry(), Duration::Seconds(3), Duration::Seconds(10));
  const SimChain two(11, MiddleRetry(), Duration::Seconds(3), Duration::Seconds(10));
  const SimChain other(12, MiddleRetry(), Duration::Seconds(3), Duration::Seconds(10));
  ASSERT_TRUE(one.result.has_value() && one.result->ok());
  ASSERT_EQ(one.spans.size(), 10u);
  EXPECT_EQ(one.spans, two.spans);  // ids, timestamps, attributes: bit for bit
  EXPECT_EQ(EncodeOtlpJson(one.spans), EncodeOtlpJson(two.spans));
  EXPECT_NE(one.spans[0].trace_id, other.spans[0].trace_id);
  for (const SpanData& s : one.spans) EXPECT_EQ(s.trace_id, one.spans[0].trace_id);
}

// client (node 0) -> gateway (1) -> service (2) -> database (3); the client and the gateway each
// retry 3 times with no budget; the database fails every request after 120 ms. The client's 1 s
// deadline travels down and runs out while the gateway is still retrying.
TEST(TraceChainTest, ARetryStormIsVisibleInTheTrace) {
  const std::vector<ChainHop> hops = {
      ChainHop{.next = NodeId(1), .retry = FastRetry(3)},
      ChainHop{.next = NodeId(2), .retry = FastRetry(3)},
      ChainHop{.next = NodeId(3)},
      ChainHop{.leaf_failures = 1000, .leaf_delay = Duration::Millis(120)}};
  const SimChain storm(3, hops, Duration::Seconds(1), Duration::Seconds(5));
  ASSERT_TRUE(storm.result.has_value());
  EXPECT_FALSE(storm.result->ok());
  std::map<std::string, int> attempts_by_layer;
  int deadline_exceeded = 0;
  for (const SpanData& s : storm.spans) {
    for (const Attribute& a : s.attributes) {
      if (a.key == "deadline.exceeded" && std::get<bool>(a.value)) ++deadline_exceeded;
    }
    if (s.name != "retry.attempt") continue;
    for (const SpanData& p : storm.spans) {
      if (p.span_id == s.parent_span_id) ++attempts_by_layer[p.name];
    }
  }
  // The storm: the client's layer retried, and under each of its attempts the gateway retried.
  EXPECT_GE(attempts_by_layer["retry 0->1"], 2);
  EXPECT_GT(attempts_by_layer["retry 1->2"], attempts_by_layer["retry 0->1"]);
  // Every database request is one gateway attempt: the amplification is in the trace.
  EXPECT_EQ(static_cast<int>(storm.leaf_requests), attempts_by_layer["retry 1->2"]);
  EXPECT_GT(deadline_exceeded, 0) << "the trace shows where the deadline ran out";
  // The RetryState's own decisions (the observer seam) are events of each loop span.
  std::map<std::string, int> events;
  for (const SpanData& s : storm.spans) {
    if (s.name.rfind("retry ", 0) != 0) continue;
    for (const SpanEvent& e : s.events) ++events[e.name];
  }
  EXPECT_EQ(events["faultline.retry_scheduled"],
            attempts_by_layer["retry 0->1"] + attempts_by_layer["retry 1->2"] -
                static_cast<int>(std::count_if(storm.spans.begin(), storm.spans.end(),
                                               [](const SpanData& s) {
                                                 return s.name.rfind("retry ", 0) == 0;
                                               })));
  EXPECT_GT(events["faultline.retry_exhausted"], 0);

  // Export it to a file (FAULTLINE_TRACE_STORM_OUT or a temp file) and print the tree.
  const char* env_out = std::getenv("FAULTLINE_TRACE_STORM_OUT");
  const std::string path = env_out != nullptr ? env_out : "/tmp/faultline-retry-storm.otlp.json";
  std::remove(path.c_str());
  {
    OtlpExporterOptions fo;
    fo.file_path = path;
    auto file = OtlpExporter::Create(fo).value();
    for (const SpanData& s : storm.spans) file->Export(s);
    ASSERT_TRUE(file->Flush(Duration::Seconds(5)));
  }
  std::ifstream in(path);
  std::string line;
  size_t spans = 0;
  while (std::getline(in, line)) {
    const auto doc = nlohmann::json::parse(line);
    EXPECT_TRUE(testing::OtlpJsonProblems(doc).empty());
    spans += testing::FlattenOtlp(doc).size();
  }
  EXPECT_EQ(spans, storm.spans.size());
  std::printf("%s", RenderTraceTree(storm.spans).c_str());
  if (env_out == nullptr) std::remove(path.c_str());
}

// client (0) hedges its call to the service (1): the first copy is slow (200 ms), so a second
// copy goes out after the 20 ms hedge delay and wins; the first is torn down.
TEST(TraceChainTest, HedgesAreSpansAndTheLoserIsMarkedCancelled) {
  HedgingOptions h;
  h.attempts_max = 2;
  h.hedge_delay = Duration::Millis(20);
  const SimChain run(5,
                     {ChainHop{.next = NodeId(1), .hedge = h},
                      ChainHop{.leaf_delay = Duration::Millis(5),
                               .leaf_first_delay = Duration::Millis(200)}},
                     Duration::Seconds(1), Duration::Seconds(3));
  ASSERT_TRUE(run.result.has_value() && run.result->ok());
  const SpanData* hedge = nullptr;
  std::vector<const SpanData*> copies;
  for (const SpanData& s : run.spans) {
    if (s.name == "hedge 0->1") hedge = &s;
    if (s.name == "hedge.attempt") copies.push_back(&s);
  }
  ASSERT_NE(hedge, nullptr);
  ASSERT_EQ(copies.size(), 2u);
  std::sort(copies.begin(), copies.end(), [](const SpanData* a, const SpanData* b) {
    return std::get<int64_t>(a->attributes[0].value) < std::get<int64_t>(b->attributes[0].value);
  });
  auto attr = [](const SpanData& s, std::string_view key) -> const AttributeValue* {
    for (const Attribute& a : s.attributes) {
      if (a.key == key) return &a.value;
    }
    return nullptr;
  };
  for (const SpanData* c : copies) EXPECT_EQ(c->parent_span_id, hedge->span_id);
  ASSERT_NE(attr(*copies[0], "hedge.cancelled"), nullptr);  // the slow original lost
  EXPECT_TRUE(std::get<bool>(*attr(*copies[0], "hedge.cancelled")));
  EXPECT_EQ(attr(*copies[1], "hedge.cancelled"), nullptr);
  EXPECT_EQ(copies[1]->status_code, SpanStatusCode::kOk);
  EXPECT_EQ(std::get<int64_t>(*attr(*copies[1], "hedge.sent_after_ms")), 20);
  EXPECT_EQ(std::get<int64_t>(*attr(*hedge, "hedge.winner")), 1);
  ASSERT_FALSE(hedge->events.empty());
  EXPECT_EQ(hedge->events[0].name, "faultline.hedge_sent");
}

}  // namespace
}  // namespace faultline::observe
