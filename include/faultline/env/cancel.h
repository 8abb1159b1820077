// File: faultline/env/cancel.h
//
// Cooperative cancellation. A CancelSource owns the decision; CancelTokens observe it. Awaitables
// that take a token (Sleep, Rpc::Call) finish early with kCancelled when the source is cancelled.
// A default-constructed token is never cancelled and costs nothing.
//
// Single-threaded: a source and its tokens belong to one node's executor.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "faultline/core/inline_function.h"

namespace faultline {

namespace cancel_internal {
struct State {
  bool cancelled = false;
  uint64_t next_id = 1;
  std::vector<std::pair<uint64_t, InlineFunction<void(), 32>>> callbacks;
};
}  // namespace cancel_internal

class CancelToken {
 public:
  CancelToken() = default;

  bool cancelled() const { return state_ != nullptr && state_->cancelled; }
  bool can_be_cancelled() const { return state_ != nullptr; }

  // Registers `fn` to run (once) when the source is cancelled. Returns 0 and does not call `fn`
  // when the token cannot be cancelled or is cancelled already (check cancelled() first).
  uint64_t Register(InlineFunction<void(), 32> fn) const {
    if (state_ == nullptr || state_->cancelled) return 0;
    const uint64_t id = state_->next_id++;
    state_->callbacks.emplace_back(id, std::move(fn));
    return id;
  }
  void Unregister(uint64_t id) const {
    if (state_ == nullptr || id == 0) return;
    auto& cbs = state_->callbacks;
    for (size_t i = 0; i < cbs.size(); ++i) {
      if (cbs[i].first == id) {
        cbs.erase(cbs.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
    }
  }

 private:
  friend class CancelSource;
  explicit CancelToken(std::shared_ptr<cancel_internal::State> s) : state_(std::move(s)) {}
  std::shared_ptr<cancel_internal::State> state_;
};

class CancelSource {
 public:
  CancelSource() : state_(std::make_shared<cancel_internal::State>()) {}
  CancelToken token() const { return CancelToken(state_); }
  bool cancelled() const { return state_->cancelled; }

  // Cancels once; later calls do nothing. Runs registered callbacks in registration order.
  void Cancel() {
    if (state_->cancelled) return;
    state_->cancelled = true;
    auto callbacks = std::move(state_->callbacks);
    state_->callbacks.clear();
    for (auto& [id, fn] : callbacks) fn();
  }

 private:
  std::shared_ptr<cancel_internal::State> state_;
};

}  // namespace faultline
