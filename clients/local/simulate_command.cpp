#include "clients/local/simulate_command.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>
#include <thread>

#include "common/file_io.h"
#include "worker/engine/threading.h"
#include "clients/svg_text.h"

namespace dwarp::clients {
namespace {

// Panel geometry (pixels) and colours: the target in blue, the pre-fit in orange, warped fits in green
// (Okabe-Ito, as clients/sweep/plot_svg.cpp).
constexpr double kPanelWidth = 132;
constexpr double kPanelHeight = 104;
constexpr double kPanelGap = 10;
constexpr double kLeft = 96;    // room for the row labels
constexpr double kTop = 64;     // title and column headers
constexpr double kBottom = 40;  // legend
constexpr const char* kTargetColour = "#0072B2";
constexpr const char* kInitialColour = "#D55E00";
constexpr const char* kFitColour = "#009E73";



std::string Fixed(double v, int decimals) {
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
  return buffer;
}

std::string DLabel(const engine::DimComplexityFit& fit) { return fit.d ? "d=" + std::to_string(*fit.d) : "full"; }

std::string Polyline(const std::vector<double>& xs, const std::vector<double>& ys, double left, double top,
                     double y_lo, double y_hi, const char* colour, const char* extra) {
  std::string points;
  for (size_t i = 0; i < xs.size() && i < ys.size(); ++i) {
    const double px = left + (xs[i] + 1.0) / 2.0 * kPanelWidth;
    const double clamped = std::clamp(ys[i], y_lo, y_hi);  // a wild fit stays inside its panel
    const double py = top + (y_hi - clamped) / (y_hi - y_lo) * kPanelHeight;
    points += (i ? " " : "") + Px(px) + "," + Px(py);
  }
  return std::string("<polyline fill=\"none\" stroke=\"") + colour + "\" stroke-width=\"1.6\"" + extra +
         " points=\"" + points + "\"/>\n";
}

std::string Text(double x, double y, const std::string& text, const char* anchor, int size, const char* extra = "") {
  return "<text x=\"" + Px(x) + "\" y=\"" + Px(y) + "\" text-anchor=\"" + anchor + "\" font-size=\"" +
         std::to_string(size) + "\"" + extra + ">" + EscapeXml(text) + "</text>\n";
}

}  // namespace

std::string FormatDimComplexityTable(const engine::DimComplexityResult& result) {
  std::ostringstream os;
  const auto& o = result.options;
  os << "held-out R2 against the target " << engine::DimComplexityFormula(engine::kDimComplexityTargetName)
     << " (MLP D = " << result.parameter_count << ")\n";
  char cell[64];
  std::snprintf(cell, sizeof cell, "%-8s | %8s | %8s", "function", "pre-fit", "d=0");
  os << cell;
  if (!result.functions.empty()) {
    for (const auto& fit : result.functions.front().fits) {
      std::snprintf(cell, sizeof cell, " | %8s", DLabel(fit).c_str());
      os << cell;
    }
  }
  os << "\n";
  for (const auto& f : result.functions) {
    std::snprintf(cell, sizeof cell, "%-8s | %8.4f | %8.4f", f.name.c_str(), f.pretrain_r2, f.initial_target_r2);
    os << cell;
    for (const auto& fit : f.fits) {
      std::snprintf(cell, sizeof cell, " | %8.4f", fit.r2);
      os << cell;
    }
    os << "\n";
  }
  os << "(pre-fit: R2 of the initial fit against its own function; d=0: the initial fit against the target)\n";
  for (const auto& f : result.functions) {
    const auto& c = f.crossing;
    std::string line = f.name + " (" + engine::DimComplexityFormula(f.name) + "): ";
    if (o.dims_.empty()) {
      line += "no subspace runs";
    } else if (!c.reached) {
      line += "R2 >= " + Fixed(o.threshold_, 3) + " not reached (best " + Fixed(c.best_score, 4) + " at d = " +
              std::to_string(c.best_d) + ")";
    } else {
      // How `d` was found, as common/threshold_crossing.h defines it.
      const std::string how = c.interpolated ? ", interpolated in log d from d = " + std::to_string(c.below_d)
                              : c.below_d < 0 ? ", the smallest d run"
                                              : ", an exact hit";
      line += "d = " + Fixed(c.d, 1) + " reaches R2 >= " + Fixed(o.threshold_, 3) + " (first grid d " +
              std::to_string(c.grid_d) + how + ")";
    }
    os << line << "\n";
  }
  os << "total wall time: " << Fixed(result.seconds, 1) << " s\n";
  return os.str();
}

std::string RenderDimComplexitySvg(const engine::DimComplexityResult& result) {
  const size_t rows = result.functions.size();
  const size_t columns = 1 + (rows ? result.functions.front().fits.size() : 0);
  const double width = kLeft + columns * (kPanelWidth + kPanelGap) + 16;
  const double height = kTop + rows * (kPanelHeight + kPanelGap + 14) + kBottom;

  // One y range for every panel, so panels compare at a glance; wild fits are clamped (Polyline).
  double y_lo = *std::min_element(result.target.begin(), result.target.end());
  double y_hi = *std::max_element(result.target.begin(), result.target.end());
  for (const auto& f : result.functions) {
    for (double v : f.initial_curve) y_lo = std::min(y_lo, v), y_hi = std::max(y_hi, v);
  }
  const double pad = 0.08 * (y_hi - y_lo) + 1e-6;
  y_lo -= pad;
  y_hi += pad;

  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << Px(width) << "\" height=\""
      << Px(height) << "\" viewBox=\"0 0 " << Px(width) << " " << Px(height) << "\" font-family=\"sans-serif\">\n"
      << "<rect x=\"0\" y=\"0\" width=\"" << Px(width) << "\" height=\"" << Px(height) << "\" fill=\"white\"/>\n";
  const std::string title = "dim-complexity: MLPs warped toward " +
                            engine::DimComplexityFormula(engine::kDimComplexityTargetName) +
                            " through d-dimensional subspaces (D = " + std::to_string(result.parameter_count) +
                            ", threshold R\u00b2 " + Fixed(result.options.threshold_, 3) + ")";
  svg << Text(kLeft, 24, title, "start", 14, " font-weight=\"bold\"");

  for (size_t col = 0; col < columns; ++col) {
    const std::string header = col == 0 ? "initial" : DLabel(result.functions.front().fits[col - 1]);
    svg << Text(kLeft + col * (kPanelWidth + kPanelGap) + kPanelWidth / 2, kTop - 10, header, "middle", 12,
                " font-weight=\"bold\"");
  }
  for (size_t row = 0; row < rows; ++row) {
    const auto& f = result.functions[row];
    const double top = kTop + row * (kPanelHeight + kPanelGap + 14);
    svg << Text(kLeft - 8, top + kPanelHeight / 2, engine::DimComplexityFormula(f.name), "end", 12);
    for (size_t col = 0; col < columns; ++col) {
      const double left = kLeft + col * (kPanelWidth + kPanelGap);
      const engine::DimComplexityFit* fit = col == 0 ? nullptr : &f.fits[col - 1];
      const bool crossing = fit && fit->d && f.crossing.reached && *fit->d == f.crossing.grid_d;
      svg << "<rect x=\"" << Px(left) << "\" y=\"" << Px(top) << "\" width=\"" << Px(kPanelWidth) << "\" height=\""
          << Px(kPanelHeight) << "\" fill=\"none\" stroke=\"" << (crossing ? "#000000" : "#bbbbbb")
          << "\" stroke-width=\"" << (crossing ? "2" : "1") << "\"/>\n";
      if (y_lo < 0 && y_hi > 0) {  // the y = 0 line
        const double zero = top + y_hi / (y_hi - y_lo) * kPanelHeight;
        svg << "<line x1=\"" << Px(left) << "\" y1=\"" << Px(zero) << "\" x2=\"" << Px(left + kPanelWidth)
            << "\" y2=\"" << Px(zero) << "\" stroke=\"#e0e0e0\" stroke-width=\"1\"/>\n";
      }
      svg << Polyline(result.grid, result.target, left, top, y_lo, y_hi, kTargetColour, "");
      if (fit) {
        svg << Polyline(result.grid, fit->curve, left, top, y_lo, y_hi, kFitColour, " stroke-dasharray=\"4 3\"");
      } else {
        svg << Polyline(result.grid, f.initial_curve, left, top, y_lo, y_hi, kInitialColour, "");
      }
      const double r2 = fit ? fit->r2 : f.initial_target_r2;
      svg << Text(left + kPanelWidth / 2, top + kPanelHeight + 12, "R\u00b2 " + Fixed(r2, 3), "middle", 10,
                  crossing ? " font-weight=\"bold\"" : "");
    }
  }

  // Legend: a line sample and a label per curve kind.
  const double legend_y = height - kBottom / 2;
  const std::pair<const char*, std::string> entries[] = {
      {kTargetColour, "target " + engine::DimComplexityFormula(engine::kDimComplexityTargetName)},
      {kInitialColour, "initial function (pre-fit MLP)"},
      {kFitColour, "warped fit at d"}};
  double x = kLeft;
  for (const auto& [colour, label] : entries) {
    svg << "<line x1=\"" << Px(x) << "\" y1=\"" << Px(legend_y - 4) << "\" x2=\"" << Px(x + 24) << "\" y2=\""
        << Px(legend_y - 4) << "\" stroke=\"" << colour << "\" stroke-width=\"2\""
        << (colour == kFitColour ? " stroke-dasharray=\"4 3\"" : "") << "/>\n";
    svg << Text(x + 30, legend_y, label, "start", 11);
    x += 60 + 6.4 * label.size();
  }
  svg << Text(x, legend_y, "framed: first d reaching the threshold", "start", 11);
  svg << "</svg>\n";
  return svg.str();
}

std::string DimComplexityJson(const engine::DimComplexityResult& result) {
  const auto& o = result.options;
  nlohmann::ordered_json functions = nlohmann::ordered_json::array();
  for (const auto& f : result.functions) {
    nlohmann::ordered_json fits = nlohmann::ordered_json::array();
    for (const auto& fit : f.fits) {
      fits.push_back({{"d", fit.d ? nlohmann::ordered_json(*fit.d) : nlohmann::ordered_json("full")},
                      {"r2", fit.r2},
                      {"best_epoch", fit.best_epoch},
                      {"curve", fit.curve}});
    }
    const auto& c = f.crossing;
    nlohmann::ordered_json crossing = {{"reached", c.reached}, {"threshold", c.threshold}};
    if (c.reached) {
      crossing["d"] = c.d;
      crossing["grid_d"] = c.grid_d;
      crossing["interpolated"] = c.interpolated;
    }
    crossing["best_d"] = c.best_d;
    crossing["best_r2"] = c.best_score;
    functions.push_back({{"name", f.name},
                         {"formula", engine::DimComplexityFormula(f.name)},
                         {"pretrain_r2", f.pretrain_r2},
                         {"initial_target_r2", f.initial_target_r2},
                         {"initial_curve", f.initial_curve},
                         {"fits", fits},
                         {"d_reached", crossing}});
  }
  nlohmann::ordered_json out = {
      {"command", "simulate dim-complexity"},
      {"target", engine::DimComplexityFormula(engine::kDimComplexityTargetName)},
      {"options",
       {{"dims", o.dims_},
        {"full", o.full_},
        {"hidden", o.hidden_},
        {"pretrain_epochs", o.pretrain_epochs_},
        {"epochs", o.epochs_},
        {"pretrain_lr", o.pretrain_lr_},
        {"lr", o.lr_},
        {"train_points", o.train_points_},
        {"seed", o.seed_},
        {"threshold", o.threshold_}}},
      {"parameters", result.parameter_count},
      {"grid", result.grid},
      {"target_curve", result.target},
      {"functions", functions},
      {"seconds", result.seconds},
  };
  return out.dump(2) + "\n";
}

void AddSimulateCommand(CLI::App& app) {
  struct Config {
    engine::DimComplexityOptions options;
    int threads = 0;
    std::string svg = "runs/dim_complexity.svg";
    std::string json;
  };
  auto config = std::make_shared<Config>();
  auto& o = config->options;
  CLI::App* simulate = app.add_subcommand("simulate", "Simulations on synthetic functions (the seed's simulations/)");
  simulate->require_subcommand(1);
  CLI::App* cmd = simulate->add_subcommand(
      "dim-complexity",
      "MLPs pre-fit to x^2, x^3 and sin(pi*x/2), then warped toward sin(1.5*pi*x/2) through random subspaces of "
      "growing d: held-out R2 per d, the d each needs to reach --threshold, and the figure as SVG");
  cmd->add_option("--functions", o.functions_, "Initial functions, comma-separated (square, cube, sine)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--dims", o.dims_, "Subspace dimensions d, comma-separated")->delimiter(',')->capture_default_str();
  cmd->add_flag("!--no-full", o.full_, "Skip the warp with all parameters");
  cmd->add_option("--hidden", o.hidden_, "MLP hidden widths, comma-separated")->delimiter(',')->capture_default_str();
  cmd->add_option("--pretrain-epochs", o.pretrain_epochs_, "Full-batch Adam steps of each pre-fit")
      ->capture_default_str();
  cmd->add_option("--epochs", o.epochs_, "Full-batch Adam steps of each warp run")->capture_default_str();
  cmd->add_option("--pretrain-lr", o.pretrain_lr_, "Adam learning rate of the pre-fits and the full runs")
      ->capture_default_str();
  cmd->add_option("--lr", o.lr_, "Adam learning rate of theta_d")->capture_default_str();
  cmd->add_option("--train-points", o.train_points_, "Evenly spaced training x in [-1, 1]")->capture_default_str();
  cmd->add_option("--seed", o.seed_, "Seed of the MLP initialisation and the projections")->capture_default_str();
  cmd->add_option("--threshold", o.threshold_, "Held-out R2 against the target that a fit must reach")
      ->capture_default_str();
  cmd->add_option("--threads", config->threads, "Intra-op threads (0: all cores)")->capture_default_str();
  cmd->add_option("-o,--output", config->svg, "Write the figure (SVG) to this file")->capture_default_str();
  cmd->add_option("--json", config->json, "Write the numbers as JSON to this file");

  cmd->callback([config]() {
    auto fail = [](const std::string& message) {
      spdlog::error("simulate dim-complexity failed: {}", message);
      throw CLI::RuntimeError(1);
    };
    if (config->threads < 0) {
      fail("--threads = " + std::to_string(config->threads) + "; expected >= 1 (or 0: all cores)");
    }
    // Checked before any work, so a bad option costs nothing.
    if (Status status = engine::CheckDimComplexityOptions(config->options); !status.ok()) fail(status.ToString());
    const int threads =
        config->threads > 0 ? config->threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    engine::SetComputeThreads(threads);
    auto result = engine::RunDimComplexity(config->options, [](const std::string& line) { spdlog::info("{}", line); });
    if (!result.ok()) fail(result.status().ToString());
    std::fputs(("\n" + FormatDimComplexityTable(*result)).c_str(), stdout);
    std::fflush(stdout);
    if (Status status = WriteFileAtomically(config->svg, RenderDimComplexitySvg(*result), "--output"); !status.ok()) {
      fail(status.ToString());
    }
    spdlog::info("figure written to {}", config->svg);
    if (!config->json.empty()) {
      if (Status status = WriteFileAtomically(config->json, DimComplexityJson(*result), "--json"); !status.ok()) {
        fail(status.ToString());
      }
      spdlog::info("numbers written to {}", config->json);
    }
  });
}

}  // namespace dwarp::clients
