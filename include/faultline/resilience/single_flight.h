// File: faultline/resilience/single_flight.h
//
// SingleFlight<Key, T>: request coalescing for coroutines on one executor (Go's x/sync/singleflight
// plus a small result cache; research §1 "Single-flight" and §3 item 13).
//
//   Result<Profile> p = co_await flight->Do(
//       user_id, [&](CancelToken t) { return Fetch(user_id, t); }, my_token);
//
// Concurrent Do() calls with equal keys share ONE execution of `fn` and all receive (a copy of) its
// Result<T>:
// - The first caller starts fn as a detached coroutine owned by the SingleFlight; later callers
//   join it. Every caller, the first included, is just a waiter.
// - fn's outcome, ok or not, completes every waiter: an error, or a kCancelled that fn returns, is
//   fanned out to all of them; none can hang (Go issues #33519, #52557: a panicking or exiting fn
//   left waiters blocked). If the work's coroutine is destroyed before finishing (the SingleFlight
//   is destroyed), its waiters complete with kCancelled.
// - A waiter whose own CancelToken is cancelled returns kCancelled at once (on a later turn of the
//   executor) and leaves; the shared work continues for the others. Only when the LAST waiter
//   leaves this way is the shared work cancelled (through the CancelToken fn received) and
//   forgotten: its eventual result is discarded, and the next Do() for the key starts afresh.
// - A waiting coroutine that is destroyed (a crash, or its owner dropping the Task) just leaves:
//   the shared work is not cancelled, since during a crash the SingleFlight may already be gone.
// - Successful results are cached for `ttl` (monotonic clock) in an LRU of at most `keys_max` keys;
//   errors are never cached. A cached result is returned without suspending.
// - Forget(key) drops the cached result and detaches an in-flight execution: its waiters still get
//   its result, but later Do() calls start a new execution, and the detached one is not cached.
// - At most `inflight_keys_max` distinct keys execute at once; beyond that Do() fails at once with
//   kResourceExhausted (a bound, not a queue).
//
// `fn` is a callable taking a CancelToken (or nothing) and returning Task<Result<T>>; it is moved
// into the shared work's frame, which keeps it alive until the work finishes. Key must be hashable
// and copyable, T copyable (each waiter receives a copy).
//
// Clock reads (only with a cache, ttl > 0): one when a lookup finds a cached value, one when a
// result is cached.
//
// Single-executor and not thread-safe: every Do(), Forget() and cancellation happens on the one
// executor thread the coroutines run on (under the simulator, a node). Waiters are resumed on a
// later turn of that executor, never inside fn's or a canceller's stack. Destroying the
// SingleFlight destroys the in-flight work (its waiters then complete with kCancelled).
#pragma once

#include <coroutine>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "faultline/core/assert.h"
#include "faultline/core/observer.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/cancel.h"
#include "faultline/env/clock.h"
#include "faultline/env/executor.h"
#include "faultline/env/task.h"

namespace faultline {

struct SingleFlightOptions {
  // How long a successful result is served from the cache. >= 0 and finite; 0 disables caching.
  Duration ttl = Duration::Zero();
  // Cached keys at most; the least recently used is evicted. 1 ..= 2^20.
  uint32_t keys_max = 1024;
  // Keys executing at once at most. 1 ..= 2^20.
  uint32_t inflight_keys_max = 1024;

  Status Validate() const;
};

struct SingleFlightCounters {
  uint64_t executions = 0;         // fn started
  uint64_t joined = 0;             // Do() calls that joined an execution already in flight
  uint64_t cache_hits = 0;         // Do() calls answered from the cache
  uint64_t expired = 0;            // cached results dropped because their ttl passed
  uint64_t evicted = 0;            // cached results dropped to stay within keys_max
  uint64_t errors = 0;             // executions that finished with a non-ok status
  uint64_t waiters_cancelled = 0;  // waiters that left because their token was cancelled
  uint64_t abandoned = 0;          // executions cancelled because their last waiter left
  uint64_t overflow = 0;           // Do() refused: inflight_keys_max keys already executing
};

template <typename Key, typename T, typename Hash = std::hash<Key>,
          typename KeyEqual = std::equal_to<Key>>
class SingleFlight {
 public:
  static Result<std::unique_ptr<SingleFlight>> Create(Executor& executor, Clock& clock,
                                                      const SingleFlightOptions& options) {
    FL_RETURN_IF_ERROR(options.Validate());
    return std::unique_ptr<SingleFlight>(new SingleFlight(executor, clock, options));
  }
  SingleFlight(const SingleFlight&) = delete;
  SingleFlight& operator=(const SingleFlight&) = delete;
  ~SingleFlight() {
    // Destroys every in-flight work coroutine; each one's guard completes its waiters (kCancelled)
    // while the maps below are still alive.
    tasks_.DestroyAll();
    FL_ASSERT(inflight_.empty());
  }

  // co_await Do(key, fn[, token]) -> Result<T>. See the header comment.
  template <typename Fn>
  Task<Result<T>> Do(Key key, Fn fn, CancelToken token = {}) {
    if (token.cancelled()) {
      ++counters_.waiters_cancelled;
      co_return CancelledError("single-flight: waiter cancelled");
    }
    if (const T* hit = Lookup(key)) {
      ++counters_.cache_hits;
      observer_.Emit(EventKind::kSingleFlightShared, MonoTime(), 1);
      co_return *hit;
    }
    std::shared_ptr<Call> call;
    if (auto it = inflight_.find(key); it != inflight_.end()) {
      call = it->second;
      ++counters_.joined;
      observer_.Emit(EventKind::kSingleFlightShared, MonoTime(), 0);
    } else {
      if (inflight_.size() >= options_.inflight_keys_max) {
        ++counters_.overflow;
        co_return ResourceExhaustedError("single-flight: inflight_keys_max keys executing");
      }
      call = std::make_shared<Call>(key);
      inflight_.emplace(key, call);
      ++counters_.executions;
      tasks_.Spawn(Run(this, call, std::move(fn)));  // may finish inline
    }
    co_return co_await WaitAwaiter(this, std::move(call), std::move(token));
  }

  // Reports kSingleFlightShared for every Do() answered without running fn: a = 0 joined the
  // execution in flight, a = 1 served from the cache (no timestamp). Attach before the first Do.
  ObserverSlot& observe() { return observer_; }

  // Drops the cached result of `key` and detaches its in-flight execution, if any.
  void Forget(const Key& key) {
    EraseCached(key);
    if (auto it = inflight_.find(key); it != inflight_.end()) {
      it->second->detached = true;
      inflight_.erase(it);
    }
  }

  size_t inflight_keys() const { return inflight_.size(); }
  size_t cached_keys() const { return cache_.size(); }
  // Waiters of the in-flight execution of `key` (0 when none).
  uint32_t waiters(const Key& key) const {
    auto it = inflight_.find(key);
    return it == inflight_.end() ? 0 : it->second->waiter_count;
  }
  const SingleFlightCounters& counters() const { return counters_; }
  const SingleFlightOptions& options() const { return options_; }

 private:
  class WaitAwaiter;

  // One execution of fn and the coroutines waiting for it.
  struct Call {
    explicit Call(const Key& k) : key(k) {}
    Key key;
    CancelSource cancel;              // cancels fn when the last waiter leaves
    std::optional<Result<T>> result;  // set once, when fn finishes
    WaitAwaiter* head = nullptr;      // waiters, intrusive list
    WaitAwaiter* tail = nullptr;
    uint32_t waiter_count = 0;
    bool detached = false;  // no longer in inflight_ (abandoned or forgotten): not cached
  };

  // Completes the call with kCancelled if fn's coroutine is destroyed before it finishes.
  struct RunGuard {
    SingleFlight* self;
    Call* call;
    bool finished = false;
    RunGuard(SingleFlight* s, Call* c) : self(s), call(c) {}
    RunGuard(const RunGuard&) = delete;
    RunGuard& operator=(const RunGuard&) = delete;
    ~RunGuard() {
      if (!finished) self->Complete(*call, CancelledError("single-flight: shared work destroyed"));
    }
  };

  SingleFlight(Executor& executor, Clock& clock, const SingleFlightOptions& options)
      : executor_(executor), clock_(clock), options_(options) {}

  template <typename Fn>
  static Task<Result<T>> Invoke(Fn& fn, CancelToken token) {
    if constexpr (std::is_invocable_v<Fn&, CancelToken>) {
      return fn(std::move(token));
    } else {
      return fn();
    }
  }

  template <typename Fn>
  static Task<void> Run(SingleFlight* self, std::shared_ptr<Call> call, Fn fn) {
    RunGuard guard(self, call.get());
    Result<T> result = co_await Invoke(fn, call->cancel.token());
    guard.finished = true;
    self->Complete(*call, std::move(result));
  }

  // fn finished (or was destroyed): publish, cache, and wake every waiter.
  void Complete(Call& call, Result<T> result) {
    FL_ASSERT(!call.result.has_value());
    if (!result.ok()) ++counters_.errors;
    call.result.emplace(std::move(result));
    if (!call.detached) {
      auto it = inflight_.find(call.key);
      FL_ASSERT(it != inflight_.end() && it->second.get() == &call);
      call.detached = true;
      if (call.result->ok()) Insert(call.key, call.result->value());
      inflight_.erase(it);
    }
    while (call.head != nullptr) {
      WaitAwaiter* w = call.head;
      Unlink(call, w);
      w->Finish(*call.result);
    }
    FL_ASSERT(call.waiter_count == 0);
  }

  // A waiter's token was cancelled: it leaves; the last one out cancels the work.
  void Leave(Call& call, WaitAwaiter* w) {
    Unlink(call, w);
    ++counters_.waiters_cancelled;
    if (call.waiter_count == 0 && !call.result.has_value()) Abandon(call);
  }

  void Abandon(Call& call) {
    FL_ASSERT(call.waiter_count == 0 && !call.result.has_value());
    ++counters_.abandoned;
    if (!call.detached) {
      auto it = inflight_.find(call.key);
      FL_ASSERT(it != inflight_.end() && it->second.get() == &call);
      call.detached = true;
      inflight_.erase(it);
    }
    call.cancel.Cancel();  // fn's awaitables resume on a later turn, never inside this stack
  }

  static void Link(Call& call, WaitAwaiter* w) {
    FL_ASSERT(!w->linked_);
    w->prev_ = call.tail;
    w->next_ = nullptr;
    if (call.tail != nullptr) {
      call.tail->next_ = w;
    } else {
      call.head = w;
    }
    call.tail = w;
    w->linked_ = true;
    ++call.waiter_count;
  }
  static void Unlink(Call& call, WaitAwaiter* w) {
    FL_ASSERT(w->linked_ && call.waiter_count > 0);
    (w->prev_ != nullptr ? w->prev_->next_ : call.head) = w->next_;
    (w->next_ != nullptr ? w->next_->prev_ : call.tail) = w->prev_;
    w->prev_ = w->next_ = nullptr;
    w->linked_ = false;
    --call.waiter_count;
  }

  // --- cache -----------------------------------------------------------------------------------
  struct Entry {
    T value;
    MonoTime expires;
    typename std::list<Key>::iterator lru;
  };

  const T* Lookup(const Key& key) {
    if (options_.ttl <= Duration::Zero()) return nullptr;
    auto it = cache_.find(key);
    if (it == cache_.end()) return nullptr;
    if (clock_.Now() >= it->second.expires) {
      ++counters_.expired;
      lru_.erase(it->second.lru);
      cache_.erase(it);
      return nullptr;
    }
    lru_.splice(lru_.end(), lru_, it->second.lru);
    return &it->second.value;
  }

  void Insert(const Key& key, const T& value) {
    if (options_.ttl <= Duration::Zero()) return;
    const MonoTime expires = clock_.Now() + options_.ttl;
    if (auto it = cache_.find(key); it != cache_.end()) {
      it->second.value = value;
      it->second.expires = expires;
      lru_.splice(lru_.end(), lru_, it->second.lru);
      return;
    }
    if (cache_.size() >= options_.keys_max) {
      FL_ASSERT(!lru_.empty());
      cache_.erase(lru_.front());
      lru_.pop_front();
      ++counters_.evicted;
    }
    lru_.push_back(key);
    cache_.emplace(key, Entry{value, expires, std::prev(lru_.end())});
    FL_ASSERT(cache_.size() <= options_.keys_max && cache_.size() == lru_.size());
  }

  void EraseCached(const Key& key) {
    if (auto it = cache_.find(key); it != cache_.end()) {
      lru_.erase(it->second.lru);
      cache_.erase(it);
    }
  }

  Executor& executor_;
  Clock& clock_;
  const SingleFlightOptions options_;
  SingleFlightCounters counters_;
  std::unordered_map<Key, std::shared_ptr<Call>, Hash, KeyEqual> inflight_;
  std::unordered_map<Key, Entry, Hash, KeyEqual> cache_;
  std::list<Key> lru_;  // least recently used first
  ObserverSlot observer_;
  TaskSet tasks_;       // the shared work coroutines; declared last, destroyed first
};

// The awaitable a Do() caller suspends on. Neither copyable nor movable: once suspended, the call
// and the executor hold its address.
template <typename Key, typename T, typename Hash, typename KeyEqual>
class [[nodiscard]] SingleFlight<Key, T, Hash, KeyEqual>::WaitAwaiter {
 public:
  WaitAwaiter(SingleFlight* owner, std::shared_ptr<Call> call, CancelToken token)
      : owner_(owner),
        executor_(owner->executor_),
        call_(std::move(call)),
        token_(std::move(token)) {}
  WaitAwaiter(const WaitAwaiter&) = delete;
  WaitAwaiter& operator=(const WaitAwaiter&) = delete;
  ~WaitAwaiter() {
    if (resume_timer_) executor_.Cancel(resume_timer_);
    token_.Unregister(registration_);
    if (linked_) SingleFlight::Unlink(*call_, this);  // destroyed while waiting: just leave
  }

  bool await_ready() {
    if (call_->result.has_value()) {  // fn finished without suspending
      result_.emplace(*call_->result);
      return true;
    }
    if (token_.cancelled()) {  // cancelled by fn's first synchronous steps
      result_.emplace(CancelledError("single-flight: waiter cancelled"));
      ++owner_->counters_.waiters_cancelled;
      if (call_->waiter_count == 0) owner_->Abandon(*call_);
      return true;
    }
    return false;
  }
  void await_suspend(std::coroutine_handle<> handle) {
    handle_ = handle;
    SingleFlight::Link(*call_, this);
    registration_ = token_.Register([this] { OnCancel(); });
  }
  Result<T> await_resume() {
    FL_ASSERT(result_.has_value());
    return std::move(*result_);
  }

 private:
  friend class SingleFlight;

  // The call finished (this waiter is already unlinked).
  void Finish(const Result<T>& result) {
    result_.emplace(result);
    token_.Unregister(registration_);
    registration_ = 0;
    ResumeLater();
  }
  void OnCancel() {
    registration_ = 0;
    result_.emplace(CancelledError("single-flight: waiter cancelled"));
    owner_->Leave(*call_, this);
    ResumeLater();
  }
  void ResumeLater() {
    FL_ASSERT(!resume_timer_);
    resume_timer_ = executor_.Post([this] {
      resume_timer_ = {};
      handle_.resume();
    });
  }

  SingleFlight* owner_;
  Executor& executor_;
  std::shared_ptr<Call> call_;
  CancelToken token_;
  WaitAwaiter* prev_ = nullptr;
  WaitAwaiter* next_ = nullptr;
  bool linked_ = false;
  uint64_t registration_ = 0;
  TimerId resume_timer_;
  std::coroutine_handle<> handle_;
  std::optional<Result<T>> result_;
};

}  // namespace faultline
