// NatsBroker's pieces shared by its publisher and consumer (see adapters/nats_broker.h).
#pragma once

#include <nats/nats.h>

#include <memory>
#include <string>
#include <string_view>

#include "faultline/adapters/nats_broker.h"
#include "faultline/core/status.h"
#include "faultline/outbox/broker.h"

namespace faultline::nats_internal {

inline constexpr char kMsgIdHeader[] = "Nats-Msg-Id";
inline constexpr char kKeyHeader[] = "Faultline-Key";

// A natsStatus as a faultline Status: unreachable / closed / refused -> kUnavailable, timeouts ->
// kDeadlineExceeded, bad arguments -> kInvalidArgument, not found -> kNotFound. The message is
// "nats: <what>: <libnats text>[ (JetStream error N)]" on one line.
Status FromNats(natsStatus s, std::string_view what,
                jsErrCode js_error = static_cast<jsErrCode>(0));

// One connection (no automatic reconnect: a broken one closes for good, the owner makes a new
// one) and its JetStream context. Closing destroys subscriptions' server interest but never
// unsubscribes them (an unsubscribed durable is deleted).
class Session {
 public:
  // `js_options` may be null (defaults, with Wait = request_timeout).
  static Result<std::unique_ptr<Session>> Connect(const NatsBrokerOptions& options,
                                                  jsOptions* js_options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  natsConnection* connection() const { return nc_; }
  jsCtx* js() const { return js_; }
  bool closed() const;

 private:
  Session() = default;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

// Creates the stream when absent; checks an existing one (subjects, duplicate window).
Status EnsureStream(jsCtx* js, const NatsBrokerOptions& options);

// %XX for bytes outside 0x21..0x7E and for '%'. Decode is its inverse; kDataLoss for a malformed
// escape.
void PercentEncode(std::string_view in, std::string& out);
Result<std::string> PercentDecode(std::string_view in);

// A NATS subject fragment: printable ASCII without spaces, no '*' or '>', no empty token (".."),
// at most `bytes_max`. `allow_empty` for prefixes. kInvalidArgument naming `what`.
Status CheckSubjectPart(std::string_view part, std::string_view what, size_t bytes_max,
                        bool allow_empty);
// [A-Za-z0-9_-], 1..64 bytes.
Status CheckName(std::string_view name, std::string_view what);

// The message against the contract's and NATS's limits (nothing is sent when it fails).
Status ValidateNatsMessage(const outbox::Message& message, const NatsBrokerOptions& options);

Result<std::unique_ptr<outbox::Publisher>> NewPublisher(const NatsBrokerOptions& options);
Result<std::unique_ptr<outbox::Consumer>> NewConsumer(const NatsBrokerOptions& options,
                                                      std::string_view durable,
                                                      std::string_view subject_prefix);

}  // namespace faultline::nats_internal
