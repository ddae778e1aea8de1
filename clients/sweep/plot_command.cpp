#include "clients/sweep/plot_command.h"

#include <grpcpp/client_context.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <memory>

#include "common/file_io.h"

namespace dwarp::clients {
Status CheckPlotPath(const std::string& path) {
  std::string tail = path.size() >= 4 ? path.substr(path.size() - 4) : path;
  std::transform(tail.begin(), tail.end(), tail.begin(), [](unsigned char c) { return std::tolower(c); });
  if (tail == ".svg" && path.size() > 4 && path[path.size() - 5] != '/') return OkStatus();
  return InvalidArgumentError("-o = '" + path + "'; expected a file name ending in .svg (only SVG is written)");
}

CommandResult RunPlot(SweepClient& client, const std::string& sweep_id, const std::string& out_file,
                      const PlotOptions& options, std::ostream& out) {
  Status path_ok = CheckPlotPath(out_file);
  if (!path_ok.ok()) return {path_ok, true};
  StatusOr<v1::DWarpResponse> response = FetchDWarp(client, sweep_id);  // every page
  if (!response.ok()) return {response.status(), false};
  Status written = WriteFileAtomically(out_file, RenderDWarpSvg(*response, options), "-o");
  if (!written.ok()) return {written, true};
  out << "plot written to " << out_file << "\n";
  return {};
}

void AddPlotCommand(CLI::App& app) {
  auto flags = std::make_shared<ConnectionFlags>();
  auto sweep = std::make_shared<std::string>();
  auto out_file = std::make_shared<std::string>();
  auto options = std::make_shared<PlotOptions>();
  CLI::App* cmd = app.add_subcommand("plot", "The d_warp picture of a sweep (test score against d), as SVG");
  cmd->add_option("sweep", *sweep, kSweepArgumentHelp)->required();
  cmd->add_option("-o,--out", *out_file, "SVG file to write (FILE.svg)")->required();
  cmd->add_option("--title", options->title, "Title (default: \"d_warp — SWEEP\")");
  AddConnectionFlags(cmd, *flags);
  cmd->callback([flags, sweep, out_file, options]() {
    // The path is checked before connecting, so a wrong extension fails without a coordinator.
    Status path_ok = CheckPlotPath(*out_file);
    if (!path_ok.ok()) FinishCommand({path_ok, true});
    auto client = ConnectSweepClient(*flags);
    if (!client.ok()) FinishCommand({client.status(), true});
    FinishCommand(RunPlot(*client, *sweep, *out_file, *options, std::cout));
  });
}

}  // namespace dwarp::clients
