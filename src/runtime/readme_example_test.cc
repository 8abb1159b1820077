// The README's runtime example ("Running your nodes as real processes"), compiled and run: the
// README's Greeter node, unchanged, on two RealEnvs (two threads here; two processes in
// production), talking over UDP on 127.0.0.1. The region between the `readme-runtime` markers is
// the README's code; tests/readme_snippets_test.sh keeps the two identical.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <thread>

#include "src/runtime/runtime_test_util.h"

// [readme-runtime]
#include "faultline/env/node.h"
#include "faultline/env/rpc.h"
#include "faultline/runtime/real_env.h"

using namespace faultline;

// The node class: it sees only Env, so the same class runs under sim::World.
class Greeter final : public Node {
 public:
  explicit Greeter(Env& env) : env_(env), rpc_(env) {}

  void Start() override {
    rpc_.Handle(1, [](NodeId, std::span<const uint8_t> req) -> Result<Bytes> {
      return Bytes(req.begin(), req.end());  // echo
    });
    if (env_.self() == NodeId(0)) env_.Spawn(Client());
  }

  int replies = 0;
  int timeouts = 0;

 private:
  Task<void> Client() {
    const Bytes hello = {'h', 'i'};
    while (true) {
      Result<Bytes> reply =
          co_await rpc_.Call(NodeId(1), /*method=*/1, hello, Duration::Millis(100));
      reply.ok() ? ++replies : ++timeouts;
      co_await Sleep(env_.executor(), Duration::Millis(10));
    }
  }

  Env& env_;
  Rpc rpc_;
};

// One process's main: node `self` of a cluster whose node i listens on 127.0.0.1:ports[i]. Runs
// until `done(node)` (a real harness: until SIGTERM); returns the node's reply count, -1 on bad
// setup.
int RunNode(uint32_t self, const std::vector<uint16_t>& ports, const std::string& data_dir,
            const std::function<bool(const Greeter&)>& done) {
  runtime::RealEnvOptions options;
  options.self = NodeId(self);
  for (uint32_t i = 0; i < ports.size(); ++i) options.peers.push_back({NodeId(i), ports[i]});
  options.data_dir = data_dir;  // PosixDisk root for env.disk()
  Result<std::unique_ptr<runtime::RealEnv>> env = runtime::RealEnv::Open(options);
  if (!env.ok()) {
    std::fprintf(stderr, "node %u: %s\n", self, env.status().ToString().c_str());
    return -1;
  }
  runtime::RealEnv& e = **env;
  auto node = std::make_unique<Greeter>(e);
  node->Start();
  std::function<void()> check = [&] {
    if (done(*node)) return e.Stop();
    e.executor().ScheduleAfter(Duration::Millis(5), [&] { check(); });
  };
  check();
  e.Run();  // the node's loop, on this thread
  const int replies = node->replies;
  e.DestroySpawned();  // the node's coroutines reference the node: they go first
  node.reset();
  return replies;  // the RealEnv (sockets, timers, disk) goes last
}
// [readme-runtime]

namespace {

TEST(RuntimeReadmeExample, GreeterRunsOnRealEnvsUnchanged) {
  const auto ports = faultline::runtime::testing::FreePorts(2);
  std::atomic<bool> quit{false};
  int server_rc = 0;
  std::thread node1(
      [&] { server_rc = RunNode(1, ports, "", [&](const Greeter&) { return quit.load(); }); });
  const int replies = RunNode(0, ports, "/tmp/faultline-readme-runtime",
                              [](const Greeter& g) { return g.replies >= 20; });
  quit.store(true);
  node1.join();
  EXPECT_GE(replies, 20);
  EXPECT_EQ(server_rc, 0);  // node 1 calls nobody
}

}  // namespace
