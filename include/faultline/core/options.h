// File: faultline/core/options.h
//
// The Options-with-limits pattern. Every component that queues, batches, retries, maps or runs has
// an Options struct whose fields carry their unit in the name (`ttl_ms`, `queue_depth_max`) and a
// default, and a `Status Validate() const` that names the offending field:
//
//   struct BulkheadOptions {
//     uint32_t concurrency_max = 16;
//     uint32_t queue_depth_max = 64;
//     Duration queue_wait_max = Duration::Millis(50);
//     Status Validate() const {
//       FL_CHECK_OPTION(concurrency_max > 0, "concurrency_max must be > 0");
//       FL_CHECK_OPTION(queue_wait_max >= Duration::Zero(), "queue_wait_max must be >= 0");
//       return Status::Ok();
//     }
//   };
//
// Constructors of such components are private; a static `Create(options)` returns
// Result<std::unique_ptr<T>> so that invalid options never produce a half-built object.
#pragma once

#include "faultline/core/status.h"

#define FL_CHECK_OPTION(cond, message)                                   \
  do {                                                                   \
    if (!(cond)) return ::faultline::InvalidArgumentError(message);      \
  } while (0)
