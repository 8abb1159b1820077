// The harness side of `faultline chaos`: one RealEnv (id kHarnessId) whose loop drives the run,
// the node processes (chaos_process.h), the control channel's harness side (chaos_proto.h) and
// the fault primitives every scenario's nemesis is built from. Scenario files (chaos_split_brain.cc,
// chaos_selftest.cc) add the workload, the aimed faults and the checker.
//
// Partitions are drop rules inside each node's LoopbackTransport ("in-transport rules"), driven
// through the control channel: the harness keeps named layers of cut links (from, to) — the generic
// nemesis' grudge, a clog, an aimed fault — and sends each node the union, as its outbound and
// inbound rules. Every fault applied is logged with its TrueTime for the output.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "apps/faultline/chaos_process.h"
#include "faultline/core/time.h"
#include "faultline/env/frame.h"
#include "faultline/lab/scenario.h"
#include "faultline/runtime/real_env.h"
#include "faultline/sim/nemesis.h"

namespace faultline::app::chaos {

struct HarnessOptions {
  std::string scenario;
  std::string variant;
  uint32_t nodes = 0;  // node processes, ids 0..nodes-1
  uint64_t seed = 1;
  std::string exe;     // this binary (/proc/self/exe)
  bool verbose = false;
  std::vector<std::string> node_args;  // appended to every node's command line
};

// A matrix of cut links over the node processes.
using Cuts = std::vector<std::vector<bool>>;  // [from][to]

class Harness {
 public:
  Harness(HarnessOptions options, std::string dir);
  ~Harness();

  // Picks ports, opens the harness's env, starts every node process and waits (up to 10 s) until
  // each answers a ping. t0 is fixed here.
  Status Launch();
  // TrueTime now.
  int64_t Now() const;
  Executor& executor() { return env_->executor(); }
  const HarnessOptions& options() const { return options_; }
  const std::string& dir() const { return dir_; }

  // Frames from the nodes that are not the harness's own business (client replies, acting
  // reports) go here.
  void SetFrameHandler(std::function<void(uint32_t from, const FrameView& frame)> handler) {
    frame_handler_ = std::move(handler);
  }
  void Send(uint32_t node, uint16_t type, const std::vector<uint8_t>& body);

  // Runs `fn` at TrueTime `at` (at once when that has passed).
  void At(Duration at, std::function<void()> fn);

  // ---- faults; each one is logged ----
  // One action of a drawn sim::Nemesis schedule, made real on the node processes: partitions and
  // clogs as drop-rule layers, crash/restart/pause/resume as signals, clock faults through each
  // process's ChaosClock; a strobe is one wall jump by its amplitude, reset after its length.
  // Link faults and kHealAll are not applied here (the scenario heals with HealAll()).
  void ApplyNemesisAction(const sim::FaultAction& a);
  void SetCuts(const std::string& layer, Cuts cuts, const std::string& description);
  void ClearCuts(const std::string& layer);
  void ClearAllCuts();
  void SetClock(uint32_t node, int64_t drift_ppm, int64_t wall_offset_ns, const std::string& what);
  void ResetClocks();
  void Hold(uint32_t node, std::set<uint32_t> peers);  // empty: release
  void Crash(uint32_t node);
  void Restart(uint32_t node);
  void Pause(uint32_t node);
  void Resume(uint32_t node);
  bool up(uint32_t node) const;      // a live process (running or stopped)
  bool paused(uint32_t node) const;
  int64_t wall_offset(uint32_t node) const { return clocks_[node].offset; }
  int64_t drift(uint32_t node) const { return clocks_[node].drift; }
  // Ends every fault: resumes, restarts, heals, resets clocks, releases holds.
  void HealAll();
  void Log(const std::string& line);
  // Counts a fault of `kind` and logs `line` (faults applied outside the node processes).
  void Note(const std::string& kind, const std::string& line) {
    Count(kind);
    Log(line);
  }
  // Prints and logs each node's /metrics address (from its data directory).
  void ReportMetricsPorts();
  const std::vector<std::string>& fault_log() const { return fault_log_; }
  // Counts by fault kind ("SIGKILL", "SIGSTOP", "partition", "clock", ...).
  const std::map<std::string, int>& fault_counts() const { return fault_counts_; }
  // TrueTime instants at which each node's process died (SIGKILL or an unexpected exit).
  const std::vector<std::vector<int64_t>>& deaths() const { return deaths_; }
  // A node process that died without the harness killing it (an assertion, a crash) is a failure
  // of the node code: one "node-process-exited" violation per exit, with where to look.
  void ReportUnexpectedExits(lab::RunResult* result) const;

  // Runs the loop until TrueTime `end_ns` or an interrupt (SIGINT/SIGTERM); false if interrupted.
  bool RunUntil(int64_t end_ns);
  bool interrupted() const { return interrupted_; }
  // SIGTERM every node (they write their last observations), reap; then SIGKILL leftovers.
  void StopAll();
  // Every line of node `node`'s observation file.
  std::vector<std::string> Observations(uint32_t node) const;

 private:
  struct ClockState {
    int64_t drift = 0;
    int64_t offset = 0;
  };
  std::vector<std::string> NodeArgv(uint32_t node) const;
  void OnFrame(NodeId from, const FrameView& frame);
  void PushRules();
  void Resend();
  void Bump(uint32_t node, uint16_t kind);
  void SendState(uint32_t node, uint16_t kind);
  void ReapLoop();
  void Count(const std::string& kind) { ++fault_counts_[kind]; }

  HarnessOptions options_;
  std::string dir_;
  int64_t t0_ = 0;
  std::vector<uint16_t> ports_;  // [node], then the harness's
  std::unique_ptr<runtime::RealEnv> env_;
  Children children_;
  std::vector<uint32_t> incarnation_;
  std::function<void(uint32_t, const FrameView&)> frame_handler_;
  std::map<std::string, Cuts> layers_;
  std::vector<std::map<uint32_t, uint8_t>> rules_;  // [node]: peer -> Direction
  std::vector<ClockState> clocks_;
  std::vector<std::set<uint32_t>> holds_;
  // Per node and state kind: the seq of the state wanted, and the seq the node acknowledged.
  std::vector<std::map<uint16_t, uint64_t>> wanted_, acked_;
  uint64_t next_seq_ = 1;
  std::vector<bool> ponged_;
  std::vector<std::vector<int64_t>> deaths_;
  std::vector<std::string> unexpected_exits_;
  std::vector<std::string> fault_log_;
  std::map<std::string, int> fault_counts_;
  bool interrupted_ = false;
  bool stopping_ = false;
  struct Signals;
  std::unique_ptr<Signals> signals_;
};

}  // namespace faultline::app::chaos
