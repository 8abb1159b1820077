// Value interning, append and value decoding for the linearizability checker; see
// linearizability_values.h.
#include "src/check/linearizability_values.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <utility>

#include <nlohmann/json.hpp>

#include "faultline/core/assert.h"
#include "src/check/json_scan.h"

namespace faultline::check::internal {
namespace {

using nlohmann::json;

constexpr size_t kChunkBytes = size_t{1} << 16;

uint64_t HashText(std::string_view text) { return std::hash<std::string_view>{}(text); }

std::string Compact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// ---- Single-pass decoding of canonical texts ---------------------------------------------------
// A text is canonical when json::dump would write it back byte for byte: no whitespace, object
// members in strictly ascending name order, strings of printable ASCII without escapes, integers
// without leading zeros (and not -0, and short enough to stay int64). Only such texts are
// accepted here, so interning their slices gives the ids the DOM path would.

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The end of the string token at p (p points at its opening quote), or nullptr.
const char* ScanString(const char* p, const char* end) {
  FL_ASSERT(p < end && *p == '"');
  p = SkipPlainStringBytes(p + 1, end);
  return p != end && *p == '"' ? p + 1 : nullptr;
}

// The end of the canonical scalar token at p, or nullptr (not a scalar, or not canonical).
const char* ScanScalar(const char* p, const char* end) {
  if (p == end) return nullptr;
  switch (*p) {
    case '"': return ScanString(p, end);
    case 't': return end - p >= 4 && std::memcmp(p, "true", 4) == 0 ? p + 4 : nullptr;
    case 'f': return end - p >= 5 && std::memcmp(p, "false", 5) == 0 ? p + 5 : nullptr;
    case 'n': return end - p >= 4 && std::memcmp(p, "null", 4) == 0 ? p + 4 : nullptr;
    default: break;
  }
  const char* q = p;
  if (*q == '-') ++q;
  if (q == end || !IsDigit(*q)) return nullptr;
  const char* digits = q;
  if (*q == '0') {
    ++q;
    if (p != digits) return nullptr;  // "-0" dumps as "0"
  } else {
    while (q != end && IsDigit(*q)) ++q;
  }
  if (q - digits > 18) return nullptr;  // may not fit int64: the DOM decides
  if (q != end && (*q == '.' || *q == 'e' || *q == 'E' || IsDigit(*q))) return nullptr;
  return q;
}

bool DecodeObjectFast(std::string_view text, ValueTable& table, Decoded& d) {
  const char* p = text.data() + 1;
  const char* const end = text.data() + text.size();
  d.is_object = true;
  d.value = ValueTable::kNull;
  if (p != end && *p == '}') return p + 1 == end;
  std::string_view previous;
  std::string_view from;
  std::string_view to;
  bool first = true;
  while (true) {
    if (p == end || *p != '"') return false;
    const char* name_end = ScanString(p, end);
    if (name_end == nullptr || name_end == end || *name_end != ':') return false;
    const std::string_view name(p + 1, static_cast<size_t>(name_end - p - 2));
    if (!first && !(previous < name)) return false;  // unsorted or repeated: not canonical
    first = false;
    previous = name;
    p = name_end + 1;
    const char* value_end = ScanScalar(p, end);
    if (value_end == nullptr || value_end == end) return false;
    const std::string_view value(p, static_cast<size_t>(value_end - p));
    if (name == "key") {
      d.has_key = true;
      d.key = value;
    } else if (name == "value") {
      d.has_value = true;
      d.value = table.Id(value);
    } else if (name == "from") {
      from = value;
    } else if (name == "to") {
      to = value;
    }
    p = value_end + 1;
    if (*value_end == '}') break;
    if (*value_end != ',') return false;
  }
  if (p != end) return false;
  if (from.data() != nullptr && to.data() != nullptr) {
    d.has_from_to = true;
    d.from = table.Id(from);
    d.to = table.Id(to);
  }
  return true;
}

// Returns false, with `d` partly filled and `table` perhaps holding some new (harmless) texts,
// when `text` is not canonical or not of a common shape.
bool DecodeFast(std::string_view text, bool whole, ValueTable& table, Decoded& d) {
  if (text.empty()) return false;
  const char* const begin = text.data();
  const char* const end = begin + text.size();
  if (*begin == '{') {
    if (!DecodeObjectFast(text, table, d)) return false;
  } else if (*begin == '[') {
    const char* a_end = ScanScalar(begin + 1, end);
    if (a_end == nullptr || a_end == end || *a_end != ',') return false;
    const char* b_end = ScanScalar(a_end + 1, end);
    if (b_end == nullptr || b_end + 1 != end || *b_end != ']') return false;
    d.is_pair = true;
    d.first = table.Id(std::string_view(begin + 1, static_cast<size_t>(a_end - begin - 1)));
    d.second = table.Id(std::string_view(a_end + 1, static_cast<size_t>(b_end - a_end - 1)));
  } else if (ScanScalar(begin, end) != end) {
    return false;
  }
  if (whole) d.whole = table.Id(text);
  d.valid = true;
  return true;
}

}  // namespace

ValueTable::ValueTable() {
  slots_.assign(1024, 0);
  const int64_t null_id = Id("null");
  FL_ASSERT(null_id == kNull);
}

std::string_view ValueTable::Store(std::string_view text) {
  if (text.size() > chunk_left_) {
    const size_t bytes = std::max(kChunkBytes, text.size());
    chunks_.push_back(std::make_unique<char[]>(bytes));
    chunk_next_ = chunks_.back().get();
    chunk_left_ = bytes;
  }
  if (!text.empty()) std::memcpy(chunk_next_, text.data(), text.size());
  const std::string_view stored(chunk_next_, text.size());
  chunk_next_ += text.size();
  chunk_left_ -= text.size();
  return stored;
}

void ValueTable::Grow() {
  std::vector<uint32_t> slots(slots_.size() * 2, 0);
  const size_t mask = slots.size() - 1;
  for (size_t id = 0; id < views_.size(); ++id) {
    size_t i = hashes_[id] & mask;
    while (slots[i] != 0) i = (i + 1) & mask;
    slots[i] = static_cast<uint32_t>(id + 1);
  }
  slots_ = std::move(slots);
}

int64_t ValueTable::Id(std::string_view text) {
  const uint64_t h = HashText(text);
  const size_t mask = slots_.size() - 1;
  size_t i = h & mask;
  for (; slots_[i] != 0; i = (i + 1) & mask) {
    const size_t id = slots_[i] - 1;
    if (hashes_[id] == h && views_[id] == text) return static_cast<int64_t>(id);
  }
  FL_ASSERT(views_.size() < UINT32_MAX - 1);
  const int64_t id = static_cast<int64_t>(views_.size());
  views_.push_back(Store(text));
  hashes_.push_back(h);
  slots_[i] = static_cast<uint32_t>(id + 1);
  if (views_.size() * 2 > slots_.size()) Grow();
  return id;
}

std::string_view ValueTable::Text(int64_t id) const {
  FL_ASSERT(id >= 0 && static_cast<size_t>(id) < views_.size());
  return views_[static_cast<size_t>(id)];
}

bool ValueTable::IsString(int64_t id) const {
  const std::string_view t = Text(id);
  return t.size() >= 2 && t.front() == '"';
}

int64_t ValueTable::Append(int64_t state, int64_t suffix) {
  FL_ASSERT(IsString(suffix));
  if (state == kNull) return suffix;
  const uint64_t pair = (static_cast<uint64_t>(state) << 32) | static_cast<uint64_t>(suffix);
  if (auto it = appended_.find(pair); it != appended_.end()) return it->second;
  int64_t next = kNoState;
  if (IsString(state)) {
    // Both are compact JSON strings, escaped per character: dropping the closing quote of one
    // and the opening quote of the other gives the compact text of the concatenation.
    const std::string_view a = Text(state);
    const std::string_view b = Text(suffix);
    scratch_.assign(a.data(), a.size() - 1);
    scratch_.append(b.data() + 1, b.size() - 1);
    next = Id(scratch_);
  }
  appended_.emplace(pair, next);
  return next;
}

bool DecodeValueDom(std::string_view text, bool whole, ValueTable& table, Decoded& d) {
  d = Decoded{};
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return false;
  d.valid = true;
  if (whole) d.whole = table.Id(Compact(j));
  if (j.is_array() && j.size() == 2) {
    d.is_pair = true;
    d.first = table.Id(Compact(j[0]));
    d.second = table.Id(Compact(j[1]));
  }
  if (!j.is_object()) return true;
  d.is_object = true;
  if (auto k = j.find("key"); k != j.end()) {
    d.has_key = true;
    d.key_owned = Compact(*k);
    d.key = d.key_owned;
  }
  auto v = j.find("value");
  d.has_value = v != j.end();
  d.value = v == j.end() ? ValueTable::kNull : table.Id(Compact(*v));
  auto from = j.find("from");
  auto to = j.find("to");
  if (from != j.end() && to != j.end()) {
    d.has_from_to = true;
    d.from = table.Id(Compact(*from));
    d.to = table.Id(Compact(*to));
  }
  return true;
}

bool DecodeValue(std::string_view text, bool whole, ValueTable& table, Decoded& d) {
  d.valid = d.is_object = d.has_key = d.has_value = d.has_from_to = d.is_pair = false;
  d.key = {};
  if (DecodeFast(text, whole, table, d)) return true;
  return DecodeValueDom(text, whole, table, d);
}

}  // namespace faultline::check::internal
