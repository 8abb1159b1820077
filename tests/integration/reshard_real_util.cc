#include "tests/integration/reshard_real_util.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "faultline/adapters/open_store.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/core/random.h"
#include "tests/integration/pg_test_server.h"

namespace faultline::testing {

using shard::Directory;
using shard::KeyMode;
using shard::OwnedRange;
using shard::RangeState;
using shard::ShardId;
using shard::ShardMap;
using shard::ShardStore;

std::string WithDbname(const std::string& uri, const std::string& dbname) {
  const size_t scheme = uri.find("://");
  const size_t slash = uri.find('/', scheme + 3);
  const size_t query = uri.find('?', scheme + 3);
  const std::string tail = query == std::string::npos ? "" : uri.substr(query);
  const std::string head =
      slash == std::string::npos || (query != std::string::npos && slash > query)
          ? uri.substr(0, query)
          : uri.substr(0, slash);
  return head + "/" + dbname + tail;
}

namespace {

Status PgExec(const std::string& uri, const std::string& sql) {
  PGconn* conn = PQconnectdb(uri.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string error = PQerrorMessage(conn);
    PQfinish(conn);
    return UnavailableError("connect: " + error);
  }
  PGresult* res = PQexec(conn, sql.c_str());
  const bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  const std::string error = PQerrorMessage(conn);
  PQclear(res);
  PQfinish(conn);
  return ok ? Status::Ok() : UnavailableError(sql + ": " + error);
}

}  // namespace

Result<ReshardDbs> MakeReshardDbs(std::string_view kind) {
  ReshardDbs dbs;
  dbs.kind = std::string(kind);
  dbs.dir_table = UniqueTableName();
  dbs.a_table = UniqueTableName();
  dbs.b_table = UniqueTableName();
  if (kind == "sqlite") {
    dbs.dir = std::make_shared<TempDir>();
    const std::string base = "sqlite:" + dbs.dir->path();
    dbs.dir_uri = base + "/directory.db?synchronous=normal";
    dbs.a_uri = base + "/shard1.db?synchronous=normal";
    dbs.b_uri = base + "/shard2.db?synchronous=normal";
  } else if (kind == "postgres") {
    FL_ASSIGN_OR_RETURN(const std::string conninfo, SharedPgConninfo());
    dbs.dir_uri = dbs.a_uri = PgUri(conninfo);
    dbs.created_db = "fl_reshard_" + std::to_string(getpid()) + "_" + UniqueTableName();
    FL_RETURN_IF_ERROR(PgExec(dbs.a_uri, "CREATE DATABASE " + dbs.created_db));
    dbs.b_uri = WithDbname(dbs.a_uri, dbs.created_db);
  } else {
    return InvalidArgumentError("unknown store kind " + std::string(kind));
  }
  return dbs;
}

void DropCreated(const ReshardDbs& dbs) {
  if (dbs.created_db.empty()) return;
  PgExec(dbs.a_uri, "DROP DATABASE IF EXISTS " + dbs.created_db + " WITH (FORCE)").IgnoreError();
}

shard::ShardResolver ReshardStores::resolver() const {
  ShardStore* a_store = sa.get();
  ShardStore* b_store = sb.get();
  return [a_store, b_store](ShardId id) -> Result<ShardStore*> {
    if (id == ShardId(1)) return a_store;
    if (id == ShardId(2)) return b_store;
    return NotFoundError("no shard " + std::to_string(id.value()));
  };
}

Result<ReshardStores> OpenReshardStores(const ReshardDbs& dbs, uint32_t connections_max) {
  auto open = [&](const std::string& uri, const std::string& table) {
    OpenStoreOptions options;
    options.table = table;
    options.connections_max = connections_max;
    return OpenStore(uri, options);
  };
  ReshardStores s;
  FL_ASSIGN_OR_RETURN(s.dir, open(dbs.dir_uri, dbs.dir_table));
  FL_ASSIGN_OR_RETURN(s.a, open(dbs.a_uri, dbs.a_table));
  FL_ASSIGN_OR_RETURN(s.b, open(dbs.b_uri, dbs.b_table));
  s.sa = std::make_unique<ShardStore>(*s.a);
  s.sb = std::make_unique<ShardStore>(*s.b);
  return s;
}

std::string RowKey(uint64_t i) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "k%08llu", static_cast<unsigned long long>(i));
  return buf;
}

Status InitReshard(ReshardStores& stores, uint64_t rows) {
  Directory directory(*stores.dir);
  FL_ASSIGN_OR_RETURN(ShardMap map,
                      ShardMap::Single(KeyMode::kRange, ShardId(1)).AddShard(ShardId(2)));
  FL_RETURN_IF_ERROR(directory.Initialize(map));
  FL_RETURN_IF_ERROR(stores.sa->SetRange({"", "", Epoch(1), RangeState::kServing}).status());
  for (uint64_t done = 0; done < rows;) {
    const uint64_t end = std::min(rows, done + 2000);
    FL_RETURN_IF_ERROR(RunInTransaction(*stores.a, [&](Transaction& txn) -> Status {
      for (uint64_t i = done; i < end; ++i) {
        const Status s = stores.sa->Write(txn, RowKey(i), "init", Epoch(1));
        if (!s.ok()) return s;
      }
      return Status::Ok();
    }));
    done = end;
  }
  return Status::Ok();
}

Writers::Writers(ReshardStores& stores, int threads, uint64_t rows, Duration window)
    : stores_(&stores),
      threads_(threads),
      rows_(rows),
      window_(window),
      last_(threads),
      waits_(threads) {}

Writers::~Writers() { Stop(); }

void Writers::Start() {
  for (int t = 0; t < threads_; ++t) running_.emplace_back([this, t] { Loop(t); });
}

void Writers::Stop() {
  stop_.store(true);
  for (std::thread& th : running_) th.join();
  running_.clear();
}

void Writers::Loop(int t) {
  Directory directory(*stores_->dir);
  shard::ShardClient client(
      directory, stores_->resolver(), SystemClock::Default(),
      [](Duration d) { std::this_thread::sleep_for(std::chrono::nanoseconds(d.nanos())); },
      {window_, Duration::Millis(1), 1000 + static_cast<uint64_t>(t)});
  auto fail = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    errors_.push_back("writer " + std::to_string(t) + ": " + what);
  };
  if (Status s = client.Init(); !s.ok()) return fail(s.ToString());
  Rng rng(1000 + static_cast<uint64_t>(t));
  const uint64_t mine = (rows_ + static_cast<uint64_t>(threads_) - 1 - static_cast<uint64_t>(t)) /
                        static_cast<uint64_t>(threads_);
  for (uint64_t seq = 1; !stop_.load(); ++seq) {
    const uint64_t i =
        (rng.Next() % mine) * static_cast<uint64_t>(threads_) + static_cast<uint64_t>(t);
    const std::string key = RowKey(i);
    const std::string value = std::to_string(t) + "-" + std::to_string(seq);
    const Status s = client.Write(key, value);
    if (!s.ok()) {
      fail(key + ": " + s.ToString());
      continue;  // the write's outcome is unknown only for kUnavailable; we stop checking it
    }
    last_[static_cast<size_t>(t)][key] = value;
    waits_[static_cast<size_t>(t)].push_back(client.last_wait().nanos());
    acked_.fetch_add(1);
  }
}

std::vector<int64_t> Writers::waits() const {
  std::vector<int64_t> out;
  for (const auto& w : waits_) out.insert(out.end(), w.begin(), w.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, std::string> Writers::Expected() const {
  std::map<std::string, std::string> out;
  for (const auto& m : last_) out.insert(m.begin(), m.end());
  return out;
}

namespace {

Result<std::map<std::string, std::string>> AllRows(ShardStore& s) {
  std::map<std::string, std::string> out;
  std::string from;
  for (;;) {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, s.store().Begin());
    FL_ASSIGN_OR_RETURN(std::vector<KeyValue> page, s.ScanRows(*txn, from, "", 10000));
    txn->Rollback();
    for (KeyValue& kv : page) out[kv.key] = kv.value;
    if (page.size() < 10000) return out;
    from = page.back().key + std::string(1, '\0');
  }
}

}  // namespace

Status CheckNothingLostOrDuplicated(ReshardStores& stores, const std::string& begin,
                                    const std::map<std::string, std::string>& expected,
                                    uint64_t rows, bool completed) {
  FL_ASSIGN_OR_RETURN(ShardMap map, Directory(*stores.dir).Load());
  for (const auto& [key, value] : expected) {
    const shard::Route route = map.RouteKey(key);
    ShardStore& owner = route.shard == ShardId(1) ? *stores.sa : *stores.sb;
    FL_ASSIGN_OR_RETURN(std::optional<std::string> got, owner.Read(key, route.epoch));
    if (got != value) {
      return DataLossError("lost write: " + key + " = " + value + " acknowledged, read " +
                           got.value_or("<absent>") + " from shard " +
                           std::to_string(route.shard.value()));
    }
  }
  FL_ASSIGN_OR_RETURN(auto a_rows, AllRows(*stores.sa));
  FL_ASSIGN_OR_RETURN(auto b_rows, AllRows(*stores.sb));
  uint64_t owned = 0;
  for (const auto& [key, value] : a_rows) {
    if (key < begin)
      ++owned;
    else if (completed)
      return DataLossError("duplicate: moved key " + key + " left on shard 1");
  }
  for (const auto& [key, value] : b_rows) {
    if (key < begin) return DataLossError("duplicate: key " + key + " outside the move on shard 2");
    ++owned;
  }
  if (owned != rows) {
    return DataLossError("the owners hold " + std::to_string(owned) + " rows, expected " +
                         std::to_string(rows));
  }
  return Status::Ok();
}

Status CheckNoWriteAfterFence(ReshardStores& stores, const std::string& begin, uint64_t fence_seq) {
  if (fence_seq == 0) return FailedPreconditionError("the move never fenced");
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, stores.a->Begin());
  FL_ASSIGN_OR_RETURN(std::vector<shard::LogEntry> late,
                      stores.sa->ReadLog(*txn, fence_seq, UINT64_MAX, 100000));
  txn->Rollback();
  for (const shard::LogEntry& e : late) {
    if (e.key >= begin) {
      return DataLossError("shard 1 accepted a write to " + e.key + " after the fence (seq " +
                           std::to_string(e.seq) + ")");
    }
  }
  return Status::Ok();
}

}  // namespace faultline::testing
