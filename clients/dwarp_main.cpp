// The `dwarp` command line: the sweep commands that talk to the coordinator (clients/sweep_commands.h:
// submit, list, status, watch, results, dwarp, cancel, workers), `dwarp train JOB.yaml` that runs one job
// here (clients/train_command.h), and the engine's own check `dwarp intrinsic-dim`
// (clients/intrinsic_dim_command.h).
//
// Exit codes: a command's own (clients/sweep_commands.h), and 2 for every usage error CLI11 reports.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "clients/intrinsic_dim_command.h"
#include "clients/plot_command.h"
#include "clients/run_command.h"
#include "clients/simulate_command.h"
#include "clients/tensorboard_command.h"
#include "clients/sweep_commands.h"
#include "clients/train_command.h"

int main(int argc, char** argv) {
  CLI::App app{"dwarp: how far must a network be warped before it predicts the brain (DESIGN.md)"};
  app.require_subcommand(1);
  dwarp::clients::AddIntrinsicDimCommand(app);
  dwarp::clients::AddTrainCommand(app);
  dwarp::clients::AddSweepCommands(app);
  dwarp::clients::AddPlotCommand(app);
  dwarp::clients::AddRunCommand(app);
  dwarp::clients::AddTensorBoardCommand(app);
  dwarp::clients::AddSimulateCommand(app);
  spdlog::set_pattern("[%H:%M:%S.%e] %^%l%$ %v");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    // Commands end with CLI::RuntimeError carrying their own code; every other error is a usage error,
    // which CLI11 numbers by kind (100 and up): one code for all of them is what scripts can test.
    if (code == 0 || e.get_name() == "RuntimeError") return code;
    return dwarp::clients::kExitUsage;
  }
  return 0;
}
