// `dwarp simulate dim-complexity`: the seed's dim-complexity simulation (worker/engine/simulate/
// dim_complexity.h) on this machine: MLPs pre-fit to x², x³ and sin(πx/2), then warped toward
// sin(1.5·πx/2) through random subspaces of growing d. Prints a table (initial function x d -> held-out R²
// against the target) and the d at which each function's fit reaches --threshold, writes the figure as SVG
// (-o) and, with --json, the numbers.
//
// The figure is a grid of panels, one row per initial function and one column per run: the pre-fit
// ("initial", d = 0), every d, and "full". Every panel shows the target (solid blue); the first column the
// initial function's fit (orange), the others the warped fit (dashed green) with its R². The first panel
// of a row whose d reaches the threshold is framed. Written by our own few lines of SVG (no plotting
// library), deterministic for a given result.
//
// Thread-safety: the functions are pure, apart from AddSimulateCommand's callback (files, stdout).
#pragma once

#include <string>

#include "worker/engine/simulate/dim_complexity.h"

namespace CLI {
class App;
}

namespace dwarp::clients {

// The table and the d-reached lines printed after the runs.
std::string FormatDimComplexityTable(const engine::DimComplexityResult& result);

// The figure described above, as SVG 1.1 text.
std::string RenderDimComplexitySvg(const engine::DimComplexityResult& result);

// The options, the grid, the target and every curve and R² as JSON text.
std::string DimComplexityJson(const engine::DimComplexityResult& result);

// Registers `simulate` (with its subcommand `dim-complexity`) on `app`. The callback runs the simulation,
// prints the table, writes the SVG and the JSON; on failure it logs the reason and throws
// CLI::RuntimeError(1).
void AddSimulateCommand(CLI::App& app);

}  // namespace dwarp::clients
