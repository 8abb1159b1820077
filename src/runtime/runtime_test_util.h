// Helpers shared by the runtime's tests: free loopback ports, two RealEnvs that know each other,
// and driving several loops from one thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <vector>

#include "faultline/core/assert.h"
#include "faultline/runtime/chaos_clock.h"
#include "faultline/runtime/real_env.h"

namespace faultline::runtime::testing {

// A UDP socket bound to 127.0.0.1:port (0 = ephemeral). Closed on destruction.
class RawUdp {
 public:
  explicit RawUdp(uint16_t port = 0) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    FL_ASSERT(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    FL_ASSERT_MSG(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0, "bind failed");
    socklen_t len = sizeof(a);
    FL_ASSERT(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
  }
  ~RawUdp() { ::close(fd_); }
  RawUdp(const RawUdp&) = delete;
  RawUdp& operator=(const RawUdp&) = delete;
  uint16_t port() const { return port_; }
  // Sends one datagram to 127.0.0.1:port.
  void SendTo(uint16_t port, const std::vector<uint8_t>& bytes) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    const ssize_t n =
        ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    FL_ASSERT(n == static_cast<ssize_t>(bytes.size()));
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// `n` distinct ports that were free a moment ago (held open together so they differ).
inline std::vector<uint16_t> FreePorts(size_t n) {
  std::vector<std::unique_ptr<RawUdp>> held;
  std::vector<uint16_t> ports;
  for (size_t i = 0; i < n; ++i) {
    held.push_back(std::make_unique<RawUdp>());
    ports.push_back(held.back()->port());
  }
  return ports;
}

// A RealEnv for node `self` of a cluster whose ports are `ports` (node i on ports[i]).
inline std::unique_ptr<RealEnv> OpenEnv(uint32_t self, const std::vector<uint16_t>& ports,
                                        std::vector<Peer> extra = {}, std::string data_dir = "") {
  RealEnvOptions o;
  o.self = NodeId(self);
  for (size_t i = 0; i < ports.size(); ++i) {
    o.peers.push_back(Peer{NodeId(static_cast<uint32_t>(i)), ports[i], false});
  }
  for (const Peer& p : extra) o.peers.push_back(p);
  o.data_dir = std::move(data_dir);
  o.seed = 1234 + self;
  auto env = RealEnv::Open(std::move(o));
  FL_ASSERT_MSG(env.ok(), env.status().ToString().c_str());
  return std::move(env).value();
}

// Runs every env's loop in turn, in 1 ms slices, until `done()` or `timeout` of host time.
inline bool PumpUntil(std::vector<RealEnv*> envs, const std::function<bool()>& done,
                      Duration timeout = Duration::Seconds(5)) {
  const int64_t end = HostMonotonicNanos() + timeout.nanos();
  while (!done()) {
    if (HostMonotonicNanos() > end) return false;
    for (RealEnv* e : envs) e->RunFor(Duration::Millis(1));
  }
  return true;
}

}  // namespace faultline::runtime::testing
