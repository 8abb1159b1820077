// Byte scanning shared by the checker's single-pass JSON readers (history_io.cc and
// linearizability_values.cc). Private to faultline::check.
#pragma once

#include <cstdint>
#include <cstring>

namespace faultline::check::internal {

// A byte a fast-path JSON string may hold: one json neither rejects, nor unescapes, nor escapes
// when dumping (printable ASCII other than '"' and '\\'), so the text between the quotes is both
// the decoded string and its dump.
inline bool IsPlainStringByte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x20 && u <= 0x7E && u != '"' && u != '\\';
}

// The first byte in [p, end) that is not a plain string byte, or end. Eight bytes per step: a
// word is skipped when none of its bytes is below 0x20, at or above 0x7F, '"' or '\\'.
inline const char* SkipPlainStringBytes(const char* p, const char* end) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  while (end - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    const uint64_t below_space = (w - kOnes * 0x20) & ~w & kHigh;
    const uint64_t high_or_del = (w | ((w & ~kHigh) + kOnes)) & kHigh;
    const uint64_t q = w ^ (kOnes * '"');
    const uint64_t quote = (q - kOnes) & ~q & kHigh;
    const uint64_t b = w ^ (kOnes * '\\');
    const uint64_t backslash = (b - kOnes) & ~b & kHigh;
    if ((below_space | high_or_del | quote | backslash) != 0) break;
    p += 8;
  }
  while (p != end && IsPlainStringByte(*p)) ++p;
  return p;
}

}  // namespace faultline::check::internal
