// The conformance suite's PaxosLease world: sim::World with three nodes, each an acceptor and a
// client of one majority lease service.
#include <optional>
#include <utility>

#include "faultline/env/rpc.h"
#include "faultline/lease/paxos_lease.h"
#include "faultline/sim/world.h"
#include "tests/lease/lease_worlds.h"

namespace faultline::lease_conformance {
namespace {

constexpr uint32_t kNodes = 3;

class PaxosNode final : public sim::Node {
 public:
  PaxosNode(Env& env, const lease::PaxosLeaseOptions& options) : rpc_(env) {
    auto acceptor = lease::PaxosLeaseAcceptor::Create(env, rpc_, options, /*restarted=*/false);
    FL_ASSERT(acceptor.ok());
    acceptor_ = std::move(acceptor).value();
    auto client = lease::PaxosLeaseClient::Create(env, rpc_, options);
    FL_ASSERT(client.ok());
    client_ = std::move(client).value();
  }
  lease::PaxosLeaseClient& client() { return *client_; }

 private:
  Rpc rpc_;
  std::unique_ptr<lease::PaxosLeaseAcceptor> acceptor_;
  std::unique_ptr<lease::PaxosLeaseClient> client_;
};

class PaxosWorld final : public LeaseWorld {
 public:
  PaxosWorld() : world_(7, sim::WorldOptions::Nodes(kNodes)) {
    for (uint32_t i = 0; i < kNodes; ++i) options_.acceptors.push_back(NodeId(i));
    options_.drift_ppm_max = 1000;
    options_.margin = Duration::Millis(5);
    options_.round_timeout = Duration::Millis(30);
    options_.lock_delay = Duration::Zero();
    options_.restart_quiet = Ttl() + Duration::Millis(20);
    for (uint32_t i = 0; i < kNodes; ++i) {
      world_.Boot(NodeId(i), [this](Env& env) { return std::make_unique<PaxosNode>(env, options_); });
    }
  }

  size_t clients() const override { return kNodes; }
  lease::LeaseService& service(size_t i) override { return node(i).client(); }
  NodeId id(size_t i) const override { return NodeId(static_cast<uint32_t>(i)); }
  MonoTime Now(size_t i) override { return world_.env(id(i)).clock().Now(); }
  bool RunTask(size_t i, Task<void> task, Duration limit) override {
    auto done = std::make_shared<bool>(false);
    world_.env(id(i)).Spawn(Flag(std::move(task), done));
    const sim::SimTime end = world_.now() + limit;
    while (!*done && world_.now() < end) world_.RunFor(Duration::Micros(100));
    return *done;
  }
  void Advance(Duration d) override { world_.RunFor(d); }
  void SetReplyDelay(size_t i, Duration extra) override {
    sim::LinkOptions link;
    link.latency_min = link.latency_min + extra;
    for (uint32_t from = 0; from < kNodes; ++from) {
      if (from != i) world_.network().SetLink(from, static_cast<uint32_t>(i), link);
    }
  }
  Duration Ttl() const override { return Duration::Millis(300); }
  // Acceptors expire a lease ttl after they accepted it, on clocks within ρ of the holder's.
  Duration ExpiryBound(Duration ttl) const override { return ttl + ttl / 10 + Duration::Millis(50); }
  // Below round_timeout (30 ms), which bounds each round trip.
  Duration SlowReply() const override { return Duration::Millis(20); }
  Duration CallLimit() const override { return Duration::Seconds(2); }

 private:
  static Task<void> Flag(Task<void> task, std::shared_ptr<bool> done) {
    co_await std::move(task);
    *done = true;
  }
  PaxosNode& node(size_t i) { return *world_.node_as<PaxosNode>(id(i)); }

  lease::PaxosLeaseOptions options_;
  sim::World world_;
};

}  // namespace

Result<std::unique_ptr<LeaseWorld>> MakePaxosWorld() {
  return std::unique_ptr<LeaseWorld>(new PaxosWorld());
}

}  // namespace faultline::lease_conformance
