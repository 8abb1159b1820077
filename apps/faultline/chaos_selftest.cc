// `faultline chaos selftest`: the lab's replicated counter (selftest) with its five nodes as
// processes. One client per node sends increments over the control channel (exponential gaps of
// mean 30 ms, 1 s timeout: info); the generic nemesis (sim::Nemesis::Draw, link faults left out)
// runs in [1 s, D - 6 s); everything heals at D - 6 s; the workload stops at D - 5 s; each node's
// value is read at D - 1 s. The lab's checker (CheckCounterHistory) judges the increments and the
// final reads.
#include <algorithm>
#include <string>
#include <vector>

#include "apps/faultline/chaos_command.h"
#include "apps/faultline/chaos_proto.h"
#include "faultline/core/bytes.h"
#include "faultline/sim/nemesis.h"
#include "src/lab/counter_check.h"

namespace faultline::app::chaos {
namespace {

constexpr uint32_t kNodes = 5;
constexpr Duration kOpInterval = Duration::Millis(30);
constexpr Duration kOpTimeout = Duration::Seconds(1);

class SelftestRun {
 public:
  SelftestRun(Harness& h, const ChaosArgsParsed& args)
      : h_(h), args_(args), rng_(args.seed, 6), clients_(kNodes) {
    for (uint32_t i = 0; i < kNodes; ++i) clients_[i].process = i;
    h_.SetFrameHandler([this](uint32_t from, const FrameView& f) { OnFrame(from, f); });
  }

  int64_t end_ns() const { return args_.time.nanos(); }

  void Schedule() {
    heal_ = args_.time - Duration::Seconds(6);
    workload_end_ = args_.time - Duration::Seconds(5);
    for (uint32_t i = 0; i < kNodes; ++i) ScheduleTick(i);
    sim::NemesisOptions nemesis;
    nemesis.start = Duration::Seconds(1);
    nemesis.duration = heal_ - nemesis.start;
    nemesis.link_faults = false;
    Rng rng(args_.seed, 5);
    for (const sim::FaultAction& a : sim::Nemesis::Draw(nemesis, kNodes, rng)) {
      if (a.kind == sim::FaultKind::kHealAll) continue;
      ++faults_;
      At(a.at, [this, a] { Apply(a); });
    }
    At(heal_, [this] { h_.HealAll(); });
    At(args_.time - Duration::Seconds(1), [this] {
      for (uint32_t i = 0; i < kNodes; ++i) Send(i, kReadBase + i, false);
    });
  }

  lab::RunResult Finish(check::History* history) {
    lab::RunResult result;
    // A node whose final read did not come back is read as 0 (everything lost), never skipped.
    for (uint32_t i = 0; i < kNodes; ++i) {
      if (!read_[i]) obs_.final_reads.push_back(lab::CounterRead{1000 + i, i, 0, h_.Now()});
    }
    for (lab::CounterIncrement& inc : obs_.increments) {
      if (inc.outcome == lab::Outcome::kPending) {
        inc.outcome = lab::Outcome::kInfo;
        inc.end_ns = h_.Now();
      }
    }
    lab::CheckCounterHistory(obs_, &result);
    h_.ReportUnexpectedExits(&result);
    result.metrics["faults"] = static_cast<double>(faults_);
    result.simulated = args_.time;
    *history = lab::CounterHistory(obs_);
    return result;
  }

 private:
  static constexpr uint64_t kReadBase = uint64_t{1} << 40;
  struct Client {
    int64_t process = 0;
    uint64_t op = 0;  // 0: idle
    size_t increment = 0;
    TimerId timeout;
  };

  void At(Duration at, std::function<void()> fn) { h_.At(at, std::move(fn)); }

  void Send(uint32_t node, uint64_t op, bool write) {
    std::vector<uint8_t> body;
    ByteWriter w(&body);
    w.U64(op);
    w.U8(write ? 1 : 0);
    w.U32(0);
    w.U64(0);
    h_.Send(node, kCtlClientOp, body);
  }

  void ScheduleTick(uint32_t i) {
    h_.executor().ScheduleAfter(rng_.Exponential(kOpInterval), [this, i] { Tick(i); });
  }

  void Tick(uint32_t i) {
    if (h_.Now() >= workload_end_.nanos()) return;
    if (clients_[i].op == 0) Invoke(i);
    ScheduleTick(i);
  }

  void Invoke(uint32_t i) {
    Client& c = clients_[i];
    c.increment = obs_.increments.size();
    obs_.increments.push_back(lab::CounterIncrement{c.process, h_.Now()});
    if (!h_.up(i)) {
      End(c, lab::Outcome::kFail);  // connection refused: never applied
      return;
    }
    c.op = ++next_op_;
    Send(i, c.op, true);
    const uint64_t op = c.op;
    c.timeout = h_.executor().ScheduleAfter(kOpTimeout, [this, i, op] {
      Client& cl = clients_[i];
      if (cl.op != op) return;
      End(cl, lab::Outcome::kInfo);
      cl.op = 0;
      cl.process += kNodes;
    });
  }

  void End(const Client& c, lab::Outcome outcome) {
    lab::CounterIncrement& inc = obs_.increments[c.increment];
    inc.outcome = outcome;
    inc.end_ns = h_.Now();
  }

  void OnFrame(uint32_t from, const FrameView& frame) {
    if (frame.type != kCtlClientReply || from >= kNodes) return;
    ByteReader r(frame.payload);
    uint64_t op = 0, value = 0;
    uint8_t outcome = 0, has = 0;
    if (!r.U64(&op).ok() || !r.U8(&outcome).ok() || !r.U8(&has).ok() || !r.U64(&value).ok()) return;
    if (op >= kReadBase) {
      const uint32_t node = static_cast<uint32_t>(op - kReadBase);
      if (node != from || read_[node] || has == 0) return;
      read_[node] = true;
      obs_.final_reads.push_back(
          lab::CounterRead{1000 + node, node, static_cast<int64_t>(value), h_.Now()});
      return;
    }
    Client& c = clients_[from];
    if (c.op != op) return;
    h_.executor().Cancel(c.timeout);
    End(c, outcome == 0 ? lab::Outcome::kOk : lab::Outcome::kFail);
    c.op = 0;
  }

  void Apply(const sim::FaultAction& a) { h_.ApplyNemesisAction(a); }

  Harness& h_;
  const ChaosArgsParsed& args_;
  Rng rng_;
  std::vector<Client> clients_;
  uint64_t next_op_ = 0;
  lab::CounterObservations obs_;
  bool read_[kNodes] = {};
  Duration heal_;
  Duration workload_end_;
  int64_t faults_ = 0;
};

}  // namespace

ScenarioRun RunSelftest(Harness& harness, const ChaosArgsParsed& args) {
  SelftestRun run(harness, args);
  run.Schedule();
  ScenarioRun out;
  out.completed = harness.RunUntil(run.end_ns());
  if (!out.completed) return out;
  harness.StopAll();
  out.result = run.Finish(&out.history);
  return out;
}

}  // namespace faultline::app::chaos
