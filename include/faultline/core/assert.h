// File: faultline/core/assert.h
//
// FL_ASSERT is always on, in every build mode, like FoundationDB's ASSERT and seastar's
// SEASTAR_ASSERT. A failed assertion is a programmer error: it prints the condition, file and line
// to stderr and aborts. Operating errors (bad input, a peer that went away) return a Status.
#pragma once

namespace faultline::internal {
[[noreturn]] void AssertFail(const char* condition, const char* file, int line, const char* message);
}  // namespace faultline::internal

#define FL_ASSERT(cond)                                                                 \
  do {                                                                                  \
    if (__builtin_expect(!(cond), 0)) {                                                 \
      ::faultline::internal::AssertFail(#cond, __FILE__, __LINE__, nullptr);            \
    }                                                                                   \
  } while (0)

#define FL_ASSERT_MSG(cond, msg)                                                        \
  do {                                                                                  \
    if (__builtin_expect(!(cond), 0)) {                                                 \
      ::faultline::internal::AssertFail(#cond, __FILE__, __LINE__, (msg));              \
    }                                                                                   \
  } while (0)

#define FL_UNREACHABLE() ::faultline::internal::AssertFail("unreachable", __FILE__, __LINE__, nullptr)
