// The outbox end to end on real servers: a producer commits events through the transactional
// outbox on PostgreSQL (some of its transactions roll back), the relay runs as a separate process
// (outbox_relay_worker) publishing them to NATS JetStream, and a consumer applies them through the
// inbox on PostgreSQL. Mid-stream the relay crashes right after a publish and before marking it
// (its own SIGKILL), is SIGKILLed again from outside at an arbitrary moment, and nats-server is
// killed with SIGKILL and restarted on its store. Afterwards, judged from what was committed and
// what the consumer recorded:
//   - every committed event applied exactly once (one inbox-guarded row per event id, and the
//     per-key counters equal the producer's);
//   - nothing published for a rolled-back transaction (no delivery of a rolled-back id, ever);
//   - per-key order kept: the stream stored each key's events in commit order, and each event once
//     (one stream sequence per id: the relay's republishes were de-duplicated by Nats-Msg-Id);
//   - the outbox drained (every event marked after its publish).
// The consumer applies a key's events in order (a per-key sequence in the payload; a delivery
// ahead of its key's next one is left unacked, and comes back after ack_wait): the contract says
// redeliveries may overtake, and this is how a consumer keeps per-key order across them.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "faultline/adapters/nats_broker.h"
#include "faultline/adapters/postgres_store.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/idempotency/inbox.h"
#include "faultline/outbox/outbox.h"
#include "faultline/outbox/sql_outbox.h"
#include "tests/integration/e2e_consumer.h"
#include "tests/integration/nats_test_server.h"
#include "tests/integration/pg_test_server.h"

namespace faultline {
namespace {

using namespace std::chrono_literals;
using testing::NatsTestServer;

constexpr int kEvents = 2000;  // transactions; every 7th rolls back
constexpr int kKeys = 16;

// The relay process: started, SIGKILLed, restarted; reaped by the destructor.
class RelayProcess {
 public:
  RelayProcess(std::vector<std::string> args, std::string log)
      : args_(std::move(args)), log_(std::move(log)) {}
  ~RelayProcess() { Kill(); }

  Status Start(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {FAULTLINE_OUTBOX_RELAY_WORKER};
    argv.insert(argv.end(), args_.begin(), args_.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    FL_ASSIGN_OR_RETURN(pid_, testing::SpawnWithDeathSignal(argv, log_));
    ++starts_;
    return Status::Ok();
  }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  // The wait status once the process has exited by itself, else nullopt.
  std::optional<int> Exited() {
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    return std::nullopt;
  }
  int starts() const { return starts_; }
  const std::string& log() const { return log_; }

 private:
  std::vector<std::string> args_;
  std::string log_;
  pid_t pid_ = -1;
  int starts_ = 0;
};

std::unique_ptr<PostgresStore> OpenPg(const std::string& conninfo, const std::string& table) {
  PostgresStoreOptions options;
  options.conninfo = conninfo;
  options.table = table;
  options.connections_max = 4;
  auto store = PostgresStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

// A libpq connection for the native producer (closed by the destructor).
class PgConn {
 public:
  explicit PgConn(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {}
  ~PgConn() { PQfinish(conn_); }
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;
  bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(conn_); }
  PGconn* get() const { return conn_; }
  Status Exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    const bool good = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return good ? Status::Ok() : UnavailableError(sql + ": " + error());
  }
  // The first column of the first row.
  Result<std::string> Value(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    Result<std::string> out = UnavailableError(sql + ": " + error());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
      out = std::string(PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
  }

 private:
  PGconn* conn_;
};

// What a producer committed and rolled back, recorded as it goes (threads may share it).
class E2eProducer {
 public:
  virtual ~E2eProducer() = default;
  // Runs kEvents transactions: each bumps its key's counter and appends the event announcing the
  // new value; every 7th appends and rolls back instead.
  virtual void Run() = 0;
  // Events still in the outbox (SIZE_MAX when it cannot be read).
  virtual size_t OutboxRows() = 0;

  std::atomic<int> done{0};
  std::mutex mu;
  std::set<std::string> committed_ids, rolled_back_ids;  // guarded by mu
  std::map<std::string, int> committed_per_key;          // guarded by mu
  Status failure;                                        // guarded by mu

 protected:
  static std::string Key(int i) { return "k" + std::to_string(i % kKeys); }
  void Record(int i, bool committed, const Status& status) {
    std::lock_guard<std::mutex> lock(mu);
    if (!status.ok()) {
      if (failure.ok()) failure = status;
    } else if (committed) {
      committed_ids.insert("ev-" + std::to_string(i));
      ++committed_per_key[Key(i)];
    } else {
      rolled_back_ids.insert("rb-" + std::to_string(i));
    }
    done.fetch_add(1);
  }
  bool Failed() {
    std::lock_guard<std::mutex> lock(mu);
    return !failure.ok();
  }
};

// The LocalStore outbox (outbox/outbox.h) on a PostgresStore table: one producer thread (its
// appenders are serialized on the outbox counter anyway).
class StoreProducer final : public E2eProducer {
 public:
  explicit StoreProducer(outbox::Outbox& outbox) : outbox_(outbox) {}

  void Run() override {
    for (int i = 0; i < kEvents && !Failed(); ++i) {
      const bool commit = i % 7 != 3;
      Record(i, commit, commit ? CommitOne(i) : RollBackOne(i));
    }
  }

  size_t OutboxRows() override {
    auto txn = outbox_.store().Begin();
    if (!txn.ok()) return SIZE_MAX;
    auto rows = txn.value()->Scan("outbox/m", "outbox/n", 100000);
    txn.value()->Rollback();
    return rows.ok() ? rows.value().size() : SIZE_MAX;
  }

 private:
  // RunInTransaction retries a serialization failure at once; against a relay that keeps
  // scanning and deleting outbox rows, PostgreSQL's SSI can cancel every one of those immediate
  // retries (seen once in CI: 64 in a row on a loaded machine). An application backs off before
  // trying again; so does this producer, up to 20 rounds, 1-20 ms apart.
  Status CommitOne(int i) {
    Status s;
    for (int round = 0; round < 20; ++round) {
      s = CommitOnce(i);
      if (s.code() != StatusCode::kAborted) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(1 + round));
    }
    return s;
  }

  Status CommitOnce(int i) {
    const std::string key = Key(i);
    return RunInTransaction(
        outbox_.store(),
        [&](Transaction& txn) -> Status {
          FL_ASSIGN_OR_RETURN(std::optional<std::string> count, txn.Get("count/" + key));
          const int n = (count ? std::atoi(count->c_str()) : 0) + 1;
          FL_RETURN_IF_ERROR(txn.Put("count/" + key, std::to_string(n)));
          outbox::Message m{"ev-" + std::to_string(i), "acct.transfer", key, EncodeE2ePayload(n)};
          return outbox_.Append(txn, m).status();
        },
        64);
  }

  Status RollBackOne(int i) {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, outbox_.store().Begin());
    outbox::Message m{"rb-" + std::to_string(i), "acct.transfer", Key(i),
                      EncodeE2ePayload(1000000)};
    FL_RETURN_IF_ERROR(outbox_.Append(*txn, m).status());
    txn->Rollback();
    return Status::Ok();
  }

  outbox::Outbox& outbox_;
};

// The native outbox table (outbox/sql_outbox.h) in the producer's own libpq transactions, from
// `threads` threads at once. A key's counter row is upserted first in each transaction, so
// transactions of one key are serialized by its row lock (the application's part of per-key
// order); every 5th keeps its transaction open 3 ms after appending, so later seqs often commit
// first.
class NativeProducer final : public E2eProducer {
 public:
  NativeProducer(std::string conninfo, std::string table, int threads)
      : conninfo_(std::move(conninfo)), table_(std::move(table)), threads_(threads) {}

  Status Setup() {
    PgConn conn(conninfo_);
    if (!conn.ok()) return UnavailableError("connect: " + conn.error());
    outbox::SqlOutboxOptions options;
    options.table = table_;
    FL_RETURN_IF_ERROR(outbox::CreatePostgresOutbox(conn.get(), options));
    return conn.Exec("CREATE TABLE " + table_ + "_counts (key text PRIMARY KEY, n int NOT NULL)");
  }

  void Run() override {
    std::vector<std::thread> threads;
    for (int t = 0; t < threads_; ++t) {
      threads.emplace_back([this, t] {
        PgConn conn(conninfo_);
        for (int i = t; i < kEvents && !Failed(); i += threads_) {
          const bool commit = i % 7 != 3;
          Record(i, commit, conn.ok() ? One(conn, i, commit) : UnavailableError(conn.error()));
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }

  size_t OutboxRows() override {
    PgConn conn(conninfo_);
    Result<std::string> count = conn.Value("SELECT count(*) FROM " + table_);
    return count.ok() ? std::stoul(count.value()) : SIZE_MAX;
  }

 private:
  Status One(PgConn& conn, int i, bool commit) {
    FL_RETURN_IF_ERROR(conn.Exec("BEGIN"));
    Result<std::string> n = conn.Value("INSERT INTO " + table_ + "_counts VALUES ('" + Key(i) +
                                       "', 1) ON CONFLICT (key) DO UPDATE SET n = " + table_ +
                                       "_counts.n + 1 RETURNING n");
    if (!n.ok()) return n.status();
    outbox::SqlOutboxOptions options;
    options.table = table_;
    const std::string id = (commit ? "ev-" : "rb-") + std::to_string(i);
    outbox::Message m{id, "acct.transfer", Key(i), EncodeE2ePayload(std::stoi(n.value()))};
    FL_RETURN_IF_ERROR(outbox::AppendPostgres(conn.get(), m, options).status());
    if (i % 5 == 0) std::this_thread::sleep_for(3ms);
    return conn.Exec(commit ? "COMMIT" : "ROLLBACK");
  }

  const std::string conninfo_;
  const std::string table_;
  const int threads_;
};

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::string line, out;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  for (size_t i = lines.size() > 8 ? lines.size() - 8 : 0; i < lines.size(); ++i) {
    out += lines[i] + "\n";
  }
  return out;
}

// Drives the relay and the servers through the faults (see the file comment) while `producer`
// runs; returns once the producer finished.
void ProduceThroughFaults(E2eProducer& producer, RelayProcess& relay, NatsTestServer& nats) {
  ASSERT_TRUE(relay.Start({"--crash-after-publishes=5"}).ok());
  std::thread producer_thread([&] { producer.Run(); });
  // 1. The relay crashes between its 5th acknowledged publish and marking it.
  std::optional<int> exit;
  EXPECT_TRUE(WaitFor([&] { return (exit = relay.Exited()).has_value(); }, 60s))
      << "the relay never reached its 5th publish:\n"
      << Tail(relay.log());
  EXPECT_TRUE(exit && WIFSIGNALED(*exit) && WTERMSIG(*exit) == SIGKILL) << Tail(relay.log());
  EXPECT_TRUE(relay.Start({}).ok());
  // 2. SIGKILL from outside, wherever it is.
  WaitFor([&] { return producer.done.load() >= kEvents * 2 / 5; }, 60s);
  relay.Kill();
  EXPECT_TRUE(relay.Start({}).ok());
  // 3. nats-server killed with SIGKILL and restarted on its store while events flow.
  WaitFor([&] { return producer.done.load() >= kEvents * 7 / 10; }, 60s);
  EXPECT_TRUE(nats.Kill().ok());
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(nats.Restart().ok());
  producer_thread.join();
}

void Judge(E2eProducer& producer, E2eConsumer& consumer, const RelayProcess& relay) {
  const E2eReport report = consumer.Report();
  const size_t committed = producer.committed_ids.size();
  std::printf(
      "e2e: committed %zu, rolled back %zu, deliveries %zu (redeliveries %zu), inbox "
      "duplicates %zu, held back for order %zu, relay starts %d\n",
      committed, producer.rolled_back_ids.size(), report.deliveries, report.redeliveries,
      report.duplicates, report.held_back, relay.starts());
  EXPECT_TRUE(report.violations.empty()) << report.violations.front();
  EXPECT_EQ(report.applied_ids, producer.committed_ids);
  for (const std::string& id : producer.rolled_back_ids) {
    EXPECT_EQ(report.seen_ids.count(id), 0u) << "published for a rolled-back transaction: " << id;
  }
  auto stored = consumer.StoredState();
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(stored.value().applied_rows, committed) << "applied rows in PostgreSQL";
  EXPECT_EQ(stored.value().per_key, producer.committed_per_key);
  EXPECT_GE(report.deliveries, committed);
}

// The whole run for one outbox kind: `source` is the relay worker's --source, `table` its table.
void RunEndToEnd(const std::string& conninfo, NatsTestServer& nats, E2eProducer& producer,
                 const std::string& source, const std::string& table) {
  auto inbox_store = OpenPg(conninfo, testing::UniqueTableName());
  ASSERT_NE(inbox_store, nullptr);
  NatsBrokerOptions nats_options;
  nats_options.url = nats.url();
  nats_options.ack_wait = Duration::Seconds(2);
  E2eConsumer consumer(nats_options, *inbox_store);
  ASSERT_TRUE(consumer.Init().ok());
  RelayProcess relay({"--pg=" + conninfo, "--table=" + table, "--source=" + source,
                      "--nats=" + nats.url(), "--batch=64", "--parent=" + std::to_string(getpid())},
                     nats.dir() + "/relay.log");
  std::thread consumer_thread([&] { consumer.Run(); });
  ProduceThroughFaults(producer, relay, nats);
  EXPECT_TRUE(producer.failure.ok()) << producer.failure.ToString();
  const size_t committed = producer.committed_ids.size();
  EXPECT_TRUE(WaitFor([&] { return consumer.applied() >= committed; }, 120s))
      << "applied " << consumer.applied() << " of " << committed << "\n"
      << Tail(relay.log());
  EXPECT_TRUE(WaitFor([&] { return producer.OutboxRows() == 0; }, 30s))
      << producer.OutboxRows() << " events never marked";
  std::this_thread::sleep_for(2500ms);  // past ack_wait: late redeliveries are absorbed too
  consumer.Stop();
  consumer_thread.join();
  relay.Kill();
  std::printf("relay log (last lines):\n%s", Tail(relay.log()).c_str());
  Judge(producer, consumer, relay);
}

TEST(OutboxNatsE2eTest, LocalStoreOutboxThroughRelayAndNatsCrashesIsExactlyOnceAndInOrder) {
  auto nats = NatsTestServer::Start();
  ASSERT_TRUE(nats.ok()) << nats.status().ToString();
  auto conninfo = testing::SharedPgConninfo();
  ASSERT_TRUE(conninfo.ok()) << conninfo.status().ToString();
  const std::string table = testing::UniqueTableName();
  auto producer_store = OpenPg(conninfo.value(), table);
  ASSERT_NE(producer_store, nullptr);
  auto outbox = outbox::Outbox::Create(*producer_store);
  ASSERT_TRUE(outbox.ok());
  StoreProducer producer(*outbox.value());
  RunEndToEnd(conninfo.value(), *nats.value(), producer, "store", table);
}

// Concurrent producers on the native table commit out of seq order (some hold their transaction
// open a moment after appending): the relay's pg_snapshot_xmin rule must neither skip a late
// committer nor reorder a key.
TEST(OutboxNatsE2eTest, NativePostgresOutboxWithConcurrentProducersIsExactlyOnceAndInOrder) {
  auto nats = NatsTestServer::Start();
  ASSERT_TRUE(nats.ok()) << nats.status().ToString();
  auto conninfo = testing::SharedPgConninfo();
  ASSERT_TRUE(conninfo.ok()) << conninfo.status().ToString();
  const std::string table = testing::UniqueTableName();
  NativeProducer producer(conninfo.value(), table, /*threads=*/4);
  const Status ready = producer.Setup();
  ASSERT_TRUE(ready.ok()) << ready.ToString();
  RunEndToEnd(conninfo.value(), *nats.value(), producer, "native", table);
}

}  // namespace
}  // namespace faultline
