// faultline bench outbox: the transactional outbox's relay on the user's own store and broker.
//
// Two phases, each with `relays` relay threads (relay i of n takes the keys with hash % n == i),
// each relay with its own Publisher, batches of `batch` events:
//   drain    `events` events are appended first (500 per transaction), then the relays start; the
//            time until every event is published and deleted gives the relay throughput.
//   steady   `producers` threads, each on a connection of its own, commit `rate` events per second
//            in all for `seconds` seconds, in transactions of `txn_events` events (default
//            rate / 1000: one transaction a millisecond at one producer), while the relays run.
//            Producer t owns the keys k with k % producers == t, so each key's events commit in
//            order from one thread. Each event's commit-to-publish lag is the time from its
//            COMMIT returning to the broker's acknowledgement of the batch that carried it (0 when
//            the ack came first). A producer that cannot keep the rate falls behind and the
//            achieved rate is printed.
// After each phase a fresh durable consumer reads the phase's messages back, acking each, and
// checks that each key's events arrived in commit order, each exactly once, none missing.
//
// Events: id "<run>-<phase>-<n>", subject "bench.<run>.<phase>", key "k<n % keys>", a 64-byte
// payload starting with n. Outbox keys live under "bench-outbox/<run>/" in the store's table
// (--table); the broker keeps the published messages (give it a scratch file).
//
// Exit codes: 0 done; 1 a relay or producer failed, or the read-back check failed; 2 misuse.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "apps/faultline/bench_outbox_backends.h"
#include "apps/faultline/commands.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/outbox/open_broker.h"
#include "faultline/outbox/relay.h"

namespace faultline::app {
namespace {

using outbox::Broker;
using outbox::Message;
using SteadyClock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

uint64_t EventNumber(const std::string& id) { return std::stoull(id.substr(id.rfind('-') + 1)); }

// Records, for every event of the phase, when the broker acknowledged it. `id_prefix` is
// "<run>-<phase>-": an event of another run or phase (another bench sharing --table) is an error,
// never an index.
class TimedPublisher final : public outbox::Publisher {
 public:
  TimedPublisher(std::unique_ptr<outbox::Publisher> inner, std::string id_prefix,
                 std::vector<std::atomic<int64_t>>* acked)
      : inner_(std::move(inner)), id_prefix_(std::move(id_prefix)), acked_(acked) {}
  Status Publish(std::span<const Message> batch) override {
    for (const Message& m : batch) {
      if (m.id.rfind(id_prefix_, 0) != 0 || EventNumber(m.id) >= acked_->size()) {
        return FailedPreconditionError("event " + m.id + " in the outbox is not this run's: " +
                                       "is another bench using the same --table?");
      }
    }
    FL_RETURN_IF_ERROR(inner_->Publish(batch));
    const int64_t now = NowNs();
    for (const Message& m : batch) {
      int64_t none = 0;
      (*acked_)[EventNumber(m.id)].compare_exchange_strong(none, now);
    }
    return Status::Ok();
  }

 private:
  std::unique_ptr<outbox::Publisher> inner_;
  const std::string id_prefix_;
  std::vector<std::atomic<int64_t>>* acked_;
};

struct Phase {
  std::string name;
  uint64_t events = 0;
  std::vector<std::atomic<int64_t>> committed_ns;
  std::vector<std::atomic<int64_t>> acked_ns;
  std::atomic<uint64_t> published{0};
  std::atomic<bool> producing{true};
  std::atomic<bool> failed{false};  // a relay or the producer failed: every relay stops
  Phase(std::string n, uint64_t count)
      : name(std::move(n)), events(count), committed_ns(count), acked_ns(count) {}
};

class OutboxBench {
 public:
  OutboxBench(const OutboxBenchArgs& args, OutboxBackend& backend, Broker& broker, std::string run)
      : args_(args), backend_(backend), broker_(broker), run_(std::move(run)) {}

  Message Event(const Phase& phase, uint64_t n) const {
    std::string payload = std::to_string(n);
    payload.resize(64, '.');
    return Message{run_ + "-" + phase.name + "-" + std::to_string(n),
                   "bench." + run_ + "." + phase.name, "k" + std::to_string(n % args_.keys),
                   std::move(payload)};
  }

  // Appends the events `numbers` of `phase` in one transaction; stamps their commit time.
  Status Append(OutboxAppender& appender, Phase& phase, std::span<const uint64_t> numbers) {
    std::vector<Message> batch;
    batch.reserve(numbers.size());
    for (const uint64_t n : numbers) batch.push_back(Event(phase, n));
    FL_RETURN_IF_ERROR(appender.AppendBatch(batch));
    const int64_t now = NowNs();
    for (const uint64_t n : numbers) phase.committed_ns[n].store(now);
    return Status::Ok();
  }

  Status Prefill(Phase& phase) {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<OutboxAppender> appender, backend_.NewAppender());
    std::vector<uint64_t> numbers;
    for (uint64_t n = 0; n < phase.events; n += 500) {
      numbers.clear();
      for (uint64_t i = n; i < std::min(phase.events, n + 500); ++i) numbers.push_back(i);
      FL_RETURN_IF_ERROR(Append(*appender, phase, numbers));
    }
    phase.producing = false;
    return Status::Ok();
  }

  uint64_t TxnEvents() const {
    return args_.txn_events > 0 ? args_.txn_events : std::max<uint64_t>(1, args_.rate / 1000);
  }

  // Producer `t` of `producers`: the events of its keys, in transactions of TxnEvents(), each
  // committed once its last event is due (its i-th event is due at start + i * producers / rate).
  Status ProduceShare(Phase& phase, uint32_t t, SteadyClock::time_point start) {
    FL_ASSIGN_OR_RETURN(std::unique_ptr<OutboxAppender> appender, backend_.NewAppender());
    std::vector<uint64_t> mine;
    for (uint64_t n = 0; n < phase.events; ++n) {
      if ((n % args_.keys) % args_.producers == t) mine.push_back(n);
    }
    const double seconds_per_event =
        static_cast<double>(args_.producers) / static_cast<double>(args_.rate);
    for (size_t at = 0; at < mine.size() && !phase.failed.load(); at += TxnEvents()) {
      const size_t count = std::min<size_t>(TxnEvents(), mine.size() - at);
      std::this_thread::sleep_until(  // when the transaction's last event is due
          start + std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(at + count) *
                                                                seconds_per_event * 1e9)));
      FL_RETURN_IF_ERROR(Append(*appender, phase, std::span(mine).subspan(at, count)));
    }
    return Status::Ok();
  }

  // Runs the producers to the end; returns the achieved rate (events/s).
  Result<double> Produce(Phase& phase) {
    std::vector<Status> statuses(args_.producers);
    std::vector<std::thread> threads;
    const auto start = SteadyClock::now();
    for (uint32_t t = 0; t < args_.producers; ++t) {
      threads.emplace_back([&, t] {
        statuses[t] = ProduceShare(phase, t, start);
        if (!statuses[t].ok()) phase.failed = true;
      });
    }
    for (std::thread& thread : threads) thread.join();
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
    phase.producing = false;
    for (const Status& s : statuses) FL_RETURN_IF_ERROR(s);
    return static_cast<double>(phase.events) / seconds;
  }

  // One relay thread: runs until every event of the phase is published (counted over all relays:
  // an empty poll alone proves nothing, since PostgreSQL's source holds back rows that are not yet
  // ready), another relay failed, or nothing was published for kStallSeconds.
  Status Relay(Phase& phase, uint32_t partition) {
    const Status status = RelayLoop(phase, partition);
    if (!status.ok()) phase.failed = true;
    return status;
  }

  Status RelayLoop(Phase& phase, uint32_t partition) {
    constexpr int kStallSeconds = 60;
    auto source = backend_.NewSource();
    FL_RETURN_IF_ERROR(source.status());
    auto relay =
        outbox::Relay::Create(std::move(*source), outbox::RelayOptions{.batch_max = args_.batch,
                                                                       .partition = partition,
                                                                       .partitions = args_.relays});
    FL_RETURN_IF_ERROR(relay.status());
    auto inner = broker_.NewPublisher();
    FL_RETURN_IF_ERROR(inner.status());
    TimedPublisher publisher(std::move(*inner), run_ + "-" + phase.name + "-", &phase.acked_ns);
    auto progress = SteadyClock::now();
    while (!phase.failed.load()) {
      Result<size_t> published = (*relay)->RunOnce(publisher);
      FL_RETURN_IF_ERROR(published.status());
      phase.published += *published;
      if (*published > 0) {
        progress = SteadyClock::now();
        continue;
      }
      if (!phase.producing.load() && phase.published.load() >= phase.events) return Status::Ok();
      if (SteadyClock::now() - progress > std::chrono::seconds(kStallSeconds)) {
        return DeadlineExceededError("relay published nothing for " +
                                     std::to_string(kStallSeconds) + " s");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return Status::Ok();
  }

  // Runs the relays (and `producer`, if any) to the end; returns the relays' wall time in seconds.
  Result<double> RunRelays(Phase& phase, const std::function<Status()>& producer) {
    std::vector<Status> statuses(args_.relays + 1);
    const auto start = SteadyClock::now();
    std::vector<std::thread> threads;
    for (uint32_t i = 0; i < args_.relays; ++i) {
      threads.emplace_back([&, i] { statuses[i] = Relay(phase, i); });
    }
    if (producer) {
      statuses[args_.relays] = producer();
      if (!statuses[args_.relays].ok()) phase.failed = true;
    }
    phase.producing = false;
    for (std::thread& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
    for (const Status& s : statuses) FL_RETURN_IF_ERROR(s);
    if (phase.published.load() != phase.events) {
      return InternalError("relays published " + std::to_string(phase.published.load()) + " of " +
                           std::to_string(phase.events) + " events");
    }
    return seconds;
  }

  // Reads the phase back through a fresh durable consumer: every event once, each key in order.
  Status Verify(const Phase& phase) {
    auto consumer = broker_.NewConsumer("verify-" + run_ + "-" + phase.name,
                                        "bench." + run_ + "." + phase.name);
    FL_RETURN_IF_ERROR(consumer.status());
    std::map<std::string, uint64_t> last;
    std::set<uint64_t> seen;
    auto idle_since = SteadyClock::now();
    while (seen.size() < phase.events &&
           SteadyClock::now() - idle_since < std::chrono::seconds(5)) {
      auto got = (*consumer)->Fetch(1000, Duration::Millis(100));
      FL_RETURN_IF_ERROR(got.status());
      if (!got->empty()) idle_since = SteadyClock::now();
      for (const outbox::Delivery& d : *got) {
        // Settled, so the broker need not hold it for this consumer (JetStream stops delivering
        // to a consumer holding consumer_ack_pending_max unacked messages).
        FL_RETURN_IF_ERROR((*consumer)->Ack(d));
        if (d.delivery != 1) continue;  // a redelivery of what this reader already counted
        const uint64_t n = EventNumber(d.message.id);
        if (!seen.insert(n).second) return DataLossError("event " + d.message.id + " stored twice");
        auto [it, fresh] = last.emplace(d.message.key, n);
        if (!fresh && it->second >= n) {
          return DataLossError("key " + d.message.key + ": event " + std::to_string(n) +
                               " after event " + std::to_string(it->second));
        }
        it->second = n;
      }
    }
    if (seen.size() != phase.events) {
      return DataLossError("read back " + std::to_string(seen.size()) + " of " +
                           std::to_string(phase.events) + " events");
    }
    return Status::Ok();
  }

 private:
  const OutboxBenchArgs& args_;
  OutboxBackend& backend_;
  Broker& broker_;
  const std::string run_;
};

double PercentileMs(std::vector<int64_t>& values, double p) {
  if (values.empty()) return 0;
  const size_t at = std::min(values.size() - 1, static_cast<size_t>(p * values.size()));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(at), values.end());
  return static_cast<double>(values[at]) / 1e6;
}

int Failed(const char* what, const Status& status) {
  std::fprintf(stderr, "faultline: error: bench outbox %s: %s\n", what, status.ToString().c_str());
  return 1;
}

}  // namespace

CLI::App* AddBenchOutboxCommand(CLI::App& bench, OutboxBenchArgs& args) {
  CLI::App* cmd = bench.add_subcommand(
      "outbox", "relay throughput draining an outbox, then commit-to-publish lag at a steady rate");
  cmd->add_option("--store", args.store,
                  "sqlite:PATH[?synchronous=full|normal] or postgresql://...")
      ->required();
  cmd->add_option("--broker", args.broker,
                  "sqlite:PATH[?synchronous=full|normal] or nats://HOST:PORT")
      ->required();
  cmd->add_option("--events", args.events, "events in the pre-filled outbox")
      ->check(CLI::Range(uint64_t{1}, uint64_t{10'000'000}));
  cmd->add_option("--rate", args.rate, "steady phase: events committed per second")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1'000'000}));
  cmd->add_option("--seconds", args.seconds, "steady phase: duration")
      ->check(CLI::Range(uint64_t{1}, uint64_t{3600}));
  cmd->add_option("--keys", args.keys, "ordering keys")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1'000'000}));
  cmd->add_option("--relays", args.relays, "relay threads (key partitions)")
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("--batch", args.batch, "events per publish batch")
      ->check(CLI::Range(size_t{1}, size_t{100000}));
  cmd->add_option("--outbox", args.outbox,
                  "kv: the LocalStore outbox in the store's key-value table; table: the native "
                  "outbox table <table>_outbox")
      ->check(CLI::IsMember({"kv", "table"}));
  cmd->add_option("--table", args.table, "key-value table of the store (created when missing)");
  cmd->add_option("--producers", args.producers,
                  "steady phase: producer threads, each on its own connection, each owning "
                  "the keys k with k % producers == t")
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("--txn-events", args.txn_events,
                  "steady phase: events per producer transaction (default rate/1000, at least 1)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100'000}));
  return cmd;
}

int RunBenchOutbox(const OutboxBenchArgs& args) {
  const std::string run = std::to_string(SystemClock::Default().WallNow().nanos());
  Result<std::unique_ptr<OutboxBackend>> backend =
      OpenOutboxBackend(args.outbox, args.store, args.table, run, args.relays + args.producers + 1);
  if (!backend.ok()) throw UsageError(std::string(backend.status().message()));
  Result<std::unique_ptr<Broker>> broker = outbox::OpenBroker(args.broker);
  if (!broker.ok()) throw UsageError(std::string(broker.status().message()));
  OutboxBench bench(args, **backend, **broker, run);
  std::printf(
      "faultline bench outbox: %s outbox, %u relay(s), batch %zu, %llu keys, %u producer(s), "
      "%llu events per transaction\n",
      args.outbox.c_str(), args.relays, args.batch, static_cast<unsigned long long>(args.keys),
      args.producers, static_cast<unsigned long long>(bench.TxnEvents()));

  Phase drain("drain", args.events);
  if (Status s = bench.Prefill(drain); !s.ok()) return Failed("prefill", s);
  Result<double> drained = bench.RunRelays(drain, {});
  if (!drained.ok()) return Failed("drain", drained.status());
  if (Status s = bench.Verify(drain); !s.ok()) return Failed("drain read-back", s);
  std::printf(
      "drain:  %llu events in %.3f s = %.0f events/s (read back: every event once, "
      "per-key order kept)\n",
      static_cast<unsigned long long>(args.events), *drained,
      static_cast<double>(args.events) / *drained);

  Phase steady("steady", args.rate * args.seconds);
  double achieved = 0;
  Result<double> ran = bench.RunRelays(steady, [&]() -> Status {
    FL_ASSIGN_OR_RETURN(achieved, bench.Produce(steady));
    return Status::Ok();
  });
  if (!ran.ok()) return Failed("steady", ran.status());
  if (Status s = bench.Verify(steady); !s.ok()) return Failed("steady read-back", s);
  std::vector<int64_t> lags;
  lags.reserve(steady.events);
  for (uint64_t n = 0; n < steady.events; ++n) {
    lags.push_back(std::max<int64_t>(0, steady.acked_ns[n].load() - steady.committed_ns[n].load()));
  }
  const double p50 = PercentileMs(lags, 0.50);
  const double p99 = PercentileMs(lags, 0.99);
  const double max = PercentileMs(lags, 1.0);
  std::printf(
      "steady: %llu events/s for %llu s (%llu events, %.0f events/s achieved): "
      "commit-to-publish lag p50 %.2f ms, p99 %.2f ms, max %.2f ms (read back: every event once, "
      "per-key order kept)\n",
      static_cast<unsigned long long>(args.rate), static_cast<unsigned long long>(args.seconds),
      static_cast<unsigned long long>(steady.events), achieved, p50, p99, max);
  if (Status s = (*backend)->Cleanup(); !s.ok()) return Failed("cleanup", s);
  return 0;
}

}  // namespace faultline::app
