// outbox_relay_throughput: relay throughput and commit-to-publish lag, PostgreSQL -> NATS
// JetStream, on servers the caller started (the README's outbox figures). Not a test.
//
//   outbox_relay_throughput --pg=CONNINFO --nats=URL [--events=200000] [--keys=1000]
//       [--batch=2048] [--partitions=1] [--rate=10000] [--seconds=10] [--txn-events=100]
//       [--producers=4] [--insert=append|multirow] [--relay-pg=CONNINFO]
//
// --relay-pg: the relays' own conninfo (default --pg), e.g. with
// "options='-c synchronous_commit=off'": a relay's delete lost to a database crash only makes it
// publish those events again, which the broker and the inbox absorb, so its commits need not wait
// for the disk. The producers' commits keep the server's setting.
// Producers: --producers threads on connections of their own; producer t commits the events of
// the keys with key % producers == t, so each key's events commit in order from one thread.
// 1. Drain: fills a fresh native outbox table (outbox/sql_outbox.h) with --events events over
//    --keys keys (1000 events per transaction), then starts --partitions
//    relays (Relay over OpenPostgresOutboxSource, each with its own NatsBroker publisher; relay i
//    takes the keys with KeyHash % partitions == i) and times them until the table is empty:
//    relay throughput = events / that time.
// 2. Steady: relays running, the producers commit --rate events/s in all (transactions of
//    --txn-events)
//    for --seconds; the lag of an event is the time from its COMMIT returning to the producer to
//    the broker's ack of the Publish that carried it. Prints p50/p99/max.
// After each phase a durable consumer reads the whole phase back from the stream and checks every
// event arrived and each key's events arrived in commit order (payload n = 1, 2, ... per key).
// Exit status 1 when any check fails, 2 on misuse.
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "faultline/adapters/nats_broker.h"
#include "faultline/outbox/outbox.h"
#include "faultline/outbox/relay.h"
#include "faultline/outbox/sql_outbox.h"

namespace faultline {
namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  std::string pg, nats, relay_pg;  // relay_pg: the relays' conninfo (default: pg)
  long events = 200000, keys = 1000, batch = 2048, partitions = 1, rate = 10000, seconds = 10;
  long txn_events = 100, producers = 4;
  bool multirow = false;  // --insert=multirow: one INSERT statement per transaction
};

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

bool Parse(int argc, char** argv, Flags& f) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) return false;
    const std::string name = arg.substr(2, eq - 2), value = arg.substr(eq + 1);
    long* number = name == "events"       ? &f.events
                   : name == "keys"       ? &f.keys
                   : name == "batch"      ? &f.batch
                   : name == "partitions" ? &f.partitions
                   : name == "rate"       ? &f.rate
                   : name == "seconds"    ? &f.seconds
                   : name == "txn-events" ? &f.txn_events
                   : name == "producers"  ? &f.producers
                                          : nullptr;
    if (name == "pg") {
      f.pg = value;
    } else if (name == "relay-pg") {
      f.relay_pg = value;
    } else if (name == "insert" && (value == "append" || value == "multirow")) {
      f.multirow = value == "multirow";
    } else if (name == "nats") {
      f.nats = value;
    } else if (number != nullptr) {
      *number = std::atol(value.c_str());
      if (*number <= 0) return false;
    } else {
      return false;
    }
  }
  if (f.relay_pg.empty()) f.relay_pg = f.pg;
  return !f.pg.empty() && !f.nats.empty();
}

// The events of one phase: ids "<phase>-<index>", per-key sequence numbers, commit and publish
// times by index.
struct Phase {
  std::string name;
  long events = 0;
  std::vector<std::atomic<int64_t>> commit_ns, publish_ns;
  Phase(std::string n, long count)
      : name(std::move(n)), events(count), commit_ns(count), publish_ns(count) {}
  long IndexOf(const std::string& id) const { return std::atol(id.c_str() + name.size() + 1); }
};

// One producer on its own connection: --txn-events appends per transaction.
class Producer {
 public:
  Producer(const Flags& flags, std::string table) : flags_(flags), table_(std::move(table)) {
    conn_ = PQconnectdb(flags.pg.c_str());
  }
  ~Producer() { PQfinish(conn_); }
  Status Setup() {
    if (PQstatus(conn_) != CONNECTION_OK) return UnavailableError(PQerrorMessage(conn_));
    outbox::SqlOutboxOptions options;
    options.table = table_;
    return outbox::CreatePostgresOutbox(conn_, options);
  }
  // Appends the events `indices` of `phase` in one transaction; records their commit time.
  Status Commit(Phase& phase, const std::vector<long>& indices) {
    FL_RETURN_IF_ERROR(Exec("BEGIN"));
    outbox::SqlOutboxOptions options;
    options.table = table_;
    std::vector<outbox::Message> batch;
    for (const long i : indices) {
      const long key = i % flags_.keys;
      batch.push_back(outbox::Message{phase.name + "-" + std::to_string(i), "bench.event",
                                      "key" + std::to_string(key),
                                      "n=" + std::to_string(++next_n_[key])});
      if (!flags_.multirow) {
        FL_RETURN_IF_ERROR(outbox::AppendPostgres(conn_, batch.back(), options).status());
      }
    }
    if (flags_.multirow) FL_RETURN_IF_ERROR(InsertRows(batch));
    FL_RETURN_IF_ERROR(Exec("COMMIT"));
    const int64_t now = NowNs();
    for (const long i : indices) phase.commit_ns[i].store(now);
    return Status::Ok();
  }
  // The rows AppendPostgres would insert, in one statement (the table's schema, sql_outbox.h).
  // Ids, subjects, keys and payloads here are plain ASCII without backslashes: valid bytea text.
  Status InsertRows(const std::vector<outbox::Message>& batch) {
    std::string sql = "INSERT INTO " + table_ + " (id, subject, key, payload, key_hash) VALUES ";
    std::vector<std::string> values;
    for (size_t r = 0; r < batch.size(); ++r) {
      const std::string b = "$" + std::to_string(r * 5 + 1);
      sql += (r ? ",(" : "(") + b + ",$" + std::to_string(r * 5 + 2) + ",$" +
             std::to_string(r * 5 + 3) + ",$" + std::to_string(r * 5 + 4) + ",$" +
             std::to_string(r * 5 + 5) + "::bigint)";
      const outbox::Message& m = batch[r];
      values.insert(values.end(), {m.id, m.subject, m.key, m.payload,
                                   std::to_string(outbox::internal::KeyHash(m.key))});
    }
    std::vector<const char*> params;
    for (const std::string& v : values) params.push_back(v.c_str());
    PGresult* r = PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                               params.data(), nullptr, nullptr, 0);
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? Status::Ok() : UnavailableError(std::string("insert: ") + PQerrorMessage(conn_));
  }
  Status Exec(const char* sql) {
    PGresult* r = PQexec(conn_, sql);
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? Status::Ok() : UnavailableError(std::string(sql) + ": " + PQerrorMessage(conn_));
  }

 private:
  const Flags& flags_;
  const std::string table_;
  PGconn* conn_ = nullptr;
  std::map<long, int> next_n_;
};

// The relays: one thread per partition, Poll -> Publish -> MarkPublished (Relay::RunOnce's body,
// spelled out to time the publish acks).
class Relays {
 public:
  Relays(const Flags& flags, std::string table, NatsBroker& broker)
      : flags_(flags), table_(std::move(table)), broker_(broker) {}
  ~Relays() { Stop(); }
  void Start(Phase* phase) {
    phase_.store(phase);
    for (long p = 0; p < flags_.partitions; ++p) {
      threads_.emplace_back([this, p] { Loop(static_cast<uint32_t>(p)); });
    }
  }
  void SetPhase(Phase* phase) { phase_.store(phase); }
  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  std::atomic<long> published{0};
  std::atomic<long> errors{0};

 private:
  void Loop(uint32_t partition);
  const Flags& flags_;
  const std::string table_;
  NatsBroker& broker_;
  std::atomic<Phase*> phase_{nullptr};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

void Relays::Loop(uint32_t partition) {
  outbox::SqlOutboxOptions table;
  table.table = table_;
  auto source = outbox::OpenPostgresOutboxSource(flags_.relay_pg, table);
  auto publisher = broker_.NewPublisher();
  if (!source.ok() || !publisher.ok()) {
    std::fprintf(stderr, "relay %u: %s %s\n", partition, source.status().ToString().c_str(),
                 publisher.status().ToString().c_str());
    errors.fetch_add(1);
    return;
  }
  outbox::RelayOptions options;
  options.batch_max = static_cast<size_t>(flags_.batch);
  options.partition = partition;
  options.partitions = static_cast<uint32_t>(flags_.partitions);
  auto relay = outbox::Relay::Create(std::move(source).value(), options);
  FL_ASSERT(relay.ok());
  std::vector<outbox::Message> batch;
  while (!stop_.load()) {
    auto records = relay.value()->Poll(options.batch_max);
    if (!records.ok() || records.value().empty()) {
      if (!records.ok()) errors.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    batch.clear();
    for (const auto& record : records.value()) batch.push_back(record.message);
    if (!publisher.value()->Publish(batch).ok()) {
      errors.fetch_add(1);
      continue;
    }
    const int64_t acked = NowNs();
    Phase* phase = phase_.load();
    for (const auto& m : batch) {
      int64_t expected = 0;
      phase->publish_ns[phase->IndexOf(m.id)].compare_exchange_strong(expected, acked);
    }
    published.fetch_add(static_cast<long>(batch.size()));
    if (!relay.value()->MarkPublished(records.value()).ok()) errors.fetch_add(1);
  }
}

// Reads the phase back from the stream: every event present, each key in commit order.
bool Verify(NatsBroker& broker, const Phase& phase) {
  auto consumer = broker.NewConsumer("verify-" + phase.name, "bench.");
  if (!consumer.ok()) {
    std::fprintf(stderr, "verify: %s\n", consumer.status().ToString().c_str());
    return false;
  }
  std::map<std::string, int> last;
  std::vector<char> seen(static_cast<size_t>(phase.events), 0);
  long distinct = 0, out_of_order = 0;
  for (;;) {
    auto got = consumer.value()->Fetch(4096, Duration::Millis(500));
    if (!got.ok() || got.value().empty()) break;
    for (const outbox::Delivery& d : got.value()) {
      consumer.value()->Ack(d).IgnoreError();
      if (d.message.id.rfind(phase.name + "-", 0) != 0) continue;  // another phase
      const long index = phase.IndexOf(d.message.id);
      if (seen[static_cast<size_t>(index)]) continue;  // a duplicate
      seen[static_cast<size_t>(index)] = 1;
      ++distinct;
      const int n = std::atoi(d.message.payload.c_str() + 2);
      if (n != last[d.message.key] + 1) ++out_of_order;
      last[d.message.key] = n;
    }
  }
  std::printf("  verified on the consumer side: %ld of %ld events, %ld out of per-key order\n",
              distinct, phase.events, out_of_order);
  return distinct == phase.events && out_of_order == 0;
}

// --producers threads, each on its own connection, producer t taking the keys with
// key % producers == t (so each key's events are committed in order by one thread). `rate` 0:
// as fast as possible; else rate/producers events/s each, in transactions of `txn_events`.
bool Produce(const Flags& flags, const std::string& table, Phase& phase, long rate,
             long txn_events) {
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (long t = 0; t < flags.producers; ++t) {
    threads.emplace_back([&, t] {
      Producer producer(flags, table);
      if (Status s = producer.Setup(); !s.ok()) {
        std::fprintf(stderr, "producer: %s\n", s.ToString().c_str());
        failed.store(true);
        return;
      }
      std::vector<long> mine, txn;
      for (long i = 0; i < phase.events; ++i) {
        if ((i % flags.keys) % flags.producers == t) mine.push_back(i);
      }
      const double per_event_s = rate == 0 ? 0 : static_cast<double>(flags.producers) / rate;
      for (size_t at = 0; at < mine.size() && !failed.load(); at += txn.size()) {
        txn.assign(mine.begin() + at,
                   mine.begin() + std::min(mine.size(), at + static_cast<size_t>(txn_events)));
        std::this_thread::sleep_until(
            start + std::chrono::nanoseconds(static_cast<int64_t>(at * per_event_s * 1e9)));
        if (Status s = producer.Commit(phase, txn); !s.ok()) {
          std::fprintf(stderr, "producer: %s\n", s.ToString().c_str());
          failed.store(true);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  return !failed.load();
}

// Phase 1: pre-filled outbox, drained by the relays.
bool Drain(const Flags& flags, NatsBroker& broker, const std::string& table) {
  Phase phase("drain", flags.events);
  if (!Produce(flags, table, phase, /*rate=*/0, /*txn_events=*/1000)) return false;
  Relays relays(flags, table, broker);
  const auto start = Clock::now();
  relays.Start(&phase);
  while (relays.published.load() < flags.events && relays.errors.load() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  relays.Stop();
  std::printf(
      "drain: %ld events, %ld partition(s), batch %ld: %.3f s, %.0f events/s "
      "(relay errors %ld)\n",
      flags.events, flags.partitions, flags.batch, seconds, flags.events / seconds,
      relays.errors.load());
  return Verify(broker, phase);
}

// Phase 2: steady producer at --rate; commit-to-publish lag.
bool Steady(const Flags& flags, NatsBroker& broker, const std::string& table) {
  const long total = flags.rate * flags.seconds;
  Phase phase("steady", total);
  Relays relays(flags, table, broker);
  relays.Start(&phase);
  const auto start = Clock::now();
  if (!Produce(flags, table, phase, flags.rate, flags.txn_events)) return false;
  const double produce_s = std::chrono::duration<double>(Clock::now() - start).count();
  while (relays.published.load() < total) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  relays.Stop();
  std::vector<int64_t> lag;
  for (long i = 0; i < total; ++i) {
    lag.push_back(std::max<int64_t>(0, phase.publish_ns[i].load() - phase.commit_ns[i].load()));
  }
  std::sort(lag.begin(), lag.end());
  auto at = [&](double q) { return lag[static_cast<size_t>(q * (lag.size() - 1))] / 1e6; };
  std::printf(
      "steady: %ld events at %ld/s offered (%.0f/s achieved, %ld producers, "
      "transactions of %ld), "
      "commit-to-publish lag p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
      total, flags.rate, total / produce_s, flags.producers, flags.txn_events, at(0.5), at(0.99),
      at(1.0));
  return Verify(broker, phase);
}

int Run(const Flags& flags) {
  const std::string suffix = std::to_string(getpid()) + "_" + std::to_string(NowNs() % 1000000);
  const std::string table = "bench_outbox_" + suffix;
  NatsBrokerOptions options;
  options.url = flags.nats;
  options.stream = "BENCH_" + suffix;
  options.subject_namespace = "b" + suffix + ".";
  options.publish_pending_max = static_cast<uint32_t>(std::max<long>(flags.batch, 1024));
  auto broker = NatsBroker::Create(options);
  if (!broker.ok()) {
    std::fprintf(stderr, "nats: %s\n", broker.status().ToString().c_str());
    return 1;
  }
  Producer producer(flags, table);
  if (Status s = producer.Setup(); !s.ok()) {
    std::fprintf(stderr, "postgres: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("outbox_relay_throughput: table %s, stream %s\n", table.c_str(),
              options.stream.c_str());
  const bool drained = Drain(flags, *broker.value(), table);
  const bool steady = Steady(flags, *broker.value(), table);
  return drained && steady ? 0 : 1;
}

}  // namespace
}  // namespace faultline

int main(int argc, char** argv) {
  faultline::Flags flags;
  if (!faultline::Parse(argc, argv, flags)) {
    std::fprintf(stderr,
                 "usage: outbox_relay_throughput --pg=CONNINFO --nats=URL [--events=N] [--keys=N] "
                 "[--batch=N] [--partitions=N] [--rate=N] [--seconds=N] [--txn-events=N] "
                 "[--producers=N] [--insert=append|multirow] [--relay-pg=CONNINFO]\n");
    return 2;
  }
  return faultline::Run(flags);
}
