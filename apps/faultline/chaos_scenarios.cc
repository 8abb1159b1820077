// The node side of `faultline node`: which scenario node a process hosts, and what it observes.
//
//   split-brain  ids 0-4: a ClusterNode of the variant's design (split_brain_nodes.cc); id 5: the
//                store (split_brain_store.cc), fenced in the hardened variant, keeping its
//                registers in memory as in the lab (the nemesis never faults it).
//   selftest     ids 0-4: the variant's counter node (selftest_nodes.cc).
//
// Observations (chaos_proto.h): a cluster node's acting state and bound, polled every millisecond;
// the store's decisions, as the store records them (stamped with TrueTime).
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "apps/faultline/chaos.h"
#include "apps/faultline/chaos_proto.h"
#include "faultline/core/bytes.h"
#include "faultline/env/node.h"
#include "faultline/env/rpc.h"
#include "src/lab/selftest_nodes.h"
#include "src/lab/split_brain.h"

namespace faultline::app::chaos {
namespace {

namespace sb = lab::split_brain;

// TrueTime for observation stamps in a node process.
class ProcessTrueTime final : public TrueTime {
 public:
  explicit ProcessTrueTime(int64_t t0) : t0_(t0) {}
  int64_t NowNs() const override { return TrueNanos(t0_); }

 private:
  int64_t t0_;
};

class ClusterHosted final : public HostedNode {
 public:
  ClusterHosted(Env& env, const HostContext& ctx, sb::Design design)
      : env_(env), ctx_(ctx), node_(sb::MakeClusterNode(env, design, ctx.incarnation, ctx.metrics)) {}

  void Start() override { node_->Start(); }

  void ClientOp(bool write, uint32_t key, uint64_t value, ClientDone done) override {
    sb::ClientRequest request;
    request.write = write;
    request.key = key;
    request.value = value;
    node_->ClientOp(request, [done](const sb::ClientReply& reply) {
      done(static_cast<ClientOutcome>(reply.outcome), reply.value);
    });
  }

  // Logs a change of ActingLeader() or of its bound (a renewed lease, a new drift).
  void Poll(int64_t now_true, ObsWriter& out) override {
    const bool acting = node_->ActingLeader();
    const std::optional<MonoTime> until = acting ? node_->ActingUntil() : std::nullopt;
    if (acting == acting_ && until == until_ && drift_ == Drift() && logged_) return;
    logged_ = true;
    acting_ = acting;
    until_ = until;
    drift_ = Drift();
    const int64_t until_true = until ? ctx_.to_true(*until) : -1;
    out.Line("{\"k\":\"acting\",\"n\":" + std::to_string(ctx_.id) + ",\"t\":" +
             std::to_string(now_true) + ",\"on\":" + (acting ? "1" : "0") +
             ",\"until\":" + std::to_string(until_true) + "}");
    Bytes body;
    ByteWriter w(&body);
    w.I64(now_true);
    w.U8(acting ? 1 : 0);
    w.I64(until_true);
    env_.transport().Send(NodeId(kHarnessId), kCtlActing, kCtlSchema, body).IgnoreError();
  }

 private:
  int64_t Drift() const { return ctx_.drift ? ctx_.drift() : 0; }

  Env& env_;
  HostContext ctx_;
  std::unique_ptr<sb::ClusterNode> node_;
  bool logged_ = false;
  bool acting_ = false;
  std::optional<MonoTime> until_;
  int64_t drift_ = 0;
};

class StoreHosted final : public HostedNode {
 public:
  StoreHosted(Env& env, const HostContext& ctx, bool fenced)
      : time_(ctx.t0), node_(sb::MakeStoreNode(env, &time_, &record_, fenced, ctx.metrics)) {}

  void Start() override { node_->Start(); }

  // Appends the store's new decisions.
  void Poll(int64_t, ObsWriter& out) override {
    for (; written_ < record_.observations.size(); ++written_) {
      const auto* op = std::get_if<sb::StoreOp>(&record_.observations[written_]);
      if (op == nullptr) continue;
      out.Line("{\"k\":\"store\",\"t\":" + std::to_string(op->time_ns) +
               ",\"load\":" + (op->load ? "1" : "0") + ",\"acc\":" + (op->accepted ? "1" : "0") +
               ",\"token\":" + std::to_string(op->token) + ",\"node\":" +
               std::to_string(op->node) + ",\"key\":" + std::to_string(op->key) +
               ",\"value\":" + std::to_string(op->value) + ",\"seq\":" + std::to_string(op->seq) +
               "}");
    }
  }

 private:
  ProcessTrueTime time_;
  sb::Record record_;
  std::unique_ptr<Node> node_;
  size_t written_ = 0;
};

// selftest: a write is an increment (acknowledged when the node reports it: durable, or at once),
// a read returns the node's value. Nothing to observe: the harness records the increments and the
// final reads.
class CounterHosted final : public HostedNode, private lab::selftest::CounterSink {
 public:
  CounterHosted(Env& env, lab::selftest::CounterDesign design)
      : node_(lab::selftest::MakeCounterNode(env, design, this)) {}

  void Start() override { node_->Start(); }

  void ClientOp(bool write, uint32_t, uint64_t, ClientDone done) override {
    if (!write) {
      done(ClientOutcome::kOk, static_cast<uint64_t>(node_->Value()));
      return;
    }
    const uint64_t op = ++next_op_;
    pending_[op] = std::move(done);
    node_->Increment(op);
  }

  void Poll(int64_t, ObsWriter&) override {}

 private:
  void Complete(uint32_t, uint64_t op_id, bool ok) override {
    auto it = pending_.find(op_id);
    if (it == pending_.end()) return;
    ClientDone done = std::move(it->second);
    pending_.erase(it);
    done(ok ? ClientOutcome::kOk : ClientOutcome::kFail, std::nullopt);
  }

  std::map<uint64_t, ClientDone> pending_;
  uint64_t next_op_ = 0;
  std::unique_ptr<lab::selftest::CounterNode> node_;  // last: destroyed first
};

std::unique_ptr<HostedNode> MakeSelftestHosted(const std::string& variant, Env& env,
                                               const HostContext& ctx, std::string* error) {
  using lab::selftest::CounterDesign;
  if (ctx.id >= lab::selftest::kNodes) {
    *error = "selftest has nodes 0-4, not " + std::to_string(ctx.id);
    return nullptr;
  }
  if (variant == "naive") return std::make_unique<CounterHosted>(env, CounterDesign::kNaive);
  if (variant == "gossip") return std::make_unique<CounterHosted>(env, CounterDesign::kGossip);
  if (variant == "hardened") return std::make_unique<CounterHosted>(env, CounterDesign::kHardened);
  *error = "unknown variant '" + variant + "' of selftest";
  return nullptr;
}

}  // namespace

std::unique_ptr<HostedNode> MakeHostedNode(const std::string& scenario, const std::string& variant,
                                           Env& env, const HostContext& ctx, std::string* error) {
  if (scenario == "split-brain") {
    if (variant != "naive" && variant != "lease-only" && variant != "hardened") {
      *error = "unknown variant '" + variant + "' of split-brain";
      return nullptr;
    }
    const sb::Design design = variant == "naive"        ? sb::Design::kNaive
                              : variant == "lease-only" ? sb::Design::kLeaseOnly
                                                        : sb::Design::kHardened;
    if (ctx.id < sb::kClusterNodes) return std::make_unique<ClusterHosted>(env, ctx, design);
    if (ctx.id == sb::kStoreNode) {
      return std::make_unique<StoreHosted>(env, ctx, design == sb::Design::kHardened);
    }
    *error = "split-brain has nodes 0-5, not " + std::to_string(ctx.id);
    return nullptr;
  }
  if (scenario == "selftest") return MakeSelftestHosted(variant, env, ctx, error);
  *error = "faultline node hosts split-brain and selftest nodes, not '" + scenario + "'";
  return nullptr;
}

}  // namespace faultline::app::chaos
