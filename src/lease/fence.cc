#include "faultline/lease/fence.h"

#include <algorithm>
#include <charconv>
#include <string>
#include <system_error>
#include <utility>

#include "faultline/core/assert.h"
#include "faultline/core/buggify.h"

namespace faultline::lease {
namespace {

constexpr std::string_view kMarkPrefix = "\001fence/";  // octal: "\x01f" would be one char

std::string MarkKey(std::string_view resource) {
  std::string key;
  key.reserve(kMarkPrefix.size() + resource.size());
  key.append(kMarkPrefix);
  key.append(resource);
  return key;
}

// Strict decimal: 1 to 20 digits, no sign, no leading zero (except "0"), fits in uint64. The mark
// is only ever written by EncodeMark, so anything else is corruption, not a token to guess at.
bool DecodeMark(std::string_view text, uint64_t* out) {
  if (text.empty() || text.size() > 20) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

std::string EncodeMark(FencingToken token) { return std::to_string(token.value()); }

// The highest token recorded for `key` in `txn`, nullopt when none was (the read is recorded by the
// transaction, so a concurrent raise makes this transaction's commit fail with kAborted).
Result<std::optional<FencingToken>> ReadMark(Transaction& txn, std::string_view key) {
  FL_ASSIGN_OR_RETURN(std::optional<std::string> stored, txn.Get(key));
  if (!stored.has_value()) return std::optional<FencingToken>();
  uint64_t value = 0;
  if (!DecodeMark(*stored, &value)) {
    std::string message = "corrupt fencing mark at key \"";
    message.append(key.substr(1));  // drop the unprintable \x01
    message.append("\": \"");
    message.append(stored->substr(0, 32));
    message.append("\"");
    return DataLossError(message);
  }
  return std::optional<FencingToken>(FencingToken(value));
}

// A user key inside the marks' namespace could overwrite a mark and un-fence a stale holder.
Status CheckUserKey(std::string_view key) {
  if (key.substr(0, kMarkPrefix.size()) == kMarkPrefix) {
    return InvalidArgumentError("key is in the reserved fencing-mark namespace \"\\x01fence/\"");
  }
  return Status::Ok();
}

}  // namespace

Status StaleTokenError(FencingToken token, FencingToken highest) {
  FL_PROBE("fence.stale_token_rejected");
  // Formatted on the stack: the Status itself is then the only allocation.
  char buf[80];
  char* p = buf;
  auto append = [&p, &buf](std::string_view text) {
    FL_ASSERT(static_cast<size_t>(buf + sizeof(buf) - p) >= text.size());
    p = std::copy(text.begin(), text.end(), p);
  };
  auto append_number = [&p, &buf](uint64_t v) {
    const auto [end, ec] = std::to_chars(p, buf + sizeof(buf), v);
    FL_ASSERT(ec == std::errc());
    p = end;
  };
  append("fencing token ");
  append_number(token.value());
  append(" is below ");
  append_number(highest.value());
  return FencedOutError(std::string_view(buf, static_cast<size_t>(p - buf)));
}

// --- FenceGuard ----------------------------------------------------------------------------------

Status FenceGuard::Admit(FencingToken token) {
  uint64_t seen = highest_.load(std::memory_order_acquire);
  const uint64_t t = token.value();
  while (t > seen) {
    if (highest_.compare_exchange_weak(seen, t, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
      return Status::Ok();
    }
  }
  if (t == seen) return Status::Ok();
  // `seen` is the mark that refused the token: report it, not a later (possibly higher) reload.
  FL_ASSERT(t < seen);
  observer_.Emit(EventKind::kFencingRejected, MonoTime(), static_cast<int64_t>(t),
                 static_cast<int64_t>(seen));
  return StaleTokenError(token, FencingToken(seen));
}

// --- FencedStore ---------------------------------------------------------------------------------

FencedStore::FencedStore(LocalStore& store, std::string resource)
    : store_(store), resource_(std::move(resource)) {
  FL_ASSERT_MSG(!resource_.empty(), "a fenced resource needs a name");
}

Status FencedStore::CheckAndRaise(Transaction& txn, std::string_view resource, FencingToken token) {
  return CheckAndRaise(txn, resource, token, nullptr);
}

Status FencedStore::CheckAndRaise(Transaction& txn, std::string_view resource, FencingToken token,
                                  FencingToken* mark) {
  FL_ASSERT_MSG(!resource.empty(), "a fenced resource needs a name");
  const std::string key = MarkKey(resource);
  FL_ASSIGN_OR_RETURN(const std::optional<FencingToken> highest, ReadMark(txn, key));
  if (highest.has_value() && token < *highest) {
    if (mark != nullptr) *mark = *highest;
    return StaleTokenError(token, *highest);
  }
  // Equal: nothing to write. The read alone keeps the rule, since it is recorded: a raise that
  // commits before this transaction does makes its Commit fail with kAborted.
  if (!highest.has_value() || token > *highest) {
    FL_RETURN_IF_ERROR(txn.Put(key, EncodeMark(token)));
  }
  return Status::Ok();
}

Status FencedStore::CheckNotLowered(Transaction& txn) const {
  if (seen_ == FencingToken(0)) return Status::Ok();
  FL_ASSIGN_OR_RETURN(const std::optional<FencingToken> mark, ReadMark(txn, MarkKey(resource_)));
  if (mark.has_value() && *mark >= seen_) return Status::Ok();
  return DataLossError("fencing mark of " + resource_ + " went backwards: the store holds " +
                       (mark.has_value() ? std::to_string(mark->value()) : std::string("none")) +
                       ", this writer saw " + std::to_string(seen_.value()) +
                       " committed (tampered with or restored from an old copy)");
}

Status FencedStore::Put(FencingToken token, std::string_view key, std::string_view value) {
  FL_RETURN_IF_ERROR(CheckUserKey(key));
  FencingToken mark;
  Status s = RunInTransaction(
      store_,
      [&](Transaction& txn) -> Status {
        FL_RETURN_IF_ERROR(CheckNotLowered(txn));
        FL_RETURN_IF_ERROR(CheckAndRaise(txn, resource_, token, &mark));
        return txn.Put(key, value);
      },
      kCommitAttemptsMax);
  return Reported(std::move(s), token, mark);
}

Status FencedStore::Delete(FencingToken token, std::string_view key) {
  FL_RETURN_IF_ERROR(CheckUserKey(key));
  FencingToken mark;
  Status s = RunInTransaction(
      store_,
      [&](Transaction& txn) -> Status {
        FL_RETURN_IF_ERROR(CheckNotLowered(txn));
        FL_RETURN_IF_ERROR(CheckAndRaise(txn, resource_, token, &mark));
        return txn.Delete(key).status();
      },
      kCommitAttemptsMax);
  return Reported(std::move(s), token, mark);
}

Status FencedStore::Raise(FencingToken token) {
  FencingToken mark;
  Status s = RunInTransaction(
      store_,
      [&](Transaction& txn) -> Status {
        FL_RETURN_IF_ERROR(CheckNotLowered(txn));
        return CheckAndRaise(txn, resource_, token, &mark);
      },
      kCommitAttemptsMax);
  return Reported(std::move(s), token, mark);
}

Status FencedStore::Reported(Status s, FencingToken token, FencingToken mark) {
  if (s.ok()) seen_ = std::max(seen_, token);  // committed: the mark is at least token now
  if (s.code() == StatusCode::kFencedOut) {
    observer_.Emit(EventKind::kFencingRejected, MonoTime(), static_cast<int64_t>(token.value()),
                   static_cast<int64_t>(mark.value()));
  }
  return s;
}

// Reads commit rather than roll back: under PostgreSQL's SERIALIZABLE a transaction that is rolled
// back is never validated, so a rolled-back read may observe a state no serial order contains (a
// mark raised but the old holder's later write missing). Committing validates the read.
Result<FencingToken> FencedStore::Highest() {
  std::optional<FencingToken> highest;
  FL_RETURN_IF_ERROR(RunInTransaction(
      store_,
      [&](Transaction& txn) -> Status {
        const Status lowered = CheckNotLowered(txn);
        if (!lowered.ok()) return lowered;
        FL_ASSIGN_OR_RETURN(highest, ReadMark(txn, MarkKey(resource_)));
        return Status::Ok();
      },
      kCommitAttemptsMax));
  seen_ = std::max(seen_, highest.value_or(FencingToken(0)));
  return highest.value_or(FencingToken(0));
}

Result<std::optional<std::string>> FencedStore::Get(std::string_view key) {
  std::optional<std::string> value;
  FL_RETURN_IF_ERROR(RunInTransaction(
      store_,
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(value, txn.Get(key));
        return Status::Ok();
      },
      kCommitAttemptsMax));
  return value;
}

// --- FencedKv ------------------------------------------------------------------------------------

Status FencedKv::Put(FencingToken token, const std::string& key, std::string value) {
  if (!guard_.TryAdmit(token)) {
    ++rejected_;
    return StaleTokenError(token, guard_.highest());
  }
  data_.insert_or_assign(key, std::move(value));
  return Status::Ok();
}

Result<std::map<std::string, std::string>> FencedKv::RaiseAndRead(FencingToken token) {
  if (!guard_.TryAdmit(token)) {
    ++rejected_;
    return StaleTokenError(token, guard_.highest());
  }
  return data_;
}

std::optional<std::string> FencedKv::Get(const std::string& key) const {
  const auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second;
}

}  // namespace faultline::lease
