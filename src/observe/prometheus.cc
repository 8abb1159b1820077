#include "faultline/observe/prometheus.h"

#include <array>
#include <bit>
#include <climits>
#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include "faultline/core/assert.h"

namespace faultline::observe {
namespace {

constexpr uint32_t kShared = PrometheusObserver::kThreadShards;  // the shared (atomic-add) cell
constexpr int64_t kUnset = std::numeric_limits<int64_t>::min();  // a gauge never set

static_assert(PrometheusObserver::kThreadShards <= 32);

// Bit i set: thread shard i is free. A thread takes the lowest free shard on its first event and
// gives it back when it exits (the release/acquire pair hands the cells' contents to the next
// owner, which keeps adding to them).
std::atomic<uint32_t> free_shards{(PrometheusObserver::kThreadShards == 32)
                                      ? UINT32_MAX
                                      : (uint32_t{1} << PrometheusObserver::kThreadShards) - 1};

constexpr uint32_t kUnassigned = UINT32_MAX;

// This thread's shard, read on every event: a plain initial-exec TLS load (faultline's modules
// are static libraries linked into the program, so the variable sits in the static TLS block).
__attribute__((tls_model("initial-exec"))) thread_local uint32_t this_thread_shard = kUnassigned;

struct ShardLease {
  uint32_t index = kShared;
  ShardLease() {
    uint32_t free = free_shards.load(std::memory_order_acquire);
    while (free != 0) {
      const uint32_t i = static_cast<uint32_t>(std::countr_zero(free));
      if (free_shards.compare_exchange_weak(free, free & ~(uint32_t{1} << i),
                                            std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
        index = i;
        return;
      }
    }
  }
  ~ShardLease() {
    // Events emitted later in this thread's exit (other thread_local destructors) go to the
    // shared cell: the shard may belong to another thread by then.
    this_thread_shard = kShared;
    if (index != kShared) free_shards.fetch_or(uint32_t{1} << index, std::memory_order_release);
  }
  ShardLease(const ShardLease&) = delete;
  ShardLease& operator=(const ShardLease&) = delete;
};

[[gnu::noinline]] uint32_t AssignShard() {
  thread_local ShardLease lease;
  this_thread_shard = lease.index;
  return lease.index;
}

inline uint32_t ThisThreadShard() {
  const uint32_t s = this_thread_shard;
  if (s != kUnassigned) [[likely]] return s;
  return AssignShard();
}

bool IsGauge(Cell c) { return DescribeCell(c).type == MetricType::kGauge; }

}  // namespace

// ---- InstanceMetrics ----------------------------------------------------------------------------

class PrometheusObserver::InstanceMetrics final : public Observer {
 public:
  explicit InstanceMetrics(std::string_view name) : name_(name.empty() ? "default" : name) {
    for (uint32_t c = 0; c < kCellCount; ++c) {
      if (IsGauge(static_cast<Cell>(c))) {
        shards_[kShared].cells[c].store(kUnset, std::memory_order_relaxed);
      }
    }
  }

  void OnEvent(const Event& e) noexcept override {
    const uint32_t shard = ThisThreadShard();
    ApplyEvent(
        e,
        [this, shard](Cell c, int64_t delta) {
          std::atomic<int64_t>& cell = shards_[shard].cells[c];
          if (shard != kShared) {
            // This thread alone writes this cell: no read-modify-write needed.
            cell.store(cell.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
          } else {
            cell.fetch_add(delta, std::memory_order_relaxed);
          }
        },
        [this](Cell c, int64_t value) {
          shards_[kShared].cells[c].store(value, std::memory_order_relaxed);
        });
  }

  // Counters summed over the shards; gauges as set (kUnset if never).
  std::array<int64_t, kCellCount> Snapshot() const {
    std::array<int64_t, kCellCount> v{};
    for (uint32_t c = 0; c < kCellCount; ++c) {
      if (IsGauge(static_cast<Cell>(c))) {
        v[c] = shards_[kShared].cells[c].load(std::memory_order_relaxed);
        continue;
      }
      int64_t sum = 0;
      for (const Shard& s : shards_) sum += s.cells[c].load(std::memory_order_relaxed);
      v[c] = sum;
    }
    v[kCallDurationCount] = 0;
    for (size_t i = 0; i <= kCallDurationBucketsNs.size(); ++i) {
      v[kCallDurationCount] += v[kCallDurationBucketFirst + i];
    }
    return v;
  }

  const std::string& name() const { return name_; }

 private:
  struct alignas(64) Shard {
    std::array<std::atomic<int64_t>, kCellCount> cells{};
  };
  const std::string name_;
  std::array<Shard, PrometheusObserver::kThreadShards + 1> shards_;
};

// ---- Collector ----------------------------------------------------------------------------------

class PrometheusObserver::Collector final : public prometheus::Collectable {
 public:
  explicit Collector(const PrometheusObserver* owner) : owner_(owner) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (owner_ == nullptr) return {};
    return owner_->Families();
  }
  void Detach() {
    std::lock_guard<std::mutex> lock(mu_);
    owner_ = nullptr;
  }

 private:
  mutable std::mutex mu_;
  const PrometheusObserver* owner_;
};

// ---- PrometheusObserver -------------------------------------------------------------------------

Status PrometheusOptions::Validate() const {
  if (instances_max < 1 || instances_max > 4096) {
    return InvalidArgumentError("instances_max must be in [1, 4096]");
  }
  return Status::Ok();
}

Result<std::unique_ptr<PrometheusObserver>> PrometheusObserver::Create(PrometheusOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<PrometheusObserver>(new PrometheusObserver(options));
}

PrometheusObserver::PrometheusObserver(PrometheusOptions options)
    : options_(options),
      instances_(new std::atomic<InstanceMetrics*>[options.instances_max]),
      other_(std::make_unique<InstanceMetrics>("_other")),
      collector_(std::make_shared<Collector>(this)) {
  for (uint32_t i = 0; i < options_.instances_max; ++i) instances_[i].store(nullptr);
}

PrometheusObserver::~PrometheusObserver() {
  exposer_.reset();  // stop serving before the cells go
  collector_->Detach();
  const uint32_t n = count_.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < n; ++i) delete instances_[i].load(std::memory_order_relaxed);
}

PrometheusObserver::InstanceMetrics* PrometheusObserver::Find(std::string_view name) const {
  if (name.empty()) name = "default";
  const uint32_t n = count_.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < n; ++i) {
    InstanceMetrics* m = instances_[i].load(std::memory_order_relaxed);
    if (m->name() == name) return m;
  }
  return nullptr;
}

PrometheusObserver::InstanceMetrics* PrometheusObserver::FindOrAdd(std::string_view name) {
  if (InstanceMetrics* m = Find(name)) [[likely]] return m;
  std::lock_guard<std::mutex> lock(mu_);
  if (InstanceMetrics* m = Find(name)) return m;
  const uint32_t n = count_.load(std::memory_order_relaxed);
  if (n >= options_.instances_max) return other_.get();
  try {
    instances_[n].store(new InstanceMetrics(name), std::memory_order_relaxed);
  } catch (const std::exception&) {
    return other_.get();  // out of memory: count it somewhere rather than lose it
  }
  count_.store(n + 1, std::memory_order_release);
  return instances_[n].load(std::memory_order_relaxed);
}

void PrometheusObserver::OnEvent(const Event& event) noexcept {
  FindOrAdd(event.source)->OnEvent(event);
}

Observer* PrometheusObserver::Instance(std::string_view name) { return FindOrAdd(name); }

Status PrometheusObserver::Serve(std::string_view address) {
  std::lock_guard<std::mutex> lock(mu_);
  if (exposer_ != nullptr) return FailedPreconditionError("already serving /metrics");
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(std::string(address), 1);
  } catch (const std::exception& e) {
    return UnavailableError("cannot serve /metrics on " + std::string(address) + ": " + e.what());
  }
  exposer_->RegisterCollectable(collector_);
  return Status::Ok();
}

int PrometheusObserver::port() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (exposer_ == nullptr) return 0;
  const std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

std::shared_ptr<prometheus::Collectable> PrometheusObserver::collectable() const {
  return collector_;
}

int64_t PrometheusObserver::Value(std::string_view instance, Cell cell) const {
  FL_ASSERT(cell < kCellCount);
  const InstanceMetrics* m = instance == "_other" ? other_.get() : Find(instance);
  if (m == nullptr) return 0;
  const int64_t v = m->Snapshot()[cell];
  return v == kUnset ? 0 : v;
}

std::string PrometheusObserver::Render() const {
  const std::vector<prometheus::MetricFamily> families = Families();
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

namespace {

prometheus::MetricType ToPrometheus(MetricType t) {
  switch (t) {
    case MetricType::kCounter: return prometheus::MetricType::Counter;
    case MetricType::kGauge: return prometheus::MetricType::Gauge;
    case MetricType::kHistogram: return prometheus::MetricType::Histogram;
  }
  return prometheus::MetricType::Untyped;
}

// The families in the order of their first cell; empty families are dropped by the caller.
class FamilyBuilder {
 public:
  prometheus::MetricFamily& For(const CellInfo& info) {
    const auto [it, inserted] = index_.try_emplace(info.metric, families_.size());
    if (inserted) {
      prometheus::MetricFamily f;
      f.name = std::string(info.metric);
      f.help = std::string(info.help);
      f.type = ToPrometheus(info.type);
      families_.push_back(std::move(f));
    }
    return families_[it->second];
  }
  std::vector<prometheus::MetricFamily> Take() {
    std::vector<prometheus::MetricFamily> out;
    for (prometheus::MetricFamily& f : families_) {
      if (!f.metric.empty()) out.push_back(std::move(f));
    }
    return out;
  }

 private:
  std::map<std::string_view, size_t> index_;
  std::vector<prometheus::MetricFamily> families_;
};

void AddInstance(FamilyBuilder& b, const std::string& name,
                 const std::array<int64_t, kCellCount>& v) {
  for (uint32_t c = 0; c < kCallDurationBucketFirst; ++c) {
    const CellInfo& info = DescribeCell(static_cast<Cell>(c));
    prometheus::MetricFamily& family = b.For(info);  // fixes the family order
    if (info.type == MetricType::kGauge ? v[c] == kUnset : v[c] == 0) continue;
    prometheus::ClientMetric m;
    m.label.push_back({"instance_name", name});
    if (!info.label_name.empty()) {
      m.label.push_back({std::string(info.label_name), std::string(info.label_value)});
    }
    const double value = static_cast<double>(v[c]) * info.scale;
    if (info.type == MetricType::kGauge) {
      m.gauge.value = value;
    } else {
      m.counter.value = value;
    }
    family.metric.push_back(std::move(m));
  }
  const CellInfo& hist = DescribeCell(kCallDurationCount);
  prometheus::MetricFamily& family = b.For(hist);
  if (v[kCallDurationCount] == 0) return;
  prometheus::ClientMetric m;
  m.label.push_back({"instance_name", name});
  m.histogram.sample_count = static_cast<uint64_t>(v[kCallDurationCount]);
  m.histogram.sample_sum = static_cast<double>(v[kCallDurationSumNs]) * hist.scale;
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kCallDurationBucketsNs.size(); ++i) {
    cumulative += static_cast<uint64_t>(v[kCallDurationBucketFirst + i]);
    prometheus::ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound = i < kCallDurationBucketsNs.size()
                             ? static_cast<double>(kCallDurationBucketsNs[i]) * hist.scale
                             : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(bucket);
  }
  family.metric.push_back(std::move(m));
}

}  // namespace

std::vector<prometheus::MetricFamily> PrometheusObserver::Families() const {
  FamilyBuilder b;
  const uint32_t n = count_.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < n; ++i) {
    const InstanceMetrics* m = instances_[i].load(std::memory_order_relaxed);
    AddInstance(b, m->name(), m->Snapshot());
  }
  AddInstance(b, other_->name(), other_->Snapshot());
  return b.Take();
}

}  // namespace faultline::observe
