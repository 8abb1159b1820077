// Shared pieces of the idempotency tests against real databases (tests/integration/idempotency_*):
// store URIs for SQLite files and the test PostgreSQL server, whole-table dumps to prove that a
// failed call wrote nothing, and child processes driven over pipes (idempotency_worker).
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/store/local_store.h"

namespace faultline::testing {

// "host=DIR port=P user=U dbname=D" (PgTestServer's form) -> "postgresql://U@/D?host=DIR&port=P".
// A conninfo that already is a URI is returned unchanged.
std::string PgUri(std::string_view conninfo);

// A fresh temporary directory (removed by the destructor) for SQLite files.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A database for one test: "sqlite" (a file in a fresh temporary directory, synchronous=normal)
// or "postgres" (a table of its own on the shared test server, see pg_test_server.h). Open() may
// be called many times: every call is a new connection pool on the same data.
struct RealDb {
  std::string kind;
  std::string uri;
  std::string table;
  std::shared_ptr<TempDir> dir;

  Result<std::unique_ptr<LocalStore>> Open(uint32_t connections_max = 4) const;
};
// The error says why (e.g. PostgreSQL could not be started): tests fail on it, never skip.
Result<RealDb> MakeRealDb(std::string_view kind);

// Every key-value pair in the store, read in one transaction (the whole table: tests use a table
// of their own).
Result<std::map<std::string, std::string>> DumpStore(LocalStore& store);

// A child process running the idempotency_worker binary with `args`, its stdin and stdout on
// pipes. The destructor SIGKILLs (and SIGCONTs) a child still running and reaps it.
class Worker {
 public:
  static Result<std::unique_ptr<Worker>> Spawn(const std::vector<std::string>& args);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // The next line of the child's stdout without the newline; kDeadlineExceeded after
  // `timeout_ms`, kUnavailable at end of file (the child exited).
  Result<std::string> ReadLine(int timeout_ms = 30000);
  // Writes `line` + '\n' to the child's stdin.
  Status WriteLine(std::string_view line);
  // Closes the child's stdin (end of file: the "go" signal of a race).
  void CloseStdin();
  // Sends `signal` (SIGKILL, SIGSTOP, SIGCONT, ...).
  void Signal(int signal);
  // Waits for the child to exit; its exit status as from waitpid.
  Result<int> Wait(int timeout_ms = 30000);
  pid_t pid() const { return pid_; }

 private:
  Worker() = default;
  pid_t pid_ = -1;
  int in_fd_ = -1;
  int out_fd_ = -1;
  std::string buffer_;
};

}  // namespace faultline::testing
