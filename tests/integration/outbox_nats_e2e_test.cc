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

// Commits kEvents transactions, each bumping its key's counter and appending the event that
// announces it; every 7th appends and rolls back instead.
struct Producer {
  outbox::Outbox* outbox = nullptr;
  std::atomic<int> done{0};
  std::map<std::string, int> committed_per_key;  // read after the thread is joined
  std::set<std::string> committed_ids, rolled_back_ids;
  Status failure;

  Status CommitOne(int i) {
    const std::string key = "k" + std::to_string(i % kKeys);
    const std::string id = "ev-" + std::to_string(i);
    return RunInTransaction(outbox->store(), [&](Transaction& txn) -> Status {
      FL_ASSIGN_OR_RETURN(std::optional<std::string> count, txn.Get("count/" + key));
      const int n = (count ? std::atoi(count->c_str()) : 0) + 1;
      FL_RETURN_IF_ERROR(txn.Put("count/" + key, std::to_string(n)));
      outbox::Message m{id, "acct.transfer", key, EncodeE2ePayload(n)};
      return outbox->Append(txn, m).status();
    }, 64);
  }

  Status RollBackOne(int i) {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, outbox->store().Begin());
    outbox::Message m{"rb-" + std::to_string(i), "acct.transfer", "k" + std::to_string(i % kKeys),
                      EncodeE2ePayload(1000000)};
    FL_RETURN_IF_ERROR(outbox->Append(*txn, m).status());
    txn->Rollback();
    rolled_back_ids.insert(m.id);
    return Status::Ok();
  }

  void Run() {
    for (int i = 0; i < kEvents && failure.ok(); ++i) {
      if (i % 7 == 3) {
        failure = RollBackOne(i);
      } else {
        failure = CommitOne(i);
        if (failure.ok()) {
          committed_ids.insert("ev-" + std::to_string(i));
          ++committed_per_key["k" + std::to_string(i % kKeys)];
        }
      }
      done.store(i + 1);
    }
  }
};

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

size_t OutboxRows(LocalStore& store) {
  auto txn = store.Begin();
  if (!txn.ok()) return SIZE_MAX;
  auto rows = txn.value()->Scan("outbox/m", "outbox/n", 100000);
  txn.value()->Rollback();
  return rows.ok() ? rows.value().size() : SIZE_MAX;
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

TEST(OutboxNatsE2eTest, RelayAndNatsCrashesLoseNothingDuplicateNothingAndKeepKeyOrder) {
  auto nats = NatsTestServer::Start();
  ASSERT_TRUE(nats.ok()) << nats.status().ToString();
  auto conninfo = testing::SharedPgConninfo();
  ASSERT_TRUE(conninfo.ok()) << conninfo.status().ToString();
  const std::string outbox_table = testing::UniqueTableName();
  const std::string inbox_table = testing::UniqueTableName();
  auto producer_store = OpenPg(conninfo.value(), outbox_table);
  auto inbox_store = OpenPg(conninfo.value(), inbox_table);
  ASSERT_TRUE(producer_store && inbox_store);
  auto outbox = outbox::Outbox::Create(*producer_store);
  ASSERT_TRUE(outbox.ok());

  NatsBrokerOptions nats_options;
  nats_options.url = nats.value()->url();
  nats_options.ack_wait = Duration::Seconds(2);
  E2eConsumer consumer(nats_options, *inbox_store);
  ASSERT_TRUE(consumer.Init().ok());

  RelayProcess relay({"--pg=" + conninfo.value(), "--table=" + outbox_table,
                      "--nats=" + nats.value()->url(), "--batch=64",
                      "--parent=" + std::to_string(getpid())},
                     nats.value()->dir() + "/relay.log");
  ASSERT_TRUE(relay.Start({"--crash-after-publishes=5"}).ok());
  std::thread consumer_thread([&] { consumer.Run(); });
  Producer producer;
  producer.outbox = outbox.value().get();
  std::thread producer_thread([&] { producer.Run(); });

  // 1. The relay crashes between its 5th acknowledged publish and marking it.
  std::optional<int> exit;
  EXPECT_TRUE(WaitFor([&] { return (exit = relay.Exited()).has_value(); }, 60s))
      << "the relay never reached its 5th publish:\n" << Tail(relay.log());
  EXPECT_TRUE(exit && WIFSIGNALED(*exit) && WTERMSIG(*exit) == SIGKILL) << Tail(relay.log());
  ASSERT_TRUE(relay.Start({}).ok());
  // 2. SIGKILL from outside, wherever it is.
  WaitFor([&] { return producer.done.load() >= kEvents * 2 / 5; }, 60s);
  relay.Kill();
  ASSERT_TRUE(relay.Start({}).ok());
  // 3. nats-server killed with SIGKILL and restarted on its store while events flow.
  WaitFor([&] { return producer.done.load() >= kEvents * 7 / 10; }, 60s);
  ASSERT_TRUE(nats.value()->Kill().ok());
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(nats.value()->Restart().ok());

  producer_thread.join();
  ASSERT_TRUE(producer.failure.ok()) << producer.failure.ToString();
  const size_t committed = producer.committed_ids.size();
  EXPECT_TRUE(WaitFor([&] { return consumer.applied() >= committed; }, 120s))
      << "applied " << consumer.applied() << " of " << committed << "\n" << Tail(relay.log());
  EXPECT_TRUE(WaitFor([&] { return OutboxRows(*producer_store) == 0; }, 30s))
      << OutboxRows(*producer_store) << " events never marked";
  std::this_thread::sleep_for(2500ms);  // past ack_wait: late redeliveries are absorbed too
  consumer.Stop();
  consumer_thread.join();
  relay.Kill();

  const E2eReport report = consumer.Report();
  std::printf("relay log (last lines):\n%s", Tail(relay.log()).c_str());
  std::printf("e2e: committed %zu, rolled back %zu, deliveries %zu (redeliveries %zu), inbox "
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

}  // namespace
}  // namespace faultline
