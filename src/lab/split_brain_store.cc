// split-brain's shared store (node 5): the database, the S3 bucket, the disk array of Kleppmann's
// story. One register per key, a duplicate filter (the network duplicates requests) and, when
// fenced, a FencedKv that refuses tokens below the highest it has seen. Every decision goes into
// the run's record.
#include <map>
#include <memory>
#include <span>
#include <string>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/lease/fence.h"
#include "src/lab/split_brain.h"

namespace faultline::lab::split_brain {
Bytes EncodeWriteReply(uint64_t seq) {
  Bytes out;
  ByteWriter(&out).U64(seq);
  return out;
}

Bytes EncodeLoadReply(const std::map<uint32_t, Cell>& cells) {
  Bytes out;
  ByteWriter w(&out);
  w.U32(static_cast<uint32_t>(cells.size()));
  for (const auto& [key, cell] : cells) {
    w.U32(key);
    w.U64(cell.value);
    w.U64(cell.seq);
  }
  return out;
}

StoreOp StampStoreOp(const TrueTime& true_time, NodeId from, uint64_t token) {
  StoreOp op;
  op.time_ns = true_time.NowNs();
  op.token = token;
  op.node = from.value();
  return op;
}

namespace {

class StoreNode : public Node {
 public:
  StoreNode(Env& env, const TrueTime* true_time, Record* record, bool fenced, Observer* metrics)
      : rpc_(env), true_time_(true_time), record_(record), fenced_(fenced) {
    kv_.observe().Attach(metrics, "store");
    rpc_.Handle(kMethodStoreWrite, [this](NodeId from, std::span<const uint8_t> req) {
      return Write(from, req);
    });
    rpc_.Handle(kMethodStoreLoad, [this](NodeId from, std::span<const uint8_t> req) {
      return Load(from, req);
    });
  }

 private:
  Result<Bytes> Write(NodeId from, std::span<const uint8_t> request) {
    ByteReader r(request);
    uint64_t token = 0, write_id = 0, value = 0;
    uint32_t key = 0;
    if (!r.U64(&token).ok() || !r.U64(&write_id).ok() || !r.U32(&key).ok() ||
        !r.U64(&value).ok() || !r.empty() || key >= kKeys) {
      return InvalidArgumentError("malformed store write");
    }
    auto seen = applied_.find(write_id);
    if (seen != applied_.end()) return Reply(seen->second);  // a duplicate: same answer
    StoreOp op = Observe(from, token);
    op.key = key;
    op.value = value;
    if (fenced_) {
      const Status admitted = kv_.Put(FencingToken(token), std::to_string(key), std::to_string(value));
      if (!admitted.ok()) {
        record_->observations.push_back(op);
        return admitted;
      }
    }
    Cell& cell = cells_[key];
    cell.value = value;
    cell.seq = ++seq_;
    applied_[write_id] = cell.seq;
    op.accepted = true;
    op.seq = cell.seq;
    record_->observations.push_back(op);
    return Reply(cell.seq);
  }

  // A new leader's read of everything. Fenced: raises the token first, so that every older
  // holder's write is refused from now on.
  Result<Bytes> Load(NodeId from, std::span<const uint8_t> request) {
    ByteReader r(request);
    uint64_t token = 0;
    if (!r.U64(&token).ok() || !r.empty()) return InvalidArgumentError("malformed store load");
    StoreOp op = Observe(from, token);
    op.load = true;
    if (fenced_) {
      auto raised = kv_.RaiseAndRead(FencingToken(token));
      if (!raised.ok()) {
        record_->observations.push_back(op);
        return raised.status();
      }
    }
    op.accepted = true;
    record_->observations.push_back(op);
    return EncodeLoadReply(cells_);
  }

  StoreOp Observe(NodeId from, uint64_t token) const {
    return StampStoreOp(*true_time_, from, token);
  }

  static Result<Bytes> Reply(uint64_t seq) { return EncodeWriteReply(seq); }

  Rpc rpc_;
  const TrueTime* true_time_;
  Record* record_;
  bool fenced_;
  lease::FencedKv kv_;
  std::map<uint32_t, Cell> cells_;
  std::map<uint64_t, uint64_t> applied_;  // write id -> seq
  uint64_t seq_ = 0;
};

}  // namespace

std::unique_ptr<Node> MakeStoreNode(Env& env, const TrueTime* true_time, Record* record,
                                         bool fenced, Observer* metrics) {
  return std::make_unique<StoreNode>(env, true_time, record, fenced, metrics);
}

}  // namespace faultline::lab::split_brain
