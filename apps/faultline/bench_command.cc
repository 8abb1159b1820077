// faultline bench idempotency: the cost of idempotency keys on the user's own database.
//
// Two phases over the same store, each `ops` rounds split over `threads` threads (each round timed
// alone, on the monotonic clock):
//   bare          the request's own effect and nothing else: one transaction that Puts a 64-byte
//                 value to an effect row (one of `keys` rows, drawn Zipf(`skew`); 0 = uniform),
//                 committed. The baseline a service pays without idempotency.
//   idempotency   the same request made idempotent, the recommended way: Acquire of a fresh key
//                 (one transaction), then the effect and Complete with a 64-byte response in one
//                 transaction (effect and response commit together or not at all).
// Both phases start with a short unrecorded warm-up. Printed per phase: rounds/s, p50, p99 and max
// of the round latency (a round's retries after kAborted included: a service retries them too),
// and how many steps were retried; then what idempotency added (p50 and p99 differences). Written
// rows live under "bench/<run id>/" in the store's table (--table, default faultline_bench) and are
// deleted at the end.
//
// Exit codes: 0 done; 1 a round failed mid-run (one line on stderr); 2 misuse: bad arguments, an
// unparseable store URI or an unreachable server (one line on stderr).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "apps/faultline/commands.h"
#include "faultline/adapters/open_store.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/core/random.h"
#include "faultline/idempotency/idempotency_keys.h"

namespace faultline::app {
namespace {

using idempotency::ClaimState;
using idempotency::IdempotencyKeys;

// Inverse-CDF sampling of Zipf(s) over [0, n): P(i) proportional to 1 / (i + 1)^s.
class ZipfSampler {
 public:
  ZipfSampler(uint64_t n, double s) : cdf_(n) {
    double sum = 0;
    for (uint64_t i = 0; i < n; ++i) {
      sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
      cdf_[i] = sum;
    }
    for (double& c : cdf_) c /= sum;
  }
  uint64_t Sample(Rng& rng) const {
    const double u = static_cast<double>(rng.Next() >> 11) * 0x1.0p-53;
    const auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
    return std::min<uint64_t>(static_cast<uint64_t>(it - cdf_.begin()), cdf_.size() - 1);
  }

 private:
  std::vector<double> cdf_;
};

struct PhaseResult {
  std::vector<int64_t> latencies_ns;  // sorted
  double seconds = 0;
  Status status;
  uint64_t retries = 0;  // steps retried after kAborted
};

constexpr int kAbortedRetriesMax = 100;

double Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t at = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return static_cast<double>(sorted[at]) / 1e6;
}

class Bench {
 public:
  Bench(const BenchArgs& args, LocalStore& store, std::string run)
      : args_(args), store_(store), run_(std::move(run)), zipf_(args.keys, args.skew) {}

  // One request. kAborted (a conflict that outlasted RunInTransaction's own retries) committed
  // nothing: the step is retried, as a service would, and counted in `retries`.
  Status Round(bool idempotent, IdempotencyKeys& keys, Rng& rng, const std::string& key,
               uint64_t& retries) {
    const std::string row = "bench/" + run_ + "/row/" + std::to_string(zipf_.Sample(rng));
    const std::string value(64, 'v');
    auto retried = [&](const std::function<Status()>& step) {
      for (int i = 0;; ++i) {
        const Status s = step();
        if (s.code() != StatusCode::kAborted || i == kAbortedRetriesMax) return s;
        ++retries;
      }
    };
    if (!idempotent) {
      return retried([&] {
        return RunInTransaction(store_, [&](Transaction& txn) { return txn.Put(row, value); });
      });
    }
    static const idempotency::Fingerprint fp = idempotency::FingerprintOf("POST /bench");
    idempotency::Claim claim;
    FL_RETURN_IF_ERROR(retried([&]() -> Status {
      FL_ASSIGN_OR_RETURN(claim, keys.Acquire("bench", key, fp, Duration::Seconds(60)));
      return Status::Ok();
    }));
    if (claim.state != ClaimState::kClaimed) {
      return InternalError(std::string("fresh key not claimed: ") + ClaimStateName(claim.state));
    }
    const std::string response(64, 'r');
    return retried([&] {
      return RunInTransaction(store_, [&](Transaction& txn) -> Status {
        FL_RETURN_IF_ERROR(txn.Put(row, value));
        return keys.Complete(txn, "bench", key, claim.attempt, response);
      });
    });
  }

  PhaseResult Phase(bool idempotent, uint64_t ops, bool record) {
    std::vector<std::vector<int64_t>> per_thread(args_.threads);
    std::vector<Status> errors(args_.threads);
    std::vector<uint64_t> retries(args_.threads, 0);
    SystemClock& clock = SystemClock::Default();
    idempotency::KeyOptions key_options;
    key_options.prefix = "bench/" + run_ + "/idem/";
    const MonoTime start = clock.Now();
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < args_.threads; ++t) {
      threads.emplace_back([&, t] {
        auto keys = IdempotencyKeys::Create(store_, clock, key_options);
        FL_ASSERT(keys.ok());
        Rng rng(phase_seed_ * 1000 + t + 1);
        const uint64_t mine = ops / args_.threads + (t < ops % args_.threads ? 1 : 0);
        per_thread[t].reserve(mine);
        for (uint64_t i = 0; i < mine; ++i) {
          const std::string key = std::to_string(phase_seed_) + "-" + std::to_string(t) + "-" +
                                  std::to_string(i);
          const MonoTime begin = clock.Now();
          const Status s = Round(idempotent, **keys, rng, key, retries[t]);
          if (!s.ok()) {
            errors[t] = s;
            return;
          }
          per_thread[t].push_back((clock.Now() - begin).nanos());
        }
      });
    }
    for (std::thread& th : threads) th.join();
    ++phase_seed_;
    PhaseResult result;
    result.seconds = static_cast<double>((clock.Now() - start).nanos()) / 1e9;
    for (uint64_t r : retries) result.retries += r;
    for (const Status& e : errors) {
      if (!e.ok() && result.status.ok()) result.status = e;
    }
    if (record) {
      for (auto& v : per_thread) {
        result.latencies_ns.insert(result.latencies_ns.end(), v.begin(), v.end());
      }
      std::sort(result.latencies_ns.begin(), result.latencies_ns.end());
    }
    return result;
  }

  // Deletes everything under "bench/<run>/", in batches.
  Status Cleanup() {
    const std::string begin = "bench/" + run_ + "/";
    const std::string end = "bench/" + run_ + "0";  // '0' follows '/'
    for (;;) {
      size_t deleted = 0;
      const Status status = RunInTransaction(store_, [&](Transaction& txn) -> Status {
        FL_ASSIGN_OR_RETURN(std::vector<KeyValue> page, txn.Scan(begin, end, 500));
        deleted = page.size();
        for (const KeyValue& kv : page) FL_RETURN_IF_ERROR(txn.Delete(kv.key).status());
        return Status::Ok();
      });
      if (!status.ok()) return status;
      if (deleted < 500) return Status::Ok();
    }
  }

 private:
  const BenchArgs& args_;
  LocalStore& store_;
  const std::string run_;
  const ZipfSampler zipf_;
  uint64_t phase_seed_ = 1;
};

void PrintRow(const char* name, const PhaseResult& r) {
  std::printf("%-38s %10.0f %9.3f %9.3f %9.3f %9llu\n", name,
              static_cast<double>(r.latencies_ns.size()) / r.seconds, Percentile(r.latencies_ns, 0.5),
              Percentile(r.latencies_ns, 0.99),
              r.latencies_ns.empty() ? 0.0 : static_cast<double>(r.latencies_ns.back()) / 1e6,
              static_cast<unsigned long long>(r.retries));
}

}  // namespace

CLI::App* AddBenchCommand(CLI::App& app, BenchArgs& args) {
  CLI::App* bench = app.add_subcommand("bench", "measure faultline on your own database");
  bench->require_subcommand(1);
  CLI::App* idem = bench->add_subcommand(
      "idempotency", "claim + effect + complete rounds vs the bare effect transaction");
  idem->add_option("--store", args.store, "sqlite:PATH[?synchronous=full|normal] or postgresql://...")
      ->required();
  idem->add_option("--threads", args.threads, "concurrent clients")->check(CLI::Range(1u, 256u));
  idem->add_option("--ops", args.ops, "rounds per phase (split over the threads)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{10'000'000}));
  idem->add_option("--keys", args.keys, "effect rows the rounds write to")
      ->check(CLI::Range(uint64_t{1}, uint64_t{10'000'000}));
  idem->add_option("--skew", args.skew, "Zipf exponent over the effect rows (0: uniform)")
      ->check(CLI::Range(0.0, 10.0));
  idem->add_option("--table", args.table, "table to use (created when missing)");
  args.outbox_app = AddBenchOutboxCommand(*bench, args.outbox);
  return bench;
}

int RunBench(const BenchArgs& args) {
  if (args.outbox_app != nullptr && args.outbox_app->parsed()) return RunBenchOutbox(args.outbox);
  OpenStoreOptions options;
  options.table = args.table;
  options.connections_max = args.threads + 1;
  Result<std::unique_ptr<LocalStore>> store = OpenStore(args.store, options);
  if (!store.ok()) throw UsageError(std::string(store.status().message()));
  const std::string run = std::to_string(SystemClock::Default().WallNow().nanos());
  Bench bench(args, **store, run);
  const uint64_t warmup = std::max<uint64_t>(args.threads, std::min<uint64_t>(200, args.ops / 10));
  std::vector<std::pair<const char*, PhaseResult>> rows;
  for (bool idempotent : {false, true}) {
    PhaseResult warm = bench.Phase(idempotent, warmup, false);
    PhaseResult result = warm.status.ok() ? bench.Phase(idempotent, args.ops, true) : warm;
    if (!result.status.ok()) {
      bench.Cleanup().IgnoreError();
      std::fprintf(stderr, "faultline: error: bench round failed: %s\n",
                   result.status.ToString().c_str());
      return 1;
    }
    rows.emplace_back(idempotent ? "claim+effect+complete (2 commits)" : "bare effect (1 commit)",
                      std::move(result));
  }
  const Status cleaned = bench.Cleanup();
  std::printf("faultline bench idempotency: %u thread(s), %llu rounds per phase, %llu effect rows, "
              "skew %.2f\n",
              args.threads, static_cast<unsigned long long>(args.ops),
              static_cast<unsigned long long>(args.keys), args.skew);
  std::printf("%-38s %10s %9s %9s %9s %9s\n", "round", "rounds/s", "p50 ms", "p99 ms", "max ms",
              "retried");
  for (const auto& [name, r] : rows) PrintRow(name, r);
  const auto& bare = rows[0].second.latencies_ns;
  const auto& idem = rows[1].second.latencies_ns;
  std::printf("added by idempotency: p50 %+.3f ms, p99 %+.3f ms\n",
              Percentile(idem, 0.5) - Percentile(bare, 0.5),
              Percentile(idem, 0.99) - Percentile(bare, 0.99));
  if (!cleaned.ok()) {
    std::fprintf(stderr, "faultline: error: cleanup failed: %s\n", cleaned.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace faultline::app
