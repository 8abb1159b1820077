#include "faultline/adapters/store_workers.h"

#include <utility>

#include "faultline/core/options.h"

namespace faultline {

Status StoreWorkersOptions::Validate() const {
  FL_CHECK_OPTION(threads >= 1 && threads <= 256, "threads must be in [1, 256]");
  FL_CHECK_OPTION(queue_max >= 1 && queue_max <= 1000000, "queue_max must be in [1, 1000000]");
  FL_CHECK_OPTION(attempts_max >= 1 && attempts_max <= 1000, "attempts_max must be in [1, 1000]");
  return Status::Ok();
}

StoreWorkers::StoreWorkers(LocalStore& store, PostToLoop post, StoreWorkersOptions options)
    : store_(store), post_(std::move(post)), options_(options) {}

Result<std::unique_ptr<StoreWorkers>> StoreWorkers::Create(LocalStore& store, PostToLoop post,
                                                           StoreWorkersOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  if (!post) return InvalidArgumentError("post must be set");
  std::unique_ptr<StoreWorkers> workers(new StoreWorkers(store, std::move(post), options));
  for (uint32_t i = 0; i < options.threads; ++i) {
    workers->threads_.emplace_back([w = workers.get()] { w->WorkerLoop(); });
  }
  return workers;
}

StoreWorkers::~StoreWorkers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  FL_ASSERT(queue_.empty());
}

Status StoreWorkers::Submit(Body body, std::function<void(Status)> done) {
  FL_ASSERT(body && done);
  {
    std::lock_guard<std::mutex> lock(mu_);
    FL_ASSERT_MSG(!stopping_, "Submit on StoreWorkers being destroyed");
    if (queue_.size() >= options_.queue_max) {
      return ResourceExhaustedError("store workers: queue_max jobs already waiting");
    }
    queue_.push_back(Job{std::move(body), std::move(done)});
  }
  cv_.notify_one();
  return Status::Ok();
}

uint32_t StoreWorkers::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<uint32_t>(queue_.size());
}

void StoreWorkers::WorkerLoop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and every queued job has been taken
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    Status status = RunInTransaction(store_, job.body, options_.attempts_max);
    post_([done = std::move(job.done), status = std::move(status)]() mutable {
      done(std::move(status));
    });
  }
}

bool StoreWorkers::RunAwaiter::await_suspend(std::coroutine_handle<> handle) {
  state_->handle = handle;
  Status queued = workers_.Submit(std::move(body_), [state = state_](Status status) {
    state->done = true;
    if (state->abandoned) return;
    state->status = std::move(status);
    state->handle.resume();
  });
  if (queued.ok()) return true;
  state_->status = std::move(queued);
  state_->done = true;
  return false;  // resume at once with the error
}

}  // namespace faultline
