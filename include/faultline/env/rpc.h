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
#pragma once

#include <coroutine>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <vector>

#include "faultline/env/env.h"

namespace faultline {

using Bytes = std::vector<uint8_t>;

inline constexpr uint16_t kRpcRequestType = 0xFF01;
inline constexpr uint16_t kRpcResponseType = 0xFF02;
inline constexpr uint16_t kRpcSchemaVersion = 1;

struct RpcOptions {
  // Calls in flight at once; a call beyond this fails fast with kResourceExhausted.
  uint32_t pending_calls_max = 4096;
  // Largest request or reply body accepted from the network.
  uint32_t body_bytes_max = 1 << 20;
  Status Validate() const;
};

class Rpc {
 public:
  using SyncHandler = std::function<Result<Bytes>(NodeId from, std::span<const uint8_t> request)>;
  using AsyncHandler =
      std::function<Task<Result<Bytes>>(NodeId from, Bytes request, MonoTime deadline)>;

  explicit Rpc(Env& env, RpcOptions options = {});
  Rpc(const Rpc&) = delete;
  Rpc& operator=(const Rpc&) = delete;
  ~Rpc();

  void Handle(uint16_t method, SyncHandler handler);
  void HandleAsync(uint16_t method, AsyncHandler handler);
  // Frames that are not RPC requests or replies.
  void SetOneWayHandler(MessageHandler handler) { one_way_ = std::move(handler); }

  class [[nodiscard]] CallAwaiter {
   public:
    CallAwaiter(Rpc& rpc, NodeId to, uint16_t method, std::span<const uint8_t> request,
                Duration timeout, CancelToken token);
    CallAwaiter(const CallAwaiter&) = delete;
    CallAwaiter& operator=(const CallAwaiter&) = delete;
    ~CallAwaiter();
    bool await_ready();
    void await_suspend(std::coroutine_handle<> h);
    Result<Bytes> await_resume() { return std::move(result_); }

   private:
    friend class Rpc;
    void Finish(Result<Bytes> result);
    Rpc& rpc_;
    NodeId to_;
    uint16_t method_;
    Bytes request_;
    Duration timeout_;
    CancelToken token_;
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

  size_t pending_calls() const { return pending_.size(); }

 private:
  void OnFrame(NodeId from, const FrameView& frame);
  void OnRequest(NodeId from, std::span<const uint8_t> payload);
  void OnResponse(std::span<const uint8_t> payload);
  void Reply(NodeId to, uint64_t call_id, const Result<Bytes>& result);
  Task<void> RunAsync(AsyncHandler& handler, NodeId from, uint64_t call_id, Bytes request,
                      MonoTime deadline);

  Env& env_;
  RpcOptions options_;
  uint64_t next_call_id_ = 1;
  std::map<uint64_t, CallAwaiter*> pending_;
  std::map<uint16_t, SyncHandler> sync_handlers_;
  std::map<uint16_t, AsyncHandler> async_handlers_;
  MessageHandler one_way_;
};

}  // namespace faultline
