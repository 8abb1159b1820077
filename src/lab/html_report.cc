// The lab's HTML report page (faultline/lab/html_report.h): summary table, per-scenario charts,
// failing runs. The charts' SVG is in html_charts.cc.
#include "faultline/lab/html_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace faultline::lab {
namespace {

constexpr const char* kStyle = R"(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1160px;color:#222;line-height:1.4}
h1{font-size:26px;margin-bottom:4px}h2{margin-top:36px;border-bottom:2px solid #ddd;padding-bottom:4px}
h3{margin-top:22px;font-size:17px}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border:1px solid #ddd;padding:3px 5px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.metrics{font-size:11px;color:#444;width:26%}td.verdict{width:40%}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.pass td.verdict{color:#1b5e20}tr.fail td.verdict{color:#b71c1c;font-weight:bold}
.badge{display:inline-block;border-radius:3px;padding:0 5px;font-size:12px;color:#fff}
.holds{background:#2e7d32}.expected{background:#ef6c00}.bad{background:#b71c1c}.unsure{background:#757575}
code,pre{font-family:ui-monospace,"SFMono-Regular",Menlo,monospace;font-size:12px}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:8px;overflow-x:auto}
.muted{color:#666;font-size:13px}
svg.chart{display:block;margin:8px 0 18px 0;font-size:11px;font-family:system-ui,sans-serif}
svg .grid{stroke:#eee}svg .axis{stroke:#999}svg .title{font-size:13px;font-weight:bold}
svg .fault{font-size:10px;fill:#333}svg .blocked{fill:#c62828;font-weight:bold}svg .op{fill:#1f3f66}
)";

std::string Fixed(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::string FormatMetric(double v) {
  if (v == static_cast<double>(static_cast<int64_t>(v)) && std::abs(v) < 1e12) {
    return std::to_string(static_cast<int64_t>(v));
  }
  return Fixed(v, std::abs(v) < 10 ? 3 : 1);
}

const char* BadgeClass(Verdict v) {
  switch (v) {
    case Verdict::kHolds:
      return "holds";
    case Verdict::kFailsAsExpected:
      return "expected";
    case Verdict::kInconclusive:
      return "unsure";
    default:
      return "bad";
  }
}

// The verdict in words for someone who has not read the scenario's code.
std::string VerdictSentence(const VariantSummary& s, const std::string& description) {
  const std::string design = "The " + s.variant + " design (" + description + ")";
  const std::string rate =
      std::to_string(s.failing_seeds.size()) + " of " + std::to_string(s.seeds) + " seeds";
  std::string names;
  for (const auto& [name, count] : s.violations_by_name) {
    if (!names.empty()) names += ", ";
    names += name;
  }
  switch (s.verdict_code) {
    case Verdict::kHolds:
      return design + " held: no safety check failed on any of the " + std::to_string(s.seeds) +
             " seeds, under the same faults that break the weaker designs.";
    case Verdict::kFailsAsExpected:
      return design + " broke, as the lab expects it to: the checkers found " + names + " on " +
             rate + ". This is the failure the scenario demonstrates.";
    case Verdict::kViolated:
      return design + " is supposed to hold but did not: " + names + " on " + rate +
             ". This is a bug in the hardened design or in the simulator.";
    case Verdict::kDidNotFail:
      return design + " was expected to break on at least " + Fixed(s.failure_rate_min * 100, 0) +
             "% of seeds but broke on only " + rate +
             ": the scenario no longer demonstrates its failure.";
    case Verdict::kInconclusive:
      return design + " broke on " + rate + ": too few seeds to judge its failure rate.";
  }
  return s.reason;
}

std::string ReplayCommand(const ReportRun& run) {
  return "faultline replay " + run.scenario + " --variant " + run.variant + " --seed " +
         std::to_string(run.seed) + " --trace";
}

void SummaryTable(const HtmlReportInput& in, std::string* out) {
  *out +=
      "<table id=\"summary\"><thead><tr><th>scenario</th><th>variant</th><th>seeds</th>"
      "<th>failing seeds</th><th>violations</th><th>failure rate</th><th>key metrics "
      "(mean over seeds)</th><th>verdict</th></tr></thead><tbody>";
  for (const VariantSummary& s : in.report->summaries) {
    const Scenario* scenario = FindScenario(s.scenario);
    std::string metrics;
    std::string description;
    if (scenario != nullptr) {
      for (const std::string& name : scenario->key_metrics()) {
        auto it = s.metrics.find(name);
        if (it == s.metrics.end()) continue;
        if (!metrics.empty()) metrics += " &#183; ";
        metrics += HtmlEscape(name) + "=" + HtmlEscape(FormatMetric(it->second.mean));
      }
      const std::vector<VariantSpec> variants = scenario->variants();
      if (const VariantSpec* v = FindVariant(variants, s.variant)) description = v->description;
    }
    const double rate =
        s.seeds == 0 ? 0.0
                     : static_cast<double>(s.failing_seeds.size()) / static_cast<double>(s.seeds);
    *out += std::string("<tr class=\"") + (s.fails_lab() ? "fail" : "pass") + "\"><td><a href=\"#" +
            HtmlEscape(s.scenario) + "\">" + HtmlEscape(s.scenario) + "</a></td><td>" +
            HtmlEscape(s.variant) + (s.hardened ? " <span class=\"muted\">(hardened)</span>" : "") +
            "</td><td class=\"num\">" + std::to_string(s.seeds) + "</td><td class=\"num\">" +
            std::to_string(s.failing_seeds.size()) + "</td><td class=\"num\">" +
            std::to_string(s.violations) + "</td><td class=\"num\">" + Fixed(rate * 100, 0) +
            "%</td><td class=\"metrics\">" + metrics +
            "</td><td class=\"verdict\"><span class=\"badge " + BadgeClass(s.verdict_code) + "\">" +
            HtmlEscape(s.verdict) + "</span> " + HtmlEscape(VerdictSentence(s, description)) +
            "</td></tr>";
  }
  *out += "</tbody></table>";
}

// The charts of one run: one per unit, in the order the series first use it.
void RunCharts(const ReportRun& run, std::string* out) {
  const RunResult& r = *run.result;
  std::vector<std::string> units;
  for (const Series& s : r.series) {
    if (std::find(units.begin(), units.end(), s.unit) == units.end()) units.push_back(s.unit);
  }
  for (const std::string& unit : units) {
    ChartSpec chart;
    chart.unit = unit;
    chart.end_ns = r.simulated.nanos();
    chart.faults = r.faults;
    std::string names;
    for (const Series& s : r.series) {
      if (s.unit != unit) continue;
      chart.series.push_back(&s);
      if (!names.empty()) names += ", ";
      names += s.name;
    }
    chart.title = run.variant + ", seed " + std::to_string(run.seed) + ": " +
                  (unit == "lane" ? "who could act as leader" : names);
    *out += RenderChartSvg(chart);
  }
  if (r.series.empty()) *out += "<p class=\"muted\">This run recorded no time series.</p>";
}

void FailureDetails(const ReportRun& run, std::string* out) {
  const RunResult& r = *run.result;
  *out += "<p>Seed <b>" + std::to_string(run.seed) + "</b> failed " +
          std::to_string(r.violation_count()) +
          " check instance(s). Replay it, event by event:</p>";
  *out += "<pre>" + HtmlEscape(ReplayCommand(run)) + "</pre><ul>";
  for (const auto& [name, count] : r.violations) {
    auto it = r.violation_details.find(name);
    *out += "<li><b>" + HtmlEscape(name) + "</b> &#215;" + std::to_string(count);
    if (it != r.violation_details.end()) *out += ": first: " + HtmlEscape(it->second);
    *out += "</li>";
  }
  *out += "</ul>";
  if (!run.history_excerpt.empty()) {
    *out += "<p class=\"muted\">History around the first violation (" +
            HtmlEscape(run.excerpt_note) + "):</p><pre>";
    for (const std::string& line : run.history_excerpt) *out += HtmlEscape(line) + "\n";
    *out += "</pre>";
  }
  if (run.history_excerpt.empty()) {
    *out += "<p class=\"muted\">No operation history to show: " +
            HtmlEscape(run.excerpt_note.empty() ? "this scenario exports none" : run.excerpt_note) +
            ".</p>";
  }
  if (!r.unorderable.empty()) {
    *out +=
        "<p>The clients' operations have no linearisation. The last operations of the longest "
        "one found, and the operation that cannot follow them:</p>";
    *out += RenderTimelineSvg(r.unorderable);
  }
}

void ScenarioSection(const HtmlReportInput& in, const Scenario& scenario, std::string* out) {
  const std::string id(scenario.id());
  *out += "<section id=\"" + HtmlEscape(id) + "\"><h2>" + HtmlEscape(id) + "</h2><p>" +
          HtmlEscape(std::string(scenario.description())) + "</p>";
  for (const ReportRun& run : in.runs) {
    if (run.scenario != id || run.result == nullptr) continue;
    const bool failed = run.result->violation_count() > 0;
    *out += "<h3>" + HtmlEscape(run.variant) + " &#8212; seed " + std::to_string(run.seed) +
            (failed ? " (failing)" : " (no violation)") + "</h3>";
    RunCharts(run, out);
    if (failed) FailureDetails(run, out);
  }
  *out += "</section>";
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
          out += "\xEF\xBF\xBD";  // U+FFFD
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::vector<std::string> HistoryExcerpt(const check::History& history, int64_t around_ns,
                                        int64_t window_ns, size_t max_ops) {
  const std::vector<check::HistoryOp>& ops = history.ops();
  // The first op at or after `around_ns`; show max_ops centred on it, within the window.
  size_t pivot = 0;
  while (pivot < ops.size() && ops[pivot].time_ns < around_ns) ++pivot;
  size_t from = pivot > max_ops / 2 ? pivot - max_ops / 2 : 0;
  while (from < pivot && ops[from].time_ns < around_ns - window_ns) ++from;
  std::vector<std::string> lines;
  for (size_t i = from; i < ops.size() && lines.size() < max_ops; ++i) {
    const check::HistoryOp& op = ops[i];
    if (op.time_ns > around_ns + window_ns) break;
    char at[32];
    std::snprintf(at, sizeof(at), "%12.6f s", static_cast<double>(op.time_ns) / 1e9);
    lines.push_back(std::string(i == pivot ? ">" : " ") + at + "  p" + std::to_string(op.process) +
                    " " + check::OpTypeName(op.type) + " " + op.f + " " + op.value);
  }
  return lines;
}

int64_t TimeInDetail(std::string_view detail) {
  // A decimal number followed by optional spaces and "s" that is not the start of a word.
  for (size_t i = 0; i < detail.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(detail[i]))) continue;
    if (i > 0 &&
        (std::isalnum(static_cast<unsigned char>(detail[i - 1])) || detail[i - 1] == '.')) {
      continue;
    }
    size_t j = i;
    while (j < detail.size() && std::isdigit(static_cast<unsigned char>(detail[j]))) ++j;
    if (j >= detail.size() || detail[j] != '.') continue;
    ++j;
    const size_t frac = j;
    while (j < detail.size() && std::isdigit(static_cast<unsigned char>(detail[j]))) ++j;
    if (j == frac) continue;
    const std::string number(detail.substr(i, j - i));
    while (j < detail.size() && detail[j] == ' ') ++j;
    if (j >= detail.size() || detail[j] != 's') continue;
    if (j + 1 < detail.size() && std::isalpha(static_cast<unsigned char>(detail[j + 1]))) continue;
    return static_cast<int64_t>(std::stod(number) * 1e9);
  }
  return -1;
}

std::string RenderHtmlReport(const HtmlReportInput& in) {
  FL_ASSERT(in.report != nullptr);
  const RunnerReport& report = *in.report;
  std::string out;
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
      "<title>faultline lab report</title><style>";
  out += kStyle;
  out += "</style></head><body><h1>faultline lab report</h1>";
  const uint64_t last = in.first_seed + (in.seeds == 0 ? 0 : in.seeds - 1);
  out += "<p class=\"muted\">" + HtmlEscape(in.command) + " &#8212; seeds " +
         std::to_string(in.first_seed) + " to " + std::to_string(last) + ", " +
         std::to_string(report.runs) + " runs. Verdict: <b>" + (report.ok() ? "PASS" : "FAIL") +
         "</b> (every hardened design must hold on every "
         "seed; every baseline must show its failure on its minimum share of seeds).</p>";
  out += "<h2 id=\"summary-title\">Summary</h2>";
  SummaryTable(in, &out);
  out +=
      "<p class=\"muted\">Charts show one run per variant: the first failing seed of a variant "
      "that failed, else the first seed. Shaded bands are the faults applied in that run "
      "(orange partitions, red crashes, purple pauses, teal clock faults, brown link faults), "
      "each also drawn on a labelled row under the plot.</p>";
  std::vector<std::string> shown;
  for (const VariantSummary& s : report.summaries) {
    if (std::find(shown.begin(), shown.end(), s.scenario) != shown.end()) continue;
    shown.push_back(s.scenario);
    if (const Scenario* scenario = FindScenario(s.scenario)) ScenarioSection(in, *scenario, &out);
  }
  for (const Divergence& d : report.divergences) {
    out += "<pre>" + HtmlEscape(d.Describe()) + "</pre>";
  }
  out += "</body></html>\n";
  return out;
}

}  // namespace faultline::lab
