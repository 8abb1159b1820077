#include "faultline/env/rpc.h"

#include "faultline/core/bytes.h"
#include "faultline/core/options.h"

namespace faultline {

// Request payload: varint call_id, u16 method, varint remaining_ns, bytes body.
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
  FL_ASSERT(sync_handlers_.count(method) == 0);
  async_handlers_[method] = std::move(handler);
}

void Rpc::OnFrame(NodeId from, const FrameView& frame) {
  if (frame.type == kRpcRequestType || frame.type == kRpcResponseType) {
    // A message of a newer schema than we speak is dropped, like any malformed one: the caller's
    // deadline turns it into kDeadlineExceeded.
    if (frame.schema_version != kRpcSchemaVersion) return;
    if (frame.type == kRpcRequestType) {
      OnRequest(from, frame.payload);
    } else {
      OnResponse(frame.payload);
    }
    return;
  }
  if (one_way_) one_way_(from, frame);
}

void Rpc::OnRequest(NodeId from, std::span<const uint8_t> payload) {
  ByteReader r(payload);
  uint64_t call_id = 0;
  uint16_t method = 0;
  uint64_t remaining_ns = 0;
  std::string body;
  if (!r.Varint(&call_id).ok() || !r.U16(&method).ok() || !r.Varint(&remaining_ns).ok() ||
      !r.Bytes(&body, options_.body_bytes_max).ok() || !r.empty()) {
    return;  // malformed: drop
  }
  if (remaining_ns == 0) {
    Reply(from, call_id, DeadlineExceededError("deadline passed before the request arrived"));
    return;
  }
  const MonoTime deadline =
      env_.clock().Now() + Duration::Nanos(static_cast<int64_t>(
                               remaining_ns > INT64_MAX ? INT64_MAX : remaining_ns));
  std::span<const uint8_t> req(reinterpret_cast<const uint8_t*>(body.data()), body.size());
  if (auto it = sync_handlers_.find(method); it != sync_handlers_.end()) {
    Reply(from, call_id, it->second(from, req));
    return;
  }
  if (auto it = async_handlers_.find(method); it != async_handlers_.end()) {
    env_.Spawn(RunAsync(it->second, from, call_id, Bytes(req.begin(), req.end()), deadline));
    return;
  }
  Reply(from, call_id, UnimplementedError("no handler for method"));
}

Task<void> Rpc::RunAsync(AsyncHandler& handler, NodeId from, uint64_t call_id, Bytes request,
                         MonoTime deadline) {
  Result<Bytes> result = co_await handler(from, std::move(request), deadline);
  // A reply after the caller's deadline is useless to it; skip the send.
  if (env_.clock().Now() < deadline) Reply(from, call_id, result);
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
                              CancelToken token)
    : rpc_(rpc),
      to_(to),
      method_(method),
      request_(request.begin(), request.end()),
      timeout_(timeout),
      token_(std::move(token)) {}

Rpc::CallAwaiter::~CallAwaiter() {
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

void Rpc::CallAwaiter::await_suspend(std::coroutine_handle<> h) {
  handle_ = h;
  call_id_ = rpc_.next_call_id_++;
  rpc_.pending_.emplace(call_id_, this);
  Bytes payload;
  ByteWriter w(&payload);
  w.Varint(call_id_);
  w.U16(method_);
  w.Varint(static_cast<uint64_t>(timeout_.nanos()));
  w.Bytes(std::string_view(reinterpret_cast<const char*>(request_.data()), request_.size()));
  Status sent = rpc_.env_.transport().Send(to_, kRpcRequestType, kRpcSchemaVersion, payload);
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
