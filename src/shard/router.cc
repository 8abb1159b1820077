#include "faultline/shard/router.h"

#include "faultline/core/assert.h"

namespace faultline::shard {

Router::Router(std::shared_ptr<const ShardMap> map) : map_(std::move(map)) {
  FL_ASSERT(map_ != nullptr);
}

bool Router::OnStaleEpoch(std::shared_ptr<const ShardMap> newer) {
  if (newer == nullptr || newer->version() <= map_->version()) return false;
  map_ = std::move(newer);
  return true;
}

Result<bool> Router::OnStaleEpoch(std::span<const uint8_t> encoded_map, ShardMapOptions options) {
  FL_ASSIGN_OR_RETURN(ShardMap newer, ShardMap::Decode(encoded_map, options));
  return OnStaleEpoch(std::make_shared<const ShardMap>(std::move(newer)));
}

Status Router::Refresh(Directory& directory) {
  FL_ASSIGN_OR_RETURN(ShardMap loaded, directory.Load());
  OnStaleEpoch(std::make_shared<const ShardMap>(std::move(loaded)));
  return Status::Ok();
}

}  // namespace faultline::shard
