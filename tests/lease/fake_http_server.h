// A scripted HTTP/1.1 server on 127.0.0.1 for bad-input tests of HTTP clients: each request
// (method line, headers, Content-Length body) goes to a handler that decides the answer — a
// status and body, sent at once or after a delay, or no answer at all until the server stops.
// One thread per connection, every answer with "Connection: close". Stop (the destructor)
// closes the listener and every connection and joins the threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/core/time.h"

namespace faultline::testing {

struct FakeHttpAnswer {
  int status = 200;
  std::string body;
  Duration delay = Duration::Zero();  // before the answer is sent
  bool hang = false;                  // never answer (until the server stops)
  // After the body, keep the connection open this long before closing (a stream that stays).
  Duration hold = Duration::Zero();
};

class FakeHttpServer {
 public:
  using Handler = std::function<FakeHttpAnswer(const std::string& path, const std::string& body)>;
  static Result<std::unique_ptr<FakeHttpServer>> Start(Handler handler);
  ~FakeHttpServer();
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Every request path received so far, in arrival order, with its body.
  std::vector<std::pair<std::string, std::string>> requests() const;

 private:
  FakeHttpServer() = default;
  void AcceptLoop();
  void Serve(int fd);
  // Sleeps up to `d`, returning early (false) when the server stops.
  bool Wait(Duration d);

  Handler handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> requests_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace faultline::testing
