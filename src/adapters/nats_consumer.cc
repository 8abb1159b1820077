// NatsBroker's consumer: a durable JetStream pull consumer with explicit acks (see
// adapters/nats_broker.h).
#include <nats/nats.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "src/adapters/nats_internal.h"

namespace faultline::nats_internal {
namespace {

class NatsConsumer final : public outbox::Consumer {
 public:
  NatsConsumer(const NatsBrokerOptions& options, std::string_view durable,
               std::string_view subject_prefix)
      : options_(options), durable_(durable), prefix_(subject_prefix) {
    // The server filters on the token-aligned part of the prefix; the rest is checked here.
    const size_t dot = prefix_.rfind('.');
    filter_ = options_.subject_namespace +
              (dot == std::string::npos ? std::string() : prefix_.substr(0, dot + 1)) + ">";
  }
  ~NatsConsumer() override { Drop(); }

  Result<std::vector<outbox::Delivery>> Fetch(size_t max, Duration wait) override;
  Status Ack(const outbox::Delivery& delivery) override;
  Status Nak(const outbox::Delivery& delivery) override;

  Status Subscribe();

 private:
  // Takes `msg` (held for Ack/Nak, or settled and destroyed when filtered out). True when a
  // delivery was appended.
  Result<bool> Convert(natsMsg* msg, std::vector<outbox::Delivery>& out);
  void Hold(uint64_t stream_seq, natsMsg* msg);
  Result<natsMsg*> Held(const outbox::Delivery& delivery);
  void Settled(uint64_t stream_seq);
  Status Failed(natsStatus s, std::string_view what, jsErrCode js_error);
  void Drop();

  const NatsBrokerOptions options_;
  const std::string durable_;
  const std::string prefix_;
  std::string filter_;
  std::unique_ptr<Session> session_;
  natsSubscription* sub_ = nullptr;
  std::map<uint64_t, natsMsg*> held_;  // stream sequence -> latest delivery, unsettled
};

Status NatsConsumer::Subscribe() {
  if (sub_ != nullptr && !session_->closed()) return Status::Ok();
  Drop();
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Connect(options_, nullptr));
  FL_RETURN_IF_ERROR(EnsureStream(session->js(), options_));
  jsSubOptions sub_options;
  jsSubOptions_Init(&sub_options);
  sub_options.Stream = options_.stream.c_str();
  sub_options.Config.Durable = durable_.c_str();
  sub_options.Config.AckPolicy = js_AckExplicit;
  sub_options.Config.AckWait = options_.ack_wait.nanos();
  sub_options.Config.MaxAckPending = options_.consumer_ack_pending_max;
  sub_options.Config.DeliverPolicy = js_DeliverAll;
  sub_options.Config.FilterSubject = filter_.c_str();
  jsErrCode js_error = static_cast<jsErrCode>(0);
  const natsStatus s = js_PullSubscribe(&sub_, session->js(), filter_.c_str(), durable_.c_str(),
                                        nullptr, &sub_options, &js_error);
  if (s != NATS_OK) {
    sub_ = nullptr;
    return FromNats(s, "pull subscribe " + durable_ + " on " + filter_, js_error);
  }
  session_ = std::move(session);
  return Status::Ok();
}

// Closing the connection first marks the subscription closed, so destroying it cannot
// unsubscribe it (which would delete the durable consumer on the server).
void NatsConsumer::Drop() {
  for (auto& [seq, msg] : held_) natsMsg_Destroy(msg);
  held_.clear();
  if (session_ != nullptr) natsConnection_Close(session_->connection());
  if (sub_ != nullptr) natsSubscription_Destroy(sub_);
  sub_ = nullptr;
  session_.reset();
}

Status NatsConsumer::Failed(natsStatus s, std::string_view what, jsErrCode js_error) {
  Status status = FromNats(s, what, js_error);
  if (session_ != nullptr && session_->closed()) {
    Drop();
    if (status.code() != StatusCode::kUnavailable) {
      return UnavailableError(std::string(status.message()));
    }
  }
  return status;
}

Result<std::vector<outbox::Delivery>> NatsConsumer::Fetch(size_t max, Duration wait) {
  if (max == 0) return InvalidArgumentError("Fetch max must be >= 1");
  max = std::min(max, options_.fetch_max);
  FL_RETURN_IF_ERROR(Subscribe());
  natsMsgList list{};
  jsErrCode js_error = static_cast<jsErrCode>(0);
  const int64_t timeout_ms = std::max<int64_t>(1, wait.millis());
  const natsStatus s =
      natsSubscription_Fetch(&list, sub_, static_cast<int>(max), timeout_ms, &js_error);
  std::vector<outbox::Delivery> deliveries;
  if (s == NATS_TIMEOUT) {
    if (session_->closed()) {
      Drop();
      return UnavailableError("nats: connection to " + options_.url + " lost during Fetch");
    }
    return deliveries;
  }
  if (s != NATS_OK) return Failed(s, "fetch from " + durable_, js_error);
  deliveries.reserve(static_cast<size_t>(list.Count));
  Status status;
  for (int i = 0; i < list.Count; ++i) {
    natsMsg* msg = list.Msgs[i];
    list.Msgs[i] = nullptr;  // Convert takes it
    if (status.ok()) {
      Result<bool> converted = Convert(msg, deliveries);
      if (!converted.ok()) status = converted.status();
    } else {
      natsMsg_Destroy(msg);  // redelivered after ack_wait
    }
  }
  natsMsgList_Destroy(&list);
  if (!status.ok()) return status;
  return deliveries;
}

Result<bool> NatsConsumer::Convert(natsMsg* msg, std::vector<outbox::Delivery>& out) {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
    natsMsg_Destroy(msg);
    return DataLossError("nats: a delivery without JetStream metadata");
  }
  outbox::Delivery delivery;
  delivery.stream_seq = meta->Sequence.Stream;
  delivery.delivery = static_cast<uint32_t>(std::max<uint64_t>(1, meta->NumDelivered));
  jsMsgMetaData_Destroy(meta);
  std::string_view subject = natsMsg_GetSubject(msg);
  if (subject.substr(0, options_.subject_namespace.size()) == options_.subject_namespace) {
    subject.remove_prefix(options_.subject_namespace.size());
  }
  if (subject.substr(0, prefix_.size()) != prefix_) {
    // Outside this consumer's prefix: settle it for this consumer only.
    natsMsg_Ack(msg, nullptr);
    natsMsg_Destroy(msg);
    return false;
  }
  delivery.message.subject = std::string(subject);
  const char* value = nullptr;
  if (natsMsgHeader_Get(msg, kMsgIdHeader, &value) == NATS_OK && value != nullptr) {
    Result<std::string> id = PercentDecode(value);
    if (!id.ok()) {
      natsMsg_Destroy(msg);
      return id.status();
    }
    delivery.message.id = std::move(id).value();
  } else {
    delivery.message.id = "js:" + std::to_string(delivery.stream_seq);
  }
  value = nullptr;
  if (natsMsgHeader_Get(msg, kKeyHeader, &value) == NATS_OK && value != nullptr) {
    Result<std::string> key = PercentDecode(value);
    if (!key.ok()) {
      natsMsg_Destroy(msg);
      return key.status();
    }
    delivery.message.key = std::move(key).value();
  }
  const char* data = natsMsg_GetData(msg);
  delivery.message.payload.assign(data == nullptr ? "" : data,
                                  static_cast<size_t>(natsMsg_GetDataLength(msg)));
  Hold(delivery.stream_seq, msg);
  out.push_back(std::move(delivery));
  return true;
}

void NatsConsumer::Hold(uint64_t stream_seq, natsMsg* msg) {
  auto [it, inserted] = held_.try_emplace(stream_seq, msg);
  if (!inserted) {
    natsMsg_Destroy(it->second);  // an earlier delivery of the same message
    it->second = msg;
  }
  while (held_.size() > options_.consumer_held_max) {
    natsMsg_Destroy(held_.begin()->second);  // its Ack now fails; it is redelivered
    held_.erase(held_.begin());
  }
}

Result<natsMsg*> NatsConsumer::Held(const outbox::Delivery& delivery) {
  const auto it = held_.find(delivery.stream_seq);
  if (it == held_.end() || sub_ == nullptr) {
    return FailedPreconditionError(
        "nats: delivery of stream sequence " + std::to_string(delivery.stream_seq) +
        " is not held by this consumer (settled already, or fetched on an earlier connection); "
        "it is redelivered after ack_wait");
  }
  return it->second;
}

void NatsConsumer::Settled(uint64_t stream_seq) {
  const auto it = held_.find(stream_seq);
  FL_ASSERT(it != held_.end());
  natsMsg_Destroy(it->second);
  held_.erase(it);
}

Status NatsConsumer::Ack(const outbox::Delivery& delivery) {
  FL_ASSIGN_OR_RETURN(natsMsg* const msg, Held(delivery));
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = options_.request_timeout.millis();
  jsErrCode js_error = static_cast<jsErrCode>(0);
  const natsStatus s = natsMsg_AckSync(msg, &js_options, &js_error);
  if (s != NATS_OK) return Failed(s, "ack", js_error);
  Settled(delivery.stream_seq);
  return Status::Ok();
}

Status NatsConsumer::Nak(const outbox::Delivery& delivery) {
  FL_ASSIGN_OR_RETURN(natsMsg* const msg, Held(delivery));
  const natsStatus s = natsMsg_Nak(msg, nullptr);
  if (s != NATS_OK) return Failed(s, "nak", static_cast<jsErrCode>(0));
  Settled(delivery.stream_seq);
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<outbox::Consumer>> NewConsumer(const NatsBrokerOptions& options,
                                                      std::string_view durable,
                                                      std::string_view subject_prefix) {
  auto consumer = std::make_unique<NatsConsumer>(options, durable, subject_prefix);
  FL_RETURN_IF_ERROR(consumer->Subscribe());
  return std::unique_ptr<outbox::Consumer>(std::move(consumer));
}

}  // namespace faultline::nats_internal
