// Counts heap allocations in the benchmark process (global operator new is replaced in
// alloc_counter.cc), so benchmarks can report allocations per operation.
#pragma once

#include <cstdint>

namespace faultline::bench {
uint64_t Allocations();
}  // namespace faultline::bench
