// File: faultline/env/rpc.h
//
// Request/response over the unreliable Transport, with deadlines that travel with the request.
//
//   Rpc rpc(env);
//   rpc.Handle(kGet, [&](NodeId from, std::span<const uint8_t> req) -> Result<Bytes> { ... });
//   Result<Bytes> reply = co_await rpc.Call(peer, kGet, request, Duration::Millis(100));
//
// A call finishes exactly once: with the reply, with the remote handler's error Status, with
// kDeadlineExceeded when no reply arrives within the timeout, or with kCancelled. Replies that
// arrive late or twice (duplication) are dropped. The request carries the caller's remaining time;
// the server converts it to a deadline on its own monotonic clock, refuses work whose deadline has
// already passed, and hands the deadline to async handlers so inner calls can propagate it.
//
// Rpc installs itself as the Transport's handler; frames of other types go to the one-way handler.
// An Rpc must outlive every call awaiting on it. Single-threaded, on the node's executor.
//
// Trace context (W3C traceparent/tracestate, faultline/env/trace_context.h) travels next to the
// deadline: a call given a valid parent context sends it (or, with RpcTraceHooks attached, the
// context of the client span the hooks open under it); the server parses it by the W3C rules
// (malformed or over-long: ignored, a new trace starts; the request itself is still served),
// opens a server span through its hooks, and hands the server span's context to a HandleTraced
// handler, whose inner calls continue the same trace.
//
// Observability (observe()): the deadline decisions are reported, with no clock read beyond
// those the calls and requests already make. Client side: kDeadlineExceeded when a call's timer
// fires with no reply (a = 1, d = the call's timeout: the reply is at least that late; at =
// MonoTime(), the timer path reads no clock). Server side, timed at the request's arrival reading:
// kDeadlinePropagated when a request's deadline is handed to an async or traced handler (a =
// method, d = the remaining budget it arrived with), and kDeadlineRefused when a request arrives
// with no time left and is refused unserved (a = method), or when an async handler finishes
// after the deadline and its reply is dropped (a = method, b = 1, d = how late, at = the reading
// that found it late).
//
// Wire compatibility: a request without a trace context is the schema-1 request, byte for byte
// (so a run with tracing off is unchanged, in the simulator's determinism hashes too). A request
// with one is schema 2 (schema 1 plus two strings: traceparent, tracestate). This Rpc accepts
// both; an Rpc that speaks only schema 1 drops schema-2 requests (its caller times out), so turn
// tracing on once every node runs a version that reads schema 2. Replies are unchanged (schema 1).
#pragma once

#include <coroutine>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <vector>

#include "faultline/core/observer.h"
#include "faultline/env/env.h"
#include "faultline/env/trace_context.h"

namespace faultline {

using Bytes = std::vector<uint8_t>;

inline constexpr uint16_t kRpcRequestType = 0xFF01;
inline constexpr uint16_t kRpcResponseType = 0xFF02;
inline constexpr uint16_t kRpcSchemaVersion = 1;
// Requests that carry a trace context.
inline constexpr uint16_t kRpcTracedSchemaVersion = 2;

struct RpcOptions {
  // Calls in flight at once; a call beyond this fails fast with kResourceExhausted.
  uint32_t pending_calls_max = 4096;
  // Largest request or reply body accepted from the network.
  uint32_t body_bytes_max = 1 << 20;
  Status Validate() const;
};

// What a traced handler learns about its request.
struct RpcRequestContext {
  NodeId from;
  MonoTime deadline;   // on this node's monotonic clock
  TraceContext trace;  // the server span's context (or the caller's, with no hooks); may be invalid
  uint16_t method = 0;
};

// Span callbacks (faultline/observe/tracer.h provides them; env/ depends on no exporter). Called on
// the node's executor. Handles are the implementation's; 0 means "no span".
class RpcTraceHooks {
 public:
  virtual ~RpcTraceHooks() = default;
  // A call is about to be sent under `parent` (possibly invalid). Sets *propagate to the context
  // the request carries (left invalid: the request carries none).
  virtual uint64_t StartClientSpan(const TraceContext& parent, NodeId to, uint16_t method,
                                   Duration timeout, TraceContext* propagate) = 0;
  virtual void EndClientSpan(uint64_t span, const Status& status) = 0;
  // A request arrived carrying `remote` (invalid: none, or malformed). Sets *context to what the
  // handler receives.
  virtual uint64_t StartServerSpan(const TraceContext& remote, NodeId from, uint16_t method,
                                   Duration remaining, TraceContext* context) = 0;
  virtual void EndServerSpan(uint64_t span, const Status& status) = 0;
};

class Rpc {
 public:
  using SyncHandler = std::function<Result<Bytes>(NodeId from, std::span<const uint8_t> request)>;
  using AsyncHandler =
      std::function<Task<Result<Bytes>>(NodeId from, Bytes request, MonoTime deadline)>;
  using TracedHandler =
      std::function<Task<Result<Bytes>>(RpcRequestContext context, Bytes request)>;

  explicit Rpc(Env& env, RpcOptions options = {});
  Rpc(const Rpc&) = delete;
  Rpc& operator=(const Rpc&) = delete;
  ~Rpc();

  void Handle(uint16_t method, SyncHandler handler);
  void HandleAsync(uint16_t method, AsyncHandler handler);
  void HandleTraced(uint16_t method, TracedHandler handler);
  // Spans for calls and requests (nullptr detaches). `hooks` must outlive the Rpc.
  void SetTraceHooks(RpcTraceHooks* hooks) { hooks_ = hooks; }
  // Deadline events (see the file comment). Attach before the first call.
  ObserverSlot& observe() { return observer_; }
  // Frames that are not RPC requests or replies.
  void SetOneWayHandler(MessageHandler handler) { one_way_ = std::move(handler); }

  class [[nodiscard]] CallAwaiter {
   public:
    CallAwaiter(Rpc& rpc, NodeId to, uint16_t method, std::span<const uint8_t> request,
                Duration timeout, CancelToken token, TraceContext parent = {});
    CallAwaiter(const CallAwaiter&) = delete;
    CallAwaiter& operator=(const CallAwaiter&) = delete;
    ~CallAwaiter();
    bool await_ready();
    void await_suspend(std::coroutine_handle<> h);
    Result<Bytes> await_resume();

   private:
    friend class Rpc;
    void Finish(Result<Bytes> result);
    Rpc& rpc_;
    NodeId to_;
    uint16_t method_;
    Bytes request_;
    Duration timeout_;
    CancelToken token_;
    TraceContext parent_;
    uint64_t span_ = 0;
    uint64_t call_id_ = 0;
    TimerId timer_;
    uint64_t registration_ = 0;
    std::coroutine_handle<> handle_;
    Result<Bytes> result_ = UnknownPending();
    static Status UnknownPending() { return Status(StatusCode::kUnknown, "call not finished"); }
  };

  // Calls `method` on `to`; see the file comment for the outcomes.
  CallAwaiter Call(NodeId to, uint16_t method, std::span<const uint8_t> request, Duration timeout,
                   CancelToken token = {}) {
    return CallAwaiter(*this, to, method, request, timeout, std::move(token));
  }
  // The same call as part of the trace `parent` (see the file comment).
  CallAwaiter Call(NodeId to, uint16_t method, std::span<const uint8_t> request, Duration timeout,
                   CancelToken token, TraceContext parent) {
    return CallAwaiter(*this, to, method, request, timeout, std::move(token), std::move(parent));
  }

  size_t pending_calls() const { return pending_.size(); }

 private:
  void OnFrame(NodeId from, const FrameView& frame);
  void OnRequest(NodeId from, uint16_t schema, std::span<const uint8_t> payload);
  void OnResponse(std::span<const uint8_t> payload);
  void Reply(NodeId to, uint64_t call_id, const Result<Bytes>& result);
  Task<void> RunAsync(TracedHandler& handler, RpcRequestContext context, uint64_t call_id,
                      Bytes request, uint64_t span);
  void EndServerSpan(uint64_t span, const Status& status) {
    if (span != 0 && hooks_ != nullptr) hooks_->EndServerSpan(span, status);
  }

  Env& env_;
  RpcOptions options_;
  uint64_t next_call_id_ = 1;
  std::map<uint64_t, CallAwaiter*> pending_;
  std::map<uint16_t, SyncHandler> sync_handlers_;
  std::map<uint16_t, TracedHandler> async_handlers_;
  MessageHandler one_way_;
  RpcTraceHooks* hooks_ = nullptr;
  ObserverSlot observer_;
};

}  // namespace faultline
