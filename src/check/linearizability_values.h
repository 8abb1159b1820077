// Values for the linearizability checker, private to it: the table that interns compact JSON
// texts as dense ids (the search compares states by id), the model's append on those ids, and the
// decoder that turns an operation's JSON value into ids without a JSON DOM for the common shapes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "faultline/check/linearizability.h"

namespace faultline::check::internal {

// Interns compact JSON texts: equal texts get equal ids, ids are dense from 0 and id 0 is "null".
// Texts live in an arena owned by the table (no allocation per value once a chunk is in place),
// so the views Text returns stay valid for the table's lifetime.
class ValueTable {
 public:
  static constexpr int64_t kNull = 0;
  static constexpr int64_t kNoState = -1;  // Append's answer when the step is not legal

  ValueTable();
  ValueTable(const ValueTable&) = delete;
  ValueTable& operator=(const ValueTable&) = delete;

  // The id of `text`, which must be compact JSON as json::dump writes it (the caller's contract:
  // two spellings of one value would get two ids).
  int64_t Id(std::string_view text);
  std::string_view Text(int64_t id) const;
  size_t size() const { return views_.size(); }
  bool IsString(int64_t id) const;

  // The state after appending the JSON string `suffix` to `state`: string contents concatenated,
  // null (an unset key) taken as "". kNoState when `state` is neither a string nor null. Results
  // are cached per (state, suffix), so a search pays the concatenation once per pair.
  int64_t Append(int64_t state, int64_t suffix);

 private:
  void Grow();
  std::string_view Store(std::string_view text);

  std::vector<std::string_view> views_;  // id -> text
  std::vector<uint64_t> hashes_;         // id -> hash of its text
  std::vector<uint32_t> slots_;          // open addressing: id + 1, 0 = empty
  std::vector<std::unique_ptr<char[]>> chunks_;
  char* chunk_next_ = nullptr;
  size_t chunk_left_ = 0;
  std::unordered_map<uint64_t, int64_t> appended_;  // state << 32 | suffix -> state
  std::string scratch_;
};

// One operation value, decoded.
struct Decoded {
  bool valid = false;
  bool is_object = false;
  bool has_key = false;
  bool has_value = false;
  bool has_from_to = false;
  bool is_pair = false;    // a two-element array (register cas)
  std::string_view key;    // kv: compact text of "key" (into the history, or into key_owned)
  int64_t whole = 0;       // the whole value (only when DecodeValue was asked for it)
  int64_t value = 0;       // kv: "value" (absent: null)
  int64_t first = 0;       // register cas: [first, second]
  int64_t second = 0;
  int64_t from = 0;        // kv cas
  int64_t to = 0;
  std::string key_owned;   // backing for `key` when the text was not canonical
};

// Decodes `text` (any JSON text) into `d`, interning the parts the checker needs in `table`;
// `whole` asks for Decoded::whole too. Canonical texts of the common shapes (scalars, [a,b] of
// scalars, flat objects of scalars with sorted member names) take a single pass that allocates
// nothing; anything else goes through a JSON DOM. Returns d.valid: false when `text` is not JSON.
// `d.key` may point into `text`, which must outlive `d`.
bool DecodeValue(std::string_view text, bool whole, ValueTable& table, Decoded& d);

// For tests: the DOM decoder alone, which DecodeValue must agree with.
bool DecodeValueDom(std::string_view text, bool whole, ValueTable& table, Decoded& d);

}  // namespace faultline::check::internal
