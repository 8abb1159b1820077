// Bad input against live databases: unreachable and stopped servers, unopenable and non-database
// files, a record corrupted and a table altered or dropped behind faultline's back. Every case
// must end in a clear, one-line Status of the documented code, and a failed call must leave the
// table exactly as it was (checked through a raw SQL connection, not through faultline).
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>

#include <cstdio>
#include <fstream>

#include "faultline/adapters/open_store.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/idempotency/idempotency_keys.h"
#include "tests/integration/idempotency_real_util.h"
#include "tests/integration/pg_test_server.h"

namespace faultline::testing {
namespace {

std::string StoreName(const ::testing::TestParamInfo<std::string>& param) { return param.param; }

using idempotency::ClaimState;
using idempotency::FingerprintOf;
using idempotency::IdempotencyKeys;

bool OneLine(const Status& s) {
  return !s.message().empty() && s.message().find('\n') == std::string_view::npos;
}

// Raw SQL on the test's table, outside faultline: the "behind its back" of these tests.
class RawSql {
 public:
  explicit RawSql(const RealDb& db) : db_(db) {
    if (db.kind == "postgres") {
      pg_ = PQconnectdb(db.uri.c_str());
    } else {
      const std::string uri = db.uri.substr(7, db.uri.find('?') - 7);
      sqlite3_open(uri.c_str(), &sqlite_);
    }
  }
  ~RawSql() {
    if (pg_ != nullptr) PQfinish(pg_);
    if (sqlite_ != nullptr) sqlite3_close(sqlite_);
  }
  // Runs `sql` with every "{T}" standing for the table name; the first column of the first row.
  std::string Exec(std::string sql) {
    for (size_t at = sql.find("{T}"); at != std::string::npos; at = sql.find("{T}")) {
      sql.replace(at, 3, db_.table);
    }
    if (pg_ != nullptr) {
      PGresult* r = PQexec(pg_, sql.c_str());
      const ExecStatusType st = PQresultStatus(r);
      std::string out;
      if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
      if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        ADD_FAILURE() << sql << ": " << PQerrorMessage(pg_);
      }
      PQclear(r);
      return out;
    }
    std::string out;
    char* err = nullptr;
    auto cb = [](void* o, int, char** values, char**) {
      if (values[0] != nullptr) *static_cast<std::string*>(o) = values[0];
      return 0;
    };
    if (sqlite3_exec(sqlite_, sql.c_str(), cb, &out, &err) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (err ? err : "?");
      sqlite3_free(err);
    }
    return out;
  }
  // Row count and a digest of every (k, v), whatever the column types are now.
  std::string Snapshot() {
    if (pg_ != nullptr) {
      return Exec("SELECT count(*)::text || ':' || md5(coalesce(string_agg(k::text || '=' || "
                  "v::text, ',' ORDER BY k), '')) FROM {T}");
    }
    return Exec("SELECT count(*) || ':' || coalesce(group_concat(hex(k) || '=' || hex(v), ','), '') "
                "FROM (SELECT k, v FROM {T} ORDER BY k)");
  }
  // SQL for the bytes of idempotency record (scope, key) as a literal.
  std::string RecordKeyLiteral(const std::string& scope, const std::string& key) {
    const std::string raw = "idem/" + scope + std::string(1, '\0') + key;
    std::string hex;
    for (unsigned char c : raw) {
      char buf[3];
      std::snprintf(buf, sizeof(buf), "%02x", c);
      hex += buf;
    }
    return pg_ != nullptr ? "'\\x" + hex + "'::bytea" : "x'" + hex + "'";
  }

 private:
  const RealDb& db_;
  PGconn* pg_ = nullptr;
  sqlite3* sqlite_ = nullptr;
};

class IdempotencyRealBadInput : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    Result<RealDb> db = MakeRealDb(Kind());
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
    Result<std::unique_ptr<LocalStore>> store = db_.Open(2);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    keys_ = std::move(IdempotencyKeys::Create(*store_, SystemClock::Default())).value();
    // One completed key and one in progress, so that every failing call has data to damage.
    auto done = keys_->Acquire("s", "done", fp_, Duration::Seconds(60));
    ASSERT_TRUE(done.ok() && done->state == ClaimState::kClaimed);
    ASSERT_TRUE(keys_->Complete("s", "done", done->attempt, "response-done").ok());
    auto held = keys_->Acquire("s", "held", fp_, Duration::Seconds(60));
    ASSERT_TRUE(held.ok() && held->state == ClaimState::kClaimed);
  }

  // "sqlite" or "postgres": the parameter up to its first ':'.
  std::string Kind() const { return GetParam().substr(0, GetParam().find(':')); }

  // Every call on the idempotency keys fails with a code in `codes`, on one line.
  void ExpectEveryCallFails(std::initializer_list<StatusCode> codes) {
    auto check = [&](const Status& s, const char* what) {
      EXPECT_FALSE(s.ok()) << what;
      EXPECT_TRUE(std::find(codes.begin(), codes.end(), s.code()) != codes.end())
          << what << ": " << s.ToString();
      EXPECT_TRUE(OneLine(s)) << what << ": " << s.ToString();
    };
    check(keys_->Acquire("s", "done", fp_, Duration::Seconds(60)).status(), "replay");
    check(keys_->Acquire("s", "held", fp_, Duration::Seconds(60)).status(), "in-progress claim");
    check(keys_->Complete("s", "held", 1, "response-held"), "complete");
    check(keys_->Release("s", "held", 1), "release");
  }

  const idempotency::Fingerprint fp_ = FingerprintOf("POST /bad-input");
  RealDb db_;
  std::unique_ptr<LocalStore> store_;
  std::unique_ptr<IdempotencyKeys> keys_;
};

// A record truncated by one byte behind faultline's back: kDataLoss (the record does not decode),
// for the replay and for the owner's Complete; the table is unchanged afterwards.
TEST_P(IdempotencyRealBadInput, CorruptRecordIsDataLossAndNothingWritten) {
  RawSql raw(db_);
  for (const char* key : {"done", "held"}) {
    const std::string lit = raw.RecordKeyLiteral("s", key);
    raw.Exec(Kind() == "postgres"
                 ? "UPDATE {T} SET v = substring(v from 1 for length(v) - 1) WHERE k = " + lit
                 : "UPDATE {T} SET v = substr(v, 1, length(v) - 1) WHERE k = " + lit);
  }
  const std::string before = raw.Snapshot();
  ExpectEveryCallFails({StatusCode::kDataLoss});
  EXPECT_EQ(raw.Snapshot(), before);
  // Unaffected keys still work.
  auto fresh = keys_->Acquire("s", "fresh", fp_, Duration::Seconds(60));
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(fresh->state, ClaimState::kClaimed);
}

// The value column's type changed behind faultline's back. Every call fails kFailedPrecondition
// (type mismatch) or kDataLoss (a non-binary value read back), on one line; no row is added or
// changed, including by a claim of a new key. Alterations:
//   sqlite:text        SQLite cannot alter a column: the table rebuilt, v a STRICT TEXT column
//                      holding the hex of the old values;
//   postgres:integer   ALTER ... v TYPE integer (no cast from bytea: every write fails);
//   postgres:text      ALTER ... v TYPE text (PostgreSQL casts any type to text on assignment,
//                      so a write must be refused by the store itself, not by the server).
class IdempotencyRealAlteredTable : public IdempotencyRealBadInput {};

TEST_P(IdempotencyRealAlteredTable, AlteredTableIsRefusedAndNothingWritten) {
  RawSql raw(db_);
  if (GetParam() == "postgres:integer") {
    raw.Exec("ALTER TABLE {T} ALTER COLUMN v TYPE integer USING length(v)");
  } else if (GetParam() == "postgres:text") {
    raw.Exec("ALTER TABLE {T} ALTER COLUMN v TYPE text USING encode(v, 'hex')");
  } else {
    raw.Exec("BEGIN; ALTER TABLE {T} RENAME TO {T}_old; "
             "CREATE TABLE {T} (k BLOB PRIMARY KEY NOT NULL, v TEXT NOT NULL) STRICT, WITHOUT ROWID; "
             "INSERT INTO {T} SELECT k, hex(v) FROM {T}_old; DROP TABLE {T}_old; COMMIT");
  }
  const std::string before = raw.Snapshot();
  ExpectEveryCallFails({StatusCode::kFailedPrecondition, StatusCode::kDataLoss});
  const Status claim = keys_->Acquire("s", "new-key", fp_, Duration::Seconds(60)).status();
  EXPECT_TRUE(claim.code() == StatusCode::kFailedPrecondition ||
              claim.code() == StatusCode::kDataLoss)
      << "a claim of a new key in the altered table: " << claim.ToString();
  EXPECT_TRUE(OneLine(claim)) << claim.ToString();
  EXPECT_EQ(raw.Snapshot(), before) << "rows were written into the altered table";
}

INSTANTIATE_TEST_SUITE_P(Alterations, IdempotencyRealAlteredTable,
                         ::testing::Values("sqlite:text", "postgres:integer", "postgres:text"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param;
                           name[name.find(':')] = '_';
                           return name;
                         });

// The table dropped behind faultline's back: kFailedPrecondition on one line, every call.
TEST_P(IdempotencyRealBadInput, DroppedTableIsFailedPrecondition) {
  RawSql raw(db_);
  raw.Exec("DROP TABLE {T}");
  ExpectEveryCallFails({StatusCode::kFailedPrecondition});
  const Status claim = keys_->Acquire("s", "new-key", fp_, Duration::Seconds(60)).status();
  EXPECT_EQ(claim.code(), StatusCode::kFailedPrecondition) << claim.ToString();
}

INSTANTIATE_TEST_SUITE_P(Stores, IdempotencyRealBadInput, ::testing::Values("sqlite", "postgres"),
                         StoreName);

// Nothing listens on 127.0.0.1:1 (loopback only): kUnavailable on one line, quickly.
TEST(IdempotencyRealUnreachable, UnreachableServerIsUnavailable) {
  const Result<std::unique_ptr<LocalStore>> store =
      OpenStore("postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=3");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
  EXPECT_TRUE(OneLine(store.status())) << store.status().ToString();
}

TEST(IdempotencyRealUnreachable, UnopenableSqliteFileIsUnavailable) {
  TempDir dir;
  const Result<std::unique_ptr<LocalStore>> store =
      OpenStore("sqlite:" + dir.path() + "/no/such/dir/db.sqlite");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
  EXPECT_TRUE(OneLine(store.status())) << store.status().ToString();
}

TEST(IdempotencyRealUnreachable, NonDatabaseFileIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/not-a-db";
  std::ofstream(path) << std::string(8192, 'x');
  const Result<std::unique_ptr<LocalStore>> store = OpenStore("sqlite:" + path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kDataLoss) << store.status().ToString();
  EXPECT_TRUE(OneLine(store.status())) << store.status().ToString();
}

// The server stops (clean fast shutdown) while the store is open: every call is kUnavailable on
// one line; after the server is back, the same objects work again and the claim made before the
// outage is still held (its attempt completes).
TEST(IdempotencyRealUnreachable, StoppedServerIsUnavailableThenRecovers) {
  Result<std::unique_ptr<PgTestServer>> server = PgTestServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  OpenStoreOptions options;
  options.table = "idem_stop";
  Result<std::unique_ptr<LocalStore>> store = OpenStore(PgUri((*server)->conninfo()), options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto keys = std::move(IdempotencyKeys::Create(**store, SystemClock::Default())).value();
  const auto fp = FingerprintOf("POST /stop");
  auto held = keys->Acquire("s", "held", fp, Duration::Seconds(60));
  ASSERT_TRUE(held.ok() && held->state == ClaimState::kClaimed);

  ASSERT_TRUE((*server)->Kill(SIGINT).ok());
  for (const Status& s : {keys->Acquire("s", "other", fp, Duration::Seconds(60)).status(),
                          keys->Complete("s", "held", held->attempt, "r"),
                          keys->Release("s", "held", held->attempt)}) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    EXPECT_TRUE(OneLine(s)) << s.ToString();
  }

  ASSERT_TRUE((*server)->Restart().ok());
  auto other = keys->Acquire("s", "other", fp, Duration::Seconds(60));
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ(other->state, ClaimState::kClaimed);
  EXPECT_TRUE(keys->Complete("s", "held", held->attempt, "r").ok());
}

}  // namespace
}  // namespace faultline::testing
