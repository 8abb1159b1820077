// Internal to PaxosLease: an acceptor's durable promises (the highest ballot promised per name).
//
// A log of CRC-framed records: u32 length | u32 crc32c(length) | u32 crc32c(body) | body, where the
// body is a header (generation), the snapshot's promises, a seal (count), then appended promises.
// Compaction writes a new snapshot into the other of the two files, syncs it, and only then
// removes the old one, so at every instant one sealed file holds every acknowledged promise. On
// load: a record cut short at the end of a file is a torn tail (its write never completed, so it
// was never acknowledged) and is dropped; a complete record that fails its checksum, or a sealed
// file that breaks the layout, is kDataLoss; an unsealed file is a torn compaction or a torn first
// creation and is garbage.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/env/disk.h"

namespace faultline::lease::paxos_lease_internal {

class PromiseLog {
 public:
  PromiseLog(Disk& disk, const std::string& file) : disk_(disk), files_{file, file + ".alt"} {}

  // Loads the promises and rewrites them as a fresh snapshot.
  Status Open();

  uint64_t Promised(std::string_view name) const {
    auto it = promises_.find(name);
    return it == promises_.end() ? 0 : it->second;
  }
  size_t size() const { return promises_.size(); }
  bool failed() const { return failed_; }

  // Makes `ballot` (above the current promise) durable. Any disk error fail-stops the log: after
  // a failed fsync the state of the file is unknown, and retrying is not safe.
  Status Promise(const std::string& name, uint64_t ballot);

 private:
  Status Fail(Status s) {
    failed_ = true;
    return s;
  }
  Status RemoveIfExists(const std::string& file);
  Status Compact();

  Disk& disk_;
  const std::string files_[2];
  int active_ = -1;  // index into files_ of the file appended to
  uint64_t generation_ = 0;
  uint64_t end_ = 0;
  uint64_t appended_ = 0;
  bool failed_ = false;
  std::map<std::string, uint64_t, std::less<>> promises_;
};

}  // namespace faultline::lease::paxos_lease_internal
