// The `backpressure` scenario's nodes (backpressure_nodes.h).
#include "src/lab/backpressure_nodes.h"

#include <algorithm>
#include <coroutine>
#include <deque>
#include <memory>
#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/resilience/bulkhead.h"
#include "faultline/resilience/circuit_breaker.h"

namespace faultline::lab::backpressure {
namespace {

// A FIFO of coroutines waiting for one of `kWorkers` slots.
class WorkerPool {
 public:
  explicit WorkerPool(Executor& executor) : executor_(executor) {}
  struct Awaiter {
    WorkerPool& pool;
    bool await_ready() {
      if (pool.busy_ < kWorkers) {
        ++pool.busy_;
        return true;
      }
      return false;
    }
    void await_suspend(std::coroutine_handle<> h) { pool.waiting_.push_back(h); }
    void await_resume() {}
  };
  Awaiter Acquire() { return Awaiter{*this}; }
  // Hands the slot to the oldest waiter (resumed on a later turn), or frees it.
  void Release() {
    if (waiting_.empty()) {
      --busy_;
      return;
    }
    std::coroutine_handle<> next = waiting_.front();
    waiting_.pop_front();
    executor_.Post([next] { next.resume(); });
  }
  size_t queued() const { return waiting_.size(); }

 private:
  Executor& executor_;
  uint32_t busy_ = 0;
  std::deque<std::coroutine_handle<>> waiting_;
};

class Dependency final : public Node {
 public:
  Dependency(Env& env, const TrueTime* true_time, const Conditions* conditions, bool hardened,
             BackpressureObservations* obs)
      : env_(env),
        rpc_(env),
        true_time_(true_time),
        conditions_(conditions),
        hardened_(hardened),
        obs_(obs),
        pool_(env.executor()) {}
  void Start() override {
    rpc_.HandleAsync(kMethodCall, [this](NodeId, Bytes, MonoTime deadline) { return Serve(deadline); });
    env_.Spawn(Sampler());
  }

 private:
  Task<Result<Bytes>> Serve(MonoTime deadline) {
    if (hardened_ && pool_.queued() >= kQueueBound) co_return ResourceExhaustedError("queue full");
    co_await pool_.Acquire();
    if (pool_.queued() > depth_max_) depth_max_ = pool_.queued();
    if (hardened_ && env_.clock().Now() >= deadline) {
      pool_.Release();  // nobody is waiting for this answer any more: do not do the work
      co_return DeadlineExceededError("expired in queue");
    }
    co_await Sleep(env_.executor(), kServiceTime * conditions_->slowdown);
    pool_.Release();
    co_return Bytes(1, 1);
  }

  Task<void> Sampler() {
    while ((co_await Sleep(env_.executor(), kSampleInterval)).ok()) {
      const size_t depth = std::max(depth_max_, pool_.queued());
      obs_->queue_samples.push_back(QueueSample{true_time_->NowNs(), static_cast<int64_t>(depth),
                                                static_cast<int64_t>(kQueueBound)});
      depth_max_ = 0;
    }
  }

  Env& env_;
  Rpc rpc_;
  const TrueTime* true_time_;
  const Conditions* conditions_;
  bool hardened_;
  BackpressureObservations* obs_;
  WorkerPool pool_;
  size_t depth_max_ = 0;
};

class Frontend final : public Node {
 public:
  Frontend(Env& env, bool hardened, Observer* metrics)
      : env_(env), rpc_(env), hardened_(hardened) {
    BulkheadOptions b;
    b.concurrency_max = kWorkers + 5;
    bulkhead_ = std::move(Bulkhead::Create(b)).value();
    CircuitBreakerOptions cb;
    cb.window_calls = 100;
    cb.min_calls = 50;
    cb.failure_rate_threshold = Ratio::Percent(50);
    cb.slow_call_threshold = Duration::Seconds(5);
    cb.open_duration_min = Duration::Millis(500);
    cb.open_duration_max = Duration::Seconds(5);
    breaker_ = std::move(CircuitBreaker::Create(env_.clock(), cb)).value();
    bulkhead_->observe().Attach(metrics, "frontend");
    breaker_->observe().Attach(metrics, "frontend");
  }
  void Start() override {
    rpc_.HandleAsync(kMethodCall, [this](NodeId, Bytes req, MonoTime deadline) {
      return Forward(std::move(req), deadline);
    });
  }

 private:
  Task<Result<Bytes>> Forward(Bytes req, MonoTime deadline) {
    if (!hardened_) co_return co_await rpc_.Call(NodeId(kDependency), kMethodCall, req, Duration::Seconds(60));
    BulkheadPermit slot = bulkhead_->TryAcquire();
    if (!slot) co_return ResourceExhaustedError("bulkhead full");
    const MonoTime start = env_.clock().Now();
    const BreakerPermit permit = breaker_->TryAcquire(start);
    if (!permit.admitted()) co_return UnavailableError("circuit open");
    const Duration remaining = deadline - start;
    Result<Bytes> r = co_await rpc_.Call(NodeId(kDependency), kMethodCall, req, remaining);
    // Shedding and deadline expiry are the dependency protecting itself, not a fault of it.
    const StatusCode code = r.status().code();
    const CallOutcome outcome = r.ok() ? CallOutcome::kSuccess
                                : (code == StatusCode::kResourceExhausted ||
                                   code == StatusCode::kDeadlineExceeded)
                                    ? CallOutcome::kIgnored
                                    : CallOutcome::kFailure;
    breaker_->Record(permit, outcome, env_.clock().Now() - start);
    co_return r;
  }

  Env& env_;
  Rpc rpc_;
  bool hardened_;
  std::unique_ptr<Bulkhead> bulkhead_;
  std::unique_ptr<CircuitBreaker> breaker_;
};

class Client final : public Node {
 public:
  Client(Env& env, const TrueTime* true_time, bool hardened, BackpressureObservations* obs)
      : env_(env), rpc_(env), true_time_(true_time), hardened_(hardened), obs_(obs) {}
  void Start() override { env_.Spawn(Arrivals()); }

 private:
  Task<void> Arrivals() {
    uint64_t id = 1;
    while (Duration::Nanos(true_time_->NowNs()) < kArrivalsEnd) {
      const Status slept = co_await Sleep(env_.executor(), env_.random().Exponential(kArrivalMean));
      if (!slept.ok()) co_return;
      env_.Spawn(Request(id++));
    }
  }

  Task<void> Request(uint64_t id) {
    const size_t entry = obs_->requests.size();
    obs_->requests.push_back(UserRequest{id, true_time_->NowNs()});
    // Naive: give up after 1 s and try again, up to 3 times. Hardened: one call whose 1 s
    // deadline travels with it.
    const int attempts = hardened_ ? 1 : 3;
    const Bytes req(1, 1);
    bool ok = false;
    for (int a = 0; a < attempts && !ok; ++a) {
      Result<Bytes> r = co_await rpc_.Call(NodeId(kFrontend), kMethodCall, req, kClientTimeout);
      ok = r.ok();
    }
    UserRequest& r = obs_->requests[entry];
    FL_ASSERT(r.id == id && r.outcome == Outcome::kPending);
    r.outcome = ok ? Outcome::kOk : Outcome::kFail;
    r.end_ns = true_time_->NowNs();
  }

  Env& env_;
  Rpc rpc_;
  const TrueTime* true_time_;
  bool hardened_;
  BackpressureObservations* obs_;
};

}  // namespace

std::unique_ptr<Node> MakeDependency(Env& env, const TrueTime* true_time, const Conditions* conditions,
                                     bool hardened, BackpressureObservations* obs) {
  return std::make_unique<Dependency>(env, true_time, conditions, hardened, obs);
}
std::unique_ptr<Node> MakeFrontend(Env& env, bool hardened, Observer* metrics) {
  return std::make_unique<Frontend>(env, hardened, metrics);
}
std::unique_ptr<Node> MakeClient(Env& env, const TrueTime* true_time, bool hardened,
                                 BackpressureObservations* obs) {
  return std::make_unique<Client>(env, true_time, hardened, obs);
}

}  // namespace faultline::lab::backpressure
