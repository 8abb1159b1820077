#include "faultline/runtime/child_process.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

namespace faultline::runtime {

Result<pid_t> SpawnChild(const std::vector<std::string>& argv, const std::string& log,
                         const ChildUser& user) {
  const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableError("cannot open " + log + ": " + std::strerror(errno));
  if (user.switch_user && fchown(fd, user.uid, user.gid) != 0) {
    const int e = errno;
    close(fd);
    return UnavailableError("cannot chown " + log + ": " + std::strerror(e));
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    close(fd);
    return UnavailableError(std::string("fork: ") + std::strerror(e));
  }
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    dup2(fd, 1);
    dup2(fd, 2);
    if (user.switch_user) {
      if (setgroups(0, nullptr) != 0 || setresgid(user.gid, user.gid, user.gid) != 0 ||
          setresuid(user.uid, user.uid, user.uid) != 0) {
        _exit(126);
      }
    }
    // After the credential change, which clears it; then check the parent did not die meanwhile.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(125);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fd);
  return pid;
}

void SignalAndReap(pid_t pid, int signal, std::chrono::milliseconds grace) {
  kill(pid, signal);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string FileTail(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> all;
  while (std::getline(in, line)) all.push_back(line);
  std::string tail;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    tail.append(tail.empty() ? "" : " | ").append(all[i]);
  }
  return tail.empty() ? "(empty log)" : tail;
}

}  // namespace faultline::runtime
