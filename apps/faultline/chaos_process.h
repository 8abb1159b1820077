// Process supervision for `faultline chaos`: a temporary directory per run, node processes started
// as direct children of the harness (fork + exec of this very binary) that die with it
// (prctl(PR_SET_PDEATHSIG, SIGKILL)), signalled only by the pid the fork returned, and reaped.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "faultline/core/status.h"

namespace faultline::app::chaos {

// mkdtemp under $TMPDIR (default /tmp): "faultline-chaos-XXXXXX". Removed (recursively) by
// Remove() or the destructor.
class TempDir {
 public:
  static Result<TempDir> Create();
  TempDir() = default;
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir& operator=(TempDir&& other) noexcept;
  ~TempDir() { Remove(); }
  const std::string& path() const { return path_; }
  void Remove();

 private:
  std::string path_;
};

enum class ChildState : uint8_t { kNone, kRunning, kStopped, kExited };

// One slot per node: at most one live process at a time.
class Children {
 public:
  explicit Children(size_t slots) : pids_(slots, -1), state_(slots, ChildState::kNone) {}
  ~Children() { KillAll(); }
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;

  // Starts argv (argv[0] = the executable path) in `slot`, stdout/stderr appended to `log`.
  // The slot must not hold a live process.
  Status Spawn(size_t slot, const std::vector<std::string>& argv, const std::string& log);
  // SIGKILL and reap (blocking: a killed process dies at once).
  void Kill(size_t slot);
  void Stop(size_t slot);      // SIGSTOP
  void Continue(size_t slot);  // SIGCONT
  // SIGTERM (after SIGCONT), wait up to `grace_ms` for exit, then SIGKILL; reaps.
  void Terminate(size_t slot, int grace_ms);
  // Reaps exited children without blocking; returns the slots that exited unexpectedly.
  std::vector<size_t> Reap();
  // SIGKILL every live child and reap it.
  void KillAll();
  ChildState state(size_t slot) const { return state_[slot]; }
  pid_t pid(size_t slot) const { return pids_[slot]; }
  size_t slots() const { return pids_.size(); }

 private:
  std::vector<pid_t> pids_;
  std::vector<ChildState> state_;
};

// Free UDP ports on 127.0.0.1 (bound, read and closed; the kernel does not hand them out again
// at once).
Result<std::vector<uint16_t>> FreeUdpPorts(size_t count);

}  // namespace faultline::app::chaos
