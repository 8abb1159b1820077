#include "src/adapters/etcd_http.h"

#include <curl/curl.h>

#include <utility>
#include <vector>

#include "faultline/core/assert.h"

namespace faultline::adapters::etcd_internal {
namespace {

void EnsureCurl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

long Millis(Duration d) {
  const int64_t ms = (d.nanos() + 999'999) / 1'000'000;
  return static_cast<long>(ms < 1 ? 1 : ms);
}

size_t OnData(char* data, size_t size, size_t count, void* user) {
  HttpCall* call = static_cast<HttpCall*>(user);
  const size_t n = size * count;
  if (!call->on_line) {
    if (call->outcome.body.size() + n > call->body_max) {
      call->outcome.too_large = true;
      return 0;
    }
    call->outcome.body.append(data, n);
    return n;
  }
  call->pending_line.append(data, n);
  size_t start = 0;
  for (size_t nl; (nl = call->pending_line.find('\n', start)) != std::string::npos; start = nl + 1) {
    const std::string_view line(call->pending_line.data() + start, nl - start);
    if (line.find_first_not_of(" \r\t") == std::string_view::npos) continue;
    if (!call->on_line(line)) {
      call->outcome.stopped = true;
      return 0;
    }
  }
  call->pending_line.erase(0, start);
  if (call->pending_line.size() > call->body_max) {
    call->outcome.too_large = true;
    return 0;
  }
  return n;
}

}  // namespace

EtcdHttpWorker::EtcdHttpWorker(PostToLoop post) : post_(std::move(post)) {
  FL_ASSERT(post_ != nullptr);
  EnsureCurl();
  multi_ = curl_multi_init();
  FL_ASSERT_MSG(multi_ != nullptr, "curl_multi_init failed");
  thread_ = std::thread([this] { Run(); });
}

EtcdHttpWorker::~EtcdHttpWorker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
  thread_.join();
  CURLM* multi = static_cast<CURLM*>(multi_);
  for (auto& [id, call] : active_) {
    curl_multi_remove_handle(multi, static_cast<CURL*>(call->easy));
    curl_easy_cleanup(static_cast<CURL*>(call->easy));
    call->easy = nullptr;
  }
  active_.clear();
  curl_multi_cleanup(multi);
}

void EtcdHttpWorker::Submit(std::shared_ptr<HttpCall> call) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    call->id = next_id_++;
    submitted_.push_back(std::move(call));
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void EtcdHttpWorker::Cancel(const std::shared_ptr<HttpCall>& call) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_.push_back(call->id);
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void EtcdHttpWorker::Complete(const std::shared_ptr<HttpCall>& call, int curl_code) {
  CURL* easy = static_cast<CURL*>(call->easy);
  HttpOutcome& out = call->outcome;
  out.curl_code = curl_code;
  if (curl_code != CURLE_OK) out.curl_error = curl_easy_strerror(static_cast<CURLcode>(curl_code));
  out.timed_out = curl_code == CURLE_OPERATION_TIMEDOUT;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &out.http_status);
  if (call->on_line && !out.stopped && !out.cancelled && !call->pending_line.empty()) {
    // A final line without its newline.
    if (!call->on_line(call->pending_line)) out.stopped = true;
  }
  curl_multi_remove_handle(static_cast<CURLM*>(multi_), easy);
  curl_easy_cleanup(easy);
  call->easy = nullptr;
  active_.erase(call->id);
  std::shared_ptr<HttpCall> keep = call;
  post_([keep] {
    if (keep->abandoned || !keep->on_done) return;
    std::function<void()> done = std::move(keep->on_done);
    keep->on_done = nullptr;
    done();
  });
}

void EtcdHttpWorker::Run() {
  CURLM* multi = static_cast<CURLM*>(multi_);
  for (;;) {
    std::deque<std::shared_ptr<HttpCall>> submitted;
    std::deque<uint64_t> cancelled;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      submitted.swap(submitted_);
      cancelled.swap(cancelled_);
    }
    for (std::shared_ptr<HttpCall>& call : submitted) {
      CURL* easy = curl_easy_init();
      FL_ASSERT_MSG(easy != nullptr, "curl_easy_init failed");
      call->easy = easy;
      curl_easy_setopt(easy, CURLOPT_URL, call->url.c_str());
      curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(easy, CURLOPT_PROXY, "");
      curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, Millis(call->timeout));
      curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, Millis(call->connect_timeout));
      curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnData);
      curl_easy_setopt(easy, CURLOPT_WRITEDATA, call.get());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, call->body.c_str());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(call->body.size()));
      curl_easy_setopt(easy, CURLOPT_PRIVATE, call.get());
      active_.emplace(call->id, call);
      curl_multi_add_handle(multi, easy);
    }
    for (uint64_t id : cancelled) {
      auto it = active_.find(id);
      if (it == active_.end()) continue;  // finished already
      std::shared_ptr<HttpCall> call = it->second;
      call->outcome.cancelled = true;
      Complete(call, CURLE_ABORTED_BY_CALLBACK);
    }
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      HttpCall* raw = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &raw);
      auto it = active_.find(raw->id);
      FL_ASSERT(it != active_.end());
      const int code = msg->data.result;
      Complete(std::shared_ptr<HttpCall>(it->second), code);
    }
    curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  }
}

std::string Base64Encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) |
                       (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

bool Base64Decode(std::string_view in, std::string* out) {
  out->clear();
  if (in.size() % 4 != 0) return false;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return false;
      v[k] = value(c);
      if (v[k] < 0) return false;
    }
    const uint32_t triple = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out->push_back(static_cast<char>((triple >> 16) & 0xff));
    if (pad < 2) out->push_back(static_cast<char>((triple >> 8) & 0xff));
    if (pad < 1) out->push_back(static_cast<char>(triple & 0xff));
  }
  return true;
}

}  // namespace faultline::adapters::etcd_internal
