// Unit tests for faultline/check/history_io.h: reading JSON-lines histories. The parser reads
// files from outside the process, so every malformed input must become a line-numbered
// kInvalidArgument, never a crash; rapidcheck fuzzes it with random bytes and mutated lines.
#include "faultline/check/history_io.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace faultline::check {
namespace {

Result<sim::History> Parse(const std::string& text, const HistoryParseLimits& limits = {}) {
  std::istringstream in(text);
  return ParseHistoryJsonl(in, limits);
}

void ExpectError(const std::string& text, const std::string& prefix, const std::string& needle,
                 const HistoryParseLimits& limits = {}) {
  Result<sim::History> r = Parse(text, limits);
  ASSERT_FALSE(r.ok()) << text;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  const std::string msg(r.status().message());
  EXPECT_EQ(msg.rfind(prefix, 0), 0u) << msg;
  EXPECT_NE(msg.find(needle), std::string::npos) << msg;
}

TEST(HistoryIoTest, RoundTripsWriteJsonl) {
  // What WriteJsonl writes must read back identically, or saved failing runs could not be
  // re-checked offline.
  sim::History h;
  h.Add(3, sim::OpType::kInvoke, "write", "1", 1500000);
  h.Add(3, sim::OpType::kOk, "write", "1", 1600000);
  h.Add(4, sim::OpType::kInvoke, "cas", "[1,2]", 1600000);
  h.Add(4, sim::OpType::kInfo, "cas", "{\"key\":\"a\",\"v\":[1,null]}", 1700000);
  h.Add(5, sim::OpType::kFail, "read", "\"x\\ny\"", 1800000);
  std::ostringstream out;
  h.WriteJsonl(out);
  Result<sim::History> r = Parse(out.str());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    const sim::HistoryOp& a = h.ops()[i];
    const sim::HistoryOp& b = r->ops()[i];
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
  Result<sim::History> r = Parse(
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
  rc::check([](const std::string& bytes) {
    Result<sim::History> r = Parse(bytes);
    if (!r.ok()) {
      RC_ASSERT(r.status().code() == StatusCode::kInvalidArgument);
      RC_ASSERT(r.status().message().rfind("line ", 0) == 0);
    }
  });
}

TEST(HistoryIoTest, FuzzMutatedValidLinesNeverCrash) {
  // Random bytes rarely get past the JSON parser; mutating valid lines reaches the field checks.
  const std::vector<std::string> seeds = {
      "{\"index\":0,\"process\":3,\"type\":\"invoke\",\"f\":\"write\",\"value\":1,\"time_ns\":1500000}",
      "{\"index\":1,\"process\":3,\"type\":\"ok\",\"f\":\"cas\",\"value\":[1,{\"a\":null}],\"time_ns\":1600000}",
      "{\"process\":-7,\"type\":\"info\",\"f\":\"read\",\"value\":\"\\u00e9\"}",
  };
  rc::check([&](const std::vector<std::tuple<uint8_t, uint16_t, char, uint8_t>>& edits) {
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
    Result<sim::History> r = Parse(text, limits);
    if (!r.ok()) {
      RC_ASSERT(r.status().code() == StatusCode::kInvalidArgument);
      RC_ASSERT(r.status().message().rfind("line ", 0) == 0);
    } else {
      RC_ASSERT(r->size() <= 5u);
    }
  });
}

}  // namespace
}  // namespace faultline::check
