// Linearizability checker throughput (faultline/check/linearizability.h) on executed key-value
// histories. Target: at least 3x faster than Porcupine on 10,000 operations over 10 keys with 10
// clients, both single-threaded, on the same JSON-lines files (see the README for the procedure).
//
// Each history comes from clients running against a real register per key, so it is
// linearizable by construction; the benchmark fails (SkipWithError) if the checker says otherwise.
// Counters: ops_per_s (operations invoked, per second of checking), states (memo entries created
// by one check), memo_peak (largest memo of one partition), allocs_per_check.
//
// The binary also writes the histories it checks, so that another checker can be run on the same
// input; this mode does no benchmarking:
//   checker_bench --write-history=PATH [--history-seed=N] [--history-ops=N] [--history-keys=N]
//                 [--history-clients=N] [--history-info-one-in=N] [--history-corrupt[=K]]
// Defaults: seed 1, 10,000 ops, 10 keys, 10 clients, info-one-in 20 (0: no timeouts).
// --history-corrupt replaces the value of the K-th ok read (0-based; default the middle one) with
// 99, a value nobody writes, so the history is not linearizable. Refuting it is the expensive
// case for any WGL checker: every info write or cas before that read stays concurrent with it, so
// the search must try every subset of them before it can give up.
#include <benchmark/benchmark.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "bench/alloc_counter.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/check/history.h"
#include "faultline/check/linearizability.h"
#include "faultline/core/assert.h"

namespace faultline::check {
namespace {

struct KvHistoryOptions {
  uint64_t seed = 1;
  int64_t ops = 10'000;  // operations invoked; the history has about twice as many events
  int64_t keys = 10;
  int64_t clients = 10;  // each client has at most one operation in flight
  int64_t values = 5;    // writes and cas use the values 0 .. values-1
  // An operation times out (info) before taking effect with chance 1/info_one_in, and again after
  // taking effect with the same chance; 0: never.
  int64_t info_one_in = 20;
  int64_t time_step_ns_max = 3;  // each event is 1 .. this many ns after the previous one
  int64_t ops_max = 10'000'000;  // bound on `ops`, so a typo cannot fill the disk
};

struct KvHistory {
  History history;
  std::vector<size_t> ok_read_completions;  // positions of ok read completions in `history`
};

// Executes `clients` clients against one register per key (values start null) with random
// interleaving: each op is invoked, later takes effect atomically, later still completes ok (or
// fail for a cas whose expected value did not match), or times out as info before or after
// taking effect. Deterministic for a given options.seed.
KvHistory GenerateKvHistory(const KvHistoryOptions& o) {
  FL_ASSERT(o.ops >= 0 && o.ops <= o.ops_max);
  FL_ASSERT(o.keys > 0 && o.clients > 0 && o.values > 0);
  FL_ASSERT(o.info_one_in >= 0 && o.time_step_ns_max > 0);
  std::mt19937_64 rng(o.seed);
  auto uniform = [&rng](int64_t n) {
    return static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
  };
  constexpr int64_t kNull = -1;
  auto json_value = [](int64_t v) { return v == kNull ? std::string("null") : std::to_string(v); };
  auto times_out = [&]() { return o.info_one_in > 0 && uniform(o.info_one_in) == 0; };

  enum class Phase : uint8_t { kIdle, kInvoked, kTookEffect };
  enum class Kind : uint8_t { kRead, kWrite, kCas };
  struct Client {
    Phase phase = Phase::kIdle;
    Kind kind = Kind::kRead;
    int64_t key = 0;
    int64_t a = 0;  // write: value; cas: expected
    int64_t b = 0;  // cas: new
    std::string invoke_value;
    std::string completion_value;
    bool failed = false;
  };
  auto f_name = [](Kind kind) {
    return kind == Kind::kRead ? "read" : kind == Kind::kWrite ? "write" : "cas";
  };
  std::vector<Client> clients(static_cast<size_t>(o.clients));
  std::vector<int64_t> registers(static_cast<size_t>(o.keys), kNull);
  KvHistory out;
  int64_t t = 0;
  int64_t started = 0;
  int64_t in_flight = 0;
  while (started < o.ops || in_flight > 0) {
    const int64_t c = uniform(o.clients);
    Client& cl = clients[static_cast<size_t>(c)];
    t += 1 + uniform(o.time_step_ns_max);
    if (cl.phase == Phase::kIdle) {
      if (started >= o.ops) continue;
      ++started;
      ++in_flight;
      cl.key = uniform(o.keys);
      cl.kind = static_cast<Kind>(uniform(3));
      const std::string key = "{\"key\":" + std::to_string(cl.key);
      if (cl.kind == Kind::kRead) {
        cl.invoke_value = key + ",\"value\":null}";
      } else if (cl.kind == Kind::kWrite) {
        cl.a = uniform(o.values);
        cl.invoke_value = key + ",\"value\":" + json_value(cl.a) + "}";
      } else {
        cl.a = uniform(o.values);
        cl.b = uniform(o.values);
        cl.invoke_value =
            key + ",\"from\":" + json_value(cl.a) + ",\"to\":" + json_value(cl.b) + "}";
      }
      out.history.Add(c, OpType::kInvoke, f_name(cl.kind), cl.invoke_value, t);
      cl.phase = Phase::kInvoked;
    } else if (cl.phase == Phase::kInvoked) {
      if (times_out()) {  // before taking effect
        out.history.Add(c, OpType::kInfo, f_name(cl.kind), cl.invoke_value, t);
        cl.phase = Phase::kIdle;
        --in_flight;
        continue;
      }
      int64_t& reg = registers[static_cast<size_t>(cl.key)];
      cl.failed = false;
      cl.completion_value = cl.invoke_value;
      if (cl.kind == Kind::kRead) {
        cl.completion_value =
            "{\"key\":" + std::to_string(cl.key) + ",\"value\":" + json_value(reg) + "}";
      } else if (cl.kind == Kind::kWrite) {
        reg = cl.a;
      } else if (reg == cl.a) {
        reg = cl.b;
      } else {
        cl.failed = true;
      }
      cl.phase = Phase::kTookEffect;
    } else {
      const OpType type = times_out() ? OpType::kInfo : cl.failed ? OpType::kFail : OpType::kOk;
      if (type == OpType::kOk && cl.kind == Kind::kRead) {
        out.ok_read_completions.push_back(out.history.size());
      }
      out.history.Add(c, type, f_name(cl.kind), cl.completion_value, t);
      cl.phase = Phase::kIdle;
      --in_flight;
    }
  }
  FL_ASSERT(in_flight == 0);
  FL_ASSERT(out.history.size() >= static_cast<size_t>(2 * o.ops));
  return out;
}

// The same history with the value of the `nth` ok read replaced by 99, which nobody writes.
History CorruptOneRead(const KvHistory& kv, size_t nth) {
  FL_ASSERT(nth < kv.ok_read_completions.size());
  const size_t pos = kv.ok_read_completions[nth];
  History out;
  for (size_t i = 0; i < kv.history.size(); ++i) {
    const HistoryOp& op = kv.history.ops()[i];
    std::string value = op.value;
    if (i == pos) value = value.substr(0, value.rfind(':') + 1) + "99}";
    out.Add(op.process, op.type, op.f, value, op.time_ns);
  }
  FL_ASSERT(out.size() == kv.history.size());
  return out;
}

void BM_CheckKv(benchmark::State& state) {
  KvHistoryOptions gen;
  gen.ops = state.range(0);
  gen.keys = state.range(1);
  gen.clients = state.range(2);
  gen.seed = static_cast<uint64_t>(state.range(3));
  const KvHistory kv = GenerateKvHistory(gen);
  CheckOptions options;  // 60 s deadline, default memo limits
  options.clock = &SystemClock::Default();
  CheckStats stats;
  const uint64_t allocs_before = bench::Allocations();
  for (auto _ : state) {
    LinearizabilityResult r = Check(kv.history, Model::kKv, options);
    if (!r.error.ok() || r.verdict != Verdict::kLinearizable) {
      static std::string message;
      message = std::string("expected linearizable, got ") + VerdictName(r.verdict) + " " +
                std::string(r.error.message());
      state.SkipWithError(message.c_str());
      break;
    }
    stats = r.stats;
    benchmark::DoNotOptimize(r);
  }
  const double checks = static_cast<double>(state.iterations());
  state.counters["ops_per_s"] =
      benchmark::Counter(static_cast<double>(gen.ops) * checks, benchmark::Counter::kIsRate);
  state.counters["states"] = static_cast<double>(stats.states_explored);
  state.counters["memo_peak"] = static_cast<double>(stats.memo_peak);
  state.counters["allocs_per_check"] =
      checks > 0 ? static_cast<double>(bench::Allocations() - allocs_before) / checks : 0.0;
}
BENCHMARK(BM_CheckKv)
    ->ArgNames({"ops", "keys", "clients", "seed"})
    ->Args({1'000, 10, 10, 1})
    ->Args({10'000, 10, 10, 1})
    ->Args({10'000, 10, 10, 2})
    ->Args({10'000, 10, 10, 3})
    ->Args({10'000, 10, 10, 4})
    ->Args({10'000, 10, 10, 5})
    ->Args({100'000, 10, 10, 1})
    ->Unit(benchmark::kMillisecond);

// --write-history mode. Returns the process exit code when argv asks for it, nullopt otherwise.
std::optional<int> MaybeWriteHistory(int argc, char** argv) {
  std::string path;
  bool write = false;
  bool corrupt = false;
  std::optional<int64_t> corrupt_nth;  // nullopt: the middle ok read
  bool history_flag = false;
  KvHistoryOptions gen;
  auto parse = [](std::string_view text, int64_t& value) {
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return ec == std::errc() && end == text.data() + text.size() && value >= 0;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value_of = [&arg](std::string_view flag) -> std::optional<std::string_view> {
      if (arg.substr(0, flag.size()) != flag) return std::nullopt;
      return arg.substr(flag.size());
    };
    int64_t n = 0;
    bool ok = true;
    if (auto v = value_of("--write-history=")) {
      write = true;
      path = std::string(*v);
      ok = !path.empty();
    } else if (auto seed = value_of("--history-seed=")) {
      ok = parse(*seed, n);
      gen.seed = static_cast<uint64_t>(n);
    } else if (auto ops = value_of("--history-ops=")) {
      ok = parse(*ops, gen.ops) && gen.ops <= gen.ops_max;
    } else if (auto keys = value_of("--history-keys=")) {
      ok = parse(*keys, gen.keys) && gen.keys > 0;
    } else if (auto clients = value_of("--history-clients=")) {
      ok = parse(*clients, gen.clients) && gen.clients > 0;
    } else if (auto info = value_of("--history-info-one-in=")) {
      ok = parse(*info, gen.info_one_in);
    } else if (arg == "--history-corrupt") {
      corrupt = true;
    } else if (auto nth = value_of("--history-corrupt=")) {
      corrupt = true;
      ok = parse(*nth, n);
      corrupt_nth = n;
    } else {
      continue;
    }
    history_flag = true;
    if (!ok) {
      std::fprintf(stderr, "checker_bench: bad value in %s\n", argv[i]);
      return 2;
    }
  }
  if (!history_flag) return std::nullopt;
  if (!write) {
    std::fprintf(stderr, "checker_bench: --history-* flags need --write-history=PATH\n");
    return 2;
  }
  const KvHistory kv = GenerateKvHistory(gen);
  const size_t ok_reads = kv.ok_read_completions.size();
  const size_t nth = corrupt_nth ? static_cast<size_t>(*corrupt_nth) : ok_reads / 2;
  if (corrupt && nth >= ok_reads) {
    std::fprintf(stderr, "checker_bench: cannot corrupt ok read %zu of %zu\n", nth, ok_reads);
    return 2;
  }
  std::ofstream file(path, std::ios::trunc);
  if (!file) {
    std::fprintf(stderr, "checker_bench: cannot write %s\n", path.c_str());
    return 1;
  }
  (corrupt ? CorruptOneRead(kv, nth) : kv.history).WriteJsonl(file);
  file.flush();
  if (!file) {
    std::fprintf(stderr, "checker_bench: error writing %s\n", path.c_str());
    return 1;
  }
  std::string corrupted;
  if (corrupt) {
    corrupted = ", ok read " + std::to_string(nth) + " of " + std::to_string(ok_reads) + " bad";
  }
  std::fprintf(
      stderr,
      "checker_bench: wrote %zu events (%lld ops, %lld keys, %lld clients, info one in %lld, "
      "seed %llu%s) to %s\n",
      kv.history.size(), static_cast<long long>(gen.ops), static_cast<long long>(gen.keys),
      static_cast<long long>(gen.clients), static_cast<long long>(gen.info_one_in),
      static_cast<unsigned long long>(gen.seed), corrupted.c_str(), path.c_str());
  return 0;
}

}  // namespace
}  // namespace faultline::check

int main(int argc, char** argv) {
  if (const std::optional<int> code = faultline::check::MaybeWriteHistory(argc, argv)) {
    return *code;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
