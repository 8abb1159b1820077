// Internal: the typed observations of the `distributed-txn` scenario and its checker
// (txn_checker.cc).
//
// The scenario's nodes append to one TxnObservations while the run goes on; the checker reads
// these structs alone and never learns which variant produced them.
//
//   starts    a transfer the front (the naive application server, the 2PC coordinator or the saga
//             orchestrator) accepted: from then on it must end, completed or rolled back.
//   ends      the front declared the transfer finished (decided and acknowledged by every
//             participant, or its saga reached a final state).
//   effects   every outcome a shard committed for one leg of a transfer ("T7/debit", "T7/credit",
//             "T7/refund"): applied (with the balance change) or refused (no change). Recorded
//             right after the local commit returned ok, in the same simulated event.
//   locks     2PC only: a lock a participant took at PREPARE (in doubt from its YES vote) and when
//             it released it (at the decision, or never).
//   consumed  every event the downstream consumer (a ledger service) applied or skipped as a
//             duplicate; an event's id is the effect's id.
//   balances  each shard's balances read from its store at the end of the run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>


namespace faultline::lab {
struct RunResult;  // faultline/lab/scenario.h: what a checker fills
}  // namespace faultline::lab

namespace faultline::lab {

inline constexpr int64_t kTxnNever = -1;

struct TxnStart {
  std::string transfer;
  std::string from, to;  // accounts; "s0/a1" lives on shard 0
  int64_t amount = 0;
  int64_t time_ns = 0;
};

struct TxnEnd {
  std::string transfer;
  int64_t time_ns = 0;
};

struct TxnEffect {
  std::string id;        // "T7/debit", "T7/credit", "T7/refund", "T7/uncredit": the effect id,
                         // also its event's id
  std::string transfer;
  std::string account;
  int64_t delta = 0;     // 0 when refused
  bool applied = false;  // false: the shard refused the leg (no funds, frozen account)
  uint32_t shard = 0;
  int64_t time_ns = 0;
};

struct TxnLock {
  std::string transfer;
  std::string account;
  uint32_t shard = 0;
  int64_t held_ns = 0;                 // the YES vote (durable PREPARED record)
  int64_t released_ns = kTxnNever;     // the decision applied
};

struct TxnConsumed {
  std::string event_id;
  bool applied = false;  // false: skipped as a duplicate (inbox)
  int64_t time_ns = 0;
};

struct TxnBalances {
  uint32_t shard = 0;
  int64_t total = 0;
  int64_t time_ns = 0;
};

struct TxnCounters {
  int64_t crashes_aimed = 0;
  int64_t coordinator_crashes_after_prepare = 0;
  int64_t broker_starts = 0;      // the first start and every restart after a crash
  int64_t published = 0;         // messages the broker stored (first publish of an id)
  int64_t publish_duplicates = 0;
  int64_t redeliveries = 0;
  int64_t duplicate_deliveries = 0;
  int64_t relay_republished = 0;  // messages a relay published again after a failed publish
  int64_t inbox_duplicates = 0;   // deliveries an inbox recognised as already processed
  int64_t retries = 0;           // front-side retries of a leg or a decision
  int64_t votes_no = 0;
};

struct TxnObservations {
  int64_t initial_total = 0;
  std::vector<TxnStart> starts;
  std::vector<TxnEnd> ends;
  std::vector<TxnEffect> effects;
  std::vector<TxnLock> locks;
  std::vector<TxnConsumed> consumed;
  std::vector<TxnBalances> balances;
  TxnCounters counters;
};

// How long a participant may hold locks in doubt (PREPARED, voted YES, no decision yet) before the
// check counts it as blocked. A healthy 2PC round trip here is a few ms; retries over a lossy link
// add a few hundred; a participant that waited a full second was waiting for the coordinator.
inline constexpr int64_t kBlockedBoundNs = 1'000'000'000;

// Judges the observations. Violations:
//   money-not-conserved  at a quiescent point (no transfer in flight) the effects applied so far do
//                        not sum to zero, or the final balances differ from the initial total
//   partial-transfer     an ended transfer whose applied legs are not {} / {debit, credit} /
//                        {debit, refund} / {debit, refund, credit, uncredit}
//   applied-twice        an effect applied more than once by a shard, or an event applied more
//                        than once by the consumer
//   lost-event           a committed outcome whose event the consumer never saw by the end
//   phantom-event        an event the consumer saw for which no shard committed an outcome
//   stuck-transfer       a transfer started and not ended by the end of the run
//   blocked-in-doubt     a participant held a lock in doubt longer than kBlockedBoundNs (or never
//                        released it)
// Metrics: transfers, completed, compensated, refused, lost_events, phantom_events, stuck,
// blocked_p50_ms / blocked_p99_ms / blocked_max_ms (over every in-doubt interval), and counters.
void CheckDistributedTxn(const TxnObservations& obs, int64_t run_end_ns, RunResult* result);

}  // namespace faultline::lab
