// Shared fixtures of the outbox tests: a LogStore on a SimDisk, and an in-memory publisher that
// de-duplicates by id like a broker and can be told to refuse.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "faultline/core/random.h"
#include "faultline/outbox/broker.h"
#include "faultline/sim/disk.h"
#include "faultline/store/log_store.h"
#include "tests/outbox/memory_publisher.h"

namespace faultline::outbox::testing {

template <typename T>
T Must(Result<T> result) {
  FL_ASSERT_MSG(result.ok(), result.status().ToString().c_str());
  return std::move(result).value();
}

inline void MustOk(const Status& status) { FL_ASSERT_MSG(status.ok(), status.ToString().c_str()); }

struct SimStoreEnv {
  explicit SimStoreEnv(uint64_t seed = 1) : rng(seed), disk(&rng) { Reopen(); }
  ~SimStoreEnv() { store.reset(); }
  void CrashAndReopen() {
    store.reset();
    disk.Crash();
    Reopen();
  }
  void Reopen() { store = Must(LogStore::Open(disk)); }
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
  std::unique_ptr<LogStore> store;
};

inline Message Event(const std::string& id, const std::string& key, std::string payload = "p") {
  return Message{id, "orders.created", key, std::move(payload)};
}

}  // namespace faultline::outbox::testing
