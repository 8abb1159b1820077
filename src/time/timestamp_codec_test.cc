// Unit and property tests for faultline/time/timestamp_codec.h. HLC timestamps arrive from peers
// and from disks that tear writes; a decoder that accepted a malformed or absurd timestamp would
// let it drag every receiving clock, so every rejection path is pinned to its status code and
// random and mutated bytes must never crash or decode to something that re-encodes differently
// (run under ASan/UBSan by ./run sanitize).
#include "faultline/time/timestamp_codec.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <vector>

namespace faultline {
namespace {

constexpr uint64_t kSomeUs = 1'700'000'000'123'456;

std::vector<uint8_t> EncodeTs(HlcTimestamp ts) {
  std::vector<uint8_t> out;
  EncodeHlcTimestamp(ts, &out);
  return out;
}
std::vector<uint8_t> EncodeStamp(const HlcStamp& s) {
  std::vector<uint8_t> out;
  EncodeHlcStamp(s, &out);
  return out;
}
// A timestamp-sized buffer with the given version byte and raw value, bypassing Encode's checks.
std::vector<uint8_t> RawBytes(uint8_t version, uint64_t raw) {
  std::vector<uint8_t> out;
  ByteWriter w(&out);
  w.U8(version);
  w.U64(raw);
  return out;
}

TEST(TimestampCodecTest, WireLayoutIsPinned) {
  // [u8 version][u64 raw LE][u32 node LE]: peers of different builds must agree byte for byte.
  const HlcTimestamp ts = HlcTimestamp::FromParts(0x0000'0123'4567'89ab, 0xcde);
  EXPECT_EQ(ts.raw(), 0x0123'4567'89ab'cdeULL);
  const std::vector<uint8_t> expected_ts = {0x01, 0xde, 0xbc, 0x9a, 0x78, 0x56, 0x34, 0x12, 0x00};
  EXPECT_EQ(EncodeTs(ts), expected_ts);
  std::vector<uint8_t> expected_stamp = expected_ts;
  expected_stamp.insert(expected_stamp.end(), {0x04, 0x03, 0x02, 0x01});
  EXPECT_EQ(EncodeStamp(HlcStamp{ts, NodeId(0x01020304)}), expected_stamp);
  EXPECT_EQ(EncodeTs(ts).size(), kHlcTimestampWireBytes);
  EXPECT_EQ(expected_stamp.size(), kHlcStampWireBytes);
}

TEST(TimestampCodecTest, RoundTripsAtTheEdgesOfTheValidRange) {
  // The smallest and largest encodable physical parts, logical 0 and 4095, node 0 and UINT32_MAX
  // all come back unchanged.
  for (uint64_t us : {uint64_t{1}, kSomeUs, kWirePhysicalMaxUs}) {
    for (uint64_t logical : {uint64_t{0}, uint64_t{1}, HlcTimestamp::kLogicalMax}) {
      const HlcTimestamp ts = HlcTimestamp::FromParts(us, logical);
      Result<HlcTimestamp> back = DecodeHlcTimestamp(EncodeTs(ts));
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      EXPECT_EQ(*back, ts);
      for (uint32_t node : {0u, 7u, UINT32_MAX}) {
        const HlcStamp stamp{ts, NodeId(node)};
        Result<HlcStamp> s = DecodeHlcStamp(EncodeStamp(stamp));
        ASSERT_TRUE(s.ok()) << s.status().ToString();
        EXPECT_EQ(*s, stamp);
      }
    }
  }
}

TEST(TimestampCodecTest, TruncatedInputIsDataLoss) {
  // Every strict prefix of a valid encoding (including empty) is a cut-off message: kDataLoss,
  // never a read past the end (ASan) and never a value.
  const std::vector<uint8_t> ts = EncodeTs(HlcTimestamp::FromParts(kSomeUs, 3));
  for (size_t n = 0; n < ts.size(); ++n) {
    EXPECT_EQ(DecodeHlcTimestamp(std::span(ts).first(n)).status().code(), StatusCode::kDataLoss)
        << n;
  }
  const std::vector<uint8_t> st =
      EncodeStamp(HlcStamp{HlcTimestamp::FromParts(kSomeUs, 3), NodeId(9)});
  for (size_t n = 0; n < st.size(); ++n) {
    EXPECT_EQ(DecodeHlcStamp(std::span(st).first(n)).status().code(), StatusCode::kDataLoss) << n;
  }
  // A cut-off stamp with an unknown version is still reported as truncated.
  std::vector<uint8_t> cut = RawBytes(9, HlcTimestamp::FromParts(kSomeUs, 0).raw());
  EXPECT_EQ(DecodeHlcStamp(cut).status().code(), StatusCode::kDataLoss);
}

TEST(TimestampCodecTest, TrailingBytesAreDataLoss) {
  // A fixed-width field followed by extra bytes means the framing around it is wrong; guessing
  // which bytes are the timestamp would be worse than refusing.
  std::vector<uint8_t> ts = EncodeTs(HlcTimestamp::FromParts(kSomeUs, 3));
  ts.push_back(0);
  EXPECT_EQ(DecodeHlcTimestamp(ts).status().code(), StatusCode::kDataLoss);
  std::vector<uint8_t> st = EncodeStamp(HlcStamp{HlcTimestamp::FromParts(kSomeUs, 3), NodeId(1)});
  st.push_back(0);
  EXPECT_EQ(DecodeHlcStamp(st).status().code(), StatusCode::kDataLoss);
}

TEST(TimestampCodecTest, UnknownVersionIsUnimplemented) {
  // A version this build does not know may have another layout: refuse it rather than misread.
  const uint64_t raw = HlcTimestamp::FromParts(kSomeUs, 0).raw();
  for (uint8_t version : {uint8_t{0}, uint8_t{2}, uint8_t{255}}) {
    EXPECT_EQ(DecodeHlcTimestamp(RawBytes(version, raw)).status().code(),
              StatusCode::kUnimplemented)
        << int{version};
    std::vector<uint8_t> st = RawBytes(version, raw);
    st.insert(st.end(), {1, 0, 0, 0});
    EXPECT_EQ(DecodeHlcStamp(st).status().code(), StatusCode::kUnimplemented) << int{version};
  }
}

TEST(TimestampCodecTest, PhysicalZeroOrPast2100IsOutOfRange) {
  // Physical 0 is the unset timestamp no real clock issues; a physical part after 2100-01-01 is
  // corrupt or hostile (the 52-bit field itself ends in 2112, so "after 2200" is unrepresentable).
  // Either would be trusted by a receiving HLC's ordering, so both are refused.
  const uint64_t cases[] = {0, HlcTimestamp::FromParts(0, 4095).raw(),
                            HlcTimestamp::FromParts(kWirePhysicalMaxUs + 1, 0).raw(),
                            HlcTimestamp::Max().raw()};
  for (uint64_t raw : cases) {
    EXPECT_EQ(DecodeHlcTimestamp(RawBytes(kHlcWireVersion, raw)).status().code(),
              StatusCode::kOutOfRange)
        << raw;
    std::vector<uint8_t> st = RawBytes(kHlcWireVersion, raw);
    st.insert(st.end(), {0, 0, 0, 0});
    EXPECT_EQ(DecodeHlcStamp(st).status().code(), StatusCode::kOutOfRange) << raw;
    EXPECT_EQ(ValidateWireTimestamp(HlcTimestamp::FromRaw(raw)).code(), StatusCode::kOutOfRange);
  }
  EXPECT_TRUE(ValidateWireTimestamp(HlcTimestamp::FromParts(kWirePhysicalMaxUs, 4095)).ok());
  EXPECT_TRUE(ValidateWireTimestamp(HlcTimestamp::FromParts(1, 0)).ok());
}

TEST(TimestampCodecTest, StreamingFormsEmbedInALargerMessage) {
  // Write/Read place fixed-width fields inside a bigger message and consume exactly their width,
  // so the fields after them stay aligned.
  std::vector<uint8_t> msg;
  ByteWriter w(&msg);
  w.U32(0xfeedface);
  WriteHlcTimestamp(w, HlcTimestamp::FromParts(kSomeUs, 1));
  WriteHlcStamp(w, HlcStamp{HlcTimestamp::FromParts(kSomeUs + 5, 2), NodeId(4)});
  w.U8(0x7e);
  ByteReader r(msg);
  uint32_t head = 0;
  ASSERT_TRUE(r.U32(&head).ok());
  HlcTimestamp ts;
  ASSERT_TRUE(ReadHlcTimestamp(r, &ts).ok());
  EXPECT_EQ(ts, HlcTimestamp::FromParts(kSomeUs, 1));
  HlcStamp stamp;
  ASSERT_TRUE(ReadHlcStamp(r, &stamp).ok());
  EXPECT_EQ(stamp, (HlcStamp{HlcTimestamp::FromParts(kSomeUs + 5, 2), NodeId(4)}));
  uint8_t tail = 0;
  ASSERT_TRUE(r.U8(&tail).ok());
  EXPECT_EQ(tail, 0x7e);
  EXPECT_TRUE(r.empty());
  ByteReader short_reader(std::span<const uint8_t>(msg).first(8));
  ASSERT_TRUE(short_reader.U32(&head).ok());
  EXPECT_EQ(ReadHlcTimestamp(short_reader, &ts).code(), StatusCode::kDataLoss);
}

TEST(TimestampCodecDeathTest, EncodingAnUndecodableTimestampIsAProgrammerError) {
  // Sending Min() or a 22nd-century timestamp is a bug in the sender, not an operating error:
  // it fails loudly at the source instead of at every receiver.
  std::vector<uint8_t> out;
  EXPECT_DEATH(EncodeHlcTimestamp(HlcTimestamp::Min(), &out), "cannot decode");
  EXPECT_DEATH(EncodeHlcStamp(HlcStamp{HlcTimestamp::Max(), NodeId(1)}, &out), "cannot decode");
}

RC_GTEST_PROP(TimestampCodecProperty, EveryValidStampRoundTrips, (uint32_t node)) {
  // Any physical part in [1, 2100-01-01], any logical, any node: decode(encode(x)) == x.
  const uint64_t us = *rc::gen::inRange<uint64_t>(1, kWirePhysicalMaxUs + 1);
  const uint64_t logical = *rc::gen::inRange<uint64_t>(0, HlcTimestamp::kLogicalMax + 1);
  const HlcStamp stamp{HlcTimestamp::FromParts(us, logical), NodeId(node)};
  Result<HlcStamp> s = DecodeHlcStamp(EncodeStamp(stamp));
  RC_ASSERT(s.ok());
  RC_ASSERT(*s == stamp);
  Result<HlcTimestamp> t = DecodeHlcTimestamp(EncodeTs(stamp.ts));
  RC_ASSERT(t.ok());
  RC_ASSERT(*t == stamp.ts);
}

// Decodes `bytes` both ways; whatever decodes must be valid and re-encode to exactly `bytes`
// (the encoding is canonical), and every failure must carry one of the documented codes.
void CheckDecodeIsSafe(const std::vector<uint8_t>& bytes) {
  const auto documented = [](StatusCode c) {
    return c == StatusCode::kDataLoss || c == StatusCode::kUnimplemented ||
           c == StatusCode::kOutOfRange;
  };
  Result<HlcTimestamp> t = DecodeHlcTimestamp(bytes);
  if (t.ok()) {
    RC_ASSERT(ValidateWireTimestamp(*t).ok());
    RC_ASSERT(EncodeTs(*t) == bytes);
  } else {
    RC_ASSERT(documented(t.status().code()));
  }
  Result<HlcStamp> s = DecodeHlcStamp(bytes);
  if (s.ok()) {
    RC_ASSERT(EncodeStamp(*s) == bytes);
  } else {
    RC_ASSERT(documented(s.status().code()));
  }
}

RC_GTEST_PROP(TimestampCodecProperty, RandomBytesNeverCrash, ()) {
  // Arbitrary bytes (mostly near the two wire sizes, with the version byte often right).
  std::vector<uint8_t> bytes = *rc::gen::container<std::vector<uint8_t>>(
      *rc::gen::inRange<size_t>(0, 20), rc::gen::arbitrary<uint8_t>());
  if (!bytes.empty() && *rc::gen::arbitrary<bool>()) bytes[0] = kHlcWireVersion;
  CheckDecodeIsSafe(bytes);
}

RC_GTEST_PROP(TimestampCodecProperty, MutatedEncodingsNeverCrash, (uint32_t node)) {
  // Valid stamps and timestamps with bit flips, byte overwrites, insertions, deletions and cuts:
  // the decoder must reject or decode canonically, never misbehave.
  const uint64_t us = *rc::gen::inRange<uint64_t>(1, kWirePhysicalMaxUs + 1);
  const HlcStamp stamp{HlcTimestamp::FromParts(us, *rc::gen::inRange<uint64_t>(0, 4096)),
                       NodeId(node)};
  std::vector<uint8_t> bytes =
      *rc::gen::arbitrary<bool>() ? EncodeStamp(stamp) : EncodeTs(stamp.ts);
  const int mutations = *rc::gen::inRange(1, 5);
  for (int m = 0; m < mutations; ++m) {
    const size_t pos = *rc::gen::inRange<size_t>(0, bytes.size() + 1);
    switch (*rc::gen::inRange(0, 5)) {
      case 0:
        if (pos < bytes.size()) bytes[pos] ^= static_cast<uint8_t>(1u << *rc::gen::inRange(0, 8));
        break;
      case 1:
        if (pos < bytes.size()) bytes[pos] = *rc::gen::arbitrary<uint8_t>();
        break;
      case 2:
        bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(pos),
                     *rc::gen::arbitrary<uint8_t>());
        break;
      case 3:
        if (pos < bytes.size()) bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(pos));
        break;
      default:
        bytes.resize(pos);
        break;
    }
  }
  CheckDecodeIsSafe(bytes);
}

}  // namespace
}  // namespace faultline
