// The `retry-amplification` scenario's nodes (retry_amplification_nodes.h).
#include "src/lab/retry_amplification_nodes.h"

#include <memory>
#include <string>
#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/resilience/retry.h"
#include "faultline/resilience/retry_after.h"
#include "faultline/resilience/retry_budget.h"

namespace faultline::lab::retry_amp {
namespace {

Bytes RequestBytes(uint64_t id) {
  Bytes b;
  ByteWriter(&b).U64(id);
  return b;
}

// Gateway and service: forward to the next hop.
class Layer final : public Node {
 public:
  Layer(Env& env, NodeId next, bool naive) : env_(env), rpc_(env), next_(next), naive_(naive) {}
  void Start() override {
    rpc_.HandleAsync(kMethodCall, [this](NodeId, Bytes req, MonoTime deadline) {
      return Forward(std::move(req), deadline);
    });
  }

 private:
  Task<Result<Bytes>> Forward(Bytes req, MonoTime deadline) {
    if (naive_) {
      // Three attempts, at once, whatever the error.
      Result<Bytes> r = UnavailableError("no attempt");
      for (int attempt = 0; attempt < 3; ++attempt) {
        r = co_await rpc_.Call(next_, kMethodCall, req, kNaiveTimeout);
        if (r.ok()) break;
      }
      co_return r;
    }
    // Fail fast: one attempt, within what is left of the caller's deadline.
    const Duration remaining = deadline - env_.clock().Now();
    if (remaining <= Duration::Zero()) co_return DeadlineExceededError("deadline passed");
    co_return co_await rpc_.Call(next_, kMethodCall, req, remaining);
  }

  Env& env_;
  Rpc rpc_;
  NodeId next_;
  bool naive_;
};

class Database final : public Node {
 public:
  Database(Env& env, const TrueTime* true_time, const Conditions* conditions, RetryObservations* obs)
      : env_(env), rpc_(env), true_time_(true_time), conditions_(conditions), obs_(obs) {}
  void Start() override {
    rpc_.HandleAsync(kMethodCall, [this](NodeId, Bytes req, MonoTime) { return Serve(std::move(req)); });
  }

 private:
  Task<Result<Bytes>> Serve(Bytes req) {
    uint64_t id = 0;
    if (!ByteReader(req).U64(&id).ok()) co_return InvalidArgumentError("bad request");
    obs_->db_attempts.push_back(DbAttempt{id, true_time_->NowNs()});
    if (inflight_ >= kDbConcurrencyMax) co_return ResourceExhaustedError("overloaded");
    ++inflight_;
    const bool failing = conditions_->blip;
    co_await Sleep(env_.executor(), failing ? kDbFailTime : kDbServiceTime);
    --inflight_;
    if (failing) co_return UnavailableError("Retry-After: 1");
    co_return Bytes{1};
  }

  Env& env_;
  Rpc rpc_;
  const TrueTime* true_time_;
  const Conditions* conditions_;
  RetryObservations* obs_;
  uint32_t inflight_ = 0;
};

class Client final : public Node {
 public:
  Client(Env& env, const TrueTime* true_time, bool naive, RetryObservations* obs, Observer* metrics)
      : env_(env), rpc_(env), true_time_(true_time), naive_(naive), obs_(obs) {
    metrics_.Attach(metrics, "client");
    RetryOptions retry;
    retry.attempts_max = 3;
    retry.backoff.delay_initial = Duration::Millis(50);
    retry.backoff.delay_max = Duration::Seconds(1);
    policy_ = std::make_unique<RetryPolicy>(std::move(RetryPolicy::Create(retry)).value());
    budget_ = std::move(TokenRetryBudget::Create(TokenRetryBudgetOptions())).value();
    parser_ = std::make_unique<RetryAfterParser>(
        std::move(RetryAfterParser::Create(RetryAfterOptions())).value());
  }
  void Start() override { env_.Spawn(Arrivals()); }

 private:
  Task<void> Arrivals() {
    uint64_t next_id = 1;
    while (Duration::Nanos(true_time_->NowNs()) < kArrivalsEnd) {
      const Status slept = co_await Sleep(env_.executor(), env_.random().Exponential(kArrivalMean));
      if (!slept.ok()) {
        co_return;
      }
      env_.Spawn(Request(next_id++));
    }
  }

  Task<void> Request(uint64_t id) {
    const size_t entry = obs_->requests.size();
    obs_->requests.push_back(UserRequest{id, true_time_->NowNs()});
    const Bytes req = RequestBytes(id);
    // (Not a conditional expression: GCC 12 miscompiles co_await inside ?:.)
    Status outcome;
    if (naive_) {
      outcome = co_await Naive(req);
    } else {
      outcome = co_await Hardened(req);
    }
    UserRequest& r = obs_->requests[entry];
    FL_ASSERT(r.id == id && r.outcome == Outcome::kPending);
    r.outcome = outcome.ok() ? Outcome::kOk : Outcome::kFail;
    r.end_ns = true_time_->NowNs();
  }

  Task<Status> Naive(const Bytes& req) {
    Status last;
    for (int attempt = 0; attempt < 3; ++attempt) {
      Result<Bytes> r = co_await rpc_.Call(NodeId(kGateway), kMethodCall, req, kNaiveTimeout);
      if (r.ok()) co_return Status::Ok();
      last = r.status();
    }
    co_return last;
  }

  Task<Status> Hardened(const Bytes& req) {
    const Deadline deadline = Deadline::FromRemaining(env_.clock().Now(), kDeadline);
    RetryState state(*policy_, budget_.get(), deadline, env_.random().Next());
    state.Observe(&metrics_);
    Status last = DeadlineExceededError("no attempt fit in the deadline");
    while (true) {
      const RetryState::Attempt a = state.StartAttempt(env_.clock().Now());
      if (!a.start) co_return last;
      Result<Bytes> r = co_await rpc_.Call(NodeId(kGateway), kMethodCall, req, a.timeout);
      if (r.ok()) {
        state.Decide(Status::Ok(), env_.clock().Now());
        co_return Status::Ok();
      }
      last = r.status();
      // The server's Retry-After travels in the error message through every layer.
      Pushback pushback = Pushback::None();
      const std::string_view message = last.message();
      if (const size_t at = message.find("Retry-After: "); at != std::string_view::npos) {
        pushback = parser_->Parse(message.substr(at + 13), env_.clock().WallNow());
      }
      const RetryState::Decision d = state.Decide(last, env_.clock().Now(), pushback);
      if (!d.retry()) co_return last;
      const Status slept = co_await Sleep(env_.executor(), d.delay);
      if (!slept.ok()) co_return CancelledError("shutdown");
    }
  }

  Env& env_;
  Rpc rpc_;
  const TrueTime* true_time_;
  bool naive_;
  RetryObservations* obs_;
  std::unique_ptr<RetryPolicy> policy_;
  std::unique_ptr<TokenRetryBudget> budget_;
  std::unique_ptr<RetryAfterParser> parser_;
  ObserverSlot metrics_;
};

}  // namespace

std::unique_ptr<Node> MakeDatabase(Env& env, const TrueTime* true_time, const Conditions* conditions,
                                   RetryObservations* obs) {
  return std::make_unique<Database>(env, true_time, conditions, obs);
}
std::unique_ptr<Node> MakeLayer(Env& env, NodeId next, bool naive) {
  return std::make_unique<Layer>(env, next, naive);
}
std::unique_ptr<Node> MakeClient(Env& env, const TrueTime* true_time, bool naive, RetryObservations* obs,
                                 Observer* metrics) {
  return std::make_unique<Client>(env, true_time, naive, obs, metrics);
}

}  // namespace faultline::lab::retry_amp
