#include "faultline/check/history.h"

#include <cstdio>

#include "faultline/core/assert.h"

namespace faultline::check {

const char* OpTypeName(OpType type) {
  switch (type) {
    case OpType::kInvoke: return "invoke";
    case OpType::kOk: return "ok";
    case OpType::kFail: return "fail";
    case OpType::kInfo: return "info";
  }
  return "?";
}

void History::Add(int64_t process, OpType type, std::string_view f, std::string_view value_json,
                  int64_t time_ns) {
  FL_ASSERT(!value_json.empty());
  FL_ASSERT(ops_.empty() || ops_.back().time_ns <= time_ns);
  ops_.push_back(HistoryOp{ops_.size(), process, type, std::string(f), std::string(value_json),
                           time_ns});
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

void History::WriteJsonl(std::ostream& out) const {
  for (const HistoryOp& op : ops_) {
    out << "{\"index\":" << op.index << ",\"process\":" << op.process << ",\"type\":\""
        << OpTypeName(op.type) << "\",\"f\":" << JsonString(op.f) << ",\"value\":" << op.value
        << ",\"time_ns\":" << op.time_ns << "}\n";
  }
}

}  // namespace faultline::check
