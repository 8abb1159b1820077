#include <cstdio>
#include <fstream>
#include <string>

#include "apps/faultline/commands.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/check/history_io.h"
#include "faultline/check/linearizability.h"

namespace faultline::app {

int RunCheck(const CheckArgs& args) {
  check::Model model = check::Model::kRegister;
  if (args.model == "register") {
    model = check::Model::kRegister;
  } else if (args.model == "kv") {
    model = check::Model::kKv;
  } else {
    UsageError("unknown model '" + args.model + "' (register or kv)");
  }
  std::ifstream in(args.history_path);
  if (!in) UsageError("cannot read '" + args.history_path + "'");
  Result<sim::History> history = check::ParseHistoryJsonl(in);
  if (!history.ok()) {
    UsageError(args.history_path + ": " + std::string(history.status().message()));
  }
  check::CheckOptions options;
  options.deadline = Duration::Seconds(static_cast<int64_t>(args.deadline_s));
  options.clock = &SystemClock::Default();  // --deadline is wall-clock time
  const check::LinearizabilityResult r = check::Check(*history, model, options);
  if (!r.error.ok()) UsageError(args.history_path + ": " + std::string(r.error.message()));
  std::printf("%s: %s (%zu ops, %zu partitions, %llu states, %.3f s)\n", args.history_path.c_str(),
              check::VerdictName(r.verdict), r.stats.ops, r.stats.partitions,
              static_cast<unsigned long long>(r.stats.states_explored),
              r.stats.elapsed.seconds_f());
  if (r.explanation.has_value()) std::printf("%s\n", r.explanation->text.c_str());
  return r.verdict == check::Verdict::kLinearizable ? 0 : 1;
}

}  // namespace faultline::app
