// The stores the conformance suite runs against, behind one interface: LogStore over the
// simulator's disk, SqliteStore on a temporary file, PostgresStore on a real server (the shared
// test server, one table per test).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/store/local_store.h"

namespace faultline::testing {

class StoreHarness {
 public:
  virtual ~StoreHarness() = default;
  // Opens the store; after the previous store was destroyed, opens the same data again.
  virtual Result<std::unique_ptr<LocalStore>> Open() = 0;
  virtual uint32_t key_bytes_max() const = 0;
  virtual uint32_t value_bytes_max() const = 0;
  virtual size_t scan_limit_max() const = 0;
  // Whether a second transaction can do anything while a first one holds the write lock (false
  // for SQLite: BEGIN IMMEDIATE waits busy_timeout and fails kAborted).
  virtual bool concurrent_writers() const = 0;
};

// kind: "log", "sqlite" or "postgres". Errors say why (e.g. PostgreSQL could not be started).
Result<std::unique_ptr<StoreHarness>> MakeStoreHarness(std::string_view kind);

// A LocalStore that serialises every call on one mutex: lets the threaded tests drive LogStore,
// which is single-threaded by contract, through the same interleavings as the SQL stores.
std::unique_ptr<LocalStore> MakeLockedStore(std::unique_ptr<LocalStore> inner);

}  // namespace faultline::testing
