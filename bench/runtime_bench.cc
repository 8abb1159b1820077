// The real runtime on loopback (faultline/runtime/): two processes, each a RealEnv on its own
// single-threaded io_context, talking over LoopbackTransport (UDP on 127.0.0.1, one frame per
// datagram). The benchmark process is node 0; a forked child (killed and reaped at the end of
// each run, and killed by the kernel if the parent dies) is node 1.
//
// BM_LoopbackMessages/<payload bytes>: one-way messages delivered per second, node 0 -> node 1.
//   The sender keeps at most 256 messages in flight; the receiver acknowledges its cumulative
//   count every 32 messages (and on a 1 ms tick), so the rate is what the receiver actually got,
//   not what the sender pushed into a full socket buffer. items_per_second = delivered/s;
//   lost_per_msg = datagrams the receiver never saw (kernel buffer overflow), per message sent.
// BM_RpcRoundTrip/<payload bytes>: one Rpc::Call at a time (env/rpc.h, unchanged) to an echo
//   handler in the child: p50_us / p99_us / max_us are the percentiles of the individual round
//   trips measured in node time; failed counts calls that did not succeed within 1 s.
//
//   runtime_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>
#include <vector>

#include "faultline/env/rpc.h"
#include "faultline/runtime/real_env.h"
#include "src/runtime/runtime_test_util.h"

namespace faultline::runtime {
namespace {

constexpr uint16_t kData = 1;
constexpr uint16_t kAck = 2;
constexpr uint16_t kEcho = 7;
constexpr uint64_t kWindow = 256;
constexpr uint64_t kAckEvery = 32;

Bytes U64Bytes(uint64_t v) {
  Bytes b(8);
  std::memcpy(b.data(), &v, 8);
  return b;
}

uint64_t ReadU64(std::span<const uint8_t> p) {
  uint64_t v = 0;
  if (p.size() >= 8) std::memcpy(&v, p.data(), 8);
  return v;
}

// The forked peer: node 1 runs `serve` on its own RealEnv until killed.
class Child {
 public:
  Child(const std::vector<uint16_t>& ports, std::function<void(RealEnv&)> serve) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      auto env = testing::OpenEnv(1, ports);
      serve(*env);
      env->Run();
      ::_exit(0);
    }
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool ok() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

// Receiver side: counts data frames and acknowledges the cumulative count.
void ServeSink(RealEnv& env) {
  struct Sink {
    uint64_t received = 0;
    uint64_t acked = 0;
  };
  auto* sink = new Sink;  // lives until the child is killed
  const auto ack = [&env, sink] {
    sink->acked = sink->received;
    env.transport().Send(NodeId(0), kAck, 1, U64Bytes(sink->received)).IgnoreError();
  };
  env.transport().SetHandler([sink, ack](NodeId, const FrameView& f) {
    if (f.type != kData) return;
    if (++sink->received % kAckEvery == 0) ack();
  });
  std::function<void()>* tick = new std::function<void()>;
  *tick = [&env, sink, ack, tick] {
    if (sink->received != sink->acked) ack();
    env.executor().ScheduleAfter(Duration::Millis(1), [tick] { (*tick)(); });
  };
  (*tick)();
}

void BM_LoopbackMessages(benchmark::State& state) {
  const size_t payload_bytes = static_cast<size_t>(state.range(0));
  const auto ports = testing::FreePorts(2);
  Child child(ports, ServeSink);
  if (!child.ok()) {
    state.SkipWithError("fork failed");
    return;
  }
  auto env = testing::OpenEnv(0, ports);
  const Bytes payload(payload_bytes, 0xAB);
  uint64_t sent = 0, delivered = 0, written_off = 0, target = 0;
  int64_t last_progress_ns = 0;
  const auto pump = [&] {
    while (sent < target && sent - delivered - written_off < kWindow) {
      env->transport().Send(NodeId(1), kData, 1, payload).IgnoreError();
      ++sent;
    }
  };
  env->transport().SetHandler([&](NodeId, const FrameView& f) {
    if (f.type != kAck) return;
    const uint64_t count = ReadU64(f.payload);
    if (count <= delivered) return;
    delivered = count;
    last_progress_ns = HostMonotonicNanos();
    if (delivered + written_off >= target) {
      env->Stop();
      return;
    }
    pump();
  });
  // Loss recovery: with no progress for 5 ms, what is in flight is written off as lost.
  std::function<void()> tick = [&] {
    if (HostMonotonicNanos() - last_progress_ns > Duration::Millis(5).nanos()) {
      written_off = sent - delivered;
      last_progress_ns = HostMonotonicNanos();
      if (delivered + written_off >= target) env->Stop();
      pump();
    }
    env->executor().ScheduleAfter(Duration::Millis(1), [&] { tick(); });
  };
  // Wait for the child to be up: one ack-producing round before timing.
  target = kAckEvery;
  last_progress_ns = HostMonotonicNanos();
  tick();
  pump();
  env->Run();
  const uint64_t delivered_before = delivered;
  const uint64_t sent_before = sent;
  constexpr uint64_t kBatch = 20'000;
  for (auto _ : state) {
    target = sent + kBatch;
    last_progress_ns = HostMonotonicNanos();
    pump();
    env->Run();
  }
  const uint64_t got = delivered - delivered_before;
  const uint64_t tried = sent - sent_before;
  state.SetItemsProcessed(static_cast<int64_t>(got));
  state.SetBytesProcessed(static_cast<int64_t>(got * payload_bytes));
  state.counters["lost_per_msg"] =
      tried > 0 ? static_cast<double>(tried - got) / static_cast<double>(tried) : 0.0;
  env->DestroySpawned();
}
BENCHMARK(BM_LoopbackMessages)->Arg(64)->Arg(1024)->UseRealTime()->Unit(benchmark::kMillisecond);

void ServeEcho(RealEnv& env) {
  auto* rpc = new Rpc(env);  // lives until the child is killed
  rpc->Handle(kEcho, [](NodeId, std::span<const uint8_t> req) -> Result<Bytes> {
    return Bytes(req.begin(), req.end());
  });
}

Task<void> OneCall(RealEnv* env, Rpc* rpc, const Bytes* request, std::vector<int64_t>* samples,
                   uint64_t* failed) {
  const MonoTime start = env->clock().Now();
  Result<Bytes> r = co_await rpc->Call(NodeId(1), kEcho, *request, Duration::Seconds(1));
  if (r.ok() && r->size() == request->size()) {
    samples->push_back((env->clock().Now() - start).nanos());
  } else {
    ++*failed;
  }
  env->Stop();
}

double Percentile(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return static_cast<double>(v[i]) / 1000.0;
}

void BM_RpcRoundTrip(benchmark::State& state) {
  const auto ports = testing::FreePorts(2);
  Child child(ports, ServeEcho);
  if (!child.ok()) {
    state.SkipWithError("fork failed");
    return;
  }
  auto env = testing::OpenEnv(0, ports);
  Rpc rpc(*env);
  const Bytes request(static_cast<size_t>(state.range(0)), 0x5A);
  std::vector<int64_t> samples;
  uint64_t failed = 0;
  // Warm-up until the child answers (its socket may not be bound yet).
  for (int i = 0; i < 200 && samples.empty(); ++i) {
    env->Spawn(OneCall(env.get(), &rpc, &request, &samples, &failed));
    env->Run();
  }
  samples.clear();
  failed = 0;
  for (auto _ : state) {
    env->Spawn(OneCall(env.get(), &rpc, &request, &samples, &failed));
    env->Run();
  }
  state.counters["p50_us"] = Percentile(samples, 0.50);
  state.counters["p99_us"] = Percentile(samples, 0.99);
  state.counters["max_us"] = samples.empty() ? 0 : Percentile(samples, 1.0);
  state.counters["failed"] = static_cast<double>(failed);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  env->DestroySpawned();
}
BENCHMARK(BM_RpcRoundTrip)->Arg(64)->Arg(4096)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace faultline::runtime

BENCHMARK_MAIN();
