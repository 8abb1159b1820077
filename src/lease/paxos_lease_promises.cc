// PaxosLease: the acceptor's promise file (see paxos_lease_promises.h for the layout).
#include "src/lease/paxos_lease_promises.h"

#include <algorithm>
#include <utility>

#include "faultline/core/bytes.h"
#include "faultline/core/crc32c.h"
#include "faultline/lease/paxos_lease.h"

namespace faultline::lease::paxos_lease_internal {
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


}  // namespace

Status PromiseLog::Open() {
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

Status PromiseLog::Promise(const std::string& name, uint64_t ballot) {
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

Status PromiseLog::RemoveIfExists(const std::string& file) {
  Status s = disk_.Remove(file);
  if (s.ok() || s.code() == StatusCode::kNotFound) return Status::Ok();
  return Fail(std::move(s));
}

Status PromiseLog::Compact() {
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

}  // namespace faultline::lease::paxos_lease_internal
