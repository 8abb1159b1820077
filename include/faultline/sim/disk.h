// File: faultline/sim/disk.h
//
// A node's simulated disk. Every file keeps its durable image plus an ordered list of unsynced
// operations (writes and truncates). Reads see the durable image with every pending operation
// applied; Sync(file) folds the pending list into the durable image. The disk outlives the
// process: a crash calls Crash(), which by default drops every unsynced operation, and under
// `torn_write` faults keeps a random subset of them, some cut short (a torn write), just as a
// power loss leaves a page cache half-flushed. I/O errors can be injected per call.
#pragma once

// Node code (files compiled with FAULTLINE_NODE_CODE) runs on the real runtime too: it may not see
// the simulator.
#ifdef FAULTLINE_NODE_CODE
#error "node code must not include faultline/sim/ headers"
#endif

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "faultline/core/random.h"
#include "faultline/env/disk.h"

namespace faultline::sim {

struct SimDiskOptions {
  // On crash, chance that an unsynced operation persists anyway (whole or torn) instead of
  // vanishing. Zero: a crash loses exactly the unsynced operations.
  Ratio unsynced_survives = Ratio::Zero();
  // Of the unsynced writes that persist, the chance each is torn (a random prefix persists).
  Ratio torn_write = Ratio::Percent(50);
  // Chance that a Write or Sync fails with kUnavailable (EIO).
  Ratio io_error = Ratio::Zero();
  // Limits: a file larger than this fails writes with kResourceExhausted (ENOSPC).
  uint64_t file_bytes_max = 1ull << 30;
};

class SimDisk final : public Disk {
 public:
  SimDisk(Rng* rng, SimDiskOptions options = {});

  Status Write(std::string_view file, uint64_t offset, std::span<const uint8_t> data) override;
  Result<size_t> Read(std::string_view file, uint64_t offset, std::span<uint8_t> out) override;
  Result<uint64_t> Size(std::string_view file) override;
  Status Truncate(std::string_view file, uint64_t size) override;
  Status Sync(std::string_view file) override;
  Status Remove(std::string_view file) override;
  std::vector<std::string> List() override;

  // Power loss: see the file comment.
  void Crash();

  SimDiskOptions& options() { return options_; }
  uint64_t syncs() const { return syncs_; }
  uint64_t unsynced_ops_lost() const { return lost_; }

 private:
  struct PendingOp {
    bool truncate = false;
    uint64_t offset = 0;  // for truncate: the new size
    std::vector<uint8_t> data;
  };
  struct File {
    bool durable_exists = false;
    std::vector<uint8_t> durable;
    std::vector<uint8_t> current;  // durable + pending applied
    std::vector<PendingOp> pending;
  };
  static void Apply(std::vector<uint8_t>& image, const PendingOp& op);

  Rng* rng_;
  SimDiskOptions options_;
  std::map<std::string, File, std::less<>> files_;
  uint64_t syncs_ = 0;
  uint64_t lost_ = 0;
};

}  // namespace faultline::sim
