#include "faultline/adapters/nats_broker.h"

#include <nats/nats.h>

#include <charconv>
#include <string>
#include <vector>

#include "faultline/core/options.h"
#include "src/adapters/nats_internal.h"

namespace faultline {
namespace nats_internal {
namespace {

StatusCode CodeOf(natsStatus s) {
  switch (s) {
    case NATS_TIMEOUT:
      return StatusCode::kDeadlineExceeded;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_SUBSCRIPTION:
    case NATS_MAX_PAYLOAD:
      return StatusCode::kInvalidArgument;
    case NATS_NOT_FOUND:
      return StatusCode::kNotFound;
    default:
      // Closed, disconnected, no server, no responders (no stream for the subject), I/O errors,
      // JetStream refusals: the broker cannot take it now.
      return StatusCode::kUnavailable;
  }
}

std::string OneLine(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

}  // namespace

Status FromNats(natsStatus s, std::string_view what, jsErrCode js_error) {
  FL_ASSERT(s != NATS_OK);
  std::string message = "nats: " + std::string(what) + ": " + natsStatus_GetText(s);
  natsStatus last = NATS_OK;
  const char* raw = nats_GetLastError(&last);
  std::string_view detail = raw == nullptr ? "" : raw;
  // libnats prefixes its detail with "(file.c:line): ".
  if (const size_t pos = detail.find("): ");
      !detail.empty() && detail[0] == '(' && pos != std::string_view::npos) {
    detail.remove_prefix(pos + 3);
  }
  if (last == s && !detail.empty() && message.find(detail) == std::string::npos) {
    message.append(" (").append(detail).append(")");
  }
  if (js_error != 0) message += " (JetStream error " + std::to_string(js_error) + ")";
  return Status(CodeOf(s), OneLine(std::move(message)));
}

Result<std::unique_ptr<Session>> Session::Connect(const NatsBrokerOptions& options,
                                                  jsOptions* js_options) {
  std::unique_ptr<Session> session(new Session());
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, options.url.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, options.connect_timeout.millis());
  // No reconnect behind the caller's back: a broken connection closes, the call that meets it
  // fails, and the next call connects afresh (see the header: order and Status guarantees).
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts, false);
  if (s == NATS_OK) s = natsOptions_SetName(opts, "faultline");
  if (s == NATS_OK) s = natsConnection_Connect(&session->nc_, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) return FromNats(s, "connect to " + options.url);
  jsOptions defaults;
  if (js_options == nullptr) {
    jsOptions_Init(&defaults);
    js_options = &defaults;
  }
  js_options->Wait = options.request_timeout.millis();
  s = natsConnection_JetStream(&session->js_, session->nc_, js_options);
  if (s != NATS_OK) return FromNats(s, "JetStream context");
  return session;
}

// The connection is closed before the JetStream context is destroyed: closing joins libnats' read
// loop, so no inbound message is being handed to a subscription (the context's reply
// subscription among them) while that subscription is destroyed. libnats 3.4 does not retain a
// subscription across that hand-over (nats.c #637, fixed in 3.6.1).
Session::~Session() {
  if (nc_ != nullptr) natsConnection_Close(nc_);
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (nc_ != nullptr) natsConnection_Destroy(nc_);
}

bool Session::closed() const {
  return nc_ == nullptr || natsConnection_Status(nc_) != NATS_CONN_STATUS_CONNECTED;
}

namespace {

Status CheckStreamConfig(const jsStreamInfo* info, const NatsBrokerOptions& options,
                         const std::string& subjects) {
  const jsStreamConfig* cfg = info->Config;
  bool has_subjects = false;
  for (int i = 0; cfg != nullptr && i < cfg->SubjectsLen; ++i) {
    if (subjects == cfg->Subjects[i]) has_subjects = true;
  }
  if (!has_subjects) {
    return FailedPreconditionError("nats: stream " + options.stream + " exists without subjects " +
                                   subjects);
  }
  if (cfg->Duplicates != options.duplicate_window.nanos()) {
    return FailedPreconditionError(
        "nats: stream " + options.stream + " exists with a duplicate window of " +
        std::to_string(cfg->Duplicates / 1000000) + " ms, not the " +
        std::to_string(options.duplicate_window.millis()) + " ms asked for");
  }
  return Status::Ok();
}

}  // namespace

Status EnsureStream(jsCtx* js, const NatsBrokerOptions& options) {
  const std::string subjects = options.subject_namespace + ">";
  for (int attempt = 0; attempt < 2; ++attempt) {
    jsStreamInfo* info = nullptr;
    jsErrCode js_error = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&info, js, options.stream.c_str(), nullptr, &js_error);
    if (s == NATS_OK) {
      Status checked = CheckStreamConfig(info, options, subjects);
      jsStreamInfo_Destroy(info);
      return checked;
    }
    if (s != NATS_NOT_FOUND) return FromNats(s, "stream info " + options.stream, js_error);
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subject_list[1] = {subjects.c_str()};
    cfg.Name = options.stream.c_str();
    cfg.Subjects = subject_list;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.Duplicates = options.duplicate_window.nanos();
    s = js_AddStream(&info, js, &cfg, nullptr, &js_error);
    if (s == NATS_OK) {
      jsStreamInfo_Destroy(info);
      return Status::Ok();
    }
    // Someone else created it in between: look again (once) and check what they made.
    if (js_error != JSStreamNameExistErr) {
      return FromNats(s, "create stream " + options.stream, js_error);
    }
  }
  return UnavailableError("nats: stream " + options.stream + " neither found nor creatable");
}

void PercentEncode(std::string_view in, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out.clear();
  for (const char c : in) {
    const auto b = static_cast<unsigned char>(c);
    if (b > 0x20 && b < 0x7F && b != '%') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xF]);
    }
  }
}

Result<std::string> PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    unsigned value = 0;
    if (i + 2 >= in.size()) {
      return DataLossError("nats: truncated %-escape in a header");
    }
    const auto [ptr, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, value, 16);
    if (ec != std::errc() || ptr != in.data() + i + 3) {
      return DataLossError("nats: malformed %-escape in a header");
    }
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

Status CheckSubjectPart(std::string_view part, std::string_view what, size_t bytes_max,
                        bool allow_empty) {
  if (part.empty()) {
    if (allow_empty) return Status::Ok();
    return InvalidArgumentError(std::string(what) + " is empty");
  }
  if (part.size() > bytes_max) {
    return InvalidArgumentError(std::string(what) + " is " + std::to_string(part.size()) +
                                " bytes, over the limit of " + std::to_string(bytes_max));
  }
  for (size_t i = 0; i < part.size(); ++i) {
    const auto b = static_cast<unsigned char>(part[i]);
    if (b <= 0x20 || b >= 0x7F || b == '*' || b == '>') {
      return InvalidArgumentError(std::string(what) +
                                  " has a byte NATS subjects cannot carry (space, control, "
                                  "non-ASCII, '*' or '>') at offset " +
                                  std::to_string(i));
    }
    if (b == '.' && (i == 0 || part[i - 1] == '.')) {
      return InvalidArgumentError(std::string(what) + " has an empty subject token");
    }
  }
  return Status::Ok();
}

Status CheckName(std::string_view name, std::string_view what) {
  if (name.empty() || name.size() > 64) {
    return InvalidArgumentError(std::string(what) + " must be 1..64 bytes");
  }
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return InvalidArgumentError(std::string(what) + " may hold only [A-Za-z0-9_-]");
  }
  return Status::Ok();
}

Status ValidateNatsMessage(const outbox::Message& message, const NatsBrokerOptions& options) {
  if (message.id.empty() || message.id.size() > options.id_bytes_max) {
    return InvalidArgumentError("message id must be 1.." + std::to_string(options.id_bytes_max) +
                                " bytes, is " + std::to_string(message.id.size()));
  }
  if (message.key.size() > options.key_bytes_max) {
    return InvalidArgumentError("message key is over " + std::to_string(options.key_bytes_max) +
                                " bytes");
  }
  FL_RETURN_IF_ERROR(CheckSubjectPart(message.subject, "message subject", options.subject_bytes_max,
                                      /*allow_empty=*/false));
  if (message.subject.back() == '.') {
    return InvalidArgumentError("message subject ends with '.'");
  }
  if (message.payload.size() > options.payload_bytes_max) {
    return InvalidArgumentError("message payload is " + std::to_string(message.payload.size()) +
                                " bytes, over the limit of " +
                                std::to_string(options.payload_bytes_max));
  }
  return Status::Ok();
}

}  // namespace nats_internal

Status NatsBrokerOptions::Validate() const {
  FL_CHECK_OPTION(!url.empty(), "url is empty");
  FL_RETURN_IF_ERROR(nats_internal::CheckName(stream, "stream"));
  FL_RETURN_IF_ERROR(nats_internal::CheckSubjectPart(subject_namespace, "subject_namespace", 200,
                                                     /*allow_empty=*/false));
  FL_CHECK_OPTION(subject_namespace.back() == '.', "subject_namespace must end with '.'");
  FL_CHECK_OPTION(
      duplicate_window >= Duration::Seconds(1) && duplicate_window <= Duration::Seconds(24 * 3600),
      "duplicate_window must be 1 s .. 1 day");
  FL_CHECK_OPTION(ack_wait >= Duration::Millis(100), "ack_wait must be >= 100 ms");
  FL_CHECK_OPTION(consumer_ack_pending_max >= 1, "consumer_ack_pending_max must be >= 1");
  FL_CHECK_OPTION(publish_pending_max >= 1 && publish_pending_max <= 1000000,
                  "publish_pending_max must be 1..1000000");
  FL_CHECK_OPTION(publish_ack_timeout >= Duration::Millis(10),
                  "publish_ack_timeout must be >= 10 ms");
  FL_CHECK_OPTION(connect_timeout >= Duration::Millis(10), "connect_timeout must be >= 10 ms");
  FL_CHECK_OPTION(request_timeout >= Duration::Millis(10), "request_timeout must be >= 10 ms");
  FL_CHECK_OPTION(id_bytes_max >= 1 && id_bytes_max <= 255, "id_bytes_max must be 1..255");
  FL_CHECK_OPTION(key_bytes_max <= 1024, "key_bytes_max must be <= 1024");
  FL_CHECK_OPTION(subject_bytes_max >= 1 && subject_bytes_max <= 1024,
                  "subject_bytes_max must be 1..1024");
  FL_CHECK_OPTION(payload_bytes_max <= 1000 * 1000, "payload_bytes_max must be <= 1000000");
  FL_CHECK_OPTION(fetch_max >= 1 && fetch_max <= 100000, "fetch_max must be 1..100000");
  FL_CHECK_OPTION(consumer_held_max >= fetch_max, "consumer_held_max must be >= fetch_max");
  return Status::Ok();
}

Result<NatsBrokerOptions> ParseNatsUri(std::string_view uri) {
  constexpr std::string_view kScheme = "nats://";
  if (uri.substr(0, kScheme.size()) != kScheme || uri.size() == kScheme.size()) {
    return InvalidArgumentError("broker URI must be nats://HOST:PORT[?stream=NAME&namespace=P.]");
  }
  NatsBrokerOptions options;
  const size_t query = uri.find('?');
  options.url = std::string(uri.substr(0, query));
  std::string_view rest = query == std::string_view::npos ? "" : uri.substr(query + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view param = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? "" : rest.substr(amp + 1);
    const size_t eq = param.find('=');
    const std::string_view name = param.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : param.substr(eq + 1);
    if (name == "stream") {
      options.stream = std::string(value);
    } else if (name == "namespace") {
      options.subject_namespace = std::string(value);
    } else {
      return InvalidArgumentError("unknown nats URI parameter '" + std::string(name) +
                                  "' (known: stream, namespace)");
    }
  }
  FL_RETURN_IF_ERROR(options.Validate());
  return options;
}

Result<std::unique_ptr<outbox::Broker>> OpenNatsBroker(std::string_view uri) {
  FL_ASSIGN_OR_RETURN(NatsBrokerOptions options, ParseNatsUri(uri));
  FL_ASSIGN_OR_RETURN(std::unique_ptr<NatsBroker> broker, NatsBroker::Create(std::move(options)));
  return std::unique_ptr<outbox::Broker>(std::move(broker));
}

Result<std::unique_ptr<NatsBroker>> NatsBroker::Create(NatsBrokerOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  FL_ASSIGN_OR_RETURN(std::unique_ptr<nats_internal::Session> session,
                      nats_internal::Session::Connect(options, nullptr));
  FL_RETURN_IF_ERROR(nats_internal::EnsureStream(session->js(), options));
  return std::unique_ptr<NatsBroker>(new NatsBroker(std::move(options)));
}

Result<std::unique_ptr<outbox::Publisher>> NatsBroker::NewPublisher() {
  return nats_internal::NewPublisher(options_);
}

Result<std::unique_ptr<outbox::Consumer>> NatsBroker::NewConsumer(std::string_view durable,
                                                                  std::string_view subject_prefix) {
  FL_RETURN_IF_ERROR(nats_internal::CheckName(durable, "durable consumer name"));
  FL_RETURN_IF_ERROR(nats_internal::CheckSubjectPart(subject_prefix, "subject prefix",
                                                     options_.subject_bytes_max,
                                                     /*allow_empty=*/true));
  return nats_internal::NewConsumer(options_, durable, subject_prefix);
}

}  // namespace faultline
