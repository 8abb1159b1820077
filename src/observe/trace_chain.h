// A traced call chain for the observe tests: nodes that forward a request to the next hop under
// TracedRetry (or answer it, at the end of the chain), written against the Env seams only, so the
// same nodes run in sim::World and on RealEnvs over loopback UDP.
//
//   front (node 0) --kWork--> middle (1) --kWork--> ... --kWork--> leaf (n-1)
//
// Every node has a Tracer (service "node-<id>") exporting to one shared sink and installs it as
// its Rpc's trace hooks. A hop with `retry` set wraps its outgoing call in TracedRetry; the leaf
// fails its first `leaf_failures` requests with UNAVAILABLE after `leaf_delay`, then answers.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "faultline/env/env.h"
#include "faultline/env/node.h"
#include "faultline/env/rpc.h"
#include "faultline/observe/traced_hedge.h"
#include "faultline/observe/traced_retry.h"
#include "faultline/observe/tracer.h"
#include "faultline/resilience/retry.h"

namespace faultline::observe::testing {

inline constexpr uint16_t kWork = 0x0701;

struct ChainHop {
  std::optional<NodeId> next = std::nullopt;        // nullopt: this is the leaf
  std::optional<RetryOptions> retry = std::nullopt; // the outgoing call's retry policy (nullopt: one attempt)
  uint32_t leaf_failures = 0;          // leaf: requests answered UNAVAILABLE first
  Duration leaf_delay = Duration::Millis(5);
  Duration leaf_first_delay = Duration::Zero();  // nonzero: the leaf's first request takes this
  std::optional<HedgingOptions> hedge = std::nullopt;  // hedge the outgoing call (instead of retry)
};

class ChainNode final : public Node {
 public:
  ChainNode(Env& env, SpanSink* sink, ChainHop hop)
      : env_(env),
        tracer_(env.clock(), env.random(), sink,
                TracerOptions{.service_name = "node-" + std::to_string(env.self().value())}),
        rpc_(env),
        hop_(std::move(hop)) {
    rpc_.SetTraceHooks(&tracer_);
    if (hop_.retry) policy_.emplace(RetryPolicy::Create(*hop_.retry).value());
    if (hop_.hedge) hedging_.emplace(HedgingPolicy::Create(*hop_.hedge).value());
    rpc_.HandleTraced(kWork, [this](RpcRequestContext c, Bytes body) {
      return Serve(std::move(c), std::move(body));
    });
  }

  Tracer& tracer() { return tracer_; }
  Rpc& rpc() { return rpc_; }
  uint32_t leaf_requests() const { return leaf_requests_; }

  // The front end's request: a root span, then the call down the chain. *out gets the result.
  Task<void> Request(Duration deadline, std::optional<Result<Bytes>>* out) {
    Tracer::Span root = tracer_.StartSpan("client.request", TraceContext{});
    RpcRequestContext c;
    c.from = env_.self();
    c.deadline = env_.clock().Now() + deadline;
    c.trace = root.context();
    Bytes body = {'r', 'e', 'q'};  // named: GCC 12 rejects an initializer-list temporary in co_await
    Result<Bytes> r = co_await Forward(std::move(c), std::move(body));
    root.End(r.status());
    out->emplace(std::move(r));
  }

 private:
  Task<Result<Bytes>> Serve(RpcRequestContext c, Bytes body) {
    if (hop_.next) co_return co_await Forward(std::move(c), std::move(body));
    const uint32_t n = ++leaf_requests_;
    const Duration delay =
        n == 1 && hop_.leaf_first_delay > Duration::Zero() ? hop_.leaf_first_delay : hop_.leaf_delay;
    const Status slept = co_await Sleep(env_.executor(), delay);
    if (!slept.ok()) co_return slept;
    if (n <= hop_.leaf_failures) co_return UnavailableError("leaf: injected failure");
    body.push_back('!');
    co_return body;
  }

  Task<Result<Bytes>> Forward(RpcRequestContext c, Bytes body) {
    const Deadline deadline = Deadline::At(c.deadline);
    if (hedging_) {
      const std::string layer = "hedge " + std::to_string(env_.self().value()) + "->" +
                                std::to_string(hop_.next->value());
      co_return co_await TracedHedge<Bytes>(
          env_, tracer_, c.trace, layer, *hedging_, nullptr, deadline,
          [this, &body, deadline](int, CancelToken cancel, Pushback&,
                                  TraceContext attempt) -> Task<Result<Bytes>> {
            const Duration left = deadline.Remaining(env_.clock().Now());
            co_return co_await rpc_.Call(*hop_.next, kWork, body, left, cancel, attempt);
          });
    }
    if (!policy_) {
      const Duration left = deadline.Remaining(env_.clock().Now());
      co_return co_await rpc_.Call(*hop_.next, kWork, body, left, {}, c.trace);
    }
    const std::string layer =
        "retry " + std::to_string(env_.self().value()) + "->" + std::to_string(hop_.next->value());
    co_return co_await TracedRetry(
        env_, tracer_, c.trace, layer, *policy_, nullptr, deadline,
        [this, &body](RetryAttempt& a, TraceContext attempt) -> Task<Result<Bytes>> {
          co_return co_await rpc_.Call(*hop_.next, kWork, body, a.timeout, a.cancel, attempt);
        });
  }

  Env& env_;
  Tracer tracer_;
  Rpc rpc_;
  ChainHop hop_;
  std::optional<RetryPolicy> policy_;
  std::optional<HedgingPolicy> hedging_;
  uint32_t leaf_requests_ = 0;
};

}  // namespace faultline::observe::testing
