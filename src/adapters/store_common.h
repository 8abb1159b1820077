// Internal helpers shared by the SQL-backed LocalStore adapters (SQLite, PostgreSQL): argument
// checks that match LogStore's, one-line error text, and a bounded connection pool.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faultline/core/status.h"

namespace faultline::internal {

// The same rules and messages as LogStore: keys are 1..key_bytes_max bytes, values at most
// value_bytes_max, a scan limit is in [1, scan_limit_max].
inline Status CheckKeyValue(std::string_view key, const std::string_view* value,
                            uint32_t key_bytes_max, uint32_t value_bytes_max) {
  if (key.empty()) return InvalidArgumentError("empty key");
  if (key.size() > key_bytes_max) return InvalidArgumentError("key longer than key_bytes_max");
  if (value != nullptr && value->size() > value_bytes_max) {
    return InvalidArgumentError("value longer than value_bytes_max");
  }
  return Status::Ok();
}

inline Status CheckScanLimit(size_t limit, size_t scan_limit_max) {
  if (limit == 0 || limit > scan_limit_max) {
    return InvalidArgumentError("scan limit must be in [1, scan_limit_max]");
  }
  return Status::Ok();
}

// Collapses every run of whitespace (libpq messages carry newlines and tabs) into one space and
// trims both ends, so an error is one line.
std::string OneLine(std::string_view text);

// A SQL identifier faultline creates and quotes itself: [a-z_][a-z0-9_]{0,62}.
bool IsPlainIdentifier(std::string_view name);

// A bounded pool of connections. Acquire hands out an idle connection (the most recently used)
// or, while fewer than `connections_max` exist, opens a new one with `open`; when all are lent it
// waits up to `acquire_wait` and then fails with kResourceExhausted. Thread-safe.
template <typename Conn>
class ConnectionPool {
 public:
  ConnectionPool(uint32_t connections_max, std::chrono::milliseconds acquire_wait)
      : connections_max_(connections_max), acquire_wait_(acquire_wait) {
    FL_ASSERT(connections_max_ > 0);
  }
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // `reused` (optional) is set to true when the connection came from the idle list.
  Result<std::unique_ptr<Conn>> Acquire(
      const std::function<Result<std::unique_ptr<Conn>>()>& open, bool* reused = nullptr) {
    std::unique_lock<std::mutex> lock(mu_);
    const bool available = cv_.wait_for(lock, acquire_wait_, [this] {
      return !idle_.empty() || existing_ < connections_max_;
    });
    if (!available) {
      return ResourceExhaustedError("all connections_max connections are in use");
    }
    ++lent_;
    if (!idle_.empty()) {
      std::unique_ptr<Conn> conn = std::move(idle_.back());
      idle_.pop_back();
      if (reused != nullptr) *reused = true;
      return conn;
    }
    ++existing_;
    lock.unlock();
    if (reused != nullptr) *reused = false;
    Result<std::unique_ptr<Conn>> opened = open();
    if (!opened.ok()) {
      lock.lock();
      --existing_;
      --lent_;
      cv_.notify_one();
    }
    return opened;
  }

  // Returns a lent connection; a non-reusable one (broken, or in an unknown state) is closed.
  void Release(std::unique_ptr<Conn> conn, bool reusable) {
    std::unique_ptr<Conn> doomed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      FL_ASSERT(lent_ > 0);
      --lent_;
      if (reusable && conn != nullptr) {
        idle_.push_back(std::move(conn));
      } else {
        --existing_;
        doomed = std::move(conn);  // closed outside the lock
      }
    }
    cv_.notify_one();
  }

  // Closes every idle connection (e.g. after the server restarted).
  void DropIdle() {
    std::vector<std::unique_ptr<Conn>> doomed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      existing_ -= static_cast<uint32_t>(idle_.size());
      doomed.swap(idle_);
    }
    cv_.notify_all();
  }

  uint32_t lent() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lent_;
  }
  uint32_t existing() const {
    std::lock_guard<std::mutex> lock(mu_);
    return existing_;
  }

 private:
  const uint32_t connections_max_;
  const std::chrono::milliseconds acquire_wait_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  uint32_t existing_ = 0;  // idle + lent
  uint32_t lent_ = 0;
};

}  // namespace faultline::internal
