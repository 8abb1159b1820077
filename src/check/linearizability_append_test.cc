// Tests for the kv model's append (Porcupine's kv semantics: string values concatenated, an unset
// key counting as ""), for minimisation on request, and for the single-pass value decoder, which
// must agree with the JSON DOM on every text.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "faultline/check/history_io.h"
#include "faultline/check/linearizability.h"
#include "src/check/linearizability_values.h"

namespace faultline::check {
namespace {

struct Builder {
  History h;
  int64_t t = 0;
  // A complete op of process p: invoke, then `type` with `out` (the invocation's value by default).
  Builder& Op(int64_t p, const char* f, const std::string& in, OpType type = OpType::kOk,
              const std::string& out = "") {
    h.Add(p, OpType::kInvoke, f, in, ++t);
    h.Add(p, type, f, out.empty() ? in : out, ++t);
    return *this;
  }
};

std::string Kv(int key, const std::string& value_json) {
  return "{\"key\":" + std::to_string(key) + ",\"value\":" + value_json + "}";
}

LinearizabilityResult CheckKv(const History& h, const CheckOptions& o = {}) {
  return Check(h, Model::kKv, o);
}

TEST(AppendTest, SequentialAppendsConcatenateFromAnUnsetKey) {
  // append "a", append "b" then read "ab": the unset key (null) counts as "".
  Builder b;
  b.Op(1, "append", Kv(1, "\"a\"")).Op(2, "append", Kv(1, "\"b\""));
  b.Op(3, "read", Kv(1, "null"), OpType::kOk, Kv(1, "\"ab\""));
  const LinearizabilityResult r = CheckKv(b.h);
  ASSERT_TRUE(r.error.ok()) << r.error.ToString();
  EXPECT_EQ(r.verdict, Verdict::kLinearizable);
  // The same history read as "ba" contradicts real-time order: not linearizable.
  Builder bad;
  bad.Op(1, "append", Kv(1, "\"a\"")).Op(2, "append", Kv(1, "\"b\""));
  bad.Op(3, "read", Kv(1, "null"), OpType::kOk, Kv(1, "\"ba\""));
  const LinearizabilityResult rb = CheckKv(bad.h);
  EXPECT_EQ(rb.verdict, Verdict::kNotLinearizable);
  ASSERT_TRUE(rb.explanation.has_value());
  EXPECT_EQ(rb.explanation->blocked_op, 4u);
}

TEST(AppendTest, WriteResetsAndAppendExtends) {
  // write "x", append "y", read "xy"; then write "" and append "z" reads "z".
  Builder b;
  b.Op(1, "write", Kv(7, "\"x\"")).Op(1, "append", Kv(7, "\"y\""));
  b.Op(2, "read", Kv(7, "null"), OpType::kOk, Kv(7, "\"xy\""));
  b.Op(1, "write", Kv(7, "\"\"")).Op(1, "append", Kv(7, "\"z\""));
  b.Op(2, "read", Kv(7, "null"), OpType::kOk, Kv(7, "\"z\""));
  EXPECT_EQ(CheckKv(b.h).verdict, Verdict::kLinearizable);
}

TEST(AppendTest, ConcurrentAppendsMayLandInEitherOrderButOnlyOne) {
  // Two overlapping appends: a later read may see "ab" or "ba"; two later reads seeing both
  // orders cannot be linearised.
  for (const char* seen : {"\"ab\"", "\"ba\""}) {
    History h;
    h.Add(1, OpType::kInvoke, "append", Kv(1, "\"a\""), 1);
    h.Add(2, OpType::kInvoke, "append", Kv(1, "\"b\""), 2);
    h.Add(1, OpType::kOk, "append", Kv(1, "\"a\""), 3);
    h.Add(2, OpType::kOk, "append", Kv(1, "\"b\""), 4);
    h.Add(3, OpType::kInvoke, "read", Kv(1, "null"), 5);
    h.Add(3, OpType::kOk, "read", Kv(1, seen), 6);
    EXPECT_EQ(CheckKv(h).verdict, Verdict::kLinearizable) << seen;
    h.Add(3, OpType::kInvoke, "read", Kv(1, "null"), 7);
    h.Add(3, OpType::kOk, "read", Kv(1, std::string(seen) == "\"ab\"" ? "\"ba\"" : "\"ab\""), 8);
    EXPECT_EQ(CheckKv(h).verdict, Verdict::kNotLinearizable) << seen;
  }
}

TEST(AppendTest, InfoAppendMayOrMayNotHaveHappenedAndIsNeverDropped) {
  // An append that timed out: a read may see it or not. Nobody reads the appended string itself
  // (only the concatenation), so the unobserved-info pre-pass must keep it.
  for (const char* seen : {"\"a\"", "\"ab\""}) {
    Builder b;
    b.Op(1, "append", Kv(1, "\"a\""));
    b.Op(2, "append", Kv(1, "\"b\""), OpType::kInfo);
    b.Op(3, "read", Kv(1, "null"), OpType::kOk, Kv(1, seen));
    const LinearizabilityResult r = CheckKv(b.h);
    EXPECT_EQ(r.verdict, Verdict::kLinearizable) << seen;
    EXPECT_EQ(r.stats.ops, 3u) << seen;
  }
  Builder b;
  b.Op(1, "append", Kv(1, "\"a\""));
  b.Op(2, "append", Kv(1, "\"b\""), OpType::kInfo);
  b.Op(3, "read", Kv(1, "null"), OpType::kOk, Kv(1, "\"ba\""));
  EXPECT_EQ(CheckKv(b.h).verdict, Verdict::kNotLinearizable);
}

TEST(AppendTest, FailedAppendIsDropped) {
  Builder b;
  b.Op(1, "append", Kv(1, "\"a\"")).Op(2, "append", Kv(1, "\"b\""), OpType::kFail);
  b.Op(3, "read", Kv(1, "null"), OpType::kOk, Kv(1, "\"a\""));
  EXPECT_EQ(CheckKv(b.h).verdict, Verdict::kLinearizable);
}

TEST(AppendTest, AppendOntoANonStringIsNotALegalStep) {
  // The register holds 5: an ok append cannot have happened after the write.
  Builder b;
  b.Op(1, "write", Kv(1, "5")).Op(1, "append", Kv(1, "\"x\""));
  EXPECT_EQ(CheckKv(b.h).verdict, Verdict::kNotLinearizable);
  // Concurrent with the write, it can go first.
  History h;
  h.Add(1, OpType::kInvoke, "write", Kv(1, "5"), 1);
  h.Add(2, OpType::kInvoke, "append", Kv(1, "\"x\""), 2);
  h.Add(1, OpType::kOk, "write", Kv(1, "5"), 3);
  h.Add(2, OpType::kOk, "append", Kv(1, "\"x\""), 4);
  EXPECT_EQ(CheckKv(h).verdict, Verdict::kLinearizable);
}

TEST(AppendTest, InitialEmptyStringAsPorcupineDoes) {
  // Porcupine's kv model starts every key at "": a read of an unwritten key returns "".
  Builder b;
  b.Op(1, "read", Kv(1, "null"), OpType::kOk, Kv(1, "\"\""));
  b.Op(1, "append", Kv(1, "\"q\""));
  b.Op(1, "read", Kv(1, "null"), OpType::kOk, Kv(1, "\"q\""));
  EXPECT_EQ(CheckKv(b.h).verdict, Verdict::kNotLinearizable);  // null is not ""
  CheckOptions o;
  o.initial_value_json = "\"\"";
  EXPECT_EQ(CheckKv(b.h, o).verdict, Verdict::kLinearizable);
}

TEST(AppendTest, EscapedStringsConcatenateByValue) {
  // Texts that are not canonical go through the JSON DOM; the concatenation is of the strings.
  Builder b;
  b.Op(1, "append", "{\"value\": \"a\\\"\", \"key\": 1}").Op(1, "append", Kv(1, "\"\\u00e9\""));
  b.Op(2, "read", Kv(1, "null"), OpType::kOk, Kv(1, "\"a\\\"\xC3\xA9\""));
  const LinearizabilityResult r = CheckKv(b.h);
  ASSERT_TRUE(r.error.ok()) << r.error.ToString();
  EXPECT_EQ(r.verdict, Verdict::kLinearizable);
}

TEST(AppendTest, RegisterModelAppends) {
  Builder b;
  b.Op(1, "append", "\"a\"").Op(2, "append", "\"b\"");
  b.Op(3, "read", "null", OpType::kOk, "\"ab\"");
  EXPECT_EQ(Check(b.h, Model::kRegister).verdict, Verdict::kLinearizable);
  b.Op(3, "read", "null", OpType::kOk, "\"a\"");
  EXPECT_EQ(Check(b.h, Model::kRegister).verdict, Verdict::kNotLinearizable);
}

TEST(AppendTest, MalformedAppendsAreErrorsNotVerdicts) {
  const std::vector<std::pair<std::string, std::string>> kv_cases = {
      {Kv(1, "3"), "JSON string"},
      {Kv(1, "null"), "JSON string"},
      {Kv(1, "[\"a\"]"), "JSON string"},
      {"{\"key\":1}", "\"value\""},
      {"{\"value\":\"a\"}", "\"key\""},
      {"\"a\"", "\"key\""},
      {"{\"key\":1,\"value\":\"a\"", "not valid JSON"},
  };
  for (const auto& [value, why] : kv_cases) {
    Builder b;
    b.Op(1, "append", value);
    const LinearizabilityResult r = CheckKv(b.h);
    EXPECT_FALSE(r.error.ok()) << value;
    EXPECT_EQ(r.error.code(), StatusCode::kInvalidArgument) << value;
    EXPECT_NE(r.error.message().find(why), std::string::npos) << value << ": " << r.error.message();
    EXPECT_EQ(r.error.message().rfind("op 0 (process 1)", 0), 0u) << r.error.message();
    EXPECT_EQ(r.verdict, Verdict::kUnknown);
  }
  for (const char* value : {"3", "null", "{\"key\":1,\"value\":\"a\"}", "[\"a\",\"b\"]"}) {
    Builder b;
    b.Op(1, "append", value);
    const LinearizabilityResult r = Check(b.h, Model::kRegister);
    EXPECT_NE(r.error.message().find("append value must be a JSON string"), std::string::npos)
        << value << ": " << r.error.message();
  }
  Builder b;
  b.Op(1, "appendx", Kv(1, "\"a\""));
  EXPECT_NE(CheckKv(b.h).error.message().find("expected read, write, cas or append"),
            std::string::npos);
}

// ---- Executed append histories ------------------------------------------------------------------

struct Generated {
  History history;
  std::vector<size_t> ok_reads;  // positions of ok read completions
};

// Clients run read/write/append against one string register per key; ops overlap at random and
// some time out (info) before or after taking effect. Linearizable by construction.
Generated GenerateAppends(uint64_t seed, int clients, int ops, int keys) {
  std::mt19937_64 rng(seed);
  auto uni = [&rng](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  struct Client {
    int phase = 0;  // 0 idle, 1 invoked, 2 took effect
    std::string f;
    std::string in;
    std::string out;
  };
  std::vector<Client> cs(static_cast<size_t>(clients));
  std::vector<std::string> regs(static_cast<size_t>(keys));  // contents; "" with set[k] false = null
  std::vector<bool> set(static_cast<size_t>(keys), false);
  Generated g;
  int64_t t = 0;
  int started = 0;
  int in_flight = 0;
  while (started < ops || in_flight > 0) {
    const int c = uni(clients);
    Client& cl = cs[static_cast<size_t>(c)];
    ++t;
    if (cl.phase == 0) {
      if (started >= ops) continue;
      ++started;
      ++in_flight;
      const int k = uni(keys);
      const int kind = uni(4);
      cl.f = kind == 0 ? "read" : kind == 1 ? "write" : "append";
      cl.in = kind == 0 ? Kv(k, "null") : Kv(k, "\"" + std::to_string(started) + ".\"");
      g.history.Add(c, OpType::kInvoke, cl.f, cl.in, t);
      cl.phase = 1;
    } else if (cl.phase == 1) {
      if (uni(15) == 0) {
        g.history.Add(c, OpType::kInfo, cl.f, cl.in, t);
        cl.phase = 0;
        --in_flight;
        continue;
      }
      const size_t k = static_cast<size_t>(std::stoi(cl.in.substr(7)));
      const std::string arg = cl.in.substr(cl.in.find("\"value\":") + 9);
      const std::string s = arg.substr(0, arg.size() - 2);  // without the closing "}
      cl.out = cl.in;
      if (cl.f == "read") {
        cl.out = Kv(static_cast<int>(k), set[k] ? "\"" + regs[k] + "\"" : "null");
      } else if (cl.f == "write") {
        regs[k] = s;
        set[k] = true;
      } else {
        regs[k] += s;
        set[k] = true;
      }
      cl.phase = 2;
    } else {
      const OpType type = uni(15) == 0 ? OpType::kInfo : OpType::kOk;
      if (type == OpType::kOk && cl.f == "read") g.ok_reads.push_back(g.history.size());
      g.history.Add(c, type, cl.f, cl.out, t);
      cl.phase = 0;
      --in_flight;
    }
  }
  return g;
}

History ReplaceValue(const History& h, size_t pos, const std::string& value) {
  History out;
  for (size_t i = 0; i < h.size(); ++i) {
    const HistoryOp& op = h.ops()[i];
    out.Add(op.process, op.type, op.f, i == pos ? value : op.value, op.time_ns);
  }
  return out;
}

TEST(AppendTest, ExecutedAppendHistoriesAreLinearizableAndCorruptedReadsAreNot) {
  rc::check([](uint64_t seed, uint8_t clients_raw, uint8_t ops_raw) {
    const int clients = 1 + clients_raw % 5;
    const int ops = 1 + ops_raw % 40;
    const Generated g = GenerateAppends(seed, clients, ops, 2);
    const LinearizabilityResult r = CheckKv(g.history);
    RC_ASSERT(r.error.ok());
    RC_ASSERT(r.verdict == Verdict::kLinearizable);
    if (g.ok_reads.empty()) return;
    const size_t pos = g.ok_reads[seed % g.ok_reads.size()];
    const std::string& v = g.history.ops()[pos].value;
    // A string nobody appended ("#" appears in no argument) cannot be read.
    const std::string bad = v.substr(0, v.find("\"value\":") + 8) + "\"#\"}";
    const LinearizabilityResult m = CheckKv(ReplaceValue(g.history, pos, bad));
    RC_ASSERT(m.verdict == Verdict::kNotLinearizable);
  });
}

TEST(AppendTest, MinimizeNeverChangesTheVerdictAndKeepsAFailingSubset) {
  // Random reads replaced by strings that may or may not be reachable: the verdict with and
  // without minimisation must agree, and the minimal set must be a subset of the ops that still
  // fails on its own.
  rc::check([](uint64_t seed, uint8_t clients_raw, uint8_t ops_raw) {
    const int clients = 1 + clients_raw % 4;
    const int ops = 1 + ops_raw % 30;
    const Generated g = GenerateAppends(seed, clients, ops, 1);
    if (g.ok_reads.empty()) return;
    const size_t pos = g.ok_reads[seed % g.ok_reads.size()];
    const std::string reads[] = {"\"\"", "\"1.\"", "\"2.1.\"", "\"3.\"", "null"};
    const History h = ReplaceValue(g.history, pos, Kv(0, reads[(seed >> 8) % 5]));
    CheckOptions minimize;
    minimize.minimize = true;
    const LinearizabilityResult fast = CheckKv(h);
    const LinearizabilityResult slow = CheckKv(h, minimize);
    RC_ASSERT(fast.verdict == slow.verdict);
    if (fast.verdict != Verdict::kNotLinearizable) return;
    RC_ASSERT(fast.explanation.has_value() && slow.explanation.has_value());
    RC_ASSERT(fast.explanation->blocked_op == slow.explanation->blocked_op);
    RC_ASSERT(!fast.explanation->minimized);
    RC_ASSERT(slow.explanation->minimized);
    // The minimal set, as a history of its own, still fails.
    std::vector<bool> keep(h.size(), false);
    for (uint64_t i : slow.explanation->minimal_ops) keep[i] = true;
    History sub;
    std::vector<int64_t> open_of(16, -1);
    for (size_t i = 0; i < h.size(); ++i) {
      const HistoryOp& op = h.ops()[i];
      if (op.type == OpType::kInvoke) {
        open_of[static_cast<size_t>(op.process)] = keep[i] ? static_cast<int64_t>(i) : -1;
        if (keep[i]) sub.Add(op.process, op.type, op.f, op.value, op.time_ns);
      } else if (open_of[static_cast<size_t>(op.process)] >= 0) {
        sub.Add(op.process, op.type, op.f, op.value, op.time_ns);
      }
    }
    RC_ASSERT(CheckKv(sub).verdict == Verdict::kNotLinearizable);
  });
}

TEST(AppendTest, MinimizeEffortBoundsTheMinimisationByTheChecksOwnCost) {
  // 100 sequential appends, then a read of a string nobody appended: the check explores about
  // 100 states; minimising runs a search per op, about 100 x 100 / 2 states. An effort of 1
  // stops it early (the unminimised explanation stands); none lets it finish.
  Builder b;
  for (int i = 0; i < 100; ++i) b.Op(1, "append", Kv(1, "\"" + std::to_string(i) + "\""));
  b.Op(2, "read", Kv(1, "null"), OpType::kOk, Kv(1, "\"#\""));
  CheckOptions o;
  o.minimize = true;
  const LinearizabilityResult full = CheckKv(b.h, o);
  ASSERT_EQ(full.verdict, Verdict::kNotLinearizable);
  EXPECT_LE(full.stats.states_explored, 200u);
  EXPECT_TRUE(full.explanation->minimized);
  EXPECT_EQ(full.explanation->minimal_ops, (std::vector<uint64_t>{200}));  // the read alone
  o.minimize_effort = 1;
  const LinearizabilityResult bounded = CheckKv(b.h, o);
  ASSERT_EQ(bounded.verdict, Verdict::kNotLinearizable);
  EXPECT_FALSE(bounded.explanation->minimized);
  EXPECT_EQ(bounded.explanation->blocked_op, full.explanation->blocked_op);
  o.minimize_effort = 200;
  EXPECT_TRUE(CheckKv(b.h, o).explanation->minimized);
}

// ---- The value decoder --------------------------------------------------------------------------

void ExpectSameDecoding(const std::string& text) {
  internal::ValueTable fast_table;
  internal::ValueTable dom_table;
  internal::Decoded fast;
  internal::Decoded dom;
  const bool fast_ok = internal::DecodeValue(text, true, fast_table, fast);
  const bool dom_ok = internal::DecodeValueDom(text, true, dom_table, dom);
  RC_ASSERT(fast_ok == dom_ok);
  if (!fast_ok) return;
  auto text_of = [](const internal::ValueTable& t, int64_t id) { return std::string(t.Text(id)); };
  RC_ASSERT(fast.is_object == dom.is_object);
  RC_ASSERT(fast.is_pair == dom.is_pair);
  RC_ASSERT(fast.has_key == dom.has_key);
  RC_ASSERT(fast.has_value == dom.has_value);
  RC_ASSERT(fast.has_from_to == dom.has_from_to);
  RC_ASSERT(std::string(fast.key) == std::string(dom.key));
  RC_ASSERT(text_of(fast_table, fast.whole) == text_of(dom_table, dom.whole));
  if (fast.is_object) {
    RC_ASSERT(text_of(fast_table, fast.value) == text_of(dom_table, dom.value));
  }
  if (fast.is_pair) {
    RC_ASSERT(text_of(fast_table, fast.first) == text_of(dom_table, dom.first));
    RC_ASSERT(text_of(fast_table, fast.second) == text_of(dom_table, dom.second));
  }
  if (fast.has_from_to) {
    RC_ASSERT(text_of(fast_table, fast.from) == text_of(dom_table, dom.from));
    RC_ASSERT(text_of(fast_table, fast.to) == text_of(dom_table, dom.to));
  }
}

TEST(ValueDecoderTest, FastPathAgreesWithTheDomOnEdgeCases) {
  for (const char* text :
       {"null", "true", "false", "0", "-0", "-1", "007", "1.5", "1e3", "123456789012345678",
        "1234567890123456789", "99999999999999999999", "\"\"", "\"a b\"", "\"\\n\"", "\"\xC3\xA9\"",
        "[1,2]", "[1, 2]", "[1,2,3]", "[]", "[[1],2]", "{}", "{ }", "{\"key\":1}",
        "{\"key\":1,\"value\":\"x\"}", "{\"value\":\"x\",\"key\":1}", "{\"key\":1,\"key\":2}",
        "{\"from\":1,\"key\":\"k\",\"to\":2}", "{\"from\":1,\"key\":2}", "{\"key\":[1],\"value\":2}",
        "{\"key\":1,\"value\":2} ", " 1", "{\"key\":1,\"value\":2", "{\"key\":1,}", "tru", "nul",
        "\"unterminated", "{\"a\":1,\"b\":{\"c\":2}}", "{\"key\":-0,\"value\":01}", "", "x"}) {
    ExpectSameDecoding(text);
  }
}

TEST(ValueDecoderTest, FuzzFastPathAgreesWithTheDom) {
  // Random texts over the characters that matter to the scanner.
  rc::check([](const std::vector<uint8_t>& picks) {
    static const char* const kPieces[] = {"{", "}", "[", "]", ",", ":", "\"key\"", "\"value\"",
                                          "\"from\"", "\"to\"", "\"a\"", "1", "-", "0", "12",
                                          "null", "true", " ", "\"", "\\", ".5", "e"};
    std::string text;
    for (uint8_t p : picks) text += kPieces[p % (sizeof(kPieces) / sizeof(kPieces[0]))];
    ExpectSameDecoding(text);
  });
}

TEST(ValueDecoderTest, AppendCachesAndRejectsNonStrings) {
  internal::ValueTable t;
  const int64_t a = t.Id("\"a\"");
  const int64_t b = t.Id("\"b\"");
  const int64_t ab = t.Append(a, b);
  EXPECT_EQ(t.Text(ab), "\"ab\"");
  EXPECT_EQ(t.Append(a, b), ab);
  EXPECT_EQ(t.Id("\"ab\""), ab);
  EXPECT_EQ(t.Append(internal::ValueTable::kNull, b), b);
  EXPECT_EQ(t.Append(t.Id("5"), b), internal::ValueTable::kNoState);
  EXPECT_EQ(t.Append(t.Id("\"\""), b), b);
}

TEST(AppendTest, FuzzParsedAppendHistoriesNeverCrash) {
  // Mutated JSON-lines histories with appends: parsing and checking yield a verdict or a clear
  // error, never a crash.
  const std::string base =
      "{\"process\":1,\"type\":\"invoke\",\"f\":\"append\",\"value\":{\"key\":1,\"value\":\"a\"}}\n"
      "{\"process\":1,\"type\":\"ok\",\"f\":\"append\",\"value\":{\"key\":1,\"value\":\"a\"}}\n"
      "{\"process\":2,\"type\":\"invoke\",\"f\":\"read\",\"value\":{\"key\":1,\"value\":null}}\n"
      "{\"process\":2,\"type\":\"ok\",\"f\":\"read\",\"value\":{\"key\":1,\"value\":\"a\"}}\n";
  rc::check([&](const std::vector<std::tuple<uint16_t, char>>& edits) {
    std::string text = base;
    for (const auto& [pos, ch] : edits) text[pos % text.size()] = ch;
    std::istringstream in(text);
    Result<History> h = ParseHistoryJsonl(in);
    if (!h.ok()) return;
    for (Model m : {Model::kKv, Model::kRegister}) {
      const LinearizabilityResult r = Check(*h, m);
      if (!r.error.ok()) {
        RC_ASSERT(r.error.code() == StatusCode::kInvalidArgument);
        RC_ASSERT(r.verdict == Verdict::kUnknown);
      } else {
        RC_ASSERT(r.verdict != Verdict::kUnknown);
      }
    }
  });
}

}  // namespace
}  // namespace faultline::check
