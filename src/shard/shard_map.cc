#include "faultline/shard/shard_map.h"

#include <algorithm>

#include "faultline/core/assert.h"
#include "faultline/core/buggify.h"
#include "faultline/core/bytes.h"
#include "faultline/core/crc32c.h"
#include "faultline/core/time.h"

namespace faultline::shard {
namespace {

constexpr char kMagic[4] = {'F', 'L', 'S', 'M'};
constexpr uint8_t kFormat = 1;

// "" as an end bound means unbounded.
bool BeforeEnd(std::string_view key, const std::string& end) { return end.empty() || key < end; }

}  // namespace

std::string_view HashRoutingKey(std::string_view key, char (&buf)[8]) {
  const uint64_t h = KeyHash(key);
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>(h >> (56 - 8 * i));
  return std::string_view(buf, 8);
}

std::string HashBound(uint64_t hash) {
  char buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>(hash >> (56 - 8 * i));
  return std::string(buf, 8);
}

Status EpochCheck::ToStatus() const {
  switch (kind) {
    case Kind::kOk:
      return Status::Ok();
    case Kind::kEpochNotMatch:
      return FailedPreconditionError("EpochNotMatch: route is stale; server map version " +
                                     std::to_string(server_version));
    case Kind::kServerBehind:
      return UnavailableError("server shard map (version " + std::to_string(server_version) +
                              ") is older than the request's route");
  }
  return InternalError("unknown epoch check kind");
}

ShardMap ShardMap::Single(KeyMode mode, ShardId initial_shard, ShardMapOptions options) {
  ShardMap m;
  m.options_ = options;
  m.mode_ = mode;
  m.shards_ = {initial_shard};
  m.ranges_.push_back({RangeId(1), Epoch(1), initial_shard, "", ""});
  m.next_range_id_ = 2;
  FL_ASSERT(m.Finish().ok());
  return m;
}

Result<ShardMap> ShardMap::EvenHash(const std::vector<ShardId>& shards, ShardMapOptions options) {
  if (shards.empty() || shards.size() > 65536) {
    return InvalidArgumentError("EvenHash: need 1..65536 shards");
  }
  std::vector<ShardRange> ranges;
  const uint64_t n = shards.size();
  for (uint64_t i = 0; i < n; ++i) {
    // Bound i = floor(i * 2^64 / n), computed in 128 bits.
    const auto lo = static_cast<uint64_t>((static_cast<UInt128>(i) << 64) / n);
    const auto hi = static_cast<uint64_t>((static_cast<UInt128>(i + 1) << 64) / n);
    ranges.push_back({RangeId(i + 1), Epoch(1), shards[i], i == 0 ? "" : HashBound(lo),
                      i + 1 == n ? "" : HashBound(hi)});
  }
  std::vector<ShardId> sorted = shards;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  return Create(KeyMode::kHash, 1, std::move(sorted), std::move(ranges), {}, n + 1, options);
}

Result<ShardMap> ShardMap::Create(KeyMode mode, uint64_t version, std::vector<ShardId> shards,
                                  std::vector<ShardRange> ranges,
                                  std::map<std::string, TenantOverride, std::less<>> overrides,
                                  uint64_t next_range_id, ShardMapOptions options) {
  ShardMap m;
  m.options_ = options;
  m.mode_ = mode;
  m.version_ = version;
  m.shards_ = std::move(shards);
  m.ranges_ = std::move(ranges);
  m.overrides_ = std::move(overrides);
  m.next_range_id_ = next_range_id;
  FL_RETURN_IF_ERROR(m.Finish());
  return m;
}

bool ShardMap::KnowsShard(ShardId shard) const {
  return std::binary_search(shards_.begin(), shards_.end(), shard);
}

Status ShardMap::Finish() {
  FL_RETURN_IF_ERROR(Validate());
  BuildIndex();
  return Status::Ok();
}

void ShardMap::BuildIndex() {
  hash_begins_.clear();
  begins_.clear();
  ids_.clear();
  tenants_.clear();
  tenant_slots_.clear();
  for (const ShardRange& r : ranges_) {
    if (mode_ == KeyMode::kHash) {
      uint64_t v = 0;
      for (unsigned char c : r.begin) v = (v << 8) | c;  // "" -> 0; otherwise exactly 8 bytes
      hash_begins_.push_back(v);
    } else {
      begins_.push_back(r.begin);
    }
    ids_.push_back({r.id.value(), r.epoch, r.shard});
  }
  for (const auto& [tenant, o] : overrides_) {
    ids_.push_back({o.id.value(), o.epoch, o.shard});
    tenants_.emplace_back(tenant, o);
  }
  std::sort(ids_.begin(), ids_.end(),
            [](const IdEntry& a, const IdEntry& b) { return a.id < b.id; });
  if (tenants_.empty()) return;
  size_t slots = 4;
  while (slots < 2 * tenants_.size()) slots *= 2;
  tenant_slots_.assign(slots, 0);
  for (size_t i = 0; i < tenants_.size(); ++i) {
    size_t at = KeyHash(tenants_[i].first) & (slots - 1);
    while (tenant_slots_[at] != 0) at = (at + 1) & (slots - 1);
    tenant_slots_[at] = static_cast<uint32_t>(i + 1);
  }
}

const TenantOverride* ShardMap::FindOverride(std::string_view tenant) const {
  if (tenant_slots_.empty()) return nullptr;
  const size_t mask = tenant_slots_.size() - 1;
  // At most half full, so an empty slot ends every probe sequence.
  for (size_t at = KeyHash(tenant) & mask;; at = (at + 1) & mask) {
    const uint32_t slot = tenant_slots_[at];
    if (slot == 0) return nullptr;
    if (tenants_[slot - 1].first == tenant) return &tenants_[slot - 1].second;
  }
}

Status ShardMap::Validate() const {
  if (version_ == 0) return InvalidArgumentError("shard map: version 0");
  if (mode_ != KeyMode::kRange && mode_ != KeyMode::kHash) {
    return InvalidArgumentError("shard map: unknown key mode");
  }
  if (shards_.empty() || shards_.size() > options_.shards_max) {
    return InvalidArgumentError("shard map: shard count not in [1, shards_max]");
  }
  for (size_t i = 1; i < shards_.size(); ++i) {
    if (!(shards_[i - 1] < shards_[i])) {
      return InvalidArgumentError("shard map: shard list not sorted and unique");
    }
  }
  if (ranges_.empty() || ranges_.size() > options_.ranges_max) {
    return InvalidArgumentError("shard map: range count not in [1, ranges_max]");
  }
  if (overrides_.size() > options_.overrides_max) {
    return InvalidArgumentError("shard map: more than overrides_max overrides");
  }
  std::vector<uint64_t> ids;
  if (!ranges_.front().begin.empty())
    return InvalidArgumentError("shard map: gap before first range");
  if (!ranges_.back().end.empty()) return InvalidArgumentError("shard map: gap after last range");
  for (size_t i = 0; i < ranges_.size(); ++i) {
    const ShardRange& r = ranges_[i];
    const std::string at = " (range id " + std::to_string(r.id.value()) + ")";
    if (r.begin.size() > options_.key_bytes_max || r.end.size() > options_.key_bytes_max) {
      return InvalidArgumentError("shard map: range bound over key_bytes_max" + at);
    }
    if (!r.end.empty() && !(r.begin < r.end)) {
      return InvalidArgumentError("shard map: empty or inverted range" + at);
    }
    if (i + 1 < ranges_.size()) {
      const std::string& next = ranges_[i + 1].begin;
      if (r.end.empty() || next < r.end) return InvalidArgumentError("shard map: overlap" + at);
      if (r.end < next) return InvalidArgumentError("shard map: gap" + at);
    }
    if (mode_ == KeyMode::kHash &&
        ((i > 0 && r.begin.size() != 8) || (i + 1 < ranges_.size() && r.end.size() != 8))) {
      return InvalidArgumentError("shard map: hash-mode bound not 8 bytes" + at);
    }
    if (!KnowsShard(r.shard)) return InvalidArgumentError("shard map: unknown shard" + at);
    if (r.epoch.value() == 0 || r.epoch.value() > version_) {
      return InvalidArgumentError("shard map: epoch not in [1, version]" + at);
    }
    ids.push_back(r.id.value());
  }
  for (const auto& [tenant, o] : overrides_) {
    if (tenant.empty() || tenant.size() > options_.key_bytes_max) {
      return InvalidArgumentError("shard map: tenant id empty or over key_bytes_max");
    }
    if (!KnowsShard(o.shard)) return InvalidArgumentError("shard map: override to unknown shard");
    if (o.epoch.value() == 0 || o.epoch.value() > version_) {
      return InvalidArgumentError("shard map: override epoch not in [1, version]");
    }
    ids.push_back(o.id.value());
  }
  std::sort(ids.begin(), ids.end());
  if (ids.front() == 0) return InvalidArgumentError("shard map: range id 0");
  if (std::adjacent_find(ids.begin(), ids.end()) != ids.end()) {
    return InvalidArgumentError("shard map: duplicate range id");
  }
  if (ids.back() >= next_range_id_) {
    return InvalidArgumentError("shard map: next_range_id not above every range id");
  }
  return Status::Ok();
}

ShardMap ShardMap::Next() const {
  FL_ASSERT(version_ < UINT64_MAX);
  ShardMap m = *this;
  m.version_ = version_ + 1;
  return m;
}

Result<ShardMap> ShardMap::AddShard(ShardId shard) const {
  if (KnowsShard(shard)) return AlreadyExistsError("shard map: shard already registered");
  if (shards_.size() >= options_.shards_max) return InvalidArgumentError("shard map: shards_max");
  ShardMap m = Next();
  m.shards_.insert(std::upper_bound(m.shards_.begin(), m.shards_.end(), shard), shard);
  FL_RETURN_IF_ERROR(m.Finish());
  return m;
}

Result<ShardMap> ShardMap::Split(RangeId range, std::string_view at) const {
  auto it = std::find_if(ranges_.begin(), ranges_.end(),
                         [&](const ShardRange& r) { return r.id == range; });
  if (it == ranges_.end()) return NotFoundError("shard map: no range with that id");
  if (!(it->begin < at) || !BeforeEnd(at, it->end)) {
    return InvalidArgumentError("shard map: split key outside (begin, end) of its range");
  }
  if (at.size() > options_.key_bytes_max)
    return InvalidArgumentError("split key over key_bytes_max");
  if (ranges_.size() >= options_.ranges_max) return InvalidArgumentError("shard map: ranges_max");
  ShardMap m = Next();
  const size_t i = static_cast<size_t>(it - ranges_.begin());
  ShardRange right = m.ranges_[i];
  right.id = RangeId(m.next_range_id_++);
  right.epoch = Epoch(m.version_);
  right.begin = std::string(at);
  m.ranges_[i].end = std::string(at);
  m.ranges_[i].epoch = Epoch(m.version_);
  m.ranges_.insert(m.ranges_.begin() + static_cast<std::ptrdiff_t>(i) + 1, std::move(right));
  FL_RETURN_IF_ERROR(m.Finish());
  return m;
}

Result<ShardMap> ShardMap::Move(RangeId range, ShardId to) const {
  auto it = std::find_if(ranges_.begin(), ranges_.end(),
                         [&](const ShardRange& r) { return r.id == range; });
  if (it == ranges_.end()) return NotFoundError("shard map: no range with that id");
  if (!KnowsShard(to)) return InvalidArgumentError("shard map: move to unknown shard");
  if (it->shard == to) return InvalidArgumentError("shard map: range already on that shard");
  ShardMap m = Next();
  ShardRange& r = m.ranges_[static_cast<size_t>(it - ranges_.begin())];
  r.shard = to;
  r.epoch = Epoch(m.version_);
  FL_RETURN_IF_ERROR(m.Finish());
  return m;
}

Result<ShardMap> ShardMap::SetOverride(std::string_view tenant, ShardId shard) const {
  if (tenant.empty() || tenant.size() > options_.key_bytes_max) {
    return InvalidArgumentError("shard map: tenant id empty or over key_bytes_max");
  }
  if (!KnowsShard(shard)) return InvalidArgumentError("shard map: override to unknown shard");
  auto it = overrides_.find(tenant);
  if (it == overrides_.end() && overrides_.size() >= options_.overrides_max) {
    return InvalidArgumentError("shard map: overrides_max");
  }
  if (it != overrides_.end() && it->second.shard == shard) {
    return InvalidArgumentError("shard map: tenant already pinned to that shard");
  }
  ShardMap m = Next();
  TenantOverride o{it == overrides_.end() ? RangeId(m.next_range_id_++) : it->second.id,
                   Epoch(m.version_), shard};
  m.overrides_.insert_or_assign(std::string(tenant), o);
  FL_RETURN_IF_ERROR(m.Finish());
  return m;
}

Result<ShardMap> ShardMap::ClearOverride(std::string_view tenant) const {
  auto it = overrides_.find(tenant);
  if (it == overrides_.end()) return NotFoundError("shard map: tenant has no override");
  ShardMap m = Next();
  m.overrides_.erase(std::string(tenant));
  FL_RETURN_IF_ERROR(m.Finish());
  return m;
}

size_t ShardMap::RangeIndexOf(std::string_view routing_key) const {
  // The last range whose begin <= routing_key; ranges_[0].begin == "" so there always is one.
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), routing_key,
                             [](std::string_view k, const ShardRange& r) { return k < r.begin; });
  FL_ASSERT(it != ranges_.begin());
  return static_cast<size_t>(it - ranges_.begin()) - 1;
}

Route ShardMap::RouteKey(std::string_view key) const {
  size_t i;
  if (mode_ == KeyMode::kHash) {
    auto it = std::upper_bound(hash_begins_.begin(), hash_begins_.end(), KeyHash(key));
    i = static_cast<size_t>(it - hash_begins_.begin()) - 1;  // hash_begins_[0] == 0
  } else {
    auto it = std::upper_bound(begins_.begin(), begins_.end(), key,
                               [](std::string_view k, const std::string& b) { return k < b; });
    i = static_cast<size_t>(it - begins_.begin()) - 1;  // begins_[0] == ""
  }
  const ShardRange& r = ranges_[i];
  return Route{r.shard, r.id, r.epoch, false};
}

Route ShardMap::RouteTenantKey(std::string_view tenant, std::string_view key) const {
  if (const TenantOverride* o = FindOverride(tenant)) return Route{o->shard, o->id, o->epoch, true};
  return RouteKey(key);
}

const ShardRange* ShardMap::FindRange(RangeId id) const {
  for (const ShardRange& r : ranges_) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

EpochCheck ShardMap::CheckEpoch(ShardId self, RangeId range, Epoch epoch) const {
  using Kind = EpochCheck::Kind;
  auto it = std::lower_bound(ids_.begin(), ids_.end(), range.value(),
                             [](const IdEntry& e, uint64_t id) { return e.id < id; });
  if (it == ids_.end() || it->id != range.value()) {
    // Gone (split away, override cleared) unless the client knows a map newer than ours.
    return {epoch.value() > version_ ? Kind::kServerBehind : Kind::kEpochNotMatch, version_};
  }
  if (epoch > it->epoch) return {Kind::kServerBehind, version_};
  if (epoch < it->epoch || it->shard != self) {
    FL_PROBE("shard.stale_route_rejected");
    return {Kind::kEpochNotMatch, version_};
  }
  return {Kind::kOk, version_};
}

EpochCheck ShardMap::CheckRoute(ShardId self, std::string_view tenant, const Route& route) const {
  if (!tenant.empty()) {
    const TenantOverride* o = FindOverride(tenant);
    if (o != nullptr && o->id != route.range) return {EpochCheck::Kind::kEpochNotMatch, version_};
  }
  return CheckEpoch(self, route.range, route.epoch);
}

std::vector<uint8_t> ShardMap::Encode() const {
  std::vector<uint8_t> out;
  out.reserve(64 + 32 * ranges_.size());
  ByteWriter w(&out);
  // Byte by byte: GCC 12 at -O3 reports a false -Wstringop-overflow/-Warray-bounds for a 4-byte
  // range insert as the vector's first write.
  for (int i = 0; i < 4; ++i) w.U8(static_cast<uint8_t>(kMagic[i]));
  w.U8(kFormat);
  w.U64(version_);
  w.U8(static_cast<uint8_t>(mode_));
  w.U64(next_range_id_);
  w.Varint(shards_.size());
  for (ShardId s : shards_) w.U32(s.value());
  w.Varint(ranges_.size());
  for (const ShardRange& r : ranges_) {
    w.U64(r.id.value());
    w.U64(r.epoch.value());
    w.U32(r.shard.value());
    w.Bytes(r.begin);
    w.Bytes(r.end);
  }
  w.Varint(overrides_.size());
  for (const auto& [tenant, o] : overrides_) {
    w.U64(o.id.value());
    w.U64(o.epoch.value());
    w.U32(o.shard.value());
    w.Bytes(tenant);
  }
  const uint32_t crc = Crc32c(std::span<const uint8_t>(out.data(), out.size()));
  w.U32(crc);
  return out;
}

namespace {

// Decode proper; any error it returns becomes kDataLoss.
Status DecodeBody(ByteReader& r, const ShardMapOptions& o, uint64_t* version, uint8_t* mode,
                  uint64_t* next_id, std::vector<ShardId>* shards, std::vector<ShardRange>* ranges,
                  std::map<std::string, TenantOverride, std::less<>>* overrides) {
  std::span<const uint8_t> magic;
  FL_RETURN_IF_ERROR(r.Raw(4, &magic));
  if (!std::equal(magic.begin(), magic.end(), kMagic)) return DataLossError("bad magic");
  uint8_t format = 0;
  FL_RETURN_IF_ERROR(r.U8(&format));
  if (format != kFormat) return DataLossError("unknown format version");
  FL_RETURN_IF_ERROR(r.U64(version));
  FL_RETURN_IF_ERROR(r.U8(mode));
  FL_RETURN_IF_ERROR(r.U64(next_id));
  uint64_t n = 0;
  FL_RETURN_IF_ERROR(r.Varint(&n));
  if (n > o.shards_max || n * 4 > r.remaining()) return DataLossError("shard count");
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t s = 0;
    FL_RETURN_IF_ERROR(r.U32(&s));
    shards->push_back(ShardId(s));
  }
  FL_RETURN_IF_ERROR(r.Varint(&n));
  if (n > o.ranges_max || n * 22 > r.remaining()) return DataLossError("range count");
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t id = 0, epoch = 0;
    uint32_t shard = 0;
    ShardRange range;
    FL_RETURN_IF_ERROR(r.U64(&id));
    FL_RETURN_IF_ERROR(r.U64(&epoch));
    FL_RETURN_IF_ERROR(r.U32(&shard));
    FL_RETURN_IF_ERROR(r.Bytes(&range.begin, o.key_bytes_max));
    FL_RETURN_IF_ERROR(r.Bytes(&range.end, o.key_bytes_max));
    range.id = RangeId(id);
    range.epoch = Epoch(epoch);
    range.shard = ShardId(shard);
    ranges->push_back(std::move(range));
  }
  FL_RETURN_IF_ERROR(r.Varint(&n));
  if (n > o.overrides_max || n * 21 > r.remaining()) return DataLossError("override count");
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t id = 0, epoch = 0;
    uint32_t shard = 0;
    std::string tenant;
    FL_RETURN_IF_ERROR(r.U64(&id));
    FL_RETURN_IF_ERROR(r.U64(&epoch));
    FL_RETURN_IF_ERROR(r.U32(&shard));
    FL_RETURN_IF_ERROR(r.Bytes(&tenant, o.key_bytes_max));
    if (!overrides
             ->emplace(std::move(tenant), TenantOverride{RangeId(id), Epoch(epoch), ShardId(shard)})
             .second) {
      return DataLossError("duplicate tenant");
    }
  }
  if (!r.empty()) return DataLossError("trailing bytes");
  return Status::Ok();
}

}  // namespace

Result<ShardMap> ShardMap::Decode(std::span<const uint8_t> bytes, ShardMapOptions options) {
  if (bytes.size() < 4) return DataLossError("shard map: encoding shorter than its checksum");
  const size_t body = bytes.size() - 4;
  uint32_t stored = 0;
  for (int i = 3; i >= 0; --i) stored = (stored << 8) | bytes[body + static_cast<size_t>(i)];
  if (Crc32c(bytes.subspan(0, body)) != stored)
    return DataLossError("shard map: checksum mismatch");
  ByteReader r(bytes.subspan(0, body));
  uint64_t version = 0, next_id = 0;
  uint8_t mode = 0;
  std::vector<ShardId> shards;
  std::vector<ShardRange> ranges;
  std::map<std::string, TenantOverride, std::less<>> overrides;
  Status s = DecodeBody(r, options, &version, &mode, &next_id, &shards, &ranges, &overrides);
  if (!s.ok()) return DataLossError("shard map: " + std::string(s.message()));
  if (mode > 1) return DataLossError("shard map: unknown key mode");
  Result<ShardMap> m = Create(static_cast<KeyMode>(mode), version, std::move(shards),
                              std::move(ranges), std::move(overrides), next_id, options);
  if (!m.ok()) return DataLossError("shard map: " + std::string(m.status().message()));
  return m;
}

}  // namespace faultline::shard
