#include "faultline/runtime/posix_disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace faultline::runtime {
namespace {

constexpr size_t kNameBytesMax = 200;

// "<what> <name>: <strerror>" with the errno mapped to the Disk seam's codes (see the header).
Status ErrnoStatus(int err, std::string_view what, std::string_view name) {
  std::string message(what);
  if (!name.empty()) {
    message += " ";
    message += name;
  }
  message += ": ";
  message += std::strerror(err);
  switch (err) {
    case ENOENT:
      return NotFoundError(message);
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return ResourceExhaustedError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return Status(StatusCode::kPermissionDenied, message);
    default:
      return UnavailableError(message);  // EIO and the rest
  }
}

Status CheckName(std::string_view name) {
  if (!IsValidDiskFileName(name)) {
    return InvalidArgumentError("invalid file name (allowed: [A-Za-z0-9._-]{1,200}, no \"..\")");
  }
  return Status::Ok();
}

Status MakeDirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, "cannot create directory", prefix);
    }
  }
  return Status::Ok();
}

}  // namespace

bool IsValidDiskFileName(std::string_view name) {
  if (name.empty() || name.size() > kNameBytesMax) return false;
  if (name.find("..") != std::string_view::npos || name == ".") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

Result<std::unique_ptr<PosixDisk>> PosixDisk::Open(std::string dir) {
  if (dir.empty()) return InvalidArgumentError("PosixDisk needs a directory path");
  FL_RETURN_IF_ERROR(MakeDirs(dir));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot open directory", dir);
  return std::unique_ptr<PosixDisk>(new PosixDisk(std::move(dir), fd));
}

PosixDisk::~PosixDisk() {
  for (auto& [name, f] : files_) ::close(f.fd);
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

Result<PosixDisk::OpenFile*> PosixDisk::Get(std::string_view file, bool create) {
  FL_RETURN_IF_ERROR(CheckName(file));
  auto it = files_.find(file);
  if (it != files_.end()) return &it->second;
  const std::string name(file);
  bool created = false;
  int fd = ::openat(dir_fd_, name.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && create) {
    fd = ::openat(dir_fd_, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    created = fd >= 0;
    if (fd < 0 && errno == EEXIST) fd = ::openat(dir_fd_, name.c_str(), O_RDWR | O_CLOEXEC);
  }
  if (fd < 0) return ErrnoStatus(errno, "cannot open", file);
  OpenFile& f = files_[name];
  f.fd = fd;
  f.name_unsynced = created;
  return &f;
}

Status PosixDisk::Write(std::string_view file, uint64_t offset, std::span<const uint8_t> data) {
  FL_ASSIGN_OR_RETURN(OpenFile * f, Get(file, /*create=*/true));
  if (offset > static_cast<uint64_t>(INT64_MAX) - data.size()) {
    return InvalidArgumentError("write past the largest file offset");
  }
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::pwrite(f->fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write", file);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<size_t> PosixDisk::Read(std::string_view file, uint64_t offset, std::span<uint8_t> out) {
  FL_ASSIGN_OR_RETURN(OpenFile * f, Get(file, /*create=*/false));
  if (offset > static_cast<uint64_t>(INT64_MAX)) return size_t{0};
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(f->fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", file);
    }
    if (n == 0) break;  // end of file
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<uint64_t> PosixDisk::Size(std::string_view file) {
  FL_ASSIGN_OR_RETURN(OpenFile * f, Get(file, /*create=*/false));
  struct stat st {};
  if (::fstat(f->fd, &st) != 0) return ErrnoStatus(errno, "stat", file);
  return static_cast<uint64_t>(st.st_size);
}

Status PosixDisk::Truncate(std::string_view file, uint64_t size) {
  FL_ASSIGN_OR_RETURN(OpenFile * f, Get(file, /*create=*/false));
  if (size > static_cast<uint64_t>(INT64_MAX)) return InvalidArgumentError("size too large");
  while (::ftruncate(f->fd, static_cast<off_t>(size)) != 0) {
    if (errno != EINTR) return ErrnoStatus(errno, "truncate", file);
  }
  return Status::Ok();
}

Status PosixDisk::SyncDir(std::string_view why) {
  if (::fsync(dir_fd_) != 0) return ErrnoStatus(errno, why, dir_);
  return Status::Ok();
}

Status PosixDisk::Sync(std::string_view file) {
  FL_ASSIGN_OR_RETURN(OpenFile * f, Get(file, /*create=*/false));
  if (f->poisoned) {
    return DataLossError("an earlier sync of this file failed; its unsynced writes may be lost");
  }
  if (::fdatasync(f->fd) != 0) {
    const int err = errno;
    f->poisoned = true;
    return ErrnoStatus(err, "fdatasync", file);
  }
  if (f->name_unsynced) {
    FL_RETURN_IF_ERROR(SyncDir("fsync of directory"));
    // The directory fsync made every name created so far durable.
    for (auto& [name, other] : files_) other.name_unsynced = false;
  }
  return Status::Ok();
}

Status PosixDisk::Remove(std::string_view file) {
  FL_RETURN_IF_ERROR(CheckName(file));
  const std::string name(file);
  auto it = files_.find(file);
  if (it != files_.end()) {
    ::close(it->second.fd);
    files_.erase(it);
  }
  if (::unlinkat(dir_fd_, name.c_str(), 0) != 0) return ErrnoStatus(errno, "remove", file);
  return SyncDir("fsync of directory after remove");
}

std::vector<std::string> PosixDisk::List() {
  std::vector<std::string> names;
  const int fd = ::openat(dir_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return names;
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return names;
  }
  while (dirent* e = ::readdir(d)) {
    std::string_view name(e->d_name);
    if (!IsValidDiskFileName(name)) continue;
    if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN) continue;
    names.emplace_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

Status NoDisk::Write(std::string_view, uint64_t, std::span<const uint8_t>) {
  return UnavailableError("this node has no data directory");
}
Result<size_t> NoDisk::Read(std::string_view, uint64_t, std::span<uint8_t>) {
  return UnavailableError("this node has no data directory");
}
Result<uint64_t> NoDisk::Size(std::string_view) {
  return UnavailableError("this node has no data directory");
}
Status NoDisk::Truncate(std::string_view, uint64_t) {
  return UnavailableError("this node has no data directory");
}
Status NoDisk::Sync(std::string_view) {
  return UnavailableError("this node has no data directory");
}
Status NoDisk::Remove(std::string_view) {
  return UnavailableError("this node has no data directory");
}

}  // namespace faultline::runtime
