// File: faultline/outbox/open_broker.h
//
// OpenBroker: a Broker from a URI, for tools (`faultline bench outbox --broker URI`) and services
// that take their broker from configuration.
//
//   sqlite:PATH[?synchronous=full|normal][&ack_wait_ms=N]   SqliteQueue on the file PATH
//   nats://HOST:PORT                                         NATS JetStream, when a factory is
//                                                            registered (RegisterBrokerScheme)
//
// Anything else, an empty PATH or an unknown parameter is kInvalidArgument with a one-line message.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/outbox/broker.h"

namespace faultline::outbox {

Result<std::unique_ptr<Broker>> OpenBroker(std::string_view uri);

// Makes OpenBroker hand URIs starting with `scheme` (e.g. "nats://") to `open`. Call at start-up,
// before any OpenBroker (not thread-safe against it). A scheme registered twice: the last wins.
using BrokerFactory = std::function<Result<std::unique_ptr<Broker>>(std::string_view uri)>;
void RegisterBrokerScheme(std::string_view scheme, BrokerFactory open);

}  // namespace faultline::outbox
