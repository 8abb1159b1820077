#include "faultline/env/disk.h"

namespace faultline {

Status Disk::Append(std::string_view file, std::span<const uint8_t> data) {
  uint64_t size = 0;
  Result<uint64_t> existing = Size(file);
  if (existing.ok()) {
    size = *existing;
  } else if (existing.status().code() != StatusCode::kNotFound) {
    return existing.status();
  }
  return Write(file, size, data);
}

Result<std::vector<uint8_t>> Disk::ReadAll(std::string_view file) {
  FL_ASSIGN_OR_RETURN(uint64_t size, Size(file));
  std::vector<uint8_t> out(size);
  FL_ASSIGN_OR_RETURN(size_t n, Read(file, 0, out));
  FL_ASSERT(n == size);
  return out;
}

}  // namespace faultline
