// Test oracles for faultline/check/history_io.h. Not installed: only history_io.cc and its tests
// see these.
#pragma once

#include <cstdint>
#include <istream>

#include "faultline/check/history_io.h"

namespace faultline::check::internal {

// For tests only: ParseHistoryJsonl must return exactly what these return (same ops, same error
// status and message) for every input, and history_io_test checks that differentially.

// The previous implementation, kept as the oracle: every line through a full nlohmann::json DOM.
Result<History> ParseHistoryJsonlReference(std::istream& in, const HistoryParseLimits& limits = {});

// How ParseHistoryJsonl handled the non-blank lines it looked at: by the single-pass scanner, or
// by the DOM parser it falls back to (so that tests can show both paths are exercised).
struct HistoryParseCounters {
  uint64_t fast_lines = 0;
  uint64_t dom_lines = 0;
};
Result<History> ParseHistoryJsonlCounting(std::istream& in, const HistoryParseLimits& limits,
                                          HistoryParseCounters& counters);

}  // namespace faultline::check::internal
