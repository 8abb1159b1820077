#include "faultline/store/log_store.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/core/crc32c.h"
#include "faultline/core/options.h"
#include "src/store/log_store_transaction.h"

namespace faultline {
namespace {

constexpr size_t kRecordHeaderBytes = 8;      // u32 payload length, u32 CRC
constexpr size_t kPayloadBytesMin = 9;        // u64 seq, one-byte varint op count
constexpr uint64_t kOpOverheadBytesMax = 11;  // kind byte + two varints of 32-bit lengths
constexpr size_t kSuperblockBytes = 12;       // u64 generation, u32 CRC
constexpr uint64_t kEmptySnapshotBytes = kRecordHeaderBytes + kPayloadBytesMin;
constexpr uint8_t kOpPut = 1;
constexpr uint8_t kOpDelete = 2;

// The largest payload a store with these options can write; the decoder trusts nothing longer.
uint64_t PayloadBytesMax(const LogStoreOptions& o) {
  return 8 + 10 + kOpOverheadBytesMax * o.txn_writes_max + o.txn_bytes_max;
}

void PutFixed32(uint8_t* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Starts a record at the end of *out; FinishRecord fills in its length and CRC.
size_t BeginRecord(std::vector<uint8_t>* out, uint64_t seq, uint64_t op_count) {
  const size_t start = out->size();
  out->resize(start + kRecordHeaderBytes);
  ByteWriter w(out);
  w.U64(seq);
  w.Varint(op_count);
  return start;
}

void FinishRecord(std::vector<uint8_t>* out, size_t start, const LogStoreOptions& options) {
  const size_t payload_bytes = out->size() - start - kRecordHeaderBytes;
  // Pairs with the decoder's bound: the writer never produces a record the reader would refuse.
  FL_ASSERT(payload_bytes >= kPayloadBytesMin && payload_bytes <= PayloadBytesMax(options));
  const std::span<const uint8_t> payload(out->data() + start + kRecordHeaderBytes, payload_bytes);
  PutFixed32(out->data() + start, static_cast<uint32_t>(payload_bytes));
  PutFixed32(out->data() + start + 4, Crc32c(payload));
}

void EncodePut(ByteWriter& w, std::string_view key, std::string_view value) {
  w.U8(kOpPut);
  w.Bytes(key);
  w.Bytes(value);
}

void EncodeDelete(ByteWriter& w, std::string_view key) {
  w.U8(kOpDelete);
  w.Bytes(key);
}

std::array<uint8_t, kSuperblockBytes> EncodeSuperblock(uint64_t generation) {
  std::vector<uint8_t> bytes;
  ByteWriter w(&bytes);
  w.U64(generation);
  w.U32(Crc32c(bytes));
  FL_ASSERT(bytes.size() == kSuperblockBytes);
  std::array<uint8_t, kSuperblockBytes> out{};
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

// The generation of `file` when it is one of this store's log files.
std::optional<uint64_t> ParseLogGeneration(std::string_view name, std::string_view file) {
  const std::string prefix = std::string(name) + ".log.";
  if (!file.starts_with(prefix)) return std::nullopt;
  const std::string_view digits = file.substr(prefix.size());
  if (digits.empty() || digits.size() > 20) return std::nullopt;
  uint64_t generation = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), generation);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return generation;
}

struct DecodedOp {
  uint8_t kind = 0;
  std::string key;
  std::string value;
};

// Decodes a CRC-checked payload completely before anything is applied, so a bad record changes
// nothing.
Status DecodePayload(std::span<const uint8_t> payload, const LogStoreOptions& options,
                     uint64_t* seq, std::vector<DecodedOp>* ops) {
  ByteReader r(payload);
  uint64_t op_count = 0;
  FL_RETURN_IF_ERROR(r.U64(seq));
  FL_RETURN_IF_ERROR(r.Varint(&op_count));
  if (op_count > options.txn_writes_max) {
    return DataLossError("record op count over txn_writes_max");
  }
  ops->resize(op_count);
  for (DecodedOp& op : *ops) {
    FL_RETURN_IF_ERROR(r.U8(&op.kind));
    FL_RETURN_IF_ERROR(r.Bytes(&op.key, options.key_bytes_max));
    if (op.key.empty()) return DataLossError("record holds an empty key");
    if (op.kind == kOpPut) {
      FL_RETURN_IF_ERROR(r.Bytes(&op.value, options.value_bytes_max));
    } else if (op.kind != kOpDelete) {
      return DataLossError("record holds an unknown op kind");
    }
  }
  if (!r.empty()) return DataLossError("trailing bytes after the record's ops");
  return Status::Ok();
}

}  // namespace

Status LogStoreOptions::Validate() const {
  FL_CHECK_OPTION(!name.empty() && name.size() <= 255, "name must be 1..255 bytes");
  FL_CHECK_OPTION(wal_bytes_max > 0, "wal_bytes_max must be > 0");
  FL_CHECK_OPTION(key_bytes_max > 0 && key_bytes_max <= (1u << 24),
                  "key_bytes_max must be in [1, 2^24]");
  FL_CHECK_OPTION(value_bytes_max <= (1u << 28), "value_bytes_max must be <= 2^28");
  FL_CHECK_OPTION(txn_writes_max > 0 && txn_writes_max <= (1u << 24),
                  "txn_writes_max must be in [1, 2^24]");
  FL_CHECK_OPTION(txn_bytes_max >= uint64_t{key_bytes_max} + value_bytes_max,
                  "txn_bytes_max must be >= key_bytes_max + value_bytes_max");
  FL_CHECK_OPTION(txn_bytes_max <= (uint64_t{1} << 30), "txn_bytes_max must be <= 2^30");
  FL_CHECK_OPTION(txn_reads_max > 0, "txn_reads_max must be > 0");
  FL_CHECK_OPTION(open_txns_max > 0, "open_txns_max must be > 0");
  FL_CHECK_OPTION(scan_limit_max > 0, "scan_limit_max must be > 0");
  // Follows from the bounds above; the record length field is 32 bits.
  FL_ASSERT(PayloadBytesMax(*this) <= UINT32_MAX);
  return Status::Ok();
}

std::string LogStore::LogFileName(std::string_view name, uint64_t generation) {
  return std::string(name) + ".log." + std::to_string(generation);
}

std::string LogStore::SuperblockFileName(std::string_view name, int slot) {
  FL_ASSERT(slot == 0 || slot == 1);
  return std::string(name) + (slot == 0 ? ".super.a" : ".super.b");
}

LogStore::LogStore(Disk& disk, LogStoreOptions options)
    : disk_(disk), options_(std::move(options)) {}

LogStore::~LogStore() {
  FL_ASSERT_MSG(open_txns_ == 0, "LogStore destroyed while transactions are open");
}

Result<std::unique_ptr<LogStore>> LogStore::Open(Disk& disk, LogStoreOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<LogStore> store(new LogStore(disk, std::move(options)));
  FL_RETURN_IF_ERROR(store->Recover());
  FL_ASSERT(store->generation_ > 0 && !store->log_file_.empty());
  return store;
}

Status LogStore::Recover() {
  FL_ASSIGN_OR_RETURN(const SlotState slot_a, ReadSlot(0));
  FL_ASSIGN_OR_RETURN(const SlotState slot_b, ReadSlot(1));
  if (slot_a.generation == 0 && slot_b.generation == 0) {
    FL_RETURN_IF_ERROR(CheckNeverInitialized(slot_b));
    FL_RETURN_IF_ERROR(WriteGeneration(1, 0));
    return RemoveStaleLogs();
  }
  super_slot_ = slot_b.generation > slot_a.generation ? 1 : 0;
  generation_ = std::max(slot_a.generation, slot_b.generation);
  log_file_ = LogFileName(options_.name, generation_);
  Result<std::vector<uint8_t>> log = disk_.ReadAll(log_file_);
  if (!log.ok()) {
    if (log.status().code() != StatusCode::kNotFound) return log.status();
    return DataLossError("the superblock names a generation whose log file is missing");
  }
  FL_ASSIGN_OR_RETURN(const uint64_t good_bytes, Replay(*log));
  FL_ASSERT(good_bytes <= log->size());
  if (good_bytes < log->size()) {
    // Later appends must never follow garbage: cut the torn tail off before anything else.
    FL_RETURN_IF_ERROR(disk_.Truncate(log_file_, good_bytes));
    stats_.recovered_tail_discarded = true;
    stats_.recovered_tail_bytes = log->size() - good_bytes;
  }
  // What we just read may be an unsynced write still in the page cache (the last process died
  // after a failed fsync, without a power loss). Serving it and then losing it in a crash would
  // un-commit data that readers saw, so make the log and the slot naming it durable first; only
  // then may the other generations' logs go.
  FL_RETURN_IF_ERROR(disk_.Sync(log_file_));
  FL_RETURN_IF_ERROR(disk_.Sync(SuperblockFileName(options_.name, super_slot_)));
  log_bytes_ = good_bytes;
  return RemoveStaleLogs();
}

Result<LogStore::SlotState> LogStore::ReadSlot(int slot) {
  std::array<uint8_t, kSuperblockBytes> bytes{};
  Result<size_t> read = disk_.Read(SuperblockFileName(options_.name, slot), 0, bytes);
  if (!read.ok()) {
    if (read.status().code() == StatusCode::kNotFound) return SlotState{};
    return read.status();
  }
  if (*read < kSuperblockBytes) return SlotState{true, 0};  // torn
  ByteReader r(bytes);
  uint64_t generation = 0;
  uint32_t crc = 0;
  FL_ASSERT(r.U64(&generation).ok() && r.U32(&crc).ok());
  if (Crc32c(std::span<const uint8_t>(bytes.data(), 8)) != crc) return SlotState{true, 0};
  return SlotState{true, generation};
}

Status LogStore::CheckNeverInitialized(const SlotState& slot_b) {
  // Slot b is first written by the first compaction, after slot a was valid; and until Open has
  // returned once, generation 1's log holds at most the empty snapshot.
  if (slot_b.exists) return DataLossError("no valid superblock slot");
  for (const std::string& file : disk_.List()) {
    const std::optional<uint64_t> generation = ParseLogGeneration(options_.name, file);
    if (!generation) continue;
    FL_ASSIGN_OR_RETURN(const uint64_t size, disk_.Size(file));
    if (*generation != 1 || size > kEmptySnapshotBytes) {
      return DataLossError("no valid superblock slot, but log files hold data");
    }
  }
  return Status::Ok();
}

Result<uint64_t> LogStore::Replay(std::span<const uint8_t> log) {
  ByteReader r(log);
  uint64_t good_bytes = 0;
  while (!r.empty()) {
    uint32_t length = 0;
    uint32_t crc = 0;
    std::span<const uint8_t> payload;
    if (!r.U32(&length).ok() || !r.U32(&crc).ok()) break;            // torn header
    if (length < kPayloadBytesMin || length > r.remaining()) break;  // torn or zero-filled
    FL_ASSERT(r.Raw(length, &payload).ok());
    if (Crc32c(payload) != crc) break;  // torn or never written
    // From here the record was written whole by a LogStore: failing to apply it is data loss.
    if (length > PayloadBytesMax(options_)) {
      return DataLossError("log record longer than these options allow (limits lowered?)");
    }
    Status applied = ApplyRecord(payload);
    if (!applied.ok()) {
      return DataLossError("undecodable log record with a valid CRC: " + applied.ToString());
    }
    good_bytes = r.position();
    ++stats_.recovered_records;
  }
  return good_bytes;
}

Status LogStore::ApplyRecord(std::span<const uint8_t> payload) {
  uint64_t seq = 0;
  std::vector<DecodedOp> ops;
  FL_RETURN_IF_ERROR(DecodePayload(payload, options_, &seq, &ops));
  if (seq < last_seq_) return DataLossError("commit seq decreases along the log");
  for (DecodedOp& op : ops) {
    if (op.kind == kOpPut) {
      data_.insert_or_assign(std::move(op.key), std::move(op.value));
    } else {
      data_.erase(op.key);
    }
  }
  last_seq_ = seq;
  return Status::Ok();
}

Status LogStore::RemoveStaleLogs() {
  for (const std::string& file : disk_.List()) {
    const std::optional<uint64_t> generation = ParseLogGeneration(options_.name, file);
    if (generation && *generation != generation_) FL_RETURN_IF_ERROR(disk_.Remove(file));
  }
  return Status::Ok();
}

Status LogStore::Step(LogStoreCompactionStep step) const {
  if (!options_.compaction_hook_for_test) return Status::Ok();
  return options_.compaction_hook_for_test(step);
}

std::vector<uint8_t> LogStore::EncodeSnapshot() const {
  std::vector<uint8_t> out;
  auto it = data_.begin();
  do {  // at least one record, so even an empty state carries last_seq_
    auto chunk_end = it;
    uint64_t count = 0;
    uint64_t bytes = 0;
    while (chunk_end != data_.end() && count < options_.txn_writes_max) {
      const uint64_t pair_bytes = chunk_end->first.size() + chunk_end->second.size();
      if (bytes + pair_bytes > options_.txn_bytes_max) break;
      bytes += pair_bytes;
      ++count;
      ++chunk_end;
    }
    FL_ASSERT(count > 0 || data_.empty());  // Validate() makes every pair fit in a record
    const size_t start = BeginRecord(&out, last_seq_, count);
    ByteWriter w(&out);
    for (; it != chunk_end; ++it) EncodePut(w, it->first, it->second);
    FinishRecord(&out, start, options_);
  } while (it != data_.end());
  return out;
}

Status LogStore::WriteGeneration(uint64_t generation, int slot) {
  FL_ASSERT(generation > generation_ && (slot == 0 || slot == 1));
  FL_ASSERT(generation_ == 0 || slot != super_slot_);  // never overwrite the live slot
  const std::string log_file = LogFileName(options_.name, generation);
  if (disk_.Size(log_file).ok()) FL_RETURN_IF_ERROR(disk_.Remove(log_file));
  const std::vector<uint8_t> snapshot = EncodeSnapshot();
  FL_RETURN_IF_ERROR(disk_.Write(log_file, 0, snapshot));
  FL_RETURN_IF_ERROR(Step(LogStoreCompactionStep::kSnapshotWritten));
  FL_RETURN_IF_ERROR(disk_.Sync(log_file));
  FL_RETURN_IF_ERROR(Step(LogStoreCompactionStep::kSnapshotSynced));
  const std::string super_file = SuperblockFileName(options_.name, slot);
  FL_RETURN_IF_ERROR(disk_.Write(super_file, 0, EncodeSuperblock(generation)));
  FL_RETURN_IF_ERROR(Step(LogStoreCompactionStep::kSuperblockWritten));
  FL_RETURN_IF_ERROR(disk_.Sync(super_file));
  FL_RETURN_IF_ERROR(Step(LogStoreCompactionStep::kSuperblockSynced));
  generation_ = generation;
  super_slot_ = slot;
  log_file_ = log_file;
  log_bytes_ = snapshot.size();
  snapshot_bytes_ = snapshot.size();
  return Status::Ok();
}

Status LogStore::Compact() {
  if (poisoned()) return poison_;
  const uint64_t old_generation = generation_;
  Status status = WriteGeneration(old_generation + 1, 1 - super_slot_);
  // Removing the old log is cleanup: a leftover is removed by the next Open.
  if (status.ok()) status = disk_.Remove(LogFileName(options_.name, old_generation));
  if (status.ok()) status = Step(LogStoreCompactionStep::kOldLogRemoved);
  if (!status.ok()) {
    Poison(status);
    return poison_;
  }
  ++stats_.compactions;
  FL_ASSERT(generation_ == old_generation + 1 && log_bytes_ == snapshot_bytes_);
  return Status::Ok();
}

void LogStore::MaybeCompact() {
  if (poisoned()) return;
  if (log_bytes_ <= std::max(options_.wal_bytes_max, 2 * snapshot_bytes_)) return;
  Compact().IgnoreError();  // failure poisons; the commit that got here is durable regardless
}

void LogStore::Poison(const Status& cause) {
  FL_ASSERT(!cause.ok());
  if (poisoned()) return;
  poison_ =
      UnavailableError("log store poisoned by an I/O failure, reopen it: " + cause.ToString());
}

Result<std::unique_ptr<Transaction>> LogStore::Begin() {
  if (poisoned()) return poison_;
  if (open_txns_ >= options_.open_txns_max) {
    return ResourceExhaustedError("open_txns_max transactions already open");
  }
  ++open_txns_;
  ++open_begin_seqs_[last_seq_];
  return std::unique_ptr<Transaction>(new internal::LogStoreTransaction(this, last_seq_));
}

bool LogStore::HasConflict(const internal::LogStoreTransaction& txn) const {
  if (modified_seq_.empty()) return false;
  for (const std::string& key : txn.read_keys_) {
    const auto it = modified_seq_.find(key);
    if (it != modified_seq_.end() && it->second > txn.begin_seq_) return true;
  }
  for (const auto& range : txn.read_ranges_) {
    for (auto it = modified_seq_.lower_bound(range.begin);
         it != modified_seq_.end() && (!range.bounded || it->first < range.end); ++it) {
      if (it->second > txn.begin_seq_) return true;
    }
  }
  return false;
}

Status LogStore::CommitTransaction(const internal::LogStoreTransaction& txn) {
  FL_ASSERT(!txn.finished_ && txn.store_ == this);
  if (poisoned()) return poison_;
  if (HasConflict(txn)) {
    ++stats_.aborts;
    return AbortedError("a key this transaction read was changed by a later commit");
  }
  if (txn.writes_.empty()) {
    ++stats_.read_only_commits;
    return Status::Ok();
  }
  const uint64_t seq = last_seq_ + 1;
  std::vector<uint8_t> record;
  const size_t start = BeginRecord(&record, seq, txn.writes_.size());
  ByteWriter w(&record);
  for (const auto& [key, value] : txn.writes_) {
    if (value) {
      EncodePut(w, key, *value);
    } else {
      EncodeDelete(w, key);
    }
  }
  FinishRecord(&record, start, options_);
  Status io = disk_.Write(log_file_, log_bytes_, record);
  if (io.ok()) io = disk_.Sync(log_file_);
  if (!io.ok()) {
    Poison(io);  // nothing applied in memory: the caller was never told it committed
    return poison_;
  }
  log_bytes_ += record.size();
  last_seq_ = seq;
  // Only transactions open now can conflict with this commit; with none, skip the bookkeeping.
  const bool track = open_txns_ > 1;
  for (const auto& [key, value] : txn.writes_) {
    if (value) {
      data_.insert_or_assign(key, *value);
    } else {
      data_.erase(key);
    }
    if (track) {
      modified_seq_.insert_or_assign(key, seq);
      modified_order_.emplace_back(seq, key);
    }
  }
  ++stats_.commits;
  return Status::Ok();
}

void LogStore::EndTransaction(uint64_t begin_seq) {
  FL_ASSERT(open_txns_ > 0);
  const auto it = open_begin_seqs_.find(begin_seq);
  FL_ASSERT(it != open_begin_seqs_.end() && it->second > 0);
  if (--it->second == 0) open_begin_seqs_.erase(it);
  --open_txns_;
  FL_ASSERT((open_txns_ == 0) == open_begin_seqs_.empty());
  PruneVersions();
}

void LogStore::PruneVersions() {
  if (open_txns_ == 0) {
    modified_seq_.clear();
    modified_order_.clear();
    return;
  }
  // A change at or before the oldest open transaction's begin can conflict with nobody.
  const uint64_t oldest_begin = open_begin_seqs_.begin()->first;
  while (!modified_order_.empty() && modified_order_.front().first <= oldest_begin) {
    const auto& [seq, key] = modified_order_.front();
    const auto it = modified_seq_.find(key);
    FL_ASSERT(it != modified_seq_.end() && it->second >= seq);
    if (it->second == seq) modified_seq_.erase(it);  // else changed again later: keep
    modified_order_.pop_front();
  }
  FL_ASSERT(modified_seq_.size() <= modified_order_.size());
}

LogStoreStats LogStore::stats() const {
  LogStoreStats stats = stats_;
  stats.generation = generation_;
  stats.log_bytes = log_bytes_;
  stats.last_commit_seq = last_seq_;
  stats.keys = data_.size();
  stats.versions_tracked = modified_seq_.size();
  stats.open_transactions = open_txns_;
  return stats;
}

}  // namespace faultline
