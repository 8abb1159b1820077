// File: faultline/lease/quorum_register.h
//
// A linearizable key-value register replicated over N storage nodes with quorums, after Attiya,
// Bar-Noy and Dolev (ABD, 1995) in its multi-writer form, plus fencing at the replicas so that a
// superseded lease holder can never complete a write (Kleppmann's argument, see fence.h).
//
// Every stored value carries a Version (token, seq, writer), ordered lexicographically. The token
// is the writer's fencing token (or an HLC timestamp): everything a newer holder writes dominates
// everything an older holder wrote, whatever their sequence numbers.
//
//   Replica (one per storage node), per key: the largest (version, value) it has stored; per
//   replica: the fence, the highest token it has seen in a Store or a Fence.
//     Query(key)                 -> (version, value, fence). Version zero = never written.
//     Store(key, version, value) -> keeps the larger version. A Store whose version.token is below
//                                   the fence gets kFencedOut and stores nothing, except a read's
//                                   write-back (the `repair` flag), which only propagates a value
//                                   some replica already holds and is exempt from the fence check.
//     Fence(token)               -> raises the fence to `token`; kFencedOut if token < fence.
//
//   Client (any node), each phase sent to every replica in parallel, waiting for its quorum:
//     Read(key):   Query, needing R answers; take the largest version; if fewer than W of the
//                  answers already hold it, write it back (repair Store) to the others until W
//                  replicas are known to hold it; return its value (nullopt: never written).
//     Write(key, value, token):  Query, needing R; v = largest version seen. If token is below
//                  v.token or below a fence some replica reported, kFencedOut (nothing stored).
//                  Otherwise Store Version{token, max(v.seq, last seq this client issued) + 1,
//                  self} to all, needing W acks.
//     Fence(token):  Fence to all, needing a majority. A new lease holder does this before it
//                  reads or writes: from then on no write with an older token can complete,
//                  because every write quorum (2W > N) intersects the fenced majority.
//
// Linearizability needs W + R > N (every read quorum meets every completed write) and 2W > N
// (every write quorum meets every other, so fencing works); Validate() enforces both unless
// `allow_weak_quorums` is set, which exists only to demonstrate the anomalies it permits.
//
// Outcomes of every operation: ok; kFencedOut when a replica (or a query answer) showed a fence
// above the caller's token; kUnavailable when no quorum answered within round_timeout;
// kInvalidArgument for keys or values over the limits. A failed Write is INDETERMINATE: its
// Store may have reached some replicas, and a later read may return it (and make it durable by
// writing it back). Histories must record a failed write as `info`, never `fail`.
//
// Persistence: replica state lives in memory only. A replica that crashes and restarts comes back
// empty and unfenced (amnesia), which can shrink a completed write below its quorum and let an
// old holder's write pass the fence. A production replica must persist each Store and Fence (with
// an fsync, e.g. through a LocalStore / FencedStore) before replying; this one does not, so only
// crash-stop faults of replicas are tolerated (at most N - max(W, R) of them).
//
// Writer ids: a Version's writer is the client's env.self(). At most one live client instance per
// node; a client restarted on the same node must not run while writes of its previous incarnation
// may still be in flight (two instances could issue the same version with different values).
//
// Thread safety: single-threaded, on the node's executor. Lifetimes: the Rpc must outlive the
// replica and the client; the client must outlive every operation awaiting it. An operation may
// return before all its calls have: those stragglers are cancelled when the operation's phase
// ends, and a crash destroys them with the node's coroutines.
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "faultline/core/ids.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/env.h"
#include "faultline/env/rpc.h"
#include "faultline/env/task.h"

namespace faultline::lease {

struct QuorumOptions {
  // Every replica node. Non-empty, no duplicates, at most kQuorumReplicasMax.
  std::vector<NodeId> replicas;
  // Acks a Write (and a read's write-back) needs; 0 = a majority of replicas.
  uint32_t write_quorum = 0;
  // Answers a Read's (and a Write's) query phase needs; 0 = a majority of replicas.
  uint32_t read_quorum = 0;
  // Lifts the W + R > N and 2W > N checks. Only for demonstrating what goes wrong without them.
  bool allow_weak_quorums = false;
  // Each phase waits at most this long for its quorum. > 0.
  Duration round_timeout = Duration::Millis(250);
  // Rpc methods method_base .. method_base + 2 are taken by the replica.
  uint16_t method_base = 0x5100;
  // Limits on what a client sends and a replica accepts. > 0. Keep key + value well under the
  // Rpc's body_bytes_max.
  uint32_t key_bytes_max = 256;
  uint32_t value_bytes_max = 64 * 1024;
  // Distinct keys one replica stores; a Store of a new key beyond it gets kResourceExhausted.
  uint32_t keys_max = 100'000;

  Status Validate() const;
  // The quorums after applying the 0 = majority default.
  uint32_t majority() const { return static_cast<uint32_t>(replicas.size() / 2 + 1); }
  uint32_t effective_write_quorum() const { return write_quorum == 0 ? majority() : write_quorum; }
  uint32_t effective_read_quorum() const { return read_quorum == 0 ? majority() : read_quorum; }
};

inline constexpr uint32_t kQuorumReplicasMax = 64;

// Method offsets from QuorumOptions::method_base.
inline constexpr uint16_t kQuorumQueryMethod = 0;
inline constexpr uint16_t kQuorumStoreMethod = 1;
inline constexpr uint16_t kQuorumFenceMethod = 2;

// A stored value's version. Lexicographic: token, then seq, then writer. All zero = never written.
struct Version {
  uint64_t token = 0;
  uint64_t seq = 0;
  uint32_t writer = 0;
  bool is_zero() const { return token == 0 && seq == 0 && writer == 0; }
  friend auto operator<=>(const Version&, const Version&) = default;
};

struct VersionedValue {
  Version version;
  std::string value;
  friend bool operator==(const VersionedValue&, const VersionedValue&) = default;
};

struct QuorumReplicaStats {
  uint64_t queries = 0;
  uint64_t stores = 0;      // Store requests accepted (whether or not they replaced the value)
  uint64_t replaced = 0;    // of those, the ones that installed a larger version
  uint64_t fenced_out = 0;  // Store or Fence requests rejected with kFencedOut
  uint64_t fences = 0;      // Fence requests accepted
  uint64_t malformed = 0;   // requests rejected with kInvalidArgument
};

class QuorumReplica {
 public:
  // Registers the replica's three methods on `rpc`. kInvalidArgument for invalid options.
  static Result<std::unique_ptr<QuorumReplica>> Create(Env& env, Rpc& rpc,
                                                       const QuorumOptions& options);
  // After destruction the registered handlers answer kUnavailable (Rpc cannot unregister).
  ~QuorumReplica();
  QuorumReplica(const QuorumReplica&) = delete;
  QuorumReplica& operator=(const QuorumReplica&) = delete;

  // The stored (version, value) of `key`, if any; for tests and tooling.
  std::optional<VersionedValue> Get(const std::string& key) const;
  FencingToken fence() const;
  const QuorumReplicaStats& stats() const;

 private:
  struct State;
  explicit QuorumReplica(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;  // shared with the Rpc handlers
};

struct QuorumClientStats {
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t fences = 0;
  uint64_t repairs = 0;      // reads that had to write their value back
  uint64_t unavailable = 0;  // operations that ended with kUnavailable
  uint64_t fenced_out = 0;   // operations that ended with kFencedOut
};

class QuorumRegisterClient {
 public:
  // kInvalidArgument for invalid options.
  static Result<std::unique_ptr<QuorumRegisterClient>> Create(Env& env, Rpc& rpc,
                                                              const QuorumOptions& options);
  QuorumRegisterClient(const QuorumRegisterClient&) = delete;
  QuorumRegisterClient& operator=(const QuorumRegisterClient&) = delete;

  // The value of `key` (nullopt: never written). kUnavailable without a read quorum (or, when a
  // write-back is needed, without a write quorum); kInvalidArgument for an over-long key.
  Task<Result<std::optional<std::string>>> Read(std::string key);
  // Stores `value` under `key` with a version carrying `token`. See the file comment: a non-ok
  // outcome is indeterminate.
  Task<Status> Write(std::string key, std::string value, FencingToken token);
  // Raises the fence of a majority of replicas to `token`. kFencedOut when a replica has seen a
  // higher token (this caller is superseded); kUnavailable without a majority.
  Task<Status> Fence(FencingToken token);

  const QuorumClientStats& stats() const { return stats_; }

 private:
  QuorumRegisterClient(Env& env, Rpc& rpc, const QuorumOptions& options);
  Env& env_;
  Rpc& rpc_;
  QuorumOptions options_;
  uint64_t last_seq_ = 0;  // highest seq this client has issued, on any key
  QuorumClientStats stats_;
};

// The wire format, exposed for tests and tools. Every message starts with a u8 encoding version
// (kQuorumWireVersion); integers are little-endian fixed width, strings varint-length-prefixed.
// Decoders check every length against the limits and reject trailing bytes: kInvalidArgument.
namespace quorum_wire {

inline constexpr uint8_t kQuorumWireVersion = 1;

struct QueryRequest {
  std::string key;
  friend bool operator==(const QueryRequest&, const QueryRequest&) = default;
};
struct QueryReply {
  std::optional<VersionedValue> stored;  // nullopt: never written (encoded as version zero)
  uint64_t fence = 0;
  friend bool operator==(const QueryReply&, const QueryReply&) = default;
};
struct StoreRequest {
  std::string key;
  VersionedValue stored;  // version must not be zero
  bool repair = false;    // a read's write-back: exempt from the fence check
  friend bool operator==(const StoreRequest&, const StoreRequest&) = default;
};
struct FenceRequest {
  uint64_t token = 0;
  friend bool operator==(const FenceRequest&, const FenceRequest&) = default;
};

struct Limits {
  uint32_t key_bytes_max = 256;
  uint32_t value_bytes_max = 64 * 1024;
};

Bytes Encode(const QueryRequest& m);
Bytes Encode(const QueryReply& m);
Bytes Encode(const StoreRequest& m);
Bytes Encode(const FenceRequest& m);
// Replies to Store and Fence: just the encoding version.
Bytes EncodeAck();

Result<QueryRequest> DecodeQueryRequest(std::span<const uint8_t> in, const Limits& limits);
Result<QueryReply> DecodeQueryReply(std::span<const uint8_t> in, const Limits& limits);
Result<StoreRequest> DecodeStoreRequest(std::span<const uint8_t> in, const Limits& limits);
Result<FenceRequest> DecodeFenceRequest(std::span<const uint8_t> in);
Status DecodeAck(std::span<const uint8_t> in);

}  // namespace quorum_wire

}  // namespace faultline::lease
