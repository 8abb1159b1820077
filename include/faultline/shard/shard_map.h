// File: faultline/shard/shard_map.h
//
// ShardMap: an immutable, versioned map from key ranges to shards, with per-range epochs and
// tenant overrides. Every change (Split, Move, SetOverride, ClearOverride, AddShard) returns a new
// map whose version is this one's + 1; the map it was called on is never modified, so a failed
// change leaves nothing half-done.
//
// Key space. Ranges tile the whole space of routing keys (byte strings in memcmp order): the first
// begins at "", each begins where the previous ends, the last has end "" meaning unbounded. In
// KeyMode::kRange the routing key of a key is the key itself (ordered ranges, range scans stay on
// one shard); in KeyMode::kHash it is the 8-byte big-endian KeyHash(key), so ranges are hash ranges
// (Vitess keyspace ids: "-80" / "80-" are the ranges ["", "\x80\0\0\0\0\0\0\0") and onward). In
// kHash mode every bound other than the first begin and the last end is exactly 8 bytes
// (HashBound).
//
// Epochs (TiKV region epochs). Each range and each override has a stable RangeId and an Epoch: the
// map version that last changed it. Split keeps the left half's id and gives the right half a new
// one, both at the new epoch; Move bumps the moved range's epoch. A request carries (range, epoch);
// a shard server compares it with its own map (CheckEpoch) and rejects a stale one with
// kEpochNotMatch and its map version, so the client refreshes its map and retries once.
//
// Overrides. A tenant may be pinned to a shard of its own (a hot tenant isolated, Citus
// isolate_tenant_to_new_shard): Route(tenant, key) returns the override when there is one and
// routes `key` otherwise.
//
// Encoding (Encode/Decode), little-endian:
//   "FLSM" u8 format(1) u64 version u8 mode u64 next_range_id
//   varint n_shards  { u32 shard }
//   varint n_ranges  { u64 id, u64 epoch, u32 shard, bytes begin, bytes end }
//   varint n_overrides { u64 id, u64 epoch, u32 shard, bytes tenant }
//   u32 CRC-32C of everything before it.
// Decode rejects anything malformed, over the Options limits, or failing validation with kDataLoss.
//
// Thread safety: a ShardMap is immutable; share it freely (e.g. as shared_ptr<const ShardMap>).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/ids.h"
#include "faultline/core/status.h"
#include "faultline/shard/partitioner.h"

namespace faultline::shard {

struct RangeIdTag {};
using RangeId = StrongId<RangeIdTag, uint64_t>;

enum class KeyMode : uint8_t { kRange = 0, kHash = 1 };

struct ShardRange {
  RangeId id;
  Epoch epoch;
  ShardId shard;
  std::string begin;  // inclusive
  std::string end;    // exclusive; "" = unbounded (last range only)
  friend bool operator==(const ShardRange&, const ShardRange&) = default;
};

struct TenantOverride {
  RangeId id;
  Epoch epoch;
  ShardId shard;
  friend bool operator==(const TenantOverride&, const TenantOverride&) = default;
};

// Where a key goes. `range` and `epoch` travel with the request for the server's CheckEpoch.
struct Route {
  ShardId shard;
  RangeId range;
  Epoch epoch;
  bool by_override = false;
  friend bool operator==(const Route&, const Route&) = default;
};

struct ShardMapOptions {
  uint32_t ranges_max = 65536;
  uint32_t overrides_max = 65536;
  uint32_t shards_max = 65536;
  uint32_t key_bytes_max = 1024;  // range bounds and tenant ids
};

// The routing key of `key` in kHash mode: 8 bytes, big-endian KeyHash(key), written to `buf`.
std::string_view HashRoutingKey(std::string_view key, char (&buf)[8]);
// The 8-byte big-endian encoding of a hash value, for building hash-range bounds.
std::string HashBound(uint64_t hash);

// The verdict of a shard server on a request routed with (range, epoch).
struct EpochCheck {
  enum class Kind : uint8_t {
    kOk,
    // The request's route is stale (range split, merged, moved, or re-epoched): reply with the
    // server's map; the client calls Router::OnStaleEpoch and retries.
    kEpochNotMatch,
    // The request carries a newer epoch than the server knows: the server must refresh its map.
    kServerBehind,
  };
  Kind kind = Kind::kOk;
  uint64_t server_version = 0;
  bool ok() const { return kind == Kind::kOk; }
  // kOk -> Ok; kEpochNotMatch -> kFailedPrecondition "EpochNotMatch: ..."; kServerBehind ->
  // kUnavailable.
  Status ToStatus() const;
};

class ShardMap {
 public:
  // One range ["", "") on `initial_shard`, version 1, epoch 1.
  static ShardMap Single(KeyMode mode, ShardId initial_shard, ShardMapOptions options = {});
  // `n` equal hash ranges on shards[0..n): kHash mode, version 1. shards non-empty, <= 65536.
  static Result<ShardMap> EvenHash(const std::vector<ShardId>& shards,
                                   ShardMapOptions options = {});
  // A map from parts, validated (kInvalidArgument with the reason).
  static Result<ShardMap> Create(KeyMode mode, uint64_t version, std::vector<ShardId> shards,
                                 std::vector<ShardRange> ranges,
                                 std::map<std::string, TenantOverride, std::less<>> overrides,
                                 uint64_t next_range_id, ShardMapOptions options = {});

  // --- changes: each returns a map at version()+1, or kInvalidArgument/kNotFound, this unchanged.
  // Registers a shard id (ranges may only point at registered shards).
  Result<ShardMap> AddShard(ShardId shard) const;
  // Splits range `range` at routing key `at`: begin < at < end (or end unbounded).
  Result<ShardMap> Split(RangeId range, std::string_view at) const;
  // Moves range `range` to shard `to` (a registered shard other than its current one).
  Result<ShardMap> Move(RangeId range, ShardId to) const;
  // Pins `tenant` to `shard` (new override id, or the existing one with a new epoch).
  Result<ShardMap> SetOverride(std::string_view tenant, ShardId shard) const;
  Result<ShardMap> ClearOverride(std::string_view tenant) const;

  // --- lookups: no allocation.
  Route RouteKey(std::string_view key) const;
  Route RouteTenantKey(std::string_view tenant, std::string_view key) const;
  // The range holding routing key `routing_key` (index into ranges()).
  size_t RangeIndexOf(std::string_view routing_key) const;
  // The range or override with this id, or nullptr.
  const ShardRange* FindRange(RangeId id) const;
  // Server side: is a request routed with (range, epoch) valid for the server `self`?
  EpochCheck CheckEpoch(ShardId self, RangeId range, Epoch epoch) const;
  // CheckEpoch for a tenant's request: also kEpochNotMatch when the tenant has an override and the
  // request was routed by key (its client does not know the override yet), whose range epoch alone
  // would still look current. An empty tenant is CheckEpoch.
  EpochCheck CheckRoute(ShardId self, std::string_view tenant, const Route& route) const;

  // --- encoding
  std::vector<uint8_t> Encode() const;
  static Result<ShardMap> Decode(std::span<const uint8_t> bytes, ShardMapOptions options = {});

  uint64_t version() const { return version_; }
  KeyMode mode() const { return mode_; }
  const std::vector<ShardRange>& ranges() const { return ranges_; }
  const std::map<std::string, TenantOverride, std::less<>>& overrides() const { return overrides_; }
  const std::vector<ShardId>& shards() const { return shards_; }
  uint64_t next_range_id() const { return next_range_id_; }
  friend bool operator==(const ShardMap& a, const ShardMap& b) {
    return a.version_ == b.version_ && a.mode_ == b.mode_ && a.shards_ == b.shards_ &&
           a.ranges_ == b.ranges_ && a.overrides_ == b.overrides_ &&
           a.next_range_id_ == b.next_range_id_;
  }

 private:
  ShardMap() = default;
  // Validates, then builds the lookup index. Every constructor path ends here.
  Status Finish();
  Status Validate() const;
  void BuildIndex();
  bool KnowsShard(ShardId shard) const;
  ShardMap Next() const;  // a copy at version + 1
  const TenantOverride* FindOverride(std::string_view tenant) const;

  // Lookup index derived from the fields below (not part of equality or the encoding): contiguous
  // arrays so a route is a binary search over cache-friendly data, and an open-addressing table
  // of tenants so an override lookup is one hash and (usually) one compare.
  struct IdEntry {
    uint64_t id;
    Epoch epoch;
    ShardId shard;
  };
  std::vector<uint64_t> hash_begins_;   // kHash: range begins as 64-bit values
  std::vector<std::string> begins_;     // kRange: range begins
  std::vector<IdEntry> ids_;            // ranges and overrides, sorted by id
  std::vector<uint32_t> tenant_slots_;  // 0 = empty, else 1 + index into tenants_
  std::vector<std::pair<std::string, TenantOverride>> tenants_;

  ShardMapOptions options_;
  uint64_t version_ = 1;
  KeyMode mode_ = KeyMode::kRange;
  std::vector<ShardId> shards_;  // sorted, unique
  std::vector<ShardRange> ranges_;
  std::map<std::string, TenantOverride, std::less<>> overrides_;
  uint64_t next_range_id_ = 1;
};

}  // namespace faultline::shard
