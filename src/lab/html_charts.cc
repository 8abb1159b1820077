// The report's inline SVG: time-series charts with fault bands, and the Porcupine-style timeline
// of operations that cannot be ordered (faultline/lab/html_report.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "faultline/lab/html_report.h"

namespace faultline::lab {
namespace {

constexpr int kWidth = 1140;
constexpr int kLeft = 70;  // room for the y axis labels
constexpr int kRight = 20;
constexpr int kTop = 30;  // room for the title
constexpr int kPlotHeight = 200;
constexpr int kLaneHeight = 22;
constexpr int kFaultRow = 16;
constexpr int kLegendRow = 18;
constexpr int kCharWidth = 6;  // approximate width of one 11px character

const char* const kSeriesColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                     "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

// Colour of a fault's band, by family.
const char* FaultColor(const std::string& name) {
  auto has = [&](const char* word) { return name.find(word) != std::string::npos; };
  if (has("partition") || has("isolate") || has("deaf") || has("delayed")) return "#ff7f0e";
  if (has("crash")) return "#d62728";
  if (has("pause")) return "#9467bd";
  if (has("clock")) return "#17becf";
  if (has("link") || has("clog")) return "#8c564b";
  return "#7f7f7f";
}

// A "nice" step (1, 2 or 5 x 10^k) giving about `ticks` intervals over `span`.
double NiceStep(double span, int ticks) {
  if (!(span > 0)) return 1;
  const double raw = span / ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

std::string FormatTick(double v) {
  char buf[32];
  if (std::fabs(v) >= 1e6) {
    std::snprintf(buf, sizeof(buf), "%.3g", v);
  } else if (v == std::floor(v)) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2g", v);
  }
  return buf;
}

struct XScale {
  int64_t end_ns = 1;
  double plot_width() const { return kWidth - kLeft - kRight; }
  double operator()(int64_t ns) const {
    const double t = std::clamp<double>(static_cast<double>(ns), 0, static_cast<double>(end_ns));
    return kLeft + t / static_cast<double>(end_ns) * plot_width();
  }
};

// The x axis (seconds) at `y`, with gridlines up to `grid_top`.
void XAxis(const XScale& x, int y, int grid_top, std::string* out) {
  const double end_s = static_cast<double>(x.end_ns) / 1e9;
  const double step = NiceStep(end_s, 10);
  for (double s = 0; s <= end_s + 1e-9; s += step) {
    const double px = x(static_cast<int64_t>(s * 1e9));
    *out += "<line x1=\"" + Num(px) + "\" y1=\"" + std::to_string(grid_top) + "\" x2=\"" + Num(px) +
            "\" y2=\"" + std::to_string(y) + "\" class=\"grid\"/>";
    *out += "<text x=\"" + Num(px) + "\" y=\"" + std::to_string(y + 14) +
            "\" text-anchor=\"middle\">" + FormatTick(s) + "</text>";
  }
  *out += "<line x1=\"" + std::to_string(kLeft) + "\" y1=\"" + std::to_string(y) + "\" x2=\"" +
          std::to_string(kWidth - kRight) + "\" y2=\"" + std::to_string(y) + "\" class=\"axis\"/>";
  *out += "<text x=\"" + std::to_string(kWidth - kRight) + "\" y=\"" + std::to_string(y + 28) +
          "\" text-anchor=\"end\">simulated time (s)</text>";
}

// Step line: each value holds until the next point.
std::string StepPath(const Series& s, const XScale& x, double y_max, int plot_bottom) {
  std::string d;
  auto y = [&](double v) { return plot_bottom - std::clamp(v / y_max, 0.0, 1.0) * kPlotHeight; };
  for (size_t i = 0; i < s.points.size(); ++i) {
    const auto& [t, v] = s.points[i];
    if (i == 0) {
      d += "M" + Num(x(t)) + " " + Num(y(v));
    } else {
      d += "H" + Num(x(t)) + "V" + Num(y(v));
    }
  }
  if (!s.points.empty()) d += "H" + Num(x(x.end_ns));
  return d;
}

// Assigns each fault a row so that no two labelled spans in a row overlap; returns rows used.
int PackFaultRows(const std::vector<FaultSpan>& faults, const XScale& x, std::vector<int>* row) {
  std::vector<size_t> order(faults.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return faults[a].start_ns < faults[b].start_ns; });
  std::vector<double> row_end;  // right edge in px, per row
  row->assign(faults.size(), 0);
  for (size_t i : order) {
    const FaultSpan& f = faults[i];
    const double left = x(f.start_ns);
    const double label = static_cast<double>((f.name.size() + f.target.size() + 2) * kCharWidth);
    const double right = std::max(x(f.end_ns), left + label) + 4;
    size_t r = 0;
    while (r < row_end.size() && row_end[r] > left) ++r;
    if (r == row_end.size()) row_end.push_back(0);
    row_end[r] = right;
    (*row)[i] = static_cast<int>(r);
  }
  return static_cast<int>(row_end.size());
}

// Bands across the plot [top, bottom) and one labelled row per fault below `rows_top`.
void FaultBands(const std::vector<FaultSpan>& faults, const XScale& x, int top, int bottom,
                int rows_top, std::string* out) {
  std::vector<int> row;
  PackFaultRows(faults, x, &row);
  std::string bands, rows;
  for (size_t i = 0; i < faults.size(); ++i) {
    const FaultSpan& f = faults[i];
    const double left = x(f.start_ns);
    const double width = std::max(2.0, x(f.end_ns) - left);
    const std::string color = FaultColor(f.name);
    const std::string label = f.target.empty() ? f.name : f.name + " " + f.target;
    bands += "<rect x=\"" + Num(left) + "\" y=\"" + std::to_string(top) + "\" width=\"" +
             Num(width) + "\" height=\"" + std::to_string(bottom - top) + "\" fill=\"" + color +
             "\" fill-opacity=\"0.12\"><title>" + HtmlEscape(label) + " " +
             HtmlEscape(FormatSimSeconds(f.start_ns)) + " to " +
             HtmlEscape(FormatSimSeconds(f.end_ns)) + "</title></rect>";
    const int y = rows_top + row[i] * kFaultRow;
    rows += "<rect x=\"" + Num(left) + "\" y=\"" + std::to_string(y + 2) + "\" width=\"" +
            Num(width) + "\" height=\"" + std::to_string(kFaultRow - 4) + "\" fill=\"" + color +
            "\" fill-opacity=\"0.55\"/>";
    rows += "<text x=\"" + Num(left + 2) + "\" y=\"" + std::to_string(y + kFaultRow - 4) +
            "\" class=\"fault\">" + HtmlEscape(label) + "</text>";
  }
  *out += bands + rows;
}

void Legend(const std::vector<const Series*>& series, int y, std::string* out) {
  double px = kLeft;
  int row_y = y;
  for (size_t i = 0; i < series.size(); ++i) {
    const double width = 30.0 + static_cast<double>(series[i]->name.size() * kCharWidth);
    if (px + width > kWidth - kRight && px > kLeft) {
      px = kLeft;
      row_y += kLegendRow;
    }
    const char* color = kSeriesColors[i % std::size(kSeriesColors)];
    *out += "<rect x=\"" + Num(px) + "\" y=\"" + std::to_string(row_y - 9) +
            "\" width=\"14\" height=\"10\" fill=\"" + color + "\"/>";
    *out += "<text x=\"" + Num(px + 18) + "\" y=\"" + std::to_string(row_y) + "\">" +
            HtmlEscape(series[i]->name) + "</text>";
    px += width + 12;
  }
}

int LegendRows(const std::vector<const Series*>& series) {
  double px = kLeft;
  int rows = series.empty() ? 0 : 1;
  for (const Series* s : series) {
    const double width = 30.0 + static_cast<double>(s->name.size() * kCharWidth);
    if (px + width > kWidth - kRight && px > kLeft) {
      px = kLeft;
      ++rows;
    }
    px += width + 12;
  }
  return rows;
}

// One on/off row per series.
void Lanes(const std::vector<const Series*>& series, const XScale& x, int top, std::string* out) {
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = *series[i];
    const int y = top + static_cast<int>(i) * kLaneHeight;
    *out += "<text x=\"" + std::to_string(kLeft - 6) + "\" y=\"" + std::to_string(y + 15) +
            "\" text-anchor=\"end\">" + HtmlEscape(s.name) + "</text>";
    *out += "<line x1=\"" + std::to_string(kLeft) + "\" y1=\"" + std::to_string(y + kLaneHeight) +
            "\" x2=\"" + std::to_string(kWidth - kRight) + "\" y2=\"" +
            std::to_string(y + kLaneHeight) + "\" class=\"grid\"/>";
    for (size_t k = 0; k < s.points.size(); ++k) {
      if (!(s.points[k].second > 0)) continue;
      const int64_t end = k + 1 < s.points.size() ? s.points[k + 1].first : x.end_ns;
      const double left = x(s.points[k].first);
      *out += "<rect x=\"" + Num(left) + "\" y=\"" + std::to_string(y + 4) + "\" width=\"" +
              Num(std::max(1.0, x(end) - left)) + "\" height=\"" + std::to_string(kLaneHeight - 8) +
              "\" fill=\"" + kSeriesColors[i % std::size(kSeriesColors)] + "\"/>";
    }
  }
}

std::string SvgOpen(int height, const std::string& title) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" +
         std::to_string(kWidth) + "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " +
         std::to_string(kWidth) + " " + std::to_string(height) + "\" role=\"img\" aria-label=\"" +
         HtmlEscape(title) + "\"><text x=\"" + std::to_string(kLeft) +
         "\" y=\"18\" class=\"title\">" + HtmlEscape(title) + "</text>";
}

}  // namespace

std::string FormatSimSeconds(int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f s", static_cast<double>(ns) / 1e9);
  return buf;
}

std::string RenderChartSvg(const ChartSpec& chart) {
  XScale x;
  x.end_ns = std::max<int64_t>(1, chart.end_ns);
  const bool lanes = chart.unit == "lane";
  const int plot_height = lanes ? static_cast<int>(chart.series.size()) * kLaneHeight : kPlotHeight;
  const int plot_bottom = kTop + plot_height;
  std::vector<int> rows;
  const int fault_rows = PackFaultRows(chart.faults, x, &rows);
  const int axis_space = 34;
  const int rows_top = plot_bottom + axis_space;
  const int legend_top = rows_top + fault_rows * kFaultRow + 16;
  const int legend_rows = lanes ? 0 : LegendRows(chart.series);
  const int height = legend_top + legend_rows * kLegendRow + 6;
  std::string out = SvgOpen(height, chart.title);
  FaultBands(chart.faults, x, kTop, plot_bottom, rows_top, &out);
  XAxis(x, plot_bottom, kTop, &out);
  if (fault_rows > 0) {
    out += "<text x=\"" + std::to_string(kLeft - 6) + "\" y=\"" + std::to_string(rows_top + 12) +
           "\" text-anchor=\"end\">faults</text>";
  }
  if (lanes) {
    Lanes(chart.series, x, kTop, &out);
  } else {
    double y_max = 0;
    for (const Series* s : chart.series) {
      for (const auto& [t, v] : s->points) y_max = std::max(y_max, v);
    }
    double y_min = 0;
    for (const Series* s : chart.series) {
      for (const auto& [t, v] : s->points) y_min = std::min(y_min, v);
    }
    // A flat series (all zero, say) still gets a readable 0..1 axis.
    const double step = NiceStep(y_max - y_min > 1e-9 ? y_max - y_min : 1.0, 4);
    const double top = std::max(step, std::ceil(y_max / step) * step);
    const double bottom = std::floor(y_min / step) * step;
    auto y = [&](double v) { return plot_bottom - (v - bottom) / (top - bottom) * kPlotHeight; };
    for (double v = bottom; v <= top + step * 1e-6; v += step) {
      out += "<line x1=\"" + std::to_string(kLeft) + "\" y1=\"" + Num(y(v)) + "\" x2=\"" +
             std::to_string(kWidth - kRight) + "\" y2=\"" + Num(y(v)) + "\" class=\"grid\"/>";
      out += "<text x=\"" + std::to_string(kLeft - 6) + "\" y=\"" + Num(y(v) + 4) +
             "\" text-anchor=\"end\">" + FormatTick(v) + "</text>";
    }
    out += "<text x=\"12\" y=\"" + std::to_string(kTop + kPlotHeight / 2) +
           "\" transform=\"rotate(-90 12 " + std::to_string(kTop + kPlotHeight / 2) +
           ")\" text-anchor=\"middle\">" + HtmlEscape(chart.unit) + "</text>";
    // The first series is the chart's subject: draw it last, on top of the others.
    for (size_t i = chart.series.size(); i-- > 0;) {
      // Shift the series so that StepPath's [0, y_max] maps onto [bottom, top].
      Series shifted = *chart.series[i];
      for (auto& p : shifted.points) p.second -= bottom;
      out += "<path d=\"" + StepPath(shifted, x, top - bottom, plot_bottom) + "\" stroke=\"" +
             kSeriesColors[i % std::size(kSeriesColors)] +
             "\" fill=\"none\" stroke-width=\"1.5\"/>";
    }
    Legend(chart.series, legend_top + 10, &out);
  }
  out += "</svg>";
  return out;
}

std::string RenderTimelineSvg(const std::vector<TimelineOp>& ops) {
  if (ops.empty()) return "";
  int64_t lo = ops.front().start_ns, hi = ops.front().start_ns;
  for (const TimelineOp& op : ops) {
    lo = std::min(lo, op.start_ns);
    hi = std::max(hi, op.end_ns < 0 ? op.start_ns : op.end_ns);
  }
  const int64_t span = std::max<int64_t>(hi - lo, 1'000'000);
  const int64_t pad = span / 10;
  const int64_t t0 = lo - pad;
  const int64_t t1 = hi + pad;
  std::map<int64_t, int> process_row;
  for (const TimelineOp& op : ops) process_row.emplace(op.process, 0);
  int next = 0;
  for (auto& [p, r] : process_row) r = next++;
  constexpr int kRow = 40;
  constexpr int kListRow = 15;
  const int list_top = kTop + next * kRow + 40;
  const int height = list_top + static_cast<int>(ops.size()) * kListRow + 8;
  auto x = [&](int64_t ns) {
    return kLeft + 70 +
           static_cast<double>(std::clamp(ns, t0, t1) - t0) / static_cast<double>(t1 - t0) *
               (kWidth - kLeft - 70 - kRight);
  };
  std::string out = SvgOpen(height,
                            "operations that cannot be ordered (longest linearisation, "
                            "then the op that cannot follow it)");
  for (const auto& [p, r] : process_row) {
    const int y = kTop + r * kRow;
    out += "<text x=\"" + std::to_string(kLeft + 62) + "\" y=\"" + std::to_string(y + 26) +
           "\" text-anchor=\"end\">process " + std::to_string(p) + "</text>";
    out += "<line x1=\"" + std::to_string(kLeft + 70) + "\" y1=\"" + std::to_string(y + kRow - 2) +
           "\" x2=\"" + std::to_string(kWidth - kRight) + "\" y2=\"" +
           std::to_string(y + kRow - 2) + "\" class=\"grid\"/>";
  }
  int order = 0;
  int listed = 0;
  for (const TimelineOp& op : ops) {
    const int y = kTop + process_row[op.process] * kRow;
    const double left = x(op.start_ns);
    const double right = op.end_ns < 0 ? x(t1) : x(op.end_ns);
    const std::string fill = op.blocked ? "#f4b6b6" : "#cfe3f5";
    const std::string stroke = op.blocked ? "#c62828" : "#1f77b4";
    out +=
        "<rect x=\"" + Num(left) + "\" y=\"" + std::to_string(y + 16) + "\" width=\"" +
        Num(std::max(3.0, right - left)) + "\" height=\"16\" fill=\"" + fill + "\" stroke=\"" +
        stroke + "\"" + (op.end_ns < 0 ? " stroke-dasharray=\"4 3\"" : "") + "><title>" +
        HtmlEscape(op.label) + " " + HtmlEscape(FormatSimSeconds(op.start_ns)) + " to " +
        (op.end_ns < 0 ? std::string("never returned") : HtmlEscape(FormatSimSeconds(op.end_ns))) +
        "</title></rect>";
    // The bar carries its number in the linearisation (X for the blocked op); the list below the
    // lanes spells each op out.
    const std::string tag = op.blocked ? "X" : std::to_string(++order);
    const std::string cls = op.blocked ? "blocked" : "op";
    out += "<text x=\"" + Num(left) + "\" y=\"" + std::to_string(y + 12) + "\" class=\"" + cls +
           "\">" + tag + "</text>";
    const std::string when =
        FormatSimSeconds(op.start_ns) + " to " +
        (op.end_ns < 0 ? std::string("never returned") : FormatSimSeconds(op.end_ns));
    out += "<text x=\"" + std::to_string(kLeft) + "\" y=\"" +
           std::to_string(list_top + listed++ * kListRow) + "\" class=\"" + cls + "\">" +
           HtmlEscape(tag + (op.blocked ? " (cannot be placed)" : "") + ": process " +
                      std::to_string(op.process) + " " + op.label + ", " + when) +
           "</text>";
  }
  const int axis_y = kTop + next * kRow + 14;
  out += "<text x=\"" + std::to_string(kLeft + 70) + "\" y=\"" + std::to_string(axis_y) + "\">" +
         HtmlEscape(FormatSimSeconds(t0)) + "</text>";
  out += "<text x=\"" + std::to_string(kWidth - kRight) + "\" y=\"" + std::to_string(axis_y) +
         "\" text-anchor=\"end\">" + HtmlEscape(FormatSimSeconds(t1)) + "</text>";
  out += "</svg>";
  return out;
}

}  // namespace faultline::lab
