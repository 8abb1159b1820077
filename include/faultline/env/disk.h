// File: faultline/env/disk.h
//
// The storage seam: named files of bytes with fsync semantics. A write is visible to reads at once
// but durable only after Sync(file) returns ok. A crash keeps every synced byte and loses unsynced
// writes; under fault injection an unsynced write may instead survive whole or torn (a prefix of
// it persisted). Creating a file is durable at its first Sync; Remove is durable at once.
//
// Single-threaded: a Disk belongs to one node's executor.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/status.h"

namespace faultline {

class Disk {
 public:
  virtual ~Disk() = default;

  // Writes `data` at `offset`, extending the file (zero-filled) as needed; creates the file. On
  // error a prefix of `data` may have been written (a short write), as with pwrite.
  virtual Status Write(std::string_view file, uint64_t offset, std::span<const uint8_t> data) = 0;
  // Reads up to out.size() bytes at offset; returns the count read (0 at or past the end).
  // kNotFound when the file does not exist.
  virtual Result<size_t> Read(std::string_view file, uint64_t offset, std::span<uint8_t> out) = 0;
  // kNotFound when the file does not exist.
  virtual Result<uint64_t> Size(std::string_view file) = 0;
  virtual Status Truncate(std::string_view file, uint64_t size) = 0;
  // Makes every earlier write and truncate of `file` durable.
  virtual Status Sync(std::string_view file) = 0;
  virtual Status Remove(std::string_view file) = 0;
  // Names of the existing files, sorted.
  virtual std::vector<std::string> List() = 0;

  // Appends at the current end of the file.
  Status Append(std::string_view file, std::span<const uint8_t> data);
  // Reads the whole file.
  Result<std::vector<uint8_t>> ReadAll(std::string_view file);
};

}  // namespace faultline
