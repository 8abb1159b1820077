// File: faultline/runtime/pg_server.h
//
// A real PostgreSQL server started as a direct child of this process: for tests, and for
// `faultline chaos --store postgresql`, which faults it (SIGKILL or fast shutdown, then a restart
// on the same data directory).
//
// Start() copies a template data directory (made once per machine with initdb, cached under
// $TMPDIR as faultline-pgtemplate-<version>-<uid>, created atomically by rename) into a fresh
// temporary directory ($TMPDIR/flpg-XXXXXX) and runs `postgres` on a unix socket in that directory
// only (listen_addresses=''), so servers never clash on a port and nothing listens on the network.
// When this process runs as root, initdb and postgres run as the `postgres` user (they refuse
// root): the child sets its groups, gid and uid, then PR_SET_PDEATHSIG(SIGKILL) (after the uid
// change, which clears it) so the server dies with a crashed parent. The destructor sends SIGQUIT
// (the data is thrown away, so the shutdown checkpoint SIGINT would write is wasted time), reaps
// the server and removes the temporary directory. Crash recovery syncs with syncfs
// (recovery_init_sync_method), which makes a restart after SIGQUIT/SIGKILL take ~0.4 s instead of
// ~4.5 s.
//
// Every failure to get a server is a Status with the reason (and the tail of the server's log).
// Not thread-safe; Start, Kill and Restart block until the server is up or gone.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/status.h"

namespace faultline::runtime {

struct PgServerOptions {
  // 0: unix socket only. Else also listen on 127.0.0.1:tcp_port, and conninfo() uses it.
  uint16_t tcp_port = 0;
  bool fsync = true;
  std::string synchronous_commit = "on";
  std::vector<std::string> settings;  // extra "name=value" passed as -c
};

class PgServer {
 public:
  static Result<std::unique_ptr<PgServer>> Start(PgServerOptions options = {});
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // "host=<dir> port=5432 user=postgres dbname=postgres".
  const std::string& conninfo() const { return conninfo_; }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Sends `signal` to the postmaster and reaps it (SIGQUIT: immediate shutdown, as after a crash;
  // SIGINT: fast clean shutdown; SIGKILL: the postmaster dies at once and its backends exit when
  // they notice). kFailedPrecondition when not running.
  Status Kill(int signal);
  // Starts postgres again on the same data directory (crash recovery runs if it was killed) and
  // waits (up to 30 s) until it accepts connections.
  Status Restart();

 private:
  PgServer() = default;
  Status Launch();

  PgServerOptions options_;
  std::string bindir_;
  std::string dir_;
  std::string conninfo_;
  pid_t pid_ = -1;
};

}  // namespace faultline::runtime
