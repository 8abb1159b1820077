#include "faultline/shard/partitioner.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "faultline/core/assert.h"
#include "faultline/core/random.h"

namespace faultline::shard {
namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kP3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ULL;

constexpr uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Little-endian loads, independent of the host's byte order.
uint64_t Load64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t Load32(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint64_t Round(uint64_t acc, uint64_t input) {
  acc += input * kP2;
  acc = Rotl(acc, 31);
  return acc * kP1;
}
uint64_t MergeRound(uint64_t acc, uint64_t val) {
  acc ^= Round(0, val);
  return acc * kP1 + kP4;
}

}  // namespace

// ln(u) for a normal double u in (0, 1]: the exponent read from the bit pattern, the mantissa
// reduced to [sqrt(1/2), sqrt(2)) and ln(m) = 2 atanh((m-1)/(m+1)) by nine terms in Horner form
// (|s| < 0.1716, so the first omitted term is below 2e-15 relative). Only exact bit operations
// and IEEE + - * /, so the result is identical on every platform, like DeterministicLog but
// without its loops (which made weighted rendezvous ~10x slower).
double RendezvousLog(double u) {
  const auto bits = std::bit_cast<uint64_t>(u);
  FL_ASSERT(u > 0.0 && u <= 1.0 && ((bits >> 52) & 0x7ff) != 0);
  int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  double m = std::bit_cast<double>((bits & 0xfffffffffffffULL) | 0x3ff0000000000000ULL);
  if (m >= 1.4142135623730951) {
    m *= 0.5;
    ++e;
  }
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double p = 1.0 / 17;
  p = p * s2 + 1.0 / 15;
  p = p * s2 + 1.0 / 13;
  p = p * s2 + 1.0 / 11;
  p = p * s2 + 1.0 / 9;
  p = p * s2 + 1.0 / 7;
  p = p * s2 + 1.0 / 5;
  p = p * s2 + 1.0 / 3;
  p = p * s2 + 1.0;
  constexpr double kLn2 = 0.6931471805599453;
  return 2.0 * s * p + static_cast<double>(e) * kLn2;
}

namespace {

// The (key, shard) draw of rendezvous hashing: 53 uniform bits.
uint64_t RendezvousBits(uint64_t key_hash, ShardId shard) {
  return HashMix(key_hash, 0x5eed0000ULL + shard.value()) >> 11;
}

}  // namespace

uint64_t KeyHash(std::string_view key, uint64_t seed) {
  const auto* p = reinterpret_cast<const unsigned char*>(key.data());
  const size_t len = key.size();
  const unsigned char* const end = p + len;
  uint64_t h;
  if (len >= 32) {
    uint64_t v1 = seed + kP1 + kP2, v2 = seed + kP2, v3 = seed, v4 = seed - kP1;
    const unsigned char* const limit = end - 32;
    do {
      v1 = Round(v1, Load64(p));
      v2 = Round(v2, Load64(p + 8));
      v3 = Round(v3, Load64(p + 16));
      v4 = Round(v4, Load64(p + 24));
      p += 32;
    } while (p <= limit);
    h = Rotl(v1, 1) + Rotl(v2, 7) + Rotl(v3, 12) + Rotl(v4, 18);
    h = MergeRound(h, v1);
    h = MergeRound(h, v2);
    h = MergeRound(h, v3);
    h = MergeRound(h, v4);
  } else {
    h = seed + kP5;
  }
  h += static_cast<uint64_t>(len);
  while (end - p >= 8) {
    h ^= Round(0, Load64(p));
    h = Rotl(h, 27) * kP1 + kP4;
    p += 8;
  }
  if (end - p >= 4) {
    h ^= Load32(p) * kP1;
    h = Rotl(h, 23) * kP2 + kP3;
    p += 4;
  }
  while (p < end) {
    h ^= (*p) * kP5;
    h = Rotl(h, 11) * kP1;
    ++p;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

int32_t JumpConsistentHash(uint64_t key, int32_t num_buckets) {
  FL_ASSERT(num_buckets >= 1);
  int64_t b = -1;
  int64_t j = 0;
  while (j < num_buckets) {
    b = j;
    key = key * 2862933555777941757ULL + 1;
    j = static_cast<int64_t>(static_cast<double>(b + 1) * (static_cast<double>(1LL << 31) /
                                                           static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<int32_t>(b);
}

// ---- Rendezvous -------------------------------------------------------------------------------

Rendezvous::Rendezvous(std::vector<Member> members) : members_(std::move(members)) {
  for (const Member& m : members_) uniform_ = uniform_ && m.weight == members_[0].weight;
}

Result<Rendezvous> Rendezvous::Create(std::vector<Member> members) {
  if (members.empty()) return InvalidArgumentError("rendezvous: no members");
  std::vector<ShardId> ids;
  for (const Member& m : members) {
    if (!(m.weight > 0.0 && m.weight <= 1e9)) {
      return InvalidArgumentError("rendezvous: weight of shard " + std::to_string(m.shard.value()) +
                                  " not in (0, 1e9]");
    }
    ids.push_back(m.shard);
  }
  std::sort(ids.begin(), ids.end());
  if (std::adjacent_find(ids.begin(), ids.end()) != ids.end()) {
    return InvalidArgumentError("rendezvous: duplicate shard");
  }
  return Rendezvous(std::move(members));
}

double Rendezvous::Score(uint64_t key_hash, const Member& m) const {
  // u in (0, 1): never 0 (log undefined) nor 1 (score infinite).
  const double u = (static_cast<double>(RendezvousBits(key_hash, m.shard)) + 0.5) * 0x1p-53;
  return m.weight / -RendezvousLog(u);
}

ShardId Rendezvous::Pick(uint64_t key_hash) const {
  ShardId out;
  PickTop(key_hash, std::span<ShardId>(&out, 1));
  return out;
}

void Rendezvous::PickTop(uint64_t key_hash, std::span<ShardId> out) const {
  FL_ASSERT(!out.empty() && out.size() <= members_.size());
  // Insertion into a small sorted prefix: out.size() is a replica count, typically 1..5.
  double scores[16];
  uint64_t bits[16];
  FL_ASSERT_MSG(out.size() <= 16, "PickTop supports at most 16 replicas");
  size_t filled = 0;
  for (const Member& m : members_) {
    const uint64_t b = RendezvousBits(key_hash, m.shard);
    const double s = uniform_ ? 0.0 : Score(key_hash, m);
    // Better = higher score (or higher bits when uniform), ties to the lower shard id.
    auto better = [&](size_t i) {
      if (uniform_) {
        return b != bits[i] ? b > bits[i] : m.shard < out[i];
      }
      return s != scores[i] ? s > scores[i] : m.shard < out[i];
    };
    size_t pos = filled;
    while (pos > 0 && better(pos - 1)) --pos;
    if (pos >= out.size()) continue;
    const size_t last = std::min(filled, out.size() - 1);
    for (size_t i = last; i > pos; --i) {
      out[i] = out[i - 1];
      scores[i] = scores[i - 1];
      bits[i] = bits[i - 1];
    }
    out[pos] = m.shard;
    scores[pos] = s;
    bits[pos] = b;
    if (filled < out.size()) ++filled;
  }
  FL_ASSERT(filled == out.size());
}

// ---- HashRing ---------------------------------------------------------------------------------

HashRing::HashRing(Options options) : options_(options) {
  FL_ASSERT(options_.vnodes_per_shard >= 1);
}

Status HashRing::AddShard(ShardId shard) {
  if (std::find(shards_.begin(), shards_.end(), shard) != shards_.end()) {
    return AlreadyExistsError("ring: shard already present");
  }
  if (shards_.size() >= options_.shards_max) return ResourceExhaustedError("ring: shards_max");
  shards_.push_back(shard);
  for (uint32_t i = 0; i < options_.vnodes_per_shard; ++i) {
    // SplitMix64 is a bijection of its state, so distinct (shard, vnode) pairs never collide.
    // (HashMix(shard, i) is not: it aliased neighbouring shards' vnodes and skewed the ring.)
    uint64_t state = 0x716e6f6465ULL ^ ((static_cast<uint64_t>(shard.value()) << 32) | i);
    points_.push_back({SplitMix64(state), shard});
  }
  std::sort(points_.begin(), points_.end(), [](const Point& a, const Point& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.shard < b.shard;
  });
  return Status::Ok();
}

Status HashRing::RemoveShard(ShardId shard) {
  auto it = std::find(shards_.begin(), shards_.end(), shard);
  if (it == shards_.end()) return NotFoundError("ring: shard not present");
  shards_.erase(it);
  std::erase_if(points_, [&](const Point& p) { return p.shard == shard; });
  return Status::Ok();
}

size_t HashRing::LookupIndex(uint64_t key_hash) const {
  FL_ASSERT_MSG(!points_.empty(), "lookup on an empty ring");
  auto it = std::lower_bound(points_.begin(), points_.end(), key_hash,
                             [](const Point& p, uint64_t h) { return p.hash < h; });
  return it == points_.end() ? 0 : static_cast<size_t>(it - points_.begin());
}

ShardId HashRing::Lookup(uint64_t key_hash) const { return points_[LookupIndex(key_hash)].shard; }

// ---- BoundedLoadAssigner ----------------------------------------------------------------------

BoundedLoadAssigner::BoundedLoadAssigner(const HashRing& ring, double epsilon)
    : ring_(&ring), epsilon_(epsilon), loads_(ring.shards().size(), 0) {
  FL_ASSERT(epsilon > 0.0 && !ring.shards().empty());
}

size_t BoundedLoadAssigner::SlotOf(ShardId shard) const {
  const auto& shards = ring_->shards();
  auto it = std::find(shards.begin(), shards.end(), shard);
  FL_ASSERT_MSG(it != shards.end(), "shard not on the ring");
  return static_cast<size_t>(it - shards.begin());
}

ShardId BoundedLoadAssigner::Assign(uint64_t key_hash) {
  FL_ASSERT_MSG(loads_.size() == ring_->shards().size(), "ring changed under the assigner");
  const double n = static_cast<double>(loads_.size());
  const auto capacity =
      static_cast<uint64_t>(std::ceil((1.0 + epsilon_) * static_cast<double>(assigned_ + 1) / n));
  const auto& points = ring_->points();
  size_t i = ring_->LookupIndex(key_hash);
  // Total capacity n * capacity > assigned_, so some shard has room: the walk ends within one lap.
  for (size_t step = 0; step < points.size(); ++step) {
    const size_t slot = SlotOf(points[i].shard);
    if (loads_[slot] < capacity) {
      ++loads_[slot];
      ++assigned_;
      return points[i].shard;
    }
    i = (i + 1 == points.size()) ? 0 : i + 1;
  }
  FL_ASSERT_MSG(false, "bounded-load walk found no shard below capacity");
  return ShardId();
}

void BoundedLoadAssigner::Release(ShardId shard) {
  const size_t slot = SlotOf(shard);
  FL_ASSERT(loads_[slot] > 0 && assigned_ > 0);
  --loads_[slot];
  --assigned_;
}

uint64_t BoundedLoadAssigner::load(ShardId shard) const { return loads_[SlotOf(shard)]; }

// ---- RangePartitioner -------------------------------------------------------------------------

Result<RangePartitioner> RangePartitioner::Create(std::vector<std::string> split_points,
                                                  std::vector<ShardId> shards) {
  if (shards.size() != split_points.size() + 1) {
    return InvalidArgumentError("range partitioner: need one more shard than split points");
  }
  for (size_t i = 0; i < split_points.size(); ++i) {
    if (split_points[i].empty()) return InvalidArgumentError("range partitioner: empty split");
    if (i > 0 && !(split_points[i - 1] < split_points[i])) {
      return InvalidArgumentError("range partitioner: split points not strictly increasing");
    }
  }
  RangePartitioner p;
  p.split_points_ = std::move(split_points);
  p.shards_ = std::move(shards);
  return p;
}

size_t RangePartitioner::RangeIndex(std::string_view key) const {
  // Range i holds keys in [s_{i-1}, s_i): the number of split points <= key.
  auto it = std::upper_bound(split_points_.begin(), split_points_.end(), key,
                             [](std::string_view k, const std::string& s) { return k < s; });
  return static_cast<size_t>(it - split_points_.begin());
}

}  // namespace faultline::shard
