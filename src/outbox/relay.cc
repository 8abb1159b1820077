#include "faultline/outbox/relay.h"

#include <algorithm>
#include <utility>

#include "faultline/core/buggify.h"
#include "faultline/core/options.h"
#include "faultline/lease/fence.h"

namespace faultline::outbox {

namespace {

// Attempts of one Poll or MarkPublished transaction when Commit conflicts.
constexpr uint32_t kCommitAttemptsMax = 32;
// Rows one Poll may scan past (other partitions' events) before returning what it has.
constexpr size_t kScanRowsMax = 65536;

class LocalStoreSource final : public OutboxSource {
 public:
  LocalStoreSource(LocalStore& store, OutboxOptions options)
      : store_(store), options_(std::move(options)) {}

  // Scans from the cursor: every event of this partition below it was marked by this source, and
  // every event committed later has a higher seq than every event committed before (outbox.h), so
  // nothing can appear below it.
  Result<std::vector<OutboxRecord>> Poll(size_t max, uint32_t partition,
                                         uint32_t partitions) override {
    std::vector<OutboxRecord> out;
    const Status status = RunInTransaction(
        store_,
        [&](Transaction& txn) -> Status {
          out.clear();
          return ScanInto(txn, max, partition, partitions, out);
        },
        kCommitAttemptsMax);
    if (!status.ok()) return status;
    return out;
  }

  Status MarkPublished(std::span<const OutboxRecord> records, std::optional<FencingToken> token,
                       const std::string& fence_resource) override {
    if (records.empty()) return Status::Ok();
    const Status status = RunInTransaction(
        store_,
        [&](Transaction& txn) -> Status {
          if (token.has_value()) {
            FL_RETURN_IF_ERROR(lease::FencedStore::CheckAndRaise(txn, fence_resource, *token));
          }
          for (const OutboxRecord& record : records) {
            FL_RETURN_IF_ERROR(
                txn.Delete(internal::RecordKey(options_.prefix, record.seq)).status());
          }
          return Status::Ok();
        },
        kCommitAttemptsMax);
    FL_RETURN_IF_ERROR(status);
    cursor_ = std::max(cursor_, records.back().seq + 1);
    return Status::Ok();
  }

 private:
  Status ScanInto(Transaction& txn, size_t max, uint32_t partition, uint32_t partitions,
                  std::vector<OutboxRecord>& out) {
    const size_t chunk = std::clamp<size_t>(max * partitions, 64, 4096);
    std::string begin = internal::RecordKey(options_.prefix, cursor_);
    const std::string end = options_.prefix + "n";
    size_t scanned = 0;
    while (out.size() < max && scanned < kScanRowsMax) {
      FL_ASSIGN_OR_RETURN(std::vector<KeyValue> rows, txn.Scan(begin, end, chunk));
      for (const KeyValue& row : rows) {
        FL_ASSIGN_OR_RETURN(OutboxRecord record,
                            internal::DecodeRecord(options_.prefix, row.key, row.value));
        if (internal::KeyHash(record.message.key) % partitions != partition) continue;
        out.push_back(std::move(record));
        if (out.size() == max) break;
      }
      scanned += rows.size();
      if (rows.size() < chunk) break;
      begin = rows.back().key;
      begin.push_back('\0');
    }
    return Status::Ok();
  }

  LocalStore& store_;
  const OutboxOptions options_;
  uint64_t cursor_ = 0;
};

}  // namespace

std::unique_ptr<OutboxSource> NewLocalStoreSource(LocalStore& store, OutboxOptions options) {
  return std::make_unique<LocalStoreSource>(store, std::move(options));
}

Status RelayOptions::Validate() const {
  FL_CHECK_OPTION(batch_max >= 1 && batch_max <= 100000, "batch_max must be in [1, 100000]");
  FL_CHECK_OPTION(partitions >= 1 && partitions <= 65536, "partitions must be in [1, 65536]");
  FL_CHECK_OPTION(partition < partitions, "partition must be < partitions");
  FL_CHECK_OPTION(!fence_resource.empty(), "fence_resource must be non-empty");
  return Status::Ok();
}

Result<std::unique_ptr<Relay>> Relay::Create(std::unique_ptr<OutboxSource> source,
                                             RelayOptions options, TokenSource token) {
  FL_RETURN_IF_ERROR(options.Validate());
  if (source == nullptr) return InvalidArgumentError("relay source must be non-null");
  return std::unique_ptr<Relay>(new Relay(std::move(source), std::move(options), std::move(token)));
}

Result<std::unique_ptr<Relay>> Relay::Create(LocalStore& store, OutboxOptions outbox_options,
                                             RelayOptions options, TokenSource token) {
  FL_RETURN_IF_ERROR(outbox_options.Validate());
  return Create(NewLocalStoreSource(store, std::move(outbox_options)), std::move(options),
                std::move(token));
}

Result<std::optional<FencingToken>> Relay::CurrentToken() {
  if (!token_) return std::optional<FencingToken>();
  std::optional<FencingToken> token = token_();
  if (!token.has_value()) {
    ++stats_.fenced;
    return FencedOutError("outbox relay is not the leader");
  }
  return token;
}

Result<std::vector<OutboxRecord>> Relay::Poll(size_t max) {
  if (max == 0 || max > options_.batch_max) {
    return InvalidArgumentError("relay poll max must be in [1, batch_max]");
  }
  ++stats_.polls;
  last_poll_.clear();
  FL_ASSIGN_OR_RETURN(std::vector<OutboxRecord> records,
                      source_->Poll(max, options_.partition, options_.partitions));
  for (const OutboxRecord& record : records) last_poll_.push_back(record.seq);
  return records;
}

Status Relay::MarkPublished(std::span<const OutboxRecord> published) {
  if (published.size() > last_poll_.size()) {
    return InvalidArgumentError("marked events are not a prefix of the last poll");
  }
  for (size_t i = 0; i < published.size(); ++i) {
    if (published[i].seq != last_poll_[i]) {
      return InvalidArgumentError("marked events are not a prefix of the last poll");
    }
  }
  if (published.empty()) return Status::Ok();
  FL_ASSIGN_OR_RETURN(std::optional<FencingToken> token, CurrentToken());
  const Status status = source_->MarkPublished(published, token, options_.fence_resource);
  if (status.code() == StatusCode::kFencedOut) {
    FL_PROBE("outbox.relay_fenced_out");
    ++stats_.fenced;
  }
  FL_RETURN_IF_ERROR(status);
  stats_.marked += published.size();
  last_poll_.erase(last_poll_.begin(),
                   last_poll_.begin() + static_cast<std::ptrdiff_t>(published.size()));
  return Status::Ok();
}

Result<size_t> Relay::RunOnce(Publisher& publisher) {
  FL_RETURN_IF_ERROR(CurrentToken().status());
  FL_ASSIGN_OR_RETURN(std::vector<OutboxRecord> records, Poll(options_.batch_max));
  observer_.Emit(EventKind::kOutboxLag, MonoTime(), static_cast<int64_t>(records.size()));
  if (records.empty()) return size_t{0};
  std::vector<Message> batch;
  batch.reserve(records.size());
  // MarkPublished reads only the seqs: the messages move into the batch.
  for (OutboxRecord& record : records) batch.push_back(std::move(record.message));
  const Status published = publisher.Publish(batch);
  if (!published.ok()) {
    ++stats_.publish_errors;
    return published;
  }
  stats_.published += records.size();
  FL_RETURN_IF_ERROR(MarkPublished(records));
  return records.size();
}

}  // namespace faultline::outbox
