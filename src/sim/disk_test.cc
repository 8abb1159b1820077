// Unit tests for faultline/sim/disk.h (SimDisk) and the Disk helpers in faultline/env/disk.h.
// SimDisk models fsync semantics and power loss; storage code is only as well tested as this
// model is faithful, so each durability rule is checked directly.
#include "faultline/sim/disk.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace faultline::sim {
namespace {

std::vector<uint8_t> B(std::string_view s) { return std::vector<uint8_t>(s.begin(), s.end()); }

std::string Contents(SimDisk& d, std::string_view file) {
  Result<std::vector<uint8_t>> all = d.ReadAll(file);
  if (!all.ok()) return std::string("<").append(StatusCodeName(all.status().code())) + ">";
  return std::string(all->begin(), all->end());
}

TEST(SimDiskTest, WritesAreVisibleAtOnceAndReadsHonourBounds) {
  // Before any crash a write is visible immediately (page cache); reads past the end return 0
  // bytes; writes past the end zero-fill; missing files are kNotFound.
  Rng rng(1);
  SimDisk d(&rng);
  ASSERT_TRUE(d.Write("f", 0, B("hello")).ok());
  EXPECT_EQ(Contents(d, "f"), "hello");
  ASSERT_TRUE(d.Write("f", 7, B("xy")).ok());
  EXPECT_EQ(Contents(d, "f"), std::string("hello\0\0xy", 9));
  ASSERT_TRUE(d.Write("f", 1, B("EL")).ok());
  EXPECT_EQ(Contents(d, "f"), std::string("hELlo\0\0xy", 9));
  std::vector<uint8_t> buf(4);
  Result<size_t> n = d.Read("f", 7, buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
  n = d.Read("f", 9, buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  n = d.Read("f", 1'000'000, buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(d.Read("missing", 0, buf).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(d.Size("missing").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(d.Sync("missing").code(), StatusCode::kNotFound);
  EXPECT_EQ(d.Truncate("missing", 0).code(), StatusCode::kNotFound);
  EXPECT_EQ(d.Remove("missing").code(), StatusCode::kNotFound);
}

TEST(SimDiskTest, AppendAndListHelpers) {
  // Disk::Append writes at the current end (creating the file); List is sorted.
  Rng rng(1);
  SimDisk d(&rng);
  ASSERT_TRUE(d.Append("log", B("ab")).ok());
  ASSERT_TRUE(d.Append("log", B("cd")).ok());
  ASSERT_TRUE(d.Write("a", 0, B("1")).ok());
  EXPECT_EQ(Contents(d, "log"), "abcd");
  EXPECT_EQ(d.List(), (std::vector<std::string>{"a", "log"}));
}

TEST(SimDiskTest, CrashLosesUnsyncedWritesAndKeepsSyncedOnes) {
  // The core fsync rule: synced bytes survive power loss, later unsynced writes vanish (with the
  // default options no unsynced operation survives).
  Rng rng(2);
  SimDisk d(&rng);
  ASSERT_TRUE(d.Write("f", 0, B("durable")).ok());
  ASSERT_TRUE(d.Sync("f").ok());
  ASSERT_TRUE(d.Write("f", 7, B("+lost")).ok());
  ASSERT_TRUE(d.Write("f", 0, B("D")).ok());
  EXPECT_EQ(Contents(d, "f"), "Durable+lost");
  d.Crash();
  EXPECT_EQ(Contents(d, "f"), "durable");
  EXPECT_EQ(d.unsynced_ops_lost(), 2u);
  EXPECT_EQ(d.syncs(), 1u);
  // A second crash with nothing pending changes nothing.
  d.Crash();
  EXPECT_EQ(Contents(d, "f"), "durable");
}

TEST(SimDiskTest, SyncIsPerFile) {
  // Sync(file) makes only that file durable: a sibling's unsynced data is still lost.
  Rng rng(3);
  SimDisk d(&rng);
  ASSERT_TRUE(d.Write("a", 0, B("A")).ok());
  ASSERT_TRUE(d.Write("b", 0, B("B")).ok());
  ASSERT_TRUE(d.Sync("a").ok());
  ASSERT_TRUE(d.Write("a", 1, B("2")).ok());
  d.Crash();
  EXPECT_EQ(Contents(d, "a"), "A");
  EXPECT_EQ(Contents(d, "b"), "<NOT_FOUND>");
}

TEST(SimDiskTest, NeverSyncedFileDisappearsOnCrash) {
  // File creation is durable only at the first Sync: a file that was written but never synced is
  // gone after a crash (the classic "forgot to fsync the new file" bug must be observable).
  Rng rng(4);
  SimDisk d(&rng);
  ASSERT_TRUE(d.Write("new", 0, B("data")).ok());
  EXPECT_EQ(d.List(), std::vector<std::string>{"new"});
  d.Crash();
  EXPECT_TRUE(d.List().empty());
  EXPECT_EQ(d.Size("new").status().code(), StatusCode::kNotFound);
}

TEST(SimDiskTest, TruncateIsPendingUntilSync) {
  // Truncate is an unsynced operation like a write: visible at once, undone by a crash unless
  // synced. Growing truncates zero-fill.
  Rng rng(5);
  SimDisk d(&rng);
  ASSERT_TRUE(d.Write("f", 0, B("0123456789")).ok());
  ASSERT_TRUE(d.Sync("f").ok());
  ASSERT_TRUE(d.Truncate("f", 4).ok());
  EXPECT_EQ(Contents(d, "f"), "0123");
  d.Crash();
  EXPECT_EQ(Contents(d, "f"), "0123456789");

  ASSERT_TRUE(d.Truncate("f", 4).ok());
  ASSERT_TRUE(d.Sync("f").ok());
  d.Crash();
  EXPECT_EQ(Contents(d, "f"), "0123");

  ASSERT_TRUE(d.Truncate("f", 6).ok());
  EXPECT_EQ(Contents(d, "f"), std::string("0123\0\0", 6));
  // Write after truncate: order of pending operations is preserved.
  ASSERT_TRUE(d.Truncate("f", 2).ok());
  ASSERT_TRUE(d.Write("f", 2, B("ab")).ok());
  EXPECT_EQ(Contents(d, "f"), "01ab");
  ASSERT_TRUE(d.Sync("f").ok());
  d.Crash();
  EXPECT_EQ(Contents(d, "f"), "01ab");
}

TEST(SimDiskTest, RemoveIsDurableAtOnce) {
  // Remove needs no sync: the file is gone before and after a crash.
  Rng rng(6);
  SimDisk d(&rng);
  ASSERT_TRUE(d.Write("f", 0, B("x")).ok());
  ASSERT_TRUE(d.Sync("f").ok());
  ASSERT_TRUE(d.Remove("f").ok());
  EXPECT_TRUE(d.List().empty());
  d.Crash();
  EXPECT_TRUE(d.List().empty());
}

TEST(SimDiskTest, UnsyncedWritesMaySurviveWholeWhenNotTorn) {
  // unsynced_survives = 1 and torn_write = 0: every unsynced operation reaches the platter intact
  // (power loss after the page cache flushed), including the creation of a never-synced file.
  Rng rng(7);
  SimDiskOptions options;
  options.unsynced_survives = {1, 1};
  options.torn_write = Ratio::Zero();
  SimDisk d(&rng, options);
  ASSERT_TRUE(d.Write("f", 0, B("0123456789")).ok());
  ASSERT_TRUE(d.Truncate("f", 5).ok());
  d.Crash();
  EXPECT_EQ(Contents(d, "f"), "01234");
  EXPECT_EQ(d.unsynced_ops_lost(), 0u);
}

TEST(SimDiskTest, TornWritePersistsAStrictPrefix) {
  // unsynced_survives = 1 and torn_write = 1: every unsynced write survives torn, i.e. a strict
  // prefix of it persists. Over many seeds the prefix length varies and is never the whole write.
  const std::string data(100, 'x');
  std::set<size_t> lengths;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Rng rng(seed);
    SimDiskOptions options;
    options.unsynced_survives = {1, 1};
    options.torn_write = {1, 1};
    SimDisk d(&rng, options);
    ASSERT_TRUE(d.Write("f", 0, {}).ok());
    ASSERT_TRUE(d.Sync("f").ok());  // the file itself is durable, empty
    ASSERT_TRUE(d.Write("f", 0, B(data)).ok());
    d.Crash();
    const std::string after = Contents(d, "f");
    ASSERT_LT(after.size(), data.size()) << "seed " << seed;
    ASSERT_EQ(after, data.substr(0, after.size()));
    lengths.insert(after.size());
  }
  EXPECT_GT(lengths.size(), 50u);
  EXPECT_TRUE(lengths.count(0) == 1 || *lengths.begin() < 5);
}

TEST(SimDiskTest, TornWriteOverExistingDataKeepsTheOldTail) {
  // A torn overwrite leaves new bytes in front and the old durable bytes behind: the mixed state a
  // checksum must detect.
  Rng rng(11);
  SimDiskOptions options;
  options.unsynced_survives = {1, 1};
  options.torn_write = {1, 1};
  SimDisk d(&rng, options);
  ASSERT_TRUE(d.Write("f", 0, B("oooooooooo")).ok());
  ASSERT_TRUE(d.Sync("f").ok());
  ASSERT_TRUE(d.Write("f", 0, B("nnnnnnnnnn")).ok());
  d.Crash();
  const std::string after = Contents(d, "f");
  ASSERT_EQ(after.size(), 10u);
  const size_t k = after.find('o');
  ASSERT_NE(k, std::string::npos);  // strict prefix: at least one old byte remains
  EXPECT_EQ(after, std::string(k, 'n') + std::string(10 - k, 'o'));
}

TEST(SimDiskTest, InjectedIoErrorsFailWritesAndSyncsWithoutSideEffects) {
  // io_error = 1: Write and Sync fail with kUnavailable (EIO) and change nothing; storage code must
  // treat a failed fsync as "not durable".
  Rng rng(8);
  SimDisk d(&rng);
  ASSERT_TRUE(d.Write("f", 0, B("ok")).ok());
  d.options().io_error = {1, 1};
  EXPECT_EQ(d.Write("f", 0, B("XX")).code(), StatusCode::kUnavailable);
  EXPECT_EQ(Contents(d, "f"), "ok");
  EXPECT_EQ(d.Sync("f").code(), StatusCode::kUnavailable);
  EXPECT_EQ(d.syncs(), 0u);
  d.options().io_error = Ratio::Zero();
  d.Crash();
  EXPECT_EQ(Contents(d, "f"), "<NOT_FOUND>");  // the failed sync made nothing durable
}

TEST(SimDiskTest, ZeroFaultRatiosDrawNothing) {
  // With every fault ratio zero, disk operations must not consume random draws: enabling the disk
  // in a scenario must not shift other draws of the same stream.
  Rng rng(9);
  Rng reference(9);
  SimDisk d(&rng);
  ASSERT_TRUE(d.Write("f", 0, B("abc")).ok());
  ASSERT_TRUE(d.Sync("f").ok());
  ASSERT_TRUE(d.Write("f", 0, B("x")).ok());
  d.Crash();
  EXPECT_EQ(rng.Next(), reference.Next());
}

TEST(SimDiskTest, FileSizeLimitIsEnforced) {
  // Writes that would grow a file past file_bytes_max fail with kResourceExhausted (ENOSPC).
  Rng rng(10);
  SimDiskOptions options;
  options.file_bytes_max = 8;
  SimDisk d(&rng, options);
  EXPECT_TRUE(d.Write("f", 0, B("12345678")).ok());
  EXPECT_EQ(d.Write("f", 4, B("12345")).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(d.Write("f", 9, {}).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Contents(d, "f"), "12345678");
}

TEST(SimDiskTest, HugeOffsetsAndSizesAreRefusedNotWrapped) {
  // Regression: offset + size was computed unchecked, so an offset near 2^64 (e.g. read from a
  // corrupted index) wrapped around the limit check and wrote out of bounds; Truncate to a huge
  // size tried to allocate it. Both must fail with kResourceExhausted and leave the file intact.
  Rng rng(12);
  SimDisk d(&rng);
  ASSERT_TRUE(d.Write("f", 0, B("abc")).ok());
  EXPECT_EQ(d.Write("f", UINT64_MAX - 1, B("xyz")).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(d.Write("f", UINT64_MAX, B("x")).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(d.Truncate("f", UINT64_MAX).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(d.Truncate("f", d.options().file_bytes_max + 1).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Contents(d, "f"), "abc");
  EXPECT_TRUE(d.Truncate("f", 1).ok());
  EXPECT_EQ(Contents(d, "f"), "a");
}

}  // namespace
}  // namespace faultline::sim
