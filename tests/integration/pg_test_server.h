// A real PostgreSQL server for tests, started as a direct child of the test process.
//
// Start() copies a template data directory (made once per machine with initdb, cached under
// $TMPDIR as faultline-pgtemplate-<version>-<uid>, created atomically by rename) into a fresh
// temporary directory and runs `postgres` on a unix socket in that directory only
// (listen_addresses=''), so servers never clash on a port and nothing listens on the network.
// When the test runs as root, initdb and postgres run as the `postgres` user (they refuse root):
// the child sets its groups, gid and uid, then PR_SET_PDEATHSIG(SIGKILL) (after the uid change,
// which clears it) so the server dies with a crashed test. Teardown is SIGQUIT (the data is
// thrown away, so the shutdown checkpoint SIGINT would write is wasted time) and waitpid; the
// temporary directory is removed. Crash recovery syncs with syncfs (recovery_init_sync_method),
// which makes a restart after SIGQUIT take ~0.4 s instead of ~4.5 s.
//
// SharedPgConninfo() is what most tests use: the conninfo in FAULTLINE_TEST_PG when set (./run
// test starts one server for the whole ctest run and exports it), else one server started for
// this process on first use. Tests sharing a server isolate themselves with UniqueTableName().
// Tests that kill or restart the server always Start() their own.
//
// Every failure to get a server is a Status with the reason (and the tail of the server's log):
// tests fail on it, they never skip.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/status.h"

namespace faultline::testing {

struct PgTestServerOptions {
  // 0: unix socket only. Else also listen on 127.0.0.1:tcp_port, and conninfo() uses it
  // (benchmarks that want the loopback TCP path; see FreeLoopbackPort).
  uint16_t tcp_port = 0;
  bool fsync = true;
  std::string synchronous_commit = "on";
  std::vector<std::string> settings;  // extra "name=value" passed as -c
};

class PgTestServer {
 public:
  static Result<std::unique_ptr<PgTestServer>> Start(PgTestServerOptions options = {});
  ~PgTestServer();
  PgTestServer(const PgTestServer&) = delete;
  PgTestServer& operator=(const PgTestServer&) = delete;

  // "host=<dir> port=5432 user=postgres dbname=postgres".
  const std::string& conninfo() const { return conninfo_; }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Sends `signal` to the postmaster and reaps it (SIGQUIT: immediate shutdown, as after a crash;
  // SIGINT: fast clean shutdown). kFailedPrecondition when not running.
  Status Kill(int signal);
  // Starts postgres again on the same data directory (crash recovery runs if it was killed) and
  // waits until it accepts connections.
  Status Restart();

 private:
  PgTestServer() = default;
  Status Launch();

  PgTestServerOptions options_;
  std::string bindir_;
  std::string dir_;
  std::string conninfo_;
  pid_t pid_ = -1;
};

// See the file comment. The error says why no server could be had.
Result<std::string> SharedPgConninfo();

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
Result<uint16_t> FreeLoopbackPort();

// A table name no other test process uses: "t_<pid>_<counter>".
std::string UniqueTableName();

}  // namespace faultline::testing
