#include "faultline/idempotency/http.h"

#include <cstdio>

namespace faultline::idempotency {

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLcAlpha(char c) { return c >= 'a' && c <= 'z'; }
bool IsAlpha(char c) { return IsLcAlpha(c) || (c >= 'A' && c <= 'Z'); }
bool IsTchar(char c) {
  return IsAlpha(c) || IsDigit(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool IsBase64(char c) { return IsAlpha(c) || IsDigit(c) || c == '+' || c == '/' || c == '='; }

// RFC 8941 section 4.2 parsing over a view; every method consumes or fails, never reads past end.
class SfParser {
 public:
  explicit SfParser(std::string_view in) : in_(in) {}

  bool empty() const { return pos_ >= in_.size(); }
  char peek() const { return in_[pos_]; }
  void SkipSp() {
    while (!empty() && peek() == ' ') ++pos_;
  }

  // 4.2.5
  Status String(std::string* out) {
    if (empty() || peek() != '"') return Malformed("the value is not a quoted string");
    ++pos_;
    while (!empty()) {
      const char c = in_[pos_++];
      if (c == '\\') {
        if (empty()) return Malformed("the string ends inside an escape");
        const char next = in_[pos_++];
        if (next != '"' && next != '\\') return Malformed("the string has an invalid escape");
        if (out) out->push_back(next);
      } else if (c == '"') {
        return Status::Ok();
      } else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) {
        return Malformed("the string has a byte outside 0x20..0x7E");
      } else if (out) {
        out->push_back(c);
      }
    }
    return Malformed("the string is not terminated");
  }

  // 4.2.3.3 keys and 4.2.3.2 parameters (values validated, then dropped).
  Status Parameters() {
    while (!empty() && peek() == ';') {
      ++pos_;
      SkipSp();
      if (empty() || !(IsLcAlpha(peek()) || peek() == '*')) {
        return Malformed("a parameter has an invalid key");
      }
      while (!empty() && (IsLcAlpha(peek()) || IsDigit(peek()) || peek() == '_' || peek() == '-' ||
                          peek() == '.' || peek() == '*')) {
        ++pos_;
      }
      if (!empty() && peek() == '=') {
        ++pos_;
        FL_RETURN_IF_ERROR(BareItem());
      }
    }
    return Status::Ok();
  }

 private:
  static Status Malformed(std::string_view why) {
    return InvalidArgumentError("malformed Idempotency-Key: " + std::string(why));
  }

  Status BareItem() {
    if (empty()) return Malformed("a parameter value is missing");
    const char c = peek();
    if (c == '-' || IsDigit(c)) return Number();
    if (c == '"') return String(nullptr);
    if (c == '*' || IsAlpha(c)) {
      ++pos_;
      while (!empty() && (IsTchar(peek()) || peek() == ':' || peek() == '/')) ++pos_;
      return Status::Ok();
    }
    if (c == ':') {
      ++pos_;
      while (!empty() && IsBase64(peek())) ++pos_;
      if (empty() || peek() != ':') return Malformed("a byte sequence is not terminated");
      ++pos_;
      return Status::Ok();
    }
    if (c == '?') {
      ++pos_;
      if (empty() || (peek() != '0' && peek() != '1')) return Malformed("a boolean is invalid");
      ++pos_;
      return Status::Ok();
    }
    return Malformed("a parameter value is not a bare item");
  }

  // 4.2.4: at most 15 digits for an integer; a decimal has at most 12 before the dot and 1..3
  // after it.
  Status Number() {
    if (peek() == '-') ++pos_;
    if (empty() || !IsDigit(peek())) return Malformed("a number does not start with a digit");
    size_t digits = 0;
    size_t dot_at = 0;
    bool decimal = false;
    while (!empty()) {
      const char c = peek();
      if (IsDigit(c)) {
        ++digits;
      } else if (c == '.' && !decimal) {
        if (digits > 12) return Malformed("a decimal has too many digits");
        decimal = true;
        dot_at = digits;
      } else {
        break;
      }
      ++pos_;
      if ((!decimal && digits > 15) || (decimal && digits > 15)) {
        return Malformed("a number has too many digits");
      }
    }
    if (digits == 0) return Malformed("a number has no digits");
    if (decimal && (digits == dot_at || digits - dot_at > 3)) {
      return Malformed("a decimal has 0 or more than 3 fractional digits");
    }
    return Status::Ok();
  }

  std::string_view in_;
  size_t pos_ = 0;
};

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20 || u >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      out->append(buf);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

HttpAnswer Reject(int status, std::string_view title, std::string_view detail) {
  HttpAnswer answer;
  answer.action = HttpAction::kReject;
  answer.status = status;
  answer.content_type = "application/problem+json";
  answer.body = "{\"type\":\"about:blank\",\"title\":";
  AppendJsonString(&answer.body, title);
  answer.body += ",\"status\":" + std::to_string(status) + ",\"detail\":";
  AppendJsonString(&answer.body, detail);
  answer.body += "}";
  return answer;
}

}  // namespace

Result<std::string> ParseIdempotencyKeyHeader(std::optional<std::string_view> field_value) {
  if (!field_value) return InvalidArgumentError("the Idempotency-Key header is missing");
  SfParser parser(*field_value);
  parser.SkipSp();
  std::string key;
  key.reserve(field_value->size());  // one allocation at most: the key is never longer
  FL_RETURN_IF_ERROR(parser.String(&key));
  FL_RETURN_IF_ERROR(parser.Parameters());
  parser.SkipSp();
  if (!parser.empty()) {
    return InvalidArgumentError("malformed Idempotency-Key: trailing characters after the item");
  }
  if (key.empty()) return InvalidArgumentError("the Idempotency-Key is empty");
  return key;
}

std::string SerializeIdempotencyKeyHeader(std::string_view key) {
  std::string out = "\"";
  for (const char c : key) {
    FL_ASSERT_MSG(c >= 0x20 && c <= 0x7e, "an sf-string holds printable ASCII only");
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

HttpAnswer AnswerForBadKey(const Status& why) {
  FL_ASSERT(!why.ok());
  return Reject(400, "Bad Request", why.message());
}

HttpAnswer AnswerForClaim(const Claim& claim) {
  HttpAnswer answer;
  switch (claim.state) {
    case ClaimState::kClaimed:
      answer.action = HttpAction::kProceed;
      return answer;
    case ClaimState::kCompleted:
      answer.action = HttpAction::kReplay;
      answer.body = claim.response;
      return answer;
    case ClaimState::kMismatch:
      return Reject(422, "Unprocessable Content",
                    "the Idempotency-Key was already used with a different request");
    case ClaimState::kInProgress: {
      answer =
          Reject(409, "Conflict", "a request with this Idempotency-Key is still being processed");
      const int64_t ns = claim.retry_after.nanos();
      const int64_t seconds = ns <= 0 ? 0 : (ns - 1) / 1'000'000'000 + 1;
      answer.retry_after_seconds = seconds < 1 ? 1 : seconds;
      return answer;
    }
  }
  FL_ASSERT_MSG(false, "unknown ClaimState");
  return answer;
}

}  // namespace faultline::idempotency
