#include "tests/store/store_harness.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <utility>

#include "faultline/adapters/postgres_store.h"
#include "faultline/adapters/sqlite_store.h"
#include "faultline/core/random.h"
#include "faultline/sim/disk.h"
#include "faultline/store/log_store.h"
#include "tests/integration/pg_test_server.h"

namespace faultline::testing {
namespace {

class LockedTransaction final : public Transaction {
 public:
  LockedTransaction(std::shared_ptr<std::mutex> mu, std::unique_ptr<Transaction> inner)
      : mu_(std::move(mu)), inner_(std::move(inner)) {}
  ~LockedTransaction() override {
    std::lock_guard<std::mutex> lock(*mu_);
    inner_.reset();
  }
  Result<std::optional<std::string>> Get(std::string_view key) override {
    std::lock_guard<std::mutex> lock(*mu_);
    return inner_->Get(key);
  }
  Status Put(std::string_view key, std::string_view value) override {
    std::lock_guard<std::mutex> lock(*mu_);
    return inner_->Put(key, value);
  }
  Result<bool> InsertIfAbsent(std::string_view key, std::string_view value) override {
    std::lock_guard<std::mutex> lock(*mu_);
    return inner_->InsertIfAbsent(key, value);
  }
  Result<bool> CompareAndSet(std::string_view key, std::optional<std::string_view> expected,
                             std::optional<std::string_view> desired) override {
    std::lock_guard<std::mutex> lock(*mu_);
    return inner_->CompareAndSet(key, expected, desired);
  }
  Result<bool> Delete(std::string_view key) override {
    std::lock_guard<std::mutex> lock(*mu_);
    return inner_->Delete(key);
  }
  Result<std::vector<KeyValue>> Scan(std::string_view begin, std::string_view end,
                                     size_t limit) override {
    std::lock_guard<std::mutex> lock(*mu_);
    return inner_->Scan(begin, end, limit);
  }
  Status Commit() override {
    std::lock_guard<std::mutex> lock(*mu_);
    return inner_->Commit();
  }
  void Rollback() override {
    std::lock_guard<std::mutex> lock(*mu_);
    inner_->Rollback();
  }

 private:
  std::shared_ptr<std::mutex> mu_;
  std::unique_ptr<Transaction> inner_;
};

class LockedStore final : public LocalStore {
 public:
  explicit LockedStore(std::unique_ptr<LocalStore> inner) : inner_(std::move(inner)) {}
  ~LockedStore() override {
    std::lock_guard<std::mutex> lock(*mu_);
    inner_.reset();
  }
  Result<std::unique_ptr<Transaction>> Begin() override {
    std::lock_guard<std::mutex> lock(*mu_);
    FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, inner_->Begin());
    return std::unique_ptr<Transaction>(std::make_unique<LockedTransaction>(mu_, std::move(txn)));
  }

 private:
  std::shared_ptr<std::mutex> mu_ = std::make_shared<std::mutex>();
  std::unique_ptr<LocalStore> inner_;
};

class LogHarness final : public StoreHarness {
 public:
  LogHarness() : rng_(7), disk_(&rng_) {}
  Result<std::unique_ptr<LocalStore>> Open() override {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<LogStore> store, LogStore::Open(disk_, options_));
    return MakeLockedStore(std::move(store));
  }
  uint32_t key_bytes_max() const override { return options_.key_bytes_max; }
  uint32_t value_bytes_max() const override { return options_.value_bytes_max; }
  size_t scan_limit_max() const override { return options_.scan_limit_max; }
  bool concurrent_writers() const override { return true; }

 private:
  Rng rng_;
  sim::SimDisk disk_;
  LogStoreOptions options_;
};

class SqliteHarness final : public StoreHarness {
 public:
  SqliteHarness() {
    char pattern[] = "/tmp/flsqlite-XXXXXX";
    FL_ASSERT(mkdtemp(pattern) != nullptr);
    dir_ = pattern;
    options_.path = dir_ + "/store.db";
    options_.busy_timeout_ms = 300;
  }
  ~SqliteHarness() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Result<std::unique_ptr<LocalStore>> Open() override {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> store, SqliteStore::Open(options_));
    return std::unique_ptr<LocalStore>(std::move(store));
  }
  uint32_t key_bytes_max() const override { return options_.key_bytes_max; }
  uint32_t value_bytes_max() const override { return options_.value_bytes_max; }
  size_t scan_limit_max() const override { return options_.scan_limit_max; }
  bool concurrent_writers() const override { return false; }

 private:
  std::string dir_;
  SqliteStoreOptions options_;
};

class PostgresHarness final : public StoreHarness {
 public:
  explicit PostgresHarness(std::string conninfo) {
    options_.conninfo = std::move(conninfo);
    options_.table = UniqueTableName();
    options_.lock_timeout_ms = 300;
  }
  ~PostgresHarness() override {
    PGconn* conn = PQconnectdb(options_.conninfo.c_str());
    if (PQstatus(conn) == CONNECTION_OK) {
      PQclear(PQexec(conn, ("DROP TABLE IF EXISTS \"" + options_.table + "\"").c_str()));
    }
    PQfinish(conn);
  }
  Result<std::unique_ptr<LocalStore>> Open() override {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<PostgresStore> store, PostgresStore::Open(options_));
    return std::unique_ptr<LocalStore>(std::move(store));
  }
  uint32_t key_bytes_max() const override { return options_.key_bytes_max; }
  uint32_t value_bytes_max() const override { return options_.value_bytes_max; }
  size_t scan_limit_max() const override { return options_.scan_limit_max; }
  bool concurrent_writers() const override { return true; }

 private:
  PostgresStoreOptions options_;
};

}  // namespace

std::unique_ptr<LocalStore> MakeLockedStore(std::unique_ptr<LocalStore> inner) {
  return std::make_unique<LockedStore>(std::move(inner));
}

Result<std::unique_ptr<StoreHarness>> MakeStoreHarness(std::string_view kind) {
  if (kind == "log") return std::unique_ptr<StoreHarness>(std::make_unique<LogHarness>());
  if (kind == "sqlite") return std::unique_ptr<StoreHarness>(std::make_unique<SqliteHarness>());
  if (kind == "postgres") {
    FL_ASSIGN_OR_RETURN(std::string conninfo, SharedPgConninfo());
    return std::unique_ptr<StoreHarness>(std::make_unique<PostgresHarness>(std::move(conninfo)));
  }
  return InvalidArgumentError("unknown store kind");
}

}  // namespace faultline::testing
