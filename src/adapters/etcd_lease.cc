// EtcdLeaseService: options, the JSON round trip over the endpoints, and the LeaseService calls.
#include "faultline/adapters/etcd_lease.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "faultline/core/assert.h"
#include "faultline/core/options.h"
#include "faultline/runtime/real_env.h"
#include "src/adapters/etcd_http.h"

namespace faultline::adapters {

using etcd_internal::Base64Decode;
using etcd_internal::Base64Encode;
using etcd_internal::HttpAwait;
using etcd_internal::HttpCall;
using etcd_internal::HttpOutcome;
using Json = nlohmann::json;
using lease::LeaseGrant;
using lease::LeaseInfo;

namespace etcd_internal {
// One key as a range answer shows it.
struct KeyValue {
  NodeId holder;
  int64_t create_revision = 0;
  int64_t lease = 0;
};
}  // namespace etcd_internal
using etcd_internal::KeyValue;

class EtcdLeaseService::Worker : public etcd_internal::EtcdHttpWorker {
 public:
  using EtcdHttpWorker::EtcdHttpWorker;
};

// The pieces of the implementation that need the service's private state but not its header.
class EtcdLeaseServiceInternals {
 public:
  // One gRPC-gateway call: POST `path` with `body` to the endpoints, sticky endpoint first.
  // Ok: the answer's JSON object (a stream's first "result" unwrapped). An etcd error answer
  // ({"error"/"message", "code"}) is returned as a Status from its gRPC code, without trying
  // further endpoints; transport failures, 5xx/unavailable answers and malformed JSON move on to
  // the next endpoint, and kUnavailable names the last failure when all failed.
  static Task<Result<Json>> Call(EtcdLeaseService* self, std::string path, Json body);
  static Status ErrorFromAnswer(const Json& answer, const std::string& where, bool* retry);
  // Acquire by the node that holds the name: renews `own` (the key's lease, its value this node)
  // and answers a grant with the key's token. kAborted when the key went meanwhile.
  static Task<Result<lease::LeaseGrant>> Renew(EtcdLeaseService* self, std::string name,
                                               Duration ttl, etcd_internal::KeyValue own);
};

namespace {

constexpr int kGrpcNotFound = 5;

Result<int64_t> ParseInt(const Json& obj, const char* field, int64_t absent) {
  const auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return absent;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return v;
  }
  return InternalError(std::string("field ") + field + " is not an integer");
}

const Json* Object(const Json& obj, const char* field) {
  const auto it = obj.find(field);
  if (it == obj.end() || !it->is_object()) return nullptr;
  return &*it;
}

const Json* Array(const Json& obj, const char* field) {
  const auto it = obj.find(field);
  if (it == obj.end() || !it->is_array()) return nullptr;
  return &*it;
}

Status Malformed(const std::string& what) {
  return UnavailableError("etcd answered malformed JSON: " + what);
}

// The header revision of an answer; every etcd answer carries one.
Result<int64_t> HeaderRevision(const Json& answer) {
  const Json* header = Object(answer, "header");
  if (header == nullptr) return Malformed("no header");
  Result<int64_t> rev = ParseInt(*header, "revision", 0);
  if (!rev.ok() || *rev <= 0) return Malformed("no header.revision");
  return rev;
}

// The first kv of a range answer: nullopt-like `found = false` when kvs is absent or empty.
Status ParseKv(const Json& range, bool* found, KeyValue* kv) {
  *found = false;
  const auto it = range.find("kvs");
  if (it == range.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) return Malformed("kvs is not an array");
  if (it->empty()) return Status::Ok();
  const Json& first = (*it)[0];
  if (!first.is_object()) return Malformed("kvs[0] is not an object");
  Result<int64_t> create = ParseInt(first, "create_revision", 0);
  Result<int64_t> lease_id = ParseInt(first, "lease", 0);
  if (!create.ok() || !lease_id.ok() || *create <= 0) return Malformed("kvs[0] revisions");
  std::string value;
  const auto v = first.find("value");
  if (v != first.end() && (!v->is_string() || !Base64Decode(v->get_ref<const std::string&>(), &value))) {
    return Malformed("kvs[0].value is not base64");
  }
  uint32_t holder = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), holder);
  if (ec != std::errc() || end != value.data() + value.size() || value.empty()) {
    return Malformed("the key's value is not a node id");
  }
  *found = true;
  kv->holder = NodeId(holder);
  kv->create_revision = *create;
  kv->lease = *lease_id;
  return Status::Ok();
}

}  // namespace

Status EtcdLeaseOptions::Validate() const {
  FL_CHECK_OPTION(!endpoints.empty(), "endpoints must not be empty");
  FL_CHECK_OPTION(endpoints.size() <= EtcdLeaseLimits::kEndpointsMax,
                  "endpoints must hold at most 16 URLs");
  for (const std::string& e : endpoints) {
    FL_CHECK_OPTION(e.starts_with("http://"), "endpoints must be http:// URLs");
    FL_CHECK_OPTION(e.size() > 7 && e.size() <= EtcdLeaseLimits::kEndpointLengthMax,
                    "an endpoint must be 8..256 characters");
    FL_CHECK_OPTION(e.find('/', 7) == std::string::npos, "an endpoint must not have a path");
  }
  FL_CHECK_OPTION(request_timeout >= EtcdLeaseLimits::kTimeoutMin,
                  "request_timeout must be >= 1 ms");
  FL_CHECK_OPTION(request_timeout <= EtcdLeaseLimits::kTimeoutMax,
                  "request_timeout must be <= 60 s");
  FL_CHECK_OPTION(connect_timeout >= EtcdLeaseLimits::kTimeoutMin,
                  "connect_timeout must be >= 1 ms");
  FL_CHECK_OPTION(connect_timeout <= request_timeout, "connect_timeout must be <= request_timeout");
  FL_CHECK_OPTION(drift_ppm_max >= 0, "drift_ppm_max must be >= 0");
  FL_CHECK_OPTION(drift_ppm_max <= EtcdLeaseLimits::kDriftPpmMax,
                  "drift_ppm_max must be <= 100000");
  FL_CHECK_OPTION(margin >= Duration::Zero(), "margin must be >= 0");
  FL_CHECK_OPTION(margin <= EtcdLeaseLimits::kMarginMax, "margin must be <= 10 s");
  FL_CHECK_OPTION(key_prefix.size() <= EtcdLeaseLimits::kKeyPrefixLengthMax,
                  "key_prefix must be at most 256 bytes");
  return Status::Ok();
}

Result<std::unique_ptr<EtcdLeaseService>> EtcdLeaseService::Open(Env& env, NodeId self,
                                                                 EtcdLeaseOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  if (!options.post_to_loop) {
    auto* real = dynamic_cast<runtime::RealEnv*>(&env);
    if (real == nullptr) {
      return InvalidArgumentError(
          "post_to_loop must be set when env is not a runtime::RealEnv");
    }
    options.post_to_loop = [real](std::function<void()> fn) {
      real->PostFromAnyThread(std::move(fn));
    };
  }
  return std::unique_ptr<EtcdLeaseService>(new EtcdLeaseService(env, self, std::move(options)));
}

EtcdLeaseService::EtcdLeaseService(Env& env, NodeId self, EtcdLeaseOptions options)
    : env_(env),
      self_(self),
      options_(std::move(options)),
      worker_(std::make_unique<Worker>(options_.post_to_loop)) {}

EtcdLeaseService::~EtcdLeaseService() = default;

int64_t EtcdLeaseService::LeaseIdOf(const LeaseGrant& grant) const {
  const auto it = held_.find(grant.name);
  if (it == held_.end() || it->second.token != grant.token) return 0;
  return it->second.lease_id;
}

Status EtcdLeaseServiceInternals::ErrorFromAnswer(const Json& answer, const std::string& where,
                                                  bool* retry) {
  *retry = false;
  // The gateway's unary errors are flat ({"error", "message", "code"}); its stream errors nest
  // them ({"error": {"grpc_code", "message", ...}}).
  const Json* nested = Object(answer, "error");
  const Json& fields = nested != nullptr ? *nested : answer;
  std::string message = "etcd error";
  for (const char* field : {"message", "error"}) {
    const auto it = fields.find(field);
    if (it != fields.end() && it->is_string()) {
      message = it->get<std::string>();
      break;
    }
  }
  Result<int64_t> code = ParseInt(fields, nested != nullptr ? "grpc_code" : "code", 2);
  const int64_t c = code.ok() ? *code : 2;
  const std::string text = where + ": " + message;
  switch (c) {
    case kGrpcNotFound:
      return NotFoundError(text);
    case 3:
      return InvalidArgumentError(text);
    case 9:
      return FailedPreconditionError(text);
    case 4:
    case 14:
      *retry = true;
      return UnavailableError(text);
    default:
      *retry = true;
      return UnavailableError(text);
  }
}

Task<Result<Json>> EtcdLeaseServiceInternals::Call(EtcdLeaseService* self, std::string path,
                                                   Json body) {
  const std::string payload = body.dump();
  const size_t n = self->options_.endpoints.size();
  Status last = UnavailableError("no endpoint was tried");
  for (size_t k = 0; k < n; ++k) {
    const size_t index = (self->preferred_endpoint_ + k) % n;
    const std::string& endpoint = self->options_.endpoints[index];
    auto call = std::make_shared<HttpCall>();
    call->url = endpoint + path;
    call->body = payload;
    call->timeout = self->options_.request_timeout;
    call->connect_timeout = self->options_.connect_timeout;
    call->body_max = EtcdLeaseLimits::kReplyBytesMax;
    ++self->stats_.requests;
    HttpOutcome out = co_await HttpAwait(*self->worker_, call, CancelToken());
    const std::string where = endpoint + path;
    if (out.curl_code != 0) {
      ++self->stats_.endpoint_failures;
      last = UnavailableError(where + ": " + (out.too_large ? "answer too large" : out.curl_error));
      continue;
    }
    // A stream answer (lease/keepalive) is newline-delimited {"result": ...} objects: the first.
    std::string_view text = out.body;
    if (const size_t nl = text.find('\n'); nl != std::string_view::npos &&
                                           text.find_first_not_of(" \r\n\t", nl) != std::string_view::npos) {
      text = text.substr(0, nl);
    }
    Json answer = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (answer.is_discarded() || !answer.is_object()) {
      ++self->stats_.malformed_replies;
      ++self->stats_.endpoint_failures;
      last = Malformed(where + " (HTTP " + std::to_string(out.http_status) + "): " +
                       std::string(text.substr(0, 120)));
      continue;
    }
    if (const Json* result = Object(answer, "result"); result != nullptr) answer = *result;
    const bool is_error = out.http_status != 200 || (answer.contains("error") && !answer.contains("header"));
    if (is_error) {
      bool retry = false;
      Status status = ErrorFromAnswer(answer, where + " (HTTP " + std::to_string(out.http_status) + ")",
                                      &retry);
      if (!retry) {
        self->preferred_endpoint_ = index;
        co_return status;
      }
      ++self->stats_.endpoint_failures;
      last = std::move(status);
      continue;
    }
    self->preferred_endpoint_ = index;
    co_return answer;
  }
  co_return last;
}

namespace {

// JSON bodies are built outside the coroutines: GCC 12 rejects some nested initializer lists of
// string literals inside a coroutine body ("array used as initializer").
Json IdBody(const std::string& id) { return Json{{"ID", id}}; }
Json KeyBody(const std::string& key) { return Json{{"key", key}}; }
Json GrantBody(int64_t seconds) { return Json{{"TTL", std::to_string(seconds)}}; }
Json TxnBody(const std::string& key, const std::string& value, const std::string& id) {
  Json compare = {{"target", "CREATE"}, {"result", "EQUAL"}, {"key", key}, {"create_revision", "0"}};
  Json put = {{"key", key}, {"value", value}, {"lease", id}};
  Json success = {{"request_put", put}};
  Json failure = {{"request_range", KeyBody(key)}};
  Json txn = Json::object();
  txn["compare"] = Json::array({compare});
  txn["success"] = Json::array({success});
  txn["failure"] = Json::array({failure});
  return txn;
}
std::string WatchBody(const std::string& key, int64_t start_revision) {
  Json create = {{"key", key}, {"start_revision", std::to_string(start_revision)}};
  Json body = Json::object();
  body["create_request"] = create;
  return body.dump();
}

Status ValidateName(const std::string& name) {
  if (name.empty()) return InvalidArgumentError("lease name must not be empty");
  if (name.size() > EtcdLeaseLimits::kNameLengthMax) {
    return InvalidArgumentError("lease name must be at most 512 bytes");
  }
  return Status::Ok();
}

// Whole seconds, rounded up, at least 1: etcd's TTL must never be shorter than the requested one.
int64_t ServerTtlSeconds(Duration ttl) {
  const int64_t s = (ttl.nanos() + 999'999'999) / 1'000'000'000;
  return std::max<int64_t>(s, 1);
}

}  // namespace

Task<Result<LeaseGrant>> EtcdLeaseService::Acquire(std::string name, Duration ttl) {
  const Status valid = lease::ValidateTtl(ttl);
  if (!valid.ok()) co_return valid;
  const Status name_valid = ValidateName(name);
  if (!name_valid.ok()) co_return name_valid;
  const std::string key = Base64Encode(options_.key_prefix + name);
  const MonoTime sent_at = env_.clock().Now();
  Result<Json> granted = co_await EtcdLeaseServiceInternals::Call(
      this, "/v3/lease/grant", GrantBody(ServerTtlSeconds(ttl)));
  if (!granted.ok()) co_return granted.status();
  Result<int64_t> lease_id = ParseInt(*granted, "ID", 0);
  Result<int64_t> server_ttl = ParseInt(*granted, "TTL", 0);
  if (!lease_id.ok() || *lease_id == 0 || !server_ttl.ok()) {
    co_return Malformed("lease/grant without ID/TTL");
  }
  if (*server_ttl < ServerTtlSeconds(ttl)) {
    // etcd never shortens a requested TTL; an answer that does breaks the lower bound.
    co_return Malformed("lease/grant answered a TTL below the one requested");
  }
  const std::string id = std::to_string(*lease_id);
  const Json txn = TxnBody(key, Base64Encode(std::to_string(self_.value())), id);
  Result<Json> answer = co_await EtcdLeaseServiceInternals::Call(this, "/v3/kv/txn", txn);
  Status failed;
  std::optional<KeyValue> own;  // the key exists and is this node's
  if (answer.ok()) {
    Result<int64_t> revision = HeaderRevision(*answer);
    const auto succeeded = answer->find("succeeded");
    const bool won = succeeded != answer->end() && succeeded->is_boolean() && succeeded->get<bool>();
    if (!revision.ok()) {
      failed = revision.status();
    } else if (won) {
      LeaseGrant grant;
      grant.name = name;
      grant.holder = self_;
      grant.token = FencingToken(static_cast<uint64_t>(*revision));
      grant.ttl = ttl;
      grant.sent_at = sent_at;
      grant.valid_until =
          lease::LeaseValidUntil(sent_at, ttl, options_.drift_ppm_max, options_.margin);
      held_[name] = Held{*lease_id, grant.token};
      co_return grant;
    } else {
      // Lost the compare: name the holder from the failure branch's range.
      std::string holder = "another node";
      const Json* responses = Array(*answer, "responses");
      if (responses != nullptr && !responses->empty() && (*responses)[0].is_object()) {
        if (const Json* range = Object((*responses)[0], "response_range"); range != nullptr) {
          bool found = false;
          KeyValue kv;
          if (ParseKv(*range, &found, &kv).ok() && found) {
            holder = "node " + std::to_string(kv.holder.value()) + " (token " +
                     std::to_string(kv.create_revision) + ")";
            if (kv.holder == self_) own = kv;
          }
        }
      }
      failed = AlreadyExistsError("lease " + name + " is held by " + holder);
    }
  } else {
    failed = answer.status();
  }
  // The granted lease is not used (or the txn's outcome is unknown): revoke it, which also deletes
  // the key if an unanswered txn did write it. Best effort: otherwise it expires after its TTL.
  Result<Json> revoked =
      co_await EtcdLeaseServiceInternals::Call(this, "/v3/lease/revoke", IdBody(id));
  revoked.status().IgnoreError();
  if (own.has_value()) {
    // The name is this node's already (the contract's re-acquire by the holder): renew the lease
    // that owns the key and keep its token, as etcd's election recipe re-uses its own key.
    Result<LeaseGrant> renewed = co_await EtcdLeaseServiceInternals::Renew(this, name, ttl, *own);
    co_return renewed;
  }
  co_return failed;
}

Task<Result<LeaseGrant>> EtcdLeaseServiceInternals::Renew(EtcdLeaseService* self, std::string name,
                                                          Duration ttl, KeyValue own) {
  const std::string id = std::to_string(own.lease);
  const std::string lost = "lease " + name + ": this node's key (token " +
                           std::to_string(own.create_revision) + ") went while re-acquiring it";
  const MonoTime sent_at = self->env_.clock().Now();
  Result<Json> answer = co_await Call(self, "/v3/lease/keepalive", IdBody(id));
  if (!answer.ok()) {
    if (answer.status().code() == StatusCode::kNotFound) co_return AbortedError(lost);
    co_return answer.status();
  }
  Result<int64_t> ttl_s = ParseInt(*answer, "TTL", 0);
  if (!ttl_s.ok()) co_return Malformed("lease/keepalive TTL");
  if (*ttl_s <= 0) co_return AbortedError(lost);
  // The key's lease was granted for its own TTL: never promise more than etcd keeps.
  const Duration kept = std::min(ttl, Duration::Seconds(*ttl_s));
  Result<Json> range = co_await Call(self, "/v3/kv/range",
                                     KeyBody(Base64Encode(self->options_.key_prefix + name)));
  if (!range.ok()) co_return range.status();
  bool found = false;
  KeyValue kv;
  const Status parsed = ParseKv(*range, &found, &kv);
  if (!parsed.ok()) co_return parsed;
  if (!found || kv.create_revision != own.create_revision || kv.lease != own.lease ||
      kv.holder != self->self_) {
    co_return AbortedError(lost);
  }
  LeaseGrant grant;
  grant.name = name;
  grant.holder = self->self_;
  grant.token = FencingToken(static_cast<uint64_t>(own.create_revision));
  grant.ttl = kept;
  grant.sent_at = sent_at;
  grant.valid_until =
      lease::LeaseValidUntil(sent_at, kept, self->options_.drift_ppm_max, self->options_.margin);
  if (!grant.Valid(self->env_.clock().Now())) {
    co_return UnavailableError("lease " + name + ": the renewal answered after its validity");
  }
  self->held_[name] = EtcdLeaseService::Held{own.lease, grant.token};
  co_return grant;
}

Task<Result<LeaseGrant>> EtcdLeaseService::KeepAlive(LeaseGrant grant) {
  const auto it = held_.find(grant.name);
  if (it == held_.end() || it->second.token != grant.token) {
    co_return FailedPreconditionError("lease " + grant.name + " (token " +
                                      std::to_string(grant.token.value()) +
                                      ") is not held by this service");
  }
  const int64_t lease_id = it->second.lease_id;
  const std::string id = std::to_string(lease_id);
  const MonoTime sent_at = env_.clock().Now();
  Status lost;
  if (!grant.Valid(sent_at)) {
    lost = FailedPreconditionError("lease " + grant.name + ": validity passed before keep-alive");
  } else {
    Result<Json> answer =
        co_await EtcdLeaseServiceInternals::Call(this, "/v3/lease/keepalive", IdBody(id));
    if (!answer.ok()) {
      if (answer.status().code() != StatusCode::kNotFound) co_return answer.status();
      lost = FailedPreconditionError("lease " + grant.name + " is gone: " +
                                     std::string(answer.status().message()));
    } else {
      Result<int64_t> ttl_s = ParseInt(*answer, "TTL", 0);
      if (!ttl_s.ok()) co_return Malformed("lease/keepalive TTL");
      if (*ttl_s <= 0) {
        lost = FailedPreconditionError("lease " + grant.name + " expired in etcd (keep-alive without TTL)");
      } else if (!grant.Valid(env_.clock().Now())) {
        lost = FailedPreconditionError("lease " + grant.name + ": validity passed before the keep-alive reply");
      }
    }
  }
  if (lost.ok()) {
    // The lease lives; the key must still be the one the grant created.
    Result<Json> range = co_await EtcdLeaseServiceInternals::Call(
        this, "/v3/kv/range", KeyBody(Base64Encode(options_.key_prefix + grant.name)));
    if (!range.ok()) co_return range.status();
    bool found = false;
    KeyValue kv;
    const Status parsed = ParseKv(*range, &found, &kv);
    if (!parsed.ok()) co_return parsed;
    if (!found || kv.create_revision != static_cast<int64_t>(grant.token.value()) ||
        kv.lease != lease_id) {
      lost = FailedPreconditionError("lease " + grant.name + ": the key no longer carries token " +
                                     std::to_string(grant.token.value()));
    }
  }
  if (!lost.ok()) {
    // Lost for good: forget it and revoke (best effort) so the name frees at once.
    held_.erase(grant.name);
    Result<Json> revoked =
        co_await EtcdLeaseServiceInternals::Call(this, "/v3/lease/revoke", IdBody(id));
    revoked.status().IgnoreError();
    co_return lost;
  }
  grant.sent_at = sent_at;
  grant.valid_until =
      lease::LeaseValidUntil(sent_at, grant.ttl, options_.drift_ppm_max, options_.margin);
  co_return grant;
}

Task<Status> EtcdLeaseService::Revoke(LeaseGrant grant) {
  const auto it = held_.find(grant.name);
  if (it == held_.end() || it->second.token != grant.token) {
    co_return FailedPreconditionError("lease " + grant.name + " (token " +
                                      std::to_string(grant.token.value()) +
                                      ") is not held by this service");
  }
  const std::string id = std::to_string(it->second.lease_id);
  Result<Json> answer =
      co_await EtcdLeaseServiceInternals::Call(this, "/v3/lease/revoke", IdBody(id));
  if (!answer.ok() && answer.status().code() != StatusCode::kNotFound) co_return answer.status();
  const auto again = held_.find(grant.name);
  if (again != held_.end() && again->second.token == grant.token) held_.erase(again);
  co_return Status::Ok();
}

Task<Result<LeaseInfo>> EtcdLeaseService::Read(std::string name) {
  const Status name_valid = ValidateName(name);
  if (!name_valid.ok()) co_return name_valid;
  Result<Json> range = co_await EtcdLeaseServiceInternals::Call(
      this, "/v3/kv/range", KeyBody(Base64Encode(options_.key_prefix + name)));
  if (!range.ok()) co_return range.status();
  const Result<int64_t> revision = HeaderRevision(*range);
  if (!revision.ok()) co_return revision.status();
  bool found = false;
  KeyValue kv;
  const Status parsed = ParseKv(*range, &found, &kv);
  if (!parsed.ok()) co_return parsed;
  if (!found) co_return NotFoundError("lease " + name + " is free");
  co_return LeaseInfo{kv.holder, FencingToken(static_cast<uint64_t>(kv.create_revision))};
}

namespace {

enum class WatchEnd : uint8_t { kNone, kDeleted, kCompacted, kMalformed };

struct WatchState {
  WatchEnd end = WatchEnd::kNone;
  std::string detail;
};

// One line of a watch stream: false (stop) once it decides.
bool OnWatchLine(WatchState* state, std::string_view line) {
  const Json parsed = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  const Json* result = parsed.is_object() ? Object(parsed, "result") : nullptr;
  if (result == nullptr) {
    state->end = WatchEnd::kMalformed;
    state->detail = std::string(line.substr(0, 120));
    return false;
  }
  Result<int64_t> compact = ParseInt(*result, "compact_revision", 0);
  const auto canceled = result->find("canceled");
  if (!compact.ok() || *compact > 0 ||
      (canceled != result->end() && canceled->is_boolean() && canceled->get<bool>())) {
    state->end = WatchEnd::kCompacted;
    state->detail = compact.ok() ? std::to_string(*compact) : "?";
    return false;
  }
  if (const Json* events = Array(*result, "events"); events != nullptr) {
    for (const Json& event : *events) {
      // proto3 JSON omits the default: a PUT event has no "type".
      if (event.is_object() && event.contains("type") && event["type"] == "DELETE") {
        state->end = WatchEnd::kDeleted;
        return false;
      }
    }
  }
  return true;
}

}  // namespace

Task<Status> EtcdLeaseService::WaitReleased(std::string name, Duration max, CancelToken cancel) {
  const Status name_valid = ValidateName(name);
  if (!name_valid.ok()) co_return name_valid;
  const MonoTime deadline = env_.clock().Now() + max;
  const std::string key = Base64Encode(options_.key_prefix + name);
  constexpr int kCompactionsMax = 3;
  int compactions = 0;
  // Bounded by `deadline`: each round is a range read and a watch that ends by then.
  for (;;) {
    if (cancel.cancelled()) co_return CancelledError("wait cancelled");
    const Duration left = deadline - env_.clock().Now();
    if (left <= Duration::Zero()) co_return DeadlineExceededError("lease " + name + " still held");
    Result<Json> range = co_await EtcdLeaseServiceInternals::Call(this, "/v3/kv/range",
                                                                  KeyBody(key));
    if (!range.ok()) co_return range.status();
    const Result<int64_t> revision = HeaderRevision(*range);
    if (!revision.ok()) co_return revision.status();
    bool found = false;
    KeyValue kv;
    const Status parsed = ParseKv(*range, &found, &kv);
    if (!parsed.ok()) co_return parsed;
    if (!found) co_return Status::Ok();

    auto state = std::make_shared<WatchState>();
    auto call = std::make_shared<HttpCall>();
    call->url = options_.endpoints[preferred_endpoint_] + "/v3/watch";
    call->body = WatchBody(key, *revision + 1);
    call->timeout = std::max(deadline - env_.clock().Now(), EtcdLeaseLimits::kTimeoutMin);
    call->connect_timeout = options_.connect_timeout;
    call->body_max = EtcdLeaseLimits::kReplyBytesMax;
    call->on_line = [state](std::string_view line) { return OnWatchLine(state.get(), line); };
    ++stats_.requests;
    HttpOutcome out = co_await HttpAwait(*worker_, call, cancel);
    if (out.cancelled) co_return CancelledError("wait cancelled");
    switch (state->end) {
      case WatchEnd::kDeleted:
        co_return Status::Ok();
      case WatchEnd::kCompacted:
        // The revision we asked for is gone: read again (the key may be gone too) and re-watch.
        ++stats_.watch_compactions;
        if (++compactions > kCompactionsMax) {
          co_return UnavailableError("watch on " + call->url + ": revision compacted " +
                                     std::to_string(compactions) + " times in a row");
        }
        continue;
      case WatchEnd::kMalformed:
        ++stats_.malformed_replies;
        co_return Malformed("watch stream: " + state->detail);
      case WatchEnd::kNone:
        break;
    }
    if (out.timed_out) co_return DeadlineExceededError("lease " + name + " still held");
    if (out.curl_code != 0) {
      ++stats_.endpoint_failures;
      co_return UnavailableError("watch on " + call->url + ": " + out.curl_error);
    }
    if (out.http_status != 200) {
      co_return UnavailableError("watch on " + call->url + ": HTTP " +
                                 std::to_string(out.http_status));
    }
    co_return UnavailableError("watch on " + call->url + " ended without an answer");
  }
}

}  // namespace faultline::adapters
