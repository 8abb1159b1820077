// The README's leader-election example, compiled and run as a test so it can never go stale.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

// [readme-lease-example]
#include "faultline/env/rpc.h"
#include "faultline/lease/fence.h"
#include "faultline/lease/leader_elector.h"
#include "faultline/lease/paxos_lease.h"
#include "faultline/sim/world.h"

using namespace faultline;

// The guarded resource: anything that can compare-and-raise a token with each write. Here an
// in-memory map; FencedStore does the same over a LocalStore table.
struct Resource {
  lease::FencedKv kv;
  int refused = 0;
};

// Every node is an acceptor of the lease service and a candidate.
class Worker : public sim::Node {
 public:
  Worker(Env& env, Resource* resource, bool restarted) : env_(env), rpc_(env), resource_(resource) {
    lease::PaxosLeaseOptions options;
    for (uint32_t i = 0; i < 3; ++i) options.acceptors.push_back(NodeId(i));
    acceptor_ = lease::PaxosLeaseAcceptor::Create(env, rpc_, options, restarted).value();
    client_ = lease::PaxosLeaseClient::Create(env, rpc_, options).value();
    lease::ElectorOptions elector;
    elector.name = "cron-leader";
    elector.ttl = Duration::Seconds(2);
    elector_ = lease::LeaderElector::Create(env, *client_, elector).value();
  }

  void Start() override { env_.Spawn(Run()); }

 private:
  Task<void> Run() {
    env_.Spawn(elector_->Campaign(stop_.token()));
    while (true) {
      co_await Sleep(env_.executor(), Duration::Millis(100));
      // Re-check before every side effect, and send the token with it: the resource refuses a
      // token below one it has seen, even if this message was delayed past our lease.
      if (!elector_->CanAct()) continue;
      const Status written = resource_->kv.Put(elector_->token(), "last-run",
                                               std::to_string(env_.self().value()));
      if (written.code() == StatusCode::kFencedOut) ++resource_->refused;
    }
  }

  Env& env_;
  Rpc rpc_;
  Resource* resource_;
  std::unique_ptr<lease::PaxosLeaseAcceptor> acceptor_;
  std::unique_ptr<lease::PaxosLeaseClient> client_;
  std::unique_ptr<lease::LeaderElector> elector_;
  CancelSource stop_;
};

// Three workers; the leader is paused for 5 s (longer than its lease), as a GC pause would.
std::string RunWorkers(uint64_t seed, Resource* resource) {
  sim::World world(seed, sim::WorldOptions::Nodes(3));
  sim::World* w = &world;
  for (uint32_t i = 0; i < 3; ++i) {
    world.Boot(NodeId(i), [w, resource](Env& env) {
      return std::make_unique<Worker>(env, resource, w->incarnation(env.self()) > 1);
    });
  }
  world.RunFor(Duration::Seconds(3));
  const std::string first = *resource->kv.Get("last-run");
  world.Pause(NodeId(std::stoul(first)));
  world.RunFor(Duration::Seconds(5));
  world.Resume(NodeId(std::stoul(first)));
  world.RunFor(Duration::Seconds(3));
  return first + " -> " + *resource->kv.Get("last-run");
}
// [readme-lease-example]

TEST(ReadmeLeaseExample, ANewLeaderTakesOverAndThePausedOneCannotWrite) {
  Resource resource;
  const std::string handover = RunWorkers(3, &resource);
  ASSERT_EQ(handover.size(), 6u) << handover;
  EXPECT_NE(handover.front(), handover.back()) << handover;  // someone else leads now
  // The paused leader's lease lapsed while it slept: on resume it fences itself (CanAct() is
  // false), so it never even tries; the resource refused nothing because nothing stale reached it.
  EXPECT_EQ(resource.refused, 0);
  EXPECT_GT(resource.kv.highest().value(), 0u);
}

