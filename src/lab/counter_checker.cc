// selftest's checker: every acknowledged increment in every replica's final value, no replica
// counting more than was attempted, all replicas equal once the faults have healed.
#include <algorithm>
#include <string>

#include "faultline/lab/scenario.h"
#include "src/lab/counter_check.h"

namespace faultline::lab {
namespace {

std::string Node(uint32_t node) { return "n" + std::to_string(node); }

}  // namespace

void CheckCounterHistory(const CounterObservations& observations, RunResult* result) {
  FL_ASSERT(!observations.final_reads.empty());
  int64_t acked = 0;
  int64_t attempted = 0;  // invoked and not definitely failed
  for (const CounterIncrement& inc : observations.increments) {
    acked += inc.outcome == Outcome::kOk ? 1 : 0;
    attempted += inc.outcome == Outcome::kFail ? 0 : 1;
  }
  const CounterRead* lo = &observations.final_reads.front();
  const CounterRead* hi = lo;
  for (const CounterRead& read : observations.final_reads) {
    if (read.value < lo->value) lo = &read;
    if (read.value > hi->value) hi = &read;
    if (read.value < acked) {
      result->Violate("lost-acknowledged-increment", 1,
                      Node(read.node) + " ended at " + std::to_string(read.value) + ", acked " +
                          std::to_string(acked));
    }
    if (read.value > attempted) {
      result->Violate("phantom-increment", 1,
                      Node(read.node) + " ended at " + std::to_string(read.value) + ", only " +
                          std::to_string(attempted) + " attempted (invoked and not failed)");
    }
  }
  if (lo->value != hi->value) {
    result->Violate("replicas-diverged", 1,
                    Node(lo->node) + " ended at " + std::to_string(lo->value) + ", " +
                        Node(hi->node) + " at " + std::to_string(hi->value));
  }
  result->metrics["acked_increments"] = static_cast<double>(acked);
  result->metrics["lost_increments"] = static_cast<double>(std::max<int64_t>(0, acked - lo->value));
  result->metrics["phantom_increments"] =
      static_cast<double>(std::max<int64_t>(0, hi->value - attempted));
  result->metrics["replica_spread"] = static_cast<double>(hi->value - lo->value);
}

check::History CounterHistory(const CounterObservations& observations) {
  HistoryExport out;
  for (const CounterIncrement& inc : observations.increments) {
    out.Add(inc.process, check::OpType::kInvoke, "inc", "1", inc.invoke_ns);
    out.End(inc.process, inc.outcome, "inc", "1", inc.end_ns);
  }
  for (const CounterRead& read : observations.final_reads) {
    out.Add(read.process, check::OpType::kInvoke, "read", "null", read.time_ns);
    out.Add(read.process, check::OpType::kOk, "read", std::to_string(read.value), read.time_ns);
  }
  return out.Build();
}

}  // namespace faultline::lab
