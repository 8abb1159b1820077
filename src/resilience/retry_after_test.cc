// Tests for faultline/resilience/retry_after.h: table tests of valid and invalid Retry-After
// values (delay-seconds, the three HTTP-date forms, leap years, overflow, whitespace, dates in
// the past), rounding UP (redis-cell #56: "Retry-After rounded down"), the cap and jitter, gRPC
// pushback, and rapidcheck fuzzing with random strings and mutations of valid values.
#include "faultline/resilience/retry_after.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace faultline {
namespace {

// 1994-11-06T08:49:37Z, the RFC's example date.
constexpr int64_t kRfcExampleUnix = 784111777;
WallTime Unix(int64_t seconds, int64_t nanos = 0) {
  return WallTime::FromNanos(seconds * 1'000'000'000 + nanos);
}

RetryAfterParser MakeParser(Duration cap = Duration::Seconds(300), bool jitter = false,
                            bool obsolete = true) {
  RetryAfterOptions o;
  o.delay_max = cap;
  o.jitter = jitter;
  o.obsolete_dates = obsolete;
  auto p = RetryAfterParser::Create(o);
  EXPECT_TRUE(p.ok());
  return std::move(p).value();
}

TEST(RetryAfterOptionsTest, InvalidOptionsAreRejectedNamingTheField) {
  // A zero or negative cap would turn every hint into "retry now".
  RetryAfterOptions o;
  o.delay_max = Duration::Zero();
  EXPECT_NE(RetryAfterParser::Create(o).status().message().find("delay_max"), std::string::npos);
  o.delay_max = Duration::Seconds(-3);
  EXPECT_NE(RetryAfterParser::Create(o).status().message().find("delay_max"), std::string::npos);
  o.delay_max = Duration::Infinite();
  EXPECT_NE(RetryAfterParser::Create(o).status().message().find("delay_max"), std::string::npos);
}

TEST(RetryAfterTest, DelaySecondsTable) {
  // Valid delay-seconds forms and what they mean; fractions round UP; leading/trailing OWS is
  // allowed; everything else is no hint.
  const RetryAfterParser p = MakeParser(Duration::Seconds(300));
  const WallTime now = Unix(kRfcExampleUnix);
  struct Case {
    const char* value;
    std::optional<int64_t> seconds;
  };
  const Case cases[] = {
      {"0", 0},           {"1", 1},          {"120", 120},      {"007", 7},
      {"  5", 5},         {"5\t ", 5},       {"1.5", 2},        {"0.001", 1},
      {"2.000", 2},       {"299.0001", 300}, {"300", 300},      {"301", 300},
      {"99999999999999999999999999999", 300},                   {"", std::nullopt},
      {"   ", std::nullopt}, {"-1", std::nullopt}, {"+5", std::nullopt}, {"5s", std::nullopt},
      {"1 2", std::nullopt}, {"1.", std::nullopt}, {".5", std::nullopt}, {"1.5.2", std::nullopt},
      {"0x10", std::nullopt}, {"1e3", std::nullopt}, {"\xff", std::nullopt}, {"5,6", std::nullopt},
  };
  for (const Case& c : cases) {
    const Pushback r = p.Parse(c.value, now);
    if (c.seconds) {
      EXPECT_EQ(r, Pushback::Delay(Duration::Seconds(*c.seconds))) << '"' << c.value << '"';
    } else {
      EXPECT_TRUE(r.is_none()) << '"' << c.value << '"';
    }
  }
  EXPECT_EQ(ParseDelaySeconds("123456789012"), Duration::Infinite());  // saturates, no cap
  EXPECT_EQ(ParseDelaySeconds("9223372036"), Duration::Seconds(9223372036));
}

TEST(RetryAfterTest, HttpDateTable) {
  // The three RFC 9110 date forms, checked against known Unix times; the delay is date - now in
  // whole seconds rounded up; dates in the past give 0.
  const WallTime now = Unix(kRfcExampleUnix);
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT", now), Unix(kRfcExampleUnix));
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", now), Unix(kRfcExampleUnix));
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994", now), Unix(kRfcExampleUnix));
  EXPECT_EQ(ParseHttpDate("Thu, 01 Jan 1970 00:00:00 GMT", now), Unix(0));
  EXPECT_EQ(ParseHttpDate("Tue, 19 Jan 2038 03:14:08 GMT", now), Unix(2147483648));
  EXPECT_EQ(ParseHttpDate("Wed, 31 Dec 1969 23:59:59 GMT", now), Unix(-1));
  EXPECT_EQ(ParseHttpDate("Sat, 31 Dec 2016 23:59:60 GMT", now), Unix(1483228800));  // leap second
  // Leap years: Feb 29 exists in 2000 and 2024, not in 1900 or 2023.
  EXPECT_EQ(ParseHttpDate("Tue, 29 Feb 2000 00:00:00 GMT", now), Unix(951782400));
  EXPECT_EQ(ParseHttpDate("Thu, 29 Feb 2024 12:00:00 GMT", now), Unix(1709208000));
  EXPECT_FALSE(ParseHttpDate("Thu, 29 Feb 1900 00:00:00 GMT", now));
  EXPECT_FALSE(ParseHttpDate("Wed, 29 Feb 2023 00:00:00 GMT", now));
  EXPECT_FALSE(ParseHttpDate("Mon, 31 Apr 2023 00:00:00 GMT", now));
  // RFC 850 two-digit years: at most 50 years ahead of now, otherwise the previous century.
  const WallTime now2025 = Unix(1735689600);  // 2025-01-01
  EXPECT_EQ(ParseHttpDate("Friday, 01-Jan-2075 00:00:00 GMT", now2025), std::nullopt);
  EXPECT_EQ(ParseHttpDate("Tuesday, 01-Jan-75 00:00:00 GMT", now2025), Unix(3313526400));  // 2075
  EXPECT_EQ(ParseHttpDate("Wednesday, 01-Jan-76 00:00:00 GMT", now2025), Unix(189302400));  // 1976
  // Malformed: wrong names, case, spacing, separators, ranges, trailing junk.
  const char* invalid[] = {
      "Sun, 06 Nov 1994 08:49:37 UTC",  "sun, 06 Nov 1994 08:49:37 GMT",
      "Sun, 06 nov 1994 08:49:37 GMT",  "Sun, 06 Nov 1994 08:49:37 gmt",
      "Xyz, 06 Nov 1994 08:49:37 GMT",  "Sun, 06 Foo 1994 08:49:37 GMT",
      "Sun, 6 Nov 1994 08:49:37 GMT",   "Sun,  06 Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 94 08:49:37 GMT",    "Sun, 06 Nov 1994 24:00:00 GMT",
      "Sun, 06 Nov 1994 08:60:00 GMT",  "Sun, 06 Nov 1994 08:49:61 GMT",
      "Sun, 00 Nov 1994 08:49:37 GMT",  "Sun, 32 Dec 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:37 GMTX", "Sun, 06 Nov 1994 08:49:37",
      "Sun, 06 Nov 1994 8:49:37 GMT",   "Sun 06 Nov 1994 08:49:37 GMT",
      "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun, 06-Nov-94 08:49:37 GMT",
      "Sun Nov 6 08:49:37 1994",        "Sun Nov  6 08:49:37 94",
      "Sun Nov 06 08:49:37 1994 GMT",   "Sun, 06 Nov 1994 08:49:37 GMT, Mon",
      "Sun, 06 Nov -994 08:49:37 GMT",  "",
  };
  for (const char* v : invalid) EXPECT_FALSE(ParseHttpDate(v, now)) << '"' << v << '"';
  EXPECT_EQ(ParseHttpDate("Sun Nov 06 08:49:37 1994", now), Unix(kRfcExampleUnix));
  // The weekday is syntax only (as in Go's net/http): a wrong but valid name is accepted.
  EXPECT_EQ(ParseHttpDate("Mon, 06 Nov 1994 08:49:37 GMT", now), Unix(kRfcExampleUnix));
}

TEST(RetryAfterTest, RetryAfterRoundedDownDoesNotHappen) {
  // Regression for "Retry-After rounded down" (redis-cell #56: a limiter that truncated its wait
  // sent clients back into an immediate 429). A date 10 s after a `now` that is 0.3 s past a
  // whole second leaves 9.7 s: the hint must be 10 s, not 9. Fractions of delay-seconds round up.
  const RetryAfterParser p = MakeParser();
  const WallTime now = Unix(kRfcExampleUnix - 10, 300'000'000);
  EXPECT_EQ(p.Parse("Sun, 06 Nov 1994 08:49:37 GMT", now), Pushback::Delay(Duration::Seconds(10)));
  EXPECT_EQ(p.Parse("0.2", now), Pushback::Delay(Duration::Seconds(1)));
  // 1 ns before the date: still a full second.
  EXPECT_EQ(p.Parse("Sun, 06 Nov 1994 08:49:37 GMT", Unix(kRfcExampleUnix) - Duration::Nanos(1)),
            Pushback::Delay(Duration::Seconds(1)));
}

TEST(RetryAfterTest, DatesInThePastMeanRetryNowAndFarFutureIsCapped) {
  // A date already passed (clock skew, a slow response) is "no wait", not a negative delay; a
  // date years ahead is capped at delay_max.
  const RetryAfterParser p = MakeParser(Duration::Seconds(300));
  const WallTime now = Unix(kRfcExampleUnix);
  EXPECT_EQ(p.Parse("Sun, 06 Nov 1994 08:49:37 GMT", now), Pushback::Delay(Duration::Zero()));
  EXPECT_EQ(p.Parse("Thu, 01 Jan 1970 00:00:00 GMT", now), Pushback::Delay(Duration::Zero()));
  EXPECT_EQ(p.Parse("Fri, 31 Dec 9999 23:59:59 GMT", now), Pushback::Delay(Duration::Seconds(300)));
  EXPECT_EQ(p.Parse("Sun, 06 Nov 1994 08:51:00 GMT", now), Pushback::Delay(Duration::Seconds(83)));
  // Obsolete forms can be turned off.
  const RetryAfterParser strict = MakeParser(Duration::Seconds(300), false, false);
  EXPECT_TRUE(strict.Parse("Sun Nov  6 08:49:37 1994", now).is_none());
  EXPECT_FALSE(strict.Parse("Sun, 06 Nov 1994 08:49:37 GMT", now).is_none());
}

TEST(RetryAfterTest, JitterSpreadsOverOneToOneAndAHalfTimesEvenAtTheCap) {
  // Envoy-style jitter U[d, 1.5·d] only lengthens the wait and is applied after the cap, so hints
  // at the cap are still spread (the cap must not erase the jitter).
  const RetryAfterParser p = MakeParser(Duration::Seconds(100), true);
  const WallTime now = Unix(kRfcExampleUnix);
  EXPECT_EQ(p.Parse("10", now, 0), Pushback::Delay(Duration::Seconds(10)));
  EXPECT_EQ(p.Parse("10", now, UINT64_MAX), Pushback::Delay(Duration::Seconds(15)));
  EXPECT_EQ(p.Parse("1000", now, 0), Pushback::Delay(Duration::Seconds(100)));
  EXPECT_EQ(p.Parse("1000", now, UINT64_MAX), Pushback::Delay(Duration::Seconds(150)));
  const Pushback mid = p.Parse("1000", now, uint64_t{1} << 63);
  EXPECT_EQ(mid, Pushback::Delay(Duration::Millis(125'000)));
}

TEST(GrpcPushbackTest, NegativeOrGarbageMeansStop) {
  // A6: grpc-retry-pushback-ms >= 0 is a delay; negative or unparseable means do not retry.
  EXPECT_EQ(ParseGrpcPushbackMs("0"), Pushback::Delay(Duration::Zero()));
  EXPECT_EQ(ParseGrpcPushbackMs("250"), Pushback::Delay(Duration::Millis(250)));
  EXPECT_EQ(ParseGrpcPushbackMs(" 7 "), Pushback::Delay(Duration::Millis(7)));
  EXPECT_EQ(ParseGrpcPushbackMs("99999999999999999999999"), Pushback::Delay(Duration::Infinite()));
  for (const char* v : {"-1", "-0", "", "abc", "1.5", "1e3", "+1", "1 2"}) {
    EXPECT_TRUE(ParseGrpcPushbackMs(v).is_stop()) << '"' << v << '"';
  }
}

// ---- Fuzzing ------------------------------------------------------------------------------------

void CheckParseIsSafe(const RetryAfterParser& p, const std::string& value, WallTime now,
                      uint64_t bits) {
  const Pushback r = p.Parse(value, now, bits);
  RC_ASSERT(!r.is_stop());
  if (r.is_delay()) {
    RC_ASSERT(r.delay >= Duration::Zero());
    RC_ASSERT(r.delay <= p.options().delay_max + p.options().delay_max / 2);
    RC_ASSERT(r.delay.nanos() % 1'000'000'000 == 0 || p.options().jitter);
  }
}

RC_GTEST_PROP(RetryAfterFuzz, RandomStringsAreIgnoredSafely, (const std::string& value,
                                                               int64_t now_ns, uint64_t bits)) {
  // Any byte string: never a crash (ASan/UBSan), never a Stop, never a delay outside [0, cap]
  // (or 1.5·cap with jitter), and without jitter always whole seconds.
  CheckParseIsSafe(MakeParser(), value, WallTime::FromNanos(now_ns), bits);
  CheckParseIsSafe(MakeParser(Duration::Seconds(7), true), value, WallTime::FromNanos(now_ns),
                   bits);
  (void)ParseGrpcPushbackMs(value);
}

RC_GTEST_PROP(RetryAfterFuzz, MutationsOfValidValuesAreIgnoredSafely, (int64_t now_ns)) {
  // Byte-level mutations (overwrite, insert, erase, truncate) of valid values exercise the
  // parsers far deeper than random strings; whatever survives must still be a sane hint.
  const std::vector<std::string> seeds = {"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                               "Sun Nov  6 08:49:37 1994", "120", "1.5", " 42 "};
  std::string v = *rc::gen::elementOf(seeds);
  const int mutations = *rc::gen::inRange(1, 5);
  for (int i = 0; i < mutations; ++i) {
    const size_t pos = *rc::gen::inRange<size_t>(0, v.size() + 1);
    const char c = *rc::gen::oneOf(rc::gen::arbitrary<char>(), rc::gen::element('0', '9', ' ', ':',
                                                                                 ',', '-', '.'));
    switch (*rc::gen::inRange(0, 4)) {
      case 0:
        if (pos < v.size()) v[pos] = c;
        break;
      case 1:
        v.insert(v.begin() + static_cast<std::ptrdiff_t>(pos), c);
        break;
      case 2:
        if (pos < v.size()) v.erase(pos, 1);
        break;
      case 3:
        v.resize(pos);
        break;
    }
  }
  const WallTime now = WallTime::FromNanos(now_ns);
  CheckParseIsSafe(MakeParser(), v, now, 0);
  if (auto t = ParseHttpDate(v, now)) {
    // An accepted date is a whole second between years 0 and 9999 (or saturated).
    RC_ASSERT(t->nanos() % 1'000'000'000 == 0 || t->nanos() == INT64_MAX ||
              t->nanos() == INT64_MIN);
  }
}

TEST(RetryAfterConcurrent, TwoThreadsShareOneParser) {
  // The parser is immutable: concurrent parses from two threads must not race (TSan) and must
  // agree.
  const RetryAfterParser p = MakeParser();
  const WallTime now = Unix(kRfcExampleUnix - 5);
  std::vector<int> wrong(2, 0);
  std::atomic<int> gate1{0};  // start both threads together so they overlap
  auto worker = [&](int id) {
    gate1.fetch_add(1);
    while (gate1.load() < 2) {
    }
    for (int i = 0; i < 20000; ++i) {
      if (p.Parse(i % 2 == 0 ? "Sun, 06 Nov 1994 08:49:37 GMT" : "5", now) !=
          Pushback::Delay(Duration::Seconds(5))) {
        ++wrong[static_cast<size_t>(id)];
      }
    }
  };
  std::thread t0(worker, 0);
  std::thread t1(worker, 1);
  t0.join();
  t1.join();
  EXPECT_EQ(wrong[0] + wrong[1], 0);
}

}  // namespace
}  // namespace faultline
