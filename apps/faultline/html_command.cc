// faultline lab --html FILE: picks the runs the report draws, replays the failing ones for their
// history, and writes the page of faultline/lab/html_report.h.
#include <cerrno>
#include <string>
#include <system_error>
#include <vector>

#include "apps/faultline/commands.h"
#include "faultline/lab/html_report.h"

namespace faultline::app {
namespace {

constexpr int64_t kExcerptWindowNs = 2'000'000'000;  // ±2 s of simulated time
constexpr size_t kExcerptOps = 30;

// The history around the run's first violation: replays the seed with the history recorded and
// checks that the replay is the same run (same determinism hash).
void AddExcerpt(const lab::RunSpec& spec, lab::ReportRun* run) {
  sim::History history;
  lab::RunContext ctx;
  ctx.seed = run->seed;
  ctx.variant = &spec.variant;
  ctx.history_out = &history;
  const lab::RunResult again = spec.scenario->Run(ctx);
  if (again.hash != run->result->hash) {
    run->excerpt_note = "the replay diverged from the run; no history shown";
    return;
  }
  int64_t around = -1;
  for (const auto& [name, detail] : run->result->violation_details) {
    const int64_t t = lab::TimeInDetail(detail);
    if (t >= 0 && (around < 0 || t < around)) around = t;
  }
  if (around >= 0) {
    run->excerpt_note = "operations within 2 s of " + lab::FormatSimSeconds(around) +
                        ", the earliest time the violations' details name; > marks the first "
                        "operation at or after it";
  } else {
    if (history.ops().empty()) return;
    around = history.ops().back().time_ns;
    run->excerpt_note =
        "the violations' details name no time (they are judged on the final "
        "state): the last operations of the run";
  }
  run->history_excerpt = lab::HistoryExcerpt(history, around, kExcerptWindowNs, kExcerptOps);
}

}  // namespace

bool WriteHtml(const std::string& path, const lab::RunnerReport& report,
               const std::vector<lab::RunSpec>& specs, uint64_t first_seed, uint64_t seeds,
               const std::string& command, std::string* error) {
  FL_ASSERT(report.results.size() == specs.size());
  lab::HtmlReportInput input;
  input.report = &report;
  input.first_seed = first_seed;
  input.seeds = seeds;
  input.command = command;
  for (size_t j = 0; j < specs.size(); ++j) {
    const std::vector<lab::RunResult>& results = report.results[j];
    if (results.empty()) continue;
    // The first failing seed, else the first seed.
    size_t k = 0;
    while (k < results.size() && results[k].violation_count() == 0) ++k;
    if (k == results.size()) k = 0;
    lab::ReportRun run;
    run.scenario = std::string(specs[j].scenario->id());
    run.variant = specs[j].variant.name;
    run.seed = specs[j].seeds[k];
    run.result = &results[k];
    if (results[k].violation_count() > 0) AddExcerpt(specs[j], &run);
    input.runs.push_back(std::move(run));
  }
  const std::string html = lab::RenderHtmlReport(input);
  return WriteFileAtomically(path, html, error);
}

}  // namespace faultline::app
