// Internal to EtcdLeaseService: HTTP requests on a worker thread (one curl_multi), resumed on the
// node's loop.
//
//   EtcdHttpWorker worker(post_to_loop);
//   auto call = std::make_shared<HttpCall>();
//   call->url = ...; call->body = ...; call->timeout = ...;
//   HttpOutcome out = co_await HttpAwait(worker, call, cancel);
//
// The worker thread only touches a call's request fields (read), its outcome (written before the
// completion is posted) and its line handler (run on the worker for streaming answers). The loop
// side only reads the outcome after the posted completion ran, so the post orders the two.
// A coroutine destroyed while awaiting abandons its call: the worker removes the transfer and the
// completion, if already posted, is dropped.
#pragma once

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "faultline/core/time.h"
#include "faultline/env/cancel.h"

namespace faultline::adapters::etcd_internal {

struct HttpOutcome {
  // 0 = CURLE_OK.
  int curl_code = 0;
  std::string curl_error;
  long http_status = 0;
  std::string body;
  // The line handler asked to stop (a streaming answer decided), or the call was cancelled.
  bool stopped = false;
  bool cancelled = false;
  bool timed_out = false;
  bool too_large = false;
};

struct HttpCall {
  std::string url;
  std::string body;  // POSTed as application/json
  Duration timeout = Duration::Seconds(1);
  Duration connect_timeout = Duration::Millis(250);
  size_t body_max = 1 << 20;
  // Streaming answers: runs on the worker thread for each complete line (and a final partial
  // one); returning false ends the transfer (outcome.stopped). Unset: the body is collected.
  std::function<bool(std::string_view line)> on_line;

  HttpOutcome outcome;

  // Loop side.
  std::function<void()> on_done;
  bool abandoned = false;
  // Worker side.
  std::string pending_line;
  void* easy = nullptr;
  uint64_t id = 0;
};

class EtcdHttpWorker {
 public:
  using PostToLoop = std::function<void(std::function<void()>)>;
  explicit EtcdHttpWorker(PostToLoop post);
  ~EtcdHttpWorker();  // stops the thread; calls in flight are dropped (never completed)
  EtcdHttpWorker(const EtcdHttpWorker&) = delete;
  EtcdHttpWorker& operator=(const EtcdHttpWorker&) = delete;

  void Submit(std::shared_ptr<HttpCall> call);
  // Ends a submitted call early: it completes with outcome.cancelled (unless done already).
  void Cancel(const std::shared_ptr<HttpCall>& call);

 private:
  void Run();
  void Complete(const std::shared_ptr<HttpCall>& call, int curl_code);

  PostToLoop post_;
  std::mutex mu_;
  std::deque<std::shared_ptr<HttpCall>> submitted_;
  std::deque<uint64_t> cancelled_;
  bool stop_ = false;
  uint64_t next_id_ = 1;
  void* multi_ = nullptr;
  // Worker thread only.
  std::unordered_map<uint64_t, std::shared_ptr<HttpCall>> active_;
  std::thread thread_;
};

// co_await HttpAwait(worker, call, cancel) -> HttpOutcome (moved out of the call).
class [[nodiscard]] HttpAwait {
 public:
  HttpAwait(EtcdHttpWorker& worker, std::shared_ptr<HttpCall> call, CancelToken cancel)
      : worker_(worker), call_(std::move(call)), cancel_(std::move(cancel)) {}
  HttpAwait(const HttpAwait&) = delete;
  HttpAwait& operator=(const HttpAwait&) = delete;
  ~HttpAwait() {
    cancel_.Unregister(registration_);
    if (submitted_ && !done_) {
      call_->abandoned = true;
      worker_.Cancel(call_);
    }
  }
  bool await_ready() const { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    call_->on_done = [this, h] {
      done_ = true;
      cancel_.Unregister(registration_);
      registration_ = 0;
      h.resume();
    };
    submitted_ = true;
    worker_.Submit(call_);
    if (cancel_.cancelled()) {
      worker_.Cancel(call_);
    } else {
      registration_ = cancel_.Register([this] {
        registration_ = 0;
        worker_.Cancel(call_);
      });
    }
  }
  HttpOutcome await_resume() { return std::move(call_->outcome); }

 private:
  EtcdHttpWorker& worker_;
  std::shared_ptr<HttpCall> call_;
  CancelToken cancel_;
  uint64_t registration_ = 0;
  bool submitted_ = false;
  bool done_ = false;
};

// Standard base64 (etcd's key/value encoding). Decode: nullopt-like false on bad input.
std::string Base64Encode(std::string_view in);
bool Base64Decode(std::string_view in, std::string* out);

}  // namespace faultline::adapters::etcd_internal
