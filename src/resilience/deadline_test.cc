// Tests for faultline/resilience/deadline.h: Deadline arithmetic (infinite, expired, saturating),
// the bounded remaining-time codec (a peer may not grant more than remaining_max), the varint
// encoding (truncated / overlong / non-minimal input rejected), and the grpc-timeout header
// (format rounds down, parse is strict), with rapidcheck round-trip and fuzz properties.
#include "faultline/resilience/deadline.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <array>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace faultline {
namespace {

const MonoTime kNow = MonoTime::FromNanos(1'000'000'000);

DeadlineCodec MakeCodec(Duration max = Duration::Seconds(300)) {
  DeadlineCodecOptions o;
  o.remaining_max = max;
  auto c = DeadlineCodec::Create(o);
  EXPECT_TRUE(c.ok());
  return std::move(c).value();
}

TEST(DeadlineTest, RemainingExpiredAndInfinite) {
  // Remaining never goes negative; Expired flips exactly at the instant; the infinite deadline
  // never expires and survives arithmetic without overflowing.
  const Deadline d = Deadline::FromRemaining(kNow, Duration::Millis(100));
  EXPECT_EQ(d.at(), kNow + Duration::Millis(100));
  EXPECT_EQ(d.Remaining(kNow), Duration::Millis(100));
  EXPECT_FALSE(d.Expired(kNow + Duration::Millis(99)));
  EXPECT_TRUE(d.Expired(kNow + Duration::Millis(100)));
  EXPECT_EQ(d.Remaining(kNow + Duration::Seconds(5)), Duration::Zero());
  const Deadline inf = Deadline::Infinite();
  EXPECT_TRUE(inf.is_infinite());
  EXPECT_FALSE(inf.Expired(MonoTime::Max()));
  EXPECT_EQ(inf.Remaining(kNow), Duration::Infinite());
  EXPECT_TRUE(Deadline::FromRemaining(kNow, Duration::Infinite()).is_infinite());
  EXPECT_TRUE(Deadline::FromRemaining(kNow, Duration::Millis(-5)).Expired(kNow));
  // Saturation: a huge finite remaining near the end of time does not wrap.
  const Deadline far = Deadline::FromRemaining(MonoTime::Max() - Duration::Seconds(1),
                                               Duration::Seconds(100));
  EXPECT_GE(far.at(), MonoTime::Max() - Duration::Seconds(1));
  EXPECT_EQ(d.Earliest(inf), d);
  EXPECT_EQ(inf.Earliest(d), d);
}

TEST(DeadlineCodecTest, PeersCannotGrantMoreThanTheMaximum) {
  // A remote's remaining time is clamped to remaining_max: a buggy or hostile peer asking for a
  // year gets 300 s. Sending an infinite deadline sends remaining_max.
  const DeadlineCodec codec = MakeCodec(Duration::Seconds(300));
  EXPECT_EQ(codec.FromReceived(Duration::Seconds(3600 * 24 * 365), kNow).Remaining(kNow),
            Duration::Seconds(300));
  EXPECT_EQ(codec.FromReceived(Duration::Millis(20), kNow).Remaining(kNow), Duration::Millis(20));
  EXPECT_TRUE(codec.FromReceived(Duration::Zero(), kNow).Expired(kNow));
  EXPECT_EQ(codec.RemainingToSend(Deadline::Infinite(), kNow), Duration::Seconds(300));
  std::array<uint8_t, kRemainingVarintBytesMax> buf{};
  const size_t n = codec.EncodeVarint(Deadline::Infinite(), kNow, buf);
  size_t used = 0;
  auto back = codec.DecodeVarint(std::span<const uint8_t>(buf.data(), n), kNow, &used);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(used, n);
  EXPECT_EQ(back->Remaining(kNow), Duration::Seconds(300));
  auto hdr = codec.ParseHeader("99999999H", kNow);
  ASSERT_TRUE(hdr.ok());
  EXPECT_EQ(hdr->Remaining(kNow), Duration::Seconds(300));
  DeadlineCodecOptions bad;
  bad.remaining_max = Duration::Zero();
  EXPECT_NE(DeadlineCodec::Create(bad).status().message().find("remaining_max"), std::string::npos);
}

TEST(DeadlineCodecTest, VarintRejectsTruncatedOverlongAndNonMinimal) {
  // Exact encodings at the boundaries, and every malformed shape refused rather than misread.
  std::array<uint8_t, kRemainingVarintBytesMax> buf{};
  EXPECT_EQ(EncodeRemainingVarint(Duration::Zero(), buf), 1u);
  EXPECT_EQ(buf[0], 0);
  EXPECT_EQ(EncodeRemainingVarint(Duration::Nanos(-7), buf), 1u);  // negative clamps to 0
  EXPECT_EQ(EncodeRemainingVarint(Duration::Nanos(127), buf), 1u);
  EXPECT_EQ(EncodeRemainingVarint(Duration::Nanos(128), buf), 2u);
  EXPECT_EQ(buf[0], 0x80);
  EXPECT_EQ(buf[1], 0x01);
  EXPECT_EQ(EncodeRemainingVarint(Duration::Infinite(), buf), 9u);
  size_t used = 0;
  auto inf = DecodeRemainingVarint(buf, &used);
  ASSERT_TRUE(inf.ok());
  EXPECT_EQ(*inf, Duration::Infinite());
  EXPECT_EQ(used, 9u);

  const std::vector<std::vector<uint8_t>> bad = {
      {},                                                       // empty
      {0x80},                                                   // truncated
      {0xff, 0xff},                                             // truncated
      {0x80, 0x00},                                             // non-minimal zero
      {0xff, 0x80, 0x00},                                       // non-minimal
      {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},  // 10 bytes
      {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},        // 9 bytes, no end
  };
  for (const auto& b : bad) {
    EXPECT_FALSE(DecodeRemainingVarint(b, &used).ok()) << b.size();
  }
  // Trailing bytes after a complete varint are the caller's: not consumed.
  const std::vector<uint8_t> with_tail = {0x05, 0xaa, 0xbb};
  auto five = DecodeRemainingVarint(with_tail, &used);
  ASSERT_TRUE(five.ok());
  EXPECT_EQ(*five, Duration::Nanos(5));
  EXPECT_EQ(used, 1u);
}

TEST(GrpcTimeoutTest, FormatPicksTheFinestUnitAndRoundsDown) {
  // gRPC allows at most 8 digits; the finest unit that fits is chosen, and rounding is DOWN so
  // the callee's deadline is never later than the caller's.
  struct Case {
    Duration d;
    const char* text;
  };
  const Case cases[] = {
      {Duration::Zero(), "0n"},
      {Duration::Nanos(-5), "0n"},
      {Duration::Nanos(1), "1n"},
      {Duration::Nanos(99'999'999), "99999999n"},
      {Duration::Nanos(100'000'000), "100000u"},
      {Duration::Nanos(100'000'999), "100000u"},
      {Duration::Seconds(100), "100000m"},
      {Duration::Seconds(100'000), "100000S"},
      {Duration::Seconds(100'000'000), "1666666M"},
      {Duration::Infinite(), "2562047H"},
  };
  for (const Case& c : cases) EXPECT_EQ(FormatGrpcTimeout(c.d).view(), c.text) << c.text;
}

TEST(GrpcTimeoutTest, ParseTable) {
  // Every unit, the 8-digit limit, optional surrounding whitespace; anything else is an error.
  EXPECT_EQ(*ParseGrpcTimeout("100m"), Duration::Millis(100));
  EXPECT_EQ(*ParseGrpcTimeout("1H"), Duration::Seconds(3600));
  EXPECT_EQ(*ParseGrpcTimeout("2M"), Duration::Seconds(120));
  EXPECT_EQ(*ParseGrpcTimeout("3S"), Duration::Seconds(3));
  EXPECT_EQ(*ParseGrpcTimeout("4u"), Duration::Micros(4));
  EXPECT_EQ(*ParseGrpcTimeout("5n"), Duration::Nanos(5));
  EXPECT_EQ(*ParseGrpcTimeout(" 00000007S\t"), Duration::Seconds(7));
  EXPECT_EQ(*ParseGrpcTimeout("99999999n"), Duration::Nanos(99'999'999));
  EXPECT_EQ(*ParseGrpcTimeout("99999999H"), Duration::Infinite());  // saturates
  for (const char* v : {"", "m", "100", "100x", "100 m", "-1m", "+1m", "123456789m", "1.5S",
                        "1h", "1s", "1M1", "m100", "\x80m"}) {
    EXPECT_FALSE(ParseGrpcTimeout(v).ok()) << '"' << v << '"';
  }
}

RC_GTEST_PROP(DeadlineProperty, EncodingsRoundTripWithinTheirPrecision, (int64_t ns)) {
  // Varint is exact for every non-negative duration; grpc-timeout loses less than one unit,
  // never rounds up, and its relative error is below 1e-5 (at least 5 significant digits: a
  // coarser unit is only chosen when the finer one needs more than 8 digits).
  const Duration d = Duration::Nanos(ns);
  std::array<uint8_t, kRemainingVarintBytesMax> buf{};
  const size_t n = EncodeRemainingVarint(d, buf);
  size_t used = 0;
  auto back = DecodeRemainingVarint(std::span<const uint8_t>(buf.data(), n), &used);
  RC_ASSERT(back.ok());
  RC_ASSERT(used == n);
  RC_ASSERT(*back == (ns > 0 ? d : Duration::Zero()));

  const GrpcTimeoutText text = FormatGrpcTimeout(d);
  RC_ASSERT(text.size >= 2);
  RC_ASSERT(text.size <= kGrpcTimeoutDigitsMax + 1);
  auto parsed = ParseGrpcTimeout(text.view());
  RC_ASSERT(parsed.ok());
  const Duration expect = ns > 0 ? d : Duration::Zero();
  RC_ASSERT(*parsed <= expect);
  RC_ASSERT((expect - *parsed).nanos() <= expect.nanos() / 100'000 + 1);
}

RC_GTEST_PROP(DeadlineFuzz, RandomHeadersAndBytesNeverCrashOrOverGrant,
              (const std::string& header, const std::vector<uint8_t>& bytes)) {
  // Anything from the wire: either an error or a deadline within remaining_max of now.
  const DeadlineCodec codec = MakeCodec(Duration::Seconds(30));
  if (auto d = codec.ParseHeader(header, kNow); d.ok()) {
    RC_ASSERT(d->Remaining(kNow) <= Duration::Seconds(30));
  }
  size_t used = 0;
  if (auto d = codec.DecodeVarint(bytes, kNow, &used); d.ok()) {
    RC_ASSERT(d->Remaining(kNow) <= Duration::Seconds(30));
    RC_ASSERT(used >= 1 && used <= bytes.size() && used <= kRemainingVarintBytesMax);
  }
}

TEST(DeadlineCodecConcurrent, TwoThreadsShareOneCodec) {
  // The codec is immutable; concurrent encode/decode from two threads must not race (TSan).
  const DeadlineCodec codec = MakeCodec();
  std::vector<int> wrong(2, 0);
  std::atomic<int> gate1{0};  // start both threads together so they overlap
  auto worker = [&](int id) {
    gate1.fetch_add(1);
    while (gate1.load() < 2) {
    }
    for (int i = 1; i < 20000; ++i) {
      const Deadline d = Deadline::FromRemaining(kNow, Duration::Micros(i));
      const GrpcTimeoutText t = codec.FormatHeader(d, kNow);
      auto back = codec.ParseHeader(t.view(), kNow);
      if (!back.ok() || *back != d) ++wrong[static_cast<size_t>(id)];
    }
  };
  std::thread t0(worker, 0);
  std::thread t1(worker, 1);
  t0.join();
  t1.join();
  EXPECT_EQ(wrong[0] + wrong[1], 0);
}

}  // namespace
}  // namespace faultline
