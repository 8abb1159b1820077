#include "faultline/adapters/open_store.h"

#include <string>
#include <utility>

#include "faultline/adapters/postgres_store.h"
#include "faultline/adapters/sqlite_store.h"

namespace faultline {
namespace {

Result<std::unique_ptr<LocalStore>> OpenSqlite(std::string_view rest,
                                               const OpenStoreOptions& options) {
  SqliteStoreOptions sqlite;
  sqlite.table = options.table;
  sqlite.connections_max = options.connections_max;
  const size_t query = rest.find('?');
  sqlite.path = std::string(rest.substr(0, query));
  if (sqlite.path.empty()) return InvalidArgumentError("store URI sqlite:PATH needs a PATH");
  if (query != std::string_view::npos) {
    std::string_view params = rest.substr(query + 1);
    while (!params.empty()) {
      const size_t amp = params.find('&');
      const std::string_view param = params.substr(0, amp);
      params = amp == std::string_view::npos ? std::string_view() : params.substr(amp + 1);
      if (param == "synchronous=full") {
        sqlite.synchronous = SqliteSynchronous::kFull;
      } else if (param == "synchronous=normal") {
        sqlite.synchronous = SqliteSynchronous::kNormal;
      } else {
        return InvalidArgumentError("store URI: unknown sqlite parameter \"" + std::string(param) +
                                    "\" (known: synchronous=full|normal)");
      }
    }
  }
  FL_ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> store, SqliteStore::Open(std::move(sqlite)));
  return std::unique_ptr<LocalStore>(std::move(store));
}

}  // namespace

Result<std::unique_ptr<LocalStore>> OpenStore(std::string_view uri,
                                              const OpenStoreOptions& options) {
  constexpr std::string_view kSqlite = "sqlite:";
  if (uri.substr(0, kSqlite.size()) == kSqlite) {
    return OpenSqlite(uri.substr(kSqlite.size()), options);
  }
  if (uri.substr(0, 13) == "postgresql://" || uri.substr(0, 11) == "postgres://") {
    PostgresStoreOptions pg;
    pg.conninfo = std::string(uri);
    pg.table = options.table;
    pg.connections_max = options.connections_max;
    FL_ASSIGN_OR_RETURN(std::unique_ptr<PostgresStore> store, PostgresStore::Open(std::move(pg)));
    return std::unique_ptr<LocalStore>(std::move(store));
  }
  std::string shown(uri.substr(0, 64));
  for (char& c : shown) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return InvalidArgumentError("store URI \"" + shown +
                              "\" is neither sqlite:PATH nor postgresql://...");
}

}  // namespace faultline
