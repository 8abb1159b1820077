// File: faultline/core/crc32c.h
//
// CRC-32C (Castagnoli), used to detect torn and corrupted frames and log records.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace faultline {

// Extends `crc` (0 to start) over `data`.
uint32_t Crc32c(std::span<const uint8_t> data, uint32_t crc = 0);

}  // namespace faultline
