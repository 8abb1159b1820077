// The stored forms of idempotency records and the helpers both idempotency/ stores share: the
// value encoding (see idempotency_keys.h for the byte layout), order-preserving time keys for the
// expiry indexes, and input checks. Internal to idempotency/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/idempotency/idempotency_keys.h"

namespace faultline::idempotency::internal {

enum class RecordState : uint8_t { kInProgress = 1, kCompleted = 2, kReleased = 3 };

struct Record {
  RecordState state = RecordState::kInProgress;
  Fingerprint fingerprint{};
  uint64_t attempt = 0;
  WallTime lease_until;
  WallTime expires_at;
  std::string recovery_point;
  std::string response;
  friend bool operator==(const Record&, const Record&) = default;
};

std::string EncodeRecord(const Record& record);
// kDataLoss for anything but a value EncodeRecord produced (bad version, state, attempt 0, CRC
// mismatch, truncation, trailing bytes).
Result<Record> DecodeRecord(std::string_view value);

// 8 bytes, big-endian, sign bit flipped: memcmp order equals time order, negatives included.
std::string OrderedTime(WallTime t);
Result<WallTime> ParseOrderedTime(std::string_view bytes);

// kInvalidArgument naming `what` when `s` is empty, longer than `max`, or (printable_only) holds a
// byte outside 0x20..0x7E.
Status CheckName(std::string_view what, std::string_view s, size_t max, bool printable_only);

}  // namespace faultline::idempotency::internal
