// File: faultline/env/frame.h
//
// The wire frame every message travels in, in the simulator and on real sockets alike:
//
//   offset size field
//   0      2    magic 0xFA17 (little-endian)
//   2      1    format version (kFrameFormatVersion)
//   3      1    flags (must be 0 in version 1)
//   4      2    message type
//   6      2    message schema version (checked by the message's own decoder)
//   8      4    payload length in bytes
//   12     4    CRC-32C of bytes 0..11 and the payload
//   16     ...  payload
//
// DecodeFrame never trusts its input: truncated frames, oversized payloads, unknown format versions,
// nonzero flags, bad magic and checksum mismatches each return a distinct error Status.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "faultline/core/status.h"

namespace faultline {

inline constexpr uint16_t kFrameMagic = 0xFA17;
inline constexpr uint8_t kFrameFormatVersion = 1;
inline constexpr size_t kFrameHeaderBytes = 16;

struct FrameLimits {
  // Frames whose payload is larger are rejected by both encoder and decoder.
  uint32_t payload_bytes_max = 1 << 20;
};

struct FrameView {
  uint16_t type = 0;
  uint16_t schema_version = 0;
  std::span<const uint8_t> payload;  // points into the decoded buffer
};

// Appends one frame to *out. kInvalidArgument when the payload exceeds the limit.
Status EncodeFrame(uint16_t type, uint16_t schema_version, std::span<const uint8_t> payload,
                   std::vector<uint8_t>* out, const FrameLimits& limits = {});

// Decodes exactly one frame occupying all of `bytes`.
// kDataLoss: truncated, trailing bytes, bad magic or checksum; kUnimplemented: unknown format
// version or flags; kOutOfRange: payload longer than limits.payload_bytes_max.
Result<FrameView> DecodeFrame(std::span<const uint8_t> bytes, const FrameLimits& limits = {});

}  // namespace faultline
