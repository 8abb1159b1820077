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
//                 [--history-format=kv|register|kv-append]
// Defaults: seed 1, 10,000 ops, 10 keys, 10 clients, info-one-in 20 (0: no timeouts), kv.
// And --check times Check() on given files (see MaybeCheckFiles).
// --history-corrupt replaces the value of the K-th ok read (0-based; default the middle one) with
// 99, a value nobody writes, so the history is not linearizable. Refuting it is the expensive
// case for any WGL checker: every info write or cas before that read stays concurrent with it, so
// the search must try every subset of them before it can give up.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <charconv>
#include <chrono>
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
#include "faultline/check/history_io.h"
#include "faultline/check/linearizability.h"
#include "faultline/core/assert.h"

namespace faultline::check {
namespace {

// kKv: read/write/cas over keys, integer values. kRegister: the same over one register, in the
// register model's shapes (values v and [expected, new]). kKvAppend: read/write/append over keys,
// string values, appends being most of the writes (Jepsen-style kv histories).
enum class HistoryFormat : uint8_t { kKv, kRegister, kKvAppend };

struct KvHistoryOptions {
  HistoryFormat format = HistoryFormat::kKv;
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
  enum class Kind : uint8_t { kRead, kWrite, kCas, kAppend };
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
    return kind == Kind::kRead    ? "read"
           : kind == Kind::kWrite ? "write"
           : kind == Kind::kCas   ? "cas"
                                  : "append";
  };
  const bool reg = o.format == HistoryFormat::kRegister;
  const bool append = o.format == HistoryFormat::kKvAppend;
  std::vector<Client> clients(static_cast<size_t>(o.clients));
  std::vector<int64_t> registers(static_cast<size_t>(o.keys), kNull);
  std::vector<std::string> strings(static_cast<size_t>(o.keys), "null");  // kKvAppend: JSON text
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
      cl.key = reg ? 0 : uniform(o.keys);
      const std::string key = "{\"key\":" + std::to_string(cl.key);
      if (append) {
        // 40% reads, 10% writes, 50% appends; each write or append adds a fresh token.
        const int64_t roll = uniform(10);
        cl.kind = roll < 4 ? Kind::kRead : roll < 5 ? Kind::kWrite : Kind::kAppend;
        const std::string token = "\"" + std::to_string(started) + " \"";
        cl.invoke_value = key + ",\"value\":" + (cl.kind == Kind::kRead ? "null" : token) + "}";
      } else {
        cl.kind = static_cast<Kind>(uniform(3));
        if (cl.kind != Kind::kRead) cl.a = uniform(o.values);  // the draws of earlier versions:
        if (cl.kind == Kind::kCas) cl.b = uniform(o.values);   // same seed, same history
        if (reg) {
          cl.invoke_value = cl.kind == Kind::kRead    ? "null"
                            : cl.kind == Kind::kWrite ? json_value(cl.a)
                                                      : "[" + json_value(cl.a) + "," +
                                                            json_value(cl.b) + "]";
        } else if (cl.kind == Kind::kRead) {
          cl.invoke_value = key + ",\"value\":null}";
        } else if (cl.kind == Kind::kWrite) {
          cl.invoke_value = key + ",\"value\":" + json_value(cl.a) + "}";
        } else {
          cl.invoke_value =
              key + ",\"from\":" + json_value(cl.a) + ",\"to\":" + json_value(cl.b) + "}";
        }
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
      cl.failed = false;
      cl.completion_value = cl.invoke_value;
      if (append) {
        std::string& text = strings[static_cast<size_t>(cl.key)];
        const size_t at = cl.invoke_value.find("\"value\":") + 8;
        const std::string arg = cl.invoke_value.substr(at, cl.invoke_value.size() - 1 - at);
        if (cl.kind == Kind::kRead) {
          cl.completion_value =
              "{\"key\":" + std::to_string(cl.key) + ",\"value\":" + text + "}";
        } else if (cl.kind == Kind::kWrite || text == "null") {
          text = arg;
        } else {
          text.pop_back();  // both are JSON strings without escapes: join the contents
          text.append(arg, 1);
        }
        cl.phase = Phase::kTookEffect;
        continue;
      }
      int64_t& value = registers[static_cast<size_t>(cl.key)];
      if (cl.kind == Kind::kRead) {
        cl.completion_value =
            reg ? json_value(value)
                : "{\"key\":" + std::to_string(cl.key) + ",\"value\":" + json_value(value) + "}";
      } else if (cl.kind == Kind::kWrite) {
        value = cl.a;
      } else if (value == cl.a) {
        value = cl.b;
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
    if (i == pos) value = value[0] == '{' ? value.substr(0, value.rfind("\"value\":") + 8) + "99}" : "99";
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
    } else if (auto format = value_of("--history-format=")) {
      ok = *format == "kv" || *format == "register" || *format == "kv-append";
      gen.format = *format == "register"    ? HistoryFormat::kRegister
                   : *format == "kv-append" ? HistoryFormat::kKvAppend
                                            : HistoryFormat::kKv;
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

// --check mode, for side-by-side runs with another checker on the same files:
//   checker_bench --check --model=register|kv [--initial-value=JSON] [--iterations=N] FILE...
// reads each file once (ParseHistoryJsonl) and prints "FILE<TAB>verdict<TAB>check_ms<TAB>parse_ms",
// check_ms being the median of N (default 5) runs of Check() on the parsed history, parse_ms the
// time to read and parse the file. Wall-clock time, single thread.
std::optional<int> MaybeCheckFiles(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) != "--check") return std::nullopt;
  Model model = Model::kKv;
  CheckOptions options;
  options.clock = &SystemClock::Default();
  int64_t iterations = 5;
  std::vector<std::string> files;
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--model=kv" || arg == "--model=register") {
      model = arg == "--model=kv" ? Model::kKv : Model::kRegister;
    } else if (arg.substr(0, 16) == "--initial-value=") {
      options.initial_value_json = std::string(arg.substr(16));
    } else if (arg.substr(0, 13) == "--iterations=") {
      const std::string_view n = arg.substr(13);
      const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), iterations);
      if (ec != std::errc() || end != n.data() + n.size() || iterations < 1 || iterations > 1000) {
        std::fprintf(stderr, "checker_bench: --iterations takes 1..1000\n");
        return 2;
      }
    } else if (arg.substr(0, 2) == "--") {
      std::fprintf(stderr, "checker_bench: unknown flag %s for --check\n", argv[i]);
      return 2;
    } else {
      files.emplace_back(arg);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "checker_bench: --check needs FILE...\n");
    return 2;
  }
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  for (const std::string& file : files) {
    const auto parse_start = Clock::now();
    std::ifstream in(file);
    Result<History> history = ParseHistoryJsonl(in);
    const double parse_ms = ms(Clock::now() - parse_start);
    if (!in.is_open() || !history.ok()) {
      std::fprintf(stderr, "checker_bench: %s: %s\n", file.c_str(),
                   in.is_open() ? std::string(history.status().message()).c_str() : "cannot open");
      return 2;
    }
    std::vector<double> times;
    Verdict verdict = Verdict::kUnknown;
    for (int64_t i = 0; i < iterations; ++i) {
      const auto start = Clock::now();
      const LinearizabilityResult r = Check(*history, model, options);
      times.push_back(ms(Clock::now() - start));
      if (!r.error.ok()) {
        std::fprintf(stderr, "checker_bench: %s: %s\n", file.c_str(),
                     std::string(r.error.message()).c_str());
        return 2;
      }
      verdict = r.verdict;
    }
    std::sort(times.begin(), times.end());
    std::printf("%s\t%s\t%.4f\t%.4f\n", file.c_str(), VerdictName(verdict),
                times[times.size() / 2], parse_ms);
  }
  return 0;
}

}  // namespace
}  // namespace faultline::check

int main(int argc, char** argv) {
  if (const std::optional<int> code = faultline::check::MaybeCheckFiles(argc, argv)) return *code;
  if (const std::optional<int> code = faultline::check::MaybeWriteHistory(argc, argv)) {
    return *code;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
