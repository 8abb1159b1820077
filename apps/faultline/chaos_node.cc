// `faultline node SCENARIO --variant V --id N --peers ID:PORT,... --data DIR --t0 NS`: one process
// hosting one scenario node on the real runtime (RealEnv: ChaosClock, LoopbackTransport,
// PosixDisk on DIR/disk), plus the harness's control channel (chaos_proto.h). The node sees an Env
// whose transport filters the control frames out and can hold its sends to chosen peers (the
// held-write fault). Every millisecond the process polls the node's observable state and appends
// changes to DIR/obs.jsonl. SIGTERM stops it gracefully (last observations written); SIGKILL is
// the crash fault.
#include <fcntl.h>
#include <unistd.h>

#include <asio.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "apps/faultline/chaos.h"
#include "apps/faultline/chaos_proto.h"
#include "apps/faultline/commands.h"
#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/observe/prometheus.h"
#include "faultline/runtime/real_env.h"

namespace faultline::app::chaos {

int64_t TrueNanos(int64_t t0) { return runtime::HostMonotonicNanos() - t0; }

ObsWriter::ObsWriter(const std::string& path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}
ObsWriter::~ObsWriter() {
  if (fd_ >= 0) ::close(fd_);
}
void ObsWriter::Line(const std::string& json) {
  if (fd_ < 0) return;
  const std::string line = json + "\n";
  // O_APPEND + one write: the line is either wholly in the file or absent after a SIGKILL.
  const ssize_t n = ::write(fd_, line.data(), line.size());
  (void)n;
}

namespace {

// The node's view of the transport: control frames go to the host, the rest to the node; sends to
// a held peer are kept until released (then sent in order).
class HostTransport final : public Transport {
 public:
  explicit HostTransport(Transport& inner) : inner_(inner) {}

  Status Send(NodeId to, uint16_t type, uint16_t schema, std::span<const uint8_t> payload) override {
    if (held_.count(to.value()) != 0) {
      held_frames_.push_back(Held{to, type, schema, Bytes(payload.begin(), payload.end())});
      return Status();
    }
    return inner_.Send(to, type, schema, payload);
  }
  void SetHandler(MessageHandler handler) override { node_handler_ = std::move(handler); }

  void Install(MessageHandler control) {
    control_ = std::move(control);
    inner_.SetHandler([this](NodeId from, const FrameView& frame) {
      if (from.value() == kHarnessId && IsControlType(frame.type)) {
        control_(from, frame);
      } else if (node_handler_) {
        node_handler_(from, frame);
      }
    });
  }

  // Holds sends to exactly `peers`; frames held for a peer no longer in the set are sent now.
  void SetHeld(const std::set<uint32_t>& peers) {
    held_ = peers;
    std::vector<Held> keep;
    for (Held& h : held_frames_) {
      if (held_.count(h.to.value()) != 0) {
        keep.push_back(std::move(h));
      } else {
        inner_.Send(h.to, h.type, h.schema, h.payload).IgnoreError();
      }
    }
    held_frames_ = std::move(keep);
  }
  Transport& inner() { return inner_; }

 private:
  struct Held {
    NodeId to;
    uint16_t type = 0;
    uint16_t schema = 0;
    Bytes payload;
  };
  Transport& inner_;
  MessageHandler node_handler_;
  MessageHandler control_;
  std::set<uint32_t> held_;
  std::vector<Held> held_frames_;
};

// RealEnv with the transport swapped for HostTransport.
class HostEnv final : public Env {
 public:
  HostEnv(runtime::RealEnv& env, HostTransport& transport) : env_(env), transport_(transport) {}
  NodeId self() const override { return env_.self(); }
  Clock& clock() override { return env_.clock(); }
  Executor& executor() override { return env_.executor(); }
  Transport& transport() override { return transport_; }
  Disk& disk() override { return env_.disk(); }
  Rng& random() override { return env_.random(); }
  void Spawn(Task<void> task) override { env_.Spawn(std::move(task)); }

 private:
  runtime::RealEnv& env_;
  HostTransport& transport_;
};

Result<std::vector<runtime::Peer>> ParsePeers(const std::string& text) {
  std::vector<runtime::Peer> peers;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    const size_t colon = item.find(':');
    if (colon == std::string::npos) return InvalidArgumentError("--peers: '" + item + "' is not ID:PORT");
    runtime::Peer p;
    p.id = NodeId(static_cast<uint32_t>(ParseUnsigned("--peers", item.substr(0, colon), 0, 1000)));
    p.port = static_cast<uint16_t>(ParseUnsigned("--peers", item.substr(colon + 1), 1, 65535));
    p.never_blocked = p.id.value() == kHarnessId;
    peers.push_back(p);
    pos = comma + 1;
  }
  return peers;
}

// The control channel's node side.
class Control {
 public:
  Control(runtime::RealEnv& env, HostTransport& transport, HostedNode*& node)
      : env_(env), transport_(transport), node_(node) {}

  void OnFrame(const FrameView& frame) {
    ByteReader r(frame.payload);
    switch (frame.type) {
      case kCtlPing: {
        uint64_t nonce = 0;
        if (!r.U64(&nonce).ok()) return;
        Bytes out;
        ByteWriter(&out).U64(nonce);
        Reply(kCtlPong, out);
        return;
      }
      case kCtlClientOp: return OnClientOp(r);
      case kCtlRules:
      case kCtlClock:
      case kCtlHold: return OnState(frame.type, r);
      default: return;
    }
  }

 private:
  void Reply(uint16_t type, const Bytes& body) {
    transport_.inner().Send(NodeId(kHarnessId), type, kCtlSchema, body).IgnoreError();
  }

  void OnClientOp(ByteReader& r) {
    uint64_t op = 0, value = 0;
    uint8_t write = 0;
    uint32_t key = 0;
    if (!r.U64(&op).ok() || !r.U8(&write).ok() || !r.U32(&key).ok() || !r.U64(&value).ok()) return;
    if (node_ == nullptr) return;
    Control* self = this;
    node_->ClientOp(write != 0, key, value,
                    [self, op](ClientOutcome outcome, std::optional<uint64_t> v) {
                      Bytes out;
                      ByteWriter w(&out);
                      w.U64(op);
                      w.U8(static_cast<uint8_t>(outcome));
                      w.U8(v ? 1 : 0);
                      w.U64(v.value_or(0));
                      self->Reply(kCtlClientReply, out);
                    });
  }

  void OnState(uint16_t kind, ByteReader& r) {
    uint64_t seq = 0;
    if (!r.U64(&seq).ok()) return;
    if (seq > applied_[kind] && Apply(kind, r)) applied_[kind] = seq;
    Bytes out;
    ByteWriter w(&out);
    w.U16(kind);
    w.U64(applied_[kind]);
    Reply(kCtlAck, out);
  }

  bool Apply(uint16_t kind, ByteReader& r) {
    if (kind == kCtlClock) {
      int64_t drift = 0, offset = 0;
      if (!r.I64(&drift).ok() || !r.I64(&offset).ok()) return false;
      runtime::ChaosClock* clock = env_.chaos_clock();
      if (clock == nullptr) return false;
      clock->SetDrift(drift);
      clock->ResetWall();
      if (offset != 0) clock->JumpWall(Duration::Nanos(offset));
      return true;
    }
    uint32_t n = 0;
    if (!r.U32(&n).ok() || n > 64) return false;
    if (kind == kCtlRules) {
      std::vector<std::pair<uint32_t, uint8_t>> rules(n);
      for (auto& [peer, dir] : rules) {
        if (!r.U32(&peer).ok() || !r.U8(&dir).ok() || dir > 2) return false;
      }
      env_.loopback().HealAll();
      for (const auto& [peer, dir] : rules) {
        env_.loopback().Block(NodeId(peer), static_cast<runtime::Direction>(dir)).IgnoreError();
      }
      return true;
    }
    std::set<uint32_t> held;
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t peer = 0;
      if (!r.U32(&peer).ok()) return false;
      held.insert(peer);
    }
    transport_.SetHeld(held);
    return true;
  }

  runtime::RealEnv& env_;
  HostTransport& transport_;
  HostedNode*& node_;
  std::map<uint16_t, uint64_t> applied_;
};

// Polls the node every millisecond of the process's loop.
void PollLoop(Env& env, HostedNode* node, ObsWriter* out, int64_t t0) {
  node->Poll(TrueNanos(t0), *out);
  env.executor().ScheduleAfter(Duration::Millis(1), [&env, node, out, t0] {
    PollLoop(env, node, out, t0);
  });
}

}  // namespace

int RunNode(const NodeArgs& args) {
  const uint32_t id = static_cast<uint32_t>(ParseUnsigned("--id", args.id, 0, 99));
  const int64_t t0 = static_cast<int64_t>(ParseUnsigned("--t0", args.t0, 0, INT64_MAX));
  const uint32_t incarnation =
      static_cast<uint32_t>(ParseUnsigned("--incarnation", args.incarnation, 0, 1'000'000));
  const uint64_t seed = ParseUnsigned("--seed", args.seed, 0, UINT64_MAX);
  Result<std::vector<runtime::Peer>> peers = ParsePeers(args.peers);
  if (!peers.ok()) throw UsageError(std::string(peers.status().message()));
  if (args.data.empty()) throw UsageError("--data is required");
  if (args.lease != "paxos" && args.lease != "etcd") {
    throw UsageError("--lease: '" + args.lease + "' is not paxos or etcd");
  }
  if (args.lease == "etcd" && args.etcd_endpoints.empty()) {
    throw UsageError("--lease etcd needs --etcd ENDPOINTS");
  }

  runtime::RealEnvOptions options;
  options.self = NodeId(id);
  options.peers = std::move(peers).value();
  options.data_dir = args.data + "/disk";
  options.seed = seed * 1000 + id * 10 + incarnation + 1;
  Result<std::unique_ptr<runtime::RealEnv>> opened = runtime::RealEnv::Open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "faultline node: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<runtime::RealEnv> env = std::move(opened).value();
  ObsWriter obs(args.data + "/obs.jsonl");
  if (!obs.ok()) {
    std::fprintf(stderr, "faultline node: cannot open %s/obs.jsonl: %s\n", args.data.c_str(),
                 std::strerror(errno));
    return 1;
  }
  HostTransport transport(env->transport());
  HostEnv host_env(*env, transport);
  HostedNode* node_ptr = nullptr;
  Control control(*env, transport, node_ptr);
  transport.Install([&control](NodeId, const FrameView& frame) { control.OnFrame(frame); });

  // /metrics on a free loopback port, written to DIR/metrics_port for the harness.
  Result<std::unique_ptr<observe::PrometheusObserver>> exporter =
      observe::PrometheusObserver::Create();
  FL_ASSERT(exporter.ok());
  std::unique_ptr<observe::PrometheusObserver> metrics = std::move(exporter).value();
  if (Status served = metrics->Serve("127.0.0.1:0"); !served.ok()) {
    std::fprintf(stderr, "faultline node: %s\n", served.ToString().c_str());
    return 1;
  }
  {
    const std::string tmp = args.data + "/metrics_port.tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr || std::fprintf(f, "%d\n", metrics->port()) < 0 || std::fclose(f) != 0 ||
        std::rename(tmp.c_str(), (args.data + "/metrics_port").c_str()) != 0) {
      std::fprintf(stderr, "faultline node: cannot write %s/metrics_port\n", args.data.c_str());
      return 1;
    }
  }

  HostContext ctx;
  ctx.metrics = metrics.get();
  ctx.id = id;
  ctx.incarnation = incarnation;
  ctx.t0 = t0;
  ctx.lease = args.lease;
  ctx.etcd_endpoints = args.etcd_endpoints;
  ctx.store_uri = args.store_uri;
  runtime::RealEnv* raw_env = env.get();
  ctx.post = [raw_env](std::function<void()> fn) { raw_env->PostFromAnyThread(std::move(fn)); };
  ctx.to_true = [raw_env, t0](MonoTime at) {
    const Duration left = at - raw_env->clock().Now();
    runtime::ChaosClock* clock = raw_env->chaos_clock();
    const Duration host = clock != nullptr ? clock->TrueDelayFor(left) : left;
    return runtime::HostMonotonicNanos() + host.nanos() - t0;
  };
  ctx.drift = [raw_env] {
    runtime::ChaosClock* clock = raw_env->chaos_clock();
    return clock != nullptr ? clock->drift_ppm() : int64_t{0};
  };
  std::string error;
  std::unique_ptr<HostedNode> node =
      MakeHostedNode(args.scenario, args.variant, host_env, ctx, &error);
  if (node == nullptr) throw UsageError(error);
  node_ptr = node.get();

  auto signals = std::make_unique<asio::signal_set>(env->io(), SIGTERM, SIGINT);
  signals->async_wait([raw_env](const std::error_code& ec, int) {
    if (!ec) raw_env->Stop();
  });
  node->Start();
  PollLoop(host_env, node.get(), &obs, t0);
  env->Run();
  node->Flush(TrueNanos(t0), obs);
  signals.reset();
  env->DestroySpawned();
  node_ptr = nullptr;
  node.reset();
  env.reset();
  return 0;
}

}  // namespace faultline::app::chaos
