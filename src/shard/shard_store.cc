#include "faultline/shard/shard_store.h"

#include <span>

#include "faultline/core/assert.h"
#include "faultline/core/bytes.h"

// FL_RETURN_IF_ERROR for a RunInTransaction whose body itself uses FL_RETURN_IF_ERROR (a distinct
// variable name, so the body's does not shadow it).
#define FL_SHARD_RETURN_IF_TXN_ERROR(expr)           \
  do {                                               \
    ::faultline::Status fl_txn_status_ = (expr);     \
    if (!fl_txn_status_.ok()) return fl_txn_status_; \
  } while (0)

namespace faultline::shard {
namespace {

constexpr size_t kKeyBytesMax = 1 << 16;
constexpr size_t kValueBytesMax = 1 << 30;

std::string_view AsView(const std::vector<uint8_t>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size()};
}
std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// a < b, where an empty end means +infinity.
bool EndBefore(std::string_view a, std::string_view b) {
  if (a.empty()) return false;
  if (b.empty()) return true;
  return a < b;
}
bool Overlaps(const OwnedRange& r, std::string_view begin, std::string_view end) {
  return EndBefore(begin, r.end) && (end.empty() || r.begin < end);
}

std::string EncodeRange(const OwnedRange& r) {
  std::vector<uint8_t> out;
  ByteWriter w(&out);
  w.U64(r.epoch.value());
  w.U8(static_cast<uint8_t>(r.state));
  w.Bytes(r.end);
  return std::string(AsView(out));
}

Result<OwnedRange> DecodeRange(std::string_view begin, std::string_view value) {
  ByteReader r(AsBytes(value));
  OwnedRange out;
  out.begin = std::string(begin);
  uint64_t epoch = 0;
  uint8_t state = 0;
  FL_RETURN_IF_ERROR(r.U64(&epoch));
  FL_RETURN_IF_ERROR(r.U8(&state));
  FL_RETURN_IF_ERROR(r.Bytes(&out.end, kKeyBytesMax));
  if (state < 1 || state > 4 || !r.empty()) return DataLossError("shard store: bad fence record");
  out.epoch = Epoch(epoch);
  out.state = static_cast<RangeState>(state);
  return out;
}

std::string EncodeU64(uint64_t v) {
  std::vector<uint8_t> out;
  ByteWriter(&out).U64(v);
  return std::string(AsView(out));
}

std::string EncodeLog(std::string_view key, std::optional<std::string_view> value, Epoch epoch) {
  std::vector<uint8_t> out;
  ByteWriter w(&out);
  w.U8(value.has_value() ? 1 : 0);
  w.U64(epoch.value());
  w.Bytes(key);
  if (value.has_value()) w.Bytes(*value);
  return std::string(AsView(out));
}

Result<LogEntry> DecodeLog(uint64_t seq, std::string_view bytes) {
  ByteReader r(AsBytes(bytes));
  LogEntry e;
  e.seq = seq;
  uint8_t op = 0;
  uint64_t epoch = 0;
  FL_RETURN_IF_ERROR(r.U8(&op));
  FL_RETURN_IF_ERROR(r.U64(&epoch));
  FL_RETURN_IF_ERROR(r.Bytes(&e.key, kKeyBytesMax));
  if (op == 1) {
    std::string value;
    FL_RETURN_IF_ERROR(r.Bytes(&value, kValueBytesMax));
    e.value = std::move(value);
  }
  if (op > 1 || !r.empty()) return DataLossError("shard store: bad change-log entry");
  e.epoch = Epoch(epoch);
  return e;
}

std::string Describe(const OwnedRange& r) {
  return "range [\"" + r.begin + "\", \"" + r.end + "\") " + std::string(RangeStateName(r.state)) +
         ", current epoch " + std::to_string(r.epoch.value());
}

// The client-side verdict on a record; `write` false for reads.
Status CheckClient(const std::optional<OwnedRange>& rec, std::string_view key, Epoch epoch,
                   bool write) {
  if (!rec.has_value()) {
    return FailedPreconditionError("KeyNotInShard: no range of this shard holds \"" +
                                   std::string(key) + "\"");
  }
  switch (rec->state) {
    case RangeState::kMovedOut:
      return FencedOutError("RangeMoved: " + Describe(*rec));
    case RangeState::kIncoming:
      return FailedPreconditionError("RangeNotOpen: " + Describe(*rec));
    case RangeState::kFenced:
      if (write) return FailedPreconditionError("RangeFenced: " + Describe(*rec));
      break;
    case RangeState::kServing:
      break;
  }
  if (epoch < rec->epoch) {
    return FencedOutError("StaleEpoch: request epoch " + std::to_string(epoch.value()) + " below " +
                          Describe(*rec));
  }
  return Status::Ok();
}

}  // namespace

std::string_view RangeStateName(RangeState state) {
  switch (state) {
    case RangeState::kServing:
      return "serving";
    case RangeState::kFenced:
      return "fenced";
    case RangeState::kIncoming:
      return "incoming";
    case RangeState::kMovedOut:
      return "moved-out";
  }
  return "?";
}

bool IsMoveRetryable(const Status& status) {
  if (status.code() == StatusCode::kFencedOut) return true;
  if (status.code() != StatusCode::kFailedPrecondition) return false;
  const std::string_view m = status.message();
  return m.starts_with("RangeFenced:") || m.starts_with("RangeNotOpen:") ||
         m.starts_with("EpochNotMatch");
}

bool RangeContains(std::string_view begin, std::string_view end, std::string_view key) {
  return key >= begin && (end.empty() || key < end);
}

ShardStore::ShardStore(LocalStore& store, ShardStoreOptions options)
    : store_(&store), options_(std::move(options)) {
  FL_ASSERT(!options_.prefix.empty() && options_.attempts_max >= 1 && options_.ranges_max >= 1);
}

std::string ShardStore::RowKey(std::string_view key) const {
  return options_.prefix + "d/" + std::string(key);
}
std::string ShardStore::FenceKey(std::string_view begin) const {
  return options_.prefix + "f/" + std::string(begin);
}
std::string ShardStore::LogKey(uint64_t seq) const {
  std::string key = options_.prefix + "l/";
  for (int i = 7; i >= 0; --i) key.push_back(static_cast<char>((seq >> (8 * i)) & 0xff));
  return key;
}
std::string ShardStore::HeadKey() const { return options_.prefix + "h"; }

Result<uint64_t> ShardStore::LogHead(Transaction& txn) {
  FL_ASSIGN_OR_RETURN(std::optional<std::string> head, txn.Get(HeadKey()));
  if (!head.has_value()) return uint64_t{1};
  ByteReader r(AsBytes(*head));
  uint64_t v = 0;
  FL_RETURN_IF_ERROR(r.U64(&v));
  if (v == 0 || !r.empty()) return DataLossError("shard store: bad log head");
  return v;
}

Result<uint64_t> ShardStore::BumpHead(Transaction& txn) {
  FL_ASSIGN_OR_RETURN(uint64_t seq, LogHead(txn));
  FL_RETURN_IF_ERROR(txn.Put(HeadKey(), EncodeU64(seq + 1)));
  return seq;
}

Result<std::vector<OwnedRange>> ShardStore::Ranges(Transaction& txn) {
  FL_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs,
                      txn.Scan(FenceKey(""), options_.prefix + "f0", options_.ranges_max + 1));
  if (kvs.size() > options_.ranges_max) return DataLossError("shard store: too many fence records");
  std::vector<OwnedRange> out;
  const size_t skip = FenceKey("").size();
  for (const KeyValue& kv : kvs) {
    FL_ASSIGN_OR_RETURN(OwnedRange r, DecodeRange(std::string_view(kv.key).substr(skip), kv.value));
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<OwnedRange>> ShardStore::Ranges() {
  std::vector<OwnedRange> out;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      *store_,
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(out, Ranges(txn));
        return Status::Ok();
      },
      options_.attempts_max));
  return out;
}

Result<std::optional<OwnedRange>> ShardStore::FindRange(Transaction& txn, std::string_view key) {
  FL_ASSIGN_OR_RETURN(std::vector<OwnedRange> ranges, Ranges(txn));
  for (OwnedRange& r : ranges) {
    if (RangeContains(r.begin, r.end, key)) return std::optional<OwnedRange>(std::move(r));
  }
  return std::optional<OwnedRange>();
}

Status ShardStore::Write(Transaction& txn, std::string_view key,
                         std::optional<std::string_view> value, Epoch epoch) {
  FL_ASSIGN_OR_RETURN(std::optional<OwnedRange> rec, FindRange(txn, key));
  FL_RETURN_IF_ERROR(CheckClient(rec, key, epoch, /*write=*/true));
  // Read-modify-write of the head row, which SetRange also writes: a fence change committed
  // after this transaction read the fence records conflicts here (kAborted, retried, refused).
  FL_ASSIGN_OR_RETURN(uint64_t seq, BumpHead(txn));
  if (value.has_value()) {
    FL_RETURN_IF_ERROR(txn.Put(RowKey(key), *value));
  } else {
    FL_RETURN_IF_ERROR(txn.Delete(RowKey(key)).status());
  }
  return txn.Put(LogKey(seq), EncodeLog(key, value, epoch));
}

Status ShardStore::Write(std::string_view key, std::optional<std::string_view> value, Epoch epoch) {
  std::lock_guard<std::mutex> queue(*write_mu_);
  return RunInTransaction(
      *store_, [&](Transaction& txn) { return Write(txn, key, value, epoch); },
      options_.attempts_max);
}

Result<std::optional<std::string>> ShardStore::Read(std::string_view key, Epoch epoch) {
  std::optional<std::string> out;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      *store_,
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(std::optional<OwnedRange> rec, FindRange(txn, key));
        FL_RETURN_IF_ERROR(CheckClient(rec, key, epoch, /*write=*/false));
        FL_ASSIGN_OR_RETURN(out, txn.Get(RowKey(key)));
        return Status::Ok();
      },
      options_.attempts_max));
  return out;
}

Result<uint64_t> ShardStore::SetRange(Transaction& txn, const OwnedRange& range) {
  if (!range.end.empty() && range.end <= range.begin) {
    return InvalidArgumentError("shard store: empty or inverted range");
  }
  // Read-modify-write of the head (value unchanged): the conflict that orders this change with
  // every concurrent Write (see the header).
  FL_ASSIGN_OR_RETURN(uint64_t head, LogHead(txn));
  FL_RETURN_IF_ERROR(txn.Put(HeadKey(), EncodeU64(head)));
  FL_ASSIGN_OR_RETURN(std::vector<OwnedRange> ranges, Ranges(txn));
  for (const OwnedRange& r : ranges) {
    if (!Overlaps(r, range.begin, range.end)) continue;
    FL_RETURN_IF_ERROR(txn.Delete(FenceKey(r.begin)).status());
    if (r.begin < range.begin) {
      OwnedRange left = r;
      left.end = range.begin;
      FL_RETURN_IF_ERROR(txn.Put(FenceKey(left.begin), EncodeRange(left)));
    }
    if (EndBefore(range.end, r.end)) {
      OwnedRange right = r;
      right.begin = range.end;
      FL_RETURN_IF_ERROR(txn.Put(FenceKey(right.begin), EncodeRange(right)));
    }
  }
  FL_RETURN_IF_ERROR(txn.Put(FenceKey(range.begin), EncodeRange(range)));
  return head;
}

Result<uint64_t> ShardStore::SetRange(const OwnedRange& range) {
  uint64_t head = 0;
  FL_SHARD_RETURN_IF_TXN_ERROR(RunInTransaction(
      *store_,
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(head, SetRange(txn, range));
        return Status::Ok();
      },
      options_.attempts_max));
  return head;
}

Status ShardStore::DropRange(Transaction& txn, std::string_view begin, std::string_view end) {
  FL_ASSIGN_OR_RETURN(std::vector<OwnedRange> ranges, Ranges(txn));
  for (const OwnedRange& r : ranges) {
    if (r.begin >= begin && !EndBefore(end, r.end)) {
      FL_RETURN_IF_ERROR(txn.Delete(FenceKey(r.begin)).status());
    }
  }
  return Status::Ok();
}

Result<std::vector<LogEntry>> ShardStore::ReadLog(Transaction& txn, uint64_t from, uint64_t to,
                                                  size_t limit) {
  std::vector<LogEntry> out;
  if (from >= to) return out;
  FL_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, txn.Scan(LogKey(from), LogKey(to), limit));
  const size_t skip = options_.prefix.size() + 2;
  for (const KeyValue& kv : kvs) {
    if (kv.key.size() != skip + 8) return DataLossError("shard store: bad change-log key");
    uint64_t seq = 0;
    for (size_t i = 0; i < 8; ++i) seq = (seq << 8) | static_cast<uint8_t>(kv.key[skip + i]);
    FL_ASSIGN_OR_RETURN(LogEntry e, DecodeLog(seq, kv.value));
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<KeyValue>> ShardStore::ScanRows(Transaction& txn, std::string_view begin,
                                                   std::string_view end, size_t limit) {
  const std::string hi = end.empty() ? options_.prefix + "d0" : RowKey(end);
  FL_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, txn.Scan(RowKey(begin), hi, limit));
  const size_t skip = options_.prefix.size() + 2;
  for (KeyValue& kv : kvs) kv.key.erase(0, skip);
  return kvs;
}

Status ShardStore::ApplyRow(Transaction& txn, std::string_view key,
                            std::optional<std::string_view> value) {
  if (value.has_value()) return txn.Put(RowKey(key), *value);
  return txn.Delete(RowKey(key)).status();
}

Result<size_t> ShardStore::TruncateLog(Transaction& txn, uint64_t before, size_t limit) {
  FL_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, txn.Scan(LogKey(0), LogKey(before), limit));
  for (const KeyValue& kv : kvs) FL_RETURN_IF_ERROR(txn.Delete(kv.key).status());
  return kvs.size();
}

Result<size_t> ShardStore::DeleteRows(Transaction& txn, std::string_view begin,
                                      std::string_view end, size_t limit) {
  FL_ASSIGN_OR_RETURN(std::vector<KeyValue> rows, ScanRows(txn, begin, end, limit));
  for (const KeyValue& kv : rows) FL_RETURN_IF_ERROR(txn.Delete(RowKey(kv.key)).status());
  return rows.size();
}

}  // namespace faultline::shard
