// The stored forms of saga rows and index entries (byte layouts in saga_log.h). Internal to saga/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/saga/saga_log.h"

namespace faultline::saga::internal {

// The row without its id (the id is the key).
std::string EncodeState(const SagaState& state);
// kDataLoss for anything but a value EncodeState produced.
Result<SagaState> DecodeState(std::string_view value);

std::string EncodeRunning(WallTime started_at);
Result<WallTime> DecodeRunning(std::string_view value);

struct ParkedEntry {
  std::optional<WallTime> started_at;
  WallTime parked_at;
  std::string reason;
};
std::string EncodeParked(const ParkedEntry& entry);
Result<ParkedEntry> DecodeParked(std::string_view value);

// kInvalidArgument naming `what` when `s` is empty, longer than `max`, or holds a byte outside
// printable ASCII 0x20..0x7E.
Status CheckPrintable(std::string_view what, std::string_view s, size_t max);

}  // namespace faultline::saga::internal
