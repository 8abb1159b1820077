// NatsBroker's publisher: async JetStream publishes with a bounded ack window (see
// adapters/nats_broker.h).
//
// Adapter code: reads the real clock (steady_clock) for Publish's ack deadline.
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

#include "src/adapters/nats_internal.h"

namespace faultline::nats_internal {
namespace {

// Refusals and timeouts reported by libnats for individual async publishes, from its threads.
struct AckErrors {
  std::atomic<uint64_t> count{0};
  std::mutex mu;
  std::string first;  // guarded by mu

  void Reset() {
    std::lock_guard<std::mutex> lock(mu);
    count.store(0);
    first.clear();
  }
};

void OnAckError(jsCtx* /*js*/, jsPubAckErr* pae, void* closure) {
  auto* errors = static_cast<AckErrors*>(closure);
  std::lock_guard<std::mutex> lock(errors->mu);
  if (errors->count.fetch_add(1) == 0) {
    errors->first = std::string(natsStatus_GetText(pae->Err));
    if (pae->ErrText != nullptr) errors->first.append(": ").append(pae->ErrText);
    if (pae->ErrCode != 0) {
      errors->first += " (JetStream error " + std::to_string(pae->ErrCode) + ")";
    }
  }
}

// The ack callbacks run on libnats' delivery thread for the connection's reply subscription, and
// one that has started may still be running after Publish returned (AwaitAcks stops at the first
// refusal) and even after the connection was closed (closing stops new callbacks, not the current
// one). So the AckErrors a connection's callbacks write to belongs to that connection, is reset
// only when no callback can be running, and is freed only then; see Settle().
class NatsPublisher final : public outbox::Publisher {
 public:
  explicit NatsPublisher(const NatsBrokerOptions& options) : options_(options) {}
  ~NatsPublisher() override { Drop(); }

  Status Publish(std::span<const outbox::Message> batch) override;

  Status Connect();

 private:
  Status SendAll(std::span<const outbox::Message> batch);
  Status AwaitAcks(size_t batch_size);
  void Abandon();
  bool Settle();
  void Drop();

  const NatsBrokerOptions options_;
  std::unique_ptr<Session> session_;
  // The closure of session_'s ack callbacks. A callback may still run while settled_ is false.
  std::unique_ptr<AckErrors> errors_;
  bool settled_ = true;
  std::string subject_, id_, key_;  // reused encode buffers
};

// Closes the connection first: libnats joins its read loop and stops the reply subscription's
// delivery, so nothing new reaches a callback; then the context and the connection go. The
// callbacks' AckErrors is freed only if no callback can still be running (Settle() proved it);
// otherwise it is left allocated, a few bytes, rather than freed under a running callback.
void NatsPublisher::Drop() {
  if (session_ != nullptr) natsConnection_Close(session_->connection());
  session_.reset();
  if (!settled_) (void)errors_.release();
  errors_.reset();
  settled_ = true;
}

// Waits until every ack callback that has started has returned: after the pending acks were
// taken back (Abandon), the context's outstanding count is the number of replies whose handling
// began, and libnats lowers it only after the callback returned. False if that takes over a
// second (the connection is then dropped by the caller).
bool NatsPublisher::Settle() {
  for (int slice = 0; slice < 50; ++slice) {
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = 20;
    if (js_PublishAsyncComplete(session_->js(), &wait) == NATS_OK) return true;
  }
  return false;
}

Status NatsPublisher::Connect() {
  if (session_ != nullptr && !session_->closed()) return Status::Ok();
  Drop();
  auto errors = std::make_unique<AckErrors>();
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.PublishAsync.MaxPending = options_.publish_pending_max;
  js_options.PublishAsync.ErrHandler = &OnAckError;
  js_options.PublishAsync.ErrHandlerClosure = errors.get();
  js_options.PublishAsync.StallWait = options_.publish_ack_timeout.millis();
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Connect(options_, &js_options));
  FL_RETURN_IF_ERROR(EnsureStream(session->js(), options_));
  session_ = std::move(session);
  errors_ = std::move(errors);
  settled_ = true;
  return Status::Ok();
}

Status NatsPublisher::Publish(std::span<const outbox::Message> batch) {
  for (const outbox::Message& message : batch) {
    FL_RETURN_IF_ERROR(ValidateNatsMessage(message, options_));
  }
  if (batch.empty()) return Status::Ok();
  FL_RETURN_IF_ERROR(Connect());
  errors_->Reset();  // no callback is running: settled_ holds (Abandon drops a session otherwise)
  settled_ = false;
  Status status = SendAll(batch);
  if (status.ok()) status = AwaitAcks(batch.size());
  if (status.ok()) {
    settled_ = true;  // every ack handled: no callback can be running
  } else {
    Abandon();
  }
  return status;
}

Status NatsPublisher::SendAll(std::span<const outbox::Message> batch) {
  for (const outbox::Message& message : batch) {
    subject_.assign(options_.subject_namespace).append(message.subject);
    PercentEncode(message.id, id_);
    PercentEncode(message.key, key_);
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, subject_.c_str(), nullptr, message.payload.data(),
                                  static_cast<int>(message.payload.size()));
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, kMsgIdHeader, id_.c_str());
    if (s == NATS_OK && !key_.empty()) s = natsMsgHeader_Set(msg, kKeyHeader, key_.c_str());
    // On success libnats owns the message and clears `msg`; Destroy is then a no-op.
    if (s == NATS_OK) s = js_PublishMsgAsync(session_->js(), &msg, nullptr);
    natsMsg_Destroy(msg);
    if (s != NATS_OK) {
      if (s == NATS_TIMEOUT) {
        return DeadlineExceededError("nats: " + std::to_string(options_.publish_pending_max) +
                                     " publish acks outstanding for longer than " +
                                     std::to_string(options_.publish_ack_timeout.millis()) + " ms");
      }
      return FromNats(s, "publish to " + subject_);
    }
  }
  return Status::Ok();
}

// Waits in short slices so that a connection that breaks is reported at once, not after the
// whole ack timeout.
Status NatsPublisher::AwaitAcks(size_t batch_size) {
  constexpr int64_t kSliceMs = 20;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::nanoseconds(options_.publish_ack_timeout.nanos());
  for (;;) {
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = kSliceMs;
    const natsStatus s = js_PublishAsyncComplete(session_->js(), &wait);
    if (s == NATS_OK) break;
    if (s != NATS_TIMEOUT) return FromNats(s, "waiting for publish acks");
    if (session_->closed()) {
      return UnavailableError("nats: connection to " + options_.url +
                              " lost before every publish of the batch was acked");
    }
    if (errors_->count.load() > 0) break;  // refused already: no need to wait for the rest
    if (std::chrono::steady_clock::now() >= deadline) {
      return DeadlineExceededError("nats: acks for a batch of " + std::to_string(batch_size) +
                                   " not all received within " +
                                   std::to_string(options_.publish_ack_timeout.millis()) + " ms");
    }
  }
  if (errors_->count.load() > 0) {
    std::lock_guard<std::mutex> lock(errors_->mu);
    return UnavailableError("nats: " + std::to_string(errors_->count.load()) + " of " +
                            std::to_string(batch_size) + " publishes refused: " + errors_->first);
  }
  return Status::Ok();
}

// After a failure: forget the acks still outstanding (the caller republishes the batch), wait for
// the callbacks already running, and drop a connection that broke or whose callbacks would not
// settle.
void NatsPublisher::Abandon() {
  if (session_ == nullptr) return;
  natsMsgList pending{};
  if (js_PublishAsyncGetPendingList(&pending, session_->js()) == NATS_OK) {
    natsMsgList_Destroy(&pending);
  }
  settled_ = Settle();
  if (!settled_ || session_->closed()) Drop();
}

}  // namespace

Result<std::unique_ptr<outbox::Publisher>> NewPublisher(const NatsBrokerOptions& options) {
  auto publisher = std::make_unique<NatsPublisher>(options);
  FL_RETURN_IF_ERROR(publisher->Connect());
  return std::unique_ptr<outbox::Publisher>(std::move(publisher));
}

}  // namespace faultline::nats_internal
