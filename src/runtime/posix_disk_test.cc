// Unit tests for faultline/runtime/posix_disk.h: the Disk contract on a real directory, name
// validation, and durability across a SIGKILL: a child process writes and syncs records, reports
// each synced one through a pipe, and is killed mid-stream; the parent reopens the directory and
// finds every reported record intact and no torn record anywhere.
#include "faultline/runtime/posix_disk.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "faultline/core/crc32c.h"

namespace faultline::runtime {
namespace {

using Bytes = std::vector<uint8_t>;

std::string TempDir() {
  char tmpl[] = "/tmp/faultline-posix-disk-XXXXXX";
  const char* d = ::mkdtemp(tmpl);
  FL_ASSERT(d != nullptr);
  return d;
}

Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }

TEST(PosixDiskTest, ImplementsTheDiskContract) {
  const std::string dir = TempDir() + "/nested/data";  // missing parents are created
  auto disk_or = PosixDisk::Open(dir);
  ASSERT_TRUE(disk_or.ok()) << disk_or.status().ToString();
  PosixDisk& disk = **disk_or;
  uint8_t buf[16];
  EXPECT_EQ(disk.Read("wal", 0, buf).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(disk.Size("wal").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(disk.Sync("wal").code(), StatusCode::kNotFound);
  EXPECT_EQ(disk.Remove("wal").code(), StatusCode::kNotFound);

  ASSERT_TRUE(disk.Write("wal", 4, B("abcd")).ok());  // gap 0..3 reads as zeros
  auto all = disk.ReadAll("wal");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (Bytes{0, 0, 0, 0, 'a', 'b', 'c', 'd'}));
  ASSERT_TRUE(disk.Append("wal", B("ef")).ok());
  EXPECT_EQ(*disk.Size("wal"), 10u);
  ASSERT_TRUE(disk.Truncate("wal", 6).ok());
  EXPECT_EQ(*disk.ReadAll("wal"), (Bytes{0, 0, 0, 0, 'a', 'b'}));
  EXPECT_EQ(*disk.Read("wal", 100, buf), 0u);
  ASSERT_TRUE(disk.Sync("wal").ok());
  ASSERT_TRUE(disk.Write("a-1.snap", 0, B("x")).ok());
  EXPECT_EQ(disk.List(), (std::vector<std::string>{"a-1.snap", "wal"}));
  ASSERT_TRUE(disk.Remove("a-1.snap").ok());
  EXPECT_EQ(disk.List(), (std::vector<std::string>{"wal"}));

  auto again = PosixDisk::Open(dir);  // another handle sees the same files
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*(*again)->ReadAll("wal"), (Bytes{0, 0, 0, 0, 'a', 'b'}));
}

TEST(PosixDiskTest, MalformedNamesAreRejected) {
  auto disk_or = PosixDisk::Open(TempDir());
  ASSERT_TRUE(disk_or.ok());
  PosixDisk& disk = **disk_or;
  const std::string long_name(201, 'a');
  uint8_t buf[1];
  for (const std::string& bad :
       {std::string(""), std::string("."), std::string(".."), std::string("../escape"),
        std::string("a/b"), std::string("/etc/passwd"), std::string("a b"), std::string("x..y"),
        std::string("nul\0x", 5), std::string("\xc3\xa9t\xc3\xa9"), long_name}) {
    EXPECT_EQ(disk.Write(bad, 0, B("x")).code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(disk.Read(bad, 0, buf).status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(disk.Sync(bad).code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(disk.Truncate(bad, 0).code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(disk.Remove(bad).code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(disk.List().empty());
  EXPECT_TRUE(IsValidDiskFileName(std::string(200, 'z')));
  EXPECT_TRUE(IsValidDiskFileName("Log_0.wal-tmp"));
  EXPECT_EQ(PosixDisk::Open("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PosixDisk::Open("/proc/version/x").status().code(), StatusCode::kUnavailable);
}

constexpr size_t kRecordBytes = 64;

// Record i: its index, a filler derived from it, and a CRC-32C of both.
Bytes Record(uint32_t i) {
  Bytes r(kRecordBytes);
  std::memcpy(r.data(), &i, 4);
  for (size_t k = 4; k < kRecordBytes - 4; ++k) r[k] = static_cast<uint8_t>(i * 31 + k);
  const uint32_t crc = Crc32c(std::span<const uint8_t>(r.data(), kRecordBytes - 4));
  std::memcpy(r.data() + kRecordBytes - 4, &crc, 4);
  return r;
}

// The child: appends records, syncing each of the first `synced` and reporting its index on
// `report_fd`, then keeps appending (and syncing every 7th) until killed.
[[noreturn]] void WriterChild(const std::string& dir, int report_fd, uint32_t synced) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto disk_or = PosixDisk::Open(dir);
  if (!disk_or.ok()) ::_exit(3);
  PosixDisk& disk = **disk_or;
  for (uint32_t i = 0;; ++i) {
    if (!disk.Write("log", uint64_t{i} * kRecordBytes, Record(i)).ok()) ::_exit(4);
    if (i < synced || i % 7 == 0) {
      if (!disk.Sync("log").ok()) ::_exit(5);
    }
    if (i < synced && ::write(report_fd, &i, sizeof(i)) != sizeof(i)) ::_exit(6);
  }
}

TEST(PosixDiskTest, SyncedRecordsSurviveSigkillAndNoRecordIsTorn) {
  const std::string dir = TempDir();
  constexpr uint32_t kSynced = 200;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    WriterChild(dir, fds[1], kSynced);
  }
  ::close(fds[1]);
  uint32_t acked = 0, got = 0;
  while (acked < kSynced && ::read(fds[0], &got, sizeof(got)) == sizeof(got)) {
    EXPECT_EQ(got, acked);
    acked = got + 1;
  }
  ::usleep(2000);  // let it get well into the unsynced tail
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ::close(fds[0]);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << "child exited early";
  ASSERT_EQ(acked, kSynced);

  auto disk_or = PosixDisk::Open(dir);
  ASSERT_TRUE(disk_or.ok());
  auto bytes = (*disk_or)->ReadAll("log");
  ASSERT_TRUE(bytes.ok());
  const size_t records = bytes->size() / kRecordBytes;
  ASSERT_GE(records, size_t{kSynced});
  // A killed process loses nothing it wrote (the page cache is the kernel's). A write may be cut
  // only at a page boundary, and a 64-byte record never straddles one, so none may be torn:
  // every whole slot holds exactly its record and no partial slot trails.
  EXPECT_EQ(bytes->size() % kRecordBytes, 0u);
  for (size_t i = 0; i < records; ++i) {
    const Bytes want = Record(static_cast<uint32_t>(i));
    ASSERT_TRUE(
        std::equal(want.begin(), want.end(), bytes->begin() + static_cast<long>(i * kRecordBytes)))
        << "record " << i << " damaged (synced: " << (i < kSynced) << ")";
  }
  std::printf("%zu records on disk after SIGKILL, %u of them acknowledged as synced\n", records,
              kSynced);
}

}  // namespace
}  // namespace faultline::runtime
