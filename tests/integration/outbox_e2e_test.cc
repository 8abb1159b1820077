// The outbox end to end on real databases: producers commit state and events in one transaction
// (some roll back), a relay process publishes them to the embedded SQLite queue and is SIGKILLed
// and restarted mid-stream (once right after a Publish and before its MarkPublished), and a
// consumer applies them through the inbox, "crashing" now and then before its ack. Every committed
// event must be applied exactly once, in per-key order, and no rolled-back event published.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "faultline/adapters/open_store.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/idempotency/inbox.h"
#include "faultline/outbox/open_broker.h"
#include "faultline/outbox/outbox.h"
#include "faultline/outbox/sqlite_queue.h"
#include "tests/integration/idempotency_real_util.h"

extern char** environ;

namespace faultline::outbox {
namespace {

using faultline::testing::MakeRealDb;
using faultline::testing::RealDb;
using faultline::testing::TempDir;
using SteadyClock = std::chrono::steady_clock;

template <typename T>
T Must(Result<T> result) {
  FL_ASSERT_MSG(result.ok(), result.status().ToString().c_str());
  return std::move(result).value();
}

// outbox_worker as a direct child; SIGKILLed and reaped by the destructor.
class RelayProcess {
 public:
  RelayProcess(const std::vector<std::string>& args) {
    int out[2];
    FL_ASSERT(pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    std::vector<std::string> storage = {FAULTLINE_OUTBOX_WORKER};
    storage.insert(storage.end(), args.begin(), args.end());
    storage.push_back("--parent=" + std::to_string(getpid()));
    std::vector<char*> argv;
    for (std::string& a : storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    FL_ASSERT(posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    out_fd_ = out[0];
  }
  ~RelayProcess() {
    Kill();
    close(out_fd_);
  }
  // The first line of its stdout ("ready").
  std::string Line() {
    std::string line;
    char c;
    while (read(out_fd_, &c, 1) == 1 && c != '\n') line.push_back(c);
    return line;
  }
  // SIGKILL and reap; returns the wait status.
  int Kill() {
    if (pid_ <= 0) return 0;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  // True once it exited on its own (reaped).
  bool Exited() {
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return pid_ <= 0;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
};

struct Committed {
  std::mutex mu;
  std::vector<std::string> ids;       // committed events, in commit order
  std::set<std::string> rolled_back;  // appended, then rolled back
};

// Commits `events` events over `keys` keys, each with a state row, one in 8 rolled back instead.
// The payload is "<key>:<index>", index counting the key's committed events from 1.
void Produce(LocalStore& store, Outbox& outbox, int events, int keys, Committed& out) {
  std::map<std::string, int> index;
  for (int i = 0; i < events; ++i) {
    const std::string key = "acct-" + std::to_string(i % keys);
    const bool rollback = i % 8 == 5;
    const std::string id = (rollback ? "rb-" : "ev-") + std::to_string(i);
    Message m{id, "ledger.entry", key, key + ":" + std::to_string(index[key] + 1)};
    if (rollback) {
      std::unique_ptr<Transaction> txn = Must(store.Begin());
      ASSERT_TRUE(txn->Put("state/" + key, m.payload).ok());
      ASSERT_TRUE(outbox.Append(*txn, m).ok());
      txn->Rollback();
      std::lock_guard<std::mutex> lock(out.mu);
      out.rolled_back.insert(id);
    } else {
      const Status status = RunInTransaction(store, [&](Transaction& txn) -> Status {
        FL_RETURN_IF_ERROR(txn.Put("state/" + key, m.payload));
        return outbox.Append(txn, m).status();
      });
      ASSERT_TRUE(status.ok()) << status.ToString();
      ++index[key];
      std::lock_guard<std::mutex> lock(out.mu);
      out.ids.push_back(id);
    }
    if (i % 20 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

struct ConsumerResult {
  std::atomic<uint64_t> applied{0};
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> crashes{0};
  std::atomic<uint64_t> held_back{0};
};

int IndexOf(const Message& m) { return std::stoi(m.payload.substr(m.payload.rfind(':') + 1)); }

// Applies deliveries through the inbox, one key's events in their order: a redelivery comes after
// messages stored later (broker.h), so an event whose predecessor has not been applied yet is
// held back (kFailedPrecondition: nothing committed, the delivery is Nak'ed). An index below the
// expected one would be a second event with the same index: recorded as a violation.
Status ApplyEffects(Transaction& txn, const Message& m) {
  const int index = IndexOf(m);
  FL_ASSIGN_OR_RETURN(std::optional<std::string> last, txn.Get("applied/" + m.key));
  const int expected = (last ? std::stoi(*last) : 0) + 1;
  if (index > expected) return FailedPreconditionError("predecessor not applied yet");
  if (index != expected) {
    FL_RETURN_IF_ERROR(txn.Put("violation/" + m.id, std::to_string(expected)));
  }
  FL_RETURN_IF_ERROR(txn.Put("applied/" + m.key, std::to_string(index)));
  FL_ASSIGN_OR_RETURN(std::optional<std::string> times, txn.Get("times/" + m.id));
  return txn.Put("times/" + m.id, std::to_string((times ? std::stoi(*times) : 0) + 1));
}

void Consume(Broker& broker, LocalStore& store, const std::atomic<bool>& stop,
             ConsumerResult& result) {
  auto inbox = Must(idempotency::Inbox::Create(store, SystemClock::Default(), "ledger"));
  std::unique_ptr<Consumer> consumer = Must(broker.NewConsumer("ledger", "ledger."));
  uint64_t seen = 0;
  while (!stop.load()) {
    std::vector<Delivery> got = Must(consumer->Fetch(50, Duration::Millis(20)));
    const uint64_t held_before = result.held_back.load();
    for (const Delivery& d : got) {
      Result<bool> applied = inbox->Process(
          d.message.id, [&](Transaction& txn) { return ApplyEffects(txn, d.message); });
      if (!applied.ok()) {
        ASSERT_EQ(applied.status().code(), StatusCode::kFailedPrecondition)
            << applied.status().ToString();
        result.held_back.fetch_add(1);
        ASSERT_TRUE(consumer->Nak(d).ok());
        continue;
      }
      (*applied ? result.applied : result.duplicates).fetch_add(1);
      if (++seen % 97 == 0) {  // crash after commit, before ack: redelivered after ack-wait
        result.crashes.fetch_add(1);
        consumer = Must(broker.NewConsumer("ledger", "ledger."));
        break;
      }
      ASSERT_TRUE(consumer->Ack(d).ok());
    }
    // Waiting for a predecessor's redelivery: do not spin on the Nak'ed ones.
    if (result.held_back.load() != held_before) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

// The consumer's database: every committed event applied exactly once, no rolled-back one, no
// per-key order violation recorded.
void CheckConsumerState(LocalStore& consumer_store, const Committed& committed) {
  std::map<std::string, std::string> state = Must(faultline::testing::DumpStore(consumer_store));
  std::set<std::string> applied_ids;
  for (const auto& [k, v] : state) {
    EXPECT_NE(k.rfind("violation/", 0), 0u) << "per-key order broken at " << k;
    if (k.rfind("times/", 0) == 0) {
      EXPECT_EQ(v, "1") << k << " applied " << v << " times";
      applied_ids.insert(k.substr(6));
    }
  }
  const std::set<std::string> expected(committed.ids.begin(), committed.ids.end());
  EXPECT_EQ(applied_ids, expected);
  for (const std::string& id : committed.rolled_back) EXPECT_EQ(applied_ids.count(id), 0u) << id;
}

// The stream itself, read in order by a fresh consumer: each committed event once, and every key's
// events in their commit order with no gap (the relay's per-key order, before any consumer-side
// sequencing), and nothing else stored (no rolled-back event published).
void AuditStream(Broker& broker, const Committed& committed) {
  std::unique_ptr<Consumer> audit = Must(broker.NewConsumer("audit", "ledger."));
  std::map<std::string, int> last_index;
  size_t audited = 0;
  while (true) {
    std::vector<Delivery> got = Must(audit->Fetch(500, Duration::Millis(50)));
    if (got.empty()) break;
    for (const Delivery& d : got) {
      ++audited;
      EXPECT_EQ(d.delivery, 1u);
      EXPECT_EQ(IndexOf(d.message), ++last_index[d.message.key]) << d.message.id;
      ASSERT_TRUE(audit->Ack(d).ok());
    }
  }
  EXPECT_EQ(audited, committed.ids.size());
  auto* queue = dynamic_cast<SqliteQueue*>(&broker);
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(Must(queue->StoredCount()), committed.ids.size())
      << "a rolled-back event was published";
}

class OutboxEndToEnd : public ::testing::TestWithParam<std::string> {};

TEST_P(OutboxEndToEnd, RelayKilledMidStreamAppliesEveryCommittedEventOnce) {
  constexpr int kEvents = 2400;
  constexpr int kKeys = 13;
  RealDb db = Must(MakeRealDb(GetParam()));
  TempDir dir;
  const std::string queue_uri =
      "sqlite:" + dir.path() + "/queue.db?synchronous=normal&ack_wait_ms=300";
  std::unique_ptr<Broker> broker = Must(OpenBroker(queue_uri));
  auto consumer_store = Must(OpenStore("sqlite:" + dir.path() + "/consumer.db?synchronous=normal"));
  std::unique_ptr<LocalStore> store = Must(db.Open(2));
  auto outbox = Must(Outbox::Create(*store));

  Committed committed;
  ConsumerResult consumed;
  std::atomic<bool> stop{false};
  std::thread consumer([&] { Consume(*broker, *consumer_store, stop, consumed); });
  std::thread producer([&] { Produce(*store, *outbox, kEvents, kKeys, committed); });

  uint64_t token = 1;
  auto spawn = [&](int die_after) {
    auto relay = std::make_unique<RelayProcess>(std::vector<std::string>{
        "relay", db.uri, db.table, queue_uri, std::to_string(token++), std::to_string(die_after)});
    EXPECT_EQ(relay->Line(), "ready");
    return relay;
  };
  // The first relay dies by itself between a Publish and its MarkPublished (S3).
  std::unique_ptr<RelayProcess> relay = spawn(3);
  const auto s3_deadline = SteadyClock::now() + std::chrono::seconds(30);
  while (!relay->Exited() && SteadyClock::now() < s3_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(relay->Exited()) << "the relay did not reach its third batch";
  int kills = 0;
  while (true) {
    relay = spawn(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + 37 * (kills % 5)));
    std::lock_guard<std::mutex> lock(committed.mu);
    if (committed.ids.size() + committed.rolled_back.size() == kEvents) break;
    relay->Kill();
    ++kills;
  }
  producer.join();
  EXPECT_GE(kills, 3) << "the producer finished before the relay was killed mid-stream";

  const auto deadline = SteadyClock::now() + std::chrono::seconds(120);
  while (consumed.applied.load() < committed.ids.size() && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // redeliveries still due
  stop = true;
  consumer.join();
  relay->Kill();

  CheckConsumerState(*consumer_store, committed);
  AuditStream(*broker, committed);
  EXPECT_EQ(consumed.applied.load(), committed.ids.size());
  EXPECT_GT(consumed.duplicates.load(), 0u) << "no redelivery was absorbed by the inbox";
  std::printf(
      "events %zu committed, %zu rolled back; relay killed %d times (+1 after publish); "
      "consumer crashes %llu, duplicates absorbed %llu, held back %llu\n",
      committed.ids.size(), committed.rolled_back.size(), kills,
      static_cast<unsigned long long>(consumed.crashes.load()),
      static_cast<unsigned long long>(consumed.duplicates.load()),
      static_cast<unsigned long long>(consumed.held_back.load()));
}

INSTANTIATE_TEST_SUITE_P(Stores, OutboxEndToEnd, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace faultline::outbox
