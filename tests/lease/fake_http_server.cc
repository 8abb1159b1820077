#include "tests/lease/fake_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace faultline::testing {

Result<std::unique_ptr<FakeHttpServer>> FakeHttpServer::Start(Handler handler) {
  std::unique_ptr<FakeHttpServer> server(new FakeHttpServer());
  server->handler_ = std::move(handler);
  server->listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (server->listen_fd_ < 0) return UnavailableError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(server->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(server->listen_fd_, 64) != 0 ||
      getsockname(server->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return UnavailableError(std::string("bind/listen 127.0.0.1:0: ") + std::strerror(errno));
  }
  server->port_ = ntohs(addr.sin_port);
  FakeHttpServer* raw = server.get();
  server->acceptor_ = std::thread([raw] { raw->AcceptLoop(); });
  return server;
}

FakeHttpServer::~FakeHttpServer() {
  stop_.store(true);
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  }
  for (std::thread& t : threads_) t.join();
  for (int fd : fds_) close(fd);
  if (listen_fd_ >= 0) close(listen_fd_);
}

std::vector<std::pair<std::string, std::string>> FakeHttpServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

bool FakeHttpServer::Wait(Duration d) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::nanoseconds(d.nanos());
  while (std::chrono::steady_clock::now() < end) {
    if (stop_.load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return !stop_.load();
}

void FakeHttpServer::AcceptLoop() {
  while (!stop_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(fd);
    threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void FakeHttpServer::Serve(int fd) {
  std::string in;
  char buf[4096];
  size_t header_end = std::string::npos;
  size_t content_length = 0;
  while (!stop_.load()) {
    if (header_end == std::string::npos) header_end = in.find("\r\n\r\n");
    if (header_end != std::string::npos) {
      const std::string headers = in.substr(0, header_end);
      std::string lower = headers;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const size_t cl = lower.find("content-length:");
      content_length = cl == std::string::npos ? 0 : std::strtoul(lower.c_str() + cl + 15, nullptr, 10);
      if (in.size() >= header_end + 4 + content_length) break;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;  // the fd is closed by the destructor's shutdown + this return path
    in.append(buf, static_cast<size_t>(n));
  }
  if (stop_.load() || header_end == std::string::npos) return;
  const size_t sp1 = in.find(' ');
  const size_t sp2 = in.find(' ', sp1 + 1);
  const std::string path = in.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string body = in.substr(header_end + 4, content_length);
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.emplace_back(path, body);
  }
  const FakeHttpAnswer answer = handler_(path, body);
  if (answer.hang) {
    while (Wait(Duration::Millis(50))) {
    }
    return;
  }
  if (!Wait(answer.delay)) return;
  const std::string out = "HTTP/1.1 " + std::to_string(answer.status) +
                          " X\r\nContent-Type: application/json\r\nConnection: close\r\n" +
                          (answer.hold > Duration::Zero()
                               ? std::string()
                               : "Content-Length: " + std::to_string(answer.body.size()) + "\r\n") +
                          "\r\n" + answer.body;
  send(fd, out.data(), out.size(), MSG_NOSIGNAL);
  Wait(answer.hold);
  shutdown(fd, SHUT_WR);
}

}  // namespace faultline::testing
