// Unit tests for faultline/check/history_io.h: reading JSON-lines histories. The parser reads
// files from outside the process, so every malformed input must become a line-numbered
// kInvalidArgument, never a crash; rapidcheck fuzzes it with random bytes and mutated lines.
// ParseHistoryJsonl has a single-pass fast path with a DOM fallback; the differential tests at the
// end check it against the DOM-only reference parser it replaced, line by line and byte for byte.
#include "faultline/check/history_io.h"
#include "src/check/history_io_internal.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace faultline::check {
namespace {

Result<History> Parse(const std::string& text, const HistoryParseLimits& limits = {}) {
  std::istringstream in(text);
  return ParseHistoryJsonl(in, limits);
}

void ExpectError(const std::string& text, const std::string& prefix, const std::string& needle,
                 const HistoryParseLimits& limits = {}) {
  Result<History> r = Parse(text, limits);
  ASSERT_FALSE(r.ok()) << text;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  const std::string msg(r.status().message());
  EXPECT_EQ(msg.rfind(prefix, 0), 0u) << msg;
  EXPECT_NE(msg.find(needle), std::string::npos) << msg;
}

TEST(HistoryIoTest, RoundTripsWriteJsonl) {
  // What WriteJsonl writes must read back identically, or saved failing runs could not be
  // re-checked offline.
  History h;
  h.Add(3, OpType::kInvoke, "write", "1", 1500000);
  h.Add(3, OpType::kOk, "write", "1", 1600000);
  h.Add(4, OpType::kInvoke, "cas", "[1,2]", 1600000);
  h.Add(4, OpType::kInfo, "cas", "{\"key\":\"a\",\"v\":[1,null]}", 1700000);
  h.Add(5, OpType::kFail, "read", "\"x\\ny\"", 1800000);
  std::ostringstream out;
  h.WriteJsonl(out);
  Result<History> r = Parse(out.str());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    const HistoryOp& a = h.ops()[i];
    const HistoryOp& b = r->ops()[i];
    EXPECT_EQ(a.index, b.index);
    EXPECT_EQ(a.process, b.process);
    EXPECT_EQ(a.type, b.type);
    EXPECT_EQ(a.f, b.f);
    EXPECT_EQ(a.value, b.value);
    EXPECT_EQ(a.time_ns, b.time_ns);
  }
}

TEST(HistoryIoTest, OptionalFieldsBlankLinesAndCrlf) {
  // time_ns defaults to line order, value to null, blank lines and CRLF endings are tolerated:
  // hand-written histories in tests and bug reports look like this.
  Result<History> r = Parse(
      "\n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\r\n   \n"
      "{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\": [ 1 , 2 ]}\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(r->ops()[0].value, "null");
  EXPECT_EQ(r->ops()[1].value, "[1,2]");
  EXPECT_LT(r->ops()[0].time_ns, r->ops()[1].time_ns);
}

TEST(HistoryIoTest, EachMalformationIsALineNumberedError) {
  // The message must say where and why, so a user can fix the file.
  const std::string ok = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"time_ns\":5}\n";
  ExpectError(ok + "{nope\n", "line 2: ", "not valid JSON");
  ExpectError(ok + "[1,2]\n", "line 2: ", "not a JSON object");
  ExpectError("{\"type\":\"ok\",\"f\":\"read\"}\n", "line 1: ", "missing field \"process\"");
  ExpectError("{\"process\":1,\"f\":\"read\"}\n", "line 1: ", "missing field \"type\"");
  ExpectError("{\"process\":1,\"type\":\"ok\"}\n", "line 1: ", "missing field \"f\"");
  ExpectError("{\"process\":\"1\",\"type\":\"ok\",\"f\":\"r\"}\n", "line 1: ", "\"process\"");
  ExpectError("{\"process\":1.5,\"type\":\"ok\",\"f\":\"r\"}\n", "line 1: ", "not an int64");
  ExpectError("{\"process\":18446744073709551615,\"type\":\"ok\",\"f\":\"r\"}\n", "line 1: ",
              "not an int64");
  ExpectError("{\"process\":1,\"type\":\"done\",\"f\":\"r\"}\n", "line 1: ", "unknown type");
  ExpectError("{\"process\":1,\"type\":\"ok\",\"f\":7}\n", "line 1: ", "\"f\" is not a string");
  ExpectError(ok + "\n{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"time_ns\":4}\n", "line 3: ",
              "time goes backwards");
  ExpectError("{\"process\":1,\"type\":\"ok\",\"f\":\"r\",\"time_ns\":\"x\"}\n", "line 1: ",
              "time_ns");
  ExpectError("{\"process\":1,\"type\":\"ok\",\"f\":\"r\",\"index\":-1}\n", "line 1: ", "index");
  HistoryParseLimits two;
  two.ops_max = 2;
  ExpectError(ok + ok + ok, "line 3: ", "more than 2 ops", two);
  HistoryParseLimits short_lines;
  short_lines.line_bytes_max = 20;
  ExpectError(ok, "line 1: ", "longer than 20 bytes", short_lines);
  ExpectError("{\"process\":1,\"type\":\"ok\",\"f\":\"r\",\"value\":" + std::string(100, '[') +
                  std::string(100, ']') + "}\n",
              "line 1: ", "nested deeper");
}

TEST(HistoryIoTest, FuzzRandomBytesNeverCrash) {
  // Any byte string yields either a History or an InvalidArgument: no crash, no exception.
  EXPECT_TRUE(rc::check([](const std::string& bytes) {
    Result<History> r = Parse(bytes);
    if (!r.ok()) {
      RC_ASSERT(r.status().code() == StatusCode::kInvalidArgument);
      RC_ASSERT(r.status().message().rfind("line ", 0) == 0);
    }
  }));
}

TEST(HistoryIoTest, FuzzMutatedValidLinesNeverCrash) {
  // Random bytes rarely get past the JSON parser; mutating valid lines reaches the field checks.
  const std::vector<std::string> seeds = {
      "{\"index\":0,\"process\":3,\"type\":\"invoke\",\"f\":\"write\",\"value\":1,\"time_ns\":1500000}",
      "{\"index\":1,\"process\":3,\"type\":\"ok\",\"f\":\"cas\",\"value\":[1,{\"a\":null}],\"time_ns\":1600000}",
      "{\"process\":-7,\"type\":\"info\",\"f\":\"read\",\"value\":\"\\u00e9\"}",
  };
  using Edits = std::vector<std::tuple<uint8_t, uint16_t, char, uint8_t>>;
  EXPECT_TRUE(rc::check([&](const Edits& edits) {
    std::string text;
    for (size_t l = 0; l < 3; ++l) text += seeds[l] + "\n";
    for (const auto& [kind, pos_raw, ch, len] : edits) {
      if (text.empty()) text = seeds[0];
      const size_t pos = pos_raw % (text.size() + 1);
      switch (kind % 4) {
        case 0: text.insert(pos, 1, ch); break;
        case 1: text.erase(pos, len % 8); break;
        case 2: if (pos < text.size()) text[pos] = ch; break;
        default: text.insert(pos, seeds[len % 3] + "\n"); break;
      }
    }
    HistoryParseLimits limits;
    limits.ops_max = 5;
    limits.line_bytes_max = 200;
    Result<History> r = Parse(text, limits);
    if (!r.ok()) {
      RC_ASSERT(r.status().code() == StatusCode::kInvalidArgument);
      RC_ASSERT(r.status().message().rfind("line ", 0) == 0);
    } else {
      RC_ASSERT(r->size() <= 5u);
    }
  }));
}

// ---- Differential tests: fast path vs the DOM-only reference ------------------------------------

// A result as text: every op field, or the error code and message; equal texts = equal results.
std::string Describe(const Result<History>& r) {
  if (!r.ok()) {
    return "error " + std::to_string(static_cast<int>(r.status().code())) + " " +
           std::string(r.status().message());
  }
  std::string out = "ok " + std::to_string(r->size()) + "\n";
  for (const HistoryOp& op : r->ops()) {
    out += std::to_string(op.index) + "|" + std::to_string(op.process) + "|" +
           OpTypeName(op.type) + "|" + std::to_string(op.f.size()) + ":" + op.f + "|" +
           std::to_string(op.value.size()) + ":" + op.value + "|" + std::to_string(op.time_ns) +
           "\n";
  }
  return out;
}

struct BothResults {
  std::string fast;
  std::string reference;
  internal::HistoryParseCounters counters;
};

BothResults ParseBoth(const std::string& text, const HistoryParseLimits& limits = {}) {
  BothResults both;
  std::istringstream fast_in(text);
  both.fast = Describe(internal::ParseHistoryJsonlCounting(fast_in, limits, both.counters));
  std::istringstream reference_in(text);
  both.reference = Describe(internal::ParseHistoryJsonlReference(reference_in, limits));
  return both;
}

TEST(HistoryIoTest, FastPathTakesCheckerBenchLinesAndSortsKeysLikeJsonDump) {
  // The lines checker_bench and WriteJsonl write must not fall back to the DOM (that was the 82%
  // of CLI time this fast path removes), and "value" objects must come out with keys sorted, as
  // json's std::map prints them: values are compared as text downstream.
  const std::string text =
      "{\"index\":0,\"process\":8,\"type\":\"invoke\",\"f\":\"read\","
      "\"value\":{\"key\":0,\"value\":null},\"time_ns\":1}\n"
      "{\"index\":2,\"process\":3,\"type\":\"invoke\",\"f\":\"cas\","
      "\"value\":{\"key\":7,\"from\":3,\"to\":4},\"time_ns\":7}\n"
      "{\"index\":3,\"process\":3,\"type\":\"ok\",\"f\":\"cas\","
      "\"value\":{ \"z\" : [ {\"b\":1,\"a\":[]} , -9223372036854775808 ], \"a\":{}},"
      "\"time_ns\":9223372036854775807}\n";
  const BothResults both = ParseBoth(text);
  EXPECT_EQ(both.fast, both.reference);
  EXPECT_EQ(both.counters.fast_lines, 3u);
  EXPECT_EQ(both.counters.dom_lines, 0u);
  Result<History> r = Parse(text);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ops()[0].value, "{\"key\":0,\"value\":null}");
  EXPECT_EQ(r->ops()[1].value, "{\"from\":3,\"key\":7,\"to\":4}");
  EXPECT_EQ(r->ops()[2].value, "{\"a\":{},\"z\":[{\"a\":[],\"b\":1},-9223372036854775808]}");
}

TEST(HistoryIoTest, FastPathAgreesWithReferenceOnEdgeCases) {
  // Each line sits on an edge of the fast subset (numbers json reads as floats or prints
  // differently, escapes, non-ASCII, duplicate keys, depth limits, whitespace JSON does or does
  // not allow): whichever path takes it, the result must be the reference's.
  const std::string head = "{\"process\":1,\"type\":\"ok\",\"f\":\"r\",\"value\":";
  // clang-format off
  const std::vector<std::string> values = {
      "0", "-0", "007", "1", "-1", "9223372036854775807", "9223372036854775808",
      "-9223372036854775808", "-9223372036854775809", "18446744073709551615",
      "18446744073709551616", "1.0", "1.5", "-0.0", "1e2", "1E+2", "2.50", "1e400", "0.1", "-",
      "1.", "+1", ".5", "true", "false", "null", "nul", "True", "\"\"", "\"a b/c\"",
      "\"\\n\"", "\"\\u00e9\"", "\"\xc3\xa9\"", "\"\\ud83d\\ude00\"", "\"\\ud83d\"",
      "\"\x7f\"", "\"\t\"", "\"\\/\"", "\"\\u0000\"", "\"\xff\"", "[]", "{}", "[1,]",
      "[,]", "{\"a\":1,}", "{\"b\":1,\"a\":2}", "{\"a\":1,\"a\":2}",
      "{\"b\":{\"d\":1,\"c\":2},\"a\":[{\"y\":1,\"x\":2}]}", "{\"a\":1,\"b\":2,\"a\":3}",
      "{\"\":1,\"A\":2,\"a\":3,\"aa\":4,\"B\":5}", "[1 , 2\t,\r3 ]", "[1\f]",
      "[[[[[[[[1]]]]]]]]", "{\"k\":\"v\"} ", "1 2", "[1]]", "{\"a\" 1}"};
  // clang-format on
  std::vector<std::string> lines;
  for (const std::string& v : values) lines.push_back(head + v + "}");
  const std::vector<std::string> whole = {
      "{\"process\":1,\"process\":2,\"type\":\"fail\",\"f\":\"r\"}",
      "{\"process\":\"x\",\"process\":2,\"type\":\"ok\",\"f\":\"r\"}",
      "{\"process\":2,\"process\":\"x\",\"type\":\"ok\",\"f\":\"r\"}",
      "{\"process\":1,\"type\":\"done\",\"type\":\"info\",\"f\":\"r\"}",
      "{\"process\":1,\"type\":\"ok\",\"f\":\"r\",\"value\":[1],\"value\":{\"b\":0,\"a\":1}}",
      "{\"process\":1,\"type\":\"ok\",\"f\":\"r\",\"value\":5,\"other\":{\"b\":[],\"a\":1.5}}",
      "{\"process\":1,\"type\":\"o\\u006b\",\"f\":\"r\"}",
      "{\"pro\\u0063ess\":1,\"type\":\"ok\",\"f\":\"r\"}",
      "{\"process\":-0,\"type\":\"ok\",\"f\":\"r\",\"index\":-0,\"time_ns\":-0}",
      "{\"process\":1,\"type\":\"ok\",\"f\":\"r\",\"index\":-1}",
      "{\"process\":1,\"type\":\"ok\",\"f\":\"r\",\"index\":9223372036854775808}",
      "{\"process\":-9223372036854775808,\"type\":\"ok\",\"f\":\"r\",\"time_ns\":-5}",
      "{\"process\":1,\"type\":\"ok\",\"f\":\"\xc3\xa9\"}",
      "{\"process\":1,\"type\":\"ok\",\"f\":\"\"}",
      "\xef\xbb\xbf{\"process\":1,\"type\":\"ok\",\"f\":\"r\"}",
      " \t\r{ \"process\" :1 ,\"type\":\"ok\"\t,\"f\":\"r\" }\r\t ",
      "{\"process\":1,\"type\":\"ok\",\"f\":\"r\"}x",
      "{\"process\":1,\"type\":\"ok\",\"f\":\"r\"}{}",
      "{\"process\":1,\"type\":\"ok\",\"f\":\"r\",}",
      "{\"process\":1,\"type\":\"ok\",\"f\":\"r\"",
      std::string("{\"process\":1,\"type\":\"ok\",\"f\":\"r\"}") + '\0',
      std::string("{\"process\":1,\"type\":\"ok\",\"f\":\"r\",\"value\":\"a") + '\0' + "b\"}",
      "{}",
      "[]",
      "1",
      "\"x\"",
  };
  lines.insert(lines.end(), whole.begin(), whole.end());
  for (const std::string& line : lines) {
    for (const size_t depth_max : {0, 1, 2, 3, 8, 9, 31, 32, 33, 64}) {
      HistoryParseLimits limits;
      limits.json_depth_max = depth_max;
      const BothResults both = ParseBoth(line + "\n", limits);
      EXPECT_EQ(both.fast, both.reference) << line << " depth_max=" << depth_max;
    }
  }
  // Depth right at the fast path's own cap (32) and at json_depth_max's default (64).
  for (const size_t depth : {30, 31, 32, 33, 62, 63, 64, 65}) {
    const std::string line = head + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
    const BothResults both = ParseBoth(line + "\n");
    EXPECT_EQ(both.fast, both.reference) << "depth " << depth;
  }
}

TEST(HistoryIoTest, FastPathAgreesWithReferenceOnLineBreaksAndLimits) {
  // ReadLine reads a buffered chunk at a time where the reference reads byte by byte: the line
  // limit, CR stripping, blank lines and a last line without '\n' must come out the same.
  const std::string op = "{\"process\":1,\"type\":\"ok\",\"f\":\"r\"}";  // 37 bytes
  const std::vector<std::string> texts = {
      "",
      "\n",
      "\r\n",
      op,
      op + "\r",
      op + "\r\r\n",
      op + "\n\n" + op,
      " \n\t\n" + op + "\r\n" + op,
      op + "\n\r\n\v\n\f\n" + op + "\n",
      "\r" + op,
  };
  for (const std::string& text : texts) {
    for (const size_t bytes_max : {1, 36, 37, 38, 39, 100}) {
      for (const size_t ops_max : {1, 2, 10}) {
        HistoryParseLimits limits;
        limits.line_bytes_max = bytes_max;
        limits.ops_max = ops_max;
        const BothResults both = ParseBoth(text, limits);
        EXPECT_EQ(both.fast, both.reference) << text << " bytes_max=" << bytes_max;
      }
    }
  }
}

// A uniform draw from [lo, hi). rc::gen::inRange narrows its range at small sizes, which here
// would mostly generate lines without their required fields.
template <typename T>
T Pick(T lo, T hi) {
  return *rc::gen::resize(rc::kNominalSize, rc::gen::inRange<T>(lo, hi));
}

// Draws JSON-ish text: mostly lines the fast path takes, with, now and then (Rare), the tokens
// where it must decline or is most likely to differ from json: numbers at the int64/uint64 edges,
// floats, "-0", escapes, non-ASCII, quotes, keys repeated, spaces JSON does not allow.
class JsonishGen {
 public:
  static bool Rare() { return Pick<int>(0, 12) == 0; }
  std::string Space() {
    if (Pick<int>(0, 500) == 0) return "\f";  // not a JSON space
    static const std::vector<std::string> kSpaces = {"", "", "", "", "", " ", "\t", "\r", "  "};
    return *rc::gen::elementOf(kSpaces);
  }
  std::string Number() {
    // clang-format off
    static const std::vector<std::string> kRare = {
        "0", "-0", "01", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "-9223372036854775809", "18446744073709551615", "18446744073709551616",
        "99999999999999999999", "1.0", "1.5", "-0.0", "1e2", "1E-2", "0.1", "3.14159", "1e400",
        "1.", "-", "+1"};
    // clang-format on
    if (Rare()) return *rc::gen::elementOf(kRare);
    switch (Pick<int>(0, 3)) {
      case 0:
        return std::to_string(*rc::gen::arbitrary<int64_t>());
      case 1:
        return std::to_string(*rc::gen::arbitrary<uint64_t>());
      default:
        return std::to_string(Pick<int64_t>(-50, 50));
    }
  }
  std::string String() {
    // clang-format off
    static const std::vector<std::string> kRare = {
        "\\n", "\\\"", "\\u00e9", "\xc3\xa9", "\\ud83d\\ude00", "\\ud83d", "\x7f", "\t", "\\/",
        "\\u0000", "\xff", "\\", "\""};
    // clang-format on
    static const std::string kPlain = "abcxyzABC 019-+.,:;[]{}/~!#$%&'()*<=>?@^_`|";
    if (Rare()) {
      return "\"" + *rc::gen::elementOf(kRare) +
             *rc::gen::container<std::string>(rc::gen::inRange<char>(' ', '~')) + "\"";
    }
    return "\"" + *rc::gen::container<std::string>(rc::gen::elementOf(kPlain)) + "\"";
  }
  // The keys of one object, in random order, distinct unless Rare.
  std::vector<std::string> Keys(size_t n) {
    std::vector<std::string> keys = {"a", "b", "aa", "A", "", "key", "from", "to", "value", "z"};
    static const std::vector<std::string> kRare = {"\xc3\xa9", "k\\u0065y", "a\\\"b", "a", "b"};
    for (size_t i = keys.size(); i > 1; --i) std::swap(keys[i - 1], keys[Pick<size_t>(0, i)]);
    keys.resize(std::min(n, keys.size()));
    for (std::string& key : keys) {
      if (Rare()) key = *rc::gen::elementOf(kRare);
    }
    return keys;
  }
  std::string Value(int depth) {
    switch (Pick<int>(0, depth > 4 ? 5 : 8)) {
      case 0:
      case 1:
        return Number();
      case 2:
      case 3:
        return String();
      case 4:
        return *rc::gen::elementOf(Rare() ? std::vector<std::string>{"nul", "True", "nulll"}
                                          : std::vector<std::string>{"true", "false", "null"});
      case 5:
      case 6: {
        std::string out = "{" + Space();
        const std::vector<std::string> keys = Keys(Pick<size_t>(0, 5));
        for (size_t i = 0; i < keys.size(); ++i) {
          if (i > 0) out += "," + Space();
          out += "\"" + keys[i] + "\"" + Space() + ":" + Space() + Value(depth + 1) + Space();
        }
        return out + "}";
      }
      default: {
        std::string out = "[" + Space();
        const int n = Pick<int>(0, 5);
        for (int i = 0; i < n; ++i) {
          if (i > 0) out += "," + Space();
          out += Value(depth + 1) + Space();
        }
        return out + "]";
      }
    }
  }
  // One op line; `time_ns` is usually increasing so that most texts parse to a History.
  std::string Line(int64_t time_ns) {
    static const std::vector<std::string> kTypes = {"\"invoke\"", "\"ok\"", "\"fail\"", "\"info\""};
    static const std::vector<std::string> kRareTypes = {"\"done\"", "\"o\\u006b\"", "1"};
    std::vector<std::pair<std::string, std::string>> fields;
    if (Pick<int>(0, 40) != 0) fields.push_back({"process", Int()});
    if (Pick<int>(0, 40) != 0) {
      fields.push_back({"type", *rc::gen::elementOf(Rare() ? kRareTypes : kTypes)});
    }
    if (Pick<int>(0, 40) != 0) fields.push_back({"f", String()});
    if (Pick<int>(0, 4) != 0) fields.push_back({"value", Value(1)});
    if (Pick<int>(0, 3) != 0) fields.push_back({"time_ns", std::to_string(time_ns)});
    if (Pick<int>(0, 3) == 0) fields.push_back({"index", Int()});
    if (Pick<int>(0, 4) == 0) fields.push_back({"other", Value(1)});
    static const std::vector<std::string> kNames = {"process", "type",  "f",      "value",
                                                    "time_ns", "index", "Process"};
    while (Rare()) fields.push_back({*rc::gen::elementOf(kNames), Value(1)});  // repeated keys
    // Shuffled: the fast path must not depend on the order of the fields.
    for (size_t i = fields.size(); i > 1; --i) {
      std::swap(fields[i - 1], fields[Pick<size_t>(0, i)]);
    }
    std::string out = Space() + "{" + Space();
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out += "," + Space();
      out += "\"" + fields[i].first + "\"" + Space() + ":" + Space() + fields[i].second + Space();
    }
    return out + "}" + Space();
  }

 private:
  std::string Int() { return Rare() ? Number() : std::to_string(Pick<int64_t>(-5, 100)); }
};

// One differential case: a few generated lines, sometimes mutated, parsed whole and line by line
// under limits that sometimes cut through them. Adds the lines seen by each path to `total`.
void CheckGeneratedText(internal::HistoryParseCounters& total) {
  JsonishGen gen;
  std::vector<std::string> lines;
  const int n = Pick<int>(1, 6);
  for (int i = 0; i < n; ++i) lines.push_back(gen.Line(i * 10 + Pick<int>(0, 12)));
  std::string text;
  for (const std::string& line : lines) text += line + (Pick<int>(0, 8) == 0 ? "\r\n" : "\n");
  if (Pick<int>(0, 4) == 0) {
    using Edit = std::tuple<uint8_t, uint16_t, char>;
    const auto edits =
        *rc::gen::container<std::vector<Edit>>(Pick<size_t>(1, 4), rc::gen::arbitrary<Edit>());
    for (const auto& [kind, pos_raw, ch] : edits) {
      const size_t pos = pos_raw % (text.size() + 1);
      if (kind % 3 == 0) text.insert(pos, 1, ch);
      if (kind % 3 == 1 && pos < text.size()) text.erase(pos, 1);
      if (kind % 3 == 2 && pos < text.size()) text[pos] = ch;
    }
  }
  HistoryParseLimits limits;
  if (JsonishGen::Rare()) limits.json_depth_max = Pick<size_t>(0, 5);
  if (JsonishGen::Rare()) limits.line_bytes_max = Pick<size_t>(1, 120);
  if (JsonishGen::Rare()) limits.ops_max = Pick<size_t>(0, 4);
  std::vector<std::string> texts = {text};
  texts.insert(texts.end(), lines.begin(), lines.end());
  for (const std::string& t : texts) {
    const BothResults both = ParseBoth(t, limits);
    total.fast_lines += both.counters.fast_lines;
    total.dom_lines += both.counters.dom_lines;
    RC_ASSERT(both.fast == both.reference);
  }
}

TEST(HistoryIoTest, FuzzFastPathAgreesWithReference) {
  // The property the fast path exists under: for any text, ParseHistoryJsonl returns exactly what
  // the DOM-only reference returns (same ops, same values byte for byte, same error). Texts are
  // generated lines, sometimes mutated; each is checked whole and line by line, with limits that
  // cut through them. Both paths must be exercised, or the test would prove nothing.
  internal::HistoryParseCounters total;
  EXPECT_TRUE(rc::check([&] {
    for (int round = 0; round < 4; ++round) CheckGeneratedText(total);
  }));
  EXPECT_GT(total.fast_lines, 300u);
  EXPECT_GT(total.dom_lines, 300u);
}

}  // namespace
}  // namespace faultline::check
