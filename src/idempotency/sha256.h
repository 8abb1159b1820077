// SHA-256 (FIPS 180-4), for request fingerprints and derived step keys. Internal to idempotency/.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace faultline::idempotency::internal {

std::array<uint8_t, 32> Sha256(std::string_view data);

// Lowercase hex of `bytes`.
std::string Hex(const uint8_t* bytes, size_t n);

}  // namespace faultline::idempotency::internal
