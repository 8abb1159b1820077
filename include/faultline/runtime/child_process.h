// File: faultline/runtime/child_process.h
//
// Servers started by tests, benchmarks and `faultline chaos` (PostgreSQL, etcd members,
// nats-server) as direct children of the calling process: they die with it (PR_SET_PDEATHSIG,
// set after any credential change, which clears it, and checked against a parent that died in
// between), their output goes to a log file, and they are reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "faultline/core/status.h"

namespace faultline::runtime {

// The credentials a child runs under; by default this process's.
struct ChildUser {
  bool switch_user = false;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// fork + [setgroups/setresgid/setresuid] + PR_SET_PDEATHSIG(SIGKILL) + execv(argv[0], argv),
// stdout and stderr appended to `log` (created, and chowned to the child's user when switching).
// kUnavailable when the log cannot be opened or fork fails. In the child: exit 126 when the
// credentials cannot be set, 125 when the parent is already gone, 127 when exec fails.
Result<pid_t> SpawnChild(const std::vector<std::string>& argv, const std::string& log,
                         const ChildUser& user = {});

// Sends `signal` to `pid` and reaps it; SIGKILL (and reap) if it has not exited after `grace`.
void SignalAndReap(pid_t pid, int signal,
                   std::chrono::milliseconds grace = std::chrono::seconds(30));

// The last `lines` lines of a text file joined by " | ", or "(empty log)".
std::string FileTail(const std::string& path, size_t lines = 3);

}  // namespace faultline::runtime
