// File: faultline/adapters/open_store.h
//
// OpenStore: a LocalStore from a URI, for tools (`faultline bench --store URI`) and for services
// that take their store from configuration.
//
//   sqlite:PATH[?synchronous=full|normal]   SqliteStore on the file PATH (created when missing);
//                                           synchronous defaults to full
//   postgresql://...  or  postgres://...    PostgresStore; the URI goes to libpq unchanged
//                                           (host, port, user, dbname, sslmode, ...)
//
// Anything else, an empty PATH, or an unknown sqlite parameter is kInvalidArgument with a one-line
// message; a URI libpq cannot parse is kInvalidArgument too. An unreachable server is
// kUnavailable. `table` names the key-value table in either engine.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "faultline/core/status.h"
#include "faultline/store/local_store.h"

namespace faultline {

struct OpenStoreOptions {
  std::string table = "faultline_kv";
  uint32_t connections_max = 8;
};

Result<std::unique_ptr<LocalStore>> OpenStore(std::string_view uri,
                                              const OpenStoreOptions& options = {});

}  // namespace faultline
