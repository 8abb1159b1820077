// Where `faultline bench outbox` appends events and where its relays read them from:
//   kv      the LocalStore outbox (outbox/outbox.h) in the --store URI's key-value table
//   table   the native outbox table (outbox/sql_outbox.h) in the --store URI's database, appended
//           on a connection of the bench's own, as a service would in its own transaction
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/outbox/relay.h"

namespace faultline::app {

// One producer's way in: used by one thread at a time.
class OutboxAppender {
 public:
  virtual ~OutboxAppender() = default;
  // Appends `batch` in one transaction, committed when this returns ok. The table backend on
  // PostgreSQL writes it with AppendPostgresBatch (one multi-row INSERT per 1,000 events), on
  // SQLite with AppendSqlite per event (no round trips to save).
  virtual Status AppendBatch(const std::vector<outbox::Message>& batch) = 0;
};

class OutboxBackend {
 public:
  virtual ~OutboxBackend() = default;
  // An appender on a connection of its own (kv: on the store's connection pool).
  virtual Result<std::unique_ptr<OutboxAppender>> NewAppender() = 0;
  // A source for one relay thread (its own connection where the backend has connections).
  virtual Result<std::unique_ptr<outbox::OutboxSource>> NewSource() = 0;
  // Removes what the run left (the kv counter; nothing for tables, whose rows were deleted).
  virtual Status Cleanup() = 0;
};

// `kind` "kv" or "table"; `store_uri` as OpenStore takes it; `table` the kv table, or the prefix of
// the outbox table's name ("<table>_outbox"). `run` makes the kv prefix unique. kInvalidArgument
// for an unknown kind or URI, kUnavailable for an unreachable database. The table backend starts by
// deleting rows a crashed earlier run left in its table.
Result<std::unique_ptr<OutboxBackend>> OpenOutboxBackend(const std::string& kind,
                                                         const std::string& store_uri,
                                                         const std::string& table,
                                                         const std::string& run,
                                                         uint32_t connections_max);

}  // namespace faultline::app
