// Internal: the vocabulary of typed observations the scenarios hand their checkers, and the
// Jepsen-shaped export built from them.
//
// A scenario records what its clients and probes saw as plain structs stamped with simulated time
// (a write with its timestamp, causes and acknowledgement; a request with its outcome; a queue
// sample). Its checker is a function of that record alone. The check::History that
// `faultline replay --history` writes is generated from the same record, only when asked for: no
// value is formatted as JSON for a checker to parse back.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/check/history.h"

namespace faultline::lab {

// How a client operation ended. kPending: it had not ended when the run stopped.
enum class Outcome : uint8_t { kPending, kOk, kFail, kInfo };

// One user request of an open-loop client, as the client saw it.
struct UserRequest {
  uint64_t id = 0;
  int64_t invoke_ns = 0;
  Outcome outcome = Outcome::kPending;  // kOk or kFail once answered
  int64_t end_ns = 0;                   // when outcome != kPending
};

// Recovery of an open-loop request stream after a fault ends: success per window of invocations,
// from `start_ns`, judged on complete windows only. The window the end of the arrivals cuts short
// holds a handful of requests (backpressure seed 3307's held one, shed by the bulkhead), and one
// failed or still-pending request there reads as a 0% window; a complete window holds hundreds
// (500/s in both scenarios), so the ratio measures the design, not one request's luck. A window
// with no request is healthy.
struct WindowRecovery {
  std::vector<int64_t> ok;    // per complete window: requests that succeeded
  std::vector<int64_t> all;   // per complete window: requests invoked
  size_t first_healthy = 0;   // every window from here on is healthy; == windows(): never
  size_t last_unhealthy = 0;  // when first_healthy > 0: the window just before it
  size_t unhealthy_count = 0;
  double healthy_ratio = 0;
  size_t windows() const { return all.size(); }
  bool never() const { return first_healthy == windows() && windows() > 0; }
};
WindowRecovery MeasureWindowRecovery(const std::vector<UserRequest>& requests, int64_t start_ns,
                                     int64_t window_ns, double healthy_ratio);
// "the last unhealthy 500 ms window, at 14.500000 s, was 41% successful (20 of 49) < 90%; 3 of 30
// windows were unhealthy". Requires first_healthy > 0.
std::string DescribeLastUnhealthy(const WindowRecovery& rec, int64_t start_ns, int64_t window_ns,
                                  std::string_view window_name);

// A simulated time (nanoseconds since the run began) in seconds, six decimals: "12.004500".
std::string FormatSeconds(int64_t ns);
// A fraction as a whole percentage: "41%".
std::string FormatPercent(double fraction);
// Write ids in a detail: "[w3, w5]"; "[]" when empty.
std::string FormatIds(const std::vector<uint64_t>& ids);
// Ids as a JSON array: "[3,5]".
std::string IdsJson(const std::vector<uint64_t>& ids);

// Collects operations in any order and yields them as a History sorted by time; operations at the
// same instant keep the order they were added in. Add an operation's invocation before its
// completion.
class HistoryExport {
 public:
  void Add(int64_t process, check::OpType type, std::string_view f, std::string value_json,
           int64_t time_ns);
  // The completion of an operation: ok, fail or info by `outcome`; nothing when kPending.
  void End(int64_t process, Outcome outcome, std::string_view f, std::string value_json,
           int64_t time_ns);
  check::History Build();
  // Each request as f="request" with value {"req": id}: its invocation and, unless pending, its
  // end.
  void AddRequests(const std::vector<UserRequest>& requests);

 private:
  std::vector<check::HistoryOp> ops_;
};

}  // namespace faultline::lab
