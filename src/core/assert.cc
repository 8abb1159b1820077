#include "faultline/core/assert.h"

#include <cstdio>
#include <cstdlib>

namespace faultline::internal {

void AssertFail(const char* condition, const char* file, int line, const char* message) {
  if (message != nullptr) {
    std::fprintf(stderr, "%s:%d: FL_ASSERT failed: %s (%s)\n", file, line, condition, message);
  } else {
    std::fprintf(stderr, "%s:%d: FL_ASSERT failed: %s\n", file, line, condition);
  }
  std::fflush(stderr);
  std::abort();
}

}  // namespace faultline::internal
