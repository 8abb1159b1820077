// The harness side of `faultline chaos` (chaos_harness.h).
#include "apps/faultline/chaos_harness.h"

#include <algorithm>
#include <asio.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apps/faultline/chaos_proto.h"
#include "faultline/core/bytes.h"

namespace faultline::app::chaos {

struct Harness::Signals {
  explicit Signals(asio::io_context& io) : set(io, SIGINT, SIGTERM) {}
  asio::signal_set set;
};

namespace {
constexpr Duration kResendEvery = Duration::Millis(30);

std::string FormatAt(int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%8.3f s", static_cast<double>(ns) / 1e9);
  return buf;
}
}  // namespace

Harness::Harness(HarnessOptions options, std::string dir)
    : options_(std::move(options)),
      dir_(std::move(dir)),
      children_(options_.nodes),
      incarnation_(options_.nodes, 0),
      rules_(options_.nodes),
      clocks_(options_.nodes),
      holds_(options_.nodes),
      wanted_(options_.nodes),
      acked_(options_.nodes),
      ponged_(options_.nodes, false),
      deaths_(options_.nodes) {}

Harness::~Harness() {
  children_.KillAll();
  signals_.reset();
  if (env_ != nullptr) env_->DestroySpawned();
  env_.reset();
}

int64_t Harness::Now() const { return runtime::HostMonotonicNanos() - t0_; }

std::vector<std::string> Harness::NodeArgv(uint32_t node) const {
  std::string peers;
  for (uint32_t i = 0; i <= options_.nodes; ++i) {
    const uint32_t id = i == options_.nodes ? kHarnessId : i;
    if (!peers.empty()) peers += ",";
    peers += std::to_string(id) + ":" + std::to_string(ports_[i]);
  }
  std::vector<std::string> argv = {options_.exe,
          "node",
          options_.scenario,
          "--variant",
          options_.variant,
          "--id",
          std::to_string(node),
          "--peers",
          peers,
          "--data",
          dir_ + "/n" + std::to_string(node),
          "--t0",
          std::to_string(t0_),
          "--incarnation",
          std::to_string(incarnation_[node]),
          "--seed",
          std::to_string(options_.seed)};
  argv.insert(argv.end(), options_.node_args.begin(), options_.node_args.end());
  return argv;
}

Status Harness::Launch() {
  Result<std::vector<uint16_t>> ports = FreeUdpPorts(options_.nodes + 1);
  if (!ports.ok()) return ports.status();
  ports_ = std::move(ports).value();
  runtime::RealEnvOptions env_options;
  env_options.self = NodeId(kHarnessId);
  for (uint32_t i = 0; i <= options_.nodes; ++i) {
    runtime::Peer p;
    p.id = NodeId(i == options_.nodes ? kHarnessId : i);
    p.port = ports_[i];
    p.never_blocked = i == options_.nodes;
    env_options.peers.push_back(p);
  }
  env_options.seed = options_.seed;
  Result<std::unique_ptr<runtime::RealEnv>> env = runtime::RealEnv::Open(env_options);
  if (!env.ok()) return env.status();
  env_ = std::move(env).value();
  env_->transport().SetHandler([this](NodeId from, const FrameView& f) { OnFrame(from, f); });
  signals_ = std::make_unique<Signals>(env_->io());
  signals_->set.async_wait([this](const std::error_code& ec, int) {
    if (ec) return;
    interrupted_ = true;
    env_->Stop();
  });
  t0_ = runtime::HostMonotonicNanos();
  for (uint32_t i = 0; i < options_.nodes; ++i) {
    std::filesystem::create_directories(dir_ + "/n" + std::to_string(i));
    Status s = children_.Spawn(i, NodeArgv(i), dir_ + "/n" + std::to_string(i) + "/log");
    if (!s.ok()) return s;
  }
  // Ping until every node answered.
  const int64_t deadline = Now() + Duration::Seconds(10).nanos();
  while (Now() < deadline && !interrupted_) {
    bool all = true;
    for (uint32_t i = 0; i < options_.nodes; ++i) {
      if (ponged_[i]) continue;
      all = false;
      std::vector<uint8_t> body;
      ByteWriter(&body).U64(i);
      Send(i, kCtlPing, body);
    }
    if (all) break;
    env_->RunFor(Duration::Millis(20));
    if (!children_.Reap().empty()) return UnavailableError("a node process exited at start (see its log)");
  }
  if (interrupted_) return CancelledError("interrupted");
  for (uint32_t i = 0; i < options_.nodes; ++i) {
    if (!ponged_[i]) return DeadlineExceededError("node " + std::to_string(i) + " did not answer within 10 s");
  }
  ReportMetricsPorts();
  Resend();
  ReapLoop();
  return Status();
}

void Harness::Send(uint32_t node, uint16_t type, const std::vector<uint8_t>& body) {
  env_->transport().Send(NodeId(node), type, kCtlSchema, body).IgnoreError();
}

void Harness::OnFrame(NodeId from, const FrameView& frame) {
  const uint32_t node = from.value();
  if (node >= options_.nodes) return;
  ByteReader r(frame.payload);
  if (frame.type == kCtlPong) {
    ponged_[node] = true;
  } else if (frame.type == kCtlAck) {
    uint16_t kind = 0;
    uint64_t seq = 0;
    if (!r.U16(&kind).ok() || !r.U64(&seq).ok()) return;
    uint64_t& acked = acked_[node][kind];
    if (seq > acked) acked = seq;
  } else if (frame_handler_) {
    frame_handler_(node, frame);
  }
}

void Harness::Bump(uint32_t node, uint16_t kind) {
  wanted_[node][kind] = next_seq_++;
  SendState(node, kind);
}

void Harness::SendState(uint32_t node, uint16_t kind) {
  if (children_.state(node) != ChildState::kRunning) return;
  std::vector<uint8_t> body;
  ByteWriter w(&body);
  w.U64(wanted_[node][kind]);
  if (kind == kCtlRules) {
    w.U32(static_cast<uint32_t>(rules_[node].size()));
    for (const auto& [peer, dir] : rules_[node]) {
      w.U32(peer);
      w.U8(dir);
    }
  } else if (kind == kCtlClock) {
    w.I64(clocks_[node].drift);
    w.I64(clocks_[node].offset);
  } else {
    w.U32(static_cast<uint32_t>(holds_[node].size()));
    for (uint32_t peer : holds_[node]) w.U32(peer);
  }
  Send(node, kind, body);
}

// Every kResendEvery: resend each state a running node has not acknowledged.
void Harness::Resend() {
  for (uint32_t i = 0; i < options_.nodes; ++i) {
    for (const auto& [kind, seq] : wanted_[i]) {
      if (acked_[i][kind] < seq) SendState(i, kind);
    }
  }
  env_->executor().ScheduleAfter(kResendEvery, [this] { Resend(); });
}

void Harness::ReapLoop() {
  for (size_t slot : children_.Reap()) {
    if (stopping_) continue;
    deaths_[slot].push_back(Now());
    const std::string what = "node " + std::to_string(slot) + " exited unexpectedly at " +
                             FormatAt(Now()) + " (see " + dir_ + "/n" + std::to_string(slot) +
                             "/log)";
    unexpected_exits_.push_back(what);
    Log(what);
  }
  env_->executor().ScheduleAfter(Duration::Millis(20), [this] { ReapLoop(); });
}

void Harness::At(Duration at, std::function<void()> fn) {
  const int64_t delay = at.nanos() - Now();
  executor().ScheduleAfter(Duration::Nanos(std::max<int64_t>(delay, 0)), std::move(fn));
}

void Harness::ApplyNemesisAction(const sim::FaultAction& a) {
  const uint32_t n = options_.nodes;
  const uint32_t node = a.node.value();
  switch (a.kind) {
    case sim::FaultKind::kPartition: {
      Cuts cuts(n, std::vector<bool>(n, false));
      for (uint32_t x = 0; x < a.grudge.node_count() && x < n; ++x) {
        for (uint32_t y = 0; y < a.grudge.node_count() && y < n; ++y) {
          cuts[x][y] = a.grudge.blocked(x, y);
        }
      }
      SetCuts("nemesis", std::move(cuts),
              std::string(sim::PartitionShapeName(a.shape)) + " " + a.grudge.Describe());
      break;
    }
    case sim::FaultKind::kHeal: ClearCuts("nemesis"); break;
    case sim::FaultKind::kCrash: Crash(node); break;
    case sim::FaultKind::kRestart: Restart(node); break;
    case sim::FaultKind::kPause: Pause(node); break;
    case sim::FaultKind::kResume: Resume(node); break;
    case sim::FaultKind::kClockJump:
      SetClock(node, drift(node), wall_offset(node) + a.amount, "wall jump");
      break;
    case sim::FaultKind::kClockStrobe:
      SetClock(node, drift(node), wall_offset(node) + a.amount, "strobe (as one jump)");
      At(a.at + a.length, [this, node] { SetClock(node, drift(node), 0, "strobe end"); });
      break;
    case sim::FaultKind::kClockDrift: SetClock(node, a.amount, wall_offset(node), "drift"); break;
    case sim::FaultKind::kClockReset: SetClock(node, drift(node), 0, "wall reset"); break;
    case sim::FaultKind::kClog: {
      Cuts cuts(n, std::vector<bool>(n, false));
      for (uint32_t j = 0; j < n; ++j) {
        if (j != node) cuts[node][j] = cuts[j][node] = true;
      }
      const std::string layer = "clog-n" + std::to_string(node);
      SetCuts(layer, std::move(cuts), "every link of n" + std::to_string(node));
      At(a.at + a.length, [this, layer] { ClearCuts(layer); });
      break;
    }
    default: break;  // link faults are not drawn for processes; kHealAll is the run's heal
  }
}

void Harness::ReportUnexpectedExits(lab::RunResult* result) const {
  for (const std::string& what : unexpected_exits_) result->Violate("node-process-exited", 1, what);
}

// Each node wrote the loopback port of its /metrics before answering the first ping.
void Harness::ReportMetricsPorts() {
  for (uint32_t i = 0; i < options_.nodes; ++i) {
    std::ifstream in(dir_ + "/n" + std::to_string(i) + "/metrics_port");
    int port = 0;
    if (!(in >> port) || port <= 0) continue;
    const std::string line = "node " + std::to_string(i) + " metrics: http://127.0.0.1:" +
                             std::to_string(port) + "/metrics";
    fault_log_.push_back(FormatAt(Now()) + "  " + line);
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

void Harness::Log(const std::string& line) {
  fault_log_.push_back(FormatAt(Now()) + "  " + line);
  if (options_.verbose) std::fprintf(stderr, "%s\n", fault_log_.back().c_str());
}

void Harness::PushRules() {
  const uint32_t n = options_.nodes;
  Cuts all(n, std::vector<bool>(n, false));
  for (const auto& [name, cuts] : layers_) {
    for (uint32_t a = 0; a < n && a < cuts.size(); ++a) {
      for (uint32_t b = 0; b < n && b < cuts[a].size(); ++b) {
        if (cuts[a][b]) all[a][b] = true;
      }
    }
  }
  for (uint32_t i = 0; i < n; ++i) {
    std::map<uint32_t, uint8_t> rules;
    for (uint32_t j = 0; j < n; ++j) {
      if (i == j) continue;
      const bool out = all[i][j], in = all[j][i];
      if (out || in) {
        rules[j] = static_cast<uint8_t>(out && in ? runtime::Direction::kBoth
                                        : out     ? runtime::Direction::kOutbound
                                                  : runtime::Direction::kInbound);
      }
    }
    if (rules != rules_[i]) {
      rules_[i] = std::move(rules);
      Bump(i, kCtlRules);
    }
  }
}

void Harness::SetCuts(const std::string& layer, Cuts cuts, const std::string& description) {
  layers_[layer] = std::move(cuts);
  Count("partition");
  Log("partition (in-transport drop rules) " + layer + ": " + description);
  PushRules();
}

void Harness::ClearCuts(const std::string& layer) {
  if (layers_.erase(layer) == 0) return;
  Log("heal " + layer);
  PushRules();
}

void Harness::ClearAllCuts() {
  if (layers_.empty()) return;
  layers_.clear();
  Log("heal every partition");
  PushRules();
}

void Harness::SetClock(uint32_t node, int64_t drift_ppm, int64_t wall_offset_ns,
                       const std::string& what) {
  clocks_[node] = ClockState{drift_ppm, wall_offset_ns};
  Count("clock");
  Log("clock n" + std::to_string(node) + ": " + what + " (drift " + std::to_string(drift_ppm) +
      " ppm, wall offset " + std::to_string(wall_offset_ns / 1'000'000) + " ms)");
  Bump(node, kCtlClock);
}

void Harness::ResetClocks() {
  for (uint32_t i = 0; i < options_.nodes; ++i) {
    if (clocks_[i].drift == 0 && clocks_[i].offset == 0) continue;
    clocks_[i] = ClockState{};
    Bump(i, kCtlClock);
  }
}

void Harness::Hold(uint32_t node, std::set<uint32_t> peers) {
  std::string list;
  for (uint32_t p : peers) list += (list.empty() ? "n" : ",n") + std::to_string(p);
  if (peers.empty()) {
    Log("release the messages n" + std::to_string(node) + " held");
  } else {
    Count("held-write");
    Log("hold n" + std::to_string(node) + "'s messages to " + list);
  }
  holds_[node] = std::move(peers);
  Bump(node, kCtlHold);
}

void Harness::Crash(uint32_t node) {
  if (!up(node)) return;
  children_.Kill(node);
  deaths_[node].push_back(Now());
  Count("SIGKILL");
  Log("SIGKILL n" + std::to_string(node) + " (pid " + std::to_string(children_.pid(node)) + ")");
  acked_[node].clear();
}

void Harness::Restart(uint32_t node) {
  if (up(node)) return;
  ++incarnation_[node];
  Status s = children_.Spawn(node, NodeArgv(node), dir_ + "/n" + std::to_string(node) + "/log");
  if (!s.ok()) {
    Log("restart n" + std::to_string(node) + " failed: " + s.ToString());
    return;
  }
  Count("restart");
  Log("restart n" + std::to_string(node) + " (incarnation " + std::to_string(incarnation_[node]) +
      ", state on its PosixDisk)");
  acked_[node].clear();
  for (const auto& [kind, seq] : wanted_[node]) SendState(node, kind);
}

void Harness::Pause(uint32_t node) {
  if (children_.state(node) != ChildState::kRunning) return;
  children_.Stop(node);
  Count("SIGSTOP");
  Log("SIGSTOP n" + std::to_string(node));
}

void Harness::Resume(uint32_t node) {
  if (children_.state(node) != ChildState::kStopped) return;
  children_.Continue(node);
  Log("SIGCONT n" + std::to_string(node));
}

bool Harness::up(uint32_t node) const {
  const ChildState s = children_.state(node);
  return s == ChildState::kRunning || s == ChildState::kStopped;
}
bool Harness::paused(uint32_t node) const { return children_.state(node) == ChildState::kStopped; }

void Harness::HealAll() {
  Log("heal all: resume, restart, heal partitions, reset clocks, release holds");
  for (uint32_t i = 0; i < options_.nodes; ++i) {
    Resume(i);
    Restart(i);
    if (!holds_[i].empty()) {
      holds_[i].clear();
      Bump(i, kCtlHold);
    }
  }
  layers_.clear();
  PushRules();
  ResetClocks();
}

bool Harness::RunUntil(int64_t end_ns) {
  while (!interrupted_) {
    const int64_t left = end_ns - Now();
    if (left <= 0) break;
    env_->RunFor(Duration::Nanos(std::min<int64_t>(left, Duration::Millis(50).nanos())));
  }
  return !interrupted_;
}

void Harness::StopAll() {
  stopping_ = true;
  for (uint32_t i = 0; i < options_.nodes; ++i) children_.Terminate(i, 2000);
}

std::vector<std::string> Harness::Observations(uint32_t node) const {
  std::vector<std::string> lines;
  std::ifstream in(dir_ + "/n" + std::to_string(node) + "/obs.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

}  // namespace faultline::app::chaos
