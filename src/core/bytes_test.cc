// Unit tests for faultline/core/bytes.h (ByteWriter / ByteReader) and faultline/core/crc32c.h.
// ByteReader parses bytes that arrive from the network and from disks that tear writes, so every
// malformed-input path must return a Status and never read out of bounds (run under ASan).
#include "faultline/core/bytes.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "faultline/core/crc32c.h"

namespace faultline {
namespace {

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(Crc32cTest, KnownVectors) {
  // The standard check value and the RFC 3720 (iSCSI) vectors: a table or polynomial mistake would
  // make frames from a correct peer look corrupted.
  EXPECT_EQ(Crc32c(AsBytes("123456789")), 0xE3069283u);
  EXPECT_EQ(Crc32c({}), 0u);
  const std::vector<uint8_t> zeros(32, 0x00);
  const std::vector<uint8_t> ones(32, 0xFF);
  std::vector<uint8_t> ascending(32);
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(Crc32c(zeros), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
}

TEST(Crc32cTest, ExtendingEqualsOneShot) {
  // Frames checksum the header and payload in two calls; extending must equal hashing the
  // concatenation.
  const std::string a = "hello, ";
  const std::string b = "world";
  EXPECT_EQ(Crc32c(AsBytes(b), Crc32c(AsBytes(a))), Crc32c(AsBytes(a + b)));
}

TEST(ByteWriterTest, LittleEndianLayoutIsPinned) {
  // The wire format is little-endian fixed fields and LEB128 varints; pin the exact bytes.
  std::vector<uint8_t> out;
  ByteWriter w(&out);
  w.U8(0x01);
  w.U16(0x0302);
  w.U32(0x07060504);
  w.U64(0x0f0e0d0c0b0a0908ULL);
  w.I64(-1);
  w.Varint(300);
  w.Bytes("ab");
  const std::vector<uint8_t> expected = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
                                         0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xac, 0x02, 0x02, 'a',  'b'};
  EXPECT_EQ(out, expected);
  EXPECT_EQ(w.size(), expected.size());
}

TEST(ByteReaderTest, ReadsBackWhatWasWritten) {
  // Round trip of every field type, including varint extremes and an empty string.
  std::vector<uint8_t> out;
  ByteWriter w(&out);
  w.U8(0xab);
  w.U16(0xbeef);
  w.U32(0xdeadbeef);
  w.U64(UINT64_MAX);
  w.I64(INT64_MIN);
  w.Varint(0);
  w.Varint(UINT64_MAX);
  w.Bytes("");
  w.Bytes("payload");
  w.Raw(std::string_view("xyz"));

  ByteReader r(out);
  uint8_t u8 = 0;
  uint16_t u16 = 0;
  uint32_t u32 = 0;
  uint64_t u64 = 0, v0 = 1, vmax = 0;
  int64_t i64 = 0;
  std::string empty = "junk", s;
  std::span<const uint8_t> raw;
  ASSERT_TRUE(r.U8(&u8).ok());
  ASSERT_TRUE(r.U16(&u16).ok());
  ASSERT_TRUE(r.U32(&u32).ok());
  ASSERT_TRUE(r.U64(&u64).ok());
  ASSERT_TRUE(r.I64(&i64).ok());
  ASSERT_TRUE(r.Varint(&v0).ok());
  ASSERT_TRUE(r.Varint(&vmax).ok());
  ASSERT_TRUE(r.Bytes(&empty, 100).ok());
  ASSERT_TRUE(r.Bytes(&s, 100).ok());
  ASSERT_TRUE(r.Raw(3, &raw).ok());
  EXPECT_EQ(u8, 0xab);
  EXPECT_EQ(u16, 0xbeef);
  EXPECT_EQ(u32, 0xdeadbeefu);
  EXPECT_EQ(u64, UINT64_MAX);
  EXPECT_EQ(i64, INT64_MIN);
  EXPECT_EQ(v0, 0u);
  EXPECT_EQ(vmax, UINT64_MAX);
  EXPECT_EQ(empty, "");
  EXPECT_EQ(s, "payload");
  EXPECT_EQ(std::string(raw.begin(), raw.end()), "xyz");
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.position(), out.size());
}

TEST(ByteReaderTest, TruncatedFixedFieldsAreDataLoss) {
  // A fixed field cut short (a torn write, a short datagram) must be kDataLoss at every cut point,
  // never a read past the end.
  const std::vector<uint8_t> full = {1, 2, 3, 4, 5, 6, 7, 8};
  for (size_t len = 0; len < 8; ++len) {
    std::span<const uint8_t> in(full.data(), len);
    uint64_t u64 = 0;
    int64_t i64 = 0;
    EXPECT_EQ(ByteReader(in).U64(&u64).code(), StatusCode::kDataLoss) << len;
    EXPECT_EQ(ByteReader(in).I64(&i64).code(), StatusCode::kDataLoss) << len;
    if (len < 4) {
      uint32_t u32 = 0;
      EXPECT_EQ(ByteReader(in).U32(&u32).code(), StatusCode::kDataLoss) << len;
    }
    if (len < 2) {
      uint16_t u16 = 0;
      EXPECT_EQ(ByteReader(in).U16(&u16).code(), StatusCode::kDataLoss) << len;
    }
  }
  uint8_t u8 = 0;
  EXPECT_EQ(ByteReader({}).U8(&u8).code(), StatusCode::kDataLoss);
  std::span<const uint8_t> raw;
  EXPECT_EQ(ByteReader(full).Raw(9, &raw).code(), StatusCode::kDataLoss);
  EXPECT_TRUE(ByteReader(full).Raw(8, &raw).ok());
}

TEST(ByteReaderTest, TruncatedVarintIsDataLoss) {
  // Continuation bits promising more bytes than exist.
  const std::vector<uint8_t> cut = {0x80, 0x80, 0x80};
  uint64_t v = 0;
  EXPECT_EQ(ByteReader(cut).Varint(&v).code(), StatusCode::kDataLoss);
  EXPECT_EQ(ByteReader({}).Varint(&v).code(), StatusCode::kDataLoss);
}

TEST(ByteReaderTest, OverlongAndOverflowingVarintsAreDataLoss) {
  // A varint carries at most 64 bits: ten bytes, the last holding one bit. An 11-byte encoding and
  // a 10th byte with more than one payload bit must be rejected instead of silently wrapping.
  std::vector<uint8_t> eleven(10, 0x80);
  eleven.push_back(0x00);
  uint64_t v = 0;
  EXPECT_EQ(ByteReader(eleven).Varint(&v).code(), StatusCode::kDataLoss);

  std::vector<uint8_t> overflow(9, 0xff);
  overflow.push_back(0x02);  // bit 64
  EXPECT_EQ(ByteReader(overflow).Varint(&v).code(), StatusCode::kDataLoss);

  std::vector<uint8_t> max(9, 0xff);
  max.push_back(0x01);  // exactly UINT64_MAX
  ASSERT_TRUE(ByteReader(max).Varint(&v).ok());
  EXPECT_EQ(v, UINT64_MAX);
}

TEST(ByteReaderTest, LengthPrefixAboveLimitIsOutOfRangeAndBeyondInputIsDataLoss) {
  // The two failure modes of a length prefix are distinct on purpose: above the caller's limit is
  // kOutOfRange (refuse before allocating), longer than the remaining input is kDataLoss.
  std::vector<uint8_t> big;
  ByteWriter(&big).Varint(1'000'000);
  std::string s;
  EXPECT_EQ(ByteReader(big).Bytes(&s, 1024).code(), StatusCode::kOutOfRange);

  std::vector<uint8_t> short_body;
  ByteWriter w(&short_body);
  w.Varint(10);
  w.Raw(std::string_view("abc"));
  EXPECT_EQ(ByteReader(short_body).Bytes(&s, 1024).code(), StatusCode::kDataLoss);

  std::vector<uint8_t> huge;
  ByteWriter(&huge).Varint(UINT64_MAX);
  EXPECT_EQ(ByteReader(huge).Bytes(&s, SIZE_MAX).code(), StatusCode::kDataLoss);

  std::vector<uint8_t> exact;
  ByteWriter(&exact).Bytes("abcd");
  ASSERT_TRUE(ByteReader(exact).Bytes(&s, 4).ok());
  EXPECT_EQ(s, "abcd");
  EXPECT_EQ(ByteReader(exact).Bytes(&s, 3).code(), StatusCode::kOutOfRange);
}

// Runs every reader operation over `bytes` in an order chosen by `ops`; must never crash or read
// past the end (ASan), and must never claim more bytes than exist.
void ReadEverything(const std::vector<uint8_t>& bytes, const std::vector<uint8_t>& ops) {
  ByteReader r(bytes);
  for (uint8_t op : ops) {
    const size_t before = r.remaining();
    Status s;
    switch (op % 8) {
      case 0: {
        uint8_t v;
        s = r.U8(&v);
        break;
      }
      case 1: {
        uint16_t v;
        s = r.U16(&v);
        break;
      }
      case 2: {
        uint32_t v;
        s = r.U32(&v);
        break;
      }
      case 3: {
        uint64_t v;
        s = r.U64(&v);
        break;
      }
      case 4: {
        int64_t v;
        s = r.I64(&v);
        break;
      }
      case 5: {
        uint64_t v;
        s = r.Varint(&v);
        break;
      }
      case 6: {
        std::string v;
        s = r.Bytes(&v, op);
        break;
      }
      case 7: {
        std::span<const uint8_t> v;
        s = r.Raw(op % 5, &v);
        if (s.ok()) RC_ASSERT(v.size() == op % 5u);
        break;
      }
    }
    RC_ASSERT(r.remaining() <= before);
    RC_ASSERT(r.position() + r.remaining() == bytes.size());
    if (!s.ok()) {
      RC_ASSERT(s.code() == StatusCode::kDataLoss || s.code() == StatusCode::kOutOfRange);
    }
  }
}

RC_GTEST_PROP(ByteReaderProperty, ArbitraryBytesNeverCrashTheReader,
              (const std::vector<uint8_t>& bytes, const std::vector<uint8_t>& ops)) {
  // Untrusted input: any byte string under any sequence of reads yields Statuses, not UB.
  ReadEverything(bytes, ops);
}

RC_GTEST_PROP(ByteReaderProperty, WrittenValuesRoundTrip,
              (uint8_t a, uint16_t b, uint32_t c, uint64_t d, int64_t e, uint64_t f,
               const std::string& g)) {
  // Whatever ByteWriter writes, ByteReader reads back bit for bit and consumes exactly.
  std::vector<uint8_t> out;
  ByteWriter w(&out);
  w.U8(a);
  w.U16(b);
  w.U32(c);
  w.U64(d);
  w.I64(e);
  w.Varint(f);
  w.Bytes(g);
  ByteReader r(out);
  uint8_t a2 = 0;
  uint16_t b2 = 0;
  uint32_t c2 = 0;
  uint64_t d2 = 0;
  uint64_t f2 = 0;
  int64_t e2 = 0;
  std::string g2;
  RC_ASSERT(r.U8(&a2).ok());
  RC_ASSERT(r.U16(&b2).ok());
  RC_ASSERT(r.U32(&c2).ok());
  RC_ASSERT(r.U64(&d2).ok());
  RC_ASSERT(r.I64(&e2).ok());
  RC_ASSERT(r.Varint(&f2).ok());
  RC_ASSERT(r.Bytes(&g2, g.size()).ok());
  RC_ASSERT(r.empty());
  RC_ASSERT(a2 == a && b2 == b && c2 == c && d2 == d && e2 == e && f2 == f && g2 == g);
}

RC_GTEST_PROP(ByteReaderProperty, TruncatedEncodingsAreRejected,
              (uint64_t v, const std::string& s)) {
  // Every strict prefix of an encoded varint+bytes pair must fail with kDataLoss somewhere, never
  // succeed with a wrong value.
  std::vector<uint8_t> out;
  ByteWriter w(&out);
  w.Varint(v);
  w.Bytes(s);
  const size_t cut = *rc::gen::inRange<size_t>(0, out.size());
  std::vector<uint8_t> prefix(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(cut));
  ByteReader r(prefix);
  uint64_t v2 = 0;
  std::string s2;
  Status st = r.Varint(&v2);
  if (st.ok()) st = r.Bytes(&s2, SIZE_MAX);
  RC_ASSERT(st.code() == StatusCode::kDataLoss);
}

}  // namespace
}  // namespace faultline
