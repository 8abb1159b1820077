// The node side of `faultline node`: which scenario node a process hosts, and what it observes.
//
//   split-brain  ids 0-4: a ClusterNode of the variant's design (split_brain_nodes.cc), electing
//                through PaxosLease among themselves or (--lease etcd) through EtcdLeaseService;
//                id 5: the store, fenced in the hardened variant, keeping its registers in memory
//                as in the lab (split_brain_store.cc) or (--store-uri) in a PostgreSQL table, every
//                decision one transaction of the database (split_brain_table_store.cc).
//
// A lease node's lease service is wrapped in MeteredLease, which times every call and logs it:
//   {"k":"lease","n":N,"t":T,"op":"acquire|keepalive|revoke|read","ok":0|1,"ns":LATENCY}
// (T = TrueTime of the reply; the harness computes the acquire latency and the lease operation
// rate from these lines).
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
#include "faultline/adapters/etcd_lease.h"
#include "faultline/adapters/postgres_store.h"
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

}  // namespace

// Forwards every call to `inner` and times it on TrueTime; the lines wait in `lines` for Poll.
// GCC 12 reports a false -Wfree-nonheap-object where it inlines the destruction of a coroutine
// frame holding a Result (the pointer it frees is the one operator new returned).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
class MeteredLease final : public lease::LeaseService {
 public:
  MeteredLease(lease::LeaseService& inner, const HostContext& ctx) : inner_(inner), ctx_(ctx) {}

  Task<Result<lease::LeaseGrant>> Acquire(std::string name, Duration ttl) override {
    return Timed(inner_.Acquire(std::move(name), ttl), "acquire");
  }
  Task<Result<lease::LeaseGrant>> KeepAlive(lease::LeaseGrant grant) override {
    return Timed(inner_.KeepAlive(std::move(grant)), "keepalive");
  }
  Task<Status> Revoke(lease::LeaseGrant grant) override {
    return Timed(inner_.Revoke(std::move(grant)), "revoke");
  }
  Task<Result<lease::LeaseInfo>> Read(std::string name) override {
    return Timed(inner_.Read(std::move(name)), "read");
  }
  Task<Status> WaitReleased(std::string name, Duration max, CancelToken cancel) override {
    return inner_.WaitReleased(std::move(name), max, std::move(cancel));
  }

  std::vector<std::string>& lines() { return lines_; }

 private:
  // Tasks are lazy: `call` starts when awaited here, so the time measured is the call's own.
  template <typename T>
  Task<T> Timed(Task<T> call, const char* op) {
    const int64_t from = TrueNanos(ctx_.t0);
    co_return Noted(co_await std::move(call), op, from);
  }
  template <typename T>
  T Noted(T result, const char* op, int64_t from) {
    Note(op, result.ok(), from);
    return result;
  }

  void Note(const char* op, bool ok, int64_t from) {
    const int64_t now = TrueNanos(ctx_.t0);
    lines_.push_back("{\"k\":\"lease\",\"n\":" + std::to_string(ctx_.id) + ",\"t\":" +
                     std::to_string(now) + ",\"op\":\"" + op + "\",\"ok\":" + (ok ? "1" : "0") +
                     ",\"ns\":" + std::to_string(now - from) + "}");
  }

  lease::LeaseService& inner_;
  HostContext ctx_;
  std::vector<std::string> lines_;
};

#pragma GCC diagnostic pop

namespace {

class ClusterHosted final : public HostedNode {
 public:
  // `service`: the external lease service (etcd), or null for PaxosLease among the nodes.
  ClusterHosted(Env& env, const HostContext& ctx, sb::Design design,
                std::unique_ptr<lease::LeaseService> service)
      : env_(env), ctx_(ctx), service_(std::move(service)) {
    node_ = sb::MakeClusterNode(env, design, ctx.incarnation, service_.get(),
                                [this](lease::LeaseService& inner) -> lease::LeaseService& {
                                  meter_ = std::make_unique<MeteredLease>(inner, ctx_);
                                  return *meter_;
                                },
                                ctx.metrics);
  }
  ~ClusterHosted() override {
    node_.reset();  // before the services it elects through
    meter_.reset();
    service_.reset();
  }

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
    if (meter_ != nullptr) {
      for (const std::string& line : meter_->lines()) out.Line(line);
      meter_->lines().clear();
    }
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
  std::unique_ptr<lease::LeaseService> service_;
  std::unique_ptr<MeteredLease> meter_;
  std::unique_ptr<sb::ClusterNode> node_;
  bool logged_ = false;
  bool acting_ = false;
  std::optional<MonoTime> until_;
  int64_t drift_ = 0;
};

class StoreHosted final : public HostedNode {
 public:
  // `table`: the store's PostgreSQL table, or null for the lab's in-memory registers.
  StoreHosted(Env& env, const HostContext& ctx, bool fenced, std::unique_ptr<LocalStore> table)
      : time_(ctx.t0), table_(std::move(table)) {
    node_ = table_ != nullptr ? sb::MakeTableStoreNode(env, &time_, &record_, fenced, *table_)
                              : sb::MakeStoreNode(env, &time_, &record_, fenced, ctx.metrics);
  }
  ~StoreHosted() override { node_.reset(); }

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
  std::unique_ptr<LocalStore> table_;
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

// The nodes' etcd client: the lease and its renewals' requests give up on a silent member after
// kEtcdRequestTimeout and try the next endpoint, so a renewal (every TTL / 3) survives a paused
// etcd member. ρ and margin as PaxosLease's in the lab (split_brain_nodes.cc: 1000 ppm, 50 ms).
constexpr Duration kEtcdRequestTimeout = Duration::Millis(500);

std::unique_ptr<lease::LeaseService> OpenEtcd(Env& env, const HostContext& ctx,
                                              std::string* error) {
  adapters::EtcdLeaseOptions options;
  size_t pos = 0;
  while (pos <= ctx.etcd_endpoints.size()) {
    const size_t comma = std::min(ctx.etcd_endpoints.find(',', pos), ctx.etcd_endpoints.size());
    options.endpoints.push_back(ctx.etcd_endpoints.substr(pos, comma - pos));
    pos = comma + 1;
  }
  options.request_timeout = kEtcdRequestTimeout;
  options.connect_timeout = Duration::Millis(100);
  options.drift_ppm_max = 1000;
  options.margin = Duration::Millis(50);
  options.key_prefix = "/faultline/split-brain/";
  options.post_to_loop = ctx.post;
  auto opened = adapters::EtcdLeaseService::Open(env, NodeId(ctx.id), options);
  if (!opened.ok()) {
    *error = "--etcd: " + opened.status().ToString();
    return nullptr;
  }
  return std::move(opened).value();
}

std::unique_ptr<LocalStore> OpenTable(const std::string& uri, std::string* error) {
  PostgresStoreOptions pg;
  pg.conninfo = uri;  // a libpq conninfo (keyword=value) or postgresql:// URI
  pg.table = "split_brain";
  pg.connections_max = 2;
  pg.connect_timeout_s = 2;
  pg.lock_timeout_ms = 1000;
  auto opened = PostgresStore::Open(pg);
  if (!opened.ok()) {
    *error = "--store-uri: " + opened.status().ToString();
    return nullptr;
  }
  return std::move(opened).value();
}

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
    if (ctx.id < sb::kClusterNodes) {
      std::unique_ptr<lease::LeaseService> service;
      if (ctx.lease == "etcd" && design != sb::Design::kNaive) {
        service = OpenEtcd(env, ctx, error);
        if (service == nullptr) return nullptr;
      }
      return std::make_unique<ClusterHosted>(env, ctx, design, std::move(service));
    }
    if (ctx.id == sb::kStoreNode) {
      std::unique_ptr<LocalStore> table;
      if (!ctx.store_uri.empty()) {
        table = OpenTable(ctx.store_uri, error);
        if (table == nullptr) return nullptr;
      }
      return std::make_unique<StoreHosted>(env, ctx, design == sb::Design::kHardened,
                                           std::move(table));
    }
    *error = "split-brain has nodes 0-5, not " + std::to_string(ctx.id);
    return nullptr;
  }
  if (scenario == "selftest") return MakeSelftestHosted(variant, env, ctx, error);
  *error = "faultline node hosts split-brain and selftest nodes, not '" + scenario + "'";
  return nullptr;
}

}  // namespace faultline::app::chaos
