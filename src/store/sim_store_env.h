// Test fixtures shared by the tests of the stateful patterns (idempotency, outbox, saga): Must /
// MustOk for results a test expects to succeed, and a LogStore on a SimDisk with a ManualClock
// that can lose power and recover.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "faultline/core/assert.h"
#include "faultline/core/random.h"
#include "faultline/env/clock.h"
#include "faultline/sim/disk.h"
#include "faultline/store/log_store.h"

namespace faultline::testing {

template <typename T>
T Must(Result<T> result) {
  FL_ASSERT_MSG(result.ok(), result.status().ToString().c_str());
  return std::move(result).value();
}

inline void MustOk(const Status& status) { FL_ASSERT_MSG(status.ok(), status.ToString().c_str()); }

struct SimStoreEnv {
  explicit SimStoreEnv(uint64_t seed = 1) : rng(seed), disk(&rng) { Reopen(); }
  ~SimStoreEnv() { store.reset(); }

  // Power loss and recovery: keeps exactly the acknowledged commits.
  void CrashAndReopen() {
    store.reset();
    disk.Crash();
    Reopen();
  }
  void Reopen() { store = Must(LogStore::Open(disk)); }

  // The whole committed state.
  std::map<std::string, std::string> Dump() {
    std::unique_ptr<Transaction> txn = Must(store->Begin());
    std::map<std::string, std::string> out;
    for (KeyValue& kv : Must(txn->Scan("", "", store->options().scan_limit_max))) {
      out.emplace(std::move(kv.key), std::move(kv.value));
    }
    txn->Rollback();
    return out;
  }

  Rng rng;
  sim::SimDisk disk;
  ManualClock clock;
  std::unique_ptr<LogStore> store;
};

}  // namespace faultline::testing
