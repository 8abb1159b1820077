// split-brain's shared store over a LocalStore table (MakeTableStoreNode): what `faultline chaos
// split-brain --store postgresql` runs as node 5, with a PostgresStore. Every decision is the
// database's own: a write is one serializable transaction that (when fenced) checks and raises the
// fencing mark with lease::FencedStore::CheckAndRaise, takes the next sequence number from a row,
// and writes the register and a row for the write's id, so the token check, the sequence number
// and the write commit or abort together. The record's StoreOp says what the transaction decided:
// accepted with the committed sequence number, or refused (kFencedOut, nothing written).
//
// Rows (key -> value, decimal text):
//   "cell/<key>"       "<value> <seq>"      the register
//   "seq"              "<seq>"              the last sequence number handed out
//   "write/<id>"       "<seq>"              the write with this id committed with this seq
//   "\x01fence/split-brain"                 FencedStore's mark (fenced designs only)
//
// A lost connection (kUnavailable: the server restarted, or a Commit whose outcome is unknown) is
// retried every kRetryEvery for up to kRetryFor, on the node's executor (the handler is async, so
// other requests are served meanwhile). The "write/<id>" row makes the retry exact: a write whose
// Commit was in doubt and did commit is found there and recorded as accepted with its sequence
// number; one that did not commit is decided afresh. A write that stays in doubt past kRetryFor is
// not recorded (its client saw a timeout, an indeterminate outcome).
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/lease/fence.h"
#include "faultline/store/local_store.h"
#include "src/lab/split_brain.h"

namespace faultline::lab::split_brain {
namespace {

constexpr std::string_view kResource = "split-brain";
constexpr std::string_view kSeqKey = "seq";
constexpr Duration kRetryEvery = Duration::Millis(50);
constexpr Duration kRetryFor = Duration::Seconds(10);
constexpr size_t kScanMax = 1000;

std::string CellKey(uint32_t key) { return "cell/" + std::to_string(key); }
std::string WriteKey(uint64_t id) { return "write/" + std::to_string(id); }

// Decimal text to a number; kDataLoss for anything else (a tampered row is never guessed at).
Result<uint64_t> ParseNumber(std::string_view text) {
  if (text.empty() || text.size() > 20) return DataLossError("not a number: '" + std::string(text) + "'");
  uint64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return DataLossError("not a number: '" + std::string(text) + "'");
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

Result<Cell> ParseCell(std::string_view text) {
  const size_t space = text.find(' ');
  if (space == std::string_view::npos) return DataLossError("malformed register row");
  FL_ASSIGN_OR_RETURN(const uint64_t value, ParseNumber(text.substr(0, space)));
  FL_ASSIGN_OR_RETURN(const uint64_t seq, ParseNumber(text.substr(space + 1)));
  return Cell{value, seq};
}

class TableStoreNode : public Node {
 public:
  TableStoreNode(Env& env, const TrueTime* true_time, Record* record, bool fenced,
                 LocalStore& table)
      : env_(env), rpc_(env), true_time_(true_time), record_(record), fenced_(fenced),
        table_(table) {
    rpc_.HandleAsync(kMethodStoreWrite, [this](NodeId from, Bytes request, MonoTime) {
      return Write(from, std::move(request));
    });
    rpc_.HandleAsync(kMethodStoreLoad, [this](NodeId from, Bytes request, MonoTime) {
      return Load(from, std::move(request));
    });
  }

 private:
  struct WriteDecision {
    bool duplicate = false;  // the write's id row existed: committed earlier
    uint64_t seq = 0;
  };

  // One write transaction: the duplicate check, the fence, the sequence number, the register.
  Status WriteTxn(Transaction& txn, uint64_t token, uint64_t write_id, uint32_t key,
                  uint64_t value, WriteDecision* out) {
    FL_ASSIGN_OR_RETURN(const std::optional<std::string> seen, txn.Get(WriteKey(write_id)));
    if (seen) {
      FL_ASSIGN_OR_RETURN(out->seq, ParseNumber(*seen));
      out->duplicate = true;
      return Status::Ok();
    }
    if (fenced_) {
      FL_RETURN_IF_ERROR(lease::FencedStore::CheckAndRaise(txn, kResource, FencingToken(token)));
    }
    FL_ASSIGN_OR_RETURN(const std::optional<std::string> last, txn.Get(kSeqKey));
    uint64_t seq = 1;
    if (last) {
      FL_ASSIGN_OR_RETURN(const uint64_t n, ParseNumber(*last));
      seq = n + 1;
    }
    FL_RETURN_IF_ERROR(txn.Put(kSeqKey, std::to_string(seq)));
    FL_RETURN_IF_ERROR(txn.Put(CellKey(key), std::to_string(value) + " " + std::to_string(seq)));
    FL_RETURN_IF_ERROR(txn.Put(WriteKey(write_id), std::to_string(seq)));
    out->duplicate = false;
    out->seq = seq;
    return Status::Ok();
  }

  Task<Result<Bytes>> Write(NodeId from, Bytes request) {
    ByteReader r(request);
    uint64_t token = 0, write_id = 0, value = 0;
    uint32_t key = 0;
    if (!r.U64(&token).ok() || !r.U64(&write_id).ok() || !r.U32(&key).ok() ||
        !r.U64(&value).ok() || !r.empty() || key >= kKeys) {
      co_return InvalidArgumentError("malformed store write");
    }
    const MonoTime give_up = env_.clock().Now() + kRetryFor;
    WriteDecision decision;
    Status status;
    while (true) {
      status = RunInTransaction(table_, [&](Transaction& txn) {
        return WriteTxn(txn, token, write_id, key, value, &decision);
      });
      if (status.code() != StatusCode::kUnavailable || env_.clock().Now() >= give_up) break;
      const Status slept = co_await Sleep(env_.executor(), kRetryEvery);
      if (!slept.ok()) co_return slept;
    }
    StoreOp op = Observe(from, token);
    op.key = key;
    op.value = value;
    if (status.ok()) {
      // A duplicate of a write recorded already is answered alike and not recorded again; one
      // never recorded is a commit whose acknowledgement was lost (the in-doubt case above).
      if (decision.duplicate && !recorded_.insert(write_id).second) co_return EncodeWriteReply(decision.seq);
      recorded_.insert(write_id);
      op.accepted = true;
      op.seq = decision.seq;
      record_->observations.push_back(op);
      co_return EncodeWriteReply(decision.seq);
    }
    if (status.code() == StatusCode::kFencedOut) record_->observations.push_back(op);
    co_return status;  // refused, or not decided (nothing recorded)
  }

  // A new leader's read of everything; fenced: raises the mark in the same transaction.
  Task<Result<Bytes>> Load(NodeId from, Bytes request) {
    ByteReader r(request);
    uint64_t token = 0;
    if (!r.U64(&token).ok() || !r.empty()) co_return InvalidArgumentError("malformed store load");
    const MonoTime give_up = env_.clock().Now() + kRetryFor;
    std::map<uint32_t, Cell> cells;
    Status status;
    while (true) {
      status = RunInTransaction(table_, [&](Transaction& txn) -> Status {
        cells.clear();
        if (fenced_) {
          FL_RETURN_IF_ERROR(
              lease::FencedStore::CheckAndRaise(txn, kResource, FencingToken(token)));
        }
        FL_ASSIGN_OR_RETURN(const std::vector<KeyValue> rows, txn.Scan("cell/", "cell0", kScanMax));
        for (const KeyValue& row : rows) {
          FL_ASSIGN_OR_RETURN(const uint64_t key, ParseNumber(std::string_view(row.key).substr(5)));
          FL_ASSIGN_OR_RETURN(const Cell cell, ParseCell(row.value));
          cells[static_cast<uint32_t>(key)] = cell;
        }
        return Status::Ok();
      });
      if (status.code() != StatusCode::kUnavailable || env_.clock().Now() >= give_up) break;
      const Status slept = co_await Sleep(env_.executor(), kRetryEvery);
      if (!slept.ok()) co_return slept;
    }
    StoreOp op = Observe(from, token);
    op.load = true;
    op.accepted = status.ok();
    if (status.ok() || status.code() == StatusCode::kFencedOut) record_->observations.push_back(op);
    if (!status.ok()) co_return status;
    co_return EncodeLoadReply(cells);
  }

  // Stamped when the database has decided (the store runs one transaction at a time, so the
  // stamps follow the commit order).
  StoreOp Observe(NodeId from, uint64_t token) const {
    return StampStoreOp(*true_time_, from, token);
  }

  Env& env_;
  Rpc rpc_;
  const TrueTime* true_time_;
  Record* record_;
  bool fenced_;
  LocalStore& table_;
  std::set<uint64_t> recorded_;  // write ids recorded as accepted
};

}  // namespace

std::unique_ptr<Node> MakeTableStoreNode(Env& env, const TrueTime* true_time, Record* record,
                                         bool fenced, LocalStore& table) {
  return std::make_unique<TableStoreNode>(env, true_time, record, fenced, table);
}

}  // namespace faultline::lab::split_brain
