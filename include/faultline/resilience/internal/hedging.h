// File: faultline/resilience/internal/hedging.h
//
// Not part of the API: the machinery of Hedge() (faultline/resilience/hedging.h), a coroutine
// template, so it must be visible to it. Single-threaded: everything runs on the hedge's executor.
#pragma once

#include <array>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>

#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/cancel.h"
#include "faultline/env/executor.h"
#include "faultline/env/task.h"
#include "faultline/resilience/retry_after.h"

namespace faultline {

namespace hedging_internal {

template <typename T>
struct Slot {
  bool done = false;
  bool seen = false;
  Pushback pushback;
  std::optional<Result<T>> result;
};

// State shared between the hedge coroutine and its attempts (at most kSlots); lives in the
// hedge's frame.
template <typename T, size_t kSlots>
struct Shared {
  explicit Shared(Executor& e) : executor(e) {}
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  ~Shared() {
    if (timer) executor.Cancel(timer);
  }

  // Something happened (an attempt finished, the caller cancelled): wake the hedge on a later
  // turn if it is waiting. Never resumes inline.
  void Notify() {
    event = true;
    if (!waiter || wake_posted) return;
    if (timer) executor.Cancel(timer);
    wake_posted = true;
    timer = executor.Post([this] {
      timer = {};
      Wake();
    });
  }
  void Wake() {
    wake_posted = false;
    if (timer) {
      executor.Cancel(timer);
      timer = {};
    }
    std::coroutine_handle<> h = std::exchange(waiter, nullptr);
    if (h) h.resume();
  }

  Executor& executor;
  std::coroutine_handle<> waiter;
  TimerId timer;
  bool wake_posted = false;
  bool event = false;
  std::array<Slot<T>, kSlots> slots;
};

// co_await: until Notify() or `timeout` (Infinite: no timer).
template <typename T, size_t kSlots>
class [[nodiscard]] WaitAwaiter {
 public:
  WaitAwaiter(Shared<T, kSlots>& s, Duration timeout, CancelToken cancel)
      : s_(s), timeout_(timeout), cancel_(std::move(cancel)) {}
  WaitAwaiter(const WaitAwaiter&) = delete;
  WaitAwaiter& operator=(const WaitAwaiter&) = delete;
  ~WaitAwaiter() {
    cancel_.Unregister(registration_);
    s_.waiter = nullptr;
  }
  bool await_ready() const { return s_.event || cancel_.cancelled(); }
  void await_suspend(std::coroutine_handle<> h) {
    s_.waiter = h;
    if (!timeout_.is_infinite()) {
      Shared<T, kSlots>* s = &s_;
      s_.timer = s_.executor.ScheduleAfter(timeout_, [s] {
        s->timer = {};
        s->Wake();
      });
    }
    Shared<T, kSlots>* s = &s_;
    registration_ = cancel_.Register([s] { s->Notify(); });
  }
  void await_resume() const {}

 private:
  Shared<T, kSlots>& s_;
  Duration timeout_;
  CancelToken cancel_;
  uint64_t registration_ = 0;
};

// Runs attempt `index` of `fn` (a HedgeFnWithPushback<T>) into its slot, then notifies.
template <typename T, size_t kSlots, typename Fn>
Task<void> RunAttempt(Shared<T, kSlots>* s, Fn* fn, int index, CancelToken cancel) {
  Slot<T>& slot = s->slots[static_cast<size_t>(index)];
  Result<T> r = co_await (*fn)(index, std::move(cancel), slot.pushback);
  slot.result.emplace(std::move(r));
  slot.done = true;
  s->Notify();
}

}  // namespace hedging_internal

}  // namespace faultline
