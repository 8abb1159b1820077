// Helpers shared by the etcd lease tests: a RealEnv driven by the test thread, service options
// with short timeouts, unique key prefixes, running one call to completion.
#pragma once

#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/adapters/etcd_lease.h"
#include "faultline/core/assert.h"
#include "faultline/runtime/real_env.h"

namespace faultline::adapters::etcd_test {

using runtime::RealEnv;

inline std::unique_ptr<RealEnv> OpenEnv(uint32_t self) {
  runtime::RealEnvOptions o;
  o.self = NodeId(self);
  o.peers = {runtime::Peer{NodeId(self), 0, false}};
  auto env = RealEnv::Open(o);
  FL_ASSERT(env.ok());
  return std::move(env).value();
}

inline EtcdLeaseOptions Options(std::vector<std::string> endpoints, const std::string& prefix) {
  EtcdLeaseOptions o;
  o.endpoints = std::move(endpoints);
  o.key_prefix = prefix;
  o.request_timeout = Duration::Millis(300);
  o.connect_timeout = Duration::Millis(100);
  return o;
}

inline std::string UniquePrefix(const char* test) {
  static int n = 0;
  return std::string("/etcd-lease-test/") + std::to_string(getpid()) + "/" + test + "/" +
         std::to_string(n++) + "/";
}

template <typename T>
Task<void> Capture(Task<T> task, std::shared_ptr<std::optional<T>> out) {
  T value = co_await std::move(task);
  out->emplace(std::move(value));
}

// Runs `task` on `env` (driven by this thread) until it finishes or `limit` passes.
template <typename T>
inline std::optional<T> RunOn(RealEnv& env, Task<T> task, Duration limit = Duration::Seconds(10)) {
  auto out = std::make_shared<std::optional<T>>();
  env.Spawn(Capture(std::move(task), out));
  const MonoTime end = env.clock().Now() + limit;
  while (!out->has_value() && env.clock().Now() < end) env.RunFor(Duration::Millis(1));
  return *out;
}

}  // namespace faultline::adapters::etcd_test
