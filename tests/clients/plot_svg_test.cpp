// clients/sweep/plot_svg.h and clients/sweep/plot_command.h: the d_warp picture from DWarpResponse messages built by
// hand (well-formed SVG, one line per group, the log axis and its 0 / full slots, the threshold's place,
// error bars, escaping, d_warp markers), and `dwarp plot` against a hand-written SweepService on loopback.
#include "tests/support/loopback_sweep_server.h"
#include "clients/sweep/plot_svg.h"

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "clients/sweep/plot_command.h"
#include "tests/support/test_dir.h"

namespace dwarp::clients {
namespace {

namespace fs = std::filesystem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- A small XML well-formedness check: one root, balanced and properly nested tags, quoted attribute
// values, no raw '<' or stray '&' in text or attribute values. Enough for what the writer emits (no CDATA,
// no DOCTYPE). Returns "" when well-formed, else what is wrong.

bool ValidEntityAt(const std::string& text, size_t at) {
  static const std::regex entity("^&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);");
  return std::regex_search(text.substr(at, 12), entity);
}

std::string CheckWellFormed(const std::string& xml) {
  std::vector<std::string> open;
  int roots = 0;
  size_t i = 0;
  while (i < xml.size()) {
    if (xml[i] != '<') {
      if (xml[i] == '&' && !ValidEntityAt(xml, i)) return "stray '&' in text at " + std::to_string(i);
      if (open.empty() && !std::isspace(static_cast<unsigned char>(xml[i])))
        return "text outside the root at " + std::to_string(i);
      ++i;
      continue;
    }
    if (xml.compare(i, 2, "<?") == 0) {
      const size_t end = xml.find("?>", i);
      if (end == std::string::npos || i != 0) return "bad processing instruction at " + std::to_string(i);
      i = end + 2;
      continue;
    }
    if (xml.compare(i, 4, "<!--") == 0) {
      const size_t end = xml.find("-->", i);
      if (end == std::string::npos) return "unterminated comment";
      i = end + 3;
      continue;
    }
    const bool closing = xml.compare(i, 2, "</") == 0;
    size_t j = i + (closing ? 2 : 1);
    const size_t name_start = j;
    while (j < xml.size() && (std::isalnum(static_cast<unsigned char>(xml[j])) || xml[j] == '-' || xml[j] == ':' ||
                              xml[j] == '_'))
      ++j;
    const std::string name = xml.substr(name_start, j - name_start);
    if (name.empty()) return "tag without a name at " + std::to_string(i);
    // Attributes: name="value" pairs separated by whitespace.
    while (true) {
      while (j < xml.size() && std::isspace(static_cast<unsigned char>(xml[j]))) ++j;
      if (j >= xml.size()) return "unterminated tag <" + name;
      if (xml[j] == '>' || xml.compare(j, 2, "/>") == 0) break;
      if (closing) return "attribute in closing tag </" + name;
      const size_t attr_start = j;
      while (j < xml.size() && xml[j] != '=' && xml[j] != '>' && !std::isspace(static_cast<unsigned char>(xml[j]))) ++j;
      if (j == attr_start || j >= xml.size() || xml[j] != '=' || j + 1 >= xml.size() || xml[j + 1] != '"')
        return "unquoted or malformed attribute in <" + name + "> at " + std::to_string(attr_start);
      const size_t value_end = xml.find('"', j + 2);
      if (value_end == std::string::npos) return "unterminated attribute value in <" + name;
      for (size_t k = j + 2; k < value_end; ++k) {
        if (xml[k] == '<') return "raw '<' in an attribute of <" + name;
        if (xml[k] == '&' && !ValidEntityAt(xml, k)) return "stray '&' in an attribute of <" + name;
      }
      j = value_end + 1;
    }
    const bool self_closing = xml[j] == '/';
    i = j + (self_closing ? 2 : 1);
    if (closing) {
      if (open.empty() || open.back() != name) return "</" + name + "> does not close the open element";
      open.pop_back();
    } else {
      if (open.empty() && ++roots > 1) return "more than one root element";
      if (!self_closing) open.push_back(name);
    }
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  if (roots != 1) return "no root element";
  return "";
}

TEST(XmlCheckTest, RejectsWhatIsNotWellFormed) {
  EXPECT_EQ(CheckWellFormed("<svg><g></g></svg>"), "");
  EXPECT_NE(CheckWellFormed("<svg><g></svg>"), "");
  EXPECT_NE(CheckWellFormed("<svg><text>a < b</text></svg>"), "");
  EXPECT_NE(CheckWellFormed("<svg><text>a & b</text></svg>"), "");
  EXPECT_NE(CheckWellFormed("<svg a=b/>"), "");
  EXPECT_NE(CheckWellFormed("<svg/><svg/>"), "");
}

// ---- Reading the picture back: elements by class, their attributes, polyline points.

struct Element {
  std::string tag;
  std::string attributes;  // the raw attribute text
  std::string text;        // the text content of a text element, still escaped
};

std::vector<Element> ElementsOfClass(const std::string& svg, const std::string& css_class) {
  std::vector<Element> found;
  const std::regex element("<(\\w+) class=\"" + css_class + "\"([^>]*)>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), element); it != std::sregex_iterator(); ++it) {
    Element e{(*it)[1], (*it)[2], ""};
    if (e.tag == "text") {
      const size_t start = it->position() + it->length();
      e.text = svg.substr(start, svg.find("</text>", start) - start);
    }
    found.push_back(e);
  }
  return found;
}

double Attribute(const Element& element, const std::string& name) {
  std::smatch match;
  const std::regex attribute("\\b" + name + "=\"([^\"]*)\"");
  EXPECT_TRUE(std::regex_search(element.attributes, match, attribute)) << name << " in " << element.attributes;
  return match.empty() ? kNaN : std::stod(match[1]);
}

std::string AttributeText(const Element& element, const std::string& name) {
  std::smatch match;
  const std::regex attribute("\\b" + name + "=\"([^\"]*)\"");
  return std::regex_search(element.attributes, match, attribute) ? std::string(match[1]) : std::string();
}

std::vector<std::pair<double, double>> PolylinePoints(const Element& polyline) {
  std::vector<std::pair<double, double>> points;
  std::istringstream in(AttributeText(polyline, "points"));
  std::string pair;
  while (in >> pair) {
    const size_t comma = pair.find(',');
    points.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
  }
  return points;
}

// The x of the tick labelled `label`; NaN when there is none.
double TickX(const std::string& svg, const std::string& label) {
  for (const Element& tick : ElementsOfClass(svg, "xtick"))
    if (tick.text == label) return Attribute(tick, "x");
  return kNaN;
}

// The score-to-pixel mapping recovered from two labelled y grid lines (each "ygrid" line is followed by
// its "ytick" label).
struct YMap {
  double score0, y0, score1, y1;
  double Y(double score) const { return y0 + (score - score0) / (score1 - score0) * (y1 - y0); }
};
YMap ReadYMap(const std::string& svg) {
  const auto grids = ElementsOfClass(svg, "ygrid");
  const auto labels = ElementsOfClass(svg, "ytick");
  EXPECT_GE(grids.size(), 2u);
  EXPECT_EQ(grids.size(), labels.size());
  if (grids.size() < 2 || labels.size() != grids.size()) return {0, 0, 1, 1};
  const size_t last = grids.size() - 1;
  return {std::stod(labels[0].text), Attribute(grids[0], "y1"), std::stod(labels[last].text), Attribute(grids[last], "y1")};
}

// ---- Messages built by hand.

void AddPoint(v1::DWarpRecord* record, const std::string& d, double mean, double std_dev, int seeds_done,
              int seeds_total = 3) {
  v1::CurvePoint* point = record->add_curve();
  point->set_d(d);
  point->set_mean_score(mean);
  point->set_std_score(std_dev);
  point->set_seeds_done(seeds_done);
  point->set_seeds_total(seeds_total);
}

v1::DWarpRecord* AddRecord(v1::DWarpResponse& response, const std::string& model, const std::string& layer,
                           const std::string& dataset, v1::DWarpStatus status, double d_warp, double threshold) {
  v1::DWarpRecord* record = response.add_records();
  record->set_model(model);
  record->set_layer(layer);
  record->set_dataset(dataset);
  record->set_status(status);
  record->set_d_warp(d_warp);
  record->set_threshold(threshold);
  return record;
}

// Two groups on one dataset: mlp/fc2 (d = 0, 10, 30 unfinished, 100, 1000, full; reached at 46.4) and
// mlp/fc1 (10, 100, 1000; provisional at 500).
v1::DWarpResponse TwoGroups() {
  v1::DWarpResponse response;
  response.mutable_sweep()->set_sweep_id("sw42");
  v1::DWarpRecord* fc2 = AddRecord(response, "mlp", "fc2", "it", v1::DWARP_REACHED, 46.4, 0.7);
  AddPoint(fc2, "0", 0.2, 0.0, 3);
  AddPoint(fc2, "10", 0.5, 0.05, 3);
  AddPoint(fc2, "30", 0.0, 0.0, 0);  // nothing finished: skipped
  AddPoint(fc2, "100", 0.75, 0.02, 1);  // one seed: no error bar even with a std
  AddPoint(fc2, "1000", 0.8, 0.0, 3);   // std 0: no error bar
  AddPoint(fc2, "full", 0.85, 0.01, 2);
  v1::DWarpRecord* fc1 = AddRecord(response, "mlp", "fc1", "it", v1::DWARP_PROVISIONAL, 500, 0.7);
  AddPoint(fc1, "10", 0.3, 0.0, 3);
  AddPoint(fc1, "100", 0.5, 0.0, 3);
  AddPoint(fc1, "1000", 0.72, 0.0, 3);
  return response;
}

TEST(RenderDWarpSvgTest, IsWellFormedSvg11WithItsNamespace) {
  const std::string svg = RenderDWarpSvg(TwoGroups());
  EXPECT_EQ(CheckWellFormed(svg), "");
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\""), std::string::npos);
  EXPECT_NE(svg.find("width=\"900.00\" height=\"560.00\""), std::string::npos);
  EXPECT_EQ(svg.find("href"), std::string::npos);  // no external resources
  EXPECT_NE(svg.find(">d_warp \xE2\x80\x94 sw42</text>"), std::string::npos);
  EXPECT_NE(svg.find(">subspace dimension d</text>"), std::string::npos);
  EXPECT_NE(svg.find(">test score</text>"), std::string::npos);
  EXPECT_EQ(svg, RenderDWarpSvg(TwoGroups()));  // deterministic
}

TEST(RenderDWarpSvgTest, DrawsOneLinePerGroupWithItsFinishedNumericPoints) {
  const std::string svg = RenderDWarpSvg(TwoGroups());
  const auto lines = ElementsOfClass(svg, "curve");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(PolylinePoints(lines[0]).size(), 4u);  // 0, 10, 100, 1000: 30 unfinished, full not joined
  EXPECT_EQ(PolylinePoints(lines[1]).size(), 3u);
  EXPECT_NE(AttributeText(lines[0], "stroke"), AttributeText(lines[1], "stroke"));
  EXPECT_EQ(ElementsOfClass(svg, "point").size(), 7u);
  EXPECT_EQ(ElementsOfClass(svg, "full-point").size(), 1u);
  EXPECT_EQ(ElementsOfClass(svg, "legend-line").size(), 2u);
}

TEST(RenderDWarpSvgTest, PutsDOnALogAxisWithZeroLeftAndFullRight) {
  const std::string svg = RenderDWarpSvg(TwoGroups());
  const auto fc2 = PolylinePoints(ElementsOfClass(svg, "curve")[0]);
  ASSERT_EQ(fc2.size(), 4u);
  const double x0 = fc2[0].first, x10 = fc2[1].first, x100 = fc2[2].first, x1000 = fc2[3].first;
  EXPECT_GT(x100 - x10, 50);
  EXPECT_NEAR(x100 - x10, x1000 - x100, 0.02);
  EXPECT_LT(x0, x10);
  // The ticks sit where the points are: 10, 100, 1000, and the separate "0" and "full".
  EXPECT_NEAR(TickX(svg, "10"), x10, 0.02);
  EXPECT_NEAR(TickX(svg, "100"), x100, 0.02);
  EXPECT_NEAR(TickX(svg, "1000"), x1000, 0.02);
  EXPECT_NEAR(TickX(svg, "0"), x0, 0.02);
  const double full_x = TickX(svg, "full");
  EXPECT_GT(full_x, x1000 + 10);
  const auto full = ElementsOfClass(svg, "full-point");
  ASSERT_EQ(full.size(), 1u);
  EXPECT_NEAR(Attribute(full[0], "x") + 4, full_x, 0.02);  // an 8 px square centred on the slot
  // 0 and full each behind an axis break (two strokes each).
  EXPECT_EQ(ElementsOfClass(svg, "axis-break").size(), 4u);
  EXPECT_EQ(ElementsOfClass(svg, "xgrid").size(), 3u);
}

TEST(RenderDWarpSvgTest, WithoutZeroOrFullThereIsNoSlotOrBreak) {
  v1::DWarpResponse response;
  v1::DWarpRecord* record = AddRecord(response, "m", "l", "it", v1::DWARP_PENDING, 0, 0.5);
  AddPoint(record, "100", 0.1, 0, 1);
  AddPoint(record, "300", 0.2, 0, 1);
  const std::string svg = RenderDWarpSvg(response);
  EXPECT_EQ(CheckWellFormed(svg), "");
  EXPECT_TRUE(std::isnan(TickX(svg, "0")));
  EXPECT_TRUE(std::isnan(TickX(svg, "full")));
  EXPECT_TRUE(ElementsOfClass(svg, "axis-break").empty());
  // Only one power of ten in range: the grid's own d are ticked as well.
  EXPECT_FALSE(std::isnan(TickX(svg, "300")));
  const auto points = PolylinePoints(ElementsOfClass(svg, "curve")[0]);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_NEAR(TickX(svg, "300"), points[1].first, 0.02);
}

TEST(RenderDWarpSvgTest, DrawsTheThresholdWhereItsScoreMaps) {
  const std::string svg = RenderDWarpSvg(TwoGroups());
  const auto thresholds = ElementsOfClass(svg, "threshold");
  ASSERT_EQ(thresholds.size(), 1u);  // two groups, one dataset, one value: one line
  const YMap y = ReadYMap(svg);
  EXPECT_NEAR(Attribute(thresholds[0], "y1"), y.Y(0.7), 0.05);
  EXPECT_EQ(Attribute(thresholds[0], "y1"), Attribute(thresholds[0], "y2"));
  EXPECT_NE(AttributeText(thresholds[0], "stroke-dasharray"), "");
  const auto labels = ElementsOfClass(svg, "threshold-label");
  ASSERT_EQ(labels.size(), 1u);
  EXPECT_EQ(labels[0].text, "threshold 0.700");
  // The points map the same way.
  const auto fc2 = PolylinePoints(ElementsOfClass(svg, "curve")[0]);
  EXPECT_NEAR(fc2[1].second, y.Y(0.5), 0.05);
  EXPECT_NEAR(fc2[3].second, y.Y(0.8), 0.05);
}

TEST(RenderDWarpSvgTest, DrawsErrorBarsOnlyForASpreadOverSeveralSeeds) {
  const std::string svg = RenderDWarpSvg(TwoGroups());
  // d = 10 (std 0.05, 3 seeds) and full (std 0.01, 2 seeds); not d = 100 (1 seed) nor std 0.
  const auto bars = ElementsOfClass(svg, "errorbar");
  ASSERT_EQ(bars.size(), 2u);
  std::smatch match;
  const std::string path = AttributeText(bars[0], "d");
  ASSERT_TRUE(std::regex_search(path, match, std::regex("^M ([-0-9.]+) ([-0-9.]+) V ([-0-9.]+)")));
  const YMap y = ReadYMap(svg);
  const auto fc2 = PolylinePoints(ElementsOfClass(svg, "curve")[0]);
  EXPECT_NEAR(std::stod(match[1]), fc2[1].first, 0.02);
  EXPECT_NEAR(std::stod(match[2]), y.Y(0.55), 0.05);
  EXPECT_NEAR(std::stod(match[3]), y.Y(0.45), 0.05);
}

TEST(RenderDWarpSvgTest, MarksReachedAndProvisionalDWarpOnTheThreshold) {
  const std::string svg = RenderDWarpSvg(TwoGroups());
  const auto reached = ElementsOfClass(svg, "dwarp-marker");
  const auto provisional = ElementsOfClass(svg, "dwarp-marker provisional");
  ASSERT_EQ(reached.size(), 1u);
  ASSERT_EQ(provisional.size(), 1u);
  EXPECT_EQ(AttributeText(provisional[0], "fill"), "#ffffff");  // hollow
  EXPECT_NE(AttributeText(reached[0], "fill"), "#ffffff");
  const auto fc2 = PolylinePoints(ElementsOfClass(svg, "curve")[0]);
  const double x10 = fc2[1].first, x100 = fc2[2].first;
  EXPECT_NEAR(Attribute(reached[0], "cx"), x10 + std::log10(4.64) * (x100 - x10), 0.05);
  EXPECT_NEAR(Attribute(provisional[0], "cx"), x100 + std::log10(5.0) * (x100 - x10), 0.05);
  const YMap y = ReadYMap(svg);
  EXPECT_NEAR(Attribute(reached[0], "cy"), y.Y(0.7), 0.05);
  EXPECT_EQ(ElementsOfClass(svg, "dwarp-drop").size(), 2u);
  std::vector<std::string> legend;
  for (const Element& label : ElementsOfClass(svg, "legend-label")) legend.push_back(label.text);
  EXPECT_EQ(legend, (std::vector<std::string>{"mlp/fc2: d_warp 46.4", "mlp/fc1: d_warp ~500.0 (provisional)"}));
}

TEST(RenderDWarpSvgTest, DrawsTheIntervalAsABarAtTheThresholdAndNamesItInTheLegend) {
  v1::DWarpResponse response = TwoGroups();
  response.mutable_records(0)->set_d_warp_low(20);
  response.mutable_records(0)->set_d_warp_high(80);
  response.mutable_records(0)->set_interval_bootstrap(true);
  const std::string svg = RenderDWarpSvg(response);
  EXPECT_EQ(CheckWellFormed(svg), "");
  const auto bars = ElementsOfClass(svg, "dwarp-interval");
  ASSERT_EQ(bars.size(), 1u);  // the provisional group has no interval
  const auto fc2 = PolylinePoints(ElementsOfClass(svg, "curve")[0]);
  const double x10 = fc2[1].first, x100 = fc2[2].first;
  EXPECT_NEAR(Attribute(bars[0], "x1"), x10 + std::log10(2.0) * (x100 - x10), 0.05);
  EXPECT_NEAR(Attribute(bars[0], "x2"), x10 + std::log10(8.0) * (x100 - x10), 0.05);
  const YMap y = ReadYMap(svg);
  EXPECT_NEAR(Attribute(bars[0], "y1"), y.Y(0.7), 0.05);
  EXPECT_NEAR(Attribute(bars[0], "y2"), y.Y(0.7), 0.05);
  EXPECT_EQ(ElementsOfClass(svg, "dwarp-interval-end").size(), 2u);
  std::vector<std::string> legend;
  for (const Element& label : ElementsOfClass(svg, "legend-label")) legend.push_back(label.text);
  EXPECT_EQ(legend[0], "mlp/fc2: d_warp 46.4 [20..80]");
}

TEST(RenderDWarpSvgTest, PendingAndNotReachedGroupsHaveNoDWarpMarker) {
  v1::DWarpResponse response;
  v1::DWarpRecord* pending = AddRecord(response, "a", "l", "it", v1::DWARP_PENDING, 50, 0.5);
  AddPoint(pending, "10", 0.1, 0, 1);
  v1::DWarpRecord* not_reached = AddRecord(response, "b", "l", "it", v1::DWARP_NOT_REACHED, 50, 0.5);
  AddPoint(not_reached, "10", 0.2, 0, 1);
  AddPoint(not_reached, "100", 0.3, 0, 1);
  const std::string svg = RenderDWarpSvg(response);
  EXPECT_EQ(CheckWellFormed(svg), "");
  EXPECT_TRUE(ElementsOfClass(svg, "dwarp-marker").empty());
  EXPECT_TRUE(ElementsOfClass(svg, "dwarp-marker provisional").empty());
  EXPECT_TRUE(ElementsOfClass(svg, "dwarp-drop").empty());
  std::vector<std::string> legend;
  for (const Element& label : ElementsOfClass(svg, "legend-label")) legend.push_back(label.text);
  EXPECT_EQ(legend, (std::vector<std::string>{"a/l: d_warp pending", "b/l: d_warp not reached"}));
}

TEST(RenderDWarpSvgTest, ANaNThresholdDrawsNoThresholdAndNoMarker) {
  v1::DWarpResponse response;
  v1::DWarpRecord* record = AddRecord(response, "m", "l", "it", v1::DWARP_PROVISIONAL, 50, kNaN);
  AddPoint(record, "10", 0.1, 0, 1);
  AddPoint(record, "100", 0.3, 0, 1);
  const std::string svg = RenderDWarpSvg(response);
  EXPECT_EQ(CheckWellFormed(svg), "");
  EXPECT_TRUE(ElementsOfClass(svg, "threshold").empty());
  EXPECT_TRUE(ElementsOfClass(svg, "threshold-label").empty());
  EXPECT_TRUE(ElementsOfClass(svg, "dwarp-marker provisional").empty());
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

TEST(RenderDWarpSvgTest, EscapesEveryLabel) {
  v1::DWarpResponse response;
  response.mutable_sweep()->set_sweep_id("s<1>");
  v1::DWarpRecord* record = AddRecord(response, "<m&>", "\"l'", "it", v1::DWARP_REACHED, 20, 0.2);
  AddPoint(record, "10", 0.1, 0, 1);
  AddPoint(record, "100", 0.3, 0, 1);
  record->set_variant("v&w");
  const std::string svg = RenderDWarpSvg(response);
  EXPECT_EQ(CheckWellFormed(svg), "");
  EXPECT_EQ(svg.find("<m&>"), std::string::npos);
  EXPECT_NE(svg.find("&lt;m&amp;&gt;/&quot;l&apos; [v&amp;w]: d_warp 20.0"), std::string::npos);
  EXPECT_NE(svg.find("s&lt;1&gt;</text>"), std::string::npos);
  PlotOptions options;
  options.title = "a < b & c";
  const std::string titled = RenderDWarpSvg(response, options);
  EXPECT_EQ(CheckWellFormed(titled), "");
  EXPECT_NE(titled.find(">a &lt; b &amp; c</text>"), std::string::npos);
}

TEST(RenderDWarpSvgTest, NegativeScoresStayInsideThePlot) {
  v1::DWarpResponse response;
  v1::DWarpRecord* record = AddRecord(response, "m", "l", "it", v1::DWARP_REACHED, 300, -0.2);
  AddPoint(record, "10", -0.9, 0.1, 3);
  AddPoint(record, "100", -0.5, 0.1, 3);
  AddPoint(record, "1000", -0.1, 0.1, 3);
  const std::string svg = RenderDWarpSvg(response);
  EXPECT_EQ(CheckWellFormed(svg), "");
  const auto grids = ElementsOfClass(svg, "ygrid");
  ASSERT_GE(grids.size(), 2u);
  // The plot area is the x axis (bottom) to the top margin; every point and bar end lies inside it.
  const double bottom = 560 - 56, top = 48;
  for (const Element& point : ElementsOfClass(svg, "point")) {
    EXPECT_GT(Attribute(point, "cy"), top);
    EXPECT_LT(Attribute(point, "cy"), bottom);
  }
  const YMap y = ReadYMap(svg);
  EXPECT_GT(y.Y(-1.0), top);   // mean - std of the lowest point
  EXPECT_LT(y.Y(-1.0), bottom);
  EXPECT_GT(y.Y(0.0), top);
  bool negative_tick = false;
  for (const Element& tick : ElementsOfClass(svg, "ytick")) negative_tick = negative_tick || tick.text[0] == '-';
  EXPECT_TRUE(negative_tick);
  const auto thresholds = ElementsOfClass(svg, "threshold");
  ASSERT_EQ(thresholds.size(), 1u);
  EXPECT_EQ(ElementsOfClass(svg, "threshold-label")[0].text, "threshold -0.200");
}

TEST(RenderDWarpSvgTest, NamesTheDatasetWhenThereAreSeveral) {
  v1::DWarpResponse response;
  v1::DWarpRecord* a = AddRecord(response, "m", "l", "it", v1::DWARP_PENDING, 0, 0.4);
  AddPoint(a, "10", 0.1, 0, 1);
  v1::DWarpRecord* b = AddRecord(response, "m", "l", "v4", v1::DWARP_PENDING, 0, 0.6);
  AddPoint(b, "10", 0.2, 0, 1);
  const std::string svg = RenderDWarpSvg(response);
  std::vector<std::string> legend, thresholds;
  for (const Element& label : ElementsOfClass(svg, "legend-label")) legend.push_back(label.text);
  for (const Element& label : ElementsOfClass(svg, "threshold-label")) thresholds.push_back(label.text);
  EXPECT_EQ(legend, (std::vector<std::string>{"m/l/it: d_warp pending", "m/l/v4: d_warp pending"}));
  EXPECT_EQ(thresholds, (std::vector<std::string>{"threshold 0.400 (it)", "threshold 0.600 (v4)"}));
}

TEST(RenderDWarpSvgTest, TheLegendFitsItsLabelsAndThePicture) {
  auto legend_box = [](const std::string& svg) {
    const auto boxes = ElementsOfClass(svg, "legend-box");
    EXPECT_EQ(boxes.size(), 1u);
    return boxes.empty() ? Element{} : boxes[0];
  };
  v1::DWarpResponse response = TwoGroups();
  const Element narrow = legend_box(RenderDWarpSvg(response));
  response.mutable_records(0)->set_model("a_rather_long_model_name_from_the_sweep_file");
  const std::string svg = RenderDWarpSvg(response);
  const Element wide = legend_box(svg);
  EXPECT_GT(Attribute(wide, "width"), Attribute(narrow, "width") + 50);
  EXPECT_LE(Attribute(wide, "x") + Attribute(wide, "width"), 900);
  // The plot area shrinks to make room: the largest d moves left, and stays left of the legend.
  const double x1000 = TickX(svg, "1000");
  EXPECT_LT(x1000, TickX(RenderDWarpSvg(TwoGroups()), "1000"));
  EXPECT_LT(TickX(svg, "full"), Attribute(wide, "x"));
}

TEST(RenderDWarpSvgTest, CyclesThePaletteAndDrawsAnEmptySweep) {
  v1::DWarpResponse response;
  for (int i = 0; i < 12; ++i) {
    v1::DWarpRecord* record = AddRecord(response, "m" + std::to_string(i), "l", "it", v1::DWARP_PENDING, 0, 0.5);
    AddPoint(record, "10", 0.1 * i, 0, 1);
    AddPoint(record, "100", 0.1 * i + 0.05, 0, 1);
  }
  const auto lines = ElementsOfClass(RenderDWarpSvg(response), "curve");
  ASSERT_EQ(lines.size(), 12u);
  std::map<std::string, int> uses;
  for (const Element& line : lines) ++uses[AttributeText(line, "stroke")];
  EXPECT_GE(uses.size(), 8u);
  EXPECT_LE(uses.size(), 10u);
  EXPECT_EQ(AttributeText(lines[0], "stroke"), AttributeText(lines[uses.size()], "stroke"));

  v1::DWarpResponse empty;
  empty.mutable_sweep()->set_sweep_id("sw0");
  const std::string svg = RenderDWarpSvg(empty);
  EXPECT_EQ(CheckWellFormed(svg), "");
  EXPECT_NE(svg.find(">no finished jobs yet</text>"), std::string::npos);
  EXPECT_TRUE(ElementsOfClass(svg, "curve").empty());
}

// ---- `dwarp plot` against a hand-written SweepService on loopback.

class FakeDWarpService final : public v1::SweepService::Service {
 public:
  grpc::Status DWarp(grpc::ServerContext*, const v1::DWarpRequest* request, v1::DWarpResponse* response) override {
    if (request->sweep_id() != "sw42") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such sweep");
    *response = TwoGroups();
    return grpc::Status::OK;
  }
};

class PlotCommandTest : public dwarp::testing::LoopbackCommandTest<FakeDWarpService> {
 protected:
  PlotCommandTest() : LoopbackCommandTest("dwarp_plot_test") {}
};

TEST_F(PlotCommandTest, WritesThePictureAndSaysWhere) {
  SweepClient client = Client();
  const std::string path = (dir_ / "sub" / "sw42.svg").string();
  PlotOptions options;
  options.title = "my sweep";
  std::ostringstream out;
  const CommandResult result = RunPlot(client, "sw42", path, options, out);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(out.str(), "plot written to " + path + "\n");
  std::ifstream file(path);
  const std::string svg((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(svg, RenderDWarpSvg(TwoGroups(), options));
  EXPECT_NE(svg.find(">my sweep</text>"), std::string::npos);
}

TEST_F(PlotCommandTest, AnUnknownSweepExitsOneAndWritesNothing) {
  SweepClient client = Client();
  const std::string path = (dir_ / "x.svg").string();
  std::ostringstream out;
  const CommandResult result = RunPlot(client, "nope", path, {}, out);
  EXPECT_EQ(ExitCodeFor(result), kExitRefused);
  EXPECT_NE(result.status.message().find("sweep 'nope' not found"), std::string::npos) << result.status;
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(out.str(), "");
}

TEST_F(PlotCommandTest, OnlySvgIsWritten) {
  SweepClient client = Client();
  const std::string path = (dir_ / "x.png").string();
  std::ostringstream out;
  const CommandResult result = RunPlot(client, "sw42", path, {}, out);
  EXPECT_EQ(ExitCodeFor(result), kExitUsage);
  EXPECT_NE(result.status.message().find("only SVG is written"), std::string::npos) << result.status;
  EXPECT_NE(result.status.message().find(path), std::string::npos);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(CheckPlotPath("a/B.SVG").ok());
  EXPECT_FALSE(CheckPlotPath("a/.svg").ok());
  EXPECT_FALSE(CheckPlotPath("svg").ok());
}

TEST_F(PlotCommandTest, AnUnreachableCoordinatorExitsThree) {
  const int unused_port = server_->port();
  server_->Shutdown();
  server_.reset();
  ConnectionFlags flags;
  flags.coordinator = "127.0.0.1:" + std::to_string(unused_port);
  flags.timeout_seconds = 5;
  auto client = ConnectSweepClient(flags);
  ASSERT_TRUE(client.ok()) << client.status();
  std::ostringstream out;
  const CommandResult result = RunPlot(*client, "sw42", (dir_ / "x.svg").string(), {}, out);
  EXPECT_EQ(ExitCodeFor(result), kExitUnreachable) << result.status;
  EXPECT_FALSE(fs::exists(dir_ / "x.svg"));
}

}  // namespace
}  // namespace dwarp::clients
