// An in-memory Disk for benchmarks that measure a module above the storage seam: files in memory,
// Sync does nothing (nothing in a benchmark crashes). Single-threaded.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/env/disk.h"

namespace faultline::bench {

class MemDisk final : public Disk {
 public:
  Status Write(std::string_view file, uint64_t offset, std::span<const uint8_t> data) override {
    std::vector<uint8_t>& f = files_[std::string(file)];
    if (f.size() < offset + data.size()) f.resize(offset + data.size());
    std::copy(data.begin(), data.end(), f.begin() + static_cast<std::ptrdiff_t>(offset));
    return Status::Ok();
  }
  Result<size_t> Read(std::string_view file, uint64_t offset, std::span<uint8_t> out) override {
    auto it = files_.find(std::string(file));
    if (it == files_.end()) return NotFoundError("no such file");
    if (offset >= it->second.size()) return size_t{0};
    const size_t n = std::min<size_t>(out.size(), it->second.size() - offset);
    std::copy_n(it->second.begin() + static_cast<std::ptrdiff_t>(offset), n, out.begin());
    return n;
  }
  Result<uint64_t> Size(std::string_view file) override {
    auto it = files_.find(std::string(file));
    if (it == files_.end()) return NotFoundError("no such file");
    return static_cast<uint64_t>(it->second.size());
  }
  Status Truncate(std::string_view file, uint64_t size) override {
    auto it = files_.find(std::string(file));
    if (it == files_.end()) return NotFoundError("no such file");
    it->second.resize(size);
    return Status::Ok();
  }
  Status Sync(std::string_view file) override {
    return files_.count(std::string(file)) ? Status::Ok() : NotFoundError("no such file");
  }
  Status Remove(std::string_view file) override {
    return files_.erase(std::string(file)) ? Status::Ok() : NotFoundError("no such file");
  }
  std::vector<std::string> List() override {
    std::vector<std::string> names;
    for (const auto& [name, f] : files_) names.push_back(name);
    return names;
  }

 private:
  std::map<std::string, std::vector<uint8_t>> files_;
};

}  // namespace faultline::bench
