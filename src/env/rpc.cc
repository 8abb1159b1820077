#include "faultline/env/rpc.h"

#include "faultline/core/bytes.h"
#include "faultline/core/options.h"

namespace faultline {

// Request payload: varint call_id, u16 method, varint remaining_ns, bytes body;
//   schema 2 adds: bytes traceparent, bytes tracestate.
// Reply payload:   varint call_id, u8 status code, bytes body-or-message.

Status RpcOptions::Validate() const {
  FL_CHECK_OPTION(pending_calls_max > 0, "pending_calls_max must be > 0");
  FL_CHECK_OPTION(body_bytes_max > 0, "body_bytes_max must be > 0");
  return Status::Ok();
}

Rpc::Rpc(Env& env, RpcOptions options) : env_(env), options_(options) {
  FL_ASSERT(options_.Validate().ok());
  // Call ids start at a random point (48 bits, never 0): a restarted process builds a fresh Rpc,
  // and a reply still in flight to its previous incarnation must not match a new call's id.
  next_call_id_ = (env_.random().Next() >> 16) + 1;
  env_.transport().SetHandler([this](NodeId from, const FrameView& f) { OnFrame(from, f); });
}

Rpc::~Rpc() {
  env_.transport().SetHandler(nullptr);
  FL_ASSERT_MSG(pending_.empty(), "Rpc destroyed while calls are awaiting it");
}

void Rpc::Handle(uint16_t method, SyncHandler handler) {
  FL_ASSERT(async_handlers_.count(method) == 0);
  sync_handlers_[method] = std::move(handler);
}

void Rpc::HandleAsync(uint16_t method, AsyncHandler handler) {
  HandleTraced(method, [h = std::move(handler)](RpcRequestContext c, Bytes request) {
    return h(c.from, std::move(request), c.deadline);
  });
}

void Rpc::HandleTraced(uint16_t method, TracedHandler handler) {
  FL_ASSERT(sync_handlers_.count(method) == 0);
  async_handlers_[method] = std::move(handler);
}

void Rpc::OnFrame(NodeId from, const FrameView& frame) {
  if (frame.type == kRpcRequestType || frame.type == kRpcResponseType) {
    // A message of a newer schema than we speak is dropped, like any malformed one: the caller's
    // deadline turns it into kDeadlineExceeded.
    if (frame.type == kRpcRequestType) {
      if (frame.schema_version != kRpcSchemaVersion &&
          frame.schema_version != kRpcTracedSchemaVersion) {
        return;
      }
      OnRequest(from, frame.schema_version, frame.payload);
    } else {
      if (frame.schema_version != kRpcSchemaVersion) return;
      OnResponse(frame.payload);
    }
    return;
  }
  if (one_way_) one_way_(from, frame);
}

void Rpc::OnRequest(NodeId from, uint16_t schema, std::span<const uint8_t> payload) {
  ByteReader r(payload);
  uint64_t call_id = 0;
  uint16_t method = 0;
  uint64_t remaining_ns = 0;
  std::string body;
  std::string traceparent;
  std::string tracestate;
  if (!r.Varint(&call_id).ok() || !r.U16(&method).ok() || !r.Varint(&remaining_ns).ok() ||
      !r.Bytes(&body, options_.body_bytes_max).ok()) {
    return;  // malformed: drop
  }
  if (schema == kRpcTracedSchemaVersion &&
      (!r.Bytes(&traceparent, options_.body_bytes_max).ok() ||
       !r.Bytes(&tracestate, options_.body_bytes_max).ok())) {
    return;
  }
  if (!r.empty()) return;
  const Duration remaining =
      Duration::Nanos(static_cast<int64_t>(remaining_ns > INT64_MAX ? INT64_MAX : remaining_ns));
  RpcRequestContext context;
  context.from = from;
  context.method = method;
  const MonoTime arrived = env_.clock().Now();
  context.deadline = arrived + remaining;
  // Malformed trace headers are ignored (W3C): the context stays invalid and a new trace starts.
  if (schema == kRpcTracedSchemaVersion) {
    context.trace = ExtractTraceContext(traceparent, tracestate);
  }
  uint64_t span = 0;
  if (hooks_ != nullptr) {
    TraceContext server;
    span = hooks_->StartServerSpan(context.trace, from, method, remaining, &server);
    context.trace = std::move(server);
  }
  if (remaining_ns == 0) {
    observer_.Emit(EventKind::kDeadlineRefused, arrived, method);
    const Status late = DeadlineExceededError("deadline passed before the request arrived");
    Reply(from, call_id, late);
    EndServerSpan(span, late);
    return;
  }
  std::span<const uint8_t> req(reinterpret_cast<const uint8_t*>(body.data()), body.size());
  if (auto it = sync_handlers_.find(method); it != sync_handlers_.end()) {
    const Result<Bytes> result = it->second(from, req);
    Reply(from, call_id, result);
    EndServerSpan(span, result.status());
    return;
  }
  if (auto it = async_handlers_.find(method); it != async_handlers_.end()) {
    observer_.Emit(EventKind::kDeadlinePropagated, arrived, method, 0, remaining);
    env_.Spawn(RunAsync(it->second, std::move(context), call_id, Bytes(req.begin(), req.end()),
                        span));
    return;
  }
  const Status missing = UnimplementedError("no handler for method");
  Reply(from, call_id, missing);
  EndServerSpan(span, missing);
}

Task<void> Rpc::RunAsync(TracedHandler& handler, RpcRequestContext context, uint64_t call_id,
                         Bytes request, uint64_t span) {
  const NodeId from = context.from;
  const MonoTime deadline = context.deadline;
  const uint16_t method = context.method;
  Result<Bytes> result = co_await handler(std::move(context), std::move(request));
  // A reply after the caller's deadline is useless to it; skip the send.
  const MonoTime done = env_.clock().Now();
  if (done < deadline) {
    Reply(from, call_id, result);
  } else {
    observer_.Emit(EventKind::kDeadlineRefused, done, method, 1, done - deadline);
  }
  EndServerSpan(span, result.status());
}

void Rpc::Reply(NodeId to, uint64_t call_id, const Result<Bytes>& result) {
  Bytes payload;
  ByteWriter w(&payload);
  w.Varint(call_id);
  if (result.ok()) {
    w.U8(0);
    w.Bytes(std::string_view(reinterpret_cast<const char*>(result->data()), result->size()));
  } else {
    w.U8(static_cast<uint8_t>(result.status().code()));
    w.Bytes(result.status().message());
  }
  env_.transport().Send(to, kRpcResponseType, kRpcSchemaVersion, payload).IgnoreError();
}

void Rpc::OnResponse(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  uint64_t call_id = 0;
  uint8_t code = 0;
  std::string body;
  if (!r.Varint(&call_id).ok() || !r.U8(&code).ok() ||
      !r.Bytes(&body, options_.body_bytes_max).ok() || !r.empty() ||
      code > static_cast<uint8_t>(StatusCode::kFencedOut)) {
    return;
  }
  auto it = pending_.find(call_id);
  if (it == pending_.end()) return;  // late or duplicated reply
  CallAwaiter* call = it->second;
  pending_.erase(it);
  if (code == 0) {
    call->Finish(Bytes(body.begin(), body.end()));
  } else {
    call->Finish(Status(static_cast<StatusCode>(code), body));
  }
}

Rpc::CallAwaiter::CallAwaiter(Rpc& rpc, NodeId to, uint16_t method,
                              std::span<const uint8_t> request, Duration timeout,
                              CancelToken token, TraceContext parent)
    : rpc_(rpc),
      to_(to),
      method_(method),
      request_(request.begin(), request.end()),
      timeout_(timeout),
      token_(std::move(token)),
      parent_(std::move(parent)) {}

Rpc::CallAwaiter::~CallAwaiter() {
  // Destroyed while suspended (its coroutine was torn down): the span still ends.
  if (span_ != 0 && rpc_.hooks_ != nullptr) {
    rpc_.hooks_->EndClientSpan(span_, CancelledError("call abandoned"));
  }
  if (call_id_ != 0) rpc_.pending_.erase(call_id_);
  if (timer_) rpc_.env_.executor().Cancel(timer_);
  token_.Unregister(registration_);
}

bool Rpc::CallAwaiter::await_ready() {
  if (token_.cancelled()) {
    result_ = CancelledError("call cancelled");
    return true;
  }
  if (timeout_ <= Duration::Zero()) {
    result_ = DeadlineExceededError("call timeout is not positive");
    return true;
  }
  if (rpc_.pending_.size() >= rpc_.options_.pending_calls_max) {
    result_ = ResourceExhaustedError("too many calls in flight");
    return true;
  }
  return false;
}

Result<Bytes> Rpc::CallAwaiter::await_resume() {
  if (span_ != 0) {
    if (rpc_.hooks_ != nullptr) rpc_.hooks_->EndClientSpan(span_, result_.status());
    span_ = 0;
  }
  return std::move(result_);
}

void Rpc::CallAwaiter::await_suspend(std::coroutine_handle<> h) {
  handle_ = h;
  call_id_ = rpc_.next_call_id_++;
  rpc_.pending_.emplace(call_id_, this);
  // Without hooks the caller's context travels as it is; with them, the client span's.
  TraceContext propagate;
  if (rpc_.hooks_ != nullptr) {
    span_ = rpc_.hooks_->StartClientSpan(parent_, to_, method_, timeout_, &propagate);
  } else {
    propagate = std::move(parent_);
  }
  const bool traced = propagate.valid();
  Bytes payload;
  ByteWriter w(&payload);
  w.Varint(call_id_);
  w.U16(method_);
  w.Varint(static_cast<uint64_t>(timeout_.nanos()));
  w.Bytes(std::string_view(reinterpret_cast<const char*>(request_.data()), request_.size()));
  if (traced) {
    const auto [traceparent, tracestate] = InjectTraceContext(propagate);
    w.Bytes(traceparent);
    w.Bytes(tracestate);
  }
  Status sent = rpc_.env_.transport().Send(
      to_, kRpcRequestType, traced ? kRpcTracedSchemaVersion : kRpcSchemaVersion, payload);
  if (!sent.ok()) {
    rpc_.pending_.erase(call_id_);
    call_id_ = 0;
    result_ = std::move(sent);
    timer_ = rpc_.env_.executor().Post([this] {
      timer_ = {};
      handle_.resume();
    });
    return;
  }
  timer_ = rpc_.env_.executor().ScheduleAfter(timeout_, [this] {
    timer_ = {};
    rpc_.pending_.erase(call_id_);
    call_id_ = 0;
    rpc_.observer_.Emit(EventKind::kDeadlineExceeded, MonoTime(), 1, 0, timeout_);
    Finish(DeadlineExceededError("no reply before the deadline"));
  });
  registration_ = token_.Register([this] {
    registration_ = 0;
    rpc_.pending_.erase(call_id_);
    call_id_ = 0;
    rpc_.env_.executor().Cancel(timer_);
    result_ = CancelledError("call cancelled");
    timer_ = rpc_.env_.executor().Post([this] {
      timer_ = {};
      handle_.resume();
    });
  });
}

void Rpc::CallAwaiter::Finish(Result<Bytes> result) {
  call_id_ = 0;
  if (timer_) {
    rpc_.env_.executor().Cancel(timer_);
    timer_ = {};
  }
  token_.Unregister(registration_);
  registration_ = 0;
  result_ = std::move(result);
  handle_.resume();
}

}  // namespace faultline
