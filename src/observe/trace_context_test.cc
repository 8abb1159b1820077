// W3C Trace Context parsing and formatting: every rule of trace_context.h's file comment, with
// malformed inputs, and properties over generated inputs (round trip; random bytes never crash and
// never yield an invalid accepted context).
#include "faultline/env/trace_context.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <string>

namespace faultline {
namespace {

constexpr std::string_view kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceparentTest, ParsesTheSpecExample) {
  const auto tp = ParseTraceparent(kValid);
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(tp->version, 0);
  EXPECT_EQ(HexId(tp->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(HexId(tp->parent_id), "00f067aa0ba902b7");
  EXPECT_EQ(tp->flags, 1);
  EXPECT_EQ(FormatTraceparent(tp->trace_id, tp->parent_id, tp->flags), kValid);
}

TEST(TraceparentTest, UnsampledFlagsAndUnknownFlagBits) {
  auto tp = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(tp->flags, 0);
  tp = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff");
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(tp->flags, kTraceFlagSampled);  // only the sampled bit is propagated
}

TEST(TraceparentTest, RejectsEveryMalformedShape) {
  const std::string v(kValid);
  const std::vector<std::string> bad = {
      "",
      "00",
      v.substr(0, 54),                                             // one short
      v + "0",                                                     // version 00, one long
      v + "-",                                                     // version 00 with extra field
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // uppercase trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",  // uppercase parent id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",  // uppercase flags
      "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // uppercase version
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero parent id
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // bad separators
      "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  // non-hex
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
      "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",   // leading space
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",  // trailing space
      "00-4bf92f3577b34da6a3ce929d0e0e47-3600f067aa0ba902b7-01",  // dash misplaced
      std::string(4096, '0'),                                     // over-long garbage
  };
  for (const std::string& s : bad) {
    EXPECT_FALSE(ParseTraceparent(s).has_value()) << "accepted: " << s;
    EXPECT_FALSE(ExtractTraceContext(s, "k=v").valid()) << s;
  }
}

TEST(TraceparentTest, FutureVersionsParseTheFirst55Characters) {
  // A higher version: the version-00 fields are read; more must follow a "-".
  auto tp = ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(tp->version, 1);
  tp = ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future");
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(tp->version, 0xcc);
  EXPECT_EQ(HexId(tp->parent_id), "00f067aa0ba902b7");
  EXPECT_FALSE(ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x").has_value());
  EXPECT_FALSE(ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1").has_value());
  EXPECT_FALSE(ParseTraceparent("cc-00000000000000000000000000000000-00f067aa0ba902b7-01").has_value());
  // Re-formatted, a future version's context is sent as version 00.
  EXPECT_EQ(FormatTraceparent(tp->trace_id, tp->parent_id, tp->flags).substr(0, 3), "00-");
}

TEST(TracestateTest, ParsesListMembersWithOwsAndEmptyMembers) {
  const auto ts = ParseTracestate("rojo=00f067aa0ba902b7 ,\t congo=t61rcWkgMzE,, tenant@sys=x y");
  ASSERT_TRUE(ts.has_value());
  ASSERT_EQ(ts->size(), 3u);
  EXPECT_EQ((*ts)[0], (TracestateMember{"rojo", "00f067aa0ba902b7"}));
  EXPECT_EQ((*ts)[1], (TracestateMember{"congo", "t61rcWkgMzE"}));
  EXPECT_EQ((*ts)[2], (TracestateMember{"tenant@sys", "x y"}));
  EXPECT_EQ(FormatTracestate(*ts), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,tenant@sys=x y");
  EXPECT_TRUE(ParseTracestate("").has_value());
  EXPECT_TRUE(ParseTracestate(" , ").has_value());
}

TEST(TracestateTest, RejectsMalformedMembers) {
  const std::vector<std::string> bad = {
      "novalue",        "=v",           "Upper=v",        "1abc=v",        "a=",
      "a=v,a=w",        "a=v=w",        "a=v,b",          "a b=v",         "a=v\x01",
      "a=del\x7f" "char",    "@sys=v",       "t@=v",           "t@Sys=v",       "t@s@x=v",
      "t@abcdefghijklmno=v",  // system-id over 14 characters
      std::string(257, 'k') + "=v",   "k=" + std::string(257, 'v'),
      "t" + std::string(241, 'a') + "@s=v",  // tenant-id over 241 characters
  };
  for (const std::string& s : bad) {
    EXPECT_FALSE(ParseTracestate(s).has_value()) << "accepted: " << s;
  }
  EXPECT_TRUE(ValidTracestateKey(std::string(256, 'k')));
  EXPECT_TRUE(ValidTracestateValue(std::string(256, 'v')));
  EXPECT_TRUE(ValidTracestateKey(std::string(241, 'a') + "@" + std::string(14, 's')));
}

TEST(TracestateTest, MoreThan32MembersIsInvalid) {
  std::string s;
  for (int i = 0; i < 32; ++i) s += (i ? "," : "") + std::string("k") + std::to_string(i) + "=v";
  ASSERT_TRUE(ParseTracestate(s).has_value());
  EXPECT_EQ(ParseTracestate(s)->size(), 32u);
  EXPECT_FALSE(ParseTracestate(s + ",k32=v").has_value());
}

TEST(TracestateTest, AnInvalidTracestateIsDroppedButTheTraceparentStands) {
  const TraceContext c = ExtractTraceContext(kValid, "a=v,a=w");
  EXPECT_TRUE(c.valid());
  EXPECT_TRUE(c.tracestate.empty());
}

TEST(TracestateTest, FormattingTruncatesLongMembersFirstThenFromTheRight) {
  std::vector<TracestateMember> m;
  m.push_back({"first", std::string(200, 'a')});  // 206 characters: long
  for (int i = 0; i < 6; ++i) m.push_back({"k" + std::to_string(i), std::string(60, 'b')});
  // 206 + 6 * 63 + 6 commas = 590 > 512: the long member goes first, the rest fit.
  const std::string out = FormatTracestate(m);
  EXPECT_LE(out.size(), kTracestateBytesMax);
  EXPECT_EQ(out.find("first="), std::string::npos);
  EXPECT_NE(out.find("k5="), std::string::npos);
  // No long members: dropped from the right until it fits.
  std::vector<TracestateMember> many;
  for (int i = 0; i < 12; ++i) many.push_back({"k" + std::to_string(i), std::string(60, 'c')});
  const std::string cut = FormatTracestate(many);
  EXPECT_LE(cut.size(), kTracestateBytesMax);
  EXPECT_NE(cut.find("k0="), std::string::npos);
  EXPECT_EQ(cut.find("k11="), std::string::npos);
  // More than 32: only the first 32 are kept.
  std::vector<TracestateMember> lots;
  for (int i = 0; i < 40; ++i) lots.push_back({"k" + std::to_string(i), "v"});
  EXPECT_EQ(ParseTracestate(FormatTracestate(lots))->size(), 32u);
}

// ---- properties ------------------------------------------------------------------------------

RC_GTEST_PROP(TraceContextProperty, InjectThenExtractRoundTrips, ()) {
  TraceContext c;
  for (auto& b : c.trace_id) b = *rc::gen::arbitrary<uint8_t>();
  for (auto& b : c.span_id) b = *rc::gen::arbitrary<uint8_t>();
  RC_PRE(c.valid());
  c.flags = *rc::gen::element<uint8_t>(0, 1);
  const int n = *rc::gen::inRange(0, 6);
  for (int i = 0; i < n; ++i) {
    c.tracestate.push_back(
        {"k" + std::to_string(i),
         *rc::gen::container<std::string>(*rc::gen::inRange(1, 20), rc::gen::inRange('!', '+'))});
  }
  const auto [tp, ts] = InjectTraceContext(c);
  RC_ASSERT(tp.size() == kTraceparentLength);
  RC_ASSERT(ExtractTraceContext(tp, ts) == c);
}

RC_GTEST_PROP(TraceContextProperty, ArbitraryInputNeverCrashesAndNeverYieldsInvalid, ()) {
  const std::string tp = *rc::gen::oneOf(
      rc::gen::arbitrary<std::string>(),
      // Mutations of a valid header: far likelier to reach deep branches.
      rc::gen::map(rc::gen::pair(rc::gen::inRange<size_t>(0, 55), rc::gen::arbitrary<char>()),
                   [](std::pair<size_t, char> m) {
                     std::string s(kValid);
                     s[m.first] = m.second;
                     return s;
                   }));
  const std::string ts = *rc::gen::arbitrary<std::string>();
  const auto parsed = ParseTraceparent(tp);
  const TraceContext c = ExtractTraceContext(tp, ts);
  RC_ASSERT(parsed.has_value() == c.valid());
  if (parsed) {
    // Whatever was accepted re-formats to a valid, lowercase, version-00 header that parses back.
    const std::string again = FormatTraceparent(c.trace_id, c.span_id, c.flags);
    RC_ASSERT(ParseTraceparent(again).has_value());
    for (char ch : again) RC_ASSERT(!(ch >= 'A' && ch <= 'Z'));
  }
  if (auto members = ParseTracestate(ts)) {
    RC_ASSERT(members->size() <= kTracestateMembersMax);
    for (const auto& m : *members) {
      RC_ASSERT(ValidTracestateKey(m.key));
      RC_ASSERT(ValidTracestateValue(m.value));
    }
  }
  RC_ASSERT(FormatTracestate(c.tracestate).size() <= kTracestateBytesMax);
}

}  // namespace
}  // namespace faultline
