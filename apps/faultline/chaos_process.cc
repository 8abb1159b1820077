// Process supervision for `faultline chaos` (chaos_process.h).
#include "apps/faultline/chaos_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

namespace faultline::app::chaos {

Result<TempDir> TempDir::Create() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                        "/faultline-chaos-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    return UnavailableError("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  TempDir dir;
  dir.path_ = buf.data();
  return dir;
}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

void TempDir::Remove() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  path_.clear();
}

Status Children::Spawn(size_t slot, const std::vector<std::string>& argv, const std::string& log) {
  FL_ASSERT(slot < pids_.size() && !argv.empty());
  FL_ASSERT(state_[slot] != ChildState::kRunning && state_[slot] != ChildState::kStopped);
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return UnavailableError("open " + log + ": " + std::strerror(errno));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return UnavailableError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // The child: die with the harness, even if the harness is SIGKILLed.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  pids_[slot] = pid;
  state_[slot] = ChildState::kRunning;
  return Status();
}

void Children::Kill(size_t slot) {
  if (state_[slot] != ChildState::kRunning && state_[slot] != ChildState::kStopped) return;
  ::kill(pids_[slot], SIGKILL);
  int status = 0;
  while (::waitpid(pids_[slot], &status, 0) < 0 && errno == EINTR) {
  }
  state_[slot] = ChildState::kExited;
}

void Children::Stop(size_t slot) {
  if (state_[slot] != ChildState::kRunning) return;
  ::kill(pids_[slot], SIGSTOP);
  state_[slot] = ChildState::kStopped;
}

void Children::Continue(size_t slot) {
  if (state_[slot] != ChildState::kStopped) return;
  ::kill(pids_[slot], SIGCONT);
  state_[slot] = ChildState::kRunning;
}

void Children::Terminate(size_t slot, int grace_ms) {
  if (state_[slot] != ChildState::kRunning && state_[slot] != ChildState::kStopped) return;
  Continue(slot);
  ::kill(pids_[slot], SIGTERM);
  for (int waited = 0; waited < grace_ms; waited += 5) {
    int status = 0;
    const pid_t r = ::waitpid(pids_[slot], &status, WNOHANG);
    if (r == pids_[slot]) {
      state_[slot] = ChildState::kExited;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Kill(slot);
}

std::vector<size_t> Children::Reap() {
  std::vector<size_t> exited;
  for (size_t slot = 0; slot < pids_.size(); ++slot) {
    if (state_[slot] != ChildState::kRunning && state_[slot] != ChildState::kStopped) continue;
    int status = 0;
    if (::waitpid(pids_[slot], &status, WNOHANG) == pids_[slot]) {
      state_[slot] = ChildState::kExited;
      exited.push_back(slot);
    }
  }
  return exited;
}

void Children::KillAll() {
  for (size_t slot = 0; slot < pids_.size(); ++slot) Kill(slot);
}

Result<std::vector<uint16_t>> FreeUdpPorts(size_t count) {
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  Status status;
  for (size_t i = 0; i < count && status.ok(); ++i) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      status = UnavailableError(std::string("socket: ") + std::strerror(errno));
      break;
    }
    fds.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      status = UnavailableError(std::string("bind: ") + std::strerror(errno));
      break;
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) ::close(fd);
  if (!status.ok()) return status;
  return ports;
}

}  // namespace faultline::app::chaos
