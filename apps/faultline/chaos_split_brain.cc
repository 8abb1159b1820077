// `faultline chaos split-brain`: the lab's split-brain scenario with its six nodes as processes.
//
// The same node classes (split_brain_nodes.cc, split_brain_store.cc) run in `faultline node`
// processes; this file is the harness side: the lab's client workload sent over the control
// channel, the generic nemesis (sim::Nemesis::Draw's schedule, applied with real faults) and the
// leader-aimed faults made real, the heal and failover crashes, and the collection of the record
// the lab's checker (split_brain::Check) judges.
//
// Timeline for --time D (D >= 12 s): faults in [1 s, D - 9 s); heal at D - 9 s; the leader is
// SIGKILLed 4 s after the heal and restarted 3 s later; with --failovers N, N crashes 7 s apart
// (the run grows by 7 s per extra crash).
//
// With --lease etcd / --store postgresql (chaos_infra.h) the infrastructure is faulted too, in
// [1.5 s, D - 14.5 s): etcd's leader SIGSTOPped, a member SIGKILLed and restarted, a member cut
// off by nftables, PostgreSQL restarted (D >= 22 s fits one of each). With --store postgresql one
// held write is also aimed at the leader at 1.2 s, and released only once a successor acts (its
// load raised the mark; every etcd leader change extends the leases, so that can take seconds),
// so that a deposed leader's writes reach PostgreSQL after its successor's. The heal ends these
// faults too.
//
// "Two leaders at the same instant": each node process polls its node every millisecond and logs
// when ActingLeader() or the bound of its acting interval changes: the bound is the instant its
// lease stops it acting (ActingUntil(): the self-fencing deadline on its own monotonic clock,
// mapped to TrueTime through its ChaosClock's rate), or none (naive). From these lines and the
// harness's kill instants, each node's acting intervals on TrueTime are
//   [first "on" line, min(the next "off" line, the bound in force, the process's death)).
// A SIGSTOPped process writes nothing: its interval ends at its bound (a lease node) or runs on
// through the pause (naive) — exactly what the node would have done had anyone asked it. The
// intervals become the checker's LeaderSamples at every instant the set of acting nodes changes.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "apps/faultline/chaos_command.h"
#include "apps/faultline/chaos_infra.h"
#include "apps/faultline/chaos_proto.h"
#include "faultline/core/bytes.h"
#include "faultline/sim/nemesis.h"
#include "src/lab/split_brain.h"

namespace faultline::app::chaos {
namespace {

namespace sb = lab::split_brain;

constexpr uint32_t kClients = 5;
constexpr Duration kClientTimeout = Duration::Seconds(1);
constexpr Duration kFaultStart = Duration::Seconds(1);
constexpr Duration kHealBeforeEnd = Duration::Seconds(9);
constexpr Duration kFailoverAfterHeal = Duration::Seconds(4);
constexpr Duration kRestartAfterCrash = Duration::Seconds(3);
constexpr Duration kFailoverEvery = Duration::Seconds(7);
constexpr Duration kLivenessBound = Duration::Seconds(10);
// The lab's derivation (split_brain.cc) with the same lease settings: kTtl·(1+ρ) + kRttBound/2 +
// 2·kRetryMin + 4·kRttBound. Loopback round trips are far below kRttBound = 10 ms.
constexpr Duration kFailoverBound = Duration::Millis(2546);
// With --lease etcd: kEtcdFailoverBound (chaos_infra.h), derived there.
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr Duration kHeldBeforePause = Duration::Millis(300);

std::string OpJson(uint32_t key, std::optional<uint64_t> value) {
  return "{\"key\":" + std::to_string(key) +
         ",\"value\":" + (value ? std::to_string(*value) : std::string("null")) + "}";
}

class SplitBrainRun {
 public:
  SplitBrainRun(Harness& h, const ChaosArgsParsed& args, Infra* infra)
      : h_(h), args_(args), infra_(infra), workload_(args.seed, 6), clients_(kClients),
        live_(sb::kClusterNodes) {
    for (uint32_t c = 0; c < kClients; ++c) clients_[c].process = c;
    h_.SetFrameHandler([this](uint32_t from, const FrameView& f) { OnFrame(from, f); });
  }

  int64_t end_ns() const { return end_ns_; }

  void Schedule() {
    const Duration total = args_.time + kFailoverEvery * (args_.failovers - 1);
    end_ns_ = total.nanos();
    heal_ = args_.time - kHealBeforeEnd;
    for (uint32_t c = 0; c < kClients; ++c) Next(c, Duration::Millis(3 * c));
    ScheduleNemesis();
    if (infra_ != nullptr) {
      Rng rng(args_.seed, 7);  // its own stream: the node faults' draws are today's
      infra_->Schedule(Duration::Millis(1500), heal_ - Duration::Millis(5500), rng);
      if (args_.postgresql) {
        At(kFaultStart + Duration::Millis(200), [this] {
          ++faults_;
          ApplyAimed(3, sb::kTtl + Duration::Seconds(1), 16);  // waits up to 4 s for a leader
        });
      }
    }
    At(heal_, [this] {
      if (infra_ != nullptr) infra_->HealAll();
      h_.HealAll();
      sb::NemesisMark mark;
      mark.kind = sb::NemesisMark::Kind::kHeal;
      mark.bound = kLivenessBound;
      Mark(std::move(mark));
    });
    for (uint32_t k = 0; k < args_.failovers; ++k) {
      const bool last = k + 1 == args_.failovers;
      At(heal_ + kFailoverAfterHeal + kFailoverEvery * k, [this, last] { CrashLeader(last); });
    }
  }

  // Collects the observation files into the record, and checks.
  lab::RunResult Finish(check::History* history_out) {
    sb::Record record;
    CollectRecord(&record);
    lab::RunResult result;
    sb::Check(record, history_, &result);
    h_.ReportUnexpectedExits(&result);
    // The comparison figures, for runs on real infrastructure (the default run's JSON is unchanged).
    if (infra_ != nullptr) AddLeaseMetrics(h_, sb::kClusterNodes, end_ns_, &result);
    result.metrics["faults"] = static_cast<double>(faults_);
    result.metrics["leader_faults"] = static_cast<double>(leader_faults_);
    result.simulated = Duration::Nanos(end_ns_);
    failover_ms_ = FailoverTimes(record);
    if (infra_ != nullptr) AddFailoverMetrics(failover_ms_, &result);
    *history_out = history_;
    return result;
  }
  const std::vector<double>& failover_ms() const { return failover_ms_; }

 private:
  struct Client {
    int64_t process = 0;
    uint64_t op = 0;
    uint32_t target = 0;
    sb::ClientRequest request;
    TimerId timeout;
  };
  struct Live {
    bool acting = false;
    int64_t until = -1;
  };

  void At(Duration at, std::function<void()> fn) { h_.At(at, std::move(fn)); }

  void Mark(sb::NemesisMark mark) {
    mark.time_ns = h_.Now();
    marks_.push_back(std::move(mark));
  }

  std::vector<uint32_t> ActingLeaders() const {
    std::vector<uint32_t> acting;
    const int64_t now = h_.Now();
    for (uint32_t i = 0; i < sb::kClusterNodes; ++i) {
      if (!h_.up(i) || !live_[i].acting) continue;
      if (live_[i].until >= 0 && now >= live_[i].until) continue;
      acting.push_back(i);
    }
    return acting;
  }

  void OnFrame(uint32_t from, const FrameView& frame) {
    ByteReader r(frame.payload);
    if (frame.type == kCtlActing && from < sb::kClusterNodes) {
      int64_t t = 0, until = 0;
      uint8_t on = 0;
      if (!r.I64(&t).ok() || !r.U8(&on).ok() || !r.I64(&until).ok()) return;
      live_[from] = Live{on != 0, until};
    } else if (frame.type == kCtlClientReply) {
      uint64_t op = 0, value = 0;
      uint8_t outcome = 0, has = 0;
      if (!r.U64(&op).ok() || !r.U8(&outcome).ok() || !r.U8(&has).ok() || !r.U64(&value).ok()) {
        return;
      }
      const uint32_t c = static_cast<uint32_t>(op >> 48);
      if (c >= kClients) return;
      sb::ClientReply reply;
      reply.outcome = outcome == 0 ? sb::Outcome::kOk : outcome == 1 ? sb::Outcome::kFail
                                                                     : sb::Outcome::kInfo;
      if (has) reply.value = value;
      Finish(c, op & ((uint64_t{1} << 48) - 1), reply);
    }
  }

  // ---- the workload: the lab's clients, over the control channel ----

  void Next(uint32_t c, Duration after) {
    h_.executor().ScheduleAfter(after, [this, c] { Invoke(c); });
  }

  void Invoke(uint32_t c) {
    Client& client = clients_[c];
    if (h_.Now() >= end_ns_ - Duration::Seconds(1).nanos()) return;
    client.request.write = workload_.Chance(Ratio::Percent(50));
    client.request.key = static_cast<uint32_t>(workload_.Uniform(sb::kKeys));
    client.request.value = client.request.write ? ++values_ : 0;
    const uint64_t op = ++client.op;
    const std::string f = client.request.write ? "write" : "read";
    history_.Add(client.process, check::OpType::kInvoke, f,
                 OpJson(client.request.key, client.request.write
                                                ? std::optional<uint64_t>(client.request.value)
                                                : std::nullopt),
                 h_.Now());
    client.timeout = h_.executor().ScheduleAfter(kClientTimeout, [this, c, op] {
      Finish(c, op, sb::ClientReply{sb::Outcome::kInfo, std::nullopt});
    });
    if (!h_.up(client.target)) {
      Finish(c, op, sb::ClientReply{});
      return;
    }
    std::vector<uint8_t> body;
    ByteWriter w(&body);
    w.U64((uint64_t{c} << 48) | op);
    w.U8(client.request.write ? 1 : 0);
    w.U32(client.request.key);
    w.U64(client.request.value);
    h_.Send(client.target, kCtlClientOp, body);
  }

  void Finish(uint32_t c, uint64_t op, const sb::ClientReply& reply) {
    Client& client = clients_[c];
    if (client.op != op) return;
    ++client.op;
    h_.executor().Cancel(client.timeout);
    const std::string f = client.request.write ? "write" : "read";
    const int64_t now = h_.Now();
    switch (reply.outcome) {
      case sb::Outcome::kOk:
        history_.Add(client.process, check::OpType::kOk, f,
                     OpJson(client.request.key,
                            client.request.write ? std::optional<uint64_t>(client.request.value)
                                                 : reply.value),
                     now);
        break;
      case sb::Outcome::kFail:
        history_.Add(client.process, check::OpType::kFail, f,
                     OpJson(client.request.key, std::nullopt), now);
        client.target = static_cast<uint32_t>(workload_.Uniform(sb::kClusterNodes));
        break;
      case sb::Outcome::kInfo:
        history_.Add(client.process, check::OpType::kInfo, f,
                     OpJson(client.request.key, std::nullopt), now);
        client.process += kClients;
        client.target = static_cast<uint32_t>(workload_.Uniform(sb::kClusterNodes));
        break;
    }
    Next(c, Duration::Millis(10 + static_cast<int64_t>(workload_.Uniform(40))));
  }

  // ---- the nemesis ----

  void ScheduleNemesis();
  void ApplyGeneric(const sim::FaultAction& action);
  void ApplyAimed(uint32_t kind, Duration length, uint8_t waits_left);
  void CrashLeader(bool last);
  void ReleaseHeld(uint32_t held);
  void ResumeDeposed(uint32_t paused);
  void CollectRecord(sb::Record* record) const;
  std::vector<double> FailoverTimes(const sb::Record& record) const;

  Harness& h_;
  const ChaosArgsParsed& args_;
  Infra* infra_;
  Rng workload_;
  std::vector<Client> clients_;
  std::vector<Live> live_;
  uint64_t values_ = 0;
  check::History history_;
  std::vector<sb::NemesisMark> marks_;
  Duration heal_;
  int64_t end_ns_ = 0;
  int64_t faults_ = 0;
  int64_t leader_faults_ = 0;
  std::vector<double> failover_ms_;
  std::vector<std::pair<int64_t, uint32_t>> crashes_;  // failover crashes: (time, node)
};

Cuts NoCuts() { return Cuts(sb::kNodes, std::vector<bool>(sb::kNodes, false)); }

void SplitBrainRun::ScheduleNemesis() {
  sim::NemesisOptions nemesis;
  nemesis.start = kFaultStart;
  nemesis.duration = heal_ - kFaultStart;
  nemesis.interval_mean = Duration::Millis(2000);
  nemesis.flap_period = Duration::Millis(150);
  nemesis.drift_ppm_max = 500;
  nemesis.clock_jump_max = Duration::Seconds(2);
  nemesis.down_max = 2;
  nemesis.link_faults = false;  // loss/duplication/reordering: not injected on real processes
  Rng rng(args_.seed, 5);
  std::vector<sim::FaultAction> schedule = sim::Nemesis::Draw(nemesis, sb::kClusterNodes, rng);
  for (const sim::FaultAction& action : schedule) {
    if (action.kind == sim::FaultKind::kHealAll) continue;  // the heal below does it
    ++faults_;
    At(action.at, [this, action] { ApplyGeneric(action); });
  }
  // Leader-aimed faults, drawn as the lab draws them.
  Duration at = kFaultStart + Duration::Seconds(1);
  // The lab stops drawing 4 s before its heal; a chaos run is shorter, so 2 s (the heal ends any
  // fault still running).
  const Duration end = heal_ - Duration::Seconds(2);
  while (true) {
    at = at + Duration::Millis(500 + static_cast<int64_t>(rng.Uniform(1500)));
    if (at >= end) break;
    const uint32_t kind = static_cast<uint32_t>(rng.Uniform(4));
    const Duration length = sb::kTtl + Duration::Millis(500 + static_cast<int64_t>(rng.Uniform(2500)));
    ++faults_;
    At(at, [this, kind, length] { ApplyAimed(kind, length, 8); });
    at = at + length;
  }
}

void SplitBrainRun::ApplyGeneric(const sim::FaultAction& a) { h_.ApplyNemesisAction(a); }

// The lab's four leader-aimed faults, made real. `kind`: 0 deaf, 1 pause, 2 isolated, 3 held write.
void SplitBrainRun::ApplyAimed(uint32_t kind, Duration length, uint8_t waits_left) {
  const std::vector<uint32_t> acting = ActingLeaders();
  if (acting.empty()) {
    if (waits_left == 0) return;
    h_.executor().ScheduleAfter(Duration::Millis(250), [this, kind, length, waits_left] {
      ApplyAimed(kind, length, static_cast<uint8_t>(waits_left - 1));
    });
    return;
  }
  static constexpr const char* kNames[] = {"leader-deaf", "leader-pause", "leader-isolated",
                                           "leader-write-delayed"};
  const uint32_t leader = acting.back();
  ++leader_faults_;
  sb::NemesisMark mark;
  mark.kind = sb::NemesisMark::Kind::kLeaderFault;
  mark.name = kNames[kind];
  mark.node = leader;
  mark.length = length;
  Mark(std::move(mark));
  h_.Log(std::string("aimed fault ") + kNames[kind] + " on the leader n" + std::to_string(leader) +
         " for " + std::to_string(length.nanos() / 1'000'000) + " ms");
  const int64_t end = h_.Now() + length.nanos();
  const std::string layer = std::string("aimed-") + kNames[kind];
  Cuts cuts = NoCuts();
  switch (kind) {
    case 0:  // the leader hears nobody (not even the store) but can still send
      for (uint32_t i = 0; i < sb::kNodes; ++i) {
        if (i != leader) cuts[i][leader] = true;
      }
      h_.SetCuts(layer, std::move(cuts), "n" + std::to_string(leader) + " deaf");
      At(Duration::Nanos(end), [this, layer] { h_.ClearCuts(layer); });
      break;
    case 1:  // paused longer than the lease TTL: SIGSTOP, then SIGCONT
      h_.Pause(leader);
      At(Duration::Nanos(end), [this, leader] { h_.Resume(leader); });
      break;
    case 2:
    case 3:
      // Isolated from its peers (not from the store). Held write: what it sends to the store is
      // also held in its transport, and released a second after it is reconnected and deposed.
      for (uint32_t i = 0; i < sb::kClusterNodes; ++i) {
        if (i != leader) cuts[i][leader] = cuts[leader][i] = true;
      }
      if (kind == 3) h_.Hold(leader, {sb::kStoreNode});
      h_.SetCuts(layer, std::move(cuts), "n" + std::to_string(leader) + " cut off from its peers");
      At(Duration::Nanos(end), [this, layer] { h_.ClearCuts(layer); });
      if (kind == 3) {
        At(Duration::Nanos(end) + Duration::Seconds(1), [this, leader] { ReleaseHeld(leader); });
      }
      if (kind == 3 && args_.etcd) {
        // On etcd, peers do not grant the lease: cutting the leader off them does not depose it.
        // It is paused instead (after kHeldBeforePause, so that writes are held), past its lease,
        // and resumed once a successor acts (ResumeDeposed).
        At(Duration::Nanos(h_.Now()) + kHeldBeforePause, [this, leader] { h_.Pause(leader); });
        At(Duration::Nanos(end), [this, leader] { ResumeDeposed(leader); });
      }
      break;
    default: break;
  }
}

// Resumes the paused held-write leader once another node acts, re-checked every 250 ms until the
// heal (which resumes every node anyway). etcd extends every lease by its election timeout on each
// raft leader change, so the paused leader's lease can outlive the planned pause; resumed with its
// lease still alive in etcd it was never deposed, and an Acquire by the holder takes the lease
// back under the same token (lease_service.h) — its held writes would then prove nothing.
void SplitBrainRun::ResumeDeposed(uint32_t paused) {
  const std::vector<uint32_t> acting = ActingLeaders();
  const bool successor =
      std::any_of(acting.begin(), acting.end(), [paused](uint32_t n) { return n != paused; });
  if (!h_.paused(paused)) return;  // the heal resumed it already
  if (successor || h_.Now() >= heal_.nanos()) {
    h_.Resume(paused);
    return;
  }
  h_.executor().ScheduleAfter(Duration::Millis(250), [this, paused] { ResumeDeposed(paused); });
}

// Releases what `held` kept. On real infrastructure, only once another node acts (its load raised
// the store's mark), re-checked every 250 ms until the heal releases every hold anyway: on etcd
// the successor can take longer than the fault (an etcd leader change extends every lease by the
// election timeout), and a write released before any successor loaded would prove nothing.
void SplitBrainRun::ReleaseHeld(uint32_t held) {
  const std::vector<uint32_t> acting = ActingLeaders();
  const bool successor =
      std::any_of(acting.begin(), acting.end(), [held](uint32_t n) { return n != held; });
  if (infra_ == nullptr || successor || h_.Now() >= heal_.nanos()) {
    h_.Hold(held, {});
    return;
  }
  h_.executor().ScheduleAfter(Duration::Millis(250), [this, held] { ReleaseHeld(held); });
}

// The checker judges one failover crash (the last); earlier ones (--failovers N) are marked as
// leader faults for it, and their failover times are measured here (FailoverTimes).
void SplitBrainRun::CrashLeader(bool last) {
  const std::vector<uint32_t> acting = ActingLeaders();
  sb::NemesisMark mark;
  if (acting.size() != 1) {
    mark.kind = sb::NemesisMark::Kind::kFailoverSkipped;
    Mark(std::move(mark));
    h_.Log("failover crash skipped: " + std::to_string(acting.size()) + " nodes acting");
    return;
  }
  const uint32_t leader = acting.front();
  mark.kind = last ? sb::NemesisMark::Kind::kFailoverCrash : sb::NemesisMark::Kind::kLeaderFault;
  mark.name = "leader-sigkill";
  mark.node = leader;
  mark.bound = args_.etcd ? kEtcdFailoverBound : kFailoverBound;
  h_.Crash(leader);
  crashes_.emplace_back(h_.Now(), leader);
  Mark(std::move(mark));
  h_.executor().ScheduleAfter(kRestartAfterCrash, [this, leader] { h_.Restart(leader); });
}

// Builds the checker's record: the store's decisions, LeaderSamples from the acting intervals,
// and the harness's marks, in time order.
void SplitBrainRun::CollectRecord(sb::Record* record) const {
  std::vector<std::pair<int64_t, sb::Observation>> obs;
  for (const sb::NemesisMark& m : marks_) obs.emplace_back(m.time_ns, m);
  for (const std::string& line : h_.Observations(sb::kStoreNode)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || j.value("k", "") != "store") continue;
    sb::StoreOp op;
    op.time_ns = j.value("t", int64_t{0});
    op.load = j.value("load", 0) != 0;
    op.accepted = j.value("acc", 0) != 0;
    op.token = j.value("token", uint64_t{0});
    op.node = j.value("node", 0u);
    op.key = j.value("key", 0u);
    op.value = j.value("value", uint64_t{0});
    op.seq = j.value("seq", uint64_t{0});
    obs.emplace_back(op.time_ns, op);
  }
  // Acting intervals per node: [from, to).
  std::vector<std::vector<std::pair<int64_t, int64_t>>> intervals(sb::kClusterNodes);
  for (uint32_t n = 0; n < sb::kClusterNodes; ++n) {
    std::vector<std::pair<int64_t, int64_t>>& out = intervals[n];
    // Events in time order: lines (on/off with a bound) and deaths.
    struct Ev {
      int64_t t;
      int kind;  // 0 line off, 1 line on, 2 death
      int64_t until;
    };
    std::vector<Ev> evs;
    for (const std::string& line : h_.Observations(n)) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || j.value("k", "") != "acting") continue;
      const int64_t until = j.value("until", int64_t{-1});
      evs.push_back(Ev{j.value("t", int64_t{0}), j.value("on", 0) != 0 ? 1 : 0,
                       until < 0 ? kNever : until});
    }
    for (int64_t d : h_.deaths()[n]) evs.push_back(Ev{d, 2, 0});
    std::stable_sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) { return a.t < b.t; });
    std::optional<int64_t> open_from;
    int64_t bound = kNever;
    auto close = [&](int64_t at) {
      if (!open_from) return;
      const int64_t to = std::min(at, bound);
      if (to > *open_from) out.emplace_back(*open_from, to);
      open_from.reset();
    };
    for (const Ev& e : evs) {
      if (e.kind == 1) {
        if (open_from && e.t >= bound) close(e.t);  // the bound passed before this line
        if (!open_from) open_from = e.t;
        bound = e.until;
      } else {
        close(e.t);
      }
    }
    close(end_ns_);
  }
  // Samples at every change of the acting set.
  std::vector<int64_t> instants;
  for (const auto& list : intervals) {
    for (const auto& [from, to] : list) {
      instants.push_back(from);
      instants.push_back(to);
    }
  }
  instants.push_back(0);
  std::sort(instants.begin(), instants.end());
  instants.erase(std::unique(instants.begin(), instants.end()), instants.end());
  std::vector<uint32_t> last;
  bool first = true;
  for (int64_t t : instants) {
    std::vector<uint32_t> acting;
    for (uint32_t n = 0; n < sb::kClusterNodes; ++n) {
      for (const auto& [from, to] : intervals[n]) {
        if (from <= t && t < to) {
          acting.push_back(n);
          break;
        }
      }
    }
    if (first || acting != last) {
      obs.emplace_back(t, sb::LeaderSample{t, acting});
      last = std::move(acting);
      first = false;
    }
  }
  std::stable_sort(obs.begin(), obs.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [t, o] : obs) record->observations.push_back(std::move(o));
}

// Every failover crash's failover time (the checker judges the last one): from the crash to the
// first sample in which another node acts.
std::vector<double> SplitBrainRun::FailoverTimes(const sb::Record& record) const {
  std::vector<double> times;
  for (const auto& [crash_at, crashed] : crashes_) {
    for (const sb::Observation& o : record.observations) {
      const auto* sample = std::get_if<sb::LeaderSample>(&o);
      if (sample == nullptr || sample->time_ns < crash_at) continue;
      const bool other = std::any_of(sample->nodes.begin(), sample->nodes.end(),
                                     [c = crashed](uint32_t n) { return n != c; });
      if (other) {
        times.push_back(static_cast<double>(sample->time_ns - crash_at) / 1e6);
        break;
      }
    }
  }
  return times;
}

}  // namespace

ScenarioRun RunSplitBrain(Harness& harness, const ChaosArgsParsed& args, Infra* infra) {
  SplitBrainRun run(harness, args, infra);
  run.Schedule();
  ScenarioRun out;
  out.completed = harness.RunUntil(run.end_ns());
  if (!out.completed) return out;
  harness.StopAll();
  out.result = run.Finish(&out.history);
  out.failover_ms = run.failover_ms();
  return out;
}

}  // namespace faultline::app::chaos
