// SqliteStore durability against a real process crash: a child commits as fast as it can and
// reports each acknowledged commit through a pipe; the parent SIGKILLs it mid-stream, reopens the
// file and must find every acknowledged commit (and at most the one in flight besides), with each
// transaction whole.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "faultline/adapters/sqlite_store.h"

namespace faultline {
namespace {

std::string Key(uint32_t i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "k%06u", i);
  return buf;
}

[[noreturn]] void ChildCommitForever(const SqliteStoreOptions& options, int ack_fd) {
  Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(options);
  if (!store.ok()) _exit(3);
  for (uint32_t i = 0; i < 1000000; ++i) {
    // Two writes per transaction: a crash must keep both or neither.
    const Status status = RunInTransaction(**store, [i](Transaction& txn) -> Status {
      FL_ASSIGN_OR_RETURN(const bool inserted, txn.InsertIfAbsent(Key(i), "v"));
      if (!inserted) return InternalError("key already present");
      return txn.Put("last", std::to_string(i));
    });
    if (!status.ok()) _exit(4);
    if (write(ack_fd, &i, sizeof(i)) != static_cast<ssize_t>(sizeof(i))) _exit(5);
  }
  _exit(0);
}

void CrashAndCheck(SqliteSynchronous synchronous, uint32_t acks_before_kill) {
  char pattern[] = "/tmp/flsqlite-crash-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  SqliteStoreOptions options;
  options.path = dir + "/store.db";
  options.synchronous = synchronous;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    ChildCommitForever(options, fds[1]);
  }
  close(fds[1]);
  int64_t acked = -1;
  uint32_t i = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (acked + 1 < acks_before_kill && std::chrono::steady_clock::now() < deadline &&
         read(fds[0], &i, sizeof(i)) == static_cast<ssize_t>(sizeof(i))) {
    ASSERT_EQ(static_cast<int64_t>(i), acked + 1);
    acked = i;
  }
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  // Acks already in the pipe were written after their Commit returned: they count.
  while (read(fds[0], &i, sizeof(i)) == static_cast<ssize_t>(sizeof(i))) acked = i;
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child stopped on its own (status " << status << ")";
  ASSERT_GE(acked, static_cast<int64_t>(acks_before_kill) - 1);

  Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::unique_ptr<Transaction> txn = std::move((*store)->Begin()).value();
  Result<std::vector<KeyValue>> keys = txn->Scan("k", "l", 100000);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  Result<std::optional<std::string>> last = txn->Get("last");
  ASSERT_TRUE(last.ok());
  txn->Rollback();
  // Every acknowledged commit, in order, and at most one more (committed, not yet acknowledged).
  ASSERT_GE(static_cast<int64_t>(keys->size()), acked + 1);
  ASSERT_LE(static_cast<int64_t>(keys->size()), acked + 2);
  for (size_t k = 0; k < keys->size(); ++k) ASSERT_EQ((*keys)[k].key, Key(static_cast<uint32_t>(k)));
  // Each transaction whole: "last" names the newest key present.
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ(std::stoul(**last), keys->size() - 1);
  store->reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(SqliteCrashTest, SynchronousFullKeepsEveryAcknowledgedCommitAfterSigkill) {
  CrashAndCheck(SqliteSynchronous::kFull, 150);
}

TEST(SqliteCrashTest, SynchronousNormalKeepsEveryAcknowledgedCommitAfterSigkill) {
  // NORMAL skips the per-commit fsync: safe against a process crash (what this tests), not
  // against a power cut (which a test cannot stage without a VM).
  CrashAndCheck(SqliteSynchronous::kNormal, 1500);
}

}  // namespace
}  // namespace faultline
