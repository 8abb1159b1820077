#include "tests/integration/pg_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

namespace faultline::testing {

Result<std::string> SharedPgConninfo() {
  if (const char* env = std::getenv("FAULTLINE_TEST_PG"); env != nullptr && *env != '\0') {
    return std::string(env);
  }
  // Started on first use, stopped when the process exits (static destruction).
  static std::mutex mu;
  static std::unique_ptr<PgTestServer> server;
  static Status failure;
  std::lock_guard<std::mutex> lock(mu);
  if (server == nullptr && failure.ok()) {
    Result<std::unique_ptr<PgTestServer>> started = PgTestServer::Start();
    if (started.ok()) {
      server = std::move(started).value();
    } else {
      failure = started.status();
    }
  }
  if (!failure.ok()) return failure;
  return server->conninfo();
}

Result<uint16_t> FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return UnavailableError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return UnavailableError(std::string("bind 127.0.0.1:0: ") + std::strerror(errno));
  }
  close(fd);
  return static_cast<uint16_t>(ntohs(addr.sin_port));
}

std::string UniqueTableName() {
  // pid + counter are unique among live processes; the clock's low digits keep a table left by a
  // crashed earlier process with a recycled pid from being reused.
  static std::atomic<uint32_t> counter{0};
  const auto salt = std::chrono::steady_clock::now().time_since_epoch().count() % 1000000;
  return "t_" + std::to_string(getpid()) + "_" + std::to_string(counter.fetch_add(1)) + "_" +
         std::to_string(salt);
}

}  // namespace faultline::testing
