#include "faultline/check/history_io.h"

#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace faultline::check {
namespace {

using nlohmann::json;

Status LineError(uint64_t line, std::string_view why) {
  return InvalidArgumentError("line " + std::to_string(line) + ": " + std::string(why));
}

enum class ReadOutcome { kLine, kEof, kTooLong };

// Reads one line into `out` without ever buffering more than `max_bytes` of it.
ReadOutcome ReadLine(std::istream& in, size_t max_bytes, std::string& out) {
  out.clear();
  std::streambuf* buf = in.rdbuf();
  if (buf == nullptr) return ReadOutcome::kEof;
  bool any = false;
  while (true) {
    const int c = buf->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      return any ? ReadOutcome::kLine : ReadOutcome::kEof;
    }
    any = true;
    if (c == '\n') break;
    if (out.size() >= max_bytes) {
      // Skip the rest so that a caller could continue; we stop at the error anyway.
      return ReadOutcome::kTooLong;
    }
    out.push_back(static_cast<char>(c));
  }
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return ReadOutcome::kLine;
}

bool IsBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\v') return false;
  }
  return true;
}

// Deepest array/object nesting outside strings. Over-approximates nothing that matters: it only
// has to bound the recursion of json::dump and of json's destructor.
size_t NestingDepth(std::string_view s) {
  size_t depth = 0;
  size_t depth_max = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : s) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++depth;
      if (depth > depth_max) depth_max = depth;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return depth_max;
}

std::optional<int64_t> AsInt64(const json& j) {
  if (j.is_number_unsigned()) {
    const auto u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  return std::nullopt;
}

std::optional<sim::OpType> ParseType(std::string_view s) {
  if (s == "invoke") return sim::OpType::kInvoke;
  if (s == "ok") return sim::OpType::kOk;
  if (s == "fail") return sim::OpType::kFail;
  if (s == "info") return sim::OpType::kInfo;
  return std::nullopt;
}

// Parses one non-blank line and appends it to `history`.
Status ParseLine(std::string_view line, uint64_t line_no, const HistoryParseLimits& limits,
                 sim::History& history) {
  if (NestingDepth(line) > limits.json_depth_max) {
    return LineError(line_no, "JSON nested deeper than " + std::to_string(limits.json_depth_max));
  }
  json j = json::parse(line, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return LineError(line_no, "not valid JSON");
  if (!j.is_object()) return LineError(line_no, "not a JSON object");

  auto process_it = j.find("process");
  if (process_it == j.end()) return LineError(line_no, "missing field \"process\"");
  const std::optional<int64_t> process = AsInt64(*process_it);
  if (!process) return LineError(line_no, "field \"process\" is not an int64");

  auto type_it = j.find("type");
  if (type_it == j.end()) return LineError(line_no, "missing field \"type\"");
  if (!type_it->is_string()) return LineError(line_no, "field \"type\" is not a string");
  const std::optional<sim::OpType> type = ParseType(type_it->get_ref<const std::string&>());
  if (!type) {
    return LineError(line_no, "unknown type " + type_it->dump(-1, ' ', true,
                                                             json::error_handler_t::replace));
  }

  auto f_it = j.find("f");
  if (f_it == j.end()) return LineError(line_no, "missing field \"f\"");
  if (!f_it->is_string()) return LineError(line_no, "field \"f\" is not a string");

  std::string value = "null";
  auto value_it = j.find("value");
  if (value_it != j.end()) value = value_it->dump(-1, ' ', false, json::error_handler_t::replace);

  auto index_it = j.find("index");
  if (index_it != j.end()) {
    const std::optional<int64_t> index = AsInt64(*index_it);
    if (!index || *index < 0) return LineError(line_no, "field \"index\" is not a non-negative int");
  }

  const std::vector<sim::HistoryOp>& ops = history.ops();
  int64_t time_ns = 0;
  auto time_it = j.find("time_ns");
  if (time_it != j.end()) {
    const std::optional<int64_t> t = AsInt64(*time_it);
    if (!t) return LineError(line_no, "field \"time_ns\" is not an int64");
    time_ns = *t;
    if (!ops.empty() && time_ns < ops.back().time_ns) {
      return LineError(line_no, "time goes backwards: " + std::to_string(time_ns) + " < " +
                                    std::to_string(ops.back().time_ns));
    }
  } else if (!ops.empty()) {
    const int64_t prev = ops.back().time_ns;
    time_ns = prev == std::numeric_limits<int64_t>::max() ? prev : prev + 1;
  }

  history.Add(*process, *type, f_it->get_ref<const std::string&>(), value, time_ns);
  return Status::Ok();
}

}  // namespace

Result<sim::History> ParseHistoryJsonl(std::istream& in, const HistoryParseLimits& limits) {
  FL_ASSERT(limits.line_bytes_max > 0);
  sim::History history;
  std::string line;
  uint64_t line_no = 0;
  while (true) {
    const ReadOutcome outcome = ReadLine(in, limits.line_bytes_max, line);
    if (outcome == ReadOutcome::kEof) break;
    ++line_no;
    if (outcome == ReadOutcome::kTooLong) {
      return LineError(line_no,
                       "line longer than " + std::to_string(limits.line_bytes_max) + " bytes");
    }
    if (IsBlank(line)) continue;
    if (history.size() >= limits.ops_max) {
      return LineError(line_no, "more than " + std::to_string(limits.ops_max) + " ops");
    }
    // The parser is used in its non-throwing mode; the catch is a backstop so that no exception
    // (e.g. std::bad_alloc) crosses the API as the header promises.
    try {
      FL_RETURN_IF_ERROR(ParseLine(line, line_no, limits, history));
    } catch (const std::exception& e) {
      return LineError(line_no, std::string("cannot parse: ") + e.what());
    }
  }
  return history;
}

}  // namespace faultline::check
