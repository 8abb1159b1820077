// File: faultline/observe/prometheus.h
//
// PrometheusObserver: an Observer that turns the primitives' events into Prometheus metrics
// (the series of observe/metrics.h, each with the label instance_name) and serves them over
// HTTP on /metrics (prometheus-cpp's pull Exposer, on the address you give it).
//
//   auto metrics = faultline::observe::PrometheusObserver::Create().value();
//   breaker->observe().Attach(metrics.get(), "payments");   // binds to instance "payments"
//   pipeline.observe().Attach(metrics.get(), "payments");
//   FL_RETURN_IF_ERROR(metrics->Serve("127.0.0.1:0"));   // port 0: any free port; see port()
//
// Cardinality: instance_name is the name given to ObserverSlot::Attach (or Instance()); the
// exporter tracks at most options.instances_max distinct names, and events from further names
// are counted under instance_name="_other". Events never add labels from request data: the only
// other labels are the fixed ones of observe/metrics.h (to, code, reason, result).
//
// Cost: OnEvent adds to per-thread cells (one plain load and store per counter, no atomic
// read-modify-write, on a cache line no other thread writes) for up to kThreadShards threads at
// once; a thread beyond those uses a shared cell with an atomic add. Collection (a scrape) sums
// the cells. Attaching binds the slot to the instance's own observer once (Observer::Bind), so no
// event looks its name up; OnEvent called directly (not through a slot) scans the known names.
// A series appears from its first event (a counter at zero is not published; a gauge only once
// set).
//
// Thread safety: every member is thread-safe. The observer must outlive the primitives attached
// to it, and the Exposer (Serve) stops in the destructor.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/observe/metrics.h"

namespace prometheus {
class Collectable;
class Exposer;
struct MetricFamily;
}  // namespace prometheus

namespace faultline::observe {

struct PrometheusOptions {
  // Distinct instance_name values tracked, in [1, 4096]; later names count as "_other".
  uint32_t instances_max = 64;
  Status Validate() const;
};

class PrometheusObserver final : public Observer {
 public:
  // Threads that get cells of their own at once (the rest share an atomic cell).
  static constexpr uint32_t kThreadShards = 16;

  static Result<std::unique_ptr<PrometheusObserver>> Create(PrometheusOptions options = {});
  PrometheusObserver(const PrometheusObserver&) = delete;
  PrometheusObserver& operator=(const PrometheusObserver&) = delete;
  ~PrometheusObserver() override;

  // Counts `event` under instance_name = event.source ("" is published as "default").
  void OnEvent(const Event& event) noexcept override;

  // The observer of one instance: no name lookup per event. Stable for the lifetime of this
  // object. Past instances_max, the "_other" instance. ObserverSlot::Attach(this, name) binds
  // to it (Bind), so attaching the PrometheusObserver itself is as fast.
  Observer* Instance(std::string_view name);
  Observer* Bind(std::string_view name) override { return Instance(name); }

  // Starts serving GET /metrics on `address` ("127.0.0.1:0": a free loopback port). Once only:
  // kFailedPrecondition if already serving; kUnavailable when the address cannot be bound.
  Status Serve(std::string_view address);
  // The bound port while serving, else 0.
  int port() const;
  // The text exposition (what /metrics returns).
  std::string Render() const;
  // For a prometheus::Registry-based program: register this with your own Exposer.
  std::shared_ptr<prometheus::Collectable> collectable() const;

  // The current value of one series, unscaled (sum over threads; a gauge's last value, or 0).
  // For tests and for a process's own tally.
  int64_t Value(std::string_view instance, Cell cell) const;

 private:
  class InstanceMetrics;
  class Collector;
  explicit PrometheusObserver(PrometheusOptions options);
  InstanceMetrics* Find(std::string_view name) const;
  InstanceMetrics* FindOrAdd(std::string_view name);
  std::vector<prometheus::MetricFamily> Families() const;

  const PrometheusOptions options_;
  // Append-only table: count_ published with release after the slot is filled.
  std::unique_ptr<std::atomic<InstanceMetrics*>[]> instances_;
  std::atomic<uint32_t> count_{0};
  std::unique_ptr<InstanceMetrics> other_;
  mutable std::mutex mu_;  // guards additions and serving
  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace faultline::observe
