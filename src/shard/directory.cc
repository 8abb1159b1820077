#include "faultline/shard/directory.h"

#include <optional>

#include "faultline/core/assert.h"

namespace faultline::shard {
namespace {

std::span<const uint8_t> AsBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string_view AsView(const std::vector<uint8_t>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size()};
}

}  // namespace

Directory::Directory(LocalStore& store, Options options)
    : store_(&store), options_(std::move(options)) {
  FL_ASSERT(!options_.key.empty() && options_.attempts_max >= 1);
}

Status Directory::Initialize(const ShardMap& map) {
  const std::vector<uint8_t> bytes = map.Encode();
  bool inserted = false;
  FL_RETURN_IF_ERROR(RunInTransaction(
      *store_,
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(inserted, txn.InsertIfAbsent(options_.key, AsView(bytes)));
        return Status::Ok();
      },
      options_.attempts_max));
  if (!inserted) return AlreadyExistsError("shard directory already initialised");
  return Status::Ok();
}

Result<ShardMap> Directory::Load() {
  std::optional<std::string> value;
  FL_RETURN_IF_ERROR(RunInTransaction(
      *store_,
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(value, txn.Get(options_.key));
        return Status::Ok();
      },
      options_.attempts_max));
  if (!value.has_value()) return NotFoundError("shard directory not initialised");
  return ShardMap::Decode(AsBytes(*value), options_.map_options);
}

Status Directory::CompareAndSwap(uint64_t expected_version, const ShardMap& next) {
  if (next.version() <= expected_version) {
    return InvalidArgumentError("shard directory: new map version " +
                                std::to_string(next.version()) + " not above expected " +
                                std::to_string(expected_version));
  }
  const std::vector<uint8_t> bytes = next.Encode();
  return RunInTransaction(
      *store_,
      [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(std::optional<std::string> current, txn.Get(options_.key));
        if (!current.has_value()) return NotFoundError("shard directory not initialised");
        FL_ASSIGN_OR_RETURN(ShardMap stored,
                            ShardMap::Decode(AsBytes(*current), options_.map_options));
        if (stored.version() != expected_version) {
          return FailedPreconditionError("shard directory at version " +
                                         std::to_string(stored.version()) + ", expected " +
                                         std::to_string(expected_version));
        }
        // The conditional write, so the check above cannot be separated from the write even on a
        // store whose isolation were weaker than documented.
        FL_ASSIGN_OR_RETURN(bool swapped, txn.CompareAndSet(options_.key, *current, AsView(bytes)));
        if (!swapped) return AbortedError("shard directory changed during the update");
        return Status::Ok();
      },
      options_.attempts_max);
}

Result<ShardMap> Directory::Update(const std::function<Result<ShardMap>(const ShardMap&)>& change) {
  FL_ASSIGN_OR_RETURN(ShardMap current, Load());
  FL_ASSIGN_OR_RETURN(ShardMap next, change(current));
  FL_RETURN_IF_ERROR(CompareAndSwap(current.version(), next));
  return next;
}

}  // namespace faultline::shard
