// File: faultline/lab/html_report.h
//
// The lab's HTML report (`faultline lab ... --html FILE`): one self-contained page (inline CSS and
// SVG; no scripts, no network) built from the same RunnerReport the results table and --json
// print. It has
//   - a summary row per (scenario, variant): seeds, failing seeds, violations, failure rate, key
//     metrics (mean over seeds) and the verdict in a sentence;
//   - per scenario, charts over simulated time of one representative run per variant (the first
//     failing seed of a variant that failed, else the first seed), drawn from the run's
//     RunResult::series, with its RunResult::faults shaded as bands and listed as labelled rows;
//   - for a failing run: the seed, the exact `faultline replay` command, the first violation of
//     each check, the history around the first violation, and for a non-linearizable run the
//     operations that cannot be ordered on a Porcupine-style timeline (RunResult::unorderable).
// Every piece of text from a run goes through HtmlEscape. The output is well-formed XML inside
// each <svg> element (the tests parse it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/lab/runner.h"
#include "faultline/lab/scenario.h"

namespace faultline::lab {

// Escapes & < > " ' for HTML text and attribute values (and SVG text). Control characters other
// than tab and newline, which neither HTML nor XML allows, become U+FFFD.
std::string HtmlEscape(std::string_view text);

// One run the report draws.
struct ReportRun {
  std::string scenario;
  std::string variant;
  uint64_t seed = 0;
  const RunResult* result = nullptr;  // must outlive the rendering
  // The history around the first violation, one operation a line (empty: none recorded), and
  // where it was taken from ("ops around 12.500 s, where the first violation's detail places it").
  std::vector<std::string> history_excerpt;
  std::string excerpt_note;
};

struct HtmlReportInput {
  const RunnerReport* report = nullptr;
  uint64_t first_seed = 1;
  uint64_t seeds = 0;
  std::string command;  // the command line that produced the report, shown in its header
  std::vector<ReportRun> runs;
};

// The whole page. Requires input.report.
std::string RenderHtmlReport(const HtmlReportInput& input);

// One chart: the series (sharing a unit) as step lines over [0, end_ns], the faults as shaded
// bands with a labelled row each below the plot. Unit "lane": one on/off row per series.
struct ChartSpec {
  std::string title;
  std::string unit;
  std::vector<const Series*> series;
  std::vector<FaultSpan> faults;
  int64_t end_ns = 0;
};
std::string RenderChartSvg(const ChartSpec& chart);
// Porcupine-style: one row per process, each op a bar from invocation to return (to the right
// edge, dashed, when it never returned); the blocked op in red, the others numbered in the order
// of the longest linearisation found.
std::string RenderTimelineSvg(const std::vector<TimelineOp>& ops);

// "12.5 s": a simulated time for labels.
std::string FormatSimSeconds(int64_t ns);

// The history ops within `window_ns` of `around_ns`, at most `max_ops`, as lines
// "  12.504000 s  p3 invoke write {...}"; a leading ">" marks the first op at or after around_ns.
std::vector<std::string> HistoryExcerpt(const sim::History& history, int64_t around_ns,
                                        int64_t window_ns, size_t max_ops);
// The first simulated time ("12.500 s", "at 3.2s") a violation detail mentions, in ns; -1 if
// none.
int64_t TimeInDetail(std::string_view detail);

}  // namespace faultline::lab
