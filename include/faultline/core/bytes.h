// File: faultline/core/bytes.h
//
// Little-endian fixed-width and varint encoding with bounds checks. ByteReader never trusts its
// input: every read checks the remaining length and returns a Status (kDataLoss for truncated
// input, kOutOfRange for a length above the caller's limit) instead of reading past the end.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/status.h"

namespace faultline {

class ByteWriter {
 public:
  explicit ByteWriter(std::vector<uint8_t>* out) : out_(out) { FL_ASSERT(out != nullptr); }

  void U8(uint8_t v) { out_->push_back(v); }
  void U16(uint16_t v) { Fixed(v, 2); }
  void U32(uint32_t v) { Fixed(v, 4); }
  void U64(uint64_t v) { Fixed(v, 8); }
  void I64(int64_t v) { Fixed(static_cast<uint64_t>(v), 8); }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<uint8_t>(v));
  }
  // Length-prefixed (varint) bytes.
  void Bytes(std::string_view s) {
    Varint(s.size());
    Raw(s);
  }
  void Raw(std::string_view s) { out_->insert(out_->end(), s.begin(), s.end()); }
  void Raw(std::span<const uint8_t> s) { out_->insert(out_->end(), s.begin(), s.end()); }
  size_t size() const { return out_->size(); }

 private:
  void Fixed(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_->push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t>* out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> in) : in_(in) {}

  size_t remaining() const { return in_.size() - pos_; }
  bool empty() const { return remaining() == 0; }
  size_t position() const { return pos_; }

  Status U8(uint8_t* v) { return Fixed(v, 1); }
  Status U16(uint16_t* v) { return Fixed(v, 2); }
  Status U32(uint32_t* v) { return Fixed(v, 4); }
  Status U64(uint64_t* v) { return Fixed(v, 8); }
  Status I64(int64_t* v) {
    uint64_t u = 0;
    FL_RETURN_IF_ERROR(Fixed(&u, 8));
    *v = static_cast<int64_t>(u);
    return Status::Ok();
  }
  Status Varint(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
      if (empty()) return DataLossError("truncated varint");
      const uint8_t byte = in_[pos_++];
      if (shift == 63 && byte > 1) return DataLossError("varint overflows 64 bits");
      result |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        *v = result;
        return Status::Ok();
      }
    }
    return DataLossError("varint longer than 10 bytes");
  }
  // Length-prefixed bytes, rejected with kOutOfRange when longer than `length_max`.
  Status Bytes(std::string* out, size_t length_max) {
    uint64_t n = 0;
    FL_RETURN_IF_ERROR(Varint(&n));
    if (n > length_max) return OutOfRangeError("length prefix exceeds limit");
    if (n > remaining()) return DataLossError("truncated bytes field");
    out->assign(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return Status::Ok();
  }
  Status Raw(size_t n, std::span<const uint8_t>* out) {
    if (n > remaining()) return DataLossError("truncated raw field");
    *out = in_.subspan(pos_, n);
    pos_ += n;
    return Status::Ok();
  }

 private:
  template <typename T>
  Status Fixed(T* v, int n) {
    if (remaining() < static_cast<size_t>(n)) return DataLossError("truncated fixed-width field");
    uint64_t r = 0;
    for (int i = 0; i < n; ++i) r |= static_cast<uint64_t>(in_[pos_ + i]) << (8 * i);
    pos_ += n;
    *v = static_cast<T>(r);
    return Status::Ok();
  }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

}  // namespace faultline
