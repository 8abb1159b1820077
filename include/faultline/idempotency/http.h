// File: faultline/idempotency/http.h
//
// The HTTP face of idempotency keys, after draft-ietf-httpapi-idempotency-key-header-07:
//
//   request                                          answer
//   no Idempotency-Key (on an endpoint needing one)  400 problem+json
//   Idempotency-Key not an RFC 8941 sf-string, or    400 problem+json
//     a key IdempotencyKeys refuses (empty, too
//     long)
//   key in use by a request still being processed    409 problem+json, Retry-After: seconds until
//                                                     the lease runs out, rounded up
//   key reused with a different request              422 problem+json
//   key completed                                    replay the stored response, byte for byte
//   key claimed                                      proceed with the request
//
// The field value is parsed as an RFC 8941 Item whose bare item is a String: optional leading and
// trailing spaces, DQUOTE, characters 0x20..0x7E with '"' and '\' escaped by '\', DQUOTE, then
// parameters (";" key ["=" bare-item]), which are validated and ignored. Anything else — a token,
// an integer, an unterminated or illegally escaped string, a byte outside 0x20..0x7E, trailing
// garbage — is malformed. The parser reads only the given bytes, allocates at most the key, and
// never fails any other way (fuzzed in http_test.cc).
//
// Errors: ParseIdempotencyKeyHeader returns kInvalidArgument with a one-line reason.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/idempotency/idempotency_keys.h"

namespace faultline::idempotency {

inline constexpr std::string_view kIdempotencyKeyHeader = "Idempotency-Key";

// The key inside the field value (unescaped). nullopt: the header is absent.
Result<std::string> ParseIdempotencyKeyHeader(std::optional<std::string_view> field_value);

// The field value for `key` (printable ASCII): a quoted sf-string with '"' and '\' escaped.
std::string SerializeIdempotencyKeyHeader(std::string_view key);

enum class HttpAction : uint8_t {
  kProceed,  // this request owns the key: run it, then Complete
  kReplay,   // send `body` (the stored response) as it is
  kReject,   // send `status`, `retry_after_seconds` (409 only) and the problem+json `body`
};

struct HttpAnswer {
  HttpAction action = HttpAction::kReject;
  int status = 0;                    // kReject: 400, 409 or 422
  int64_t retry_after_seconds = -1;  // 409: ≥ 1; otherwise -1 (no Retry-After header)
  std::string content_type;          // kReject: "application/problem+json"
  std::string body;                  // kReplay: stored response; kReject: problem+json
};

// 400 for a missing or malformed key (`why` is ParseIdempotencyKeyHeader's or Acquire's
// kInvalidArgument status).
HttpAnswer AnswerForBadKey(const Status& why);

// The answer for a claim outcome.
HttpAnswer AnswerForClaim(const Claim& claim);

}  // namespace faultline::idempotency
