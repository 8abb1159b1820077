// The HTML report writer (faultline/lab/html_report.h) and the chart data the scenarios record
// for it (src/lab/chart_data.h): escaping, SVG well-formedness, fault spans, series, and that
// every built-in scenario records faults and at least one series.
#include "faultline/lab/html_report.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "faultline/lab/runner.h"
#include "src/lab/chart_data.h"

namespace faultline::lab {
namespace {

// Counts elements opened and closed in `xml` (a tiny checker: tags must balance and nest; self-
// closing tags count as both). Returns false on the first mismatch.
bool Balanced(const std::string& xml, std::string* why) {
  std::vector<std::string> stack;
  for (size_t i = 0; i < xml.size(); ++i) {
    if (xml[i] != '<') continue;
    const size_t end = xml.find('>', i);
    if (end == std::string::npos) {
      *why = "unterminated tag at " + std::to_string(i);
      return false;
    }
    std::string tag = xml.substr(i + 1, end - i - 1);
    i = end;
    if (tag.empty() || tag[0] == '!' || tag[0] == '?') continue;
    if (tag.back() == '/') continue;
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name) {
        *why = "</" + name + "> closes " + (stack.empty() ? "nothing" : "<" + stack.back() + ">");
        return false;
      }
      stack.pop_back();
      continue;
    }
    stack.push_back(tag.substr(0, tag.find(' ')));
  }
  if (!stack.empty()) {
    *why = "<" + stack.back() + "> never closed";
    return false;
  }
  return true;
}

TEST(HtmlEscapeTest, EscapesMarkupQuotesAndControlCharacters) {
  EXPECT_EQ(HtmlEscape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(HtmlEscape("</svg><script>x</script>"), "&lt;/svg&gt;&lt;script&gt;x&lt;/script&gt;");
  EXPECT_EQ(HtmlEscape("tab\tnewline\n"), "tab\tnewline\n");
  EXPECT_EQ(HtmlEscape(std::string("a\x01"
                                   "b",
                                   3)),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(HtmlEscape("caf\xC3\xA9"), "caf\xC3\xA9");  // UTF-8 passes through
  EXPECT_EQ(HtmlEscape(""), "");
}

TEST(TimeInDetailTest, FindsTheFirstTimeInSeconds) {
  EXPECT_EQ(TimeInDetail("3700 ms > 2520 ms after the crash of n2 at 25.000 s"), 25'000'000'000);
  EXPECT_EQ(TimeInDetail("invoked at 12.004500s, returned"), 12'004'500'000);
  EXPECT_EQ(TimeInDetail("ts 1.5 seconds"), -1);  // "seconds" is a word, not the unit
  EXPECT_EQ(TimeInDetail("value 3.5 and v2.5 s"), -1);
  EXPECT_EQ(TimeInDetail("no time here"), -1);
}

TEST(ChartDataTest, FaultSpansPairStartsWithTheirEnds) {
  std::vector<sim::FaultAction> schedule(6);
  schedule[0].at = Duration::Seconds(1);
  schedule[0].kind = sim::FaultKind::kCrash;
  schedule[0].node = NodeId(2);
  schedule[1].at = Duration::Seconds(2);
  schedule[1].kind = sim::FaultKind::kPartition;
  schedule[2].at = Duration::Seconds(3);
  schedule[2].kind = sim::FaultKind::kRestart;
  schedule[2].node = NodeId(2);
  schedule[3].at = Duration::Seconds(4);
  schedule[3].kind = sim::FaultKind::kClog;
  schedule[3].node = NodeId(1);
  schedule[3].length = Duration::Millis(500);
  schedule[4].at = Duration::Seconds(5);
  schedule[4].kind = sim::FaultKind::kHealAll;  // ends the partition
  schedule[5].at = Duration::Seconds(9);        // after the run's end: left out
  schedule[5].kind = sim::FaultKind::kPause;
  const std::vector<FaultSpan> spans = FaultSpans(schedule, 8'000'000'000);
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[0].name, "crash");
  EXPECT_EQ(spans[0].target, "n2");
  EXPECT_EQ(spans[0].start_ns, 1'000'000'000);
  EXPECT_EQ(spans[0].end_ns, 3'000'000'000);
  EXPECT_EQ(spans[1].name, "partition");
  EXPECT_EQ(spans[1].end_ns, 5'000'000'000);
  EXPECT_EQ(spans[2].name, "clog");
  EXPECT_EQ(spans[2].end_ns, 4'500'000'000);
}

TEST(ChartDataTest, RateAndCumulativeSeries) {
  const Series rate = RateSeries("r", {0, 50'000'000, 150'000'000}, 100'000'000, 250'000'000);
  ASSERT_EQ(rate.points.size(), 3u);
  EXPECT_DOUBLE_EQ(rate.points[0].second, 20.0);  // two events in 100 ms
  EXPECT_DOUBLE_EQ(rate.points[1].second, 10.0);
  EXPECT_DOUBLE_EQ(rate.points[2].second, 0.0);
  const Series total = CumulativeSeries("c", "n", {30, 10, 10}, 100);
  ASSERT_EQ(total.points.size(), 4u);
  EXPECT_EQ(total.points[1], (std::pair<int64_t, double>{10, 2.0}));
  EXPECT_EQ(total.points[3], (std::pair<int64_t, double>{100, 3.0}));
}

TEST(HtmlChartTest, ChartSvgIsBalancedAndEscapesNames) {
  Series a{"attempts <db>", "per second", {{0, 1.0}, {1'000'000'000, 5.0}}};
  Series b{"requests & more", "per second", {{0, 2.0}}};
  ChartSpec chart;
  chart.title = "t < u";
  chart.unit = "per second";
  chart.series = {&a, &b};
  chart.faults = {FaultSpan{"partition", "a<b", 500'000'000, 1'500'000'000},
                  FaultSpan{"crash", "n1", 700'000'000, 700'000'000}};
  chart.end_ns = 2'000'000'000;
  const std::string svg = RenderChartSvg(chart);
  std::string why;
  EXPECT_TRUE(Balanced(svg, &why)) << why;
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("attempts &lt;db&gt;"), std::string::npos);
  EXPECT_NE(svg.find("partition a&lt;b"), std::string::npos);
  EXPECT_EQ(svg.find("<db>"), std::string::npos);
  EXPECT_NE(svg.find("fill-opacity=\"0.12\""), std::string::npos);  // a band
}

TEST(HtmlChartTest, LanesAndTimelineAreBalanced) {
  Series lane{"n0 leads", "lane", {{0, 0.0}, {100, 1.0}, {300, 0.0}}};
  ChartSpec chart;
  chart.unit = "lane";
  chart.series = {&lane};
  chart.end_ns = 1000;
  std::string why;
  EXPECT_TRUE(Balanced(RenderChartSvg(chart), &why)) << why;
  const std::vector<TimelineOp> ops = {
      TimelineOp{1, "write {\"key\":1,\"value\":2}", 100, 200, false},
      TimelineOp{2, "read {\"key\":1} -> {\"key\":1,\"value\":1}", 150, -1, true}};
  const std::string svg = RenderTimelineSvg(ops);
  EXPECT_TRUE(Balanced(svg, &why)) << why;
  EXPECT_NE(svg.find("cannot be placed"), std::string::npos);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);  // never returned
}

// Every built-in scenario records faults and at least one series, and the page built from a real
// lab run is balanced and names every scenario.
TEST(HtmlReportTest, EveryScenarioHasChartsWithFaultBands) {
  std::vector<RunSpec> specs;
  for (const Scenario* s : AllScenarios()) {
    for (const VariantSpec& v : s->variants()) {
      if (v.hardened) specs.push_back(RunSpec{s, v, {1}});
    }
  }
  RunnerOptions options;
  options.keep_results = true;
  options.threads = 2;
  const RunnerReport report = RunSeeds(specs, options);
  HtmlReportInput input;
  input.report = &report;
  input.seeds = 1;
  input.command = "faultline lab --seeds 1 --html <x>";
  for (size_t j = 0; j < specs.size(); ++j) {
    const RunResult& r = report.results[j][0];
    EXPECT_FALSE(r.series.empty()) << specs[j].scenario->id();
    EXPECT_FALSE(r.faults.empty()) << specs[j].scenario->id();
    for (const Series& s : r.series) {
      for (size_t k = 1; k < s.points.size(); ++k) {
        EXPECT_LE(s.points[k - 1].first, s.points[k].first) << s.name;
      }
    }
    for (const FaultSpan& f : r.faults) EXPECT_LE(f.start_ns, f.end_ns) << f.name;
    input.runs.push_back(
        ReportRun{std::string(specs[j].scenario->id()), specs[j].variant.name, 1, &r, {}, ""});
  }
  const std::string html = RenderHtmlReport(input);
  const size_t body = html.find("<html");
  ASSERT_NE(body, std::string::npos);
  std::string why;
  EXPECT_TRUE(Balanced(html.substr(body), &why)) << why;
  EXPECT_NE(html.find("--html &lt;x&gt;"), std::string::npos);
  for (const Scenario* s : AllScenarios()) {
    EXPECT_NE(html.find("<section id=\"" + std::string(s->id()) + "\">"), std::string::npos);
  }
}

}  // namespace
}  // namespace faultline::lab
