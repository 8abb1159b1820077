// File: faultline/time/timestamp_codec.h
//
// Fixed-width, versioned wire encoding of HLC timestamps, little-endian (core/bytes.h):
//
//   HlcTimestamp   9 bytes: [u8 version = 1][u64 raw]
//   HlcStamp      13 bytes: [u8 version = 1][u64 raw][u32 node id]
// where raw = physical_us << 12 | logical (HlcTimestamp::raw(), see hlc.h).
//
// The version byte comes first so that a later layout can be told apart; a decoder rejects a
// version it does not know instead of misreading it.
//
// Decoding never trusts its input (it comes from peers and from disks that tear writes):
//   - fewer bytes than the layout needs, or bytes left over after it  → kDataLoss
//   - a version byte other than 1                                     → kUnimplemented
//   - a physical part of 0 (the unset Min() timestamp, which no HLC reading a real wall clock
//     issues) or later than kWirePhysicalMaxUs                       → kOutOfRange
// Every 12-bit logical value is valid (the carry rule keeps c in 0..4095), so the logical bits
// cannot be out of range in this layout. kWirePhysicalMaxUs is 2100-01-01T00:00:00Z: the 52-bit
// physical field itself ends in July 2112, so "after 2200" cannot even be represented; a
// timestamp in the 22nd century is a corrupt or hostile value, and accepting it would drag every
// receiving HLC there (Update() also rejects it relative to the local clock, but the codec is the
// first line). Any node id is valid.
//
// Encoding a timestamp that would not decode (physical part 0 or past kWirePhysicalMaxUs) is a
// programmer error and fails FL_ASSERT.
//
// Thread-safe (stateless). Encode appends to the vector (which may allocate); decode allocates
// nothing on success.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/core/status.h"
#include "faultline/time/hlc.h"

namespace faultline {

inline constexpr uint8_t kHlcWireVersion = 1;
inline constexpr size_t kHlcTimestampWireBytes = 9;
inline constexpr size_t kHlcStampWireBytes = 13;
// 2100-01-01T00:00:00Z in microseconds since the Unix epoch.
inline constexpr uint64_t kWirePhysicalMaxUs = 4'102'444'800'000'000;
static_assert(kWirePhysicalMaxUs <= HlcTimestamp::kPhysicalMaxUs);

// Ok when `ts` may be encoded (physical part in [1, kWirePhysicalMaxUs]); kOutOfRange otherwise.
Status ValidateWireTimestamp(HlcTimestamp ts);

// Appends the 9-byte encoding of `ts` to *out.
void EncodeHlcTimestamp(HlcTimestamp ts, std::vector<uint8_t>* out);
// Decodes exactly one encoded timestamp: `in` must be exactly kHlcTimestampWireBytes long.
Result<HlcTimestamp> DecodeHlcTimestamp(std::span<const uint8_t> in);

// Appends the 13-byte encoding of `stamp` to *out.
void EncodeHlcStamp(const HlcStamp& stamp, std::vector<uint8_t>* out);
// Decodes exactly one encoded stamp: `in` must be exactly kHlcStampWireBytes long.
Result<HlcStamp> DecodeHlcStamp(std::span<const uint8_t> in);

// Streaming forms for embedding in a larger message: write at the writer's end, read at the
// reader's position (consuming exactly the fixed width on success; on error the reader's position
// is unspecified). Same checks and codes as the Decode functions, minus the leftover-bytes check.
void WriteHlcTimestamp(ByteWriter& w, HlcTimestamp ts);
Status ReadHlcTimestamp(ByteReader& r, HlcTimestamp* ts);
void WriteHlcStamp(ByteWriter& w, const HlcStamp& stamp);
Status ReadHlcStamp(ByteReader& r, HlcStamp* stamp);

}  // namespace faultline
