// The distributed-txn scenario's outbox: see txn_outbox.h.
#include "src/lab/txn_outbox.h"

#include <cstdio>
#include <cstdlib>

#include "faultline/core/bytes.h"
#include "src/lab/txn_broker.h"

namespace faultline::lab {
namespace {

constexpr const char* kNext = "ob#next";

std::string RowKey(uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ob/%016llx", static_cast<unsigned long long>(seq));
  return buf;
}

}  // namespace

Status TxnOutbox::Append(Transaction& txn, const outbox::Message& message) {
  FL_ASSIGN_OR_RETURN(std::optional<std::string> next, txn.Get(kNext));
  const uint64_t seq = next.has_value() ? std::strtoull(next->c_str(), nullptr, 10) : 0;
  Bytes v;
  ByteWriter w(&v);
  EncodeMessage(w, message);
  FL_RETURN_IF_ERROR(txn.Put(RowKey(seq), std::string(v.begin(), v.end())));
  return txn.Put(kNext, std::to_string(seq + 1));
}

Result<std::vector<TxnOutboxRecord>> TxnOutbox::Poll(size_t max) {
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, store_.Begin());
  FL_ASSIGN_OR_RETURN(std::vector<KeyValue> rows, txn->Scan("ob/", "ob0", max));
  txn->Rollback();
  std::vector<TxnOutboxRecord> out;
  for (KeyValue& row : rows) {
    TxnOutboxRecord rec;
    ByteReader r(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(row.value.data()),
                                          row.value.size()));
    FL_RETURN_IF_ERROR(DecodeMessage(r, &rec.message));
    rec.row = std::move(row.key);
    out.push_back(std::move(rec));
  }
  return out;
}

Status TxnOutbox::MarkPublished(const std::vector<TxnOutboxRecord>& records) {
  return RunInTransaction(store_, [&](Transaction& txn) -> Status {
    for (const TxnOutboxRecord& rec : records) FL_RETURN_IF_ERROR(txn.Delete(rec.row).status());
    return Status::Ok();
  });
}

}  // namespace faultline::lab
