#include "faultline/lease/paxos_lease.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "faultline/core/bytes.h"
#include "faultline/core/crc32c.h"
#include "faultline/core/options.h"
#include "faultline/env/quorum_call.h"

namespace faultline::lease {

using paxos_lease_internal::Method;
using paxos_lease_internal::Reply;
using paxos_lease_internal::Request;

Status PaxosLeaseOptions::Validate() const {
  FL_CHECK_OPTION(!acceptors.empty(), "acceptors must not be empty");
  FL_CHECK_OPTION(acceptors.size() <= PaxosLeaseLimits::kAcceptorsMax,
                  "acceptors must have at most PaxosLeaseLimits::kAcceptorsMax entries");
  std::vector<NodeId> sorted = acceptors;
  std::sort(sorted.begin(), sorted.end());
  FL_CHECK_OPTION(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(),
                  "acceptors must not contain duplicates");
  FL_CHECK_OPTION(sorted.back().value() <= 0xFFFF, "acceptors ids must fit in 16 bits (ballots)");
  FL_CHECK_OPTION(drift_ppm_max >= 0 && drift_ppm_max <= 100'000,
                  "drift_ppm_max must be in [0, 100000]");
  FL_CHECK_OPTION(margin >= Duration::Zero(), "margin must be >= 0");
  FL_CHECK_OPTION(round_timeout > Duration::Zero() && !round_timeout.is_infinite(),
                  "round_timeout must be > 0 and finite");
  FL_CHECK_OPTION(lock_delay >= Duration::Zero(), "lock_delay must be >= 0");
  FL_CHECK_OPTION(restart_quiet >= Duration::Zero(), "restart_quiet must be >= 0");
  FL_CHECK_OPTION(method_base <= 0xFFFF - (paxos_lease_internal::kMethodCount - 1),
                  "method_base must leave room for the acceptor's 4 methods");
  FL_CHECK_OPTION(!file.empty(), "file must not be empty");
  return Status::Ok();
}

// ---- Wire format ----

namespace paxos_lease_internal {
namespace {

constexpr uint8_t kFlagOk = 1;
constexpr uint8_t kFlagHasAccepted = 2;
constexpr uint8_t kFlagLive = 4;
constexpr uint8_t kFlagLockDelay = 8;
constexpr uint8_t kFlagsAll = kFlagOk | kFlagHasAccepted | kFlagLive | kFlagLockDelay;

Status Malformed(std::string_view what) {
  return InvalidArgumentError("malformed paxos lease message: " + std::string(what));
}
// ByteReader reports kDataLoss / kOutOfRange; on the wire both mean "bad request".
Status Field(const Status& read, std::string_view what) {
  return read.ok() ? Status::Ok() : Malformed(what);
}

}  // namespace

Bytes EncodeRequest(Method method, const Request& request) {
  Bytes out;
  ByteWriter w(&out);
  w.U8(kWireVersion);
  w.Bytes(request.name);
  switch (method) {
    case Method::kPrepare:
      w.U64(request.ballot);
      break;
    case Method::kPropose:
      w.U64(request.ballot);
      w.U32(request.holder.value());
      w.U64(request.token.value());
      w.I64(request.ttl.nanos());
      break;
    case Method::kRevoke:
      w.U32(request.holder.value());
      w.U64(request.token.value());
      break;
    case Method::kQuery:
      break;
  }
  return out;
}

Result<Request> DecodeRequest(Method method, std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  uint8_t version = 0;
  FL_RETURN_IF_ERROR(Field(r.U8(&version), "no version"));
  if (version != kWireVersion) return InvalidArgumentError("unsupported paxos lease wire version");
  Request req;
  FL_RETURN_IF_ERROR(Field(r.Bytes(&req.name, PaxosLeaseLimits::kNameBytesMax), "name"));
  if (req.name.empty()) return Malformed("empty name");
  uint32_t holder = 0;
  uint64_t token = 0;
  int64_t ttl_ns = 0;
  const bool has_ballot = method == Method::kPrepare || method == Method::kPropose;
  const bool has_value = method == Method::kPropose || method == Method::kRevoke;
  if (method != Method::kPrepare && method != Method::kPropose && method != Method::kRevoke &&
      method != Method::kQuery) {
    return Malformed("unknown method");
  }
  if (has_ballot) FL_RETURN_IF_ERROR(Field(r.U64(&req.ballot), "ballot"));
  if (has_value) {
    FL_RETURN_IF_ERROR(Field(r.U32(&holder), "holder"));
    FL_RETURN_IF_ERROR(Field(r.U64(&token), "token"));
  }
  if (method == Method::kPropose) FL_RETURN_IF_ERROR(Field(r.I64(&ttl_ns), "ttl"));
  if (!r.empty()) return Malformed("trailing bytes");
  if (has_ballot && req.ballot == 0) return Malformed("ballot 0");
  if (has_value && token == 0) return Malformed("token 0");
  req.holder = NodeId(holder);
  req.token = FencingToken(token);
  req.ttl = Duration::Nanos(ttl_ns);
  if (method == Method::kPropose) FL_RETURN_IF_ERROR(ValidateTtl(req.ttl));
  return req;
}

Bytes EncodeReply(const Reply& reply) {
  Bytes out;
  ByteWriter w(&out);
  uint8_t flags = 0;
  if (reply.ok) flags |= kFlagOk;
  if (reply.has_accepted) flags |= kFlagHasAccepted;
  if (reply.live) flags |= kFlagLive;
  if (reply.lock_delay) flags |= kFlagLockDelay;
  w.U8(kWireVersion);
  w.U8(flags);
  w.U64(reply.promised);
  if (reply.has_accepted) {
    w.U64(reply.accepted_ballot);
    w.U32(reply.holder.value());
    w.U64(reply.token.value());
  }
  return out;
}

Result<Reply> DecodeReply(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  uint8_t version = 0;
  uint8_t flags = 0;
  FL_RETURN_IF_ERROR(Field(r.U8(&version), "no version"));
  if (version != kWireVersion) return InvalidArgumentError("unsupported paxos lease wire version");
  FL_RETURN_IF_ERROR(Field(r.U8(&flags), "flags"));
  if ((flags & ~kFlagsAll) != 0) return Malformed("unknown flags");
  Reply reply;
  reply.ok = (flags & kFlagOk) != 0;
  reply.has_accepted = (flags & kFlagHasAccepted) != 0;
  reply.live = (flags & kFlagLive) != 0;
  reply.lock_delay = (flags & kFlagLockDelay) != 0;
  if ((reply.live || reply.lock_delay) && !reply.has_accepted) {
    return Malformed("state of no value");
  }
  if (reply.live && reply.lock_delay) return Malformed("live and in lock-delay");
  FL_RETURN_IF_ERROR(Field(r.U64(&reply.promised), "promised"));
  if (reply.has_accepted) {
    uint32_t holder = 0;
    uint64_t token = 0;
    FL_RETURN_IF_ERROR(Field(r.U64(&reply.accepted_ballot), "accepted ballot"));
    FL_RETURN_IF_ERROR(Field(r.U32(&holder), "holder"));
    FL_RETURN_IF_ERROR(Field(r.U64(&token), "token"));
    if (reply.accepted_ballot == 0 || token == 0) return Malformed("accepted value of ballot 0");
    reply.holder = NodeId(holder);
    reply.token = FencingToken(token);
  }
  if (!r.empty()) return Malformed("trailing bytes");
  return reply;
}

}  // namespace paxos_lease_internal

// ---- Promise file ----
//
// A log of CRC-framed records: u32 length | u32 crc32c(length) | u32 crc32c(body) | body, where the
// body is a header (generation), the snapshot's promises, a seal (count), then appended promises.
// Compaction writes a new snapshot into the other of the two files, syncs it, and only then
// removes the old one, so at every instant one sealed file holds every acknowledged promise. On
// load: a record cut short at the end of a file is a torn tail (its write never completed, so it
// was never acknowledged) and is dropped; a complete record that fails its checksum, or a sealed
// file that breaks the layout, is kDataLoss; an unsealed file is a torn compaction or a torn first
// creation and is garbage.

namespace {

enum class RecordKind : uint8_t { kHeader = 1, kPromise = 2, kSeal = 3 };
constexpr uint8_t kFileVersion = 1;
constexpr size_t kFrameHeaderBytes = 12;
constexpr uint32_t kRecordBytesMax = 1024;  // a promise record is at most ~270 bytes

uint32_t LengthCrc(uint32_t length) {
  uint8_t le[4];
  for (int i = 0; i < 4; ++i) le[i] = static_cast<uint8_t>(length >> (8 * i));
  return Crc32c(le);
}

void AppendRecord(Bytes* out, const Bytes& body) {
  FL_ASSERT(!body.empty() && body.size() <= kRecordBytesMax);
  ByteWriter w(out);
  const auto length = static_cast<uint32_t>(body.size());
  w.U32(length);
  w.U32(LengthCrc(length));
  w.U32(Crc32c(body));
  w.Raw(body);
}

Bytes PromiseBody(std::string_view name, uint64_t ballot) {
  Bytes body;
  ByteWriter w(&body);
  w.U8(static_cast<uint8_t>(RecordKind::kPromise));
  w.Bytes(name);
  w.U64(ballot);
  return body;
}

struct ParsedFile {
  bool sealed = false;
  uint64_t generation = 0;
  std::map<std::string, uint64_t, std::less<>> promises;
};

Status Corrupt(const std::string& file, size_t offset, std::string_view what) {
  return DataLossError("promise file " + file + ": " + std::string(what) + " at offset " +
                       std::to_string(offset));
}

Status ApplyRecord(std::span<const uint8_t> body, bool* have_header, ParsedFile* parsed,
                   const std::string& file, size_t offset) {
  ByteReader r(body);
  uint8_t kind = 0;
  if (!r.U8(&kind).ok()) return Corrupt(file, offset, "empty record");
  if (!*have_header) {
    uint8_t version = 0;
    if (kind != static_cast<uint8_t>(RecordKind::kHeader) || !r.U8(&version).ok() ||
        version != kFileVersion || !r.U64(&parsed->generation).ok() || !r.empty()) {
      return Corrupt(file, offset, "bad header");
    }
    *have_header = true;
    return Status::Ok();
  }
  if (kind == static_cast<uint8_t>(RecordKind::kPromise)) {
    std::string name;
    uint64_t ballot = 0;
    if (!r.Bytes(&name, PaxosLeaseLimits::kNameBytesMax).ok() || name.empty() ||
        !r.U64(&ballot).ok() || ballot == 0 || !r.empty()) {
      return Corrupt(file, offset, "bad promise record");
    }
    uint64_t& slot = parsed->promises[name];
    slot = std::max(slot, ballot);
    return Status::Ok();
  }
  uint64_t count = 0;
  if (kind != static_cast<uint8_t>(RecordKind::kSeal) || parsed->sealed || !r.U64(&count).ok() ||
      !r.empty() || count != parsed->promises.size()) {
    return Corrupt(file, offset, "bad record kind or seal");
  }
  parsed->sealed = true;
  return Status::Ok();
}

Result<ParsedFile> ParseFile(Disk& disk, const std::string& file) {
  ParsedFile parsed;
  Result<Bytes> data = disk.ReadAll(file);
  if (!data.ok()) {
    if (data.status().code() == StatusCode::kNotFound) return parsed;
    return std::move(data).TakeStatus();
  }
  ByteReader r(*data);
  bool have_header = false;
  // Fewer bytes than a frame header left, or a body running past the end: a torn tail.
  while (r.remaining() >= kFrameHeaderBytes) {
    const size_t offset = r.position();
    uint32_t length = 0;
    uint32_t length_crc = 0;
    uint32_t body_crc = 0;
    const bool framed = r.U32(&length).ok() && r.U32(&length_crc).ok() && r.U32(&body_crc).ok();
    FL_ASSERT(framed);  // the loop condition left room for the frame header
    if (LengthCrc(length) != length_crc || length == 0 || length > kRecordBytesMax) {
      return Corrupt(file, offset, "bad record length");
    }
    if (length > r.remaining()) break;
    std::span<const uint8_t> body;
    const bool whole = r.Raw(length, &body).ok();
    FL_ASSERT(whole);
    if (Crc32c(body) != body_crc) return Corrupt(file, offset, "checksum mismatch");
    FL_RETURN_IF_ERROR(ApplyRecord(body, &have_header, &parsed, file, offset));
  }
  return parsed;
}

class PromiseLog {
 public:
  PromiseLog(Disk& disk, const std::string& file) : disk_(disk), files_{file, file + ".alt"} {}

  // Loads the promises and rewrites them as a fresh snapshot.
  Status Open() {
    ParsedFile parsed[2];
    for (int i = 0; i < 2; ++i) {
      FL_ASSIGN_OR_RETURN(parsed[i], ParseFile(disk_, files_[i]));
    }
    int source = -1;
    for (int i = 0; i < 2; ++i) {
      if (!parsed[i].sealed) continue;
      if (source >= 0 && parsed[i].generation == parsed[source].generation) {
        return DataLossError("promise files " + files_[0] + " and " + files_[1] +
                             " are sealed with the same generation");
      }
      if (source < 0 || parsed[i].generation > parsed[source].generation) source = i;
    }
    if (source < 0) {
      for (const ParsedFile& p : parsed) {
        if (!p.promises.empty()) {
          return DataLossError("promise file " + files_[0] +
                               " has promises but no sealed snapshot");
        }
      }
    } else {
      promises_ = std::move(parsed[source].promises);
      generation_ = parsed[source].generation;
      active_ = source;
    }
    FL_RETURN_IF_ERROR(Compact());
    return RemoveIfExists(files_[1 - active_]);  // a torn or older snapshot: garbage now
  }

  uint64_t Promised(std::string_view name) const {
    auto it = promises_.find(name);
    return it == promises_.end() ? 0 : it->second;
  }
  size_t size() const { return promises_.size(); }
  bool failed() const { return failed_; }

  // Makes `ballot` (above the current promise) durable. Any disk error fail-stops the log: after
  // a failed fsync the state of the file is unknown, and retrying is not safe.
  Status Promise(const std::string& name, uint64_t ballot) {
    FL_ASSERT(ballot > Promised(name) && active_ >= 0);
    if (failed_) return UnavailableError("promise log stopped after a disk error");
    Bytes record;
    AppendRecord(&record, PromiseBody(name, ballot));
    const std::string& file = files_[active_];
    Status s = disk_.Write(file, end_, record);
    if (s.ok()) s = disk_.Sync(file);
    if (!s.ok()) return Fail(std::move(s));
    end_ += record.size();
    promises_[name] = ballot;
    ++appended_;
    if (appended_ > std::max<uint64_t>(PaxosLeaseLimits::kCompactRecordsMin, 2 * size())) {
      Compact().IgnoreError();  // the promise is durable; a failure has fail-stopped the log
    }
    FL_ASSERT(Promised(name) == ballot);
    return Status::Ok();
  }

 private:
  Status Fail(Status s) {
    failed_ = true;
    return s;
  }
  Status RemoveIfExists(const std::string& file) {
    Status s = disk_.Remove(file);
    if (s.ok() || s.code() == StatusCode::kNotFound) return Status::Ok();
    return Fail(std::move(s));
  }
  Status Compact() {
    const int target = active_ == 0 ? 1 : 0;
    const uint64_t generation = generation_ + 1;
    Bytes snapshot;
    Bytes body;
    ByteWriter header(&body);
    header.U8(static_cast<uint8_t>(RecordKind::kHeader));
    header.U8(kFileVersion);
    header.U64(generation);
    AppendRecord(&snapshot, body);
    for (const auto& [name, ballot] : promises_) AppendRecord(&snapshot, PromiseBody(name, ballot));
    body.clear();
    ByteWriter seal(&body);
    seal.U8(static_cast<uint8_t>(RecordKind::kSeal));
    seal.U64(promises_.size());
    AppendRecord(&snapshot, body);
    // The target is removed first: a write over old bytes could survive a crash half-applied.
    FL_RETURN_IF_ERROR(RemoveIfExists(files_[target]));
    Status s = disk_.Write(files_[target], 0, snapshot);
    if (s.ok()) s = disk_.Sync(files_[target]);
    if (!s.ok()) return Fail(std::move(s));
    if (active_ >= 0) FL_RETURN_IF_ERROR(RemoveIfExists(files_[active_]));
    active_ = target;
    generation_ = generation;
    end_ = snapshot.size();
    appended_ = 0;
    return Status::Ok();
  }

  Disk& disk_;
  const std::string files_[2];
  int active_ = -1;  // index into files_ of the file appended to
  uint64_t generation_ = 0;
  uint64_t end_ = 0;
  uint64_t appended_ = 0;
  bool failed_ = false;
  std::map<std::string, uint64_t, std::less<>> promises_;
};

// An acceptor's memory of the last value it accepted for one name.
struct NameState {
  uint64_t accepted_ballot = 0;  // 0: nothing accepted since boot
  NodeId holder;
  FencingToken token;
  MonoTime expires_at;
  bool released = false;  // revoked: no lock-delay
  TimerId timer;
};

}  // namespace

// ---- Acceptor ----

struct PaxosLeaseAcceptor::State {
  State(Env& e, const PaxosLeaseOptions& o, AcceptorStats& s)
      : env(e), options(o), stats(s), log(e.disk(), o.file) {}

  Env& env;
  const PaxosLeaseOptions& options;
  AcceptorStats& stats;
  PromiseLog log;
  std::map<std::string, NameState, std::less<>> names;  // names with an accepted value
  MonoTime quiet_until = MonoTime::Min();
  bool registered = false;

  // Raises the promise for `name` to `ballot` (durably) unless it is there already.
  Status Promise(const std::string& name, uint64_t ballot) {
    const uint64_t promised = log.Promised(name);
    FL_ASSERT(ballot >= promised);
    if (ballot == promised) return Status::Ok();
    if (promised == 0 && log.size() >= PaxosLeaseLimits::kNamesMax) {
      return ResourceExhaustedError("acceptor holds promises for kNamesMax names");
    }
    return log.Promise(name, ballot);
  }

  void Describe(std::string_view name, MonoTime now, Reply* reply) const {
    auto it = names.find(name);
    if (it == names.end() || it->second.accepted_ballot == 0) return;
    const NameState& ns = it->second;
    reply->has_accepted = true;
    reply->accepted_ballot = ns.accepted_ballot;
    reply->holder = ns.holder;
    reply->token = ns.token;
    if (ns.released) return;
    reply->live = now < ns.expires_at;
    reply->lock_delay = !reply->live && now < ns.expires_at + options.lock_delay;
  }

  Result<Bytes> Prepare(NodeId from, const Request& req, MonoTime now) {
    if (BallotOwner(req.ballot) != (from.value() & 0xFFFF)) {
      return InvalidArgumentError("prepare ballot does not belong to its sender");
    }
    ++stats.prepares;
    Reply reply;
    reply.promised = log.Promised(req.name);
    Describe(req.name, now, &reply);
    if (req.ballot < reply.promised) {
      ++stats.rejects;
      return paxos_lease_internal::EncodeReply(reply);
    }
    if (reply.live && reply.holder != from) {
      // Someone else holds a live lease: refuse without promising. A candidate polling a held
      // name must not raise the promise, or the holder's next renewal (and a holder re-acquiring
      // after a lost reply) would be rejected by the candidate's ballot — dueling proposers that
      // can stall a failover for a whole TTL.
      ++stats.held_refusals;
      return paxos_lease_internal::EncodeReply(reply);
    }
    FL_RETURN_IF_ERROR(Promise(req.name, req.ballot));
    reply.ok = true;
    return paxos_lease_internal::EncodeReply(reply);
  }

  Result<Bytes> Propose(NodeId from, const Request& req, MonoTime now) {
    if (BallotOwner(req.ballot) != (from.value() & 0xFFFF) || req.holder != from ||
        BallotOwner(req.token.value()) != (from.value() & 0xFFFF) ||
        req.token.value() > req.ballot) {
      return InvalidArgumentError("proposal's ballot, holder or token does not fit its sender");
    }
    ++stats.proposes;
    Reply reply;
    reply.promised = log.Promised(req.name);
    if (req.ballot < reply.promised) {
      ++stats.rejects;
      return paxos_lease_internal::EncodeReply(reply);
    }
    // Accepting b promises b too (this acceptor may have missed the Prepare).
    FL_RETURN_IF_ERROR(Promise(req.name, req.ballot));
    NameState& ns = names[req.name];
    if (ns.timer) env.executor().Cancel(ns.timer);
    ns.accepted_ballot = req.ballot;
    ns.holder = req.holder;
    ns.token = req.token;
    ns.expires_at = now + req.ttl;
    ns.released = false;
    const uint64_t ballot = req.ballot;
    ns.timer = env.executor().ScheduleAfter(req.ttl, [this, state = &ns, ballot] {
      state->timer = {};
      if (state->accepted_ballot == ballot && !state->released) ++stats.expiries;
    });
    reply.ok = true;
    Describe(req.name, now, &reply);
    FL_ASSERT(reply.live && reply.token == req.token);
    return paxos_lease_internal::EncodeReply(reply);
  }

  Result<Bytes> Revoke(NodeId from, const Request& req, MonoTime now) {
    if (req.holder != from) {
      return InvalidArgumentError("revoke for a holder other than its sender");
    }
    auto it = names.find(req.name);
    if (it != names.end()) {
      NameState& ns = it->second;
      if (ns.accepted_ballot != 0 && !ns.released && ns.holder == req.holder &&
          ns.token == req.token) {
        ns.released = true;  // also ends a lock-delay this value started
        if (ns.timer) env.executor().Cancel(ns.timer);
        ns.timer = {};
        ++stats.revokes;
      }
    }
    Reply reply;
    reply.ok = true;
    reply.promised = log.Promised(req.name);
    Describe(req.name, now, &reply);
    FL_ASSERT(!reply.live || reply.holder != req.holder || reply.token != req.token);
    return paxos_lease_internal::EncodeReply(reply);
  }

  Result<Bytes> Query(const Request& req, MonoTime now) const {
    Reply reply;
    reply.ok = true;
    reply.promised = log.Promised(req.name);
    Describe(req.name, now, &reply);
    return paxos_lease_internal::EncodeReply(reply);
  }
};

PaxosLeaseAcceptor::PaxosLeaseAcceptor(Env& env, Rpc& rpc, const PaxosLeaseOptions& options)
    : env_(env), rpc_(rpc), options_(options) {
  state_ = std::make_unique<State>(env_, options_, stats_);
}

Result<std::unique_ptr<PaxosLeaseAcceptor>> PaxosLeaseAcceptor::Create(
    Env& env, Rpc& rpc, const PaxosLeaseOptions& options, bool restarted) {
  FL_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<PaxosLeaseAcceptor> acceptor(new PaxosLeaseAcceptor(env, rpc, options));
  FL_RETURN_IF_ERROR(acceptor->state_->log.Open());
  if (restarted) acceptor->state_->quiet_until = env.clock().Now() + options.restart_quiet;
  PaxosLeaseAcceptor* self = acceptor.get();
  for (uint16_t m = 0; m < paxos_lease_internal::kMethodCount; ++m) {
    rpc.Handle(options.method_base + m,
               [self, m](NodeId from, std::span<const uint8_t> request) -> Result<Bytes> {
                 return self->OnRequest(m, from, request);
               });
  }
  acceptor->state_->registered = true;
  return acceptor;
}

PaxosLeaseAcceptor::~PaxosLeaseAcceptor() {
  for (auto& [name, ns] : state_->names) {
    if (ns.timer) env_.executor().Cancel(ns.timer);
  }
  if (!state_->registered) return;
  // Rpc cannot unregister a method; leave a stub that no longer points at this object.
  for (uint16_t m = 0; m < paxos_lease_internal::kMethodCount; ++m) {
    rpc_.Handle(options_.method_base + m, [](NodeId, std::span<const uint8_t>) -> Result<Bytes> {
      return UnavailableError("paxos lease acceptor shut down");
    });
  }
}

Result<Bytes> PaxosLeaseAcceptor::OnRequest(uint16_t method_offset, NodeId from,
                                            std::span<const uint8_t> request) {
  FL_ASSERT(method_offset < paxos_lease_internal::kMethodCount);
  State& st = *state_;
  const MonoTime now = env_.clock().Now();
  if (now < st.quiet_until) {
    ++stats_.ignored_quiet;
    return UnavailableError("acceptor is quiet after a restart");
  }
  if (st.log.failed()) return UnavailableError("acceptor stopped after a disk error");
  const auto method = static_cast<Method>(method_offset);
  FL_ASSIGN_OR_RETURN(Request req, paxos_lease_internal::DecodeRequest(method, request));
  switch (method) {
    case Method::kPrepare:
      return st.Prepare(from, req, now);
    case Method::kPropose:
      return st.Propose(from, req, now);
    case Method::kRevoke:
      return st.Revoke(from, req, now);
    case Method::kQuery:
      return st.Query(req, now);
  }
  FL_UNREACHABLE();
}

// ---- Client ----

namespace {

// One phase's decoded answers, by acceptor index.
struct Round {
  std::vector<std::optional<Reply>> replies;  // decoded answers only
  size_t yes = 0;
  size_t rejects = 0;
  uint64_t ballot_seen_max = 0;
  Status last_error;  // the last error, timeout or undecodable reply
};

// Decodes a reply into `decoded[target]` (kept for the round) and votes on it.
QuorumVerdict ClassifyReply(std::vector<std::optional<Reply>>& decoded, size_t target,
                            const Result<Bytes>& result) {
  if (!result.ok()) return QuorumVerdict::Failure(result.status());
  Result<Reply> reply = paxos_lease_internal::DecodeReply(*result);
  if (!reply.ok()) return QuorumVerdict::Failure(reply.status());
  const bool yes = reply->ok;
  decoded[target] = std::move(reply).value();
  return yes ? QuorumVerdict::Yes() : QuorumVerdict::Reject();
}

Round MakeRound(QuorumResult result, std::vector<std::optional<Reply>> decoded) {
  Round round;
  round.yes = result.tally.yes;
  round.rejects = result.tally.rejects;
  round.last_error = std::move(result.last_failure);
  for (const std::optional<Reply>& reply : decoded) {
    if (!reply.has_value()) continue;
    round.ballot_seen_max =
        std::max({round.ballot_seen_max, reply->promised, reply->accepted_ballot});
  }
  round.replies = std::move(decoded);
  return round;
}

std::string NodeName(NodeId id) { return "node " + std::to_string(id.value()); }

// Acquire's decision over a majority of promises: the token to propose, or why not.
Result<FencingToken> DecideAcquire(const Round& round, NodeId self, uint64_t ballot) {
  const Reply* top = nullptr;  // the value accepted at the highest ballot, live or not
  uint64_t promised_before = 0;
  bool lock_delay = false;
  for (const std::optional<Reply>& r : round.replies) {
    if (!r.has_value() || !r->ok) continue;
    if (r->live && r->holder != self) {
      return AlreadyExistsError("lease held by " + NodeName(r->holder) + " (token " +
                                std::to_string(r->token.value()) + ")");
    }
    lock_delay |= r->lock_delay;
    promised_before = std::max(promised_before, r->promised);
    if (r->has_accepted && (top == nullptr || r->accepted_ballot > top->accepted_ballot)) {
      top = &*r;
    }
  }
  if (lock_delay) return UnavailableError("lock-delay: the last lease expired without a revoke");
  // Our own live value, and nothing newer anywhere in the majority: an Acquire retried after a
  // lost reply keeps its token. Otherwise a fresh token, above every ballot the majority knows.
  if (top != nullptr && top->holder == self && top->live &&
      top->accepted_ballot >= promised_before) {
    return top->token;
  }
  return FencingToken(ballot);
}

// KeepAlive's decision: the grant's value must still be live somewhere and nobody else's.
Status DecideRenewal(const Round& round, NodeId self, FencingToken token) {
  bool ours_live = false;
  for (const std::optional<Reply>& r : round.replies) {
    if (!r.has_value() || !r->ok || !r->live) continue;
    if (r->holder != self) {
      return FailedPreconditionError("another holder took the lease: " + NodeName(r->holder));
    }
    if (r->token != token) {
      return FailedPreconditionError("a newer grant of this node replaced the lease");
    }
    ours_live = true;
  }
  if (!ours_live) {
    return FailedPreconditionError("the lease expired at every acceptor of the majority");
  }
  return Status::Ok();
}

}  // namespace

struct PaxosLeaseClient::Impl {
  Impl(Env& e, Rpc& r, const PaxosLeaseOptions& o)
      : env(e), rpc(r), options(o), majority(o.acceptors.size() / 2 + 1) {}
  ~Impl() { *alive = false; }  // before `calls` tears the fan-out down

  static Status CheckName(std::string_view name) {
    if (name.empty() || name.size() > PaxosLeaseLimits::kNameBytesMax) {
      return InvalidArgumentError("name must be 1 .. PaxosLeaseLimits::kNameBytesMax bytes");
    }
    return Status::Ok();
  }
  static Status CheckRequest(std::string_view name, Duration ttl) {
    FL_RETURN_IF_ERROR(CheckName(name));
    return ValidateTtl(ttl);
  }

  Result<uint64_t> NextBallot() {
    constexpr uint64_t kRoundMax = (uint64_t{1} << 48) - 1;
    if (round >= kRoundMax) return ResourceExhaustedError("ballot rounds exhausted");
    ++round;
    return MakeBallot(round, env.self());
  }
  void Learn(const Round& r) { round = std::max(round, r.ballot_seen_max >> 16); }
  Duration PhaseTimeout(MonoTime deadline) {
    return std::min(options.round_timeout, deadline - env.clock().Now());
  }

  // One phase: `request` to every acceptor, until a majority said yes or no longer can, or
  // `timeout`. The calls live in `calls` and are not cancelled when the phase ends.
  Task<Round> RunPhase(Method method, Bytes request, Duration timeout) {
    QuorumCallOptions call;
    call.targets = options.acceptors;
    call.method = static_cast<uint16_t>(options.method_base + static_cast<uint16_t>(method));
    call.request = std::move(request);
    call.needed = majority;
    call.timeout = timeout;
    auto decoded = std::make_shared<std::vector<std::optional<Reply>>>(options.acceptors.size());
    call.classify = [decoded](size_t target, const Result<Bytes>& reply) {
      return ClassifyReply(*decoded, target, reply);
    };
    call.cancel_stragglers = false;  // they finish on their own timeout (recorded seeds rely on it)
    call.tasks = &calls;
    call.alive = alive;
    QuorumResult result = co_await QuorumCall(env, rpc, std::move(call));
    co_return MakeRound(std::move(result), std::move(*decoded));
  }

  Task<Result<LeaseGrant>> Run(std::string name, Duration ttl, std::optional<LeaseGrant> renewing);

  Env& env;
  Rpc& rpc;
  const PaxosLeaseOptions options;
  const size_t majority;
  uint64_t round = 0;  // highest ballot round used or seen
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  TaskSet calls;  // last: destroyed first, while everything its calls touch is alive
};

// Prepare then propose, retrying the prepare (with a higher ballot) when higher ballots rejected
// it. `renewing` is KeepAlive's grant: its validity bounds the whole call.
Task<Result<LeaseGrant>> PaxosLeaseClient::Impl::Run(std::string name, Duration ttl,
                                                     std::optional<LeaseGrant> renewing) {
  Clock& clock = env.clock();
  const NodeId self = env.self();
  Status last = UnavailableError("no prepare round ran");
  for (int attempt = 0; attempt < PaxosLeaseLimits::kPrepareAttemptsMax; ++attempt) {
    const MonoTime sent_at = clock.Now();
    const MonoTime valid_until =
        LeaseValidUntil(sent_at, ttl, options.drift_ppm_max, options.margin);
    if (valid_until <= sent_at) {
      co_return InvalidArgumentError("ttl leaves no validity after drift_ppm_max and margin");
    }
    const MonoTime deadline = renewing.has_value() ? renewing->valid_until : valid_until;
    if (sent_at >= deadline) co_return FailedPreconditionError("the lease's validity has passed");
    Result<uint64_t> ballot = NextBallot();
    if (!ballot.ok()) co_return ballot.status();

    Request req;
    req.name = name;
    req.ballot = *ballot;
    Bytes prepare_bytes = paxos_lease_internal::EncodeRequest(Method::kPrepare, req);
    const Round prepare_round =
        co_await RunPhase(Method::kPrepare, std::move(prepare_bytes), PhaseTimeout(deadline));
    const Round* prepare = &prepare_round;
    Learn(*prepare);
    if (clock.Now() >= deadline) {
      co_return DeadlineExceededError("prepare did not finish within the lease's validity");
    }
    // An acceptor that refused because another node holds a live lease settles it at once.
    for (const std::optional<Reply>& r : prepare->replies) {
      if (!r.has_value() || r->ok || !r->live || r->holder == self) continue;
      if (renewing.has_value()) {
        co_return FailedPreconditionError("another holder took the lease: " + NodeName(r->holder));
      }
      co_return AlreadyExistsError("lease held by " + NodeName(r->holder) + " (token " +
                                   std::to_string(r->token.value()) + ")");
    }
    if (prepare->yes < majority) {
      if (prepare->rejects == 0) {
        co_return UnavailableError("no majority answered prepare: " +
                                   prepare->last_error.ToString());
      }
      last = renewing.has_value() ? UnavailableError("prepare rejected by higher ballots")
                                  : AbortedError("prepare rejected by higher ballots");
      continue;  // with a ballot above every one the rejects reported
    }

    if (renewing.has_value()) {
      Status decided = DecideRenewal(*prepare, self, renewing->token);
      if (!decided.ok()) co_return decided;
      req.token = renewing->token;
    } else {
      Result<FencingToken> token = DecideAcquire(*prepare, self, *ballot);
      if (!token.ok()) co_return token.status();
      req.token = *token;
    }
    req.holder = self;
    req.ttl = ttl;
    Bytes propose_bytes = paxos_lease_internal::EncodeRequest(Method::kPropose, req);
    const Round propose_round =
        co_await RunPhase(Method::kPropose, std::move(propose_bytes), PhaseTimeout(deadline));
    const Round* propose = &propose_round;
    Learn(*propose);
    if (clock.Now() >= deadline) {
      co_return DeadlineExceededError("propose did not finish within the lease's validity");
    }
    if (propose->yes < majority) {
      if (propose->rejects == 0) co_return UnavailableError("no majority accepted the proposal");
      // A higher prepare came in between; the next round sees its value if it won.
      last = renewing.has_value() ? UnavailableError("proposal rejected by higher ballots")
                                  : AbortedError("proposal rejected by higher ballots");
      continue;
    }
    LeaseGrant grant;
    grant.name = std::move(name);
    grant.holder = self;
    grant.token = req.token;
    grant.ttl = ttl;
    grant.sent_at = sent_at;
    grant.valid_until = valid_until;
    FL_ASSERT(grant.Valid(clock.Now()));
    co_return grant;
  }
  co_return last;
}

PaxosLeaseClient::PaxosLeaseClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PaxosLeaseClient::~PaxosLeaseClient() = default;

Result<std::unique_ptr<PaxosLeaseClient>> PaxosLeaseClient::Create(
    Env& env, Rpc& rpc, const PaxosLeaseOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  if (env.self().value() > 0xFFFF) {
    return InvalidArgumentError("the client's node id must fit in 16 bits (ballots)");
  }
  return std::unique_ptr<PaxosLeaseClient>(
      new PaxosLeaseClient(std::make_unique<Impl>(env, rpc, options)));
}

Task<Result<LeaseGrant>> PaxosLeaseClient::Acquire(std::string name, Duration ttl) {
  Impl& impl = *impl_;
  Status valid = impl.CheckRequest(name, ttl);
  if (!valid.ok()) co_return valid;
  co_return co_await impl.Run(std::move(name), ttl, std::nullopt);
}

Task<Result<LeaseGrant>> PaxosLeaseClient::KeepAlive(LeaseGrant grant) {
  Impl& impl = *impl_;
  if (impl.env.clock().Now() >= grant.valid_until) {
    co_return FailedPreconditionError("the lease's validity has passed; acquire it again");
  }
  if (grant.holder != impl.env.self()) {
    co_return InvalidArgumentError("KeepAlive of a grant held by another node");
  }
  Status valid = impl.CheckRequest(grant.name, grant.ttl);
  if (!valid.ok()) co_return valid;
  std::string name = grant.name;
  const Duration ttl = grant.ttl;
  co_return co_await impl.Run(std::move(name), ttl, std::move(grant));
}

Task<Status> PaxosLeaseClient::Revoke(LeaseGrant grant) {
  Impl& impl = *impl_;
  if (grant.holder != impl.env.self()) {
    co_return InvalidArgumentError("Revoke of a grant held by another node");
  }
  Status valid = impl.CheckRequest(grant.name, grant.ttl);
  if (!valid.ok()) co_return valid;
  Request req;
  req.name = std::move(grant.name);
  req.holder = grant.holder;
  req.token = grant.token;
  Bytes bytes = paxos_lease_internal::EncodeRequest(Method::kRevoke, req);
  const Round round =
      co_await impl.RunPhase(Method::kRevoke, std::move(bytes), impl.options.round_timeout);
  impl.Learn(round);
  if (round.yes < impl.majority) {
    co_return UnavailableError("revoke reached no majority; the lease will expire on its own");
  }
  co_return Status::Ok();
}

Task<Result<LeaseInfo>> PaxosLeaseClient::Read(std::string name) {
  Impl& impl = *impl_;
  Status valid = Impl::CheckName(name);
  if (!valid.ok()) co_return valid;
  Request req;
  req.name = std::move(name);
  Bytes bytes = paxos_lease_internal::EncodeRequest(Method::kQuery, req);
  const Round round =
      co_await impl.RunPhase(Method::kQuery, std::move(bytes), impl.options.round_timeout);
  impl.Learn(round);
  if (round.yes < impl.majority) co_return UnavailableError("no majority answered the read");
  const Reply* best = nullptr;
  for (const std::optional<Reply>& r : round.replies) {
    if (!r.has_value() || !r->live) continue;
    if (best == nullptr || r->accepted_ballot > best->accepted_ballot) best = &*r;
  }
  if (best == nullptr) co_return NotFoundError("no live lease on the name");
  LeaseInfo info;
  info.holder = best->holder;
  info.token = best->token;
  co_return info;
}

}  // namespace faultline::lease
