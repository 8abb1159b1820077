// Bulkhead: construction, the wait queue and the async acquire. TryAcquire and the uncontended
// release are inline in the header.
#include "faultline/resilience/bulkhead.h"

#include "faultline/core/options.h"

namespace faultline {

Status BulkheadOptions::Validate() const {
  FL_CHECK_OPTION(concurrency_max >= 1 && concurrency_max <= (1u << 30),
                  "concurrency_max must be in [1, 2^30]");
  FL_CHECK_OPTION(queue_depth_max <= (1u << 20), "queue_depth_max must be <= 2^20");
  FL_CHECK_OPTION(queue_wait_max >= Duration::Zero() && !queue_wait_max.is_infinite(),
                  "queue_wait_max must be >= 0 and finite");
  return Status::Ok();
}

Result<std::unique_ptr<Bulkhead>> Bulkhead::Create(const BulkheadOptions& options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<Bulkhead>(new Bulkhead(options));
}

Bulkhead::Bulkhead(const BulkheadOptions& options)
    : options_(options), concurrency_max_(options.concurrency_max) {}

Bulkhead::~Bulkhead() {
  FL_ASSERT_MSG(head_ == nullptr, "Bulkhead destroyed with coroutines waiting in its queue");
  FL_ASSERT_MSG(in_use_.load(std::memory_order_relaxed) == 0,
                "Bulkhead destroyed with permits outstanding");
}

BulkheadCounters Bulkhead::counters() const {
  BulkheadCounters c;
  c.acquired = stripes_.Sum(kAcquiredCounter);
  c.rejected = stripes_.Sum(kRejectedCounter);
  c.queued = queued_.load(std::memory_order_relaxed);
  c.handed_off = handed_off_.load(std::memory_order_relaxed);
  c.queue_full = queue_full_.load(std::memory_order_relaxed);
  c.timed_out = timed_out_.load(std::memory_order_relaxed);
  c.cancelled = cancelled_.load(std::memory_order_relaxed);
  return c;
}

void Bulkhead::Enqueue(AcquireAwaiter* waiter) {
  waiter->prev_ = tail_;
  waiter->next_ = nullptr;
  if (tail_ != nullptr) {
    tail_->next_ = waiter;
  } else {
    head_ = waiter;
  }
  tail_ = waiter;
  waiters_.fetch_add(1, std::memory_order_release);
}

void Bulkhead::Unlink(AcquireAwaiter* waiter) {
  if (waiter->prev_ != nullptr) {
    waiter->prev_->next_ = waiter->next_;
  } else {
    head_ = waiter->next_;
  }
  if (waiter->next_ != nullptr) {
    waiter->next_->prev_ = waiter->prev_;
  } else {
    tail_ = waiter->prev_;
  }
  waiter->prev_ = waiter->next_ = nullptr;
  const uint32_t before = waiters_.fetch_sub(1, std::memory_order_release);
  FL_ASSERT(before > 0);
}

void Bulkhead::HandOff() {
  AcquireAwaiter* waiter = head_;
  FL_ASSERT_MSG(waiter != nullptr, "waiter count without a waiter: released off the executor?");
  Unlink(waiter);
  handed_off_.fetch_add(1, std::memory_order_relaxed);
  waiter->Grant();  // in_use_ is unchanged: the slot moves from the releaser to the waiter
}

// ---- AcquireAwaiter ---------------------------------------------------------------------------

Bulkhead::AcquireAwaiter::~AcquireAwaiter() {
  if (phase_ == Phase::kQueued) bulkhead_.Unlink(this);
  if (timer_) executor_.Cancel(timer_);
  token_.Unregister(registration_);
  // permit_ (granted but never resumed, e.g. the coroutine was destroyed by a crash) releases
  // its slot in its own destructor, which may hand it to the next waiter.
}

bool Bulkhead::AcquireAwaiter::await_ready() {
  if (token_.cancelled()) {
    bulkhead_.cancelled_.fetch_add(1, std::memory_order_relaxed);
    failure_ = StatusCode::kCancelled;
    return true;
  }
  // FIFO: a free slot is taken only when nobody is queued (a released slot goes to the queue
  // head anyway, so with waiters present there is no free slot to take).
  if (bulkhead_.waiters_.load(std::memory_order_acquire) == 0) {
    permit_ = bulkhead_.TryAcquire();
    if (permit_) return true;
  }
  if (bulkhead_.waiters_.load(std::memory_order_relaxed) >= bulkhead_.options_.queue_depth_max) {
    bulkhead_.queue_full_.fetch_add(1, std::memory_order_relaxed);
    bulkhead_.observer_.Emit(EventKind::kBulkheadRejected, MonoTime(),
                             bulkhead_.in_use_.load(std::memory_order_relaxed));
    failure_ = StatusCode::kResourceExhausted;
    return true;
  }
  if (bulkhead_.options_.queue_wait_max <= Duration::Zero()) {
    bulkhead_.timed_out_.fetch_add(1, std::memory_order_relaxed);
    failure_ = StatusCode::kDeadlineExceeded;
    return true;
  }
  return false;
}

void Bulkhead::AcquireAwaiter::await_suspend(std::coroutine_handle<> handle) {
  handle_ = handle;
  phase_ = Phase::kQueued;
  bulkhead_.Enqueue(this);
  bulkhead_.queued_.fetch_add(1, std::memory_order_relaxed);
  timer_ = executor_.ScheduleAfter(bulkhead_.options_.queue_wait_max, [this] {
    timer_ = {};
    OnTimeout();
  });
  registration_ = token_.Register([this] {
    registration_ = 0;
    OnCancel();
  });
}

Result<BulkheadPermit> Bulkhead::AcquireAwaiter::await_resume() {
  phase_ = Phase::kDone;
  if (permit_) return std::move(permit_);
  switch (failure_) {
    case StatusCode::kCancelled:
      return CancelledError("bulkhead acquire cancelled");
    case StatusCode::kResourceExhausted:
      return ResourceExhaustedError("bulkhead full and its wait queue full");
    case StatusCode::kDeadlineExceeded:
      return DeadlineExceededError("bulkhead: no slot within queue_wait_max");
    default:
      break;
  }
  FL_UNREACHABLE();
}

void Bulkhead::AcquireAwaiter::ResumeLater() {
  phase_ = Phase::kResuming;
  // Never resume inside the releaser's or canceller's stack.
  timer_ = executor_.Post([this] {
    timer_ = {};
    handle_.resume();
  });
}

void Bulkhead::AcquireAwaiter::Grant() {
  FL_ASSERT(phase_ == Phase::kQueued);
  if (timer_) executor_.Cancel(timer_);
  timer_ = {};
  token_.Unregister(registration_);
  registration_ = 0;
  permit_ = BulkheadPermit(&bulkhead_);
  ResumeLater();
}

void Bulkhead::AcquireAwaiter::OnTimeout() {
  FL_ASSERT(phase_ == Phase::kQueued);
  bulkhead_.Unlink(this);
  token_.Unregister(registration_);
  registration_ = 0;
  bulkhead_.timed_out_.fetch_add(1, std::memory_order_relaxed);
  failure_ = StatusCode::kDeadlineExceeded;
  phase_ = Phase::kResuming;
  handle_.resume();  // we are an executor callback already
}

void Bulkhead::AcquireAwaiter::OnCancel() {
  if (phase_ != Phase::kQueued) return;
  bulkhead_.Unlink(this);
  if (timer_) executor_.Cancel(timer_);
  timer_ = {};
  bulkhead_.cancelled_.fetch_add(1, std::memory_order_relaxed);
  failure_ = StatusCode::kCancelled;
  ResumeLater();
}

}  // namespace faultline
