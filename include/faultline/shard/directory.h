// File: faultline/shard/directory.h
//
// Directory: the authoritative ShardMap, persisted as one encoded value in a LocalStore (LogStore,
// SqliteStore, PostgresStore), with compare-and-set updates so that of two updaters who both read
// version v, exactly one installs v+1 and the other learns it lost (kFailedPrecondition).
//
// The stored value is ShardMap::Encode() (CRC-protected); a value that fails to decode is
// kDataLoss, never a silently empty map. Routers read the directory at start and after an
// EpochNotMatch they cannot resolve from the server's reply (Router::Refresh).
//
// Errors: kNotFound from Load before Initialize; kAlreadyExists from Initialize of an initialised
// directory; kFailedPrecondition from CompareAndSwap/Update when the stored version is not the
// expected one (a lost race: reload and decide again); kInvalidArgument when the new map's version
// is not above the expected one; kAborted when the store's serialization conflicts outlast
// attempts_max; store errors (kUnavailable, ...) pass through.
//
// Thread safety: as the LocalStore; a Directory holds no mutable state of its own.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "faultline/core/status.h"
#include "faultline/shard/shard_map.h"
#include "faultline/store/local_store.h"

namespace faultline::shard {

class Directory {
 public:
  struct Options {
    std::string key = "faultline/shard/map";  // the store key holding the encoded map
    uint32_t attempts_max = 8;                // RunInTransaction attempts per operation
    ShardMapOptions map_options;
  };

  // `store` must outlive the directory.
  Directory(LocalStore& store, Options options);
  explicit Directory(LocalStore& store) : Directory(store, Options{}) {}

  // Stores `map` if the directory is empty.
  Status Initialize(const ShardMap& map);
  Result<ShardMap> Load();
  // Installs `next` iff the stored map's version is `expected_version`; next.version() must be
  // greater than it.
  Status CompareAndSwap(uint64_t expected_version, const ShardMap& next);
  // Load, `change`, CompareAndSwap: returns the installed map, the error of `change`, or
  // kFailedPrecondition when another updater installed a version in between.
  Result<ShardMap> Update(const std::function<Result<ShardMap>(const ShardMap&)>& change);

 private:
  LocalStore* store_;
  Options options_;
};

}  // namespace faultline::shard
