#include "faultline/lease/quorum_register.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "faultline/core/assert.h"
#include "faultline/core/bytes.h"
#include "faultline/core/options.h"
#include "faultline/env/quorum_call.h"

namespace faultline::lease {

Status QuorumOptions::Validate() const {
  FL_CHECK_OPTION(!replicas.empty(), "replicas must not be empty");
  FL_CHECK_OPTION(replicas.size() <= kQuorumReplicasMax, "replicas must have at most 64 entries");
  std::set<NodeId> seen;
  for (NodeId r : replicas) {
    FL_CHECK_OPTION(seen.insert(r).second, "replicas must not contain duplicates (node " +
                                               std::to_string(r.value()) + " appears twice)");
  }
  const auto n = static_cast<uint32_t>(replicas.size());
  FL_CHECK_OPTION(write_quorum <= n, "write_quorum must be <= replicas.size()");
  FL_CHECK_OPTION(read_quorum <= n, "read_quorum must be <= replicas.size()");
  const uint32_t w = effective_write_quorum();
  const uint32_t r = effective_read_quorum();
  if (!allow_weak_quorums) {
    FL_CHECK_OPTION(w + r > n,
                    "write_quorum + read_quorum must exceed replicas.size() (a read could miss a "
                    "completed write; allow_weak_quorums lifts this)");
    FL_CHECK_OPTION(2 * w > n,
                    "write_quorum must be more than half of replicas.size() (writes and fences "
                    "could miss each other; allow_weak_quorums lifts this)");
  }
  FL_CHECK_OPTION(round_timeout > Duration::Zero(), "round_timeout must be > 0");
  FL_CHECK_OPTION(method_base <= 0xFFFF - kQuorumFenceMethod,
                  "method_base must leave room for 3 methods below 0x10000");
  FL_CHECK_OPTION(key_bytes_max > 0, "key_bytes_max must be > 0");
  FL_CHECK_OPTION(value_bytes_max > 0, "value_bytes_max must be > 0");
  FL_CHECK_OPTION(keys_max > 0, "keys_max must be > 0");
  return Status::Ok();
}

// ------------------------------------------------------------------------------------------------
// Wire format.

namespace quorum_wire {
namespace {

void PutVersion(ByteWriter& w, const Version& v) {
  w.U64(v.token);
  w.U64(v.seq);
  w.U32(v.writer);
}

Status GetVersion(ByteReader& r, Version* v) {
  FL_RETURN_IF_ERROR(r.U64(&v->token));
  FL_RETURN_IF_ERROR(r.U64(&v->seq));
  return r.U32(&v->writer);
}

Status Header(ByteReader& r) {
  uint8_t version = 0;
  FL_RETURN_IF_ERROR(r.U8(&version));
  if (version != kQuorumWireVersion) {
    return InvalidArgumentError("unknown quorum register encoding version " +
                                std::to_string(version));
  }
  return Status::Ok();
}

// Every decoding failure is the sender's fault: kInvalidArgument, naming the message.
Status Malformed(std::string_view what, const Status& cause) {
  if (cause.code() == StatusCode::kInvalidArgument) return cause;
  return InvalidArgumentError("malformed " + std::string(what) + ": " + cause.ToString());
}

Status Trailing(const ByteReader& r) {
  if (!r.empty()) return InvalidArgumentError("trailing bytes");
  return Status::Ok();
}

Status ParseQueryReply(ByteReader& r, const Limits& limits, QueryReply* m) {
  FL_RETURN_IF_ERROR(Header(r));
  uint8_t present = 0;
  FL_RETURN_IF_ERROR(r.U8(&present));
  if (present > 1) return InvalidArgumentError("presence flag must be 0 or 1");
  Version v;
  FL_RETURN_IF_ERROR(GetVersion(r, &v));
  std::string value;
  FL_RETURN_IF_ERROR(r.Bytes(&value, limits.value_bytes_max));
  if ((present == 1) == v.is_zero()) {
    return InvalidArgumentError("a value is present iff its version is non-zero");
  }
  if (present == 0 && !value.empty()) return InvalidArgumentError("absent value with bytes");
  if (present == 1) m->stored = VersionedValue{v, std::move(value)};
  FL_RETURN_IF_ERROR(r.U64(&m->fence));
  return Trailing(r);
}

Status ParseStoreRequest(ByteReader& r, const Limits& limits, StoreRequest* m) {
  FL_RETURN_IF_ERROR(Header(r));
  uint8_t flags = 0;
  FL_RETURN_IF_ERROR(r.U8(&flags));
  if (flags > 1) return InvalidArgumentError("unknown store flags");
  m->repair = flags == 1;
  FL_RETURN_IF_ERROR(r.Bytes(&m->key, limits.key_bytes_max));
  FL_RETURN_IF_ERROR(GetVersion(r, &m->stored.version));
  if (m->stored.version.is_zero()) return InvalidArgumentError("store of version zero");
  FL_RETURN_IF_ERROR(r.Bytes(&m->stored.value, limits.value_bytes_max));
  return Trailing(r);
}

}  // namespace

Bytes Encode(const QueryRequest& m) {
  Bytes out;
  ByteWriter w(&out);
  w.U8(kQuorumWireVersion);
  w.Bytes(m.key);
  return out;
}

Bytes Encode(const QueryReply& m) {
  Bytes out;
  ByteWriter w(&out);
  w.U8(kQuorumWireVersion);
  w.U8(m.stored.has_value() ? 1 : 0);
  FL_ASSERT(!m.stored.has_value() || !m.stored->version.is_zero());
  PutVersion(w, m.stored ? m.stored->version : Version{});
  w.Bytes(m.stored ? std::string_view(m.stored->value) : std::string_view());
  w.U64(m.fence);
  return out;
}

Bytes Encode(const StoreRequest& m) {
  FL_ASSERT(!m.stored.version.is_zero());
  Bytes out;
  ByteWriter w(&out);
  w.U8(kQuorumWireVersion);
  w.U8(m.repair ? 1 : 0);
  w.Bytes(m.key);
  PutVersion(w, m.stored.version);
  w.Bytes(m.stored.value);
  return out;
}

Bytes Encode(const FenceRequest& m) {
  Bytes out;
  ByteWriter w(&out);
  w.U8(kQuorumWireVersion);
  w.U64(m.token);
  return out;
}

Bytes EncodeAck() { return Bytes{kQuorumWireVersion}; }

Result<QueryRequest> DecodeQueryRequest(std::span<const uint8_t> in, const Limits& limits) {
  ByteReader r(in);
  QueryRequest m;
  Status s = Header(r);
  if (s.ok()) s = r.Bytes(&m.key, limits.key_bytes_max);
  if (s.ok()) s = Trailing(r);
  if (!s.ok()) return Malformed("query request", s);
  return m;
}

Result<QueryReply> DecodeQueryReply(std::span<const uint8_t> in, const Limits& limits) {
  ByteReader r(in);
  QueryReply m;
  Status s = ParseQueryReply(r, limits, &m);
  if (!s.ok()) return Malformed("query reply", s);
  return m;
}

Result<StoreRequest> DecodeStoreRequest(std::span<const uint8_t> in, const Limits& limits) {
  ByteReader r(in);
  StoreRequest m;
  Status s = ParseStoreRequest(r, limits, &m);
  if (!s.ok()) return Malformed("store request", s);
  return m;
}

Result<FenceRequest> DecodeFenceRequest(std::span<const uint8_t> in) {
  ByteReader r(in);
  FenceRequest m;
  Status s = Header(r);
  if (s.ok()) s = r.U64(&m.token);
  if (s.ok()) s = Trailing(r);
  if (!s.ok()) return Malformed("fence request", s);
  return m;
}

Status DecodeAck(std::span<const uint8_t> in) {
  ByteReader r(in);
  Status s = Header(r);
  if (s.ok()) s = Trailing(r);
  if (!s.ok()) return Malformed("ack", s);
  return Status::Ok();
}

}  // namespace quorum_wire

namespace {

quorum_wire::Limits WireLimits(const QuorumOptions& o) {
  quorum_wire::Limits limits;
  limits.key_bytes_max = o.key_bytes_max;
  limits.value_bytes_max = o.value_bytes_max;
  return limits;
}

Status FenceError(uint64_t token, uint64_t fence) {
  return FencedOutError("fencing token " + std::to_string(token) + " is below " +
                        std::to_string(fence));
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Replica.

struct QuorumReplica::State {
  QuorumOptions options;
  quorum_wire::Limits limits;
  bool alive = true;  // false once the replica object is gone; handlers then refuse
  uint64_t fence = 0;
  std::map<std::string, VersionedValue> data;
  QuorumReplicaStats stats;

  Result<Bytes> Refused(Status s) {
    if (s.code() == StatusCode::kInvalidArgument) ++stats.malformed;
    if (s.code() == StatusCode::kFencedOut) ++stats.fenced_out;
    return s;
  }

  Result<Bytes> OnQuery(std::span<const uint8_t> request) {
    if (!alive) return UnavailableError("replica is shut down");
    auto req = quorum_wire::DecodeQueryRequest(request, limits);
    if (!req.ok()) return Refused(std::move(req).TakeStatus());
    ++stats.queries;
    quorum_wire::QueryReply reply;
    reply.fence = fence;
    if (auto it = data.find(req->key); it != data.end()) reply.stored = it->second;
    return quorum_wire::Encode(reply);
  }

  Result<Bytes> OnStore(std::span<const uint8_t> request) {
    if (!alive) return UnavailableError("replica is shut down");
    auto req = quorum_wire::DecodeStoreRequest(request, limits);
    if (!req.ok()) return Refused(std::move(req).TakeStatus());
    const Version v = req->stored.version;
    FL_ASSERT(!v.is_zero());  // the decoder refuses it
    // The check and the side effect happen in one handler turn: nothing interleaves.
    if (!req->repair && v.token < fence) return Refused(FenceError(v.token, fence));
    auto it = data.find(req->key);
    if (it == data.end() && data.size() >= options.keys_max) {
      return ResourceExhaustedError("replica holds keys_max keys");
    }
    fence = std::max(fence, v.token);
    ++stats.stores;
    if (it == data.end()) {
      data.emplace(std::move(req->key), std::move(req->stored));
      ++stats.replaced;
    } else if (it->second.version < v) {
      it->second = std::move(req->stored);
      ++stats.replaced;
    }
    FL_ASSERT(fence >= v.token);
    return quorum_wire::EncodeAck();
  }

  Result<Bytes> OnFence(std::span<const uint8_t> request) {
    if (!alive) return UnavailableError("replica is shut down");
    auto req = quorum_wire::DecodeFenceRequest(request);
    if (!req.ok()) return Refused(std::move(req).TakeStatus());
    if (req->token < fence) return Refused(FenceError(req->token, fence));
    fence = req->token;
    ++stats.fences;
    return quorum_wire::EncodeAck();
  }
};

QuorumReplica::QuorumReplica(std::shared_ptr<State> state) : state_(std::move(state)) {}

QuorumReplica::~QuorumReplica() { state_->alive = false; }

Result<std::unique_ptr<QuorumReplica>> QuorumReplica::Create(Env& env, Rpc& rpc,
                                                             const QuorumOptions& options) {
  (void)env;  // in-memory: no disk, timers or randomness needed
  FL_RETURN_IF_ERROR(options.Validate());
  auto state = std::make_shared<State>();
  state->options = options;
  state->limits = WireLimits(options);
  // Handlers hold the state, not the replica: destroying the replica cannot leave them dangling.
  rpc.Handle(options.method_base + kQuorumQueryMethod,
             [state](NodeId, std::span<const uint8_t> req) { return state->OnQuery(req); });
  rpc.Handle(options.method_base + kQuorumStoreMethod,
             [state](NodeId, std::span<const uint8_t> req) { return state->OnStore(req); });
  rpc.Handle(options.method_base + kQuorumFenceMethod,
             [state](NodeId, std::span<const uint8_t> req) { return state->OnFence(req); });
  return std::unique_ptr<QuorumReplica>(new QuorumReplica(std::move(state)));
}

std::optional<VersionedValue> QuorumReplica::Get(const std::string& key) const {
  auto it = state_->data.find(key);
  if (it == state_->data.end()) return std::nullopt;
  return it->second;
}

FencingToken QuorumReplica::fence() const { return FencingToken(state_->fence); }

const QuorumReplicaStats& QuorumReplica::stats() const { return state_->stats; }

// ------------------------------------------------------------------------------------------------
// Client: one phase ("round") = one request to each target replica, in parallel.

namespace {

enum class ReplyKind : uint8_t { kQuery, kAck };

// One phase's outcome: the QuorumCall's result, with the query replies as decoded on arrival.
struct Round {
  uint32_t targets = 0;
  uint32_t needed = 0;
  uint32_t acked = 0;
  bool fenced = false;  // a replica answered kFencedOut: final
  bool timed_out = false;
  Status fenced_status;
  Status last_error;
  std::vector<std::optional<quorum_wire::QueryReply>> queries;  // by target slot (kQuery)

  Status Outcome(std::string_view phase) const;
};

Status Round::Outcome(std::string_view phase) const {
  if (acked >= needed) return Status::Ok();
  if (fenced) return fenced_status;
  std::string message = std::string(phase) + ": " + std::to_string(acked) + " of " +
                        std::to_string(needed) + " replicas needed answered";
  if (timed_out) message += " within round_timeout";
  if (!last_error.ok()) message += " (last error: " + last_error.ToString() + ")";
  return UnavailableError(message);
}

// An ack (or a decodable query reply, kept in `queries[target]`) is a yes, kFencedOut a reject
// that ends the round, anything else a failure.
QuorumVerdict Classify(ReplyKind kind, const quorum_wire::Limits& limits,
                       std::vector<std::optional<quorum_wire::QueryReply>>& queries, size_t target,
                       const Result<Bytes>& reply) {
  if (!reply.ok()) {
    if (reply.status().code() == StatusCode::kFencedOut) {
      return QuorumVerdict::Reject(reply.status());
    }
    return QuorumVerdict::Failure(reply.status());
  }
  if (kind == ReplyKind::kQuery) {
    auto decoded = quorum_wire::DecodeQueryReply(*reply, limits);
    if (!decoded.ok()) return QuorumVerdict::Failure(decoded.status());
    queries[target] = std::move(decoded).value();
    return QuorumVerdict::Yes();
  }
  Status valid = quorum_wire::DecodeAck(*reply);
  if (!valid.ok()) return QuorumVerdict::Failure(std::move(valid));
  return QuorumVerdict::Yes();
}

// Sends `request` to every replica in `targets` (one detached task each) and waits until `needed`
// of them acked, one reported kFencedOut, the quorum became unreachable, or round_timeout passed.
// The calls still in flight then are cancelled.
Task<Round> RunRound(Env& env, Rpc& rpc, const QuorumOptions& options, uint16_t method,
                     ReplyKind kind, Bytes request, std::vector<NodeId> targets, uint32_t needed) {
  FL_ASSERT(needed >= 1 && needed <= targets.size());
  const quorum_wire::Limits limits = WireLimits(options);
  QuorumCallOptions call;
  call.targets = std::move(targets);
  call.method = static_cast<uint16_t>(options.method_base + method);
  call.request = std::move(request);
  call.needed = needed;
  call.timeout = options.round_timeout;
  auto queries =
      std::make_shared<std::vector<std::optional<quorum_wire::QueryReply>>>(call.targets.size());
  call.classify = [kind, limits, queries](size_t target, const Result<Bytes>& reply) {
    return Classify(kind, limits, *queries, target, reply);
  };
  call.decided_early = [](const QuorumTally& tally) { return tally.rejects > 0; };
  QuorumResult result = co_await QuorumCall(env, rpc, std::move(call));
  Round round;
  round.targets = static_cast<uint32_t>(result.tally.targets);
  round.needed = needed;
  round.acked = static_cast<uint32_t>(result.tally.yes);
  round.fenced = result.tally.rejects > 0;
  round.timed_out = result.timed_out;
  round.fenced_status = std::move(result.last_reject);
  round.last_error = std::move(result.last_failure);
  round.queries = std::move(*queries);
  co_return round;
}

// The largest version among a query round's answers, or nullopt when every answer was "never
// written".
std::optional<VersionedValue> Largest(const Round& round) {
  std::optional<VersionedValue> best;
  for (const auto& q : round.queries) {
    if (!q || !q->stored) continue;
    if (!best || best->version < q->stored->version) best = q->stored;
  }
  return best;
}

uint64_t HighestFence(const Round& round) {
  uint64_t fence = 0;
  for (const auto& q : round.queries) {
    if (q) fence = std::max(fence, q->fence);
  }
  return fence;
}

}  // namespace

QuorumRegisterClient::QuorumRegisterClient(Env& env, Rpc& rpc, const QuorumOptions& options)
    : env_(env), rpc_(rpc), options_(options) {}

Result<std::unique_ptr<QuorumRegisterClient>> QuorumRegisterClient::Create(
    Env& env, Rpc& rpc, const QuorumOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<QuorumRegisterClient>(new QuorumRegisterClient(env, rpc, options));
}

Task<Result<std::optional<std::string>>> QuorumRegisterClient::Read(std::string key) {
  ++stats_.reads;
  if (key.size() > options_.key_bytes_max) co_return InvalidArgumentError("key too long");
  quorum_wire::QueryRequest query{key};
  Round q = co_await RunRound(env_, rpc_, options_, kQuorumQueryMethod, ReplyKind::kQuery,
                              quorum_wire::Encode(query), options_.replicas,
                              options_.effective_read_quorum());
  Status status = q.Outcome("read query");
  if (!status.ok()) {
    ++stats_.unavailable;
    co_return status;
  }
  std::optional<VersionedValue> best = Largest(q);
  if (!best) co_return std::optional<std::string>();  // every answer: never written
  // Replicas known to hold the largest version already count towards the write-back quorum.
  std::vector<NodeId> others;
  uint32_t holding = 0;
  for (uint32_t i = 0; i < q.targets; ++i) {
    const auto& a = q.queries[i];
    if (a && a->stored && a->stored->version == best->version) {
      ++holding;
    } else {
      others.push_back(options_.replicas[i]);
    }
  }
  FL_ASSERT(holding >= 1);
  const uint32_t w = options_.effective_write_quorum();
  if (holding < w) {
    // Write-back: without it a later read could miss the value this read returns (a new-old
    // inversion between two reads).
    ++stats_.repairs;
    quorum_wire::StoreRequest store{key, *best, /*repair=*/true};
    Round s = co_await RunRound(env_, rpc_, options_, kQuorumStoreMethod, ReplyKind::kAck,
                                quorum_wire::Encode(store), std::move(others), w - holding);
    status = s.Outcome("read write-back");
    if (!status.ok()) {
      ++stats_.unavailable;
      co_return status;
    }
  }
  co_return std::optional<std::string>(std::move(best->value));
}

Task<Status> QuorumRegisterClient::Write(std::string key, std::string value, FencingToken token) {
  ++stats_.writes;
  if (key.size() > options_.key_bytes_max) co_return InvalidArgumentError("key too long");
  if (value.size() > options_.value_bytes_max) co_return InvalidArgumentError("value too long");
  quorum_wire::QueryRequest query{key};
  Round q = co_await RunRound(env_, rpc_, options_, kQuorumQueryMethod, ReplyKind::kQuery,
                              quorum_wire::Encode(query), options_.replicas,
                              options_.effective_read_quorum());
  Status status = q.Outcome("write query");
  if (!status.ok()) {
    ++stats_.unavailable;
    co_return status;
  }
  const std::optional<VersionedValue> best = Largest(q);
  const Version seen = best ? best->version : Version{};
  const uint64_t superseding = std::max(seen.token, HighestFence(q));
  if (token.value() < superseding) {
    ++stats_.fenced_out;
    co_return FenceError(token.value(), superseding);
  }
  // Strictly above every version a completed write can have (the query met its quorum) and above
  // every seq this client issued before, so (token, seq, self) is unique.
  const uint64_t base = std::max(seen.seq, last_seq_);
  if (base == UINT64_MAX) co_return OutOfRangeError("sequence numbers exhausted");
  last_seq_ = base + 1;
  VersionedValue stored{Version{token.value(), last_seq_, env_.self().value()}, std::move(value)};
  FL_ASSERT(seen < stored.version);
  quorum_wire::StoreRequest store{std::move(key), std::move(stored), /*repair=*/false};
  Round s = co_await RunRound(env_, rpc_, options_, kQuorumStoreMethod, ReplyKind::kAck,
                              quorum_wire::Encode(store), options_.replicas,
                              options_.effective_write_quorum());
  status = s.Outcome("write store");
  if (status.code() == StatusCode::kFencedOut) ++stats_.fenced_out;
  if (status.code() == StatusCode::kUnavailable) ++stats_.unavailable;
  co_return status;
}

Task<Status> QuorumRegisterClient::Fence(FencingToken token) {
  ++stats_.fences;
  quorum_wire::FenceRequest fence{token.value()};
  Round f = co_await RunRound(env_, rpc_, options_, kQuorumFenceMethod, ReplyKind::kAck,
                              quorum_wire::Encode(fence), options_.replicas, options_.majority());
  Status status = f.Outcome("fence");
  if (status.code() == StatusCode::kFencedOut) ++stats_.fenced_out;
  if (status.code() == StatusCode::kUnavailable) ++stats_.unavailable;
  co_return status;
}

}  // namespace faultline::lease
