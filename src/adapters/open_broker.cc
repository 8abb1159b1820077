#include "faultline/outbox/open_broker.h"

#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "faultline/outbox/sqlite_queue.h"

namespace faultline::outbox {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, BrokerFactory, std::less<>> factories;
};

Registry& Schemes() {
  static Registry* registry = new Registry();
  return *registry;
}

std::string Shown(std::string_view uri) {
  std::string shown(uri.substr(0, 64));
  for (char& c : shown) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return shown;
}

Status ParseSqliteParam(std::string_view param, SqliteQueueOptions& options) {
  if (param == "synchronous=full") {
    options.synchronous = SqliteSynchronous::kFull;
  } else if (param == "synchronous=normal") {
    options.synchronous = SqliteSynchronous::kNormal;
  } else if (param.substr(0, 12) == "ack_wait_ms=") {
    const std::string_view digits = param.substr(12);
    uint64_t ms = 0;
    if (digits.empty() || digits.size() > 9) {
      return InvalidArgumentError("broker URI: ack_wait_ms must be 1..999999999");
    }
    for (char c : digits) {
      if (c < '0' || c > '9')
        return InvalidArgumentError("broker URI: ack_wait_ms is not a number");
      ms = ms * 10 + static_cast<uint64_t>(c - '0');
    }
    if (ms == 0) return InvalidArgumentError("broker URI: ack_wait_ms must be 1..999999999");
    options.ack_wait = Duration::Millis(static_cast<int64_t>(ms));
  } else {
    return InvalidArgumentError("broker URI: unknown sqlite parameter \"" + std::string(param) +
                                "\" (known: synchronous=full|normal, ack_wait_ms=N)");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Broker>> OpenSqlite(std::string_view rest) {
  SqliteQueueOptions options;
  const size_t query = rest.find('?');
  options.path = std::string(rest.substr(0, query));
  if (options.path.empty()) return InvalidArgumentError("broker URI sqlite:PATH needs a PATH");
  if (query != std::string_view::npos) {
    std::string_view params = rest.substr(query + 1);
    while (!params.empty()) {
      const size_t amp = params.find('&');
      FL_RETURN_IF_ERROR(ParseSqliteParam(params.substr(0, amp), options));
      params = amp == std::string_view::npos ? std::string_view() : params.substr(amp + 1);
    }
  }
  FL_ASSIGN_OR_RETURN(std::unique_ptr<SqliteQueue> queue, SqliteQueue::Open(std::move(options)));
  return std::unique_ptr<Broker>(std::move(queue));
}

}  // namespace

void RegisterBrokerScheme(std::string_view scheme, BrokerFactory open) {
  Registry& registry = Schemes();
  std::lock_guard<std::mutex> lock(registry.mu);
  registry.factories[std::string(scheme)] = std::move(open);
}

Result<std::unique_ptr<Broker>> OpenBroker(std::string_view uri) {
  constexpr std::string_view kSqlite = "sqlite:";
  if (uri.substr(0, kSqlite.size()) == kSqlite) return OpenSqlite(uri.substr(kSqlite.size()));
  BrokerFactory factory;
  {
    Registry& registry = Schemes();
    std::lock_guard<std::mutex> lock(registry.mu);
    for (const auto& [scheme, open] : registry.factories) {
      if (uri.substr(0, scheme.size()) == scheme) factory = open;
    }
  }
  if (factory) return factory(uri);
  if (uri.substr(0, 7) == "nats://") {
    return InvalidArgumentError("broker URI \"" + Shown(uri) +
                                "\": NATS support is not built into this binary");
  }
  return InvalidArgumentError("broker URI \"" + Shown(uri) + "\" is not sqlite:PATH or nats://...");
}

}  // namespace faultline::outbox
