// Unit tests for faultline/env/frame.h: the wire frame every message travels in. The decoder is
// the first code to touch bytes from the (possibly corrupting) network, so every rejection path is
// pinned to its documented code, and fuzz properties check it never crashes nor accepts a frame
// whose checksum no longer matches.
#include "faultline/env/frame.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "faultline/core/crc32c.h"

namespace faultline {
namespace {

std::vector<uint8_t> Frame(uint16_t type, uint16_t schema, const std::vector<uint8_t>& payload,
                           const FrameLimits& limits = {}) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(EncodeFrame(type, schema, payload, &out, limits).ok());
  return out;
}

// Rewrites the CRC field so that a deliberately malformed header is not caught by the checksum
// first: each structural check must stand on its own.
void FixCrc(std::vector<uint8_t>& f) {
  uint32_t crc = Crc32c(std::span<const uint8_t>(f.data(), 12));
  crc = Crc32c(std::span<const uint8_t>(f.data() + 16, f.size() - 16), crc);
  for (int i = 0; i < 4; ++i) f[12 + i] = static_cast<uint8_t>(crc >> (8 * i));
}

StatusCode DecodeCode(const std::vector<uint8_t>& f, const FrameLimits& limits = {}) {
  return DecodeFrame(f, limits).status().code();
}

TEST(FrameTest, RoundTripPreservesTypeSchemaAndPayload) {
  // The basic contract: what EncodeFrame writes, DecodeFrame returns unchanged, for empty and
  // non-empty payloads, with the documented 16-byte header layout.
  const std::vector<uint8_t> payload = {1, 2, 3, 250, 0};
  const std::vector<uint8_t> f = Frame(0x1234, 7, payload);
  ASSERT_EQ(f.size(), kFrameHeaderBytes + payload.size());
  EXPECT_EQ(f[0], 0x17);  // magic 0xFA17, little-endian
  EXPECT_EQ(f[1], 0xFA);
  EXPECT_EQ(f[2], kFrameFormatVersion);
  EXPECT_EQ(f[3], 0);
  Result<FrameView> v = DecodeFrame(f);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->type, 0x1234);
  EXPECT_EQ(v->schema_version, 7);
  EXPECT_EQ(std::vector<uint8_t>(v->payload.begin(), v->payload.end()), payload);
  EXPECT_EQ(v->payload.data(), f.data() + kFrameHeaderBytes);  // a view, not a copy

  const std::vector<uint8_t> empty = Frame(1, 1, {});
  Result<FrameView> e = DecodeFrame(empty);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->payload.empty());
}

TEST(FrameTest, EncodeAppendsToExistingBuffer) {
  // Encoders append so several frames can share one buffer; the earlier bytes stay untouched
  // and the appended frame decodes on its own.
  std::vector<uint8_t> buf = {9, 9, 9};
  ASSERT_TRUE(EncodeFrame(5, 1, std::vector<uint8_t>{42}, &buf).ok());
  ASSERT_EQ(buf.size(), 3 + kFrameHeaderBytes + 1);
  EXPECT_EQ(buf[0], 9);
  Result<FrameView> v = DecodeFrame(std::span<const uint8_t>(buf).subspan(3));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->payload[0], 42);
}

TEST(FrameTest, PayloadLimitIsEnforcedOnBothSides) {
  // The encoder refuses oversize payloads with kInvalidArgument (local misuse); the decoder
  // refuses a header announcing more than the limit with kOutOfRange before looking further.
  FrameLimits limits;
  limits.payload_bytes_max = 8;
  std::vector<uint8_t> out;
  EXPECT_EQ(EncodeFrame(1, 1, std::vector<uint8_t>(9), &out, limits).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(EncodeFrame(1, 1, std::vector<uint8_t>(8), &out, limits).ok());
  EXPECT_TRUE(DecodeFrame(out, limits).ok());

  const std::vector<uint8_t> nine = Frame(1, 1, std::vector<uint8_t>(9));
  EXPECT_EQ(DecodeCode(nine, limits), StatusCode::kOutOfRange);

  // A short frame whose length field claims 4 GiB: refused as too large, not as truncated.
  std::vector<uint8_t> liar = Frame(1, 1, {});
  liar[8] = liar[9] = liar[10] = liar[11] = 0xff;
  FixCrc(liar);
  EXPECT_EQ(DecodeCode(liar), StatusCode::kOutOfRange);
}

TEST(FrameTest, TruncatedHeaderIsDataLoss) {
  // Every cut inside the 16-byte header is kDataLoss.
  const std::vector<uint8_t> f = Frame(1, 1, {1, 2, 3});
  for (size_t len = 0; len < kFrameHeaderBytes; ++len) {
    EXPECT_EQ(DecodeFrame(std::span<const uint8_t>(f.data(), len)).status().code(),
              StatusCode::kDataLoss)
        << len;
  }
}

TEST(FrameTest, TruncatedPayloadIsDataLoss) {
  // A frame cut inside its payload (a short read) is kDataLoss.
  const std::vector<uint8_t> f = Frame(1, 1, {1, 2, 3, 4});
  for (size_t len = kFrameHeaderBytes; len < f.size(); ++len) {
    EXPECT_EQ(DecodeFrame(std::span<const uint8_t>(f.data(), len)).status().code(),
              StatusCode::kDataLoss)
        << len;
  }
}

TEST(FrameTest, TrailingBytesAreDataLoss) {
  // DecodeFrame decodes exactly one frame; extra bytes mean the framing is off.
  std::vector<uint8_t> f = Frame(1, 1, {1, 2});
  f.push_back(0);
  EXPECT_EQ(DecodeCode(f), StatusCode::kDataLoss);
}

TEST(FrameTest, BadMagicIsDataLoss) {
  // Not a faultline frame at all, even with a consistent checksum.
  std::vector<uint8_t> f = Frame(1, 1, {1});
  f[0] = 0x18;
  FixCrc(f);
  EXPECT_EQ(DecodeCode(f), StatusCode::kDataLoss);
}

TEST(FrameTest, UnknownFormatVersionAndNonzeroFlagsAreUnimplemented) {
  // A frame from a newer peer is well-formed but not understood: kUnimplemented, distinct from
  // corruption, so operators can tell a version skew from a bad link.
  std::vector<uint8_t> v2 = Frame(1, 1, {1});
  v2[2] = kFrameFormatVersion + 1;
  FixCrc(v2);
  EXPECT_EQ(DecodeCode(v2), StatusCode::kUnimplemented);
  std::vector<uint8_t> flags = Frame(1, 1, {1});
  flags[3] = 0x01;
  FixCrc(flags);
  EXPECT_EQ(DecodeCode(flags), StatusCode::kUnimplemented);
}

TEST(FrameTest, EverySingleBitFlipIsRejected) {
  // The simulated network corrupts frames by flipping one bit; the receiver must refuse every such
  // frame. Flips in checksummed-only fields (type, schema, CRC, payload) must surface as a
  // checksum mismatch; flips in structural fields hit their own documented check first.
  const std::vector<uint8_t> f = Frame(0x0102, 3, {'h', 'e', 'l', 'l', 'o'});
  for (size_t bit = 0; bit < f.size() * 8; ++bit) {
    std::vector<uint8_t> g = f;
    g[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    Result<FrameView> r = DecodeFrame(g);
    ASSERT_FALSE(r.ok()) << "bit " << bit;
    const size_t byte = bit / 8;
    const Status& s = r.status();
    if (byte < 2) {
      EXPECT_EQ(s.code(), StatusCode::kDataLoss) << bit;  // magic
    } else if (byte < 4) {
      EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << bit;  // version, flags
    } else if (byte >= 8 && byte < 12) {
      // Length: claims more than the limit (high bits) or disagrees with the actual size.
      const StatusCode want = (byte == 10 && bit % 8 >= 4) || byte == 11 ? StatusCode::kOutOfRange
                                                                         : StatusCode::kDataLoss;
      EXPECT_EQ(s.code(), want) << bit;
    } else {
      EXPECT_EQ(s.code(), StatusCode::kDataLoss) << bit;
      EXPECT_NE(s.message().find("checksum"), std::string_view::npos) << bit << " " << s.ToString();
    }
  }
}

// --- fuzz properties ---------------------------------------------------------------------------

// Independent re-check of an accepted frame: the stored CRC covers bytes 0..11 and the payload.
bool ChecksumMatches(const std::vector<uint8_t>& f) {
  if (f.size() < kFrameHeaderBytes) return false;
  const uint32_t stored = static_cast<uint32_t>(f[12]) | static_cast<uint32_t>(f[13]) << 8 |
                          static_cast<uint32_t>(f[14]) << 16 | static_cast<uint32_t>(f[15]) << 24;
  uint32_t crc = Crc32c(std::span<const uint8_t>(f.data(), 12));
  crc = Crc32c(std::span<const uint8_t>(f.data() + 16, f.size() - 16), crc);
  return crc == stored;
}

RC_GTEST_PROP(FrameFuzz, RandomBytesNeverCrashAndAcceptedOnesAreConsistent,
              (const std::vector<uint8_t>& bytes)) {
  // Arbitrary input must produce a Status (ASan checks no out-of-bounds read); anything accepted
  // must really be a consistent frame.
  Result<FrameView> r = DecodeFrame(bytes);
  if (r.ok()) {
    RC_ASSERT(ChecksumMatches(bytes));
    RC_ASSERT(r->payload.size() + kFrameHeaderBytes == bytes.size());
  }
}

RC_GTEST_PROP(FrameFuzz, RandomBytesBehindAValidHeaderAreRejected,
              (uint16_t type, const std::vector<uint8_t>& payload,
               const std::vector<uint8_t>& junk)) {
  // Random bytes rarely even pass the magic check, so also fuzz with a valid header prefix and a
  // random body: the decoder must reject unless the bytes happen to be the original payload.
  std::vector<uint8_t> f = Frame(type, 1, payload);
  f.resize(kFrameHeaderBytes);
  f.insert(f.end(), junk.begin(), junk.end());
  Result<FrameView> r = DecodeFrame(f);
  if (r.ok()) {
    RC_ASSERT(junk == payload);
  }
}

RC_GTEST_PROP(FrameFuzz, FewBitFlipsOfAValidFrameAreAlwaysRejected,
              (uint16_t type, uint16_t schema)) {
  // CRC-32C detects every error of up to 3 flipped bits in messages this short, and the header
  // checks catch the rest, so 1-3 distinct bit flips must never be accepted.
  const auto payload = *rc::gen::container<std::vector<uint8_t>>(*rc::gen::inRange<size_t>(0, 200),
                                                                 rc::gen::arbitrary<uint8_t>());
  std::vector<uint8_t> f = Frame(type, schema, payload);
  const size_t bits = f.size() * 8;
  const int flips = *rc::gen::inRange(1, 4);
  std::vector<size_t> chosen;
  while (static_cast<int>(chosen.size()) < flips) {
    const size_t b = *rc::gen::inRange<size_t>(0, bits);
    if (std::find(chosen.begin(), chosen.end(), b) == chosen.end()) chosen.push_back(b);
  }
  for (size_t b : chosen) f[b / 8] ^= static_cast<uint8_t>(1u << (b % 8));
  RC_ASSERT(!DecodeFrame(f).ok());
}

RC_GTEST_PROP(FrameFuzz, MutatedFramesAreNeverAcceptedWithAStaleChecksum,
              (uint16_t type, const std::vector<uint8_t>& payload)) {
  // Arbitrary byte-level mutations (overwrite, insert, erase, truncate, append) of a valid frame:
  // the decoder may accept only frames whose checksum is consistent with their bytes, and an
  // accepted mutated frame must decode to exactly what its bytes say.
  std::vector<uint8_t> f = Frame(type, 1, payload);
  const int mutations = *rc::gen::inRange(1, 6);
  for (int i = 0; i < mutations; ++i) {
    const int kind = *rc::gen::inRange(0, 5);
    const size_t pos = *rc::gen::inRange<size_t>(0, f.size() + 1);
    const uint8_t value = *rc::gen::arbitrary<uint8_t>();
    switch (kind) {
      case 0:
        if (pos < f.size()) f[pos] = value;
        break;
      case 1:
        f.insert(f.begin() + static_cast<std::ptrdiff_t>(pos), value);
        break;
      case 2:
        if (pos < f.size()) f.erase(f.begin() + static_cast<std::ptrdiff_t>(pos));
        break;
      case 3:
        f.resize(pos);
        break;
      case 4:
        f.push_back(value);
        break;
    }
  }
  Result<FrameView> r = DecodeFrame(f);
  if (r.ok()) {
    RC_ASSERT(ChecksumMatches(f));
    RC_ASSERT(r->type == static_cast<uint16_t>(f[4] | f[5] << 8));
    RC_ASSERT(r->payload.data() == f.data() + kFrameHeaderBytes);
  }
}

}  // namespace
}  // namespace faultline
