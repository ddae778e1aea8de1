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
#include <vector>

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

namespace {

// CLI11 answers a word that names no command (`dwarp stauts`, `dwarp simulate dim`) with "A subcommand is
// required". This names the word and the commands there are instead: the leading words of argv are walked
// down the command tree for as long as they name commands; the first one that does not, where commands are
// expected, is unknown. Empty when there is none.
std::string UnknownCommand(CLI::App& app, int argc, char** argv) {
  CLI::App* level = &app;
  std::string path = "dwarp";
  for (int i = 1; i < argc && argv[i][0] != '-'; ++i) {
    const std::vector<CLI::App*> commands = level->get_subcommands([](CLI::App*) { return true; });
    if (commands.empty()) return "";
    std::string names;
    CLI::App* next = nullptr;
    for (CLI::App* command : commands) {
      if (command->check_name(argv[i])) next = command;
      names += (names.empty() ? "" : ", ") + command->get_name();
    }
    if (next == nullptr) {
      return "unknown command '" + std::string(argv[i]) + "'; expected one of: " + names + " (" + path +
             " --help describes them)";
    }
    level = next;
    path += " " + next->get_name();
  }
  return "";
}

}  // namespace

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
  const char* const local_only = "This build (DWARP_LOCAL_ONLY) runs jobs here only: the coordinator's commands "
                                 "(submit, run, watch, ...) are in full builds.";
  app.footer(local_only);
#endif
  dwarp::clients::AddSimulateCommand(app);
  spdlog::set_pattern("[%H:%M:%S.%e] %^%l%$ %v");
  if (const std::string unknown = UnknownCommand(app, argc, argv); !unknown.empty()) {
    std::cerr << "error: " << unknown << "\n";
#ifndef DWARP_CLI_SWEEP_COMMANDS
    std::cerr << local_only << "\n";  // `dwarp submit` here is most likely a full build's command
#endif
    return dwarp::clients::kExitUsage;
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
