// Test fixture shared by the shard store and reshard unit tests: a directory store and two shard
// stores (shard 1, the source, serving everything; shard 2 empty), on LogStores over simulated
// disks ("log") or on three SQLite files in a temporary directory ("sqlite").
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "faultline/adapters/sqlite_store.h"
#include "faultline/core/random.h"
#include "faultline/shard/reshard.h"
#include "faultline/sim/disk.h"
#include "faultline/store/log_store.h"

namespace faultline::shard::testing {

class ShardEnv {
 public:
  explicit ShardEnv(const std::string& kind) : rng_(7) {
    if (kind == "sqlite") {
      char pattern[] = "/tmp/flreshard-XXXXXX";
      FL_ASSERT(mkdtemp(pattern) != nullptr);
      dir_ = pattern;
    }
    for (int i = 0; i < 3; ++i) stores_[i] = Open(kind, i);
    a_ = std::make_unique<ShardStore>(*stores_[1]);
    b_ = std::make_unique<ShardStore>(*stores_[2]);
    Directory directory(*stores_[0]);
    ShardMap map = ShardMap::Single(KeyMode::kRange, ShardId(1)).AddShard(ShardId(2)).value();
    FL_ASSERT(directory.Initialize(map).ok());
    FL_ASSERT(a_->SetRange({"", "", Epoch(1), RangeState::kServing}).ok());
  }
  ~ShardEnv() {
    a_.reset();
    b_.reset();
    for (auto& s : stores_) s.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  LocalStore& directory_store() { return *stores_[0]; }
  ShardStore& a() { return *a_; }
  ShardStore& b() { return *b_; }
  ShardResolver resolver() {
    return [this](ShardId id) -> Result<ShardStore*> {
      if (id == ShardId(1)) return a_.get();
      if (id == ShardId(2)) return b_.get();
      return NotFoundError("no shard " + std::to_string(id.value()));
    };
  }
  ShardMap Map() { return Directory(*stores_[0]).Load().value(); }
  // Writes through the current map's route (the fixture's map is always current in these tests).
  Status Put(const std::string& key, std::optional<std::string> value) {
    const Route route = Map().RouteKey(key);
    ShardStore& s = route.shard == ShardId(1) ? *a_ : *b_;
    return s.Write(key, value, route.epoch);
  }
  std::optional<std::string> Get(const std::string& key) {
    const Route route = Map().RouteKey(key);
    ShardStore& s = route.shard == ShardId(1) ? *a_ : *b_;
    Result<std::optional<std::string>> r = s.Read(key, route.epoch);
    FL_ASSERT_MSG(r.ok(), r.status().ToString().c_str());
    return *r;
  }
  // Every row of a shard store.
  std::map<std::string, std::string> Rows(ShardStore& s) {
    std::map<std::string, std::string> out;
    std::unique_ptr<Transaction> txn = s.store().Begin().value();
    Result<std::vector<KeyValue>> rows = s.ScanRows(*txn, "", "", 100000);
    FL_ASSERT_MSG(rows.ok(), rows.status().ToString().c_str());
    for (const KeyValue& kv : *rows) out[kv.key] = kv.value;
    txn->Rollback();
    return out;
  }
  std::vector<LogEntry> Log(ShardStore& s, uint64_t from = 1) {
    std::unique_ptr<Transaction> txn = s.store().Begin().value();
    Result<std::vector<LogEntry>> out = s.ReadLog(*txn, from, UINT64_MAX, 100000);
    FL_ASSERT_MSG(out.ok(), out.status().ToString().c_str());
    txn->Rollback();
    return std::move(out).value();
  }

 private:
  std::unique_ptr<LocalStore> Open(const std::string& kind, int i) {
    if (kind == "sqlite") {
      SqliteStoreOptions options;
      options.path = dir_ + "/store" + std::to_string(i) + ".db";
      options.synchronous = SqliteSynchronous::kNormal;
      return SqliteStore::Open(options).value();
    }
    disks_[i] = std::make_unique<sim::SimDisk>(&rng_);
    return LogStore::Open(*disks_[i]).value();
  }

  Rng rng_;
  std::string dir_;
  std::unique_ptr<sim::SimDisk> disks_[3];
  std::unique_ptr<LocalStore> stores_[3];
  std::unique_ptr<ShardStore> a_, b_;
};

inline std::string Key(int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "k%06d", i);
  return buf;
}

}  // namespace faultline::shard::testing
