// Internal to reshard.cc and reshard_steps.cc: the stream progress record and the encodings of the
// workflow and progress records.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/shard/reshard.h"

// FL_RETURN_IF_ERROR for a RunInTransaction whose body itself uses FL_RETURN_IF_ERROR (a distinct
// variable name, so the body's does not shadow it).
#define FL_SHARD_RETURN_IF_TXN_ERROR(expr)           \
  do {                                               \
    ::faultline::Status fl_txn_status_ = (expr);     \
    if (!fl_txn_status_.ok()) return fl_txn_status_; \
  } while (0)

namespace faultline::shard {

// A replication stream's progress, stored in its receiving store (committed with the rows).
struct ReshardProgress {
  bool initialized = false;
  std::string copy_cursor;  // next key to copy
  bool copy_done = false;
  uint64_t applied = 0;       // next sender log seq to apply
  std::string verify_cursor;  // next key to verify
  bool verify_done = false;
  uint64_t open_seq = 0;  // receiver's log head when it opened (0: not opened)
};

namespace reshard_internal {

std::string EncodeState(const ReshardState& state);
Result<ReshardState> DecodeState(std::string_view bytes);
std::string EncodeProgress(const ReshardProgress& p);
Result<ReshardProgress> DecodeProgress(std::string_view bytes);

}  // namespace reshard_internal
}  // namespace faultline::shard
