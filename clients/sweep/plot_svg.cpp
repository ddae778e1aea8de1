#include "clients/sweep/plot_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "clients/sweep/sweep_format.h"
#include "clients/svg_text.h"

namespace dwarp::clients {
namespace {

// Okabe-Ito's colour-blind-safe palette without its yellow (too faint on white), then two of Paul Tol's
// muted colours; groups past the ninth reuse the colours in order.
constexpr const char* kPalette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                    "#56B4E9", "#882255", "#999933", "#000000"};
constexpr int kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

// Pixel room around the plot area, and the separate x slots of d = 0 and d = full.
constexpr double kMarginLeft = 72;
constexpr double kMarginTop = 48;
constexpr double kMarginBottom = 56;
constexpr double kLegendGap = 16;     // between the plot area and the legend box
constexpr double kLegendCharWidth = 6.4;  // a generous average advance of an 11 px sans-serif character
constexpr double kSlotWidth = 44;     // room for the "0" or "full" slot, including the gap to the log axis



// A tick label with as many decimals as the step needs (step 0.05 -> "0.35").
std::string TickLabel(double value, double step) {
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  char buffer[48];
  std::snprintf(buffer, sizeof(buffer), "%.*f", std::min(decimals, 12), value);
  std::string text = buffer;
  if (text.find_first_not_of("-0.") == std::string::npos) text = decimals == 0 ? "0" : text.substr(text[0] == '-');
  return text;
}

// 1, 2 or 5 times a power of ten, the smallest such step giving at most `max_ticks` intervals.
double NiceStep(double range, int max_ticks) {
  const double raw = range / max_ticks;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double factor : {1.0, 2.0, 5.0, 10.0})
    if (factor * power >= raw) return factor * power;
  return 10 * power;
}

// "300" -> true and 300; "full" or anything not a non-negative number -> false.
bool ParseNumericD(const std::string& text, double* d) {
  if (text.empty()) return false;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value) || value < 0) return false;
  *d = value;
  return true;
}

struct PlotPoint {
  double d = 0;  // meaningless for full
  bool full = false;
  double mean = 0;
  double std_dev = 0;
  int seeds_done = 0;
};

struct Group {
  const v1::DWarpRecord* record = nullptr;
  std::string label;
  std::string colour;
  std::vector<PlotPoint> points;  // numeric d ascending, then full (if any)
};

// The data-to-pixel mapping: a log axis for d > 0 with separate slots for 0 and full, a linear y axis.
class Axes {
 public:
  double plot_left = 0, plot_right = 0, plot_top = 0, plot_bottom = 0;
  bool has_zero = false, has_full = false;
  double log_lo = 0, log_hi = 1;  // log10 of the log region's ends
  double y_lo = 0, y_hi = 1;
  double legend_width = 0;  // of the legend box, right of the plot area

  double ZeroX() const { return plot_left + kSlotWidth / 2; }
  double FullX() const { return plot_right - kSlotWidth / 2; }
  double LogLeft() const { return plot_left + (has_zero ? kSlotWidth : 0); }
  double LogRight() const { return plot_right - (has_full ? kSlotWidth : 0); }
  // The x of a numeric d; d <= 0 is the 0 slot.
  double X(double d) const {
    if (d <= 0) return ZeroX();
    const double left = LogLeft(), right = LogRight();
    return left + (std::log10(d) - log_lo) / (log_hi - log_lo) * (right - left);
  }
  double Y(double score) const {
    return plot_bottom - (score - y_lo) / (y_hi - y_lo) * (plot_bottom - plot_top);
  }
};

std::string GroupLabel(const v1::DWarpRecord& record, bool with_dataset) {
  std::string label = record.model() + "/" + record.layer();
  if (with_dataset) label += "/" + record.dataset();
  if (!record.variant().empty()) label += " [" + record.variant() + "]";
  return label;
}

std::string LegendValue(const v1::DWarpRecord& record) {
  const std::string interval = record.has_d_warp_low() ? " [" + FormatDWarpInterval(record) + "]" : "";
  switch (record.status()) {
    case v1::DWARP_REACHED: return "d_warp " + FormatDWarpValue(record) + interval;
    case v1::DWARP_PROVISIONAL: return "d_warp " + FormatDWarpValue(record) + interval + " (provisional)";
    case v1::DWARP_NOT_REACHED: return "d_warp not reached";
    default: return "d_warp pending";
  }
}

// A d_warp that can be drawn: a crossing status, a positive finite value and a known threshold.
bool HasDWarpMarker(const v1::DWarpRecord& record) {
  const bool crossing = record.status() == v1::DWARP_REACHED || record.status() == v1::DWARP_PROVISIONAL;
  return crossing && std::isfinite(record.d_warp()) && record.d_warp() >= 0 && std::isfinite(record.threshold());
}

std::vector<Group> CollectGroups(const v1::DWarpResponse& dwarp) {
  std::set<std::string> datasets;
  for (const auto& record : dwarp.records()) datasets.insert(record.dataset());
  std::vector<Group> groups;
  for (const auto& record : dwarp.records()) {
    Group group;
    group.record = &record;
    group.label = GroupLabel(record, datasets.size() > 1);
    group.colour = kPalette[groups.size() % kPaletteSize];
    std::vector<PlotPoint> numeric, full;
    for (const auto& point : record.curve()) {
      if (point.seeds_done() <= 0 || !std::isfinite(point.mean_score())) continue;
      PlotPoint plotted;
      plotted.mean = point.mean_score();
      plotted.std_dev = std::isfinite(point.std_score()) ? point.std_score() : 0;
      plotted.seeds_done = point.seeds_done();
      if (point.d() == "full") {
        plotted.full = true;
        full.push_back(plotted);
      } else if (ParseNumericD(point.d(), &plotted.d)) {
        numeric.push_back(plotted);
      }
    }
    std::stable_sort(numeric.begin(), numeric.end(), [](const PlotPoint& a, const PlotPoint& b) { return a.d < b.d; });
    group.points = std::move(numeric);
    group.points.insert(group.points.end(), full.begin(), full.end());
    groups.push_back(std::move(group));
  }
  return groups;
}

bool HasErrorBar(const PlotPoint& point) { return point.std_dev > 0 && point.seeds_done > 1; }

std::string LegendText(const Group& group) { return group.label + ": " + LegendValue(*group.record); }

// Code points, not bytes: labels may hold UTF-8.
size_t DisplayLength(const std::string& text) {
  size_t length = 0;
  for (unsigned char c : text) length += (c & 0xC0) != 0x80;
  return length;
}

Axes LayOut(const std::vector<Group>& groups, double width, double height) {
  Axes axes;
  // The legend is as wide as its longest entry (line sample + text), within limits that leave the plot
  // most of the picture; a very long label may then overflow its box, never the plot.
  size_t longest = 0;
  for (const Group& group : groups) longest = std::max(longest, DisplayLength(LegendText(group)));
  axes.legend_width = groups.empty() ? 0 : std::clamp(44 + kLegendCharWidth * longest, 140.0, 0.4 * width);
  axes.plot_left = kMarginLeft;
  axes.plot_right = width - (groups.empty() ? 24 : axes.legend_width + kLegendGap + 8);
  axes.plot_top = kMarginTop;
  axes.plot_bottom = height - kMarginBottom;

  double d_min = INFINITY, d_max = -INFINITY, y_min = INFINITY, y_max = -INFINITY;
  auto widen_y = [&](double value) {
    if (!std::isfinite(value)) return;
    y_min = std::min(y_min, value);
    y_max = std::max(y_max, value);
  };
  for (const Group& group : groups) {
    for (const PlotPoint& point : group.points) {
      if (point.full) {
        axes.has_full = true;
      } else if (point.d <= 0) {
        axes.has_zero = true;
      } else {
        d_min = std::min(d_min, point.d);
        d_max = std::max(d_max, point.d);
      }
      const double spread = HasErrorBar(point) ? point.std_dev : 0;
      widen_y(point.mean - spread);
      widen_y(point.mean + spread);
    }
    widen_y(group.record->threshold());
    if (HasDWarpMarker(*group.record) && group.record->d_warp() > 0) {
      d_min = std::min(d_min, group.record->d_warp());
      d_max = std::max(d_max, group.record->d_warp());
      // The interval's finite positive ends are drawn too.
      for (double end : {group.record->d_warp_low(), group.record->d_warp_high()}) {
        if (!std::isfinite(end) || end <= 0) continue;
        d_min = std::min(d_min, end);
        d_max = std::max(d_max, end);
      }
    }
  }
  if (!(d_min <= d_max)) d_min = d_max = 100;  // no positive d yet: an arbitrary decade around 100
  axes.log_lo = std::log10(d_min);
  axes.log_hi = std::log10(d_max);
  // A little room so the end points are not on the slot edges; a single d gets a decade either side.
  const double log_pad = axes.log_hi > axes.log_lo ? 0.05 * (axes.log_hi - axes.log_lo) : 0.5;
  axes.log_lo -= log_pad;
  axes.log_hi += log_pad;

  if (!(y_min <= y_max)) y_min = 0, y_max = 1;
  const double y_pad = y_max > y_min ? 0.08 * (y_max - y_min) : std::max(0.05, 0.1 * std::fabs(y_max));
  axes.y_lo = y_min - y_pad;
  axes.y_hi = y_max + y_pad;
  return axes;
}

class SvgWriter {
 public:
  void Line(const std::string& css_class, double x1, double y1, double x2, double y2, const std::string& style) {
    text_ += "<line class=\"" + css_class + "\" x1=\"" + Px(x1) + "\" y1=\"" + Px(y1) + "\" x2=\"" + Px(x2) +
             "\" y2=\"" + Px(y2) + "\" " + style + "/>\n";
  }
  void Text(const std::string& css_class, double x, double y, const std::string& anchor, const std::string& text,
            const std::string& style = "") {
    text_ += "<text class=\"" + css_class + "\" x=\"" + Px(x) + "\" y=\"" + Px(y) + "\" text-anchor=\"" + anchor +
             "\"" + (style.empty() ? "" : " " + style) + ">" + EscapeXml(text) + "</text>\n";
  }
  void Circle(const std::string& css_class, double x, double y, double r, const std::string& style) {
    text_ += "<circle class=\"" + css_class + "\" cx=\"" + Px(x) + "\" cy=\"" + Px(y) + "\" r=\"" + Px(r) + "\" " +
             style + "/>\n";
  }
  void Raw(const std::string& text) { text_ += text; }
  const std::string& str() const { return text_; }

 private:
  std::string text_;
};

void DrawYAxis(SvgWriter& svg, const Axes& axes) {
  const double step = NiceStep(axes.y_hi - axes.y_lo, 6);
  for (double k = std::ceil(axes.y_lo / step); k * step <= axes.y_hi; k += 1) {
    const double value = k * step;
    const double y = axes.Y(value);
    svg.Line("ygrid", axes.plot_left, y, axes.plot_right, y, "stroke=\"#e6e6e6\" stroke-width=\"1\"");
    svg.Text("ytick", axes.plot_left - 6, y + 4, "end", TickLabel(value, step));
  }
  svg.Line("axis", axes.plot_left, axes.plot_top, axes.plot_left, axes.plot_bottom, "stroke=\"#333333\"");
  const double mid = (axes.plot_top + axes.plot_bottom) / 2;
  svg.Raw("<text class=\"axis-label\" x=\"" + Px(18) + "\" y=\"" + Px(mid) + "\" text-anchor=\"middle\" transform=\"rotate(-90 " +
          Px(18) + " " + Px(mid) + ")\">test score</text>\n");
}

void DrawXAxis(SvgWriter& svg, const Axes& axes, const std::vector<double>& grid_d) {
  const double y = axes.plot_bottom;
  // Powers of ten inside the log region get grid lines; with fewer than two of them the grid's own d
  // values are ticked too, so a narrow grid still has a readable axis.
  std::vector<double> decades;
  for (int e = static_cast<int>(std::ceil(axes.log_lo - 1e-9)); e <= axes.log_hi + 1e-9; ++e) decades.push_back(std::pow(10.0, e));
  for (double d : decades) {
    const double x = axes.X(d);
    svg.Line("xgrid", x, axes.plot_top, x, axes.plot_bottom, "stroke=\"#e6e6e6\" stroke-width=\"1\"");
    char label[32];
    std::snprintf(label, sizeof(label), d < 1e9 ? "%.0f" : "%.0e", d);
    svg.Text("xtick", x, y + 18, "middle", label);
  }
  if (decades.size() < 2) {
    for (double d : grid_d) {
      if (std::find(decades.begin(), decades.end(), d) != decades.end()) continue;
      char label[32];
      std::snprintf(label, sizeof(label), "%g", d);
      svg.Line("xtick-mark", axes.X(d), y, axes.X(d), y + 4, "stroke=\"#333333\"");
      svg.Text("xtick", axes.X(d), y + 18, "middle", label);
    }
  }
  // The axis line, broken between the 0 slot and the log region (0 has no logarithm), and between the log
  // region and the full slot (full is not a d): a gap with a break mark in it.
  const double zero_break = axes.plot_left + kSlotWidth * 3 / 4;
  const double full_break = axes.plot_right - kSlotWidth * 3 / 4;
  const double log_start = axes.has_zero ? zero_break + 5 : axes.plot_left;
  const double log_end = axes.has_full ? full_break - 5 : axes.plot_right;
  svg.Line("axis", log_start, y, log_end, y, "stroke=\"#333333\"");
  auto break_mark = [&](double x) {
    svg.Line("axis-break", x - 7, y + 5, x - 1, y - 5, "stroke=\"#333333\"");
    svg.Line("axis-break", x + 1, y + 5, x + 7, y - 5, "stroke=\"#333333\"");
  };
  if (axes.has_zero) {
    svg.Line("axis", axes.plot_left, y, zero_break - 5, y, "stroke=\"#333333\"");
    break_mark(zero_break);
    svg.Text("xtick", axes.ZeroX(), y + 18, "middle", "0");
  }
  if (axes.has_full) {
    svg.Line("axis", full_break + 5, y, axes.plot_right, y, "stroke=\"#333333\"");
    break_mark(full_break);
    svg.Text("xtick", axes.FullX(), y + 18, "middle", "full");
  }
  svg.Text("axis-label", (axes.plot_left + axes.plot_right) / 2, y + 42, "middle", "subspace dimension d");
}

// One dashed line per distinct threshold of a dataset (a relative threshold can differ between groups).
void DrawThresholds(SvgWriter& svg, const Axes& axes, const std::vector<Group>& groups, bool name_dataset) {
  std::vector<std::pair<std::string, double>> drawn;
  for (const Group& group : groups) {
    const double threshold = group.record->threshold();
    if (!std::isfinite(threshold)) continue;
    const std::pair<std::string, double> key{group.record->dataset(), threshold};
    if (std::find(drawn.begin(), drawn.end(), key) != drawn.end()) continue;
    drawn.push_back(key);
    const double y = axes.Y(threshold);
    svg.Line("threshold", axes.plot_left, y, axes.plot_right, y,
             "stroke=\"#555555\" stroke-width=\"1.2\" stroke-dasharray=\"6,4\"");
    char value[32];
    std::snprintf(value, sizeof(value), "%.3f", threshold);
    std::string label = std::string("threshold ") + value;
    if (name_dataset) label += " (" + group.record->dataset() + ")";
    // At the right end, where the curves have usually levelled off above or below it.
    svg.Text("threshold-label", axes.LogRight() - 4, y - 4, "end", label, "fill=\"#555555\"");
  }
}

void DrawErrorBar(SvgWriter& svg, const Axes& axes, double x, const PlotPoint& point, const std::string& colour) {
  if (!HasErrorBar(point)) return;
  const double top = axes.Y(point.mean + point.std_dev), bottom = axes.Y(point.mean - point.std_dev);
  svg.Raw("<path class=\"errorbar\" d=\"M " + Px(x) + " " + Px(top) + " V " + Px(bottom) + " M " + Px(x - 3) + " " +
          Px(top) + " H " + Px(x + 3) + " M " + Px(x - 3) + " " + Px(bottom) + " H " + Px(x + 3) +
          "\" stroke=\"" + colour + "\" stroke-width=\"1\" fill=\"none\"/>\n");
}

void DrawGroup(SvgWriter& svg, const Axes& axes, const Group& group, size_t index) {
  const std::string& colour = group.colour;
  svg.Raw("<g class=\"group\" id=\"group-" + std::to_string(index) + "\">\n");
  std::string points;
  for (const PlotPoint& point : group.points) {
    if (point.full) continue;
    if (!points.empty()) points += " ";
    points += Px(axes.X(point.d)) + "," + Px(axes.Y(point.mean));
  }
  if (!points.empty())
    svg.Raw("<polyline class=\"curve\" points=\"" + points + "\" fill=\"none\" stroke=\"" + colour +
            "\" stroke-width=\"2\"/>\n");
  for (const PlotPoint& point : group.points) {
    const double x = point.full ? axes.FullX() : axes.X(point.d);
    DrawErrorBar(svg, axes, x, point, colour);
    if (point.full) {
      // A square: the reference score, not a point of the curve.
      svg.Raw("<rect class=\"full-point\" x=\"" + Px(x - 4) + "\" y=\"" + Px(axes.Y(point.mean) - 4) +
              "\" width=\"8.00\" height=\"8.00\" fill=\"" + colour + "\"/>\n");
    } else {
      svg.Circle("point", x, axes.Y(point.mean), 3, "fill=\"" + colour + "\"");
    }
  }
  const v1::DWarpRecord& record = *group.record;
  if (HasDWarpMarker(record)) {
    const bool reached = record.status() == v1::DWARP_REACHED;
    const double x = axes.X(record.d_warp()), y = axes.Y(record.threshold());
    if (record.has_d_warp_low() && record.has_d_warp_high()) {
      // The interval: a horizontal bar at the threshold with end ticks; an end at d <= 0 sits at the plot's
      // left edge, one at +infinity at the right edge of the log axis (no tick: the bar runs on).
      const double low = record.d_warp_low() > 0 ? axes.X(record.d_warp_low()) : axes.X(std::pow(10.0, axes.log_lo));
      const bool open = !std::isfinite(record.d_warp_high());
      const double high = open ? axes.X(std::pow(10.0, axes.log_hi)) : axes.X(record.d_warp_high());
      const std::string stroke = "stroke=\"" + colour + "\" stroke-width=\"2.5\" stroke-opacity=\"0.55\"";
      svg.Line("dwarp-interval", low, y, high, y, stroke);
      svg.Line("dwarp-interval-end", low, y - 5, low, y + 5, stroke);
      if (!open) svg.Line("dwarp-interval-end", high, y - 5, high, y + 5, stroke);
    }
    svg.Line("dwarp-drop", x, y, x, axes.plot_bottom,
             "stroke=\"" + colour + "\" stroke-width=\"1\" stroke-dasharray=\"3,3\"" +
                 (reached ? "" : " stroke-opacity=\"0.6\""));
    // Provisional: hollow and lighter, as the value may still move.
    svg.Circle(reached ? "dwarp-marker" : "dwarp-marker provisional", x, y, 6,
               reached ? "fill=\"" + colour + "\" stroke=\"#ffffff\" stroke-width=\"1.5\""
                       : "fill=\"#ffffff\" stroke=\"" + colour + "\" stroke-width=\"2\" stroke-opacity=\"0.7\"");
  }
  svg.Raw("</g>\n");
}

void DrawLegend(SvgWriter& svg, const Axes& axes, const std::vector<Group>& groups) {
  if (groups.empty()) return;
  const double left = axes.plot_right + kLegendGap, top = axes.plot_top, row = 20;
  const double box_width = axes.legend_width, box_height = 12 + row * groups.size();
  svg.Raw("<g class=\"legend\">\n");
  svg.Raw("<rect class=\"legend-box\" x=\"" + Px(left) + "\" y=\"" + Px(top) + "\" width=\"" + Px(box_width) +
          "\" height=\"" + Px(box_height) + "\" fill=\"#ffffff\" stroke=\"#999999\"/>\n");
  for (size_t i = 0; i < groups.size(); ++i) {
    const double y = top + 16 + row * i;
    svg.Line("legend-line", left + 8, y, left + 30, y, "stroke=\"" + groups[i].colour + "\" stroke-width=\"2\"");
    svg.Text("legend-label", left + 36, y + 4, "start", LegendText(groups[i]),
             "font-size=\"11\"");
  }
  svg.Raw("</g>\n");
}

}  // namespace

std::string RenderDWarpSvg(const v1::DWarpResponse& dwarp, const PlotOptions& options) {
  // Below this the plot area would vanish behind the margins and the legend.
  const double width = std::max(options.width, 500), height = std::max(options.height, 300);
  const std::vector<Group> groups = CollectGroups(dwarp);
  const Axes axes = LayOut(groups, width, height);

  std::set<std::string> datasets;
  std::set<double> grid_d;
  for (const Group& group : groups) {
    datasets.insert(group.record->dataset());
    for (const PlotPoint& point : group.points)
      if (!point.full && point.d > 0) grid_d.insert(point.d);
  }

  SvgWriter svg;
  svg.Raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  svg.Raw("<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + Px(width) + "\" height=\"" +
          Px(height) + "\" viewBox=\"0 0 " + Px(width) + " " + Px(height) +
          "\" font-family=\"sans-serif\" font-size=\"12\">\n");
  svg.Raw("<rect class=\"background\" x=\"0\" y=\"0\" width=\"" + Px(width) + "\" height=\"" + Px(height) +
          "\" fill=\"#ffffff\"/>\n");
  const std::string title = options.title.empty() ? "d_warp \xE2\x80\x94 " + dwarp.sweep().sweep_id() : options.title;
  svg.Text("title", width / 2, 28, "middle", title, "font-size=\"16\" font-weight=\"bold\"");

  DrawYAxis(svg, axes);
  DrawXAxis(svg, axes, std::vector<double>(grid_d.begin(), grid_d.end()));
  DrawThresholds(svg, axes, groups, datasets.size() > 1);
  for (size_t i = 0; i < groups.size(); ++i) DrawGroup(svg, axes, groups[i], i);
  DrawLegend(svg, axes, groups);
  bool any_point = false;
  for (const Group& group : groups) any_point = any_point || !group.points.empty();
  if (!any_point)
    svg.Text("empty-note", (axes.plot_left + axes.plot_right) / 2, (axes.plot_top + axes.plot_bottom) / 2, "middle",
             "no finished jobs yet", "fill=\"#777777\"");
  svg.Raw("</svg>\n");
  return svg.str();
}

}  // namespace dwarp::clients
