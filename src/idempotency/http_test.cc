#include "faultline/idempotency/http.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <vector>

namespace faultline::idempotency {
namespace {

Result<std::string> Parse(std::string_view v) { return ParseIdempotencyKeyHeader(v); }

TEST(IdempotencyKeyHeaderTest, ParsesSfStringsWithSpacesEscapesAndParameters) {
  EXPECT_EQ(Parse("\"8e03978e-40d5-43e8-bc93-6894a57f9324\"").value(),
            "8e03978e-40d5-43e8-bc93-6894a57f9324");
  EXPECT_EQ(Parse("  \"a b\"  ").value(), "a b");
  EXPECT_EQ(Parse(R"("q\"uo\\te")").value(), "q\"uo\\te");
  EXPECT_EQ(Parse("\"k\";a=1;b;c=?0;d=\"x\";e=tok/1:2;f=:AQID:;g=-1.25;*h=12").value(), "k");
  EXPECT_EQ(Parse("\"k\"; a=1").value(), "k");
}

TEST(IdempotencyKeyHeaderTest, RejectsEverythingElseAsInvalidArgument) {
  EXPECT_EQ(ParseIdempotencyKeyHeader(std::nullopt).status().code(), StatusCode::kInvalidArgument);
  const std::vector<std::string> bad = {"",
                                        "   ",
                                        "abc",
                                        "\"abc",
                                        "abc\"",
                                        "\"a\"b",
                                        "\"a\" \"b\"",
                                        "\"a\\n\"",
                                        "\"a\\\"",
                                        "\"\"",
                                        "'abc'",
                                        "123",
                                        "\"a\"\t",
                                        "\t\"a\"",
                                        "\"a\";",
                                        "\"a\";A=1",
                                        "\"a\";a=",
                                        "\"a\";a=.5",
                                        "\"a\";a=-",
                                        "\"a\";a=1.",
                                        "\"a\";a=1.2345",
                                        "\"a\";a=1234567890123456",
                                        "\"a\";a=:AQ",
                                        "\"a\";a=?2",
                                        "\"a\",\"b\"",
                                        std::string("\"a\0b\"", 5),
                                        "\"caf\xc3\xa9\"",
                                        "\"tab\there\"",
                                        "\"a\";a=-.5",
                                        "\"a\";a=1234567890123.5"};
  for (const std::string& v : bad) {
    EXPECT_EQ(Parse(v).status().code(), StatusCode::kInvalidArgument) << v;
  }
  EXPECT_NE(Parse("abc").status().message().find("malformed"), std::string_view::npos);
  EXPECT_EQ(Parse("\"a\";a=123456789012345").value(), "a");   // 15 digits: the maximum
  EXPECT_EQ(Parse("\"a\";a=123456789012.123").value(), "a");  // 12 + 3: the maximum
}

TEST(IdempotencyKeyHeaderTest, AnswersFollowTheDraft) {
  const HttpAnswer missing = AnswerForBadKey(ParseIdempotencyKeyHeader(std::nullopt).status());
  EXPECT_EQ(missing.action, HttpAction::kReject);
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.content_type, "application/problem+json");
  EXPECT_EQ(missing.body,
            "{\"type\":\"about:blank\",\"title\":\"Bad Request\",\"status\":400,"
            "\"detail\":\"the Idempotency-Key header is missing\"}");
  EXPECT_EQ(missing.retry_after_seconds, -1);

  Claim claim;
  claim.state = ClaimState::kClaimed;
  EXPECT_EQ(AnswerForClaim(claim).action, HttpAction::kProceed);

  claim.state = ClaimState::kCompleted;
  claim.response = std::string("HTTP/1.1 201\r\n\r\n\0\xff", 18);
  const HttpAnswer replay = AnswerForClaim(claim);
  EXPECT_EQ(replay.action, HttpAction::kReplay);
  EXPECT_EQ(replay.body, claim.response);

  claim.state = ClaimState::kMismatch;
  EXPECT_EQ(AnswerForClaim(claim).status, 422);
  EXPECT_EQ(AnswerForClaim(claim).retry_after_seconds, -1);

  claim.state = ClaimState::kInProgress;
  // Retry-After rounds up: waiting less than the lease's remainder would just earn another 409.
  const std::vector<std::pair<Duration, int64_t>> cases = {
      {Duration::Nanos(1), 1},
      {Duration::Millis(999), 1},
      {Duration::Seconds(1), 1},
      {Duration::Seconds(1) + Duration::Nanos(1), 2},
      {Duration::Seconds(30), 30}};
  for (const auto& [after, seconds] : cases) {
    claim.retry_after = after;
    const HttpAnswer conflict = AnswerForClaim(claim);
    EXPECT_EQ(conflict.status, 409);
    EXPECT_EQ(conflict.retry_after_seconds, seconds) << after.nanos();
  }
}

TEST(IdempotencyKeyHeaderTest, ProblemDetailIsEscapedJson) {
  const HttpAnswer a = AnswerForBadKey(InvalidArgumentError("say \"hi\"\\\n\x01\x80"));
  EXPECT_NE(a.body.find(R"("detail":"say \"hi\"\\\u000a\u0001\u0080")"), std::string::npos)
      << a.body;
}

// Printable ASCII keys, as a client would send them.
rc::Gen<std::string> PrintableKey() {
  return rc::gen::nonEmpty(rc::gen::container<std::string>(rc::gen::inRange<char>(0x20, 0x7f)));
}

// One RFC 8941 parameter, ";key" or ";key=bare-item", drawn from every bare-item type.
rc::Gen<std::string> Parameter() {
  const auto lc = rc::gen::inRange<char>('a', 'z' + 1);
  const auto digit = rc::gen::inRange<char>('0', '9' + 1);
  auto key =
      rc::gen::apply([](char first, std::string rest) { return std::string(1, first) + rest; },
                     rc::gen::oneOf(lc, rc::gen::just('*')),
                     rc::gen::container<std::string>(
                         rc::gen::oneOf(lc, digit, rc::gen::element('_', '-', '.', '*'))));
  auto digits = [digit](int lo, int hi) {
    return rc::gen::mapcat(rc::gen::inRange(lo, hi + 1), [digit](int n) {
      return rc::gen::container<std::string>(static_cast<size_t>(n), digit);
    });
  };
  auto value = rc::gen::oneOf(
      rc::gen::just(std::string()),
      rc::gen::map(digits(1, 15), [](std::string d) { return "=" + d; }),
      rc::gen::apply([](std::string a, std::string b) { return "=-" + a + "." + b; }, digits(1, 12),
                     digits(1, 3)),
      rc::gen::map(rc::gen::container<std::string>(rc::gen::inRange<char>(0x20, 0x7f)),
                   [](std::string k) {
                     std::string out = "=\"";
                     for (char c : k) {
                       if (c == '"' || c == '\\') out.push_back('\\');
                       out.push_back(c);
                     }
                     return out + "\"";
                   }),
      rc::gen::map(rc::gen::container<std::string>(
                       rc::gen::oneOf(lc, digit, rc::gen::element(':', '/', '!'))),
                   [](std::string t) { return "=t" + t; }),
      rc::gen::map(rc::gen::container<std::string>(
                       rc::gen::oneOf(lc, digit, rc::gen::element('+', '/', '='))),
                   [](std::string b) { return "=:" + b + ":"; }),
      rc::gen::element(std::string("=?0"), std::string("=?1")));
  return rc::gen::apply(
      [](std::string sp, std::string k, std::string v) { return ";" + sp + k + v; },
      rc::gen::element(std::string(), std::string(" "), std::string("  ")), key, value);
}

RC_GTEST_PROP(IdempotencyKeyHeaderFuzz, SerializedKeysRoundTripWithSpacesAndParameters, ()) {
  const std::string key = *PrintableKey();
  const std::string lead(*rc::gen::inRange<size_t>(0, 3), ' ');
  const std::string trail(*rc::gen::inRange<size_t>(0, 3), ' ');
  std::string params;
  for (const std::string& p : *rc::gen::container<std::vector<std::string>>(Parameter()))
    params += p;
  const std::string field = lead + SerializeIdempotencyKeyHeader(key) + params + trail;
  const Result<std::string> parsed = ParseIdempotencyKeyHeader(field);
  RC_ASSERT(parsed.ok());
  RC_ASSERT(*parsed == key);
}

RC_GTEST_PROP(IdempotencyKeyHeaderFuzz, ArbitraryBytesNeverCrashAndParseConsistently, ()) {
  // Arbitrary bytes, biased to the grammar's special characters so deep paths are reached.
  const std::string field = *rc::gen::container<std::string>(rc::gen::oneOf(
      rc::gen::arbitrary<char>(),
      rc::gen::element('"', '\\', ';', '=', ' ', ':', '?', '-', '.', '1', 'a', '*')));
  const Result<std::string> parsed = ParseIdempotencyKeyHeader(field);
  if (!parsed.ok()) {
    RC_ASSERT(parsed.status().code() == StatusCode::kInvalidArgument);
    return;
  }
  // Whatever parses is a non-empty printable key, and serializing it parses back to itself.
  RC_ASSERT(!parsed->empty());
  for (const char c : *parsed) RC_ASSERT(c >= 0x20 && c <= 0x7e);
  RC_ASSERT(*ParseIdempotencyKeyHeader(SerializeIdempotencyKeyHeader(*parsed)) == *parsed);
  // A valid field starts (after spaces) with a quote and ends with a quote or a parameter.
  RC_ASSERT(field.find('"') != std::string::npos);
}

RC_GTEST_PROP(IdempotencyKeyHeaderFuzz, MutatingOneByteOfAValidFieldNeverCrashes, ()) {
  std::string field = SerializeIdempotencyKeyHeader(*PrintableKey()) + ";p=1";
  const size_t at = *rc::gen::inRange<size_t>(0, field.size());
  field[at] = *rc::gen::arbitrary<char>();
  const Result<std::string> parsed = ParseIdempotencyKeyHeader(field);
  RC_ASSERT(parsed.ok() || parsed.status().code() == StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace faultline::idempotency
