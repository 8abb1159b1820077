// faultline bench reshard: a live move of a key range between two of the user's stores.
//
// Fills shard 1 (in --from) with `rows` rows (64-byte values, not timed), starts `writers` threads
// that keep overwriting random rows through ShardClient (each thread its own keys) at `rate` writes
// per second in total (open loop: each write has its scheduled time; 0 = closed loop, as fast as
// they can, which on SQLite mostly measures how its busy-wait shares the write lock), and moves the
// whole key range to shard 2 (in --to) with Reshard, step by step, timing each phase. Printed: the
// copy rate (rows/s), the catch-up and verify times, the cutover (fence to switched), and, as the
// writers saw it, how long writes waited at the fence (p50/p99/max over the writes that waited).
// Then Complete (once every writer follows the switched map; the writers keep writing), and the
// checks: every acknowledged write reads back from the shard the final map
// names (0 lost), shard 2 holds each row exactly once and shard 1 none (0 duplicated), and shard
// 1's change log holds no write at or after the fence. Everything lives under "bench/<run id>/" in
// the stores' table (--table) and is deleted at the end.
//
// Exit codes: 0 done and checked; 1 the move failed or a check failed; 2 misuse (bad arguments,
// an unparseable URI, an unreachable server), one line on stderr.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "apps/faultline/commands.h"
#include "faultline/adapters/open_store.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/core/random.h"
#include "faultline/shard/reshard.h"

namespace faultline::app {
namespace {

using shard::Directory;
using shard::Reshard;
using shard::ReshardPhase;
using shard::ShardId;
using shard::ShardMap;
using shard::ShardStore;

std::string Row(uint64_t i) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "r%010llu", static_cast<unsigned long long>(i));
  return buf;
}

double Seconds(MonoTime a, MonoTime b) { return static_cast<double>((b - a).nanos()) / 1e9; }

struct Stores {
  std::unique_ptr<LocalStore> from, to;
  std::unique_ptr<ShardStore> s1, s2;
  std::string run;  // "bench/<run id>/"
  Directory::Options directory;
  shard::ShardResolver resolver() const {
    ShardStore* a = s1.get();
    ShardStore* b = s2.get();
    return [a, b](ShardId id) -> Result<ShardStore*> {
      if (id == ShardId(1)) return a;
      if (id == ShardId(2)) return b;
      return NotFoundError("no shard " + std::to_string(id.value()));
    };
  }
};

// The directory (in --from), shard 1 serving everything, and the rows, in big transactions.
Status Fill(Stores& s, uint64_t rows) {
  Directory directory(*s.from, s.directory);
  FL_ASSIGN_OR_RETURN(ShardMap map,
                      ShardMap::Single(shard::KeyMode::kRange, ShardId(1)).AddShard(ShardId(2)));
  FL_RETURN_IF_ERROR(directory.Initialize(map));
  FL_RETURN_IF_ERROR(s.s1->SetRange({"", "", Epoch(1), shard::RangeState::kServing}).status());
  const std::string value(64, 'v');
  for (uint64_t done = 0; done < rows;) {
    const uint64_t end = std::min(rows, done + 20000);
    FL_RETURN_IF_ERROR(RunInTransaction(*s.from, [&](Transaction& txn) -> Status {
      for (uint64_t i = done; i < end; ++i) {
        const Status put = s.s1->ApplyRow(txn, Row(i), value);
        if (!put.ok()) return put;
      }
      return Status::Ok();
    }));
    done = end;
  }
  return Status::Ok();
}

class Writers {
 public:
  Writers(Stores& s, unsigned threads, uint64_t rows, uint64_t rate)
      : s_(s), threads_(threads), rows_(rows), rate_(rate), last_(threads), waits_(threads) {}
  void Start() {
    for (unsigned t = 0; t < threads_; ++t) running_.emplace_back([this, t] { Loop(t); });
  }
  void Stop() {
    stop_.store(true);
    for (std::thread& th : running_) th.join();
    running_.clear();
  }
  uint64_t acked() const { return acked_.load(); }
  // True once every writer has had a write acknowledged by shard 2 (its map is the switched one).
  bool AllSwitched() const { return switched_.load() == threads_; }
  const std::vector<std::string>& errors() const { return errors_; }
  std::vector<int64_t> Waits() const {  // of the writes that waited, sorted
    std::vector<int64_t> out;
    for (const auto& w : waits_) out.insert(out.end(), w.begin(), w.end());
    std::sort(out.begin(), out.end());
    return out;
  }
  std::map<std::string, std::string> Expected() const {
    std::map<std::string, std::string> out;
    for (const auto& m : last_) out.insert(m.begin(), m.end());
    return out;
  }

 private:
  void Loop(unsigned t) {
    Directory directory(*s_.from, s_.directory);
    shard::ShardClient client(
        directory, s_.resolver(), SystemClock::Default(),
        [](Duration d) { std::this_thread::sleep_for(std::chrono::nanoseconds(d.nanos())); },
        {Duration::Seconds(10), Duration::Millis(1), 77 + uint64_t{t}});
    Status status = client.Init();
    Rng rng(77 + t);
    const uint64_t mine = (rows_ + threads_ - 1 - t) / threads_;
    // Open loop: write n of this thread is due at start + n * threads / rate.
    const auto start = std::chrono::steady_clock::now();
    const auto interval =
        std::chrono::nanoseconds(rate_ == 0 ? 0 : 1'000'000'000 * threads_ / rate_);
    bool on_target = false;
    for (uint64_t seq = 1; status.ok() && mine > 0 && !stop_.load(); ++seq) {
      if (rate_ != 0) std::this_thread::sleep_until(start + interval * static_cast<int64_t>(seq));
      const std::string key = Row((rng.Next() % mine) * threads_ + t);
      const std::string value = std::to_string(t) + "-" + std::to_string(seq);
      status = client.Write(key, value);
      if (!status.ok()) break;
      last_[t][key] = value;
      if (!on_target && client.last_route().shard == ShardId(2)) {
        on_target = true;
        switched_.fetch_add(1);
      }
      if (client.last_wait() > Duration::Zero()) waits_[t].push_back(client.last_wait().nanos());
      acked_.fetch_add(1);
    }
    if (!status.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      errors_.push_back(status.ToString());
    }
  }

  Stores& s_;
  const unsigned threads_;
  const uint64_t rows_;
  const uint64_t rate_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> acked_{0};
  std::atomic<unsigned> switched_{0};
  std::vector<std::thread> running_;
  std::vector<std::map<std::string, std::string>> last_;
  std::vector<std::vector<int64_t>> waits_;
  std::vector<std::string> errors_;
  std::mutex mu_;
};

struct PhaseTimes {
  double copy = 0, catch_up = 0, verify = 0, cutover = 0, complete = 0;
};

// Steps the move to kComplete, adding each step's time to its phase.
Status Move(Stores& s, uint32_t batch, const Writers& writers, PhaseTimes& times,
            shard::ReshardState& state) {
  shard::ReshardOptions options;
  options.state_prefix = s.run + "reshard/";
  options.copy_batch_rows = batch;
  options.directory = s.directory;
  FL_ASSIGN_OR_RETURN(
      std::unique_ptr<Reshard> mover,
      Reshard::Start(*s.from, s.resolver(), {"bench", shard::RangeId(1), std::nullopt, ShardId(2)},
                     options));
  SystemClock& clock = SystemClock::Default();
  while (mover->phase() != ReshardPhase::kSwitched) {
    const ReshardPhase phase = mover->phase();
    const MonoTime begin = clock.Now();
    FL_RETURN_IF_ERROR(mover->Step().status());
    const double took = Seconds(begin, clock.Now());
    if (phase == ReshardPhase::kCopy)
      times.copy += took;
    else if (phase == ReshardPhase::kCatchUp)
      times.catch_up += took;
    else if (phase == ReshardPhase::kVerify)
      times.verify += took;
    else
      times.cutover += took;
  }
  // Complete is the operator's later step (Vitess): it starts once every writer follows the
  // switched map (at most 10 s), and runs while they keep writing to shard 2.
  for (int i = 0; i < 10000 && !writers.AllSwitched(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const MonoTime begin = clock.Now();
  FL_RETURN_IF_ERROR(mover->Complete());
  times.complete = Seconds(begin, clock.Now());
  state = mover->state();
  return Status::Ok();
}

// The three checks of the file comment; the message names the first failure.
Status Check(Stores& s, uint64_t rows, const std::map<std::string, std::string>& expected,
             uint64_t fence_seq) {
  FL_ASSIGN_OR_RETURN(ShardMap map, Directory(*s.from, s.directory).Load());
  for (const auto& [key, value] : expected) {
    const shard::Route route = map.RouteKey(key);
    ShardStore& owner = route.shard == ShardId(1) ? *s.s1 : *s.s2;
    FL_ASSIGN_OR_RETURN(std::optional<std::string> got, owner.Read(key, route.epoch));
    if (got != value) return DataLossError("lost write: " + key + " = " + value);
  }
  auto count = [](ShardStore& store, uint64_t& n) -> Status {
    std::string from;
    for (n = 0;;) {
      FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, store.store().Begin());
      FL_ASSIGN_OR_RETURN(std::vector<KeyValue> page, store.ScanRows(*txn, from, "", 50000));
      txn->Rollback();
      n += page.size();
      if (page.size() < 50000) return Status::Ok();
      from = page.back().key + std::string(1, '\0');
    }
  };
  uint64_t on1 = 0, on2 = 0;
  FL_RETURN_IF_ERROR(count(*s.s1, on1));
  FL_RETURN_IF_ERROR(count(*s.s2, on2));
  if (on1 != 0 || on2 != rows) {
    return DataLossError("duplicated or lost rows: shard 1 holds " + std::to_string(on1) +
                         ", shard 2 " + std::to_string(on2) + ", expected 0 and " +
                         std::to_string(rows));
  }
  FL_ASSIGN_OR_RETURN(std::unique_ptr<Transaction> txn, s.from->Begin());
  FL_ASSIGN_OR_RETURN(std::vector<shard::LogEntry> late,
                      s.s1->ReadLog(*txn, fence_seq, UINT64_MAX, 10));
  txn->Rollback();
  if (!late.empty())
    return DataLossError("shard 1 accepted a write after the fence: " + late[0].key);
  return Status::Ok();
}

Status Cleanup(LocalStore& store, const std::string& prefix) {
  const std::string end = prefix.substr(0, prefix.size() - 1) + "0";  // '0' follows '/'
  for (;;) {
    size_t deleted = 0;
    const Status status = RunInTransaction(store, [&](Transaction& txn) -> Status {
      FL_ASSIGN_OR_RETURN(std::vector<KeyValue> page, txn.Scan(prefix, end, 20000));
      deleted = page.size();
      for (const KeyValue& kv : page) FL_RETURN_IF_ERROR(txn.Delete(kv.key).status());
      return Status::Ok();
    });
    if (!status.ok()) return status;
    if (deleted < 20000) return Status::Ok();
  }
}

double Pct(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  return static_cast<double>(
             sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))]) /
         1e6;
}

void Print(const BenchReshardArgs& args, const PhaseTimes& t, const Writers& w,
           const shard::ReshardState& state) {
  const std::vector<int64_t> waits = w.Waits();
  std::printf("faultline bench reshard: %llu rows, %u writer(s) at %s, copy batch %u\n",
              static_cast<unsigned long long>(args.rows), args.writers,
              args.rate == 0 ? "full speed" : (std::to_string(args.rate) + " writes/s").c_str(),
              args.batch);
  std::printf("copy          %.3f s  %.0f rows/s\n", t.copy,
              t.copy > 0 ? static_cast<double>(args.rows) / t.copy : 0.0);
  std::printf("catch-up      %.3f s  (%llu source writes during the move)\n", t.catch_up,
              static_cast<unsigned long long>(state.fence_seq - state.start_seq));
  std::printf("verify        %.3f s\n", t.verify);
  std::printf("cutover       %.3f ms  (fence, final catch-up, directory CAS, open)\n",
              t.cutover * 1e3);
  std::printf("complete      %.3f s  (moved rows dropped from the source)\n", t.complete);
  std::printf(
      "writers       %llu writes acknowledged, %zu error(s); %zu waited at the fence: "
      "p50 %.3f ms  p99 %.3f ms  max %.3f ms\n",
      static_cast<unsigned long long>(w.acked()), w.errors().size(), waits.size(), Pct(waits, 0.5),
      Pct(waits, 0.99), waits.empty() ? 0.0 : static_cast<double>(waits.back()) / 1e6);
}

}  // namespace

CLI::App* AddBenchReshardCommand(CLI::App& bench, BenchReshardArgs& args) {
  CLI::App* cmd = bench.add_subcommand(
      "reshard", "a live move of a key range between two stores, with writers running");
  cmd->add_option("--from", args.from,
                  "source store: sqlite:PATH[?synchronous=...] or postgresql://...")
      ->required();
  cmd->add_option("--to", args.to, "target store URI")->required();
  cmd->add_option("--rows", args.rows, "rows to move")
      ->check(CLI::Range(uint64_t{1}, uint64_t{50'000'000}));
  cmd->add_option("--writers", args.writers, "writer threads during the move")
      ->check(CLI::Range(0u, 64u));
  cmd->add_option("--rate", args.rate, "writes per second over all writers (0: unthrottled)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1'000'000}));
  cmd->add_option("--batch", args.batch, "rows per copy step")
      ->check(CLI::Range(uint32_t{1}, uint32_t{100'000}));
  cmd->add_option("--table", args.table, "table to use in both stores (created when missing)");
  return cmd;
}

int RunBenchReshard(const BenchReshardArgs& args) {
  OpenStoreOptions options;
  options.table = args.table;
  options.connections_max = args.writers + 2;
  Stores s;
  Result<std::unique_ptr<LocalStore>> from = OpenStore(args.from, options);
  if (!from.ok()) throw UsageError("--from: " + std::string(from.status().message()));
  Result<std::unique_ptr<LocalStore>> to = OpenStore(args.to, options);
  if (!to.ok()) throw UsageError("--to: " + std::string(to.status().message()));
  s.from = std::move(from).value();
  s.to = std::move(to).value();
  s.run = "bench/" + std::to_string(SystemClock::Default().WallNow().nanos()) + "/";
  s.directory.key = s.run + "map";
  s.s1 = std::make_unique<ShardStore>(*s.from, shard::ShardStoreOptions{s.run + "s1/"});
  s.s2 = std::make_unique<ShardStore>(*s.to, shard::ShardStoreOptions{s.run + "s2/"});
  Status status = Fill(s, args.rows);
  Writers writers(s, args.writers, args.rows, args.rate);
  PhaseTimes times;
  shard::ReshardState state;
  if (status.ok()) {
    writers.Start();
    status = Move(s, args.batch, writers, times, state);
    writers.Stop();
  }
  if (status.ok() && !writers.errors().empty()) status = InternalError(writers.errors()[0]);
  if (status.ok()) status = Check(s, args.rows, writers.Expected(), state.fence_seq);
  if (status.ok()) Print(args, times, writers, state);
  const Status cleaned =
      Cleanup(*s.from, s.run).ok() ? Cleanup(*s.to, s.run) : Cleanup(*s.from, s.run);
  if (!status.ok()) {
    std::fprintf(stderr, "faultline: error: bench reshard failed: %s\n", status.ToString().c_str());
    return 1;
  }
  std::printf(
      "check         0 lost, 0 duplicated, 0 writes accepted by the source after the fence\n");
  if (!cleaned.ok()) {
    std::fprintf(stderr, "faultline: error: cleanup failed: %s\n", cleaned.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace faultline::app
