// File: faultline/core/status.h
//
// Status and Result<T>: how every faultline operation reports an operating error. No exception
// crosses the public API. Codes are the canonical gRPC / abseil codes; prefer the most specific:
// kFailedPrecondition for "the system is not in a state for this", kAborted for "retry the whole
// transaction", kUnavailable for "retry this call later", kResourceExhausted for "shed, do not
// retry now".
//
// An ok Status holds no allocation; copying or moving it is a pointer copy.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "faultline/core/assert.h"

namespace faultline {

enum class StatusCode : uint8_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  // A write carried a fencing token below the highest the resource has seen: its sender has been
  // superseded (faultline-specific; not a gRPC code).
  kFencedOut = 16,
};

// Returns the canonical name, e.g. "INVALID_ARGUMENT".
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string_view message);

  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  std::string_view message() const { return rep_ ? std::string_view(rep_->message) : ""; }

  // "OK" or "CODE: message".
  std::string ToString() const;

  // Marks a status as deliberately dropped.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code() == b.code() && a.message() == b.message();
  }

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::unique_ptr<Rep> rep_;
};

Status CancelledError(std::string_view message);
Status InvalidArgumentError(std::string_view message);
Status DeadlineExceededError(std::string_view message);
Status NotFoundError(std::string_view message);
Status AlreadyExistsError(std::string_view message);
Status ResourceExhaustedError(std::string_view message);
Status FailedPreconditionError(std::string_view message);
Status AbortedError(std::string_view message);
Status OutOfRangeError(std::string_view message);
Status UnimplementedError(std::string_view message);
Status InternalError(std::string_view message);
Status UnavailableError(std::string_view message);
Status DataLossError(std::string_view message);
Status FencedOutError(std::string_view message);

// Result<T> holds either a T or a non-ok Status. Accessing value() of an error is a programmer
// error and fails FL_ASSERT.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(const T& value) : data_(value) {}                 // NOLINT: implicit by design
  Result(T&& value) : data_(std::move(value)) {}           // NOLINT
  Result(Status status) : data_(std::move(status)) {       // NOLINT
    FL_ASSERT_MSG(!std::get<Status>(data_).ok(), "Result constructed from an ok Status");
  }

  bool ok() const { return data_.index() == 0; }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<1>(data_);
  }
  Status TakeStatus() && { return ok() ? Status() : std::move(std::get<1>(data_)); }

  T& value() & {
    FL_ASSERT_MSG(ok(), "value() of an error Result");
    return std::get<0>(data_);
  }
  const T& value() const& {
    FL_ASSERT_MSG(ok(), "value() of an error Result");
    return std::get<0>(data_);
  }
  T&& value() && {
    FL_ASSERT_MSG(ok(), "value() of an error Result");
    return std::move(std::get<0>(data_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> data_;
};

namespace internal {
inline Status AsStatus(const Status& s) { return s; }
inline Status AsStatus(Status&& s) { return std::move(s); }
template <typename T>
Status AsStatus(Result<T>&& r) {
  return std::move(r).TakeStatus();
}
}  // namespace internal

}  // namespace faultline

#define FL_STATUS_CONCAT_INNER(a, b) a##b
#define FL_STATUS_CONCAT(a, b) FL_STATUS_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` (a Status) is not ok.
#define FL_RETURN_IF_ERROR(expr)                                   \
  do {                                                             \
    ::faultline::Status fl_status_ = (expr);                       \
    if (!fl_status_.ok()) return fl_status_;                       \
  } while (0)

// FL_ASSIGN_OR_RETURN(auto x, ResultExpr()) — declares or assigns `lhs` from the value, or returns
// the error Status from the enclosing function.
#define FL_ASSIGN_OR_RETURN(lhs, expr) \
  FL_ASSIGN_OR_RETURN_IMPL(FL_STATUS_CONCAT(fl_result_, __LINE__), lhs, expr)
#define FL_ASSIGN_OR_RETURN_IMPL(result, lhs, expr)         \
  auto result = (expr);                                     \
  if (!result.ok()) return std::move(result).TakeStatus();  \
  lhs = std::move(result).value()
