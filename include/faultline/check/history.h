// File: faultline/check/history.h
//
// A Jepsen-shaped operation history. A client operation is recorded twice: an `invoke` when it
// starts and, when it ends, `ok` (it took effect), `fail` (it certainly did not) or `info` (it may or
// may not have: a timeout, a crash). Checkers judge histories, never the code that produced them.
//
// JSON-lines export, one operation per line:
//   {"index":0,"process":3,"type":"invoke","f":"inc","value":1,"time_ns":1500000}
// `value` is any JSON value; History stores it as its JSON text.
//
// These types belong to the checker, not the simulator: a history recorded from a real system is
// built with History::Add (or read with check::ParseHistoryJsonl) and checked without linking
// faultline::sim. The simulator records into the same types (faultline/sim/history.h re-exports
// them as sim::History etc.).
//
// Thread safety: a History is a plain value; synchronise concurrent Add calls externally.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace faultline::check {

enum class OpType : uint8_t { kInvoke, kOk, kFail, kInfo };
const char* OpTypeName(OpType type);

struct HistoryOp {
  uint64_t index = 0;
  int64_t process = 0;
  OpType type = OpType::kInvoke;
  std::string f;
  std::string value;  // JSON text: "null", "3", "[1,2]", "\"x\""
  int64_t time_ns = 0;
};

class History {
 public:
  // Appends one op numbered size(). Requires: value_json non-empty, and time_ns not before the
  // previous op's (a history is in real-time order); violating either is a programming error.
  void Add(int64_t process, OpType type, std::string_view f, std::string_view value_json,
           int64_t time_ns);
  const std::vector<HistoryOp>& ops() const { return ops_; }
  size_t size() const { return ops_.size(); }
  void Clear() { ops_.clear(); }
  void WriteJsonl(std::ostream& out) const;

 private:
  std::vector<HistoryOp> ops_;
};

// Quotes and escapes `s` as a JSON string.
std::string JsonString(std::string_view s);

}  // namespace faultline::check
