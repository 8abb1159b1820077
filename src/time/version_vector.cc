#include "faultline/time/version_vector.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <utility>

#include "faultline/core/bytes.h"

namespace faultline {

std::string_view CausalityName(Causality c) {
  switch (c) {
    case Causality::kEqual:
      return "equal";
    case Causality::kBefore:
      return "before";
    case Causality::kAfter:
      return "after";
    case Causality::kConcurrent:
      return "concurrent";
  }
  return "?";
}

// ---- VersionVector ----

size_t VersionVector::LowerBound(ReplicaId r) const {
  // Linear: at most 16 entries, and the branch predictor does better than a binary search here.
  size_t i = 0;
  while (i < size_ && replicas_[i] < r) ++i;
  return i;
}

uint64_t VersionVector::Get(ReplicaId replica) const {
  const size_t i = LowerBound(replica);
  return (i < size_ && replicas_[i] == replica) ? counters_[i] : 0;
}

Status VersionVector::InsertAt(size_t i, ReplicaId replica, uint64_t counter) {
  FL_ASSERT(i <= size_);
  FL_ASSERT(counter >= 1 && counter <= kCounterMax);
  if (size_ == kReplicasMax) {
    return ResourceExhaustedError("version vector already names kReplicasMax replicas");
  }
  for (size_t k = size_; k > i; --k) {
    replicas_[k] = replicas_[k - 1];
    counters_[k] = counters_[k - 1];
  }
  replicas_[i] = replica;
  counters_[i] = counter;
  ++size_;
  FL_ASSERT(i == 0 || replicas_[i - 1] < replica);
  FL_ASSERT(i + 1 == size_ || replica < replicas_[i + 1]);
  return Status::Ok();
}

Result<uint64_t> VersionVector::Increment(ReplicaId replica) {
  const size_t i = LowerBound(replica);
  if (i < size_ && replicas_[i] == replica) {
    FL_ASSERT_MSG(counters_[i] < kCounterMax, "version vector counter overflow");
    return ++counters_[i];
  }
  FL_RETURN_IF_ERROR(InsertAt(i, replica, 1));
  return uint64_t{1};
}

Status VersionVector::Raise(ReplicaId replica, uint64_t counter) {
  FL_ASSERT(counter <= kCounterMax);
  if (counter == 0) return Status::Ok();  // absent means 0: nothing to raise
  const size_t i = LowerBound(replica);
  if (i < size_ && replicas_[i] == replica) {
    counters_[i] = std::max(counters_[i], counter);
    return Status::Ok();
  }
  return InsertAt(i, replica, counter);
}

Status VersionVector::Merge(const VersionVector& other) {
  const uint32_t n = size_;
  if (n == other.size_ &&
      std::memcmp(replicas_.data(), other.replicas_.data(), n * sizeof(ReplicaId)) == 0) {
    // Same replica set (the common case): pointwise max, vectorisable.
    for (uint32_t i = 0; i < n; ++i) counters_[i] = std::max(counters_[i], other.counters_[i]);
    return Status::Ok();
  }
  // Different replica sets: count the union first so a failure leaves *this unchanged.
  size_t i = 0;
  size_t j = 0;
  size_t union_size = 0;
  while (i < n && j < other.size_) {
    const ReplicaId a = replicas_[i];
    const ReplicaId b = other.replicas_[j];
    i += (a <= b);
    j += (b <= a);
    ++union_size;
  }
  union_size += (n - i) + (other.size_ - j);
  if (union_size > kReplicasMax) {
    return ResourceExhaustedError(
        "merged version vector would name more than kReplicasMax replicas");
  }
  // Merge backwards in place: the write position never overtakes the unread part of *this.
  size_t w = union_size;
  i = n;
  j = other.size_;
  while (j > 0) {
    --w;
    if (i > 0 && replicas_[i - 1] > other.replicas_[j - 1]) {
      replicas_[w] = replicas_[i - 1];
      counters_[w] = counters_[i - 1];
      --i;
    } else if (i > 0 && replicas_[i - 1] == other.replicas_[j - 1]) {
      replicas_[w] = replicas_[i - 1];
      counters_[w] = std::max(counters_[i - 1], other.counters_[j - 1]);
      --i;
      --j;
    } else {
      replicas_[w] = other.replicas_[j - 1];
      counters_[w] = other.counters_[j - 1];
      --j;
    }
  }
  FL_ASSERT(w == i);  // the rest of *this is already in place
  size_ = static_cast<uint32_t>(union_size);
  return Status::Ok();
}

Causality VersionVector::Compare(const VersionVector& other) const {
  bool less = false;
  bool greater = false;
  const uint32_t n = size_;
  if (n == other.size_ &&
      std::memcmp(replicas_.data(), other.replicas_.data(), n * sizeof(ReplicaId)) == 0) {
    // Same replica set (the steady state): branch-free pointwise comparison.
    for (uint32_t i = 0; i < n; ++i) {
      less |= counters_[i] < other.counters_[i];
      greater |= counters_[i] > other.counters_[i];
    }
  } else {
    // A replica present on one side only has counter >= 1 there and 0 on the other.
    size_t i = 0;
    size_t j = 0;
    while (i < n && j < other.size_) {
      if (replicas_[i] == other.replicas_[j]) {
        less |= counters_[i] < other.counters_[j];
        greater |= counters_[i] > other.counters_[j];
        ++i;
        ++j;
      } else if (replicas_[i] < other.replicas_[j]) {
        greater = true;
        ++i;
      } else {
        less = true;
        ++j;
      }
    }
    greater |= i < n;
    less |= j < other.size_;
  }
  if (less) return greater ? Causality::kConcurrent : Causality::kBefore;
  return greater ? Causality::kAfter : Causality::kEqual;
}

std::string VersionVector::ToString() const {
  std::string out = "{";
  for (size_t i = 0; i < size_; ++i) {
    if (i > 0) out += ',';
    out += std::to_string(replicas_[i]) + ":" + std::to_string(counters_[i]);
  }
  return out + "}";
}

bool operator==(const VersionVector& a, const VersionVector& b) {
  if (a.size_ != b.size_) return false;
  for (size_t i = 0; i < a.size_; ++i) {
    if (a.replicas_[i] != b.replicas_[i] || a.counters_[i] != b.counters_[i]) return false;
  }
  return true;
}

// ---- DvvRegister ----

Status DvvOptions::Validate() const {
  FL_CHECK_OPTION(siblings_max > 0, "siblings_max must be > 0");
  FL_CHECK_OPTION(value_bytes_max > 0, "value_bytes_max must be > 0");
  return Status::Ok();
}

Result<DvvRegister> DvvRegister::Create(DvvOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  DvvRegister reg;
  reg.options_ = options;
  return reg;
}

DvvRead DvvRegister::Read() const {
  DvvRead read;
  read.values.reserve(siblings_.size());
  for (const DvvSibling& s : siblings_) read.values.push_back(s.value);
  read.context = context_;
  return read;
}

Result<Dot> DvvRegister::Put(ReplicaId replica, const VersionVector& context, std::string value) {
  if (value.size() > options_.value_bytes_max) {
    return InvalidArgumentError("value longer than value_bytes_max");
  }
  // The new write's history is everything the register or the writer knew, plus the write itself.
  VersionVector next = context_;
  FL_RETURN_IF_ERROR(next.Merge(context));
  const uint64_t counter = next.Get(replica) + 1;
  if (counter > VersionVector::kCounterMax) return OutOfRangeError("dot counter above kCounterMax");
  FL_RETURN_IF_ERROR(next.Raise(replica, counter));
  const Dot dot{replica, counter};

  size_t survivors = 0;
  for (const DvvSibling& s : siblings_) survivors += context.Covers(s.dot) ? 0 : 1;
  if (survivors + 1 > options_.siblings_max) {
    return ResourceExhaustedError("put would exceed siblings_max; resolve the siblings first");
  }
  // Commit: nothing below fails.
  std::erase_if(siblings_, [&context](const DvvSibling& s) { return context.Covers(s.dot); });
  FL_ASSERT(siblings_.size() == survivors);
  // The new dot is above every sibling of its replica, so it goes before the next replica's.
  auto pos = std::find_if(siblings_.begin(), siblings_.end(),
                          [replica](const DvvSibling& s) { return s.dot.replica > replica; });
  FL_ASSERT(pos == siblings_.begin() || std::prev(pos)->dot < dot);
  siblings_.insert(pos, DvvSibling{dot, std::move(value)});
  context_ = next;
  FL_ASSERT(context_.Covers(dot));
  return dot;
}

Status DvvRegister::Merge(const DvvRegister& other) {
  if (&other == this) return Status::Ok();
  VersionVector next = context_;
  FL_RETURN_IF_ERROR(next.Merge(other.context_));

  // Walk both dot-sorted lists. A sibling held by one side survives when both hold it or the
  // other side never saw it; a sibling the other side saw but no longer holds was superseded there.
  enum class Take : uint8_t { kMine, kTheirs, kBoth };
  auto classify = [](const DvvSibling* a, const DvvSibling* b) {
    if (b == nullptr || (a != nullptr && a->dot < b->dot)) return Take::kMine;
    if (a == nullptr || b->dot < a->dot) return Take::kTheirs;
    return Take::kBoth;
  };
  auto walk = [&](auto&& emit) {
    size_t i = 0;
    size_t j = 0;
    while (i < siblings_.size() || j < other.siblings_.size()) {
      const DvvSibling* a = i < siblings_.size() ? &siblings_[i] : nullptr;
      const DvvSibling* b = j < other.siblings_.size() ? &other.siblings_[j] : nullptr;
      switch (classify(a, b)) {
        case Take::kMine:
          if (!other.context_.Covers(a->dot)) emit(*a);
          ++i;
          break;
        case Take::kTheirs:
          if (!context_.Covers(b->dot)) emit(*b);
          ++j;
          break;
        case Take::kBoth:
          // One dot names one write; differing values mean corrupt input. Pick deterministically
          // so that merge order still cannot change the result.
          emit(a->value <= b->value ? *a : *b);
          ++i;
          ++j;
          break;
      }
    }
  };
  size_t count = 0;
  walk([&count](const DvvSibling&) { ++count; });
  if (count > options_.siblings_max) {
    return ResourceExhaustedError("merge would exceed siblings_max");
  }
  std::vector<DvvSibling> merged;
  merged.reserve(count);
  walk([&merged](const DvvSibling& s) { merged.push_back(s); });
  FL_ASSERT(merged.size() == count);
  siblings_ = std::move(merged);
  context_ = next;
  return Status::Ok();
}

// ---- Codec ----

namespace {

void EncodeVvBody(const VersionVector& vv, ByteWriter& w) {
  w.Varint(vv.size());
  for (size_t i = 0; i < vv.size(); ++i) {
    const Dot e = vv.entry(i);
    w.Varint(e.replica);
    w.Varint(e.counter);
  }
}

Status DecodeDot(ByteReader& r, Dot* dot) {
  uint64_t replica = 0;
  uint64_t counter = 0;
  FL_RETURN_IF_ERROR(r.Varint(&replica));
  FL_RETURN_IF_ERROR(r.Varint(&counter));
  if (replica > UINT32_MAX) return OutOfRangeError("replica id above 2^32-1");
  if (counter > VersionVector::kCounterMax) return OutOfRangeError("counter above kCounterMax");
  if (counter == 0) return DataLossError("zero counter is not canonical");
  *dot = Dot{static_cast<ReplicaId>(replica), counter};
  return Status::Ok();
}

Status DecodeVvBody(ByteReader& r, VersionVector* out) {
  uint64_t n = 0;
  FL_RETURN_IF_ERROR(r.Varint(&n));
  if (n > VersionVector::kReplicasMax) return OutOfRangeError("more than kReplicasMax entries");
  VersionVector vv;
  for (uint64_t k = 0; k < n; ++k) {
    Dot e;
    FL_RETURN_IF_ERROR(DecodeDot(r, &e));
    if (k > 0 && e.replica <= vv.entry(k - 1).replica) {
      return DataLossError("version vector replicas not strictly increasing");
    }
    FL_RETURN_IF_ERROR(vv.Raise(e.replica, e.counter));  // appends: ids are increasing
  }
  FL_ASSERT(vv.size() == n);
  *out = vv;
  return Status::Ok();
}

Status ReadVersion(ByteReader& r, uint8_t expected) {
  uint8_t version = 0;
  FL_RETURN_IF_ERROR(r.U8(&version));
  if (version != expected) return UnimplementedError("unknown codec version");
  return Status::Ok();
}

}  // namespace

void EncodeVersionVector(const VersionVector& vv, std::vector<uint8_t>* out) {
  ByteWriter w(out);
  w.U8(kVersionVectorCodecVersion);
  EncodeVvBody(vv, w);
}

Result<VersionVector> DecodeVersionVector(std::span<const uint8_t> in) {
  ByteReader r(in);
  FL_RETURN_IF_ERROR(ReadVersion(r, kVersionVectorCodecVersion));
  VersionVector vv;
  FL_RETURN_IF_ERROR(DecodeVvBody(r, &vv));
  if (!r.empty()) return DataLossError("trailing bytes after version vector");
  return vv;
}

void EncodeDvvRegister(const DvvRegister& reg, std::vector<uint8_t>* out) {
  ByteWriter w(out);
  w.U8(kDvvRegisterCodecVersion);
  EncodeVvBody(reg.context(), w);
  w.Varint(reg.siblings().size());
  for (const DvvSibling& s : reg.siblings()) {
    w.Varint(s.dot.replica);
    w.Varint(s.dot.counter);
    w.Bytes(s.value);
  }
}

Status DecodeDvvRegister(std::span<const uint8_t> in, const DvvOptions& options, DvvRegister* out) {
  FL_ASSERT(out != nullptr);
  FL_RETURN_IF_ERROR(options.Validate());
  ByteReader r(in);
  FL_RETURN_IF_ERROR(ReadVersion(r, kDvvRegisterCodecVersion));
  DvvRegister reg;
  reg.options_ = options;
  FL_RETURN_IF_ERROR(DecodeVvBody(r, &reg.context_));
  uint64_t count = 0;
  FL_RETURN_IF_ERROR(r.Varint(&count));
  if (count > options.siblings_max) return OutOfRangeError("more than siblings_max siblings");
  // Every sibling takes at least 3 bytes: refuse a count the buffer cannot hold before reserving.
  if (count > r.remaining() / 3) return DataLossError("truncated sibling list");
  reg.siblings_.reserve(count);
  for (uint64_t k = 0; k < count; ++k) {
    DvvSibling s;
    FL_RETURN_IF_ERROR(DecodeDot(r, &s.dot));
    FL_RETURN_IF_ERROR(r.Bytes(&s.value, options.value_bytes_max));
    if (k > 0 && !(reg.siblings_.back().dot < s.dot)) {
      return DataLossError("sibling dots not strictly increasing");
    }
    if (!reg.context_.Covers(s.dot)) return DataLossError("sibling dot outside the causal context");
    reg.siblings_.push_back(std::move(s));
  }
  if (!r.empty()) return DataLossError("trailing bytes after register");
  *out = std::move(reg);
  return Status::Ok();
}

}  // namespace faultline
