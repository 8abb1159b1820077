#include "tests/integration/nats_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "faultline/runtime/child_process.h"
#include "tests/integration/pg_test_server.h"

namespace faultline::testing {
namespace {

namespace fs = std::filesystem;

std::string LogTail(const std::string& path) { return runtime::FileTail(path); }

Result<std::string> MakeTempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/flnats-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return UnavailableError("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  return pattern;
}

}  // namespace

Result<pid_t> SpawnWithDeathSignal(const std::vector<std::string>& argv, const std::string& log) {
  return runtime::SpawnChild(argv, log);
}

Result<std::string> FindNatsServer() {
  if (const char* env = std::getenv("FAULTLINE_NATS_SERVER"); env != nullptr && *env != '\0') {
    if (access(env, X_OK) == 0) return std::string(env);
    return FailedPreconditionError(std::string("FAULTLINE_NATS_SERVER=") + env +
                                   " is not an executable");
  }
  for (const char* path :
       {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"}) {
    if (access(path, X_OK) == 0) return std::string(path);
  }
  return FailedPreconditionError(
      "no nats-server binary (install the Debian package nats-server, or set "
      "FAULTLINE_NATS_SERVER)");
}

Result<int> LoopbackHttpGetStatus(uint16_t port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return UnavailableError(std::string("socket: ") + std::strerror(errno));
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return UnavailableError("connect 127.0.0.1:" + std::to_string(port) + ": " +
                            std::strerror(errno));
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return UnavailableError("send to 127.0.0.1:" + std::to_string(port) + " failed");
  }
  std::string response;
  char buffer[512];
  while (response.find("\r\n") == std::string::npos && response.size() < 4096) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  // "HTTP/1.x NNN ..."
  if (response.size() < 12 || response.compare(0, 5, "HTTP/") != 0) {
    return UnavailableError("no HTTP answer from 127.0.0.1:" + std::to_string(port));
  }
  return std::atoi(response.c_str() + 9);
}

Result<std::unique_ptr<NatsTestServer>> NatsTestServer::Start() {
  std::unique_ptr<NatsTestServer> server(new NatsTestServer());
  FL_ASSIGN_OR_RETURN(server->binary_, FindNatsServer());
  FL_ASSIGN_OR_RETURN(server->dir_, MakeTempDir());
  FL_ASSIGN_OR_RETURN(server->port_, FreeLoopbackPort());
  FL_ASSIGN_OR_RETURN(server->monitor_port_, FreeLoopbackPort());
  if (server->monitor_port_ == server->port_) {
    FL_ASSIGN_OR_RETURN(server->monitor_port_, FreeLoopbackPort());
  }
  FL_RETURN_IF_ERROR(server->Launch());
  return server;
}

std::string NatsTestServer::url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

Status NatsTestServer::Launch() {
  const std::string log = dir_ + "/nats-server.log";
  FL_ASSIGN_OR_RETURN(
      pid_, SpawnWithDeathSignal({binary_, "-a", "127.0.0.1", "-p", std::to_string(port_), "-m",
                                  std::to_string(monitor_port_), "-js", "-sd", dir_ + "/js"},
                                 log));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    Result<int> code = LoopbackHttpGetStatus(monitor_port_, "/healthz?js-enabled-only=true");
    if (code.ok() && code.value() == 200) return Status::Ok();
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return UnavailableError("nats-server exited at startup (status " + std::to_string(status) +
                              "): " + LogTail(log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Signal(SIGKILL).IgnoreError();
  return UnavailableError("nats-server was not healthy within 30 s: " + LogTail(log));
}

Status NatsTestServer::Signal(int signal) {
  if (pid_ <= 0) return FailedPreconditionError("nats-server is not running");
  runtime::SignalAndReap(pid_, signal);
  pid_ = -1;
  return Status::Ok();
}

Status NatsTestServer::Stop() { return Signal(SIGTERM); }

Status NatsTestServer::Kill() { return Signal(SIGKILL); }

Status NatsTestServer::Restart() {
  if (pid_ > 0) return FailedPreconditionError("nats-server is still running");
  return Launch();
}

NatsTestServer::~NatsTestServer() {
  if (pid_ > 0) Signal(SIGKILL).IgnoreError();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

}  // namespace faultline::testing
