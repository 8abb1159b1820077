// Internal: what the clock-ordering scenario's workload (clock_ordering.cc) and its replicas
// (clock_replicas.cc) share.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "faultline/core/time.h"
#include "faultline/env/node.h"
#include "faultline/time/version_vector.h"

namespace faultline::lab::clock {

constexpr uint32_t kReplicas = 3;     // nodes 0-2
constexpr uint32_t kTimeService = 3;  // node 3: true time, out of the nemesis's reach
constexpr uint32_t kNodes = 4;
constexpr uint64_t kKeys = 3;

struct ReadReply {
  std::vector<uint64_t> ids;
  uint64_t observed_ts = 0;  // the largest timestamp among the values read (raw HLC layout)
  VersionVector context;
};

struct WriteRequest {
  uint32_t client = 0;
  uint64_t id = 0;
  uint64_t key = 0;
  uint64_t observed_ts = 0;
  bool has_context = false;
  VersionVector context;
};

// Where a replica reports the end of a write: ok with its commit timestamp and node, or failed.
class WriteSink {
 public:
  virtual ~WriteSink() = default;
  virtual void WriteDone(uint32_t client, uint64_t id, bool ok, uint64_t ts, uint32_t node) = 0;
};

// Commit-wait accounting of the hardened replicas, summed over the run.
struct Metrics {
  int64_t commit_waits = 0;
  int64_t commit_wait_ns = 0;
  int64_t half_width_ns = 0;  // the interval clock's error bound ε at each commit
};

class Replica : public Node {
 public:
  virtual ReadReply Read(uint64_t key) = 0;
  // Completes through WriteSink::WriteDone.
  virtual void Write(const WriteRequest& request) = 0;
  virtual std::vector<uint64_t> FinalIds(uint64_t key) = 0;
};

// Last-writer-wins cells, replicated on write and by gossip, timestamped by the coordinator's wall
// clock (`use_hlc` false) or its hybrid logical clock.
std::unique_ptr<Replica> MakeLwwReplica(Env& env, WriteSink* sink, bool use_hlc);
// HLC + dotted version vectors + commit-wait on an interval clock synced to the time service.
std::unique_ptr<Replica> MakeDvvReplica(Env& env, WriteSink* sink, Metrics* metrics);
// Answers "what time is it" with its wall clock, which the scenario keeps exact.
std::unique_ptr<Node> MakeTimeService(Env& env);

}  // namespace faultline::lab::clock
