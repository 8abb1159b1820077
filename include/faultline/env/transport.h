// File: faultline/env/transport.h
//
// The network seam: datagram-style, unreliable, unordered delivery of framed messages between
// NodeIds. A send may be lost, delayed, duplicated or reordered; nothing is reported back to the
// sender. Reliability (retries, acknowledgements, idempotency) is the protocol's job, which is the
// point of faultline.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "faultline/core/ids.h"
#include "faultline/env/frame.h"

namespace faultline {

// Called on the node's executor for every frame that arrives intact. `frame.payload` is valid only
// during the call.
using MessageHandler = std::function<void(NodeId from, const FrameView& frame)>;

class Transport {
 public:
  virtual ~Transport() = default;

  // Sends one message. Fire-and-forget: returns an error only for local misuse (unknown
  // destination, payload above the frame limit), never for loss in the network.
  virtual Status Send(NodeId to, uint16_t type, uint16_t schema_version,
                      std::span<const uint8_t> payload) = 0;

  // Installs the handler for arriving messages, replacing any previous one.
  virtual void SetHandler(MessageHandler handler) = 0;
};

}  // namespace faultline
