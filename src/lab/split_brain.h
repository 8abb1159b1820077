// Internal to the `split-brain` scenario (split_brain*.cc): what the run records for its checker,
// and the pieces the scenario's files share.
//
// The scenario records typed observations, each at the simulated instant it happened, in the
// order they happened: the store's decisions, the probe's changes of who could act as leader, and
// the nemesis' markers. The clients' reads and writes go to the world's check::History instead (the
// Jepsen-shaped history: the linearizability checker reads it, and `replay --history` exports it).
// The checker is a function of these two records alone.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "faultline/core/observer.h"
#include "faultline/core/time.h"
#include "faultline/env/env.h"
#include "faultline/check/history.h"
#include "faultline/env/node.h"
#include "faultline/env/rpc.h"

namespace faultline {
class LocalStore;  // faultline/store/local_store.h
}  // namespace faultline
namespace faultline::lease {
class LeaseService;  // faultline/lease/lease_service.h
}  // namespace faultline::lease
namespace faultline::lab {
struct RunResult;  // faultline/lab/scenario.h: what a checker fills
}  // namespace faultline::lab

namespace faultline::lab::split_brain {

// ---- the record ----

// The store's answer to a write (a leader writing through) or a load (a new leader raising the
// store's token, when fenced, and reading everything).
struct StoreOp {
  int64_t time_ns = 0;
  bool load = false;
  bool accepted = false;  // false: refused by the fence (a newer token had been seen)
  uint64_t token = 0;
  uint32_t node = 0;  // the sender
  uint32_t key = 0;   // writes only
  uint64_t value = 0;
  uint64_t seq = 0;  // accepted writes: the store's order of accepted writes
};

// The probe saw the set of nodes able to act as leader change (sampled every millisecond).
struct LeaderSample {
  int64_t time_ns = 0;
  std::vector<uint32_t> nodes;  // ascending
};

// A nemesis marker.
struct NemesisMark {
  enum class Kind : uint8_t {
    kLeaderFault,     // a leader-aimed fault hit `node` for `length` (`name` says which)
    kHeal,            // every fault ended; a leader is due within `bound`
    kFailoverCrash,   // the only leader, `node`, was crashed; another is due within `bound`
    kFailoverSkipped  // no single leader to crash
  };
  int64_t time_ns = 0;
  Kind kind = Kind::kHeal;
  std::string name;
  uint32_t node = 0;
  Duration length;
  Duration bound;
};

using Observation = std::variant<StoreOp, LeaderSample, NemesisMark>;

struct Record {
  std::vector<Observation> observations;  // in the order they happened
};

// The checker (split_brain_checker.cc). Adds violations stale-write-accepted, two-leaders,
// no-leader-after-heal, no-failover, failover-over-bound, non-linearizable,
// linearizability-unknown and malformed-client-history, each with the first instance in words,
// and the scenario's metrics. `clients` holds only the clients' f="read"/"write" ops (kv model,
// values {"key","value"}).
void Check(const Record& record, const check::History& clients, RunResult* result);

// ---- the pieces of the run (split_brain_store.cc, split_brain_nodes.cc) ----

inline constexpr uint32_t kClusterNodes = 5;
inline constexpr uint32_t kStoreNode = 5;
inline constexpr uint32_t kNodes = 6;
inline constexpr uint32_t kKeys = 3;

inline constexpr Duration kTtl = Duration::Seconds(2);
inline constexpr Duration kRetryMin = Duration::Millis(250);  // candidates retry in [T, 2T)
inline constexpr Duration kHeartbeat = Duration::Millis(100);
inline constexpr Duration kStoreTimeout = Duration::Millis(500);

inline constexpr uint16_t kMethodStoreWrite = 1;
inline constexpr uint16_t kMethodStoreLoad = 2;

// One register of the store.
struct Cell {
  uint64_t value = 0;
  uint64_t seq = 0;  // the store's order of accepted writes
};

enum class Design : uint8_t { kNaive, kLeaseOnly, kHardened };

struct ClientRequest {
  bool write = false;
  uint32_t key = 0;
  uint64_t value = 0;
};

enum class Outcome : uint8_t { kOk, kFail, kInfo };

struct ClientReply {
  Outcome outcome = Outcome::kFail;
  std::optional<uint64_t> value;  // a read's result (nullopt: never written)
};

using ClientCallback = std::function<void(const ClientReply&)>;

class ClusterNode : public Node {
 public:
  // Runs on this node's executor; `done` is called at most once (never if the node crashes).
  virtual void ClientOp(const ClientRequest& request, ClientCallback done) = 0;
  // True iff this node would serve a client now: believes it leads (naive) or holds a valid lease
  // and has loaded the store (lease designs). Read by the world-level probe.
  virtual bool ActingLeader() const = 0;
  // While ActingLeader(): the instant on this node's monotonic clock at which it stops acting
  // unless something renews it (a lease design's self-fencing deadline), or nullopt when nothing
  // bounds it (naive: it acts until it hears a higher term). nullopt when not acting. Lets a
  // harness that cannot sample a paused process know when its acting interval ended.
  virtual std::optional<MonoTime> ActingUntil() const { return std::nullopt; }
};

// The store's wire replies and record entries, shared by both store nodes (split_brain_store.cc):
// a write's answer (the store's sequence number of the accepted write), a load's answer (every
// register: count, then key, value, seq each), and a StoreOp stamped now on `true_time` for
// `from`'s request carrying `token`.
Bytes EncodeWriteReply(uint64_t seq);
Bytes EncodeLoadReply(const std::map<uint32_t, Cell>& cells);
StoreOp StampStoreOp(const TrueTime& true_time, NodeId from, uint64_t token);

// The shared store (node kStoreNode; split_brain_store.cc): records every decision in `record` at the world's time.
// Fenced: refuses tokens below the highest it has seen.
// `metrics` (nullptr: none) receives the fence's rejections as instance "store".
std::unique_ptr<Node> MakeStoreNode(Env& env, const TrueTime* true_time, Record* record, bool fenced,
                                    Observer* metrics = nullptr);
// The same store over a LocalStore table (split_brain_table_store.cc), for a real database:
// each decision is one serializable transaction of `table`, fenced with FencedStore::CheckAndRaise
// in the write's own transaction. `table` must outlive the node.
std::unique_ptr<Node> MakeTableStoreNode(Env& env, const TrueTime* true_time, Record* record,
                                         bool fenced, LocalStore& table);
// A cluster node of `design` (split_brain_nodes.cc); `incarnation` is the world's (0 on the first
// boot). The lease designs elect through PaxosLease among nodes 0-4 (each node an acceptor), or,
// when `service` is given, through that LeaseService (e.g. etcd), which must outlive the node.
// `wrap`, when set, is handed the service and returns the one the elector uses (a host's
// decorator that times the calls, say); what it returns must outlive the node. `metrics`
// (nullptr: none) receives a lease design's elector ("elector") and failure detector
// ("failure_detector") events.
using LeaseWrap = std::function<lease::LeaseService&(lease::LeaseService& inner)>;
std::unique_ptr<ClusterNode> MakeClusterNode(Env& env, Design design, uint32_t incarnation,
                                             lease::LeaseService* service = nullptr,
                                             LeaseWrap wrap = {}, Observer* metrics = nullptr);

}  // namespace faultline::lab::split_brain
