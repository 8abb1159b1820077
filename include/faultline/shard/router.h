// File: faultline/shard/router.h
//
// Router: a client's cached ShardMap. Route* answers from the cache without allocating or touching
// the store. When a shard server rejects a request with EpochNotMatch it replies with its newer map
// (TiKV's EpochNotMatch carries the current regions); OnStaleEpoch installs it, so the retry goes
// to the right shard: a stale route costs exactly one extra round trip. When the server's reply
// cannot help (it is itself behind), Refresh reloads from the Directory.
//
// The cache only moves forward: a map whose version is not above the cached one is ignored, so a
// late reply from a lagging server never reinstates an older map.
//
// Thread safety: not synchronised; use one Router per thread, or guard it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/shard/directory.h"
#include "faultline/shard/shard_map.h"

namespace faultline::shard {

class Router {
 public:
  explicit Router(std::shared_ptr<const ShardMap> map);

  Route RouteKey(std::string_view key) const { return map_->RouteKey(key); }
  Route RouteTenantKey(std::string_view tenant, std::string_view key) const {
    return map_->RouteTenantKey(tenant, key);
  }

  // Installs `newer` if its version is above the cached one; returns whether it did.
  bool OnStaleEpoch(std::shared_ptr<const ShardMap> newer);
  // The same from the server's encoded map: kDataLoss if it does not decode.
  Result<bool> OnStaleEpoch(std::span<const uint8_t> encoded_map, ShardMapOptions options = {});
  // Reloads from the directory (installing only a newer map).
  Status Refresh(Directory& directory);

  uint64_t version() const { return map_->version(); }
  const ShardMap& map() const { return *map_; }
  std::shared_ptr<const ShardMap> shared_map() const { return map_; }

 private:
  std::shared_ptr<const ShardMap> map_;
};

}  // namespace faultline::shard
