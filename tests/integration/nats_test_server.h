// A real nats-server with JetStream for tests, started as a direct child of the test process.
//
// Start() picks two free loopback ports (client and monitoring), makes a temporary store
// directory and runs
//   nats-server -a 127.0.0.1 -p PORT -m MONITOR_PORT -js -sd DIR/js
// with PR_SET_PDEATHSIG(SIGKILL), so the server dies with a crashed test. It is ready when
// GET http://127.0.0.1:MONITOR_PORT/healthz?js-enabled-only=true answers 200 (a plain HTTP/1.0
// request over a loopback socket: no HTTP library). Stop() is SIGTERM (clean shutdown), Kill()
// SIGKILL (a crash); Restart() runs the server again on the same store directory and ports, so
// streams, consumers and the de-duplication window survive as they would in production.
// Teardown stops the server, reaps it and removes the directory.
//
// The binary is `nats-server` from FAULTLINE_NATS_SERVER, else /usr/sbin, /usr/bin,
// /usr/local/bin. A missing binary, a server that exits at startup or never turns healthy is a
// Status with the reason and the tail of the server's log: tests fail on it, they never skip.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/status.h"

namespace faultline::testing {

class NatsTestServer {
 public:
  static Result<std::unique_ptr<NatsTestServer>> Start();
  ~NatsTestServer();
  NatsTestServer(const NatsTestServer&) = delete;
  NatsTestServer& operator=(const NatsTestServer&) = delete;

  // "nats://127.0.0.1:PORT".
  std::string url() const;
  uint16_t port() const { return port_; }
  uint16_t monitor_port() const { return monitor_port_; }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // SIGTERM and reap: JetStream flushes its store. kFailedPrecondition when not running.
  Status Stop();
  // SIGKILL and reap: whatever JetStream had not written to the file system is lost (the page
  // cache is not: the kernel keeps it, as after a process crash).
  Status Kill();
  // Starts nats-server again on the same store directory and ports; waits until healthy.
  Status Restart();

 private:
  NatsTestServer() = default;
  Status Launch();
  Status Signal(int signal);

  std::string binary_;
  std::string dir_;
  uint16_t port_ = 0;
  uint16_t monitor_port_ = 0;
  pid_t pid_ = -1;
};

// The nats-server binary (see the file comment), or kFailedPrecondition saying how to install it.
Result<std::string> FindNatsServer();

// fork + PR_SET_PDEATHSIG(SIGKILL) + exec of argv[0] (a path), stdout and stderr appended to `log`.
// The caller reaps the child.
Result<pid_t> SpawnWithDeathSignal(const std::vector<std::string>& argv, const std::string& log);

// One HTTP/1.0 GET on 127.0.0.1:port; the status code (200, 503, ...). kUnavailable when nothing
// answers.
Result<int> LoopbackHttpGetStatus(uint16_t port, const std::string& path);

}  // namespace faultline::testing
