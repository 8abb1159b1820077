// Test helpers: a loopback HTTP receiver standing in for an OTLP collector, and a checker of the
// OTLP/JSON encoding rules (otlp.h's file comment) over what it received.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <cctype>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "faultline/core/assert.h"

namespace faultline::observe::testing {

// No std::regex here: libstdc++ 12's regex trips -Wmaybe-uninitialized in the ASan build.

// The value of header `name` (case-insensitive) in `head`, or "".
inline std::string HeaderValue(const std::string& head, std::string_view name) {
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string::npos) {
    pos += 2;
    if (head.size() - pos < name.size() + 1) break;
    bool match = true;
    for (size_t i = 0; i < name.size() && match; ++i) {
      match = std::tolower(static_cast<unsigned char>(head[pos + i])) ==
              std::tolower(static_cast<unsigned char>(name[i]));
    }
    if (!match || head[pos + name.size()] != ':') continue;
    size_t v = pos + name.size() + 1;
    while (v < head.size() && head[v] == ' ') ++v;
    const size_t end = head.find("\r\n", v);
    return head.substr(v, end == std::string::npos ? std::string::npos : end - v);
  }
  return "";
}

inline bool AllOf(const std::string& s, size_t min, size_t max, const std::function<bool(char)>& ok) {
  if (s.size() < min || s.size() > max) return false;
  for (char c : s) {
    if (!ok(c)) return false;
  }
  return true;
}
inline bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
inline bool IsDigitChar(char c) { return c >= '0' && c <= '9'; }
inline bool IsDecimal(const std::string& s) { return AllOf(s, 1, 20, IsDigitChar); }
inline bool IsSignedDecimal(const std::string& s) {
  return !s.empty() && IsDecimal(s[0] == '-' ? s.substr(1) : s);
}
inline bool IsLowerCamel(const std::string& s) {
  return !s.empty() && s[0] >= 'a' && s[0] <= 'z' &&
         AllOf(s, 1, 64, [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
}

struct HttpRequest {
  std::string method;
  std::string path;
  std::string content_type;
  std::string body;
};

// Listens on 127.0.0.1:<ephemeral>. kOk answers 200; kHang reads the request and never answers
// (until destroyed); kError answers 500.
class HttpReceiver {
 public:
  enum class Mode { kOk, kHang, kError };
  explicit HttpReceiver(Mode mode = Mode::kOk) : mode_(mode) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FL_ASSERT(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FL_ASSERT(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    FL_ASSERT(::listen(fd_, 16) == 0);
    socklen_t len = sizeof(a);
    FL_ASSERT(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~HttpReceiver() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1/traces"; }
  std::vector<HttpRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  int connections() const { return connections_.load(); }

 private:
  void Loop() {
    std::vector<int> hung;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++connections_;
      Serve(c, &hung);
    }
    for (int c : hung) ::close(c);
  }
  // One request per connection (curl reuses connections only if we keep them; we close).
  void Serve(int c, std::vector<int>* hung) {
    std::string data;
    size_t header_end = std::string::npos;
    size_t content_length = 0;
    char buf[65536];
    while (!stop_) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) break;
      data.append(buf, static_cast<size_t>(n));
      if (header_end == std::string::npos) {
        header_end = data.find("\r\n\r\n");
        if (header_end != std::string::npos) {
          const std::string len = HeaderValue(data.substr(0, header_end), "content-length");
          if (IsDecimal(len)) content_length = std::stoul(len);
        }
      }
      if (header_end != std::string::npos && data.size() >= header_end + 4 + content_length) break;
    }
    if (header_end == std::string::npos) {
      ::close(c);
      return;
    }
    HttpRequest r;
    const std::string head = data.substr(0, header_end);
    const size_t sp1 = head.find(' ');
    const size_t sp2 = head.find(' ', sp1 + 1);
    r.method = head.substr(0, sp1);
    r.path = head.substr(sp1 + 1, sp2 - sp1 - 1);
    r.content_type = HeaderValue(head, "content-type");
    r.body = data.substr(header_end + 4, content_length);
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(std::move(r));
    }
    if (mode_ == Mode::kHang) {
      hung->push_back(c);
      return;
    }
    const std::string reply = mode_ == Mode::kOk
                                  ? "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                    "Content-Length: 2\r\nConnection: close\r\n\r\n{}"
                                  : "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                                    "Connection: close\r\n\r\n";
    (void)!::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
    ::close(c);
  }

  Mode mode_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::vector<HttpRequest> requests_;
  std::thread thread_;
};

// Every violation of the OTLP/JSON rules in `doc` (empty: conforms).
inline std::vector<std::string> OtlpJsonProblems(const nlohmann::json& doc) {
  std::vector<std::string> bad;
  // Field names: lowerCamelCase everywhere (attribute keys are values, not field names).
  std::function<void(const nlohmann::json&)> names = [&](const nlohmann::json& j) {
    if (j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!IsLowerCamel(it.key())) bad.push_back("field name " + it.key());
        names(it.value());
      }
    } else if (j.is_array()) {
      for (const auto& e : j) names(e);
    }
  };
  names(doc);
  auto attrs = [&](const nlohmann::json& list, const std::string& where) {
    if (!list.is_array()) return bad.push_back(where + ": attributes not an array");
    for (const auto& a : list) {
      if (!a.contains("key") || !a["key"].is_string()) bad.push_back(where + ": attribute key");
      if (!a.contains("value") || !a["value"].is_object() || a["value"].size() != 1) {
        bad.push_back(where + ": attribute value must hold exactly one field");
        continue;
      }
      const auto& v = a["value"];
      if (v.contains("stringValue")) {
        if (!v["stringValue"].is_string()) bad.push_back(where + ": stringValue");
      } else if (v.contains("intValue")) {
        if (!v["intValue"].is_string() ||
            !IsSignedDecimal(v["intValue"].get<std::string>())) {
          bad.push_back(where + ": intValue must be a decimal string");
        }
      } else if (v.contains("doubleValue")) {
        // A number, or the protobuf JSON spellings of non-finite doubles.
        const auto& d = v["doubleValue"];
        if (!d.is_number() && !(d.is_string() && (d == "NaN" || d == "Infinity" ||
                                                  d == "-Infinity"))) {
          bad.push_back(where + ": doubleValue");
        }
      } else if (v.contains("boolValue")) {
        if (!v["boolValue"].is_boolean()) bad.push_back(where + ": boolValue");
      } else {
        bad.push_back(where + ": unknown value kind " + v.begin().key());
      }
    }
  };
  if (!doc.is_object() || !doc.contains("resourceSpans") || !doc["resourceSpans"].is_array()) {
    bad.push_back("no resourceSpans array");
    return bad;
  }
  for (const auto& rs : doc["resourceSpans"]) {
    if (!rs.contains("resource")) bad.push_back("resourceSpans without resource");
    else attrs(rs["resource"]["attributes"], "resource");
    if (!rs.contains("scopeSpans") || !rs["scopeSpans"].is_array()) {
      bad.push_back("no scopeSpans array");
      continue;
    }
    for (const auto& ss : rs["scopeSpans"]) {
      if (!ss.contains("spans") || !ss["spans"].is_array()) {
        bad.push_back("scopeSpans without spans");
        continue;
      }
      for (const auto& s : ss["spans"]) {
        const std::string name = s.value("name", std::string("?"));
        auto id = [&](const char* field, size_t hex_digits, bool required) {
          if (!s.contains(field)) {
            if (required) bad.push_back(name + ": missing " + field);
            return;
          }
          if (!s[field].is_string() ||
              !AllOf(s[field].get<std::string>(), hex_digits, hex_digits, IsLowerHex) ||
              s[field].get<std::string>().find_first_not_of('0') == std::string::npos) {
            bad.push_back(name + ": " + field + " must be nonzero lowercase hex");
          }
        };
        id("traceId", 32, true);
        id("spanId", 16, true);
        id("parentSpanId", 16, false);
        if (!s.contains("name") || !s["name"].is_string()) bad.push_back("span without name");
        if (!s.contains("kind") || !s["kind"].is_number_integer() || s["kind"] < 0 ||
            s["kind"] > 5) {
          bad.push_back(name + ": kind must be an integer enum");
        }
        for (const char* t : {"startTimeUnixNano", "endTimeUnixNano"}) {
          if (!s.contains(t) || !s[t].is_string() ||
              !IsDecimal(s[t].get<std::string>())) {
            bad.push_back(name + ": " + t + " must be a decimal string");
          }
        }
        if (bad.empty() && std::stoull(s["endTimeUnixNano"].get<std::string>()) <
                               std::stoull(s["startTimeUnixNano"].get<std::string>())) {
          bad.push_back(name + ": ends before it starts");
        }
        if (s.contains("attributes")) attrs(s["attributes"], name);
        if (s.contains("events")) {
          for (const auto& e : s["events"]) {
            if (!e.contains("timeUnixNano") || !e["timeUnixNano"].is_string()) {
              bad.push_back(name + ": event timeUnixNano");
            }
            if (e.contains("attributes")) attrs(e["attributes"], name + " event");
          }
        }
        if (!s.contains("status") || !s["status"].contains("code") ||
            !s["status"]["code"].is_number_integer() || s["status"]["code"] < 0 ||
            s["status"]["code"] > 2) {
          bad.push_back(name + ": status.code must be an integer enum");
        }
      }
    }
  }
  return bad;
}

// A flattened span of an OTLP JSON document, for structural checks.
struct JsonSpan {
  std::string service, trace_id, span_id, parent_span_id, name;
  int kind = 0;
  int status = 0;
  nlohmann::json attributes;  // key -> the value object's single field value
};

inline std::vector<JsonSpan> FlattenOtlp(const nlohmann::json& doc) {
  std::vector<JsonSpan> out;
  for (const auto& rs : doc["resourceSpans"]) {
    std::string service;
    for (const auto& a : rs["resource"]["attributes"]) {
      if (a["key"] == "service.name") service = a["value"]["stringValue"];
    }
    for (const auto& ss : rs["scopeSpans"]) {
      for (const auto& s : ss["spans"]) {
        JsonSpan j;
        j.service = service;
        j.trace_id = s["traceId"];
        j.span_id = s["spanId"];
        j.parent_span_id = s.value("parentSpanId", std::string());
        j.name = s["name"];
        j.kind = s["kind"];
        j.status = s["status"]["code"];
        j.attributes = nlohmann::json::object();
        for (const auto& a : s["attributes"]) j.attributes[a["key"].get<std::string>()] = a["value"].begin().value();
        out.push_back(std::move(j));
      }
    }
  }
  return out;
}

}  // namespace faultline::observe::testing
