#include "faultline/store/log_store.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/core/crc32c.h"
#include "faultline/core/random.h"
#include "faultline/sim/disk.h"

namespace faultline {
namespace {

using sim::SimDisk;
using Model = std::map<std::string, std::string>;

template <typename T>
T Must(Result<T> result) {
  FL_ASSERT_MSG(result.ok(), result.status().ToString().c_str());
  return std::move(result).value();
}

void MustOk(const Status& status) { FL_ASSERT_MSG(status.ok(), status.ToString().c_str()); }

std::unique_ptr<LogStore> OpenStore(Disk& disk, LogStoreOptions options = {}) {
  return Must(LogStore::Open(disk, std::move(options)));
}

// The whole committed state, read through a transaction.
Model Dump(LogStore& store) {
  std::unique_ptr<Transaction> txn = Must(store.Begin());
  Model model;
  for (KeyValue& kv : Must(txn->Scan("", "", store.options().scan_limit_max))) {
    model.emplace(std::move(kv.key), std::move(kv.value));
  }
  txn->Rollback();
  return model;
}

// Commits puts (nullopt: delete) in one transaction.
Status Apply(LogStore& store, const std::map<std::string, std::optional<std::string>>& writes) {
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, store.Begin());
  for (const auto& [key, value] : writes) {
    if (value) {
      FL_RETURN_IF_ERROR(txn->Put(key, *value));
    } else {
      FL_RETURN_IF_ERROR(txn->Delete(key).status());
    }
  }
  return txn->Commit();
}

std::vector<KeyValue> Kvs(std::initializer_list<std::pair<const char*, const char*>> pairs) {
  std::vector<KeyValue> out;
  for (const auto& [k, v] : pairs) out.push_back({k, v});
  return out;
}

void CrashAndReopen(SimDisk& disk, std::unique_ptr<LogStore>& store, LogStoreOptions options = {}) {
  store.reset();
  disk.Crash();
  store = OpenStore(disk, std::move(options));
}

// "k<n>", appended rather than concatenated: GCC 12 misreports "k" + std::string&& at -O3
// (-Wrestrict, GCC bug 105651).
std::string Key(uint64_t n) {
  std::string key = "k";
  key += std::to_string(n);
  return key;
}

std::string LogFile(const LogStore& store) {
  return LogStore::LogFileName(store.options().name, store.stats().generation);
}

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(LogStoreTest, PutGetDeleteAndOrderedScanWithLimit) {
  // The basic contract: values round-trip, Scan returns [begin, end) in key order, cut at limit.
  Rng rng(1);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"c", "3"}, {"a", "1"}, {"d", "4"}, {"b", "2"}}));

  auto txn = Must(store->Begin());
  EXPECT_EQ(Must(txn->Get("a")), std::optional<std::string>("1"));
  EXPECT_EQ(Must(txn->Get("zz")), std::nullopt);
  EXPECT_EQ(Must(txn->Scan("", "", 10)), Kvs({{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}}));
  EXPECT_EQ(Must(txn->Scan("b", "d", 10)), Kvs({{"b", "2"}, {"c", "3"}}));
  EXPECT_EQ(Must(txn->Scan("", "", 2)), Kvs({{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(Must(txn->Scan("bb", "", 10)), Kvs({{"c", "3"}, {"d", "4"}}));
  EXPECT_TRUE(Must(txn->Scan("d", "b", 10)).empty());
  EXPECT_TRUE(Must(txn->Delete("b")));
  EXPECT_FALSE(Must(txn->Delete("zz")));
  MustOk(txn->Commit());

  EXPECT_EQ(Dump(*store), (Model{{"a", "1"}, {"c", "3"}, {"d", "4"}}));
  EXPECT_EQ(store->stats().commits, 2u);
}

TEST(LogStoreTest, ReadYourWritesIncludingScanMergeWithOwnDeletes) {
  // A transaction sees its own puts and deletes everywhere, Scan included (merged in key order,
  // before the limit applies), while other transactions see none of it until Commit.
  Rng rng(2);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}}));

  auto txn = Must(store->Begin());
  MustOk(txn->Put("b", "20"));
  EXPECT_TRUE(Must(txn->Delete("c")));
  MustOk(txn->Put("bb", "5"));
  MustOk(txn->Put("e", "6"));
  EXPECT_EQ(Must(txn->Get("b")), std::optional<std::string>("20"));
  EXPECT_EQ(Must(txn->Get("c")), std::nullopt);
  EXPECT_EQ(Must(txn->Scan("", "", 10)),
            Kvs({{"a", "1"}, {"b", "20"}, {"bb", "5"}, {"d", "4"}, {"e", "6"}}));
  EXPECT_EQ(Must(txn->Scan("", "", 3)), Kvs({{"a", "1"}, {"b", "20"}, {"bb", "5"}}));
  EXPECT_EQ(Must(txn->Scan("b", "d", 10)), Kvs({{"b", "20"}, {"bb", "5"}}));
  EXPECT_EQ(Must(txn->Scan("c", "d", 10)), Kvs({}));

  auto other = Must(store->Begin());
  EXPECT_EQ(Must(other->Get("b")), std::optional<std::string>("2"));
  EXPECT_EQ(Must(other->Scan("", "", 10)), Kvs({{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}}));
  other->Rollback();

  MustOk(txn->Commit());
  EXPECT_EQ(Dump(*store), (Model{{"a", "1"}, {"b", "20"}, {"bb", "5"}, {"d", "4"}, {"e", "6"}}));
}

TEST(LogStoreTest, InsertIfAbsentReturnsTrueThenFalseAndKeepsFirstValue) {
  // The idempotency-key primitive: the first insert wins, later ones report false and change
  // nothing, within one transaction and across transactions; a deleted key can be inserted again.
  Rng rng(3);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  auto txn = Must(store->Begin());
  EXPECT_TRUE(Must(txn->InsertIfAbsent("k", "first")));
  EXPECT_FALSE(Must(txn->InsertIfAbsent("k", "second")));
  EXPECT_EQ(Must(txn->Get("k")), std::optional<std::string>("first"));
  MustOk(txn->Commit());

  txn = Must(store->Begin());
  EXPECT_FALSE(Must(txn->InsertIfAbsent("k", "third")));
  EXPECT_EQ(Must(txn->Get("k")), std::optional<std::string>("first"));
  EXPECT_TRUE(Must(txn->Delete("k")));
  EXPECT_TRUE(Must(txn->InsertIfAbsent("k", "fourth")));
  MustOk(txn->Commit());
  EXPECT_EQ(Dump(*store), (Model{{"k", "fourth"}}));
}

TEST(LogStoreTest, CompareAndSetSucceedsOnlyOnMatchAndHandlesAbsence) {
  // CAS compares with the current value (nullopt: absent) and sets or, with desired nullopt,
  // deletes; a mismatch changes nothing.
  Rng rng(4);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  auto txn = Must(store->Begin());
  EXPECT_FALSE(Must(txn->CompareAndSet("k", "x", "y")));
  EXPECT_EQ(Must(txn->Get("k")), std::nullopt);
  EXPECT_TRUE(Must(txn->CompareAndSet("k", std::nullopt, "v1")));
  EXPECT_FALSE(Must(txn->CompareAndSet("k", std::nullopt, "v9")));
  MustOk(txn->Commit());

  txn = Must(store->Begin());
  EXPECT_FALSE(Must(txn->CompareAndSet("k", "wrong", "v2")));
  EXPECT_EQ(Must(txn->Get("k")), std::optional<std::string>("v1"));
  EXPECT_TRUE(Must(txn->CompareAndSet("k", "v1", "v2")));
  EXPECT_EQ(Must(txn->Get("k")), std::optional<std::string>("v2"));
  EXPECT_TRUE(Must(txn->CompareAndSet("k", "v2", std::nullopt)));
  EXPECT_EQ(Must(txn->Get("k")), std::nullopt);
  MustOk(txn->Commit());
  EXPECT_TRUE(Dump(*store).empty());

  // Absent -> absent matches and writes nothing: the commit is read-only.
  const uint64_t read_only_before = store->stats().read_only_commits;
  txn = Must(store->Begin());
  EXPECT_TRUE(Must(txn->CompareAndSet("k", std::nullopt, std::nullopt)));
  MustOk(txn->Commit());
  EXPECT_EQ(store->stats().read_only_commits, read_only_before + 1);
}

TEST(LogStoreTest, CommittedSurvivesCrashAndUncommittedVanishes) {
  // Durability and atomicity across power loss: acknowledged commits survive Crash(); a
  // transaction that never committed, or was destroyed after writing, leaves no trace.
  Rng rng(5);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"a", "1"}, {"b", "2"}}));
  MustOk(Apply(*store, {{"b", std::nullopt}, {"c", "3"}}));
  {
    auto destroyed = Must(store->Begin());
    MustOk(destroyed->Put("d", "4"));
  }
  auto open_at_crash = Must(store->Begin());
  MustOk(open_at_crash->Put("e", "5"));
  open_at_crash.reset();  // the process dies with the transaction open
  CrashAndReopen(disk, store);
  EXPECT_EQ(Dump(*store), (Model{{"a", "1"}, {"c", "3"}}));
  EXPECT_FALSE(store->stats().recovered_tail_discarded);
  EXPECT_EQ(store->stats().last_commit_seq, 2u);

  MustOk(Apply(*store, {{"f", "6"}}));
  CrashAndReopen(disk, store);
  EXPECT_EQ(Dump(*store), (Model{{"a", "1"}, {"c", "3"}, {"f", "6"}}));
}

TEST(LogStoreTest, TornTailIsDiscardedTruncatedAndLaterCommitsWork) {
  // A crash can leave a torn, unsynced record at the end of the log. Recovery must keep exactly
  // the committed prefix and cut the tail off durably, or later appends would follow garbage.
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Rng rng(seed);
    SimDisk disk(&rng);
    disk.options().unsynced_survives = Ratio{1, 1};
    disk.options().torn_write = Ratio{1, 1};
    auto store = OpenStore(disk);
    MustOk(Apply(*store, {{"a", "1"}}));
    MustOk(Apply(*store, {{"b", "2"}}));
    const std::string log = LogFile(*store);
    const uint64_t good_bytes = Must(disk.Size(log));
    // A record header promising 200 payload bytes, then some of them: what a torn append leaves.
    std::vector<uint8_t> partial;
    ByteWriter w(&partial);
    w.U32(200);
    w.U32(0xdeadbeef);
    w.Raw(std::string(40, 'x'));
    MustOk(disk.Write(log, good_bytes, partial));
    CrashAndReopen(disk, store);
    const uint64_t survived = Must(disk.Size(log));
    EXPECT_EQ(survived, good_bytes);
    EXPECT_EQ(Dump(*store), (Model{{"a", "1"}, {"b", "2"}}));
    EXPECT_EQ(store->stats().recovered_records, 3u);  // the empty snapshot and two commits

    MustOk(Apply(*store, {{"c", "3"}}));
    CrashAndReopen(disk, store);
    EXPECT_EQ(Dump(*store), (Model{{"a", "1"}, {"b", "2"}, {"c", "3"}}));
    EXPECT_FALSE(store->stats().recovered_tail_discarded);
  }
}

TEST(LogStoreTest, TornTailStatsReportDiscardedBytes) {
  // Open reports the tail it cut, so operators can tell a crash recovery from a clean start.
  Rng rng(6);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"a", "1"}}));
  const std::string log = LogFile(*store);
  MustOk(disk.Append(log, Bytes("garbage!")));
  MustOk(disk.Sync(log));
  store.reset();
  store = OpenStore(disk);
  EXPECT_TRUE(store->stats().recovered_tail_discarded);
  EXPECT_EQ(store->stats().recovered_tail_bytes, 8u);
  EXPECT_EQ(Dump(*store), (Model{{"a", "1"}}));
}

TEST(LogStoreTest, OccSecondWriterOfAReadKeyAborts) {
  // Lost-update prevention: two transactions read x and both write it; the first commit wins and
  // the second gets kAborted with nothing applied, so a retry sees the new value.
  Rng rng(7);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"x", "0"}}));
  auto t1 = Must(store->Begin());
  auto t2 = Must(store->Begin());
  EXPECT_EQ(Must(t1->Get("x")), std::optional<std::string>("0"));
  EXPECT_EQ(Must(t2->Get("x")), std::optional<std::string>("0"));
  MustOk(t1->Put("x", "1"));
  MustOk(t2->Put("x", "2"));
  MustOk(t2->Put("y", "2"));
  MustOk(t1->Commit());
  EXPECT_EQ(t2->Commit().code(), StatusCode::kAborted);
  EXPECT_EQ(Dump(*store), (Model{{"x", "1"}}));
  EXPECT_EQ(store->stats().aborts, 1u);
  EXPECT_EQ(store->stats().versions_tracked, 0u);  // nothing open: no versions kept
}

TEST(LogStoreTest, OccScannedRangePhantomAborts) {
  // Serializable scans: a key inserted into a range another transaction scanned is a phantom, so
  // the scanner's commit aborts; a change just outside the range does not.
  Rng rng(8);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"a", "1"}, {"c", "3"}}));

  auto scanner = Must(store->Begin());
  EXPECT_EQ(Must(scanner->Scan("a", "c", 10)), Kvs({{"a", "1"}}));
  MustOk(scanner->Put("z", "count=1"));
  MustOk(Apply(*store, {{"c", "33"}}));  // outside [a, c)
  auto outside = Must(store->Begin());
  EXPECT_EQ(Must(outside->Scan("a", "c", 10)), Kvs({{"a", "1"}}));
  MustOk(outside->Put("y", "ok"));
  MustOk(Apply(*store, {{"b", "2"}}));  // inside [a, c)
  EXPECT_EQ(scanner->Commit().code(), StatusCode::kAborted);
  EXPECT_EQ(outside->Commit().code(), StatusCode::kAborted);

  auto unbounded = Must(store->Begin());
  EXPECT_EQ(Must(unbounded->Scan("b", "", 10)).size(), 2u);
  MustOk(unbounded->Put("q", "1"));
  MustOk(Apply(*store, {{"zz", "new"}}));  // an unbounded scan reaches the end of the key space
  EXPECT_EQ(unbounded->Commit().code(), StatusCode::kAborted);
}

TEST(LogStoreTest, ScanWithLimitReadsOnlyUpToLastReturnedKey) {
  // A full page has read [begin, last returned key]: an insert after it must not abort the
  // scanner (pagination would livelock otherwise), an insert inside it must.
  Rng rng(9);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"a", "1"}, {"b", "2"}, {"d", "4"}}));

  auto page = Must(store->Begin());
  EXPECT_EQ(Must(page->Scan("", "", 2)), Kvs({{"a", "1"}, {"b", "2"}}));
  MustOk(page->Put("cursor", "b"));
  MustOk(Apply(*store, {{"c", "3"}}));
  MustOk(Apply(*store, {{"b\x01", "after b"}}));  // just past b + '\0'
  MustOk(page->Commit());

  auto page2 = Must(store->Begin());
  EXPECT_EQ(Must(page2->Scan("", "", 2)).size(), 2u);
  MustOk(page2->Put("cursor", "b"));
  MustOk(Apply(*store, {{"aa", "inside"}}));
  EXPECT_EQ(page2->Commit().code(), StatusCode::kAborted);
}

TEST(LogStoreTest, BlindWritesDoNotConflictAndLaterCommitWins) {
  // Write-only transactions read nothing, so no interleaving can invalidate them.
  Rng rng(10);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  auto t1 = Must(store->Begin());
  auto t2 = Must(store->Begin());
  MustOk(t1->Put("x", "1"));
  MustOk(t2->Put("x", "2"));
  MustOk(t2->Commit());
  MustOk(t1->Commit());
  EXPECT_EQ(Dump(*store), (Model{{"x", "1"}}));
  EXPECT_EQ(store->stats().aborts, 0u);
}

TEST(LogStoreTest, ChangesToDeletedOrAbsentKeysConflict) {
  // Tombstones count: reading a key that another transaction then deletes, or reading an absent
  // key that another transaction inserts and deletes again, invalidates the read.
  Rng rng(11);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"k", "1"}}));
  auto t1 = Must(store->Begin());
  EXPECT_TRUE(Must(t1->Get("k")).has_value());
  MustOk(t1->Put("other", "x"));
  MustOk(Apply(*store, {{"k", std::nullopt}}));
  EXPECT_EQ(t1->Commit().code(), StatusCode::kAborted);

  auto t2 = Must(store->Begin());
  EXPECT_TRUE(Must(t2->InsertIfAbsent("m", "mine")));
  MustOk(Apply(*store, {{"m", "theirs"}}));
  MustOk(Apply(*store, {{"m", std::nullopt}}));
  EXPECT_EQ(t2->Commit().code(), StatusCode::kAborted);
  EXPECT_EQ(Dump(*store), (Model{}));
}

TEST(LogStoreTest, RunInTransactionRetriesThroughAbort) {
  // RunInTransaction re-runs the body after kAborted; the retry reads the fresh value, so the
  // increment is not lost.
  Rng rng(12);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"n", "0"}}));
  int attempts = 0;
  MustOk(RunInTransaction(*store, [&](Transaction& txn) -> Status {
    ++attempts;
    FL_ASSIGN_OR_RETURN(std::optional<std::string> n, txn.Get("n"));
    if (attempts == 1) FL_RETURN_IF_ERROR(Apply(*store, {{"n", "10"}}));  // a racing writer
    return txn.Put("n", std::to_string(std::stoi(*n) + 1));
  }));
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(Dump(*store), (Model{{"n", "11"}}));
  EXPECT_EQ(store->stats().aborts, 1u);
}

TEST(LogStoreTest, VersionsArePrunedOnceNoOpenTransactionPredatesThem) {
  // Conflict bookkeeping must not grow forever: versions older than the oldest open transaction
  // are dropped, and all of them once no transaction is open.
  Rng rng(13);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  auto old_txn = Must(store->Begin());
  for (int i = 0; i < 1500; ++i) MustOk(Apply(*store, {{Key(i), "v"}}));
  EXPECT_EQ(store->stats().versions_tracked, 1500u);
  auto young_txn = Must(store->Begin());
  old_txn->Rollback();
  EXPECT_EQ(store->stats().versions_tracked, 0u);
  MustOk(Apply(*store, {{"k1", std::nullopt}}));
  EXPECT_EQ(store->stats().versions_tracked, 1u);
  EXPECT_TRUE(Must(young_txn->Get("k1")) == std::nullopt);
  EXPECT_EQ(young_txn->Commit().code(), StatusCode::kAborted);
  EXPECT_EQ(store->stats().versions_tracked, 0u);
  EXPECT_EQ(store->stats().open_transactions, 0u);
}

TEST(LogStoreTest, IoErrorPoisonsStoreAndFailedCommitIsAbsent) {
  // The fsync lesson: after a failed write the store refuses work until reopened, and the failed
  // transaction is not visible in memory; here the write never happened, so reopening lacks it.
  Rng rng(14);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"a", "1"}}));
  disk.options().io_error = Ratio{1, 1};
  EXPECT_EQ(Apply(*store, {{"b", "2"}}).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(store->poisoned());
  EXPECT_EQ(store->Begin().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store->Compact().code(), StatusCode::kUnavailable);
  disk.options().io_error = Ratio::Zero();
  EXPECT_EQ(store->Begin().status().code(), StatusCode::kUnavailable);  // clearing is not enough

  store.reset();
  store = OpenStore(disk);
  EXPECT_EQ(Dump(*store), (Model{{"a", "1"}}));
  MustOk(Apply(*store, {{"c", "3"}}));
  EXPECT_EQ(Dump(*store), (Model{{"a", "1"}, {"c", "3"}}));
}

TEST(LogStoreTest, IoErrorOutcomeIsAllOrNothingAfterReopen) {
  // A commit that failed with kUnavailable was never acknowledged, so after reopen (with or
  // without a crash) it may be present or absent, but only whole. Both outcomes must occur over
  // the seeds, or the test is not exercising the failed-fsync path.
  const Model base{{"a", "1"}, {"b", "2"}};
  const Model with_txn{{"b", "2"}, {"x", "10"}, {"y", "20"}, {"z", "30"}};
  int present = 0;
  int absent = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Rng rng(seed);
    SimDisk disk(&rng);
    auto store = OpenStore(disk);
    MustOk(Apply(*store, {{"a", "1"}, {"b", "2"}}));
    disk.options().io_error = Ratio{1, 2};
    const Status status =
        Apply(*store, {{"a", std::nullopt}, {"x", "10"}, {"y", "20"}, {"z", "30"}});
    ASSERT_TRUE(status.ok() || status.code() == StatusCode::kUnavailable) << status.ToString();
    EXPECT_EQ(store->poisoned(), !status.ok());
    // Memory never shows a failed commit (a poisoned store cannot Begin, so look at the stats).
    EXPECT_EQ(store->stats().keys, status.ok() ? with_txn.size() : base.size());
    EXPECT_EQ(store->stats().last_commit_seq, status.ok() ? 2u : 1u);
    disk.options().io_error = Ratio::Zero();
    disk.options().unsynced_survives = Ratio{rng.Uniform(3), 2};
    disk.options().torn_write = Ratio{rng.Uniform(3), 2};
    store.reset();
    if (rng.Chance(Ratio{1, 2})) disk.Crash();
    store = OpenStore(disk);
    const Model recovered = Dump(*store);
    if (status.ok()) {
      EXPECT_EQ(recovered, with_txn) << "seed " << seed;
    } else {
      EXPECT_TRUE(recovered == base || recovered == with_txn) << "seed " << seed;
      (recovered == base ? absent : present) += 1;
    }
  }
  EXPECT_GT(present, 0);
  EXPECT_GT(absent, 0);
}

TEST(LogStoreTest, RecoveredUnsyncedRecordIsMadeDurableBeforeItIsServed) {
  // Regression (found by the crash property): after a failed fsync, reopening without a power
  // loss reads the unsynced record from the page cache and serves it. Open did not sync it, so a
  // later crash un-committed data that readers had already seen. Open now syncs what it replays.
  bool exercised = false;
  for (uint64_t seed = 0; seed < 100 && !exercised; ++seed) {
    Rng rng(seed);
    SimDisk disk(&rng);
    auto store = OpenStore(disk);
    MustOk(Apply(*store, {{"a", "1"}}));
    const std::string log = LogFile(*store);
    const uint64_t size = Must(disk.Size(log));
    disk.options().io_error = Ratio{1, 2};
    const Status status = Apply(*store, {{"b", "2"}});
    disk.options().io_error = Ratio::Zero();
    if (status.ok() || Must(disk.Size(log)) == size) continue;  // want: write landed, sync failed
    exercised = true;
    store.reset();
    store = OpenStore(disk);  // no crash: the page cache still holds the record
    EXPECT_EQ(Dump(*store), (Model{{"a", "1"}, {"b", "2"}}));
    CrashAndReopen(disk, store);  // unsynced_survives is zero: only synced bytes survive
    EXPECT_EQ(Dump(*store), (Model{{"a", "1"}, {"b", "2"}}));
  }
  EXPECT_TRUE(exercised);
}

TEST(LogStoreTest, RecoveredUnsyncedSuperblockIsMadeDurableBeforeOldLogIsRemoved) {
  // Regression, same family: compaction stopped after writing the new slot but before syncing
  // it; a reopen without power loss picks the new generation and removes the old log. Unless
  // Open syncs the slot first, a crash then reverts the slot to a generation whose log is gone.
  Rng rng(24);
  SimDisk disk(&rng);
  bool armed = false;
  LogStoreOptions options;
  options.wal_bytes_max = 256;
  options.compaction_hook_for_test = [&](LogStoreCompactionStep at) {
    return armed && at == LogStoreCompactionStep::kSuperblockWritten ? UnavailableError("stop")
                                                                     : Status::Ok();
  };
  auto store = OpenStore(disk, options);
  armed = true;
  Model model;
  for (int i = 0; i < 100 && !store->poisoned(); ++i) {
    model[Key(i)] = std::string(30, 'v');
    MustOk(Apply(*store, {{Key(i), std::string(30, 'v')}}));
  }
  ASSERT_TRUE(store->poisoned());
  armed = false;
  store.reset();
  store = OpenStore(disk, options);
  EXPECT_EQ(store->stats().generation, 2u);
  CrashAndReopen(disk, store, options);
  EXPECT_EQ(store->stats().generation, 2u);
  EXPECT_EQ(Dump(*store), model);
}

TEST(LogStoreTest, CompactionBoundsTheLogAndSurvivesCrash) {
  // With a small wal_bytes_max the log is rewritten as a snapshot in a new generation; the state
  // must survive, stale generations must be gone, and the log must stay bounded.
  Rng rng(15);
  SimDisk disk(&rng);
  LogStoreOptions options;
  options.wal_bytes_max = 1024;
  auto store = OpenStore(disk, options);
  Model model;
  for (int i = 0; i < 400; ++i) {
    const std::string key = "key" + std::to_string(rng.Uniform(20));
    if (rng.Chance(Ratio{1, 5})) {
      model.erase(key);
      MustOk(Apply(*store, {{key, std::nullopt}}));
    } else {
      model[key] = "value-" + std::to_string(i);
      MustOk(Apply(*store, {{key, model[key]}}));
    }
    EXPECT_LE(store->stats().log_bytes, 2048u);
  }
  EXPECT_GT(store->stats().compactions, 10u);
  EXPECT_EQ(store->stats().generation, store->stats().compactions + 1);
  EXPECT_EQ(Dump(*store), model);
  const std::vector<std::string> files = disk.List();
  EXPECT_EQ(files, (std::vector<std::string>{LogFile(*store), "store.super.a", "store.super.b"}));
  const uint64_t last_commit_seq = store->stats().last_commit_seq;
  CrashAndReopen(disk, store, options);
  EXPECT_EQ(Dump(*store), model);
  EXPECT_EQ(store->stats().last_commit_seq, last_commit_seq);  // the snapshot carries the seq
}

struct CrashMode {
  Ratio survives;
  Ratio torn;
};
constexpr CrashMode kCrashModes[] = {{Ratio{0, 1}, Ratio{0, 1}},
                                     {Ratio{1, 1}, Ratio{0, 1}},
                                     {Ratio{1, 1}, Ratio{1, 1}},
                                     {Ratio{1, 2}, Ratio{1, 2}}};
constexpr LogStoreCompactionStep kSteps[] = {
    LogStoreCompactionStep::kSnapshotWritten, LogStoreCompactionStep::kSnapshotSynced,
    LogStoreCompactionStep::kSuperblockWritten, LogStoreCompactionStep::kSuperblockSynced,
    LogStoreCompactionStep::kOldLogRemoved};

TEST(LogStoreTest, CrashAtEveryCompactionStepRecoversLastCommit) {
  // Compaction is crash-safe at every step: stopping it at each step (as a power loss would) and
  // crashing with unsynced writes lost, kept whole, or torn recovers the last acknowledged commit,
  // and the store keeps working (and compacting) afterwards.
  for (const LogStoreCompactionStep step : kSteps) {
    for (const CrashMode& mode : kCrashModes) {
      for (uint64_t seed = 0; seed < 4; ++seed) {
        Rng rng(seed);
        SimDisk disk(&rng);
        bool armed = false;
        LogStoreOptions options;
        options.wal_bytes_max = 512;
        options.compaction_hook_for_test = [&](LogStoreCompactionStep at) {
          return armed && at == step ? UnavailableError("simulated crash") : Status::Ok();
        };
        auto store = OpenStore(disk, options);
        armed = true;
        Model model;
        for (int i = 0; i < 100 && !store->poisoned(); ++i) {
          const std::string key = Key(i % 7);
          model[key] = std::string(20, static_cast<char>('a' + i % 26));
          MustOk(Apply(*store, {{key, model[key]}}));  // acknowledged even when compaction stops
        }
        ASSERT_TRUE(store->poisoned()) << "compaction never reached the step";
        disk.options().unsynced_survives = mode.survives;
        disk.options().torn_write = mode.torn;
        armed = false;
        CrashAndReopen(disk, store, options);
        ASSERT_EQ(Dump(*store), model) << "step " << static_cast<int>(step) << " seed " << seed;
        for (int i = 0; i < 60; ++i) {
          model[Key(i % 5)] = std::to_string(i);
          MustOk(Apply(*store, {{Key(i % 5), std::to_string(i)}}));
        }
        EXPECT_GT(store->stats().compactions, 0u);
        CrashAndReopen(disk, store, options);
        EXPECT_EQ(Dump(*store), model);
      }
    }
  }
}

TEST(LogStoreTest, CrashWhileCreatingFreshStoreStartsEmpty) {
  // Creating a store goes through the same steps; a crash at any of them before Open returned
  // must leave something the next Open accepts as a brand-new, empty store.
  for (const LogStoreCompactionStep step : kSteps) {
    if (step == LogStoreCompactionStep::kOldLogRemoved) continue;  // not reached when creating
    for (const CrashMode& mode : kCrashModes) {
      Rng rng(16);
      SimDisk disk(&rng);
      disk.options().unsynced_survives = mode.survives;
      disk.options().torn_write = mode.torn;
      LogStoreOptions options;
      options.compaction_hook_for_test = [&](LogStoreCompactionStep at) {
        return at == step ? UnavailableError("simulated crash") : Status::Ok();
      };
      EXPECT_EQ(LogStore::Open(disk, options).status().code(), StatusCode::kUnavailable);
      disk.Crash();
      auto store = OpenStore(disk);
      EXPECT_TRUE(Dump(*store).empty());
      MustOk(Apply(*store, {{"a", "1"}}));
      CrashAndReopen(disk, store);
      EXPECT_EQ(Dump(*store), (Model{{"a", "1"}}));
    }
  }
}

TEST(LogStoreTest, ValidationLimitsAreEnforced) {
  // Every input is bounded by the options: the offending call fails with the documented code and
  // the transaction stays usable.
  Rng rng(17);
  SimDisk disk(&rng);
  LogStoreOptions options;
  options.key_bytes_max = 8;
  options.value_bytes_max = 16;
  options.txn_writes_max = 3;
  options.txn_bytes_max = 50;
  options.txn_reads_max = 4;
  options.open_txns_max = 2;
  options.scan_limit_max = 5;
  auto store = OpenStore(disk, options);
  auto txn = Must(store->Begin());
  EXPECT_EQ(txn->Put("", "v").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->Get("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->Put("123456789", "v").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->Put("k", std::string(17, 'v')).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->InsertIfAbsent("k", std::string(17, 'v')).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->CompareAndSet("k", std::nullopt, std::string(17, 'v')).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->Scan("", "", 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(txn->Scan("", "", 6).status().code(), StatusCode::kInvalidArgument);
  MustOk(txn->Put("a", std::string(16, 'v')));
  MustOk(txn->Put("b", std::string(16, 'v')));
  EXPECT_EQ(txn->Put("c", std::string(16, 'v')).code(), StatusCode::kResourceExhausted);  // bytes
  MustOk(txn->Put("c", "v"));
  EXPECT_EQ(txn->Put("d", "v").code(), StatusCode::kResourceExhausted);  // writes
  MustOk(txn->Put("a", "overwrite"));  // an existing key does not count again

  EXPECT_EQ(Must(store->Begin())->Commit().code(), StatusCode::kOk);
  auto second = Must(store->Begin());
  EXPECT_EQ(store->Begin().status().code(), StatusCode::kResourceExhausted);
  for (const char* key : {"p", "q", "r", "s"}) EXPECT_TRUE(Must(second->Get(key)) == std::nullopt);
  EXPECT_EQ(second->Get("t").status().code(), StatusCode::kResourceExhausted);  // reads
  EXPECT_TRUE(Must(second->Get("p")) == std::nullopt);  // already recorded: free
  second->Rollback();
  MustOk(txn->Commit());
  EXPECT_EQ(Dump(*store), (Model{{"a", "overwrite"}, {"b", std::string(16, 'v')}, {"c", "v"}}));
}

TEST(LogStoreTest, FinishedTransactionIsFailedPrecondition) {
  // Use after Commit or Rollback is a caller bug reported as kFailedPrecondition, whatever the
  // commit outcome; Rollback of a finished transaction is a no-op.
  Rng rng(18);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  for (bool commit : {true, false}) {
    auto txn = Must(store->Begin());
    MustOk(txn->Put("k", "v"));
    if (commit) {
      MustOk(txn->Commit());
    } else {
      txn->Rollback();
    }
    EXPECT_EQ(txn->Get("k").status().code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(txn->Put("k", "v").code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(txn->InsertIfAbsent("k", "v").status().code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(txn->CompareAndSet("k", "v", "w").status().code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(txn->Delete("k").status().code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(txn->Scan("", "", 1).status().code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(txn->Commit().code(), StatusCode::kFailedPrecondition);
    txn->Rollback();
    EXPECT_EQ(store->stats().open_transactions, 0u);
  }
}

TEST(LogStoreTest, ReadOnlyCommitDoesNoIo) {
  // A transaction with no writes has nothing to make durable: committing it must not sync.
  Rng rng(19);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"a", "1"}}));
  const uint64_t syncs = disk.syncs();
  const uint64_t log_bytes = store->stats().log_bytes;
  auto txn = Must(store->Begin());
  EXPECT_TRUE(Must(txn->Get("a")).has_value());
  EXPECT_EQ(Must(txn->Scan("", "", 10)).size(), 1u);
  MustOk(txn->Commit());
  EXPECT_EQ(disk.syncs(), syncs);
  EXPECT_EQ(store->stats().log_bytes, log_bytes);
  EXPECT_EQ(store->stats().read_only_commits, 1u);
}

TEST(LogStoreTest, InvalidOptionsAreRejectedByName) {
  // Open never builds a store from invalid options; the error names the field.
  Rng rng(20);
  SimDisk disk(&rng);
  const auto expect_invalid = [&](LogStoreOptions options, std::string_view field) {
    const Status status = LogStore::Open(disk, std::move(options)).status();
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(status.message().find(field), std::string_view::npos) << status.ToString();
  };
  LogStoreOptions o;
  o.name = "";
  expect_invalid(o, "name");
  o = {};
  o.wal_bytes_max = 0;
  expect_invalid(o, "wal_bytes_max");
  o = {};
  o.key_bytes_max = 0;
  expect_invalid(o, "key_bytes_max");
  o = {};
  o.txn_writes_max = 0;
  expect_invalid(o, "txn_writes_max");
  o = {};
  o.txn_bytes_max = 100;
  expect_invalid(o, "txn_bytes_max");
  o = {};
  o.open_txns_max = 0;
  expect_invalid(o, "open_txns_max");
  o = {};
  o.scan_limit_max = 0;
  expect_invalid(o, "scan_limit_max");
  EXPECT_TRUE(disk.List().empty());
}

TEST(LogStoreTest, CrcValidButUndecodableRecordIsDataLossNotTruncated) {
  // A record whose CRC matches was written whole, so failing to decode it is corruption or a
  // limits mismatch, not a torn tail: Open must refuse rather than cut acknowledged commits.
  Rng rng(21);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"a", std::string(100, 'v')}}));
  const std::string log = LogFile(*store);
  store.reset();
  const uint64_t size = Must(disk.Size(log));

  LogStoreOptions small;
  small.value_bytes_max = 50;
  EXPECT_EQ(LogStore::Open(disk, small).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(Must(disk.Size(log)), size);

  std::vector<uint8_t> payload;
  ByteWriter p(&payload);
  p.U64(99);
  p.Varint(1);
  p.U8(7);  // no such op kind
  p.Bytes("key");
  std::vector<uint8_t> record;
  ByteWriter r(&record);
  r.U32(static_cast<uint32_t>(payload.size()));
  r.U32(Crc32c(payload));
  r.Raw(payload);
  MustOk(disk.Append(log, record));
  EXPECT_EQ(LogStore::Open(disk).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(Must(disk.Size(log)), size + record.size());
}

TEST(LogStoreTest, StaleGenerationFilesAreRemovedOnOpen) {
  // Leftovers of an interrupted compaction are removed; files that merely share the prefix are
  // not this store's and are left alone.
  Rng rng(22);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  MustOk(Apply(*store, {{"a", "1"}}));
  store.reset();
  MustOk(disk.Write("store.log.7", 0, Bytes("partial snapshot")));
  MustOk(disk.Write("store.log.x", 0, Bytes("not ours")));
  MustOk(disk.Write("other.log.3", 0, Bytes("not ours")));
  store = OpenStore(disk);
  EXPECT_EQ(disk.List(), (std::vector<std::string>{"other.log.3", "store.log.1", "store.log.x",
                                                   "store.super.a"}));
  EXPECT_EQ(Dump(*store), (Model{{"a", "1"}}));
}

TEST(LogStoreTest, RandomGarbageInLogNeverCrashesAndKeepsAPrefix) {
  // Decoders never trust input: over many seeds, garbage written over, into or after the log
  // either opens to the state after some prefix of the commits or fails with kDataLoss.
  for (uint64_t seed = 0; seed < 300; ++seed) {
    Rng rng(seed);
    SimDisk disk(&rng);
    auto store = OpenStore(disk);
    std::vector<Model> prefixes{{}};
    for (int i = 0; i < 10; ++i) {
      const std::string key = Key(rng.Uniform(4));
      const std::string value(rng.Uniform(30), static_cast<char>('a' + i));
      MustOk(Apply(*store, {{key, value}}));
      Model next = prefixes.back();
      next[key] = value;
      prefixes.push_back(next);
    }
    const std::string log = LogFile(*store);
    store.reset();
    const uint64_t size = Must(disk.Size(log));
    std::vector<uint8_t> garbage(1 + rng.Uniform(64));
    for (uint8_t& b : garbage) b = static_cast<uint8_t>(rng.Next());
    const uint64_t offset = rng.Chance(Ratio{1, 3}) ? size : rng.Uniform(size + 1);
    MustOk(disk.Write(log, offset, garbage));
    if (rng.Chance(Ratio{1, 4})) MustOk(disk.Truncate(log, rng.Uniform(size + 1)));
    Result<std::unique_ptr<LogStore>> reopened = LogStore::Open(disk);
    if (!reopened.ok()) {
      EXPECT_EQ(reopened.status().code(), StatusCode::kDataLoss) << reopened.status().ToString();
      continue;
    }
    const Model recovered = Dump(**reopened);
    EXPECT_TRUE(std::find(prefixes.begin(), prefixes.end(), recovered) != prefixes.end())
        << "seed " << seed;
    MustOk(Apply(**reopened, {{"after", "garbage"}}));
  }
}

TEST(LogStoreTest, RandomGarbageInSuperblocksNeverCrashes) {
  // Superblock slots are trusted only through their CRC: garbage in either slot either leaves
  // the full state readable (the other slot still names a complete log) or fails with kDataLoss.
  for (uint64_t seed = 0; seed < 300; ++seed) {
    Rng rng(seed);
    SimDisk disk(&rng);
    LogStoreOptions options;
    options.wal_bytes_max = 256;
    auto store = OpenStore(disk, options);
    Model model;
    const int commits = static_cast<int>(rng.Uniform(40));
    for (int i = 0; i < commits; ++i) {
      const std::string key = Key(rng.Uniform(5));
      model[key] = std::string(1 + rng.Uniform(40), 'x');
      MustOk(Apply(*store, {{key, model[key]}}));
    }
    store.reset();
    std::vector<uint8_t> garbage(rng.Uniform(20));
    for (uint8_t& b : garbage) b = static_cast<uint8_t>(rng.Next());
    const std::string slot =
        LogStore::SuperblockFileName("store", static_cast<int>(rng.Uniform(2)));
    MustOk(disk.Write(slot, rng.Uniform(12), garbage));
    Result<std::unique_ptr<LogStore>> reopened = LogStore::Open(disk, options);
    if (!reopened.ok()) {
      EXPECT_EQ(reopened.status().code(), StatusCode::kDataLoss) << reopened.status().ToString();
      continue;
    }
    EXPECT_EQ(Dump(**reopened), model) << "seed " << seed;
  }
}

// ---- Property tests ----

struct Op {
  enum Kind : uint8_t { kGet, kPut, kDelete, kInsert, kCas, kScan };
  Kind kind = kGet;
  std::string key;
  std::optional<std::string> value;     // Put / InsertIfAbsent value, CompareAndSet desired
  std::optional<std::string> expected;  // CompareAndSet
  std::string end;                      // Scan
  size_t limit = 1;                     // Scan
};

std::optional<std::string_view> View(const std::optional<std::string>& s) {
  if (!s) return std::nullopt;
  return std::string_view(*s);
}

// A random operation over a six-key space; CAS expectations are drawn from `hint` so they match
// often enough to matter.
Op RandomOp(Rng& r, const Model& hint) {
  Op op;
  op.kind = static_cast<Op::Kind>(r.Uniform(6));
  op.key = "k" + std::to_string(r.Uniform(6));
  op.value = "v" + std::to_string(r.Uniform(50)) + std::string(r.Uniform(30), '.');
  if (op.kind == Op::kCas) {
    if (r.Chance(Ratio{1, 3})) op.value.reset();
    const auto it = hint.find(op.key);
    if (it != hint.end() && r.Chance(Ratio{2, 3})) op.expected = it->second;
    if (it == hint.end() && r.Chance(Ratio{1, 3})) op.expected = "v0";
  }
  if (op.kind == Op::kScan) {
    op.key = r.Chance(Ratio{1, 3}) ? "" : op.key;
    op.end = r.Chance(Ratio{1, 3}) ? "" : "k" + std::to_string(r.Uniform(7));
    op.limit = 1 + r.Uniform(4);
  }
  return op;
}

std::string Describe(const Status& status) { return "err:" + status.ToString(); }
std::string Describe(bool b) { return b ? "true" : "false"; }
std::string Describe(const std::optional<std::string>& v) { return v ? "=" + *v : "absent"; }
std::string Describe(const std::vector<KeyValue>& kvs) {
  std::string out = "[";
  for (const KeyValue& kv : kvs) out += kv.key + "=" + kv.value + ";";
  return out + "]";
}
template <typename T>
std::string Describe(const Result<T>& result) {
  return result.ok() ? Describe(*result) : Describe(result.status());
}

std::string RunOp(Transaction& txn, const Op& op) {
  switch (op.kind) {
    case Op::kGet:
      return Describe(txn.Get(op.key));
    case Op::kPut: {
      const Status status = txn.Put(op.key, *op.value);
      return status.ok() ? "ok" : Describe(status);
    }
    case Op::kDelete:
      return Describe(txn.Delete(op.key));
    case Op::kInsert:
      return Describe(txn.InsertIfAbsent(op.key, *op.value));
    case Op::kCas:
      return Describe(txn.CompareAndSet(op.key, View(op.expected), View(op.value)));
    case Op::kScan:
      return Describe(txn.Scan(op.key, op.end, op.limit));
  }
  FL_UNREACHABLE();
}

// The sequential specification: the same operation applied to a plain map.
std::string RunOp(Model& model, const Op& op) {
  const auto it = model.find(op.key);
  const std::optional<std::string> current =
      it == model.end() ? std::nullopt : std::optional<std::string>(it->second);
  switch (op.kind) {
    case Op::kGet:
      return Describe(current);
    case Op::kPut:
      model[op.key] = *op.value;
      return "ok";
    case Op::kDelete:
      return Describe(model.erase(op.key) > 0);
    case Op::kInsert:
      if (current) return Describe(false);
      model[op.key] = *op.value;
      return Describe(true);
    case Op::kCas:
      if (current != op.expected) return Describe(false);
      if (op.value) {
        model[op.key] = *op.value;
      } else {
        model.erase(op.key);
      }
      return Describe(true);
    case Op::kScan: {
      std::vector<KeyValue> out;
      for (auto i = model.lower_bound(op.key);
           i != model.end() && (op.end.empty() || i->first < op.end) && out.size() < op.limit;
           ++i) {
        out.push_back({i->first, i->second});
      }
      if (!op.end.empty() && op.end <= op.key) out.clear();
      return Describe(out);
    }
  }
  FL_UNREACHABLE();
}

RC_GTEST_PROP(LogStoreProperty, ReopenAfterCrashEqualsAcknowledgedCommits, ()) {
  // The durability contract end to end: random transactions (some rolled back, some abandoned,
  // some hitting injected I/O errors) interleaved with random crashes (unsynced writes lost, kept
  // or torn) and reopens. After every reopen the store equals the map of acknowledged commits,
  // except that a commit which failed with kUnavailable may be there, but only whole.
  const uint64_t seed = *rc::gen::arbitrary<uint64_t>();
  const auto script = *rc::gen::container<std::vector<uint32_t>>(rc::gen::arbitrary<uint32_t>());
  Rng rng(seed);
  SimDisk disk(&rng);
  LogStoreOptions options;
  options.wal_bytes_max = 400;  // compaction happens every few commits
  auto store = OpenStore(disk, options);
  Model model;
  std::optional<Model> unacknowledged;
  const auto reopen = [&](bool crash) {
    store.reset();
    disk.options().io_error = Ratio::Zero();
    if (crash) {
      disk.options().unsynced_survives = Ratio{rng.Uniform(3), 2};
      disk.options().torn_write = Ratio{rng.Uniform(3), 2};
      disk.Crash();
    }
    store = OpenStore(disk, options);
    const Model recovered = Dump(*store);
    if (unacknowledged && recovered == *unacknowledged) model = recovered;
    unacknowledged.reset();
    RC_ASSERT(recovered == model);
  };
  for (const uint32_t word : script) {
    Rng step(word, 1);
    const uint64_t action = step.Uniform(10);
    if (action <= 1) {
      reopen(action == 0);
      continue;
    }
    disk.options().io_error = step.Chance(Ratio{1, 10}) ? Ratio{1, 3} : Ratio::Zero();
    Result<std::unique_ptr<Transaction>> begun = store->Begin();
    if (!begun.ok()) {
      RC_ASSERT(begun.status().code() == StatusCode::kUnavailable && store->poisoned());
      reopen(step.Chance(Ratio{1, 2}));
      continue;
    }
    std::unique_ptr<Transaction> txn = std::move(begun).value();
    Model view = model;
    const uint64_t ops = 1 + step.Uniform(5);
    for (uint64_t i = 0; i < ops; ++i) {
      const Op op = RandomOp(step, view);
      RC_ASSERT(RunOp(*txn, op) == RunOp(view, op));
    }
    const uint64_t ending = step.Uniform(5);
    if (ending == 0) {
      txn->Rollback();
    } else if (ending >= 2) {
      const Status status = txn->Commit();
      if (status.ok()) {
        model = view;
      } else {
        RC_ASSERT(status.code() == StatusCode::kUnavailable && store->poisoned());
        unacknowledged = view;
      }
    }
    txn.reset();  // ending == 1: abandoned, rolled back by the destructor
    if (!store->poisoned()) RC_ASSERT(Dump(*store) == model);
  }
  reopen(true);
}

RC_GTEST_PROP(LogStoreProperty, InterleavedCommitsAreSerializableInCommitOrder, ()) {
  // Serializability of the OCC: up to three transactions run interleaved; every one that commits
  // must have observed exactly what running its operations alone, at its commit point, against
  // the committed state would observe; an abort is only allowed after some other commit.
  const uint64_t seed = *rc::gen::arbitrary<uint64_t>();
  const auto script = *rc::gen::container<std::vector<uint32_t>>(rc::gen::arbitrary<uint32_t>());
  Rng rng(seed);
  SimDisk disk(&rng);
  auto store = OpenStore(disk);
  struct Slot {
    std::unique_ptr<Transaction> txn;
    std::vector<std::pair<Op, std::string>> done;
    uint64_t commits_at_begin = 0;
  };
  std::vector<Slot> slots(3);
  Model model;
  uint64_t commits = 0;
  for (const uint32_t word : script) {
    Rng step(word, 2);
    Slot& slot = slots[step.Uniform(slots.size())];
    if (!slot.txn) {
      slot.txn = Must(store->Begin());
      slot.done.clear();
      slot.commits_at_begin = commits;
      continue;
    }
    const uint64_t action = step.Uniform(8);
    if (action < 6) {
      const Op op = RandomOp(step, model);
      slot.done.emplace_back(op, RunOp(*slot.txn, op));
      continue;
    }
    const Status status = action == 6 ? Status::Ok() : slot.txn->Commit();
    const bool committed = action == 7;
    slot.txn.reset();
    if (committed && status.ok()) {
      Model serial = model;
      for (const auto& [op, observed] : slot.done) RC_ASSERT(RunOp(serial, op) == observed);
      model = std::move(serial);
      ++commits;
    } else if (committed) {
      RC_ASSERT(status.code() == StatusCode::kAborted);
      RC_ASSERT(commits > slot.commits_at_begin);
    }
  }
  for (Slot& slot : slots) slot.txn.reset();
  RC_ASSERT(Dump(*store) == model);
  CrashAndReopen(disk, store);
  RC_ASSERT(Dump(*store) == model);
}

TEST(LogStoreDeathTest, DestroyingStoreWithOpenTransactionAsserts) {
  // A transaction holds a pointer to its store; destroying the store first is a programmer
  // error that must crash loudly rather than leave the transaction dangling.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Rng rng(23);
        SimDisk disk(&rng);
        auto store = OpenStore(disk);
        auto txn = Must(store->Begin());
        store.reset();
      },
      "transactions are open");
}

}  // namespace
}  // namespace faultline
