// File: faultline/runtime/posix_disk.h
//
// PosixDisk: the Disk seam on one directory of the host's file system.
//
//   Write    = pwrite (creates the file; a write past the end leaves a hole that reads as zeros,
//              i.e. the gap is zero-filled as the contract requires)
//   Read     = pread; Size = fstat; Truncate = ftruncate
//   Sync     = fdatasync of the file, plus fsync of the directory the first time after the file
//              was created, so the name itself is durable (Disk: "creating a file is durable at its
//              first Sync")
//   Remove   = unlink + fsync of the directory (Disk: "Remove is durable at once")
//   List     = the directory's entries with valid names, sorted
//
// File names: [A-Za-z0-9._-]{1,200} and not "." / ".." or containing ".." — anything else (a
// slash, an absolute path, an empty name) is kInvalidArgument, never a path outside the directory.
//
// Errors never crash: ENOENT -> kNotFound; ENOSPC/EDQUOT/EFBIG -> kResourceExhausted (like the
// simulator's file_bytes_max); EIO and every other I/O failure -> kUnavailable (like the
// simulator's injected EIO); EACCES/EPERM -> kPermissionDenied. Messages name the file and the
// errno text.
//
// What survives what:
// - A process kill (SIGKILL, abort, FL_ASSERT): every completed Write survives, synced or not —
//   the page cache belongs to the kernel, not the process. A Write in progress when the kill lands
//   persists a prefix: Linux copies a write into the page cache page by page and stops at a page
//   boundary once a fatal signal is pending, so a Write within one 4 KiB page is all or nothing
//   and a larger one may be cut at a page boundary (the simulator's torn write, at page
//   granularity). The runtime's crash is otherwise *kinder* than the simulator's default crash,
//   which drops unsynced writes; code proven under the simulator stays correct here.
// - Power loss / kernel crash: only synced data is guaranteed; unsynced writes may vanish or be
//   torn (a prefix persisted, or sectors of it). This runtime does not inject power loss; the
//   simulator's torn_write faults model it.
// - A failed Sync (EIO from fdatasync): Linux may already have dropped the dirty pages and marked
//   them clean, so a retried fdatasync can report success without the data being on disk
//   ("fsyncgate", PostgreSQL 2018). PosixDisk therefore poisons the file: every later Sync of it
//   returns kDataLoss until the file is removed or the disk reopened (after a restart, the caller
//   re-reads what is actually there, as after any crash).
//
// Single-threaded, like every Disk: one node's executor uses it.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "faultline/env/disk.h"

namespace faultline::runtime {

// True when `name` is a valid PosixDisk file name (see the file comment).
bool IsValidDiskFileName(std::string_view name);

class PosixDisk final : public Disk {
 public:
  // Opens (creating it and any missing parents, mode 0755) the directory `dir`. kInvalidArgument
  // for an empty path; an errno-mapped Status when it cannot be created or opened.
  static Result<std::unique_ptr<PosixDisk>> Open(std::string dir);
  ~PosixDisk() override;
  PosixDisk(const PosixDisk&) = delete;
  PosixDisk& operator=(const PosixDisk&) = delete;

  Status Write(std::string_view file, uint64_t offset, std::span<const uint8_t> data) override;
  Result<size_t> Read(std::string_view file, uint64_t offset, std::span<uint8_t> out) override;
  Result<uint64_t> Size(std::string_view file) override;
  Status Truncate(std::string_view file, uint64_t size) override;
  Status Sync(std::string_view file) override;
  Status Remove(std::string_view file) override;
  std::vector<std::string> List() override;

  const std::string& dir() const { return dir_; }

 private:
  struct OpenFile {
    int fd = -1;
    bool name_unsynced = false;  // created since the directory was last fsynced
    bool poisoned = false;       // an fdatasync of it failed
  };
  PosixDisk(std::string dir, int dir_fd) : dir_(std::move(dir)), dir_fd_(dir_fd) {}
  // The open file, opening it (and creating it when `create`) on first use.
  Result<OpenFile*> Get(std::string_view file, bool create);
  Status SyncDir(std::string_view why);

  std::string dir_;
  int dir_fd_ = -1;
  std::map<std::string, OpenFile, std::less<>> files_;
};

// A Disk that refuses every call with kUnavailable (List() is empty): for nodes given no data
// directory.
class NoDisk final : public Disk {
 public:
  Status Write(std::string_view, uint64_t, std::span<const uint8_t>) override;
  Result<size_t> Read(std::string_view, uint64_t, std::span<uint8_t>) override;
  Result<uint64_t> Size(std::string_view) override;
  Status Truncate(std::string_view, uint64_t) override;
  Status Sync(std::string_view) override;
  Status Remove(std::string_view) override;
  std::vector<std::string> List() override { return {}; }
};

}  // namespace faultline::runtime
