// Internal to the `sharding` scenario (sharding*.cc): the topology, the wire protocol between its
// nodes, the typed observations its nodes and clients record, and the checker's entry point.
//
// Nodes: n0, n1 are the shard servers the run starts with, n2 a spare shard server (the shard that
// resharding adds); n3 the directory, which also runs the balancer and the mover; n4..n7 clients.
// Shard i lives on node i. Every shard server keeps its data in a LogStore on its own simulated
// disk: one record per write, "r/<tenant>/<key>/<write id>" -> "<applications>:<change seq>", so
// the final stores say how many times each write was applied. The change seq (per server,
// increasing, recovered from the records after a restart) is the change log a mover catches up
// from.
//
// The record (ShardingObservations) is what the checker reads; it never learns the variant.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/env.h"
#include "faultline/env/node.h"

namespace faultline::lab {
struct RunResult;  // faultline/lab/scenario.h: what a checker fills
}  // namespace faultline::lab

namespace faultline::lab::sharding {

// ---- topology and workload ----

inline constexpr uint32_t kInitialShards = 2;  // shards 0, 1
inline constexpr uint32_t kShards = 3;         // shard 2 is added by resharding
inline constexpr uint32_t kDirectoryNode = 3;
inline constexpr uint32_t kFirstClientNode = 4;
inline constexpr uint32_t kClientNodes = 4;
inline constexpr uint32_t kNodes = kFirstClientNode + kClientNodes;

inline constexpr uint32_t kTenants = 1000;        // "t0000" .. "t0999"
inline constexpr uint32_t kKeysPerTenant = 1000;  // "k0001" .. "k1000", Zipf(1.2) ranks
inline constexpr uint32_t kHashRanges = 64;       // initial hash ranges, alternating shards 0, 1
inline constexpr int64_t kOpsPerSecond = 300;     // all clients together, open loop
inline constexpr uint32_t kHotPercent = 30;       // the hot tenant's share of operations
inline constexpr uint32_t kWritePercent = 25;  // a read-mostly service

inline constexpr Duration kHotStart = Duration::Seconds(2);  // the hot tenant turns hot
inline constexpr Duration kDetectBound = Duration::Seconds(10);
inline constexpr Duration kIsolateBound = Duration::Seconds(60);
inline constexpr Duration kNaiveReshardAt = Duration::Seconds(12);
inline constexpr Duration kFaultStart = Duration::Seconds(3);
inline constexpr Duration kFaultDuration = Duration::Seconds(37);  // heal at 40 s
// max/mean is measured over the kLoadWindow that follows the isolation deadline (hot start +
// kIsolateBound): "afterwards" in the sense, the same instants for every design and seed.
inline constexpr Duration kLoadWindow = Duration::Seconds(20);
inline constexpr Duration kWorkloadEnd = kHotStart + kIsolateBound + kLoadWindow;  // 82 s
inline constexpr Duration kRunEnd = kWorkloadEnd + Duration::Seconds(6);
inline constexpr int64_t kImbalanceMaxPermille = 1100;  // max/mean <= 1.10

std::string TenantName(uint32_t t);
std::string KeyName(uint32_t k);  // k >= 1
// Zipf(1.2) over 1 .. kKeysPerTenant from a uniform draw in [0, ZipfTotal()).
uint32_t ZipfRank(uint64_t uniform);
uint64_t ZipfTotal();

// ---- wire protocol (one Rpc per node; replies start with a ReplyCode byte) ----

enum class ReplyCode : uint8_t {
  kOk = 0,
  kEpochNotMatch = 1,  // followed by the server's encoded ShardMap
  kFenced = 2,         // the tenant is being moved off this shard: wait, refresh, retry
  kUnavailable = 3,    // no map yet, or the request carried a newer epoch (server refreshing)
};

inline constexpr uint16_t kMethodWrite = 70;     // tenant, key, u64 wid, route -> code
inline constexpr uint16_t kMethodRead = 71;      // tenant, key, route -> code, u32 records
inline constexpr uint16_t kMethodPull = 72;      // selector, u64 after -> u64 max seq, records
inline constexpr uint16_t kMethodPullNew = 73;   // u32 new n, u32 target -> records (naive)
inline constexpr uint16_t kMethodIngest = 74;    // records -> empty
inline constexpr uint16_t kMethodFence = 75;     // selector, u64 epoch -> u64 max seq
inline constexpr uint16_t kMethodUnfence = 76;   // selector, u64 epoch -> empty
inline constexpr uint16_t kMethodDigest = 77;    // selector -> u64 count, u64 digest
inline constexpr uint16_t kMethodStats = 78;     // -> per range/override: u64 id, u64 qps,
                                                 //    u64 served, u8 decision, bytes key
inline constexpr uint8_t kFindingBit = 0x80;    // in a Stats decision byte
inline constexpr uint16_t kMethodInstallMap = 79;  // encoded map -> empty
inline constexpr uint16_t kMethodGetMap = 80;    // -> encoded map (hardened directory)
inline constexpr uint16_t kMethodGetConfig = 81;  // -> u32 shard count (naive directory)

// A route as clients send it: the shard map's Route, or for the naive design only the shard.
struct WireRoute {
  uint32_t shard = 0;
  uint64_t range = 0;
  uint64_t epoch = 0;
  bool by_override = false;
};

// What a move carries: one tenant, or the tenants whose routing key (HashRoutingKey) lies in
// [begin, end) ("" end: unbounded) except those in `excluded` (tenants with an override, placed
// apart from their range).
struct Selector {
  std::string tenant;
  std::string begin;
  std::string end;
  std::vector<std::string> excluded;
  bool Contains(const std::string& t) const;
};

// One stored write as a mover copies it.
struct StoredWrite {
  std::string tenant;
  std::string key;
  uint64_t wid = 0;
  uint32_t count = 0;  // applications
  uint64_t seq = 0;    // the holder's change seq
};

enum class Design : uint8_t { kNaive, kHardened };

// ---- observations ----

struct ClientOp {
  uint32_t node = 0;
  bool write = false;
  std::string tenant;
  std::string key;
  uint64_t wid = 0;  // writes
  int64_t invoke_ns = 0;
  int64_t end_ns = 0;  // 0 while pending
  bool ok = false;     // answered ok
  bool failed = false;  // the client gave up: a client-visible error
  uint32_t attempts = 0;
  uint32_t redirects = 0;  // EpochNotMatch answers
  uint32_t buffered = 0;   // kFenced answers waited out
};

// A shard server applied a write or served a read.
struct Served {
  uint64_t order = 0;  // ShardingObservations::Next(): the order of events at one instant
  int64_t time_ns = 0;
  uint32_t shard = 0;
  bool write = false;
  bool applied = false;  // writes: the record was changed (false: a retry found it applied)
  bool by_override = false;  // the request was routed by a tenant override
  std::string tenant;
  uint64_t wid = 0;
};

// A shard server installed (fence) or removed (unfence) a write fence on a tenant, or on the
// hash range [begin, end) (tenant empty): a range fence covers the requests routed by range.
struct FenceEvent {
  uint64_t order = 0;
  int64_t time_ns = 0;
  uint32_t shard = 0;
  std::string tenant;
  std::string begin;
  std::string end;
  uint64_t epoch = 0;
  bool fenced = true;
};

// Ownership of `tenant` passed from shard `from` to shard `to` in the routing clients are told
// to use (a new map in the directory, or a new client-side shard count published).
struct Switch {
  uint64_t order = 0;
  int64_t time_ns = 0;
  std::string tenant;
  uint32_t from = 0;
  uint32_t to = 0;
  uint32_t group = 1;  // tenants whose owner changed in the same routing change
};

// The balancer found a hot tenant on `shard`.
struct Detection {
  int64_t time_ns = 0;
  uint32_t shard = 0;
  std::string tenant;
};

// One fenced cutover: writes to the tenant refused from `fence_ns` until `end_ns`.
struct Cutover {
  int64_t fence_ns = 0;
  int64_t end_ns = 0;
  bool switched = false;  // false: reversed (unfenced) to retry later
};

// What the run's final stores held, and where the final routing sends each tenant.
struct FinalRecord {
  uint32_t shard = 0;
  std::string tenant;
  std::string key;
  uint64_t wid = 0;
  uint32_t count = 0;
};

struct ShardingCounters {
  int64_t crashes_aimed = 0;
  int64_t faults = 0;
  int64_t splits = 0;
  int64_t hot_key_reports = 0;  // hot-key reports on a tenant already isolated (not acted on)
  int64_t moves_started = 0;     // isolations and range moves (naive: the resharding)
  int64_t range_moves = 0;       // range moves completed by the balancer
};

struct ShardingObservations {
  std::string hot_tenant;
  int64_t hot_start_ns = 0;
  int64_t workload_end_ns = 0;
  std::vector<ClientOp> ops;
  std::vector<Served> served;
  std::vector<FenceEvent> fences;
  std::vector<Switch> switches;
  std::vector<Detection> detections;
  std::vector<Cutover> cutovers;
  std::map<std::string, uint32_t> final_owner;  // every tenant -> its shard in the final routing
  std::vector<FinalRecord> final_records;
  ShardingCounters counters;
  uint64_t last_order = 0;
  // Served, FenceEvent and Switch take their `order` from here, so events recorded at the same
  // simulated instant keep the order in which they happened.
  uint64_t Next() { return ++last_order; }
};

// The checker (sharding_checker.cc); see the file comment there for each violation.
void CheckSharding(const ShardingObservations& obs, RunResult* result);

// ---- nodes (sharding_shard.cc, sharding_directory.cc, sharding_client.cc) ----

// Aimed faults the mover asks for at each step of a move.
class MoveFaults {
 public:
  virtual ~MoveFaults() = default;
  // May crash `source` or `target` for a moment (a world event, after the caller returns).
  virtual void AtMoveStep(uint32_t source, uint32_t target) = 0;
};

class ShardNode : public Node {
 public:
  // Every record the store holds, for the final check (world-level, after the run).
  virtual std::vector<StoredWrite> Dump() = 0;
};
std::unique_ptr<ShardNode> MakeShardNode(Env& env, Design design, ShardingObservations* obs,
                                         const TrueTime* true_time);

class DirectoryNode : public Node {
 public:
  // The shard the final routing names for `tenant`.
  virtual uint32_t OwnerOf(const std::string& tenant) const = 0;
};
std::unique_ptr<DirectoryNode> MakeDirectoryNode(Env& env, Design design,
                                                 ShardingObservations* obs, const TrueTime* true_time,
                                                 MoveFaults* faults);

std::unique_ptr<Node> MakeClientNode(Env& env, Design design, ShardingObservations* obs,
                                          const TrueTime* true_time, uint32_t hot_tenant);

// Encoding helpers shared by the nodes (sharding_shard.cc). Decoders bound every length.
void PutRoute(ByteWriter& w, const WireRoute& r);
Status GetRoute(ByteReader& r, WireRoute* out);
void PutWrites(ByteWriter& w, const std::vector<StoredWrite>& writes);
void PutSelector(ByteWriter& w, const Selector& s);
Status GetSelector(ByteReader& r, Selector* out);
// The hash routing key of a tenant (shard::HashRoutingKey).
std::string RoutingKey(const std::string& tenant);
Status GetWrites(ByteReader& r, std::vector<StoredWrite>* out);
inline constexpr size_t kNameBytesMax = 64;      // tenant and key names on the wire
inline constexpr size_t kWritesPerMessageMax = 200000;

}  // namespace faultline::lab::sharding
