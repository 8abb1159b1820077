// File: faultline/adapters/store_workers.h
//
// StoreWorkers: runs LocalStore transactions off a node's event loop.
//
// LocalStore is synchronous, and on SQLite or PostgreSQL a transaction blocks its thread for an
// fsync or a network round trip (0.1-5 ms measured; unbounded while a server is unreachable).
// Node code runs on a single-threaded executor, where a blocking call stalls every timer and
// message of the node. StoreWorkers is the bridge: the transaction body runs on one of a bounded
// set of worker threads (RunInTransaction, with its retries), and the completion is handed back
// to the node's loop through `post`, a thread-safe "run this on my loop" function that the real
// runtime provides (Asio's post; a test's queue). Under the simulator nothing blocks (LogStore
// over SimDisk), so simulated nodes call the store directly and stay deterministic.
//
// Rules for the body: it runs on a worker thread, concurrently with the loop, so it must touch
// only the Transaction and what it owns (capture inputs by value, return results through a
// shared_ptr or the Status, apply them to node state in the completion, on the loop).
//
// Limits: `threads` transactions in flight (size it to the store's connections_max), `queue_max`
// jobs waiting; Submit beyond that is kResourceExhausted and nothing is queued (backpressure, not
// an unbounded queue). Thread-safe: Submit from any thread. The store must outlive the workers.
#pragma once

#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/store/local_store.h"

namespace faultline {

// Runs a callback on the caller's loop, later (never inline); callable from any thread.
using PostToLoop = std::function<void(std::function<void()>)>;

struct StoreWorkersOptions {
  uint32_t threads = 4;
  uint32_t queue_max = 1024;
  uint32_t attempts_max = 8;  // RunInTransaction attempts per job

  // kInvalidArgument naming the offending field.
  Status Validate() const;
};

class StoreWorkers {
 public:
  using Body = std::function<Status(Transaction&)>;

  static Result<std::unique_ptr<StoreWorkers>> Create(LocalStore& store, PostToLoop post,
                                                      StoreWorkersOptions options = {});
  // Runs every job already queued (their completions are still posted), then joins the threads.
  ~StoreWorkers();
  StoreWorkers(const StoreWorkers&) = delete;
  StoreWorkers& operator=(const StoreWorkers&) = delete;

  // Queues RunInTransaction(store, body); `done(status)` later runs through `post`.
  // kResourceExhausted when queue_max jobs wait (nothing queued; `done` is never called).
  Status Submit(Body body, std::function<void(Status)> done);

  // `co_await workers.Run(std::move(body))` from a coroutine on the loop: the transaction's
  // Status. If the coroutine is destroyed while the job runs (a crashed node), the job still
  // finishes and its completion resumes nothing. A full queue resumes at once with
  // kResourceExhausted. Pass a named Body, not a lambda written inside the co_await expression:
  // GCC 12 destroys such temporaries twice (a compiler bug, seen here as a double free).
  class RunAwaiter {
   public:
    RunAwaiter(StoreWorkers& workers, Body body)
        : workers_(workers), body_(std::move(body)), state_(std::make_shared<State>()) {}
    RunAwaiter(const RunAwaiter&) = delete;
    RunAwaiter& operator=(const RunAwaiter&) = delete;
    ~RunAwaiter() {
      if (!state_->done) state_->abandoned = true;  // both on the loop: no race
    }
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> handle);
    Status await_resume() { return std::move(state_->status); }

   private:
    struct State {
      bool abandoned = false;
      bool done = false;
      Status status;
      std::coroutine_handle<> handle;
    };
    StoreWorkers& workers_;
    Body body_;
    std::shared_ptr<State> state_;
  };
  RunAwaiter Run(Body body) { return RunAwaiter(*this, std::move(body)); }

  uint32_t queued() const;

 private:
  struct Job {
    Body body;
    std::function<void(Status)> done;
  };
  StoreWorkers(LocalStore& store, PostToLoop post, StoreWorkersOptions options);
  void WorkerLoop();

  LocalStore& store_;
  const PostToLoop post_;
  const StoreWorkersOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace faultline
