#include "faultline/outbox/outbox.h"

#include <span>
#include <utility>

#include "faultline/core/bytes.h"
#include "faultline/core/options.h"

namespace faultline::outbox {

namespace {

constexpr uint8_t kRecordVersion = 1;

void AppendVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void AppendBytes(std::string& out, std::string_view bytes) {
  AppendVarint(out, bytes.size());
  out.append(bytes);
}

std::string BigEndian(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

uint64_t FromBigEndian(std::string_view bytes) {
  uint64_t v = 0;
  for (char c : bytes) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

}  // namespace

namespace internal {

std::string CounterKey(std::string_view prefix) { return std::string(prefix) + "c"; }

std::string RecordKey(std::string_view prefix, uint64_t seq) {
  return std::string(prefix) + "m" + BigEndian(seq);
}

std::string EncodeRecord(const Message& message) {
  std::string out(1, static_cast<char>(kRecordVersion));
  out.reserve(1 + 4 * 3 + message.id.size() + message.subject.size() + message.key.size() +
              message.payload.size());
  AppendBytes(out, message.id);
  AppendBytes(out, message.subject);
  AppendBytes(out, message.key);
  AppendBytes(out, message.payload);
  return out;
}

Result<OutboxRecord> DecodeRecord(std::string_view prefix, std::string_view key,
                                  std::string_view value) {
  if (key.size() != prefix.size() + 9 || key.substr(0, prefix.size()) != prefix ||
      key[prefix.size()] != 'm') {
    return DataLossError("outbox record key does not decode");
  }
  OutboxRecord record;
  record.seq = FromBigEndian(key.substr(prefix.size() + 1));
  ByteReader reader(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(value.data()), value.size()));
  uint8_t version = 0;
  Status status = reader.U8(&version);
  if (status.ok() && version != kRecordVersion) {
    return DataLossError("outbox record has unknown version " + std::to_string(version));
  }
  Message& m = record.message;
  constexpr size_t kMax = size_t{1} << 31;
  for (std::string* field : {&m.id, &m.subject, &m.key, &m.payload}) {
    if (status.ok()) status = reader.Bytes(field, kMax);
  }
  if (status.ok() && !reader.empty()) status = DataLossError("trailing bytes");
  if (!status.ok()) {
    return DataLossError("outbox record " + std::to_string(record.seq) +
                         " does not decode: " + std::string(status.message()));
  }
  return record;
}

uint64_t KeyHash(std::string_view key) {
  uint64_t h = 14695981039346656037ull;
  for (char c : key) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ull;
  }
  return h & ~(uint64_t{1} << 63);
}

}  // namespace internal

Status OutboxOptions::Validate() const {
  FL_CHECK_OPTION(!prefix.empty(), "prefix must be non-empty");
  FL_CHECK_OPTION(payload_bytes_max > 0, "payload_bytes_max must be > 0");
  FL_CHECK_OPTION(payload_bytes_max <= (size_t{1} << 30), "payload_bytes_max must be <= 2^30");
  return Status::Ok();
}

Result<std::unique_ptr<Outbox>> Outbox::Create(LocalStore& store, OutboxOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<Outbox>(new Outbox(store, std::move(options)));
}

Result<uint64_t> Outbox::Append(Transaction& txn, const Message& message) {
  FL_RETURN_IF_ERROR(ValidateMessage(message, options_.payload_bytes_max));
  const std::string counter_key = internal::CounterKey(options_.prefix);
  FL_ASSIGN_OR_RETURN(std::optional<std::string> counter, txn.Get(counter_key));
  uint64_t seq = 1;
  if (counter.has_value()) {
    if (counter->size() != 8) return DataLossError("outbox counter does not decode");
    seq = FromBigEndian(*counter);
    if (seq == 0 || seq == UINT64_MAX) return DataLossError("outbox counter is out of range");
  }
  FL_RETURN_IF_ERROR(
      txn.Put(internal::RecordKey(options_.prefix, seq), internal::EncodeRecord(message)));
  FL_RETURN_IF_ERROR(txn.Put(counter_key, BigEndian(seq + 1)));
  return seq;
}

Result<uint64_t> Outbox::AppendOne(const Message& message) {
  FL_RETURN_IF_ERROR(ValidateMessage(message, options_.payload_bytes_max));
  uint64_t seq = 0;
  FL_RETURN_IF_ERROR(RunInTransaction(store_, [&](Transaction& txn) -> Status {
    FL_ASSIGN_OR_RETURN(seq, Append(txn, message));
    return Status::Ok();
  }));
  return seq;
}

}  // namespace faultline::outbox
