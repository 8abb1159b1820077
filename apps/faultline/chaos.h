// `faultline node` and `faultline chaos`: the lab's scenarios as real processes on loopback.
// chaos_node.cc hosts one node in one process (RealEnv + the control channel of chaos_proto.h);
// chaos_process.cc starts, signals and reaps the processes; chaos_command.cc is the harness
// (workload, nemesis, collection, the lab's checker and report); chaos_scenarios.cc holds what is
// scenario-specific on the node side.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/core/observer.h"
#include "faultline/env/env.h"

namespace faultline::app::chaos {

// One node process's command line (`faultline node`).
struct NodeArgs {
  std::string scenario;
  std::string variant;
  std::string id;
  std::string peers;  // "ID:PORT,ID:PORT,..." (self and the harness included)
  std::string data;   // the process's directory: obs.jsonl, disk/
  std::string t0;     // the run's start, CLOCK_MONOTONIC ns
  std::string incarnation = "0";
  std::string seed = "1";
  std::string lease = "paxos";   // split-brain: paxos | etcd
  std::string etcd_endpoints;    // --lease etcd: "http://127.0.0.1:P,..."
  std::string store_uri;         // split-brain's store: empty (memory) or a PostgreSQL conninfo
};
int RunNode(const NodeArgs& args);

// TrueTime in a chaos run: CLOCK_MONOTONIC minus the run's start instant.
int64_t TrueNanos(int64_t t0);

// Appends JSON lines to DATA/obs.jsonl, one write(2) per line.
class ObsWriter {
 public:
  explicit ObsWriter(const std::string& path);
  ~ObsWriter();
  ObsWriter(const ObsWriter&) = delete;
  ObsWriter& operator=(const ObsWriter&) = delete;
  bool ok() const { return fd_ >= 0; }
  void Line(const std::string& json);

 private:
  int fd_ = -1;
};

enum class ClientOutcome : uint8_t { kOk = 0, kFail = 1, kInfo = 2 };
using ClientDone = std::function<void(ClientOutcome, std::optional<uint64_t>)>;

// What a node process hosts: a scenario's node behind one interface.
class HostedNode {
 public:
  virtual ~HostedNode() = default;
  virtual void Start() = 0;
  // A client operation sent by the harness; `done` at most once. Default: refused.
  virtual void ClientOp(bool write, uint32_t key, uint64_t value, ClientDone done) {
    (void)write, (void)key, (void)value;
    done(ClientOutcome::kFail, std::nullopt);
  }
  // Called every millisecond of the process's loop with the current TrueTime: writes changes of
  // observable state to `out`.
  virtual void Poll(int64_t now_true, ObsWriter& out) = 0;
  // Called once at a graceful stop (SIGTERM): last observations.
  virtual void Flush(int64_t now_true, ObsWriter& out) { Poll(now_true, out); }
};

struct HostContext {
  uint32_t id = 0;
  uint32_t incarnation = 0;
  int64_t t0 = 0;
  // Maps a node-monotonic instant of this process's clock to TrueTime (rate-aware).
  std::function<int64_t(MonoTime)> to_true;
  // The process clock's current drift in ppm (a change moves every mapped bound).
  std::function<int64_t()> drift;
  std::string lease = "paxos";
  std::string etcd_endpoints;
  std::string store_uri;
  // Runs a callback on the process's loop from any thread (RealEnv::PostFromAnyThread).
  std::function<void(std::function<void()>)> post;
  // The process's metrics exporter (served on /metrics); the node attaches its primitives.
  Observer* metrics = nullptr;
};

// chaos_scenarios.cc: the node of `scenario`/`variant` with id `ctx.id`, or nullptr with *error.
std::unique_ptr<HostedNode> MakeHostedNode(const std::string& scenario, const std::string& variant,
                                           Env& env, const HostContext& ctx, std::string* error);

}  // namespace faultline::app::chaos
