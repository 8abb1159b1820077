// File: faultline/env/task.h
//
// Task<T>: a lazily started C++20 coroutine. Node code is written as
//
//   Task<Status> Replicate(Env& env, ...) {
//     for (int attempt = 0; attempt < 3; ++attempt) {
//       auto reply = co_await rpc.Call(peer, kMethodAppend, bytes, Duration::Millis(50));
//       if (reply.ok()) co_return Status::Ok();
//       FL_RETURN_IF_ERROR... (co_return on error)
//       co_await Sleep(env.executor(), Duration::Millis(10));
//     }
//     co_return UnavailableError("no quorum");
//   }
//
// A Task runs when awaited or when handed to a TaskSet / Env::Spawn as a detached root. An awaited
// Task starts inline; if it finishes without suspending, the awaiter simply continues, so a loop of
// ready awaits runs in constant stack at every optimization level. A Task that suspends resumes its
// awaiter by symmetric transfer when it finishes. (A deep recursion of awaits that all finish
// without suspending uses stack like ordinary recursion.)
// Destroying a suspended Task destroys its frame and, with it, the awaiter it is suspended on;
// faultline's awaiters cancel their timers and RPC registrations in their destructors. That is how a
// simulated crash tears a node's coroutines down without leaking or resuming them.
//
// Exceptions must not escape a Task: faultline code does not throw, and an escaping exception
// terminates the process.
#pragma once

#include <coroutine>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <utility>

#include "faultline/core/assert.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/cancel.h"
#include "faultline/env/executor.h"

namespace faultline {

class TaskSet;

namespace task_internal {

struct PromiseBase {
  std::coroutine_handle<> continuation;
  TaskSet* owner = nullptr;  // set for detached roots
  uint64_t root_id = 0;
  bool started_inline = false;  // running inside its awaiter's await_suspend

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <typename P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept;
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() const noexcept {
    FL_ASSERT_MSG(false, "an exception escaped a faultline Task");
  }
};

// Starts `task` inside the awaiter's await_suspend. Returns false when it finished without
// suspending: the awaiter then continues at once, with no nested frame, so a loop of ready awaits
// runs in constant stack at every optimization level (GCC at -O0 does not turn symmetric transfer
// into a tail call). A task that suspends resumes `caller` by symmetric transfer when it finishes.
template <typename P>
bool StartInline(std::coroutine_handle<P> task, std::coroutine_handle<> caller) noexcept {
  PromiseBase& p = task.promise();
  p.continuation = caller;
  p.started_inline = true;
  task.resume();
  if (task.done()) return false;
  p.started_inline = false;
  return true;
}

}  // namespace task_internal

template <typename T = void>
class [[nodiscard]] Task {
 public:
  struct promise_type : task_internal::PromiseBase {
    std::optional<T> value;
    Task get_return_object() { return Task(std::coroutine_handle<promise_type>::from_promise(*this)); }
    template <typename U>
    void return_value(U&& v) {
      value.emplace(std::forward<U>(v));
    }
  };
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  bool valid() const { return static_cast<bool>(h_); }
  bool done() const { return h_ && h_.done(); }

  struct Awaiter {
    Handle h;
    bool await_ready() const noexcept { return !h || h.done(); }
    bool await_suspend(std::coroutine_handle<> caller) noexcept {
      return task_internal::StartInline(h, caller);
    }
    T await_resume() {
      FL_ASSERT(h && h.done() && h.promise().value.has_value());
      return std::move(*h.promise().value);
    }
  };
  Awaiter operator co_await() && noexcept { return Awaiter{h_}; }
  Awaiter operator co_await() & noexcept { return Awaiter{h_}; }

  Handle release() { return std::exchange(h_, nullptr); }

 private:
  explicit Task(Handle h) : h_(h) {}
  Handle h_;
};

template <>
class [[nodiscard]] Task<void> {
 public:
  struct promise_type : task_internal::PromiseBase {
    Task get_return_object() { return Task(std::coroutine_handle<promise_type>::from_promise(*this)); }
    void return_void() {}
  };
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  bool valid() const { return static_cast<bool>(h_); }
  bool done() const { return h_ && h_.done(); }

  struct Awaiter {
    Handle h;
    bool await_ready() const noexcept { return !h || h.done(); }
    bool await_suspend(std::coroutine_handle<> caller) noexcept {
      return task_internal::StartInline(h, caller);
    }
    void await_resume() const noexcept {}
  };
  Awaiter operator co_await() && noexcept { return Awaiter{h_}; }
  Awaiter operator co_await() & noexcept { return Awaiter{h_}; }

  Handle release() { return std::exchange(h_, nullptr); }

 private:
  explicit Task(Handle h) : h_(h) {}
  Handle h_;
};

// Owns detached root tasks. A finished root frees itself; DestroyAll() tears down every suspended
// root (a crash). Roots are kept in spawn order so teardown is deterministic.
class TaskSet {
 public:
  TaskSet() = default;
  TaskSet(const TaskSet&) = delete;
  TaskSet& operator=(const TaskSet&) = delete;
  ~TaskSet() { DestroyAll(); }

  // Starts `task` now (it runs until its first suspension before Spawn returns).
  void Spawn(Task<void> task) {
    auto h = task.release();
    if (!h) return;
    const uint64_t id = next_id_++;
    h.promise().owner = this;
    h.promise().root_id = id;
    roots_.emplace(id, h);
    h.resume();
  }

  void DestroyAll() {
    while (!roots_.empty()) {
      auto it = roots_.begin();
      auto h = it->second;
      roots_.erase(it);
      h.destroy();
    }
  }

  size_t size() const { return roots_.size(); }

 private:
  friend struct task_internal::PromiseBase;
  void OnRootFinished(uint64_t id) {
    auto it = roots_.find(id);
    FL_ASSERT(it != roots_.end());
    auto h = it->second;
    roots_.erase(it);
    h.destroy();  // legal: the coroutine is suspended at its final suspend point
  }

  uint64_t next_id_ = 1;
  std::map<uint64_t, std::coroutine_handle<Task<void>::promise_type>> roots_;
};

template <typename P>
std::coroutine_handle<> task_internal::PromiseBase::FinalAwaiter::await_suspend(
    std::coroutine_handle<P> h) noexcept {
  PromiseBase& p = h.promise();
  if (p.started_inline) return std::noop_coroutine();  // StartInline continues the awaiter
  if (p.continuation) return p.continuation;
  if (p.owner != nullptr) p.owner->OnRootFinished(p.root_id);
  return std::noop_coroutine();
}

// co_await Sleep(executor, d[, token]) -> Status: ok after d of node-monotonic time, kCancelled if
// the token is cancelled first.
//
// Hold the result in a local: `const Status slept = co_await Sleep(...); if (!slept.ok()) ...`.
// GCC 12 builds a coroutine whose first statement is `if (!(co_await Sleep(...)).ok()) co_return;`
// that never gets past that statement (reproduced on a node spawned from Start(), -O0 and -O3 alike;
// with any statement before it, or with the local, it resumes). Every coroutine in faultline uses
// the local form; TaskTest.SleepAsACoroutinesFirstStatementWakesIt pins it.
class [[nodiscard]] SleepAwaiter {
 public:
  SleepAwaiter(Executor& executor, Duration delay, CancelToken token)
      : executor_(executor), delay_(delay), token_(std::move(token)) {}
  SleepAwaiter(const SleepAwaiter&) = delete;
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;
  ~SleepAwaiter() {
    if (timer_) executor_.Cancel(timer_);
    token_.Unregister(registration_);
  }

  bool await_ready() {
    if (token_.cancelled()) {
      status_ = CancelledError("sleep cancelled");
      return true;
    }
    return false;
  }
  void await_suspend(std::coroutine_handle<> h) {
    handle_ = h;
    timer_ = executor_.ScheduleAfter(delay_, [this] {
      timer_ = {};
      token_.Unregister(registration_);
      registration_ = 0;
      handle_.resume();
    });
    registration_ = token_.Register([this] {
      registration_ = 0;
      executor_.Cancel(timer_);
      status_ = CancelledError("sleep cancelled");
      // Resume on a later turn, never inside the canceller's stack.
      timer_ = executor_.Post([this] {
        timer_ = {};
        handle_.resume();
      });
    });
  }
  Status await_resume() { return std::move(status_); }

 private:
  Executor& executor_;
  Duration delay_;
  CancelToken token_;
  TimerId timer_;
  uint64_t registration_ = 0;
  std::coroutine_handle<> handle_;
  Status status_;
};

inline SleepAwaiter Sleep(Executor& executor, Duration delay, CancelToken token = {}) {
  return SleepAwaiter(executor, delay, std::move(token));
}

// co_await Yield(executor): lets every other ready callback run first.
inline SleepAwaiter Yield(Executor& executor) { return Sleep(executor, Duration::Zero()); }

}  // namespace faultline
