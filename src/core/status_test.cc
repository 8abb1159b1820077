// Unit tests for faultline/core/status.h: Status, Result<T> and the propagation macros.
#include "faultline/core/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

namespace faultline {
namespace {

constexpr StatusCode kAllCodes[] = {
    StatusCode::kOk,
    StatusCode::kCancelled,
    StatusCode::kUnknown,
    StatusCode::kInvalidArgument,
    StatusCode::kDeadlineExceeded,
    StatusCode::kNotFound,
    StatusCode::kAlreadyExists,
    StatusCode::kPermissionDenied,
    StatusCode::kResourceExhausted,
    StatusCode::kFailedPrecondition,
    StatusCode::kAborted,
    StatusCode::kOutOfRange,
    StatusCode::kUnimplemented,
    StatusCode::kInternal,
    StatusCode::kUnavailable,
    StatusCode::kDataLoss,
    StatusCode::kFencedOut,
};

TEST(StatusTest, DefaultAndOkAreOkWithEmptyMessage) {
  // The ok Status is the null representation: default-constructed and Ok() must agree, report
  // kOk and carry no message, or callers that compare statuses would see phantom errors.
  const Status a;
  const Status b = Status::Ok();
  EXPECT_TRUE(a.ok());
  EXPECT_TRUE(b.ok());
  EXPECT_EQ(a.code(), StatusCode::kOk);
  EXPECT_EQ(a.message(), "");
  EXPECT_EQ(a.ToString(), "OK");
  EXPECT_EQ(a, b);
}

TEST(StatusTest, OkCodeWithMessageDropsTheMessage) {
  // Status(kOk, "...") must still be ok and message-free: ok is defined as "no representation",
  // and an ok status carrying text would compare unequal to Status::Ok().
  const Status s(StatusCode::kOk, "ignored");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s, Status::Ok());
}

TEST(StatusTest, EveryCodeHasADistinctCanonicalName) {
  // Logs and the RPC wire format identify errors by code; two codes sharing a name (or an
  // unhandled code falling through to the default) would make reports ambiguous.
  std::set<std::string> names;
  for (StatusCode c : kAllCodes) {
    const std::string_view name = StatusCodeName(c);
    EXPECT_NE(name, "UNKNOWN_CODE") << static_cast<int>(c);
    names.insert(std::string(name));
  }
  EXPECT_EQ(names.size(), std::size(kAllCodes));
  EXPECT_EQ(StatusCodeName(StatusCode::kDeadlineExceeded), "DEADLINE_EXCEEDED");
  EXPECT_EQ(StatusCodeName(StatusCode::kDataLoss), "DATA_LOSS");
  EXPECT_EQ(StatusCodeName(StatusCode::kFencedOut), "FENCED_OUT");
  EXPECT_EQ(StatusCodeName(static_cast<StatusCode>(200)), "UNKNOWN_CODE");
}

TEST(StatusTest, HelperConstructorsSetTheirCodeAndMessage) {
  // Each XxxError helper must produce exactly its canonical code; a swapped helper would silently
  // turn e.g. a retryable kUnavailable into a fatal kDataLoss.
  struct Case {
    Status status;
    StatusCode code;
  };
  const Case cases[] = {
      {CancelledError("m"), StatusCode::kCancelled},
      {InvalidArgumentError("m"), StatusCode::kInvalidArgument},
      {DeadlineExceededError("m"), StatusCode::kDeadlineExceeded},
      {NotFoundError("m"), StatusCode::kNotFound},
      {AlreadyExistsError("m"), StatusCode::kAlreadyExists},
      {ResourceExhaustedError("m"), StatusCode::kResourceExhausted},
      {FailedPreconditionError("m"), StatusCode::kFailedPrecondition},
      {AbortedError("m"), StatusCode::kAborted},
      {OutOfRangeError("m"), StatusCode::kOutOfRange},
      {UnimplementedError("m"), StatusCode::kUnimplemented},
      {InternalError("m"), StatusCode::kInternal},
      {UnavailableError("m"), StatusCode::kUnavailable},
      {DataLossError("m"), StatusCode::kDataLoss},
      {FencedOutError("m"), StatusCode::kFencedOut},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(c.status.ok());
    EXPECT_EQ(c.status.code(), c.code);
    EXPECT_EQ(c.status.message(), "m");
  }
}

TEST(StatusTest, ToStringIsCodeColonMessage) {
  // The "CODE: message" shape is what traces and the CLI print; pin it.
  EXPECT_EQ(NotFoundError("no such key").ToString(), "NOT_FOUND: no such key");
  EXPECT_EQ(Status(StatusCode::kAborted, "").ToString(), "ABORTED: ");
}

TEST(StatusTest, CopyIsDeepAndIndependent) {
  // Status owns its message: a copy must survive the original being overwritten or destroyed
  // (a shallow copy would leave a dangling message).
  auto original = std::make_unique<Status>(UnavailableError("peer gone"));
  Status copy(*original);
  Status assigned;
  assigned = *original;
  *original = InternalError("other");
  original.reset();
  EXPECT_EQ(copy.code(), StatusCode::kUnavailable);
  EXPECT_EQ(copy.message(), "peer gone");
  EXPECT_EQ(assigned, copy);
  // Self-assignment keeps the value.
  Status& alias = assigned;
  assigned = alias;
  EXPECT_EQ(assigned.message(), "peer gone");
  // Copying an ok status yields ok.
  Status ok_copy(copy);
  ok_copy = Status::Ok();
  EXPECT_TRUE(ok_copy.ok());
}

TEST(StatusTest, MoveTransfersCodeAndMessage) {
  // Moving is how statuses travel up the stack; the destination must hold the full error.
  Status src = AbortedError("retry txn");
  Status dst(std::move(src));
  EXPECT_EQ(dst.code(), StatusCode::kAborted);
  EXPECT_EQ(dst.message(), "retry txn");
  Status dst2;
  dst2 = std::move(dst);
  EXPECT_EQ(dst2.code(), StatusCode::kAborted);
  EXPECT_EQ(dst2.message(), "retry txn");
}

TEST(StatusTest, EqualityComparesCodeAndMessage) {
  // Two errors are equal only when both code and message match.
  EXPECT_EQ(NotFoundError("a"), NotFoundError("a"));
  EXPECT_FALSE(NotFoundError("a") == NotFoundError("b"));
  EXPECT_FALSE(NotFoundError("a") == AbortedError("a"));
  EXPECT_FALSE(NotFoundError("") == Status::Ok());
}

TEST(ResultTest, HoldsValueOrError) {
  // Result<T> must expose the value when ok and the exact error otherwise, with status() of an
  // ok result reporting ok.
  Result<int> v = 42;
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 42);
  EXPECT_EQ(v.value(), 42);
  EXPECT_TRUE(v.status().ok());

  Result<int> e = NotFoundError("missing");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e.status().message(), "missing");
  const Status taken = std::move(e).TakeStatus();
  EXPECT_EQ(taken.code(), StatusCode::kNotFound);

  Result<int> v2 = 7;
  EXPECT_TRUE(std::move(v2).TakeStatus().ok());
}

TEST(ResultTest, SupportsMoveOnlyValuesAndArrow) {
  // Results carry buffers and owned objects; move-only T must work and operator-> must reach it.
  Result<std::unique_ptr<std::string>> r = std::make_unique<std::string>("abc");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->size(), 3u);
  std::unique_ptr<std::string> p = std::move(r).value();
  EXPECT_EQ(*p, "abc");

  Result<std::string> s = std::string("hello");
  EXPECT_EQ(s->size(), 5u);
  const Result<std::string>& cs = s;
  EXPECT_EQ(cs->front(), 'h');
  EXPECT_EQ(cs.value(), "hello");
}

TEST(ResultDeathTest, ProgrammerErrorsAbort) {
  // Constructing a Result from an ok Status, or reading value() of an error, is a programmer
  // error and must crash loudly rather than yield an indeterminate T.
  EXPECT_DEATH(
      {
        Result<int> r(Status::Ok());
        (void)r;
      },
      "Result constructed from an ok Status");
  EXPECT_DEATH(
      {
        Result<int> r(InternalError("x"));
        (void)r.value();
      },
      "value\\(\\) of an error Result");
}

// --- propagation macros ---------------------------------------------------------------------

int g_evaluations = 0;

Status CountedStatus(Status s) {
  ++g_evaluations;
  return s;
}

Result<int> ParsePositive(int x) {
  if (x <= 0) return InvalidArgumentError("not positive");
  return x;
}

Status TwoSteps(Status first, Status second, int* reached) {
  *reached = 0;
  FL_RETURN_IF_ERROR(CountedStatus(std::move(first)));
  *reached = 1;
  FL_RETURN_IF_ERROR(CountedStatus(std::move(second)));
  *reached = 2;
  return Status::Ok();
}

Status SumTwo(int a, int b, int* out) {
  FL_ASSIGN_OR_RETURN(int x, ParsePositive(a));
  FL_ASSIGN_OR_RETURN(const int y, ParsePositive(b));
  *out = x + y;
  return Status::Ok();
}

Result<std::string> Describe(int a) {
  std::string prefix = "n=";
  FL_ASSIGN_OR_RETURN(int x, ParsePositive(a));
  int doubled = 0;
  FL_ASSIGN_OR_RETURN(doubled, ParsePositive(2 * x));  // assigns an existing variable
  return prefix + std::to_string(doubled);
}

TEST(StatusMacrosTest, ReturnIfErrorStopsAtFirstErrorAndEvaluatesOnce) {
  // FL_RETURN_IF_ERROR must return the failing status unchanged, skip everything after it, and
  // evaluate its argument exactly once (a macro that evaluated twice would repeat side effects).
  int reached = -1;
  g_evaluations = 0;
  EXPECT_TRUE(TwoSteps(Status::Ok(), Status::Ok(), &reached).ok());
  EXPECT_EQ(reached, 2);
  EXPECT_EQ(g_evaluations, 2);

  g_evaluations = 0;
  const Status s = TwoSteps(Status::Ok(), AbortedError("second"), &reached);
  EXPECT_EQ(s, AbortedError("second"));
  EXPECT_EQ(reached, 1);
  EXPECT_EQ(g_evaluations, 2);

  g_evaluations = 0;
  EXPECT_EQ(TwoSteps(DataLossError("first"), Status::Ok(), &reached), DataLossError("first"));
  EXPECT_EQ(reached, 0);
  EXPECT_EQ(g_evaluations, 1);
}

TEST(StatusMacrosTest, AssignOrReturnAssignsOrPropagates) {
  // FL_ASSIGN_OR_RETURN must bind the value on success and return the error (code and message)
  // from functions returning Status and Result<U> alike; two uses in one scope must not clash.
  int out = 0;
  EXPECT_TRUE(SumTwo(2, 3, &out).ok());
  EXPECT_EQ(out, 5);
  out = -1;
  EXPECT_EQ(SumTwo(2, -3, &out), InvalidArgumentError("not positive"));
  EXPECT_EQ(out, -1);

  Result<std::string> d = Describe(4);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, "n=8");
  Result<std::string> bad = Describe(0);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace faultline
