#include "faultline/check/history_io.h"

#include "src/check/history_io_internal.h"
#include "src/check/json_scan.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace faultline::check {
namespace {

using nlohmann::json;

Status LineError(uint64_t line, std::string_view why) {
  return InvalidArgumentError("line " + std::to_string(line) + ": " + std::string(why));
}

enum class ReadOutcome { kLine, kEof, kTooLong };

// Reads one line into `out` without ever buffering more than `max_bytes` of it, one byte at a time
// (the reference implementation; ReadLine below must consume and return exactly the same).
ReadOutcome ReadLineBytewise(std::istream& in, size_t max_bytes, std::string& out) {
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

// std::streambuf keeps its get area protected. Naming the members through a derived class to form
// pointers to them is well-defined and lets ReadLine memchr over the buffered bytes instead of
// paying a call and a push_back per byte.
class GetArea : public std::streambuf {
 public:
  static const char* Next(std::streambuf& buf) { return (buf.*&GetArea::gptr)(); }
  static const char* End(std::streambuf& buf) { return (buf.*&GetArea::egptr)(); }
  static void Skip(std::streambuf& buf, int n) { (buf.*&GetArea::gbump)(n); }
};

// Same contract and same bytes consumed as ReadLineBytewise, a buffered chunk at a time.
ReadOutcome ReadLine(std::istream& in, size_t max_bytes, std::string& out) {
  out.clear();
  std::streambuf* buf = in.rdbuf();
  if (buf == nullptr) return ReadOutcome::kEof;
  bool any = false;
  while (true) {
    const char* next = GetArea::Next(*buf);
    const size_t available = static_cast<size_t>(GetArea::End(*buf) - next);
    if (available == 0) {
      // Empty get area: sbumpc refills it (or, for an unbuffered streambuf, hands over one byte).
      const int c = buf->sbumpc();
      if (c == std::char_traits<char>::eof()) {
        in.setstate(std::ios::eofbit);
        return any ? ReadOutcome::kLine : ReadOutcome::kEof;
      }
      any = true;
      if (c == '\n') break;
      if (out.size() >= max_bytes) return ReadOutcome::kTooLong;
      out.push_back(static_cast<char>(c));
      continue;
    }
    // gbump takes an int; a chunk is at most 1 GiB.
    const size_t chunk = std::min<size_t>(available, size_t{1} << 30);
    const char* newline = static_cast<const char*>(std::memchr(next, '\n', chunk));
    const size_t n = newline != nullptr ? static_cast<size_t>(newline - next) : chunk;
    any = true;
    if (n > max_bytes - out.size()) {
      // ReadLineBytewise stops right after the first byte past the limit.
      GetArea::Skip(*buf, static_cast<int>(max_bytes - out.size() + 1));
      return ReadOutcome::kTooLong;
    }
    out.append(next, n);
    GetArea::Skip(*buf, static_cast<int>(newline != nullptr ? n + 1 : n));
    if (newline != nullptr) break;
  }
  FL_ASSERT(out.size() <= max_bytes);
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

std::optional<OpType> ParseType(std::string_view s) {
  if (s == "invoke") return OpType::kInvoke;
  if (s == "ok") return OpType::kOk;
  if (s == "fail") return OpType::kFail;
  if (s == "info") return OpType::kInfo;
  return std::nullopt;
}

// Parses one non-blank line through a full nlohmann::json DOM and appends it to `history`.
Status ParseLineDom(std::string_view line, uint64_t line_no, const HistoryParseLimits& limits,
                    History& history) {
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
  const std::optional<OpType> type = ParseType(type_it->get_ref<const std::string&>());
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

  const std::vector<HistoryOp>& ops = history.ops();
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

// ---- Fast path ----------------------------------------------------------------------------------
//
// One pass over the line, no DOM. It accepts a strict subset of JSON: strings of printable ASCII
// without escapes, integers that json stores exactly as written (not "-0", no overflow), true,
// false, null, arrays and objects, at most kFastDepthMax deep; "value" is written straight to its
// compact text as json::dump would print it, object members sorted by key as json's std::map
// orders them. Anything else (floats, escapes, non-ASCII bytes, duplicate keys inside "value") and
// anything wrong (bad JSON, a failing field check) makes Parse return false; the caller then
// re-parses the line with ParseLineDom, so unusual lines and every error message take exactly the
// reference path. The one obligation here: a line Parse accepts yields the op ParseLineDom would.

constexpr size_t kFastDepthMax = 32;  // also bounds Parse's recursion

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

using internal::SkipPlainStringBytes;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

class FastLineParser {
 public:
  // Appends the op on `line` to `history` and returns true, or returns false with `history`
  // untouched when the line is outside the subset or wrong in any way.
  bool Parse(std::string_view line, size_t depth_max, History& history);

 private:
  // The fields of the top-level object; a repeated key overwrites, as in json's std::map.
  struct Fields {
    std::optional<int64_t> process;
    std::optional<std::string_view> type;
    std::optional<std::string_view> f;
    bool has_value = false;  // the text is in value_
    std::optional<int64_t> time_ns;
    std::optional<int64_t> index;
  };
  // One member of an object being scanned inside "value": `"key":value` is value_[begin, end).
  struct Member {
    std::string_view key;
    size_t begin;
    size_t end;
  };

  void SkipSpace() {
    while (p_ != end_ && IsJsonSpace(*p_)) ++p_;
  }
  bool Consume(char c) {
    SkipSpace();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  bool ScanField(std::string_view key, Fields& fields);
  bool ScanString(std::string_view& out);
  bool ScanInteger(bool& negative, uint64_t& magnitude);
  bool ScanInt64(std::optional<int64_t>& out);
  bool ScanLiteral(std::string_view word);
  // The Scan*Value functions append compact text to value_; `depth` is that of the container
  // the value is in (1 = the line's object).
  bool ScanValue(size_t depth);
  bool ScanArray(size_t depth);
  bool ScanObject(size_t depth);
  bool SortMembers(size_t open, size_t base);
  bool Append(const Fields& fields, History& history);

  const char* p_ = nullptr;
  const char* end_ = nullptr;
  size_t depth_max_ = 0;
  std::string value_;
  std::vector<Member> members_;  // a stack: an object's members sit above its container's
  std::string reorder_;
};

bool FastLineParser::Parse(std::string_view line, size_t depth_max, History& history) {
  p_ = line.data();
  end_ = line.data() + line.size();
  depth_max_ = std::min(depth_max, kFastDepthMax);
  value_.clear();
  members_.clear();
  Fields fields;
  if (depth_max_ < 1 || !Consume('{')) return false;
  do {
    std::string_view key;
    if (!ScanString(key) || !Consume(':') || !ScanField(key, fields)) return false;
  } while (Consume(','));
  if (!Consume('}')) return false;
  SkipSpace();
  if (p_ != end_) return false;
  FL_ASSERT(members_.empty());
  return Append(fields, history);
}

bool FastLineParser::ScanField(std::string_view key, Fields& fields) {
  if (key == "process") return ScanInt64(fields.process);
  if (key == "time_ns") return ScanInt64(fields.time_ns);
  if (key == "index") return ScanInt64(fields.index);
  if (key == "type" || key == "f") {
    std::string_view s;
    if (!ScanString(s)) return false;
    (key == "f" ? fields.f : fields.type) = s;
    return true;
  }
  if (key == "value") {
    value_.clear();
    fields.has_value = true;
    return ScanValue(1);
  }
  // Any other key: its value must still be valid JSON, but is not kept.
  const size_t mark = value_.size();
  if (!ScanValue(1)) return false;
  value_.resize(mark);
  return true;
}

bool FastLineParser::ScanString(std::string_view& out) {
  SkipSpace();
  if (p_ == end_ || *p_ != '"') return false;
  const char* begin = ++p_;
  p_ = SkipPlainStringBytes(p_, end_);
  if (p_ == end_ || *p_ != '"') return false;  // an escape, a control or non-ASCII byte, or EOL
  out = std::string_view(begin, static_cast<size_t>(p_ - begin));
  ++p_;
  return true;
}

// The integers accepted are exactly those json stores as number_integer / number_unsigned and
// dumps digit for digit as written; the rest json reads as floats ("1.0", "1e3",
// "-9223372036854775809", "18446744073709551616") or dumps differently ("-0" -> "0").
bool FastLineParser::ScanInteger(bool& negative, uint64_t& magnitude) {
  SkipSpace();
  negative = p_ != end_ && *p_ == '-';
  if (negative) ++p_;
  if (p_ == end_ || !IsDigit(*p_)) return false;
  magnitude = 0;
  if (*p_ == '0') {
    ++p_;
  } else {
    while (p_ != end_ && IsDigit(*p_)) {
      const uint64_t digit = static_cast<uint64_t>(*p_ - '0');
      if (magnitude > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
      magnitude = magnitude * 10 + digit;
      ++p_;
    }
  }
  if (p_ != end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E' || IsDigit(*p_))) return false;
  constexpr uint64_t kInt64MinMagnitude = uint64_t{1} << 63;
  return !negative || (magnitude != 0 && magnitude <= kInt64MinMagnitude);
}

bool FastLineParser::ScanInt64(std::optional<int64_t>& out) {
  bool negative = false;
  uint64_t magnitude = 0;
  if (!ScanInteger(negative, magnitude)) return false;
  if (negative) {
    // Two's complement: the negation of the magnitude, also for INT64_MIN's 2^63.
    out = static_cast<int64_t>(~magnitude + 1);
    FL_ASSERT(*out < 0);
    return true;
  }
  if (magnitude > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  out = static_cast<int64_t>(magnitude);
  return true;
}

bool FastLineParser::ScanLiteral(std::string_view word) {
  if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
    return false;
  }
  p_ += word.size();
  value_ += word;
  return true;
}

bool FastLineParser::ScanValue(size_t depth) {
  SkipSpace();
  if (p_ == end_) return false;
  switch (*p_) {
    case '{': return ScanObject(depth + 1);
    case '[': return ScanArray(depth + 1);
    case 't': return ScanLiteral("true");
    case 'f': return ScanLiteral("false");
    case 'n': return ScanLiteral("null");
    case '"': {
      std::string_view s;
      if (!ScanString(s)) return false;
      value_ += '"';
      value_ += s;
      value_ += '"';
      return true;
    }
    default: {
      const char* begin = p_;
      bool negative = false;
      uint64_t magnitude = 0;
      if (!ScanInteger(negative, magnitude)) return false;
      value_.append(begin, static_cast<size_t>(p_ - begin));
      return true;
    }
  }
}

bool FastLineParser::ScanArray(size_t depth) {
  if (depth > depth_max_) return false;
  FL_ASSERT(*p_ == '[');
  ++p_;
  value_ += '[';
  SkipSpace();
  if (p_ != end_ && *p_ == ']') {
    ++p_;
    value_ += ']';
    return true;
  }
  do {
    if (!ScanValue(depth)) return false;
    if (!Consume(',')) break;
    value_ += ',';
  } while (true);
  if (!Consume(']')) return false;
  value_ += ']';
  return true;
}

bool FastLineParser::ScanObject(size_t depth) {
  if (depth > depth_max_) return false;
  FL_ASSERT(*p_ == '{');
  ++p_;
  const size_t open = value_.size();
  const size_t base = members_.size();
  value_ += '{';
  SkipSpace();
  if (p_ != end_ && *p_ == '}') {
    ++p_;
    value_ += '}';
    return true;
  }
  do {
    std::string_view key;
    if (!ScanString(key) || !Consume(':')) return false;
    const size_t begin = value_.size();
    value_ += '"';
    value_ += key;
    value_ += "\":";
    if (!ScanValue(depth)) return false;
    members_.push_back(Member{key, begin, value_.size()});
    if (!Consume(',')) break;
    value_ += ',';
  } while (true);
  if (!Consume('}') || !SortMembers(open, base)) return false;
  members_.resize(base);
  value_ += '}';
  return true;
}

// Rewrites the members of the object opened at value_[open] (members_[base..]) in key order.
// Returns false on a duplicate key: json keeps the last one, a case left to the DOM parser.
bool FastLineParser::SortMembers(size_t open, size_t base) {
  FL_ASSERT(value_[open] == '{' && base < members_.size());
  const auto first = members_.begin() + static_cast<std::ptrdiff_t>(base);
  const auto by_key = [](const Member& a, const Member& b) { return a.key < b.key; };
  const auto not_ascending = [](const Member& a, const Member& b) { return !(a.key < b.key); };
  if (std::adjacent_find(first, members_.end(), not_ascending) == members_.end()) return true;
  std::sort(first, members_.end(), by_key);
  const auto same_key = [](const Member& a, const Member& b) { return a.key == b.key; };
  if (std::adjacent_find(first, members_.end(), same_key) != members_.end()) return false;
  reorder_.clear();
  for (auto it = first; it != members_.end(); ++it) {
    if (it != first) reorder_ += ',';
    reorder_.append(value_, it->begin, it->end - it->begin);
  }
  FL_ASSERT(reorder_.size() + open + 1 == value_.size());
  value_.resize(open + 1);
  value_ += reorder_;
  return true;
}

// The field checks of ParseLineDom, on the fields of a line that is valid JSON.
bool FastLineParser::Append(const Fields& fields, History& history) {
  if (!fields.process || !fields.type || !fields.f) return false;
  const std::optional<OpType> type = ParseType(*fields.type);
  if (!type) return false;
  if (fields.index && *fields.index < 0) return false;
  const std::vector<HistoryOp>& ops = history.ops();
  int64_t time_ns = 0;
  if (fields.time_ns) {
    time_ns = *fields.time_ns;
    if (!ops.empty() && time_ns < ops.back().time_ns) return false;
  } else if (!ops.empty()) {
    const int64_t prev = ops.back().time_ns;
    time_ns = prev == std::numeric_limits<int64_t>::max() ? prev : prev + 1;
  }
  history.Add(*fields.process, *type, *fields.f,
              fields.has_value ? std::string_view(value_) : std::string_view("null"), time_ns);
  return true;
}

// ---- Driver -------------------------------------------------------------------------------------

// Reads lines and hands each non-blank one to ParseLineDom, or first to `fast` when there is one.
// With `fast` == nullptr this is the reference implementation, byte-wise reading included.
Result<History> ParseLines(std::istream& in, const HistoryParseLimits& limits,
                                FastLineParser* fast, internal::HistoryParseCounters& counters) {
  FL_ASSERT(limits.line_bytes_max > 0);
  History history;
  std::string line;
  uint64_t line_no = 0;
  while (true) {
    const ReadOutcome outcome = fast != nullptr ? ReadLine(in, limits.line_bytes_max, line)
                                                : ReadLineBytewise(in, limits.line_bytes_max, line);
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
      if (fast != nullptr && fast->Parse(line, limits.json_depth_max, history)) {
        ++counters.fast_lines;
        continue;
      }
      ++counters.dom_lines;
      FL_RETURN_IF_ERROR(ParseLineDom(line, line_no, limits, history));
    } catch (const std::exception& e) {
      return LineError(line_no, std::string("cannot parse: ") + e.what());
    }
  }
  return history;
}

}  // namespace

Result<History> ParseHistoryJsonl(std::istream& in, const HistoryParseLimits& limits) {
  internal::HistoryParseCounters counters;
  return internal::ParseHistoryJsonlCounting(in, limits, counters);
}

namespace internal {

Result<History> ParseHistoryJsonlReference(std::istream& in,
                                                const HistoryParseLimits& limits) {
  HistoryParseCounters counters;
  return ParseLines(in, limits, /*fast=*/nullptr, counters);
}

Result<History> ParseHistoryJsonlCounting(std::istream& in, const HistoryParseLimits& limits,
                                               HistoryParseCounters& counters) {
  FastLineParser fast;
  return ParseLines(in, limits, &fast, counters);
}

}  // namespace internal
}  // namespace faultline::check
