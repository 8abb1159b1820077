#include "faultline/outbox/broker.h"

#include <string>

namespace faultline::outbox {

Status ValidateMessage(const Message& message, size_t payload_bytes_max) {
  if (message.id.empty()) return InvalidArgumentError("message id must be non-empty");
  if (message.id.size() > 255) {
    return InvalidArgumentError("message id is " + std::to_string(message.id.size()) +
                                " bytes, over the limit of 255");
  }
  if (message.subject.empty()) {
    return InvalidArgumentError("message subject must be non-empty (id " + message.id + ")");
  }
  if (message.payload.size() > payload_bytes_max) {
    return InvalidArgumentError("message payload is " + std::to_string(message.payload.size()) +
                                " bytes, over the limit of " + std::to_string(payload_bytes_max) +
                                " (id " + message.id + ")");
  }
  return Status::Ok();
}

}  // namespace faultline::outbox
