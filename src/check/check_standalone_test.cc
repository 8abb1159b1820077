// faultline::check on its own: this program links faultline::check and GoogleTest only (see
// src/CMakeLists.txt), the way a user checking a history recorded from a real system would. It
// reads and checks histories through the public headers, with no simulator in the link.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "faultline/check/history.h"
#include "faultline/check/history_io.h"
#include "faultline/check/linearizability.h"

namespace faultline::check {
namespace {

// Two clients on one register: p1 writes 1, p2 reads it while the write is in flight.
constexpr char kGoodHistory[] =
    "{\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":1,\"time_ns\":10}\n"
    "{\"process\":2,\"type\":\"invoke\",\"f\":\"read\",\"value\":null,\"time_ns\":20}\n"
    "{\"process\":2,\"type\":\"ok\",\"f\":\"read\",\"value\":1,\"time_ns\":30}\n"
    "{\"process\":1,\"type\":\"ok\",\"f\":\"write\",\"value\":1,\"time_ns\":40}\n";

// The write completed before the read began, yet the read saw the initial null.
constexpr char kStaleRead[] =
    "{\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":1,\"time_ns\":10}\n"
    "{\"process\":1,\"type\":\"ok\",\"f\":\"write\",\"value\":1,\"time_ns\":20}\n"
    "{\"process\":2,\"type\":\"invoke\",\"f\":\"read\",\"value\":null,\"time_ns\":30}\n"
    "{\"process\":2,\"type\":\"ok\",\"f\":\"read\",\"value\":null,\"time_ns\":40}\n";

History Parse(const char* text) {
  std::istringstream in(text);
  Result<History> h = ParseHistoryJsonl(in);
  EXPECT_TRUE(h.ok()) << h.status().ToString();
  return h.ok() ? *h : History();
}

TEST(CheckStandaloneTest, ParsedHistoryIsLinearizable) {
  const History h = Parse(kGoodHistory);
  ASSERT_EQ(h.size(), 4u);
  const LinearizabilityResult r = Check(h, Model::kRegister);
  EXPECT_TRUE(r.error.ok()) << r.error.ToString();
  EXPECT_EQ(r.verdict, Verdict::kLinearizable);
  EXPECT_EQ(r.stats.ops, 2u);
}

TEST(CheckStandaloneTest, StaleReadIsFoundWithAnInjectedClock) {
  ManualClock clock;
  CheckOptions options;
  options.clock = &clock;
  const LinearizabilityResult r = Check(Parse(kStaleRead), Model::kRegister, options);
  EXPECT_EQ(r.verdict, Verdict::kNotLinearizable);
  ASSERT_TRUE(r.explanation.has_value());
  EXPECT_EQ(r.explanation->blocked_op, 2u);
  EXPECT_EQ(r.stats.elapsed, Duration::Zero());  // the manual clock did not move
}

TEST(CheckStandaloneTest, HistoryBuiltInCodeRoundTripsThroughJsonl) {
  // What a recorder in a real system does: Add ops as they happen, write JSON lines, check later.
  History h;
  h.Add(7, OpType::kInvoke, "write", JsonString("a"), 100);
  h.Add(7, OpType::kOk, "write", JsonString("a"), 200);
  h.Add(8, OpType::kInvoke, "read", "null", 300);
  h.Add(8, OpType::kOk, "read", JsonString("a"), 400);
  std::ostringstream out;
  h.WriteJsonl(out);
  const History back = Parse(out.str().c_str());
  ASSERT_EQ(back.size(), h.size());
  EXPECT_EQ(back.ops()[3].value, "\"a\"");
  EXPECT_EQ(Check(back, Model::kRegister).verdict, Verdict::kLinearizable);
}

}  // namespace
}  // namespace faultline::check
