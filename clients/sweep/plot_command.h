// `dwarp plot SWEEP -o FILE.svg [--title T]`: the d_warp picture of a sweep (clients/sweep/plot_svg.h), from the
// coordinator's SweepService.DWarp, written atomically to FILE.svg. Takes the connection options of the
// other sweep commands (clients/sweep/sweep_commands.h) and exits with their codes: 2 for a path that does not
// end in .svg (only SVG is written) or an unwritable file, 1/3/4 for the coordinator's answers.
//
// Thread-safety: RunPlot may share a SweepClient with other calls (its stub is thread-safe).
#pragma once

#include <CLI/CLI.hpp>

#include <ostream>
#include <string>

#include "clients/sweep/plot_svg.h"
#include "clients/sweep/sweep_commands.h"
#include "common/status.h"

namespace dwarp::clients {

// OK when `path` ends in ".svg" (any case); otherwise InvalidArgument naming the path and saying that
// only SVG is written.
Status CheckPlotPath(const std::string& path);

// Fetches the sweep's d_warp records, renders them and writes `out_file` atomically; `out` then gets
// "plot written to FILE". A bad path or a failed write is local input (exit 2); the coordinator's refusals
// are not. Nothing is written when the call fails.
CommandResult RunPlot(SweepClient& client, const std::string& sweep_id, const std::string& out_file,
                      const PlotOptions& options, std::ostream& out);

// Registers `dwarp plot` on the app. A failing command prints "error: ..." to stderr and throws
// CLI::RuntimeError with its exit code, as AddSweepCommands' commands do.
void AddPlotCommand(CLI::App& app);

}  // namespace dwarp::clients
