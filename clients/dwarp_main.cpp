// The `dwarp` command line: the sweep commands that talk to the coordinator (clients/sweep/sweep_commands.h:
// submit, list, status, watch, results, dwarp, cancel, workers; plot, run, tensorboard), `dwarp train
// JOB.yaml` that runs one job here (clients/local/train_command.h), the engine's own check `dwarp intrinsic-dim`
// (clients/local/intrinsic_dim_command.h) and `dwarp simulate` (clients/local/simulate_command.h).
//
// A local-only build (CMake DWARP_LOCAL_ONLY, for a GPU box without gRPC) has the local commands alone:
// DWARP_CLI_SWEEP_COMMANDS is defined in full builds only.
//
// Exit codes: a command's own (clients/sweep/sweep_commands.h), and 2 for every usage error CLI11 reports.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>
#include <string>

#include "clients/exit_codes.h"
#include "clients/local/intrinsic_dim_command.h"
#include "clients/local/simulate_command.h"
#include "clients/local/train_command.h"
#ifdef DWARP_CLI_SWEEP_COMMANDS
#include "clients/sweep/plot_command.h"
#include "clients/sweep/run_command.h"
#include "clients/sweep/sweep_commands.h"
#include "clients/sweep/tensorboard_command.h"
#endif

int main(int argc, char** argv) {
  CLI::App app{"dwarp: how far must a network be warped before it predicts the brain (DESIGN.md)"};
  app.require_subcommand(1);
  dwarp::clients::AddIntrinsicDimCommand(app);
  dwarp::clients::AddTrainCommand(app);
#ifdef DWARP_CLI_SWEEP_COMMANDS
  dwarp::clients::AddSweepCommands(app);
  dwarp::clients::AddPlotCommand(app);
  dwarp::clients::AddRunCommand(app);
  dwarp::clients::AddTensorBoardCommand(app);
#else
  app.footer("This build (DWARP_LOCAL_ONLY) runs jobs here only: the coordinator's commands (submit, run, "
             "watch, ...) are in full builds.");
#endif
  dwarp::clients::AddSimulateCommand(app);
  spdlog::set_pattern("[%H:%M:%S.%e] %^%l%$ %v");
  // CLI11 answers a word that names no command with "A subcommand is required"; name the word and the
  // commands there are instead.
  if (argc > 1 && argv[1][0] != '-') {
    const std::string word = argv[1];
    std::string names;
    bool known = false;
    for (const CLI::App* command : app.get_subcommands([](CLI::App*) { return true; })) {
      known = known || command->check_name(word);
      names += (names.empty() ? "" : ", ") + command->get_name();
    }
    if (!known) {
      std::cerr << "error: unknown command '" << word << "'; expected one of: " << names
                << " (dwarp --help describes them)\n";
      return dwarp::clients::kExitUsage;
    }
  }
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
