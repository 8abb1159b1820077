// PaxosLease: option validation and the wire format (see faultline/lease/paxos_lease.h).
#include <algorithm>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/core/options.h"
#include "faultline/lease/paxos_lease.h"

namespace faultline::lease {

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
      w.U64(request.ballot);  // 0: whichever ballot accepted the token
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
  if (method == Method::kRevoke) FL_RETURN_IF_ERROR(Field(r.U64(&req.ballot), "ballot"));
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

}  // namespace faultline::lease
