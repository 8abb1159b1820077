// File: faultline/check/history_io.h
//
// Reads a Jepsen-shaped history from JSON lines, the format History::WriteJsonl writes:
//   {"index":0,"process":3,"type":"invoke","f":"write","value":1,"time_ns":1500000}
// so that histories recorded elsewhere (or saved from a failing run) can be checked offline.
//
// Fields per line:
//   process  integer (int64), required
//   type     "invoke" | "ok" | "fail" | "info", required
//   f        string, required
//   value    any JSON value, optional (absent = null); kept as its compact JSON text
//   time_ns  integer (int64), optional; when absent the op is placed one nanosecond after the
//            previous op (0 for the first), i.e. time follows line order
//   index    non-negative integer, optional; informational only: the returned History numbers ops
//            by their position (History::Add), so an index that disagrees is not an error
// Blank lines (only whitespace) are skipped; a trailing '\r' is ignored.
//
// Errors: malformed input returns kInvalidArgument whose message starts with "line N: " (1-based)
// and says why: not JSON, not an object, a missing field, a field of the wrong type, an unknown
// type, time going backwards, too many ops, a line that is too long, nesting that is too deep.
// Parsing never crashes and never throws, whatever the bytes.
//
// Thread safety: the function is reentrant; the stream is read by the calling thread only.
//
// Cost: one pass over the bytes for the common lines (printable-ASCII strings without escapes,
// integers, true/false/null, arrays, objects); a line outside that subset (floats, escapes,
// non-ASCII, duplicate keys inside "value") or with any error is re-parsed into a full
// nlohmann::json DOM, several times slower, with the same result either way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>

#include "faultline/check/history.h"
#include "faultline/core/status.h"

namespace faultline::check {

struct HistoryParseLimits {
  // Operations (lines that are not blank) accepted; one more is an error.
  size_t ops_max = 10'000'000;
  // Bytes in one line, excluding the newline; a longer line is an error (and is not buffered).
  size_t line_bytes_max = 1 << 20;
  // Nesting of arrays/objects within one line; bounds the recursion of JSON printing.
  size_t json_depth_max = 64;
};

Result<History> ParseHistoryJsonl(std::istream& in, const HistoryParseLimits& limits = {});

}  // namespace faultline::check
