// File: faultline/env/trace_context.h
//
// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate`
// values that Rpc carries next to the deadline, parsed and formatted by the Recommendation's rules.
//
//   traceparent = version "-" trace-id "-" parent-id "-" trace-flags
//                 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
//
// ParseTraceparent rules (a value that breaks any of them is ignored: the receiver starts a new
// trace, exactly as if no header had been sent):
//   - version is 2 lowercase hex digits; "ff" is invalid.
//   - version 00: exactly 55 characters; trace-id 32 lowercase hex, parent-id 16 lowercase hex,
//     trace-flags 2 lowercase hex; "-" separators. Uppercase hex is invalid.
//   - all-zero trace-id or all-zero parent-id is invalid.
//   - a higher (future) version: at least 55 characters; the first 55 are parsed as version 00;
//     if longer, character 55 must be "-" (what follows is the future version's and ignored).
//     Only the sampled bit of the flags is kept (unknown flag bits are not propagated).
//
// tracestate = list-member *( OWS "," OWS list-member ), at most 32 list-members.
//   list-member = key "=" value
//   key   = simple-key / multi-tenant-key
//           simple-key       = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
//           multi-tenant-key = tenant-id "@" system-id
//             tenant-id = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
//             system-id = lcalpha 0*13( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
//   value = 0*255(chr) nblk-chr ; chr = %x20 / nblk-chr ; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
// ParseTracestate: empty list-members (",,") are allowed and skipped; any malformed list-member,
// a duplicate key, or more than 32 list-members makes the whole tracestate invalid (discarded —
// the traceparent still stands). Formatting (on propagation) keeps at most kTracestateMembersMax
// members and, if the result would exceed kTracestateBytesMax (512) characters, drops the
// members longer than 128 characters first (from the right), then from the right until it fits —
// the truncation order the Recommendation gives.
//
// Pure functions, no allocation beyond the returned values; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace faultline {

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

inline constexpr size_t kTraceparentLength = 55;
inline constexpr size_t kTracestateMembersMax = 32;
inline constexpr size_t kTracestateBytesMax = 512;
// Members at least this long are the first dropped when a tracestate must be shortened.
inline constexpr size_t kTracestateLongMember = 128;
inline constexpr uint8_t kTraceFlagSampled = 0x01;

struct TracestateMember {
  std::string key;
  std::string value;
  friend bool operator==(const TracestateMember&, const TracestateMember&) = default;
};

// The context one span hands to its children and to the callee of an RPC.
struct TraceContext {
  TraceId trace_id{};
  SpanId span_id{};  // the parent-id on the wire: the span the receiver's span is a child of
  uint8_t flags = 0;
  std::vector<TracestateMember> tracestate;

  // A context with a nonzero trace id and span id. Default-constructed contexts are invalid and
  // mean "no trace".
  bool valid() const;
  bool sampled() const { return (flags & kTraceFlagSampled) != 0; }
  friend bool operator==(const TraceContext&, const TraceContext&) = default;
};

struct Traceparent {
  uint8_t version = 0;
  TraceId trace_id{};
  SpanId parent_id{};
  uint8_t flags = 0;
};

// nullopt when `value` breaks a rule of the file comment.
std::optional<Traceparent> ParseTraceparent(std::string_view value);
// Always version 00, 55 characters, lowercase.
std::string FormatTraceparent(const TraceId& trace_id, const SpanId& span_id, uint8_t flags);

// nullopt when the tracestate is invalid (discard it).
std::optional<std::vector<TracestateMember>> ParseTracestate(std::string_view value);
// Members joined with ","; truncated as in the file comment.
std::string FormatTracestate(const std::vector<TracestateMember>& members);
bool ValidTracestateKey(std::string_view key);
bool ValidTracestateValue(std::string_view value);

// The receiver's side: a context from the two header values. An invalid traceparent gives an
// invalid context (start a new trace) and the tracestate is then ignored too; an invalid
// tracestate alone is dropped.
TraceContext ExtractTraceContext(std::string_view traceparent, std::string_view tracestate);
// The sender's side: the two header values for `context` (which must be valid).
std::pair<std::string, std::string> InjectTraceContext(const TraceContext& context);

std::string HexId(const TraceId& id);
std::string HexId(const SpanId& id);

}  // namespace faultline
