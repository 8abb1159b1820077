#include "faultline/env/trace_context.h"

#include <set>

namespace faultline {
namespace {

int LowerHexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase is invalid in traceparent
}

// Decodes 2*N lowercase hex characters into `out`; false on any other character.
template <size_t N>
bool DecodeHex(std::string_view s, std::array<uint8_t, N>* out) {
  if (s.size() != 2 * N) return false;
  for (size_t i = 0; i < N; ++i) {
    const int hi = LowerHexValue(s[2 * i]);
    const int lo = LowerHexValue(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <size_t N>
bool AllZero(const std::array<uint8_t, N>& a) {
  for (uint8_t b : a) {
    if (b != 0) return false;
  }
  return true;
}

template <size_t N>
void AppendHex(const std::array<uint8_t, N>& a, std::string* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (uint8_t b : a) {
    out->push_back(kDigits[b >> 4]);
    out->push_back(kDigits[b & 0xF]);
  }
}

bool IsLcAlpha(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsKeyChar(char c) {
  return IsLcAlpha(c) || IsDigit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}
bool IsNblkChr(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x21 && u <= 0x7E && u != 0x2C && u != 0x3D;
}
bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

bool TraceContext::valid() const { return !AllZero(trace_id) && !AllZero(span_id); }

std::optional<Traceparent> ParseTraceparent(std::string_view v) {
  if (v.size() < kTraceparentLength) return std::nullopt;
  std::array<uint8_t, 1> version{};
  if (!DecodeHex(v.substr(0, 2), &version) || version[0] == 0xFF) return std::nullopt;
  if (version[0] == 0 && v.size() != kTraceparentLength) return std::nullopt;
  // A future version may append fields, each after a "-".
  if (version[0] != 0 && v.size() > kTraceparentLength && v[kTraceparentLength] != '-') {
    return std::nullopt;
  }
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  Traceparent tp;
  tp.version = version[0];
  std::array<uint8_t, 1> flags{};
  if (!DecodeHex(v.substr(3, 32), &tp.trace_id) || !DecodeHex(v.substr(36, 16), &tp.parent_id) ||
      !DecodeHex(v.substr(53, 2), &flags)) {
    return std::nullopt;
  }
  if (AllZero(tp.trace_id) || AllZero(tp.parent_id)) return std::nullopt;
  // Version 00 defines only the sampled bit; the others are not ours to propagate.
  tp.flags = flags[0] & kTraceFlagSampled;
  return tp;
}

std::string FormatTraceparent(const TraceId& trace_id, const SpanId& span_id, uint8_t flags) {
  std::string s;
  s.reserve(kTraceparentLength);
  s += "00-";
  AppendHex(trace_id, &s);
  s += '-';
  AppendHex(span_id, &s);
  s += '-';
  AppendHex(std::array<uint8_t, 1>{flags}, &s);
  return s;
}

bool ValidTracestateKey(std::string_view key) {
  const size_t at = key.find('@');
  if (at == std::string_view::npos) {
    if (key.empty() || key.size() > 256 || !IsLcAlpha(key[0])) return false;
    for (char c : key.substr(1)) {
      if (!IsKeyChar(c)) return false;
    }
    return true;
  }
  const std::string_view tenant = key.substr(0, at);
  const std::string_view system = key.substr(at + 1);
  if (tenant.empty() || tenant.size() > 241 || !(IsLcAlpha(tenant[0]) || IsDigit(tenant[0]))) {
    return false;
  }
  for (char c : tenant.substr(1)) {
    if (!IsKeyChar(c)) return false;
  }
  if (system.empty() || system.size() > 14 || !IsLcAlpha(system[0])) return false;
  for (char c : system.substr(1)) {
    if (!IsKeyChar(c)) return false;  // a second '@' lands here
  }
  return true;
}

bool ValidTracestateValue(std::string_view value) {
  if (value.empty() || value.size() > 256 || !IsNblkChr(value.back())) return false;
  for (char c : value) {
    if (c != ' ' && !IsNblkChr(c)) return false;
  }
  return true;
}

std::optional<std::vector<TracestateMember>> ParseTracestate(std::string_view value) {
  std::vector<TracestateMember> members;
  std::set<std::string_view> keys;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    if (comma == std::string_view::npos) comma = value.size();
    const std::string_view item = TrimOws(value.substr(pos, comma - pos));
    pos = comma + 1;
    if (item.empty()) continue;  // empty list-members are allowed
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view key = item.substr(0, eq);
    const std::string_view val = item.substr(eq + 1);
    if (!ValidTracestateKey(key) || !ValidTracestateValue(val)) return std::nullopt;
    if (!keys.insert(key).second) return std::nullopt;  // duplicate key
    if (members.size() == kTracestateMembersMax) return std::nullopt;
    members.push_back(TracestateMember{std::string(key), std::string(val)});
  }
  return members;
}

std::string FormatTracestate(const std::vector<TracestateMember>& members) {
  std::vector<const TracestateMember*> kept;
  for (const TracestateMember& m : members) {
    if (kept.size() == kTracestateMembersMax) break;
    if (ValidTracestateKey(m.key) && ValidTracestateValue(m.value)) kept.push_back(&m);
  }
  auto member_len = [](const TracestateMember* m) { return m->key.size() + 1 + m->value.size(); };
  auto total = [&] {
    size_t n = kept.empty() ? 0 : kept.size() - 1;
    for (const TracestateMember* m : kept) n += member_len(m);
    return n;
  };
  // Over the limit: drop long members from the right first, then any from the right.
  for (size_t i = kept.size(); i > 0 && total() > kTracestateBytesMax; --i) {
    if (member_len(kept[i - 1]) >= kTracestateLongMember) kept.erase(kept.begin() + (i - 1));
  }
  while (total() > kTracestateBytesMax) kept.pop_back();
  std::string s;
  for (const TracestateMember* m : kept) {
    if (!s.empty()) s += ',';
    s += m->key;
    s += '=';
    s += m->value;
  }
  return s;
}

TraceContext ExtractTraceContext(std::string_view traceparent, std::string_view tracestate) {
  TraceContext c;
  const std::optional<Traceparent> tp = ParseTraceparent(traceparent);
  if (!tp) return c;
  c.trace_id = tp->trace_id;
  c.span_id = tp->parent_id;
  c.flags = tp->flags;
  if (auto ts = ParseTracestate(tracestate)) c.tracestate = std::move(*ts);
  return c;
}

std::pair<std::string, std::string> InjectTraceContext(const TraceContext& context) {
  return {FormatTraceparent(context.trace_id, context.span_id, context.flags),
          FormatTracestate(context.tracestate)};
}

std::string HexId(const TraceId& id) {
  std::string s;
  AppendHex(id, &s);
  return s;
}

std::string HexId(const SpanId& id) {
  std::string s;
  AppendHex(id, &s);
  return s;
}

}  // namespace faultline
