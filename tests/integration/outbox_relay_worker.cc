// outbox_relay_worker: the outbox relay as a process of its own, for the end-to-end test
// (outbox_nats_e2e_test.cc) that SIGKILLs and restarts it mid-stream.
//
//   outbox_relay_worker --pg=CONNINFO --table=T --nats=URL [--source=store|native] [--stream=S]
//                       [--batch=N] [--crash-after-publishes=K] [--parent=PID]
//
// Relays an outbox on PostgreSQL to NATS JetStream until killed. --source=store (the default): the
// LocalStore outbox in PostgresStore table T (OutboxOptions defaults); --source=native: the native
// outbox table T (outbox/sql_outbox.h, OpenPostgresOutboxSource). The loop is Poll, Publish,
// MarkPublished, the loop body of Relay::RunOnce, spelled out so that --crash-after-publishes=K can
// SIGKILL the process right after the K-th acknowledged publish and before its events are marked:
// the crash window the outbox must absorb (the restarted relay publishes those events again).
// Nothing here ever gives up: a broker or database that is away is retried every 50 ms, as a
// production relay would. Progress and errors go to stderr, one line each. --parent=PID: die with
// that process (PR_SET_PDEATHSIG).
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "faultline/adapters/nats_broker.h"
#include "faultline/adapters/postgres_store.h"
#include "faultline/outbox/relay.h"
#include "faultline/outbox/sql_outbox.h"

namespace {

using faultline::Status;

struct Flags {
  std::string pg, table, nats, stream = "FAULTLINE_OUTBOX", source = "store";
  size_t batch = 128;
  long crash_after = 0;
  long parent = 0;
};

bool Parse(int argc, char** argv, Flags& flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) return false;
    const std::string name = arg.substr(2, eq - 2), value = arg.substr(eq + 1);
    if (name == "pg")
      flags.pg = value;
    else if (name == "table")
      flags.table = value;
    else if (name == "nats")
      flags.nats = value;
    else if (name == "stream")
      flags.stream = value;
    else if (name == "source")
      flags.source = value;
    else if (name == "batch")
      flags.batch = std::strtoul(value.c_str(), nullptr, 10);
    else if (name == "crash-after-publishes")
      flags.crash_after = std::atol(value.c_str());
    else if (name == "parent")
      flags.parent = std::atol(value.c_str());
    else
      return false;
  }
  return !flags.pg.empty() && !flags.table.empty() && !flags.nats.empty() && flags.batch > 0 &&
         (flags.source == "store" || flags.source == "native");
}

void Log(const std::string& line) {
  std::fprintf(stderr, "relay[%d] %s\n", static_cast<int>(getpid()), line.c_str());
  std::fflush(stderr);
}

void Pause() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }

// Retries `make` until it succeeds, logging each distinct failure.
template <typename T, typename Make>
std::unique_ptr<T> Retry(const char* what, Make make) {
  for (;;) {
    auto made = make();
    if (made.ok()) return std::move(made).value();
    Log(std::string(what) + ": " + made.status().ToString());
    Pause();
  }
}

// The relay over --source; `store` keeps the PostgresStore of --source=store alive.
faultline::Result<std::unique_ptr<faultline::outbox::Relay>> MakeRelay(
    const Flags& flags, std::unique_ptr<faultline::PostgresStore>& store) {
  faultline::outbox::RelayOptions relay_options;
  relay_options.batch_max = flags.batch;
  if (flags.source == "native") {
    faultline::outbox::SqlOutboxOptions table;
    table.table = flags.table;
    auto source = Retry<faultline::outbox::OutboxSource>("postgres source", [&] {
      return faultline::outbox::OpenPostgresOutboxSource(flags.pg, table);
    });
    return faultline::outbox::Relay::Create(std::move(source), relay_options);
  }
  faultline::PostgresStoreOptions pg;
  pg.conninfo = flags.pg;
  pg.table = flags.table;
  pg.connections_max = 2;
  store = Retry<faultline::PostgresStore>("postgres",
                                          [&] { return faultline::PostgresStore::Open(pg); });
  return faultline::outbox::Relay::Create(*store, {}, relay_options);
}

int Run(const Flags& flags) {
  faultline::NatsBrokerOptions nats;
  nats.url = flags.nats;
  nats.stream = flags.stream;
  nats.publish_ack_timeout = faultline::Duration::Seconds(2);
  auto broker = Retry<faultline::NatsBroker>("nats broker",
                                             [&] { return faultline::NatsBroker::Create(nats); });
  auto publisher =
      Retry<faultline::outbox::Publisher>("publisher", [&] { return broker->NewPublisher(); });
  std::unique_ptr<faultline::PostgresStore> store;
  auto relay = MakeRelay(flags, store);
  if (!relay.ok()) {
    Log("relay: " + relay.status().ToString());
    return 3;
  }
  Log("started");
  long publishes = 0;
  for (;;) {
    auto records = relay.value()->Poll(flags.batch);
    if (!records.ok()) {
      Log("poll: " + records.status().ToString());
      Pause();
      continue;
    }
    if (records.value().empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    std::vector<faultline::outbox::Message> batch;
    batch.reserve(records.value().size());
    for (const auto& record : records.value()) batch.push_back(record.message);
    if (Status s = publisher->Publish(batch); !s.ok()) {
      Log("publish: " + s.ToString());
      Pause();
      continue;
    }
    if (++publishes == flags.crash_after) {
      Log("crashing after publish " + std::to_string(publishes) + ", before marking");
      raise(SIGKILL);
    }
    if (Status s = relay.value()->MarkPublished(records.value()); !s.ok()) {
      Log("mark: " + s.ToString());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!Parse(argc, argv, flags)) {
    std::fprintf(stderr,
                 "usage: outbox_relay_worker --pg=CONNINFO --table=T --nats=URL "
                 "[--source=store|native] [--stream=S] [--batch=N] [--crash-after-publishes=K] "
                 "[--parent=PID]\n");
    return 2;
  }
  if (flags.parent > 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != flags.parent) return 4;
  }
  return Run(flags);
}
