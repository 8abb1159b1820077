#include "faultline/sim/disk.h"

#include <algorithm>
#include <cstring>

#include "faultline/core/buggify.h"

namespace faultline::sim {

SimDisk::SimDisk(Rng* rng, SimDiskOptions options) : rng_(rng), options_(options) {
  FL_ASSERT(rng != nullptr);
  FL_ASSERT(options_.unsynced_survives.valid() && options_.torn_write.valid());
  FL_ASSERT(options_.io_error.valid());
}

void SimDisk::Apply(std::vector<uint8_t>& image, const PendingOp& op) {
  if (op.truncate) {
    image.resize(op.offset);
    return;
  }
  const uint64_t end = op.offset + op.data.size();
  if (image.size() < end) image.resize(end);
  std::copy(op.data.begin(), op.data.end(), image.begin() + static_cast<std::ptrdiff_t>(op.offset));
}

Status SimDisk::Write(std::string_view file, uint64_t offset, std::span<const uint8_t> data) {
  if (rng_->Chance(options_.io_error)) return UnavailableError("injected disk write error");
  // Checked without computing offset + size, which wraps for offsets near 2^64.
  if (offset > options_.file_bytes_max || data.size() > options_.file_bytes_max - offset) {
    return ResourceExhaustedError("file would exceed file_bytes_max");
  }
  auto it = files_.find(file);
  if (it == files_.end()) it = files_.emplace(std::string(file), File{}).first;
  // BUGGIFY: a short write, as pwrite may do on a failing device: a strict prefix lands, the
  // call fails with EIO.
  size_t n = data.size();
  const bool short_write =
      n > 1 && options_.buggify_io_errors && FL_BUGGIFY_WITH_PERCENT("disk.short_write", 5);
  if (short_write) n = BuggifyRandom().Uniform(n);
  PendingOp op{false, offset, std::vector<uint8_t>(data.begin(), data.begin() + n)};
  Apply(it->second.current, op);
  it->second.pending.push_back(std::move(op));
  if (short_write) return UnavailableError("short disk write");
  return Status::Ok();
}

Result<size_t> SimDisk::Read(std::string_view file, uint64_t offset, std::span<uint8_t> out) {
  auto it = files_.find(file);
  if (it == files_.end()) return NotFoundError("no such file");
  const auto& image = it->second.current;
  if (offset >= image.size()) return size_t{0};
  const size_t n = std::min<size_t>(out.size(), image.size() - offset);
  std::memcpy(out.data(), image.data() + offset, n);
  return n;
}

Result<uint64_t> SimDisk::Size(std::string_view file) {
  auto it = files_.find(file);
  if (it == files_.end()) return NotFoundError("no such file");
  return static_cast<uint64_t>(it->second.current.size());
}

Status SimDisk::Truncate(std::string_view file, uint64_t size) {
  auto it = files_.find(file);
  if (it == files_.end()) return NotFoundError("no such file");
  if (size > options_.file_bytes_max) return ResourceExhaustedError("size exceeds file_bytes_max");
  PendingOp op{true, size, {}};
  Apply(it->second.current, op);
  it->second.pending.push_back(std::move(op));
  return Status::Ok();
}

Status SimDisk::Sync(std::string_view file) {
  auto it = files_.find(file);
  if (it == files_.end()) return NotFoundError("no such file");
  if (rng_->Chance(options_.io_error)) return UnavailableError("injected fsync error");
  // BUGGIFY: an fsync that fails (EIO) and makes nothing durable. (SimDisk calls complete at
  // once, so a slow fsync is not expressible here; a failed one is its rare path.)
  if (options_.buggify_io_errors && FL_BUGGIFY_WITH_PERCENT("disk.fsync_error", 5)) {
    return UnavailableError("fsync failed");
  }
  File& f = it->second;
  f.durable = f.current;
  f.pending.clear();
  f.durable_exists = true;
  ++syncs_;
  return Status::Ok();
}

Status SimDisk::Remove(std::string_view file) {
  auto it = files_.find(file);
  if (it == files_.end()) return NotFoundError("no such file");
  files_.erase(it);
  return Status::Ok();
}

std::vector<std::string> SimDisk::List() {
  std::vector<std::string> names;
  for (const auto& [name, f] : files_) names.push_back(name);
  return names;
}

void SimDisk::Crash() {
  for (auto it = files_.begin(); it != files_.end();) {
    File& f = it->second;
    std::vector<uint8_t> image = f.durable;
    bool any_survived = false;
    for (PendingOp& op : f.pending) {
      if (!rng_->Chance(options_.unsynced_survives)) {
        ++lost_;
        continue;
      }
      any_survived = true;
      if (!op.truncate && !op.data.empty() && rng_->Chance(options_.torn_write)) {
        FL_PROBE("disk.torn_write_on_crash");
        op.data.resize(rng_->Uniform(op.data.size()));  // a strict prefix persists
      }
      Apply(image, op);
    }
    f.pending.clear();
    if (!f.durable_exists && !any_survived) {
      it = files_.erase(it);  // never synced, nothing reached the platter
      continue;
    }
    f.durable = image;
    f.current = std::move(image);
    f.durable_exists = true;
    ++it;
  }
}

}  // namespace faultline::sim
