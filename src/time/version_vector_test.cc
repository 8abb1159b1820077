// Unit and property tests for faultline/time/version_vector.h: version-vector laws, the dotted
// version vector register against a causal model, the failures it exists to prevent (LWW losing a
// concurrent read-modify-write; Riak's pre-2.0 sibling explosion), and the codecs against
// truncated, corrupt and over-limit input.
#include "faultline/time/version_vector.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/core/random.h"

namespace faultline {
namespace {

// tag + n, appended rather than concatenated: GCC 12 misreports "tag" + std::string&& at -O3
// (-Wrestrict, GCC bug 105651).
std::string Tagged(std::string_view tag, int64_t n) {
  std::string s(tag);
  s += std::to_string(n);
  return s;
}

VersionVector Vv(std::initializer_list<std::pair<ReplicaId, uint64_t>> entries) {
  VersionVector vv;
  for (auto [r, c] : entries) EXPECT_TRUE(vv.Raise(r, c).ok());
  return vv;
}

// A random vector over replicas [0, universe) with small counters, so collisions are frequent.
VersionVector GenVv(uint32_t universe) {
  VersionVector vv;
  const int n = *rc::gen::inRange(0, 10);
  for (int i = 0; i < n; ++i) {
    const auto r = *rc::gen::inRange<uint32_t>(0, universe);
    const auto c = *rc::gen::inRange<uint64_t>(1, 6);
    RC_ASSERT(vv.Raise(r, c).ok());
  }
  return vv;
}

VersionVector Merged(VersionVector a, const VersionVector& b) {
  EXPECT_TRUE(a.Merge(b).ok());
  return a;
}

// ---------------------------------------------------------------------------------------------
// VersionVector

TEST(VersionVectorTest, CompareDistinguishesEqualBeforeAfterAndConcurrent) {
  // The four outcomes are what every causal decision rests on; absent replicas count as 0, so a
  // vector with an extra replica is after, never equal.
  const VersionVector a = Vv({{1, 2}, {3, 1}});
  EXPECT_EQ(a.Compare(a), Causality::kEqual);
  EXPECT_EQ(a.Compare(Vv({{1, 2}, {3, 2}})), Causality::kBefore);
  EXPECT_EQ(a.Compare(Vv({{1, 2}})), Causality::kAfter);
  EXPECT_EQ(a.Compare(Vv({{1, 2}, {2, 1}, {3, 1}})), Causality::kBefore);
  EXPECT_EQ(a.Compare(Vv({{1, 3}})), Causality::kConcurrent);
  EXPECT_EQ(a.Compare(Vv({{0, 1}, {1, 2}, {3, 1}})), Causality::kBefore);
  EXPECT_EQ(VersionVector().Compare(VersionVector()), Causality::kEqual);
  EXPECT_EQ(VersionVector().Compare(a), Causality::kBefore);
  EXPECT_TRUE(a.Descends(VersionVector()));
  EXPECT_FALSE(VersionVector().Descends(a));
}

TEST(VersionVectorTest, IncrementGetAndCoversTrackOneReplicasWrites) {
  // Increment is how a replica stamps a local event; Covers(dot) is "this history includes that
  // write". Entries stay sorted whatever the insertion order, which ToString shows.
  VersionVector vv;
  EXPECT_EQ(*vv.Increment(7), 1u);
  EXPECT_EQ(*vv.Increment(2), 1u);
  EXPECT_EQ(*vv.Increment(7), 2u);
  EXPECT_EQ(vv.Get(7), 2u);
  EXPECT_EQ(vv.Get(2), 1u);
  EXPECT_EQ(vv.Get(5), 0u);
  EXPECT_TRUE(vv.Covers(Dot{7, 2}));
  EXPECT_FALSE(vv.Covers(Dot{7, 3}));
  EXPECT_FALSE(vv.Covers(Dot{5, 1}));
  EXPECT_EQ(vv.ToString(), "{2:1,7:2}");
}

TEST(VersionVectorTest, MoreThanReplicasMaxIsRefusedAndLeavesTheVectorUnchanged) {
  // The inline capacity is the documented limit; exceeding it (e.g. merging vectors from a
  // misconfigured cluster) must be an error Status, not memory corruption or a crash.
  VersionVector full;
  for (ReplicaId r = 0; r < VersionVector::kReplicasMax; ++r) ASSERT_TRUE(full.Increment(r).ok());
  const VersionVector before = full;
  EXPECT_EQ(full.Increment(100).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(full.Raise(100, 3).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(full.Merge(Vv({{100, 1}})).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(full, before);
  // Existing replicas still work at capacity.
  EXPECT_TRUE(full.Merge(Vv({{3, 9}})).ok());
  EXPECT_EQ(full.Get(3), 9u);
}

RC_GTEST_PROP(VersionVectorProps, MergeIsCommutativeAssociativeAndIdempotent, ()) {
  // Replica sync must converge whatever the order and repetition of merges: the join-semilattice
  // laws. Universe 12 keeps every union within kReplicasMax.
  const VersionVector a = GenVv(12);
  const VersionVector b = GenVv(12);
  const VersionVector c = GenVv(12);
  RC_ASSERT(Merged(a, b) == Merged(b, a));
  RC_ASSERT(Merged(Merged(a, b), c) == Merged(a, Merged(b, c)));
  RC_ASSERT(Merged(a, a) == a);
}

RC_GTEST_PROP(VersionVectorProps, CompareIsConsistentWithMergeAndAPointwiseModel, ()) {
  // compare(a, b) must agree with the definition (pointwise <= over all replicas) and with merge:
  // a <= merge(a, b), and a <= b exactly when merge(a, b) == b. Exercises both the same-replica-set
  // fast path and the general walk.
  const bool same_set = *rc::gen::arbitrary<bool>();
  const VersionVector a = GenVv(12);
  VersionVector b = GenVv(12);
  if (same_set) {
    b = VersionVector();
    for (size_t i = 0; i < a.size(); ++i) {
      RC_ASSERT(b.Raise(a.entry(i).replica, *rc::gen::inRange<uint64_t>(1, 6)).ok());
    }
  }
  bool less = false;
  bool greater = false;
  for (ReplicaId r = 0; r < 12; ++r) {
    less |= a.Get(r) < b.Get(r);
    greater |= a.Get(r) > b.Get(r);
  }
  const Causality expected = less ? (greater ? Causality::kConcurrent : Causality::kBefore)
                                  : (greater ? Causality::kAfter : Causality::kEqual);
  RC_ASSERT(a.Compare(b) == expected);
  const VersionVector m = Merged(a, b);
  RC_ASSERT(m.Descends(a));
  RC_ASSERT(m.Descends(b));
  RC_ASSERT((m == b) == b.Descends(a));
  const Causality reverse = b.Compare(a);
  switch (expected) {
    case Causality::kBefore:
      RC_ASSERT(reverse == Causality::kAfter);
      break;
    case Causality::kAfter:
      RC_ASSERT(reverse == Causality::kBefore);
      break;
    default:
      RC_ASSERT(reverse == expected);
  }
}

// ---------------------------------------------------------------------------------------------
// DvvRegister

std::multiset<std::string> Values(const DvvRegister& reg) {
  std::multiset<std::string> out;
  for (const DvvSibling& s : reg.siblings()) out.insert(s.value);
  return out;
}

void ExpectInvariants(const DvvRegister& reg) {
  const auto& sib = reg.siblings();
  for (size_t i = 0; i < sib.size(); ++i) {
    EXPECT_TRUE(reg.context().Covers(sib[i].dot));
    if (i > 0) {
      EXPECT_LT(sib[i - 1].dot, sib[i].dot);
    }
  }
  EXPECT_LE(sib.size(), reg.options().siblings_max);
}

TEST(DvvRegisterTest, PutDropsExactlyTheSiblingsItsContextCovers) {
  // The DVV rule: a write replaces what its writer read, and keeps what it did not see. A write
  // with the full context leaves one value; a write with a partial context keeps the rest.
  DvvRegister reg;
  const DvvRead empty = reg.Read();
  EXPECT_TRUE(empty.values.empty());
  EXPECT_EQ(*reg.Put(0, empty.context, "a"), (Dot{0, 1}));
  EXPECT_EQ(*reg.Put(0, empty.context, "b"), (Dot{0, 2}));  // blind: concurrent with "a"
  EXPECT_EQ(Values(reg), (std::multiset<std::string>{"a", "b"}));

  const DvvRead both = reg.Read();
  EXPECT_EQ(both.context, Vv({{0, 2}}));
  EXPECT_EQ(*reg.Put(1, Vv({{0, 1}}), "c"), (Dot{1, 1}));  // saw "a" only
  EXPECT_EQ(Values(reg), (std::multiset<std::string>{"b", "c"}));
  EXPECT_EQ(*reg.Put(0, reg.Read().context, "d"), (Dot{0, 3}));  // saw everything
  EXPECT_EQ(Values(reg), (std::multiset<std::string>{"d"}));
  EXPECT_EQ(reg.context(), Vv({{0, 3}, {1, 1}}));
  ExpectInvariants(reg);
}

TEST(DvvRegisterTest, PutAbsorbsAContextFromAnotherReplicaSoItsDotStaysAbove) {
  // A client may read at replica 1 and write at replica 0. The new dot must be above everything
  // replica 0's counter reached anywhere, or it would be "covered" by the very context it carries.
  DvvRegister r0;
  DvvRegister r1;
  ASSERT_TRUE(r0.Put(0, {}, "x").ok());
  ASSERT_TRUE(r1.Merge(r0).ok());
  ASSERT_TRUE(r0.Put(0, r0.Read().context, "y").ok());
  ASSERT_TRUE(r1.Merge(r0).ok());  // r1 knows (0,2)
  DvvRegister fresh;               // a replica 0 that lost everything but sees the client's context
  const Dot dot = *fresh.Put(0, r1.Read().context, "z");
  EXPECT_EQ(dot, (Dot{0, 3}));
  EXPECT_EQ(Values(fresh), (std::multiset<std::string>{"z"}));
}

TEST(DvvRegisterTest, MergeKeepsConcurrentSiblingsAndDropsWhatTheOtherSideOverwrote) {
  // Anti-entropy between replicas: a sibling the other side saw and replaced must not come back
  // (resurrection), a sibling the other side never saw must not vanish (loss).
  DvvRegister a;
  DvvRegister b;
  ASSERT_TRUE(a.Put(0, {}, "v1").ok());
  ASSERT_TRUE(b.Merge(a).ok());
  ASSERT_TRUE(b.Put(1, b.Read().context, "v2").ok());  // b overwrites v1
  ASSERT_TRUE(a.Put(0, Vv({}), "v3").ok());            // a: blind write, concurrent with both
  DvvRegister ab = a;
  ASSERT_TRUE(ab.Merge(b).ok());
  DvvRegister ba = b;
  ASSERT_TRUE(ba.Merge(a).ok());
  EXPECT_EQ(Values(ab), (std::multiset<std::string>{"v2", "v3"}));  // v1 stays dead
  EXPECT_EQ(ab, ba);
  ExpectInvariants(ab);
}

// Last-writer-wins register: what the "classic failure" looks like.
struct LwwRegister {
  int64_t ts = 0;
  std::string value;
  void Put(int64_t t, std::string v) {
    if (t >= ts) {
      ts = t;
      value = std::move(v);
    }
  }
};

TEST(DvvRegisterTest, LwwLosesAConcurrentReadModifyWriteButDvvKeepsBoth) {
  // Regression for the classic LWW bug (Cassandra/Riak allow_mult=false): two clients add an item
  // to the same cart concurrently; the later timestamp wins and the other item silently vanishes,
  // although both writes were acknowledged. DVV keeps both as siblings; the next reader merges.
  LwwRegister lww;
  lww.Put(1, "milk");
  const std::string seen_a = lww.value;
  const std::string seen_b = lww.value;
  lww.Put(2, seen_a + ",eggs");        // client A
  lww.Put(3, seen_b + ",bread");       // client B, slightly later clock
  EXPECT_EQ(lww.value, "milk,bread");  // eggs lost

  DvvRegister dvv;
  ASSERT_TRUE(dvv.Put(0, {}, "milk").ok());
  const DvvRead read_a = dvv.Read();
  const DvvRead read_b = dvv.Read();
  ASSERT_TRUE(dvv.Put(0, read_a.context, read_a.values[0] + ",eggs").ok());
  ASSERT_TRUE(dvv.Put(1, read_b.context, read_b.values[0] + ",bread").ok());
  EXPECT_EQ(Values(dvv), (std::multiset<std::string>{"milk,eggs", "milk,bread"}));
  // The next reader resolves (union of items) and its write supersedes both siblings.
  const DvvRead resolve = dvv.Read();
  ASSERT_TRUE(dvv.Put(0, resolve.context, "milk,eggs,bread").ok());
  EXPECT_EQ(Values(dvv), (std::multiset<std::string>{"milk,eggs,bread"}));
}

// Riak before 2.0 ("vnode vclocks"): one version vector per object, no dots. A put whose context
// does not descend the object's clock cannot tell which siblings the writer saw, so keeps them all.
struct VnodeVvRegister {
  VersionVector vv;
  std::vector<std::string> values;
  void Put(ReplicaId replica, const VersionVector& ctx, std::string value) {
    if (ctx.Descends(vv)) values.clear();
    values.push_back(std::move(value));
    EXPECT_TRUE(vv.Merge(ctx).ok());
    EXPECT_TRUE(vv.Increment(replica).ok());
  }
};

TEST(DvvRegisterTest, AvoidsRiakSiblingExplosionThatVnodeVersionVectorsSuffer) {
  // Regression for Riak's sibling explosion (fixed in 2.0 by DVV): two clients in a steady
  // read-modify-write loop whose writes interleave. Each write's context misses the other
  // client's latest write, so with per-object vnode clocks every write is "concurrent" and
  // siblings grow by one per write. With dots, each write supersedes what its client saw and
  // siblings stay at the number of concurrent writers (2).
  constexpr int kRounds = 100;
  VnodeVvRegister vnode;
  DvvRegister dvv;
  VersionVector vnode_ctx[2];
  VersionVector dvv_ctx[2];
  size_t dvv_max = 0;
  for (int round = 0; round < kRounds; ++round) {
    for (int c = 0; c < 2; ++c) {
      const std::string v = Tagged("c", c).append(Tagged("-", round));
      vnode.Put(0, vnode_ctx[c], v);
      vnode_ctx[c] = vnode.vv;  // the client reads right after its write
      ASSERT_TRUE(dvv.Put(0, dvv_ctx[c], v).ok());
      dvv_ctx[c] = dvv.Read().context;
      dvv_max = std::max(dvv_max, dvv.siblings().size());
    }
  }
  EXPECT_GE(vnode.values.size(), static_cast<size_t>(2 * kRounds - 1));  // explosion
  EXPECT_EQ(dvv_max, 2u);
  EXPECT_EQ(dvv.context().size(), 1u);  // metadata: one entry per replica, not per client
}

TEST(DvvRegisterTest, ManyClientsThroughFewReplicasKeepSiblingsAtMostTheReplicaCount) {
  // 64 clients write one key through 3 replicas that sync only now and then. Each replica
  // coordinates a client's put with the context it holds (Riak's coordinator read-modify-write),
  // so concurrency comes only from replicas that have not synced: siblings <= 3 and the causal
  // metadata <= 3 entries, whatever the number of clients or writes. Syncs are random, so the
  // replicas do diverge (max siblings must reach 2, or the test proves nothing).
  constexpr uint32_t kReplicas = 3;
  constexpr uint32_t kClients = 64;
  Rng rng(42);
  std::vector<DvvRegister> replicas(kReplicas);
  size_t max_siblings = 0;
  for (int step = 0; step < 5000; ++step) {
    if (rng.Uniform(10) < 8) {
      const auto client = static_cast<uint32_t>(rng.Uniform(kClients));
      const auto r = static_cast<ReplicaId>(rng.Uniform(kReplicas));
      const DvvRead read = replicas[r].Read();
      ASSERT_TRUE(replicas[r].Put(r, read.context, Tagged("c", client)).ok());
    } else {
      const auto from = rng.Uniform(kReplicas);
      const auto to = rng.Uniform(kReplicas);
      ASSERT_TRUE(replicas[to].Merge(replicas[from]).ok());
    }
    for (const DvvRegister& reg : replicas) {
      ASSERT_LE(reg.siblings().size(), kReplicas);
      ASSERT_LE(reg.context().size(), kReplicas);
      max_siblings = std::max(max_siblings, reg.siblings().size());
    }
  }
  EXPECT_GE(max_siblings, 2u);
}

TEST(DvvRegisterTest, StaleClientContextsMakeRealSiblingsBoundedByConcurrentWriters) {
  // The honest limit of the replica bound above: clients that read, think, then write with a now
  // stale context are truly concurrent, and DVV keeps each of their writes (dropping one would be
  // LWW's loss). Siblings are then bounded by the writers in flight (16), not by replicas (1),
  // and never grow with the number of writes.
  constexpr uint32_t kClients = 16;
  Rng rng(7);
  DvvRegister reg;
  std::vector<VersionVector> ctx(kClients);
  for (auto& c : ctx) c = reg.Read().context;
  size_t max_siblings = 0;
  for (int step = 0; step < 4000; ++step) {
    const auto c = rng.Uniform(kClients);
    ASSERT_TRUE(reg.Put(0, ctx[c], Tagged("w", step)).ok());
    ctx[c] = reg.Read().context;  // the client reads again, then waits for its next turn
    ASSERT_LE(reg.siblings().size(), kClients);
    max_siblings = std::max(max_siblings, reg.siblings().size());
  }
  EXPECT_GT(max_siblings, 1u);
}

TEST(DvvRegisterTest, PutBeyondSiblingsMaxIsRefusedUntilTheSiblingsAreResolved) {
  // The cap on siblings (Riak's max_siblings) protects the replica from unbounded objects; a
  // refused put changes nothing, and a resolving put (full context) is always accepted.
  DvvOptions options;
  options.siblings_max = 3;
  DvvRegister reg = *DvvRegister::Create(options);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reg.Put(0, {}, Tagged("v", i)).ok());
  const DvvRegister before = reg;
  EXPECT_EQ(reg.Put(0, {}, "v3").status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(reg, before);
  EXPECT_TRUE(reg.Put(0, reg.Read().context, "resolved").ok());
  EXPECT_EQ(reg.siblings().size(), 1u);

  options.value_bytes_max = 4;
  DvvRegister small = *DvvRegister::Create(options);
  EXPECT_EQ(small.Put(0, {}, "12345").status().code(), StatusCode::kInvalidArgument);
  options.siblings_max = 0;
  EXPECT_EQ(DvvRegister::Create(options).status().code(), StatusCode::kInvalidArgument);
}

// ---- Model-based property ----
//
// The model tracks causality explicitly: every write has an id and a past (the set of write ids
// in the context its client sent); every replica has the set of writes it has seen (closed under
// pasts). The writes a replica must expose are the frontier: seen writes that no seen write has in
// its past. The register must expose exactly these values: none lost (unless superseded) and no
// false sibling.
struct CausalModel {
  std::vector<std::set<int>> past;  // by write id
  std::vector<std::set<int>> seen;  // by replica
  std::set<int> Frontier(const std::set<int>& s) const {
    std::set<int> out = s;
    for (int w : s) {
      for (int p : past[static_cast<size_t>(w)]) out.erase(p);
    }
    return out;
  }
};

std::multiset<std::string> ModelValues(const CausalModel& m, const std::set<int>& seen) {
  std::multiset<std::string> out;
  for (int w : m.Frontier(seen)) out.insert(Tagged("w", w));
  return out;
}

// Registers with room for every sibling a generated run can create (the cap is tested elsewhere).
DvvRegister Roomy() {
  DvvOptions options;
  options.siblings_max = 1000;
  return *DvvRegister::Create(options);
}

struct ClientContext {
  VersionVector vv;
  std::set<int> seen;
};

RC_GTEST_PROP(DvvRegisterProps, MatchesCausalModelAndConvergesInAnyMergeOrder, ()) {
  // After any sequence of reads, puts (with fresh, stale or empty contexts) and replica merges:
  // (1) each replica exposes exactly the model's frontier (no acknowledged write lost unless a
  //     later put's context covered it, no spurious sibling);
  // (2) when every put uses the coordinator's current context, siblings <= replicas;
  // (3) merging all replicas converges to the same state in any order, equal to the model.
  const auto replicas = *rc::gen::inRange<uint32_t>(2, 5);
  const auto clients = *rc::gen::inRange<uint32_t>(1, 6);
  const bool coordinator_only = *rc::gen::arbitrary<bool>();
  const auto ops = *rc::gen::inRange(0, 80);
  std::vector<DvvRegister> regs(replicas, Roomy());
  std::vector<ClientContext> ctx(clients);
  CausalModel model;
  model.seen.resize(replicas);

  for (int op = 0; op < ops; ++op) {
    const int kind = *rc::gen::inRange(0, 4);
    const auto r = *rc::gen::inRange<uint32_t>(0, replicas);
    const auto c = *rc::gen::inRange<uint32_t>(0, clients);
    if (kind == 0 && !coordinator_only) {  // client read
      ctx[c] = ClientContext{regs[r].Read().context, model.seen[r]};
    } else if (kind <= 2) {  // put
      ClientContext use = ctx[c];
      if (coordinator_only) use = ClientContext{regs[r].Read().context, model.seen[r]};
      const int id = static_cast<int>(model.past.size());
      RC_ASSERT(regs[r].Put(r, use.vv, Tagged("w", id)).ok());
      model.past.push_back(use.seen);
      model.seen[r].insert(use.seen.begin(), use.seen.end());
      model.seen[r].insert(id);
    } else {  // replica sync: r pulls from another replica
      const auto from = *rc::gen::inRange<uint32_t>(0, replicas);
      RC_ASSERT(regs[r].Merge(regs[from]).ok());
      model.seen[r].insert(model.seen[from].begin(), model.seen[from].end());
    }
    for (uint32_t i = 0; i < replicas; ++i) {
      RC_ASSERT(Values(regs[i]) == ModelValues(model, model.seen[i]));
      if (coordinator_only) RC_ASSERT(regs[i].siblings().size() <= replicas);
    }
  }

  std::vector<uint32_t> order(replicas);
  for (uint32_t i = 0; i < replicas; ++i) order[i] = i;
  std::vector<uint32_t> shuffled = order;
  Rng shuffle_rng(*rc::gen::arbitrary<uint64_t>());
  shuffle_rng.Shuffle(shuffled.data(), shuffled.size());
  DvvRegister forward = Roomy();
  DvvRegister random_order = Roomy();
  for (uint32_t i : order) RC_ASSERT(forward.Merge(regs[i]).ok());
  for (uint32_t i : shuffled) RC_ASSERT(random_order.Merge(regs[i]).ok());
  RC_ASSERT(forward == random_order);
  std::set<int> all;
  for (const auto& s : model.seen) all.insert(s.begin(), s.end());
  RC_ASSERT(Values(forward) == ModelValues(model, all));
  // Pairwise gossip until quiescent reaches the same state as the one-shot merge.
  for (uint32_t i = 0; i < replicas; ++i) {
    for (uint32_t j = 0; j < replicas; ++j) RC_ASSERT(regs[j].Merge(regs[i]).ok());
  }
  for (uint32_t i = 0; i < replicas; ++i) {
    for (uint32_t j = 0; j < replicas; ++j) RC_ASSERT(regs[j].Merge(regs[i]).ok());
  }
  for (const DvvRegister& reg : regs) RC_ASSERT(reg == forward);
}

// ---------------------------------------------------------------------------------------------
// Codecs

std::vector<uint8_t> Encode(const VersionVector& vv) {
  std::vector<uint8_t> out;
  EncodeVersionVector(vv, &out);
  return out;
}

std::vector<uint8_t> Encode(const DvvRegister& reg) {
  std::vector<uint8_t> out;
  EncodeDvvRegister(reg, &out);
  return out;
}

// Raw VV bytes: version, count, then (replica, counter) varints.
std::vector<uint8_t> RawVv(uint8_t version, std::vector<uint64_t> fields) {
  std::vector<uint8_t> out;
  ByteWriter w(&out);
  w.U8(version);
  for (uint64_t f : fields) w.Varint(f);
  return out;
}

StatusCode DecodeVvCode(const std::vector<uint8_t>& bytes) {
  return DecodeVersionVector(bytes).status().code();
}

TEST(VersionVectorCodecTest, RejectsTruncatedUnknownVersionOverLimitAndNonCanonicalInput) {
  // The decoder never trusts its input: every malformed shape maps to the documented code, and
  // nothing is read past the end (ASan would catch it).
  const VersionVector vv = Vv({{1, 5}, {300, 1ull << 40}});
  const std::vector<uint8_t> good = Encode(vv);
  ASSERT_EQ(*DecodeVersionVector(good), vv);
  for (size_t cut = 0; cut < good.size(); ++cut) {
    const std::vector<uint8_t> prefix(good.begin(), good.begin() + static_cast<long>(cut));
    EXPECT_EQ(DecodeVvCode(prefix), StatusCode::kDataLoss) << cut;
  }
  std::vector<uint8_t> trailing = good;
  trailing.push_back(0);
  EXPECT_EQ(DecodeVvCode(trailing), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeVvCode(RawVv(2, {0})), StatusCode::kUnimplemented);
  EXPECT_EQ(DecodeVvCode(RawVv(1, {17})), StatusCode::kOutOfRange);
  EXPECT_EQ(DecodeVvCode(RawVv(1, {1, 1ull << 32, 1})), StatusCode::kOutOfRange);
  EXPECT_EQ(DecodeVvCode(RawVv(1, {1, 1, VersionVector::kCounterMax + 1})),
            StatusCode::kOutOfRange);
  EXPECT_EQ(DecodeVvCode(RawVv(1, {1, 1, 0})), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeVvCode(RawVv(1, {2, 5, 1, 5, 1})), StatusCode::kDataLoss);  // duplicate
  EXPECT_EQ(DecodeVvCode(RawVv(1, {2, 5, 1, 4, 1})), StatusCode::kDataLoss);  // unsorted
  EXPECT_TRUE(
      DecodeVersionVector(RawVv(1, {16, 0, 1, 1, 1,  2, 1,  3, 1,  4, 1,  5, 1,  6, 1,  7, 1,
                                    8,  1, 9, 1, 10, 1, 11, 1, 12, 1, 13, 1, 14, 1, 15, 1}))
          .ok());
}

RC_GTEST_PROP(VersionVectorCodecProps, RoundTripsAndSurvivesArbitraryBytes, ()) {
  // Encode/decode is the identity on valid vectors; arbitrary or mutated bytes decode to an
  // error with a documented code or to a valid vector, never to a crash.
  const VersionVector vv = GenVv(1000);
  std::vector<uint8_t> bytes = Encode(vv);
  RC_ASSERT(*DecodeVersionVector(bytes) == vv);
  const auto pos = *rc::gen::inRange<size_t>(0, bytes.size());
  bytes[pos] = *rc::gen::arbitrary<uint8_t>();
  const auto garbage = *rc::gen::container<std::vector<uint8_t>>(rc::gen::arbitrary<uint8_t>());
  for (const auto& in : {bytes, garbage}) {
    Result<VersionVector> r = DecodeVersionVector(in);
    if (r.ok()) {
      RC_ASSERT(r->size() <= VersionVector::kReplicasMax);
      RC_ASSERT(*DecodeVersionVector(Encode(*r)) == *r);
    } else {
      const StatusCode code = r.status().code();
      RC_ASSERT(code == StatusCode::kDataLoss || code == StatusCode::kOutOfRange ||
                code == StatusCode::kUnimplemented);
    }
  }
}

DvvRegister GenRegister() {
  const auto replicas = *rc::gen::inRange<uint32_t>(1, 5);
  std::vector<DvvRegister> regs(replicas);
  const auto ops = *rc::gen::inRange(0, 20);
  for (int i = 0; i < ops; ++i) {
    const auto r = *rc::gen::inRange<uint32_t>(0, replicas);
    if (*rc::gen::inRange(0, 3) == 0) {
      RC_ASSERT(regs[r].Merge(regs[*rc::gen::inRange<uint32_t>(0, replicas)]).ok());
    } else {
      const VersionVector ctx =
          *rc::gen::arbitrary<bool>() ? regs[r].Read().context : VersionVector();
      const auto len = *rc::gen::inRange<size_t>(0, 40);
      RC_ASSERT(regs[r].Put(r, ctx, std::string(len, static_cast<char>('a' + i % 26))).ok());
    }
  }
  return regs[0];
}

RC_GTEST_PROP(DvvRegisterCodecProps, RoundTripsAndSurvivesTruncationAndCorruption, ()) {
  // A register state travels between replicas: decode(encode(s)) == s, every proper prefix is
  // kDataLoss, and a corrupted byte yields a documented error or a register that still satisfies
  // the invariants (sorted dots, all covered by the context).
  const DvvRegister reg = GenRegister();
  const std::vector<uint8_t> bytes = Encode(reg);
  DvvRegister back;
  RC_ASSERT(DecodeDvvRegister(bytes, DvvOptions{}, &back).ok());
  RC_ASSERT(back == reg);
  const auto cut = *rc::gen::inRange<size_t>(0, bytes.size());
  const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<long>(cut));
  RC_ASSERT(DecodeDvvRegister(prefix, DvvOptions{}, &back).code() == StatusCode::kDataLoss);
  RC_ASSERT(back == reg);  // unchanged on error
  std::vector<uint8_t> corrupt = bytes;
  const auto pos = *rc::gen::inRange<size_t>(0, corrupt.size());
  corrupt[pos] = *rc::gen::arbitrary<uint8_t>();
  DvvRegister out;
  const Status s = DecodeDvvRegister(corrupt, DvvOptions{}, &out);
  if (s.ok()) {
    for (size_t i = 0; i < out.siblings().size(); ++i) {
      RC_ASSERT(out.context().Covers(out.siblings()[i].dot));
      if (i > 0) RC_ASSERT(out.siblings()[i - 1].dot < out.siblings()[i].dot);
    }
  } else {
    RC_ASSERT(s.code() == StatusCode::kDataLoss || s.code() == StatusCode::kOutOfRange ||
              s.code() == StatusCode::kUnimplemented);
  }
}

TEST(DvvRegisterCodecTest, EnforcesSiblingAndValueLimitsAndCausalConsistency) {
  // Limits apply to decoded state too: a peer cannot push more siblings or longer values than
  // this replica accepts, nor a sibling outside the context it claims (that would break Put).
  DvvRegister reg;
  ASSERT_TRUE(reg.Put(0, {}, "aaaa").ok());
  ASSERT_TRUE(reg.Put(0, {}, "bbbb").ok());
  const std::vector<uint8_t> bytes = Encode(reg);
  DvvOptions tight;
  tight.siblings_max = 1;
  DvvRegister out;
  EXPECT_EQ(DecodeDvvRegister(bytes, tight, &out).code(), StatusCode::kOutOfRange);
  tight = DvvOptions{};
  tight.value_bytes_max = 3;
  EXPECT_EQ(DecodeDvvRegister(bytes, tight, &out).code(), StatusCode::kOutOfRange);

  // Hand-built: context {0:1} but a sibling with dot (0,2).
  std::vector<uint8_t> bad;
  ByteWriter w(&bad);
  w.U8(kDvvRegisterCodecVersion);
  w.Varint(1);
  w.Varint(0);
  w.Varint(1);
  w.Varint(1);
  w.Varint(0);
  w.Varint(2);
  w.Bytes("x");
  EXPECT_EQ(DecodeDvvRegister(bad, DvvOptions{}, &out).code(), StatusCode::kDataLoss);
  bad[0] = 9;
  EXPECT_EQ(DecodeDvvRegister(bad, DvvOptions{}, &out).code(), StatusCode::kUnimplemented);
  // A huge sibling count with no bytes behind it is refused before any allocation.
  std::vector<uint8_t> huge;
  ByteWriter h(&huge);
  h.U8(kDvvRegisterCodecVersion);
  h.Varint(0);
  h.Varint(50);
  EXPECT_EQ(DecodeDvvRegister(huge, DvvOptions{}, &out).code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace faultline
