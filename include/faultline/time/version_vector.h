// File: faultline/time/version_vector.h
//
// Causality between replicas of one key: version vectors (vector clocks over replicas) and dotted
// version vectors (Preguiça, Baquero, Almeida, Fonte, Gonçalves 2012; the DVV-set variant Riak 2.0
// ships), with a register that keeps concurrent writes as siblings and drops only what a writer
// saw.
//
// Replica ids are small integers (`ReplicaId`, typically `NodeId::value()`); clients have no ids.
// Everything here is a value type: not thread-safe for mutation, safe for concurrent const use.
//
//   DvvRegister a, b;                                   // two replicas of one key
//   DvvRead r = a.Read();                               // values + causal context
//   auto dot = a.Put(/*replica=*/0, r.context, "v1");   // supersedes exactly what r saw
//   FL_RETURN_IF_ERROR(b.Merge(a));                     // anti-entropy / read repair
//
// Why DVV and not a plain version vector per object: with one vector per object (Riak before 2.0,
// "vnode vclocks"), a put whose context is not the latest cannot tell which siblings the writer
// saw, so it must keep them all and the sibling list grows with every interleaved write ("sibling
// explosion"). A dot names each sibling's own write, so a put drops exactly the siblings its
// context covers. Last-writer-wins instead keeps one value and silently loses concurrent writes.
//
// Sibling bound (what is, and is not, guaranteed). Siblings are exactly the writes no writer saw
// before writing over them: pairwise concurrent writes. Hence:
//   - the metadata (the causal context) has at most one entry per replica, however many clients;
//   - siblings never grow with the number of writes, only with the number of truly concurrent
//     writers (clients whose contexts did not include each other's writes);
//   - when each replica's coordinator reads and writes a key without another put in between
//     (read-modify-write at the coordinator, as Riak's vnodes do for a client put with its
//     fetched context), siblings <= number of replicas: at most one per replica, its latest write.
// A client writing with a stale or empty context creates a real concurrent sibling; that is the
// price of losing nothing, and `DvvOptions::siblings_max` caps it (puts beyond are refused).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/options.h"
#include "faultline/core/status.h"

namespace faultline {

using ReplicaId = uint32_t;

// The outcome of comparing two causal histories a and b.
enum class Causality : uint8_t {
  kEqual,       // a == b
  kBefore,      // a < b: b saw everything a saw, and more
  kAfter,       // a > b
  kConcurrent,  // each saw something the other did not
};
std::string_view CausalityName(Causality c);

// One write event: the `counter`-th write accepted by `replica`. Counters start at 1.
struct Dot {
  ReplicaId replica = 0;
  uint64_t counter = 0;
  friend constexpr auto operator<=>(const Dot&, const Dot&) = default;
};

// A version vector: for each replica, how many of its writes are in the causal history. Stored
// inline as a sorted array of at most kReplicasMax (replica, counter) pairs with counter >= 1
// (an absent replica has counter 0), so Compare/Merge/Get never allocate and the representation is
// canonical (== is structural). 200 bytes.
class VersionVector {
 public:
  // Distinct replicas one vector can name. Raising it grows every vector by 12 bytes per replica.
  static constexpr size_t kReplicasMax = 16;
  // Counters above this are refused by the codec, so increments can never overflow.
  static constexpr uint64_t kCounterMax = uint64_t{1} << 62;

  VersionVector() = default;

  // 0 when the replica is absent.
  uint64_t Get(ReplicaId replica) const;
  // True when the dot is in this history (dot.counter <= Get(dot.replica)).
  bool Covers(Dot dot) const { return dot.counter <= Get(dot.replica); }

  // Adds one write of `replica` and returns its counter. kResourceExhausted (vector unchanged)
  // when `replica` is new and kReplicasMax replicas are present already.
  Result<uint64_t> Increment(ReplicaId replica);
  // Sets the replica's counter to max(current, counter). Same error as Increment.
  // counter <= kCounterMax.
  Status Raise(ReplicaId replica, uint64_t counter);
  // Pointwise maximum. kResourceExhausted (vector unchanged) when the union names more than
  // kReplicasMax replicas. Never allocates.
  Status Merge(const VersionVector& other);

  // How this history relates to `other`. Never allocates. Same replica set (the steady state):
  // one memcmp and a branch-free pass; otherwise a sorted merge walk. ~10 ns for 8 replicas
  // (bench/vv_bench.cc).
  Causality Compare(const VersionVector& other) const;
  // *this >= other (equal or after).
  bool Descends(const VersionVector& other) const {
    const Causality c = Compare(other);
    return c == Causality::kEqual || c == Causality::kAfter;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // i-th entry in increasing replica order, i < size().
  Dot entry(size_t i) const {
    FL_ASSERT(i < size_);
    return Dot{replicas_[i], counters_[i]};
  }

  // "{0:3,2:1}".
  std::string ToString() const;

  friend bool operator==(const VersionVector& a, const VersionVector& b);

 private:
  // Index of the first entry with replica >= r.
  size_t LowerBound(ReplicaId r) const;
  Status InsertAt(size_t i, ReplicaId replica, uint64_t counter);

  uint32_t size_ = 0;
  std::array<ReplicaId, kReplicasMax> replicas_{};
  std::array<uint64_t, kReplicasMax> counters_{};
};

// Limits of a DvvRegister. Every put or merge that would exceed them is refused with a Status.
struct DvvOptions {
  // Siblings kept at once (Riak's max_siblings defaults to 100). A put that would exceed it is
  // refused with kResourceExhausted: the client must resolve the siblings first.
  uint32_t siblings_max = 64;
  // Largest value accepted by Put and by the codec.
  uint32_t value_bytes_max = 1 << 20;
  Status Validate() const;
};

// One surviving write.
struct DvvSibling {
  Dot dot;
  std::string value;
  friend bool operator==(const DvvSibling&, const DvvSibling&) = default;
};

// What a read returns: every sibling value and the causal context that covers them all. A client
// that resolves the values and writes back with this context supersedes exactly these siblings.
struct DvvRead {
  std::vector<std::string> values;
  VersionVector context;
};

// A multi-value register over opaque byte-string values (a template would need a value codec;
// values are bytes, as in Riak). The state is (siblings, context): siblings are pairwise
// concurrent writes, each named by its dot and covered by `context`, the register's causal history.
class DvvRegister {
 public:
  DvvRegister() = default;
  static Result<DvvRegister> Create(DvvOptions options);

  DvvRead Read() const;
  // Siblings in increasing dot order (replica, then counter).
  const std::vector<DvvSibling>& siblings() const { return siblings_; }
  const VersionVector& context() const { return context_; }
  const DvvOptions& options() const { return options_; }

  // A client write accepted by `replica` with the context of the client's last read (an empty
  // context for a blind write). Creates dot (replica, max_r + 1), where max_r is the largest
  // counter of `replica` known to the register or to `context`; drops exactly the siblings whose
  // dot the context covers; keeps the rest (concurrent with this write); adds the new sibling; and
  // merges the context and the dot into the register's causal history. Returns the new dot.
  // Errors, register unchanged: kInvalidArgument (value too long), kResourceExhausted (more than
  // siblings_max siblings or kReplicasMax replicas).
  // Never allocates when `value` is moved in and the sibling vector has room.
  Result<Dot> Put(ReplicaId replica, const VersionVector& context, std::string value);

  // Replica synchronisation: keeps the siblings of each side that the other side's history does
  // not cover (or that both still hold), and merges the histories. Commutative, associative and
  // idempotent. Errors, register unchanged: kResourceExhausted (as for Put).
  Status Merge(const DvvRegister& other);

  friend bool operator==(const DvvRegister& a, const DvvRegister& b) {
    return a.context_ == b.context_ && a.siblings_ == b.siblings_;
  }

 private:
  friend Status DecodeDvvRegister(std::span<const uint8_t>, const DvvOptions&, DvvRegister*);
  DvvOptions options_;
  VersionVector context_;
  std::vector<DvvSibling> siblings_;
};

// ---- Wire format ----
// VersionVector v1:  u8 version=1 | varint n (<= kReplicasMax)
//   | n × (varint replica, varint counter)
//   replicas strictly increasing, 1 <= counter <= kCounterMax.
// DvvRegister v1:    u8 version=1 | VersionVector body (n and pairs, no version byte)
//   | varint s (<= siblings_max) | s × (varint replica, varint counter, varint len, bytes)
//   dots strictly increasing and covered by the context; len <= value_bytes_max.
// Decoders read the whole buffer and never trust it: truncated or trailing bytes and
// non-canonical content → kDataLoss; unknown version → kUnimplemented; a count, id, counter or
// length above its limit → kOutOfRange.
inline constexpr uint8_t kVersionVectorCodecVersion = 1;
inline constexpr uint8_t kDvvRegisterCodecVersion = 1;

// Appends the encoding to *out.
void EncodeVersionVector(const VersionVector& vv, std::vector<uint8_t>* out);
Result<VersionVector> DecodeVersionVector(std::span<const uint8_t> in);

void EncodeDvvRegister(const DvvRegister& reg, std::vector<uint8_t>* out);
// On error *out is unchanged. The decoded register takes `options`.
Status DecodeDvvRegister(std::span<const uint8_t> in, const DvvOptions& options, DvvRegister* out);

}  // namespace faultline
