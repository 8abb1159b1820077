// File: faultline/shard/partitioner.h
//
// Key -> shard functions, all deterministic across platforms and standard libraries (no std::hash,
// no std distributions, no libm): the same key lands on the same shard on every machine.
//
//   KeyHash            XXH64 (seed 0) of the key bytes, bit-exact with the reference xxHash.
//   JumpConsistentHash Lamping & Veach 2014, exact; n buckets, no memory, O(ln n). Growing from n
//                      to n+1 buckets moves 1/(n+1) of the keys, all onto the new bucket. Buckets
//                      can only be added or removed at the end.
//   Rendezvous         weighted highest-random-weight hashing: O(n) per key, arbitrary removal,
//                      a key moves only when its winner leaves or a newcomer outscores it.
//   HashRing           ring of virtual nodes, O(log V) lookup, arbitrary add/remove;
//                      BoundedLoadAssigner adds consistent hashing with bounded loads (Mirrokni,
//                      Thorup, Zadimoghaddam 2018): no shard holds more than ceil((1+eps) * m / n)
//                      of m assigned keys.
//   RangePartitioner   sorted split points over byte-string keys (memcmp order).
//
// Thread safety: the free functions are pure. Rendezvous, HashRing and RangePartitioner are
// immutable after construction except through their documented mutators (not synchronised);
// const lookups may run concurrently. BoundedLoadAssigner is not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/ids.h"
#include "faultline/core/status.h"

namespace faultline::shard {

struct ShardIdTag {};
// A shard (a database, a server group): the unit data is placed on.
using ShardId = StrongId<ShardIdTag, uint32_t>;

// XXH64 with the given seed over `key`: the stable 64-bit key hash every partitioner here uses.
// XXH64("", 0) == 0xEF46DB3751D8E999.
uint64_t KeyHash(std::string_view key, uint64_t seed = 0);

// Lamping & Veach's jump consistent hash: a bucket in [0, num_buckets). num_buckets >= 1.
int32_t JumpConsistentHash(uint64_t key, int32_t num_buckets);

// ln(u) for u in (0, 1] (normal), with exact bit operations and IEEE + - * / only: identical on
// every platform. Relative error below 1e-14. Used by Rendezvous; exposed for its test.
double RendezvousLog(double u);

// Weighted rendezvous hashing. Each shard has a weight > 0; a key goes to the shard maximising
// weight / -ln(u), u = a uniform in (0,1) derived from (key hash, shard id), so a shard's expected
// share is its weight over the total. With all weights equal the score reduces to the hash itself
// (same winner, no logarithm). Logarithms use RendezvousLog (IEEE-exact operations only), so
// results are bit-identical everywhere.
class Rendezvous {
 public:
  struct Member {
    ShardId shard;
    double weight = 1.0;
  };
  // kInvalidArgument: no members, a duplicate shard, or a weight not in (0, 1e9].
  static Result<Rendezvous> Create(std::vector<Member> members);

  ShardId Pick(uint64_t key_hash) const;
  // The top `out.size()` shards in descending score (replica placement); out.size() <= size().
  void PickTop(uint64_t key_hash, std::span<ShardId> out) const;
  size_t size() const { return members_.size(); }

 private:
  explicit Rendezvous(std::vector<Member> members);
  double Score(uint64_t key_hash, const Member& m) const;
  std::vector<Member> members_;
  bool uniform_ = true;
};

// Consistent-hash ring with virtual nodes.
class HashRing {
 public:
  struct Options {
    uint32_t vnodes_per_shard = 160;  // imbalance shrinks ~ 1/sqrt(vnodes)
    uint32_t shards_max = 4096;
  };
  explicit HashRing(Options options);
  HashRing() : HashRing(Options{}) {}

  // kAlreadyExists for a present shard, kResourceExhausted past shards_max.
  Status AddShard(ShardId shard);
  // kNotFound for an absent shard.
  Status RemoveShard(ShardId shard);
  // The owner of the first vnode at or after key_hash (wrapping). The ring must be non-empty.
  ShardId Lookup(uint64_t key_hash) const;
  // Index into points() of that vnode, for walking the ring (BoundedLoadAssigner).
  size_t LookupIndex(uint64_t key_hash) const;

  struct Point {
    uint64_t hash;
    ShardId shard;
  };
  const std::vector<Point>& points() const { return points_; }
  const std::vector<ShardId>& shards() const { return shards_; }

 private:
  Options options_;
  std::vector<Point> points_;  // sorted by (hash, shard)
  std::vector<ShardId> shards_;
};

// Consistent hashing with bounded loads over a HashRing: each Assign goes to the first shard
// clockwise from the key's position whose load is below the capacity ceil((1+epsilon) * (m+1) / n)
// where m is the number of keys currently assigned and n the number of shards. So after any
// sequence of Assign/Release, max load <= ceil((1+epsilon) * m / n) (+1 for rounding).
// The ring must outlive the assigner and must not change while it is in use.
class BoundedLoadAssigner {
 public:
  // epsilon > 0 (e.g. 0.25 for max/mean <= 1.25).
  BoundedLoadAssigner(const HashRing& ring, double epsilon);
  ShardId Assign(uint64_t key_hash);
  // Gives back one unit of load from `shard` (which must hold some).
  void Release(ShardId shard);
  uint64_t load(ShardId shard) const;
  uint64_t assigned() const { return assigned_; }

 private:
  size_t SlotOf(ShardId shard) const;
  const HashRing* ring_;
  double epsilon_;
  std::vector<uint64_t> loads_;  // parallel to ring_->shards()
  uint64_t assigned_ = 0;
};

// Range partitioning: split points s_0 < s_1 < ... < s_{k-1} cut the key space into k+1 ranges,
// range i = [s_{i-1}, s_i) (range 0 starts at "", the last is unbounded); range i is on shards[i].
class RangePartitioner {
 public:
  // kInvalidArgument: split points not strictly increasing, an empty split point, or
  // shards.size() != split_points.size() + 1.
  static Result<RangePartitioner> Create(std::vector<std::string> split_points,
                                         std::vector<ShardId> shards);
  ShardId Lookup(std::string_view key) const { return shards_[RangeIndex(key)]; }
  size_t RangeIndex(std::string_view key) const;

 private:
  RangePartitioner() = default;
  std::vector<std::string> split_points_;
  std::vector<ShardId> shards_;
};

}  // namespace faultline::shard
